//! The manifest of a restore point: its metadata and each disk's chunks,
//! and the checks every repository applies before a restore reads it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{RestorePoint, Validate};

/// Format tag of a manifest.
pub const MANIFEST_FORMAT: &str = "vmrestore-repository/1";
/// Default chunk size: 4 MiB, the largest Put Page Azure accepts.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;
/// Largest manifest read (64 MiB).
pub(crate) const MAX_MANIFEST: u64 = 64 << 20;
/// Largest chunk size a manifest may declare (64 MiB); a chunk is read into
/// memory whole, so this bounds what one read can allocate.
pub const MAX_CHUNK_SIZE: u64 = 64 << 20;

/// A restore point as stored: metadata plus each disk's chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// Chunk size in bytes (a multiple of 512).
    pub chunk_size: u64,
    /// The restore point's metadata.
    pub restore_point: RestorePoint,
    /// The stored disks.
    pub disks: Vec<DiskManifest>,
}

/// One stored disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskManifest {
    /// Name of the source disk (or `<disk>/<volume group>` for an LVM volume group).
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Digest over the chunk digests (see the module docs).
    pub digest: String,
    /// Allocated chunks in offset order.
    pub chunks: Vec<ChunkRef>,
}

/// A stored chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkRef {
    /// Offset in the disk.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
}

impl DiskManifest {
    /// Bytes stored (allocated data).
    pub fn allocated(&self) -> u64 {
        self.chunks.iter().map(|c| c.length).sum()
    }
}

/// Digest of a disk from its chunks (see the module docs).
pub fn disk_digest<'a>(chunks: impl IntoIterator<Item = &'a ChunkRef>) -> String {
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c.offset.to_be_bytes());
        let mut raw = [0u8; 32];
        if hex::decode_to_slice(&c.sha256, &mut raw).is_err() {
            h.update(c.sha256.as_bytes());
        } else {
            h.update(raw);
        }
    }
    hex::encode(h.finalize())
}

pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Parses and checks the text of restore point `id`'s manifest, as every
/// repository does before a restore reads it: at most 64 MiB, the format,
/// chunk geometry (inside the disk, ordered, not overlapping), digests that
/// are SHA-256s, disk digests that match their chunks, and a restore point
/// that validates. Errors name the restore point, and the disk and offset
/// where a chunk is at fault.
pub fn parse_manifest(text: &str, id: &str) -> Result<Manifest> {
    if text.len() as u64 > MAX_MANIFEST {
        return Err(Error::Repository(format!(
            "restore point '{id}': the manifest exceeds {MAX_MANIFEST} bytes"
        )));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let m: Manifest = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        Error::Repository(format!(
            "restore point '{id}': the manifest does not parse at $.{}: {}",
            e.path(),
            e.inner()
        ))
    })?;
    de.end().map_err(|e| {
        Error::Repository(format!(
            "restore point '{id}': trailing data after the manifest's JSON document: {e}"
        ))
    })?;
    check_manifest(&m, id)?;
    Ok(m)
}

/// An integrity error about `chunk` of `disk` (the disk and offset named).
pub(crate) fn chunk_error(disk: &str, chunk: &ChunkRef, message: String) -> Error {
    Error::Integrity {
        disk: disk.to_string(),
        offset: chunk.offset,
        message,
    }
}

/// Checks a chunk reference before anything is read: a SHA-256 in
/// lowercase hex (so it can name a file or object) and a length between 1
/// byte and [`MAX_CHUNK_SIZE`].
pub(crate) fn check_chunk_ref(disk: &str, chunk: &ChunkRef) -> Result<()> {
    if !is_hex64(&chunk.sha256) {
        return Err(chunk_error(
            disk,
            chunk,
            format!(
                "'{}' is not a SHA-256",
                chunk.sha256.chars().take(80).collect::<String>()
            ),
        ));
    }
    if chunk.length == 0 || chunk.length > MAX_CHUNK_SIZE {
        return Err(chunk_error(
            disk,
            chunk,
            format!(
                "a chunk of {} bytes is not between 1 byte and {MAX_CHUNK_SIZE}",
                chunk.length
            ),
        ));
    }
    Ok(())
}

/// Checks a chunk's bytes against its length and SHA-256; a mismatch is an
/// error naming the disk and offset.
pub(crate) fn verify_chunk(disk: &str, chunk: &ChunkRef, data: &[u8]) -> Result<()> {
    let integrity = |m: String| chunk_error(disk, chunk, m);
    if data.len() as u64 != chunk.length {
        return Err(integrity(format!(
            "chunk {} holds {} bytes, the manifest says {}",
            chunk.sha256,
            data.len(),
            chunk.length
        )));
    }
    let got = hex::encode(Sha256::digest(data));
    if got != chunk.sha256 {
        return Err(integrity(format!(
            "SHA-256 mismatch: expected {}, read {got}",
            chunk.sha256
        )));
    }
    Ok(())
}

pub(crate) fn check_manifest(m: &Manifest, id: &str) -> Result<()> {
    let bad = |m: String| Error::Repository(format!("restore point '{id}': {m}"));
    if m.format != MANIFEST_FORMAT {
        return Err(bad(format!(
            "unknown manifest format '{}' (expected {MANIFEST_FORMAT})",
            m.format.chars().take(64).collect::<String>()
        )));
    }
    if m.restore_point.id != id {
        return Err(bad(format!(
            "the manifest is for restore point '{}'",
            m.restore_point.id
        )));
    }
    m.restore_point.validate_at("$.restore_point")?;
    if m.chunk_size == 0 || !m.chunk_size.is_multiple_of(512) || m.chunk_size > MAX_CHUNK_SIZE {
        return Err(bad(format!(
            "$.chunk_size: {} is not a positive multiple of 512 up to {MAX_CHUNK_SIZE} (64 MiB)",
            m.chunk_size
        )));
    }
    for d in &m.disks {
        let mut end = 0u64;
        for c in &d.chunks {
            let integrity = |msg: String| Error::Integrity {
                disk: d.name.clone(),
                offset: c.offset,
                message: msg,
            };
            if c.offset < end
                || c.length == 0
                || c.length > m.chunk_size
                || c.offset
                    .checked_add(c.length)
                    .is_none_or(|e| e > d.size_bytes)
            {
                return Err(integrity(format!(
                    "chunk of {} bytes does not fit the {}-byte disk in order",
                    c.length, d.size_bytes
                )));
            }
            if !is_hex64(&c.sha256) {
                return Err(integrity("the chunk digest is not a SHA-256".into()));
            }
            end = c.offset + c.length;
        }
        if disk_digest(&d.chunks) != d.digest {
            return Err(Error::Integrity {
                disk: d.name.clone(),
                offset: 0,
                message: "the disk digest does not match its chunks".into(),
            });
        }
    }
    Ok(())
}
