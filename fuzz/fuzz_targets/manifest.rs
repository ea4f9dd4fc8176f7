//! The repository manifest: any bytes as the manifest of restore point
//! "rp-1". Parsing must not panic; a manifest that parses has its chunks
//! inside their disks, in order, and disk digests that match them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restore_core::repo::{disk_digest, parse_manifest};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = parse_manifest(text, "rp-1") else {
        return;
    };
    for d in &m.disks {
        let mut end = 0;
        for c in &d.chunks {
            assert!(c.offset >= end && c.length > 0 && c.length <= m.chunk_size);
            end = c.offset + c.length;
            assert!(end <= d.size_bytes);
        }
        assert_eq!(disk_digest(&d.chunks), d.digest);
    }
});
