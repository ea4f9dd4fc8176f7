//! Restores disks from a local repository to fixed VHDs and checks them with
//! the real qemu-img: `qemu-img compare -f raw -F vpc` says the images are
//! identical, and `qemu-img info -f vpc` gives the right virtual size.

use std::path::Path;
use std::process::Command;

use vmrestore::model::RestorePoint;
use vmrestore::repo::LocalRepository;
use vmrestore::vhd::{parse_footer, restore_disk_to_vhd};

mod common;
use common::restore::padded_copy;

/// The windows base restore point with its disks resized to the images'.
fn restore_point_sized(sizes: &[(&str, u64)]) -> RestorePoint {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/bases.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut rp: RestorePoint =
        serde_json::from_value(v["windows"]["restore_point"].clone()).unwrap();
    // Only the disks given (an import needs an image for every disk).
    rp.vm
        .disks
        .retain(|d| sizes.iter().any(|(n, _)| *n == d.name));
    for d in &mut rp.vm.disks {
        if let Some((_, s)) = sizes.iter().find(|(n, _)| *n == d.name) {
            d.size_bytes = *s;
            d.allocated_bytes = None;
        }
    }
    rp
}

/// A sparse raw image with deterministic data in a few places.
fn make_raw(path: &Path, size: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    let mut x: u64 = 0x1234_5678;
    for k in 0..20u64 {
        let off = (k * 7919 * 4096) % (size - 70_000);
        let mut block = vec![0u8; 65_536 + (k as usize * 13)];
        for b in &mut block {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        f.write_all_at(&block, off).unwrap();
    }
}

fn qemu_img() -> Command {
    Command::new("qemu-img")
}

#[test]
fn restored_vhds_are_identical_to_their_sources_for_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let repo = LocalRepository::create(dir.path().join("repo")).unwrap();
    // One disk a whole number of MiB, one not (the VHD is rounded up).
    let sizes = [("osdisk", 40u64 << 20), ("data1", (24 << 20) + 4096)];
    let mut images = Vec::new();
    for (name, size) in sizes {
        let p = dir.path().join(format!("{name}.raw"));
        make_raw(&p, size);
        images.push((name, p));
    }
    let refs: Vec<(&str, &Path)> = images.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let m = repo
        .import_raw(&restore_point_sized(&sizes), &refs, 1 << 20)
        .unwrap();
    for (name, raw) in &images {
        let vhd = dir.path().join(format!("{name}.vhd"));
        restore_disk_to_vhd(&repo, &m, name, &vhd).unwrap();
        let len = std::fs::metadata(&vhd).unwrap().len();
        assert_eq!(
            len % (1 << 20),
            512,
            "{name}: a fixed VHD is N MiB + 512 bytes"
        );
        let footer = parse_footer(&std::fs::read(&vhd).unwrap()[(len - 512) as usize..]).unwrap();
        assert_eq!(footer.size, len - 512);

        let info = qemu_img()
            .args(["info", "-f", "vpc", "--output=json"])
            .arg(&vhd)
            .output()
            .expect("qemu-img is installed (qemu-utils)");
        assert!(
            info.status.success(),
            "{}",
            String::from_utf8_lossy(&info.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(info["virtual-size"].as_u64(), Some(len - 512), "{name}");

        // Compare against the source padded to the VHD's size.
        let padded = dir.path().join(format!("{name}.padded.raw"));
        padded_copy(raw, &padded, len - 512);
        let out = qemu_img()
            .args(["compare", "-f", "raw", "-F", "vpc"])
            .arg(&padded)
            .arg(&vhd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Images are identical."));
    }
}

#[test]
fn a_corrupted_chunk_stops_the_disk_with_its_offset_and_writes_no_footer() {
    let dir = tempfile::tempdir().unwrap();
    let repo = LocalRepository::create(dir.path().join("repo")).unwrap();
    let raw = dir.path().join("osdisk.raw");
    make_raw(&raw, 8 << 20);
    let m = repo
        .import_raw(
            &restore_point_sized(&[("osdisk", 8 << 20)]),
            &[("osdisk", raw.as_path())],
            1 << 20,
        )
        .unwrap();
    let victim = &m.disks[0].chunks[1];
    let chunk = repo
        .root()
        .join("chunks")
        .join(&victim.sha256[..2])
        .join(&victim.sha256);
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[17] ^= 1;
    std::fs::write(&chunk, bytes).unwrap();
    let vhd = dir.path().join("osdisk.vhd");
    let err = restore_disk_to_vhd(&repo, &m, "osdisk", &vhd).unwrap_err();
    assert_eq!(err.code(), "E_INTEGRITY");
    assert!(
        err.to_string()
            .contains(&format!("disk 'osdisk' at offset {}", victim.offset)),
        "{err}"
    );
    // Nothing that looks like a VHD is left: the partial file (which never
    // got a footer) is removed and the final name was never created.
    assert!(
        !vhd.exists(),
        "no VHD is left for a disk that failed verification"
    );
    assert!(!vmrestore::vhd::partial_path(&vhd).exists());
}
