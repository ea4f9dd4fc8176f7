//! The local backup repository: a documented on-disk format.
//!
//! ```text
//! <root>/
//!   restore-points/<id>/manifest.json   the restore point's metadata and, per
//!                                       disk, its allocated chunks with SHA-256
//!   chunks/<first two hex digits>/<sha256 hex>   content-addressed chunk bytes
//! ```
//!
//! Chunks are fixed-size slices of a disk (the last may be shorter); chunks
//! that are all zeros are left out. A disk's digest is the SHA-256 over, for
//! each stored chunk in offset order, the offset (u64 big-endian) followed by
//! the chunk's 32-byte SHA-256, so it covers where the data sits as well as
//! what it is.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::{RestorePoint, Validate};

#[cfg(feature = "object-store")]
pub mod object;
#[cfg(feature = "object-store")]
pub use object::ObjectStoreRepository;

/// Format tag of a manifest.
pub const MANIFEST_FORMAT: &str = "vmrestore-repository/1";
/// Default chunk size: 4 MiB, the largest Put Page Azure accepts.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;
/// Largest manifest read (64 MiB).
pub(crate) const MAX_MANIFEST: u64 = 64 << 20;

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

/// A repository in a local directory.
#[derive(Debug, Clone)]
pub struct LocalRepository {
    root: PathBuf,
}

impl LocalRepository {
    /// Opens (without creating) a repository rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            return Err(Error::Repository(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        Ok(LocalRepository { root })
    }

    /// Creates the directory layout at `root` if needed and opens it.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for d in ["restore-points", "chunks"] {
            std::fs::create_dir_all(root.join(d)).map_err(|e| {
                Error::Repository(format!("cannot create {}: {e}", root.join(d).display()))
            })?;
        }
        Ok(LocalRepository { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// IDs of the stored restore points, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let dir = self.root.join("restore-points");
        let mut ids = Vec::new();
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::Repository(format!("cannot list {}: {e}", dir.display())))?;
        for e in entries.flatten() {
            if let Some(name) = e.file_name().to_str()
                && e.path().join("manifest.json").is_file()
                && valid_id(name)
            {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn manifest_path(&self, id: &str) -> Result<PathBuf> {
        if !valid_id(id) {
            return Err(Error::Repository(format!(
                "'{}' is not a restore point ID (letters, digits, '-', '_', '.'; no path separators)",
                id.chars().take(64).collect::<String>()
            )));
        }
        Ok(self
            .root
            .join("restore-points")
            .join(id)
            .join("manifest.json"))
    }

    /// Reads and checks a restore point's manifest.
    pub fn manifest(&self, id: &str) -> Result<Manifest> {
        let path = self.manifest_path(id)?;
        let file = std::fs::File::open(&path).map_err(|e| {
            Error::Repository(format!(
                "restore point '{id}': cannot open {}: {e}",
                path.display()
            ))
        })?;
        let mut text = String::new();
        file.take(MAX_MANIFEST + 1)
            .read_to_string(&mut text)
            .map_err(|e| {
                Error::Repository(format!(
                    "restore point '{id}': cannot read the manifest: {e}"
                ))
            })?;
        if text.len() as u64 > MAX_MANIFEST {
            return Err(Error::Repository(format!(
                "restore point '{id}': the manifest exceeds {MAX_MANIFEST} bytes"
            )));
        }
        parse_manifest(&text, id)
    }

    fn chunk_path(&self, sha: &str) -> PathBuf {
        self.root.join("chunks").join(&sha[..2]).join(sha)
    }

    /// Whether a chunk file is present with the length the manifest gives.
    pub fn has_chunk(&self, chunk: &ChunkRef) -> bool {
        is_hex64(&chunk.sha256)
            && std::fs::metadata(self.chunk_path(&chunk.sha256))
                .is_ok_and(|m| m.len() == chunk.length)
    }

    /// Reads one chunk of `disk` and checks its length and SHA-256; a
    /// mismatch or a missing chunk is an error naming the disk and offset.
    pub fn read_chunk(&self, disk: &str, chunk: &ChunkRef) -> Result<Vec<u8>> {
        let integrity = |m: String| Error::Integrity {
            disk: disk.to_string(),
            offset: chunk.offset,
            message: m,
        };
        if !is_hex64(&chunk.sha256) {
            return Err(integrity(format!(
                "'{}' is not a SHA-256",
                chunk.sha256.chars().take(80).collect::<String>()
            )));
        }
        let path = self.chunk_path(&chunk.sha256);
        let data = std::fs::read(&path)
            .map_err(|e| integrity(format!("chunk {} cannot be read: {e}", chunk.sha256)))?;
        verify_chunk(disk, chunk, &data)?;
        Ok(data)
    }

    /// Imports raw disk images as a restore point: each image is cut into
    /// `chunk_size` chunks, all-zero chunks are left out, the others stored
    /// by content. `images` pairs each disk name of `rp.vm.disks` with a raw
    /// image whose length is the disk's size.
    pub fn import_raw(
        &self,
        rp: &RestorePoint,
        images: &[(&str, &Path)],
        chunk_size: u64,
    ) -> Result<Manifest> {
        rp.validate()?;
        if chunk_size == 0 || !chunk_size.is_multiple_of(512) || chunk_size > 64 << 20 {
            return Err(Error::Repository(format!(
                "chunk size {chunk_size} must be a multiple of 512 up to 64 MiB"
            )));
        }
        // Every disk (and volume group) needs its image: a restore point
        // imported without one would restore an empty disk.
        let mut missing = Vec::new();
        for d in &rp.vm.disks {
            let names = std::iter::once(d.name.clone()).chain(
                d.lvm_volume_groups
                    .iter()
                    .map(|g| format!("{}/{}", d.name, g.name)),
            );
            for n in names {
                match images.iter().filter(|(i, _)| *i == n).count() {
                    0 => missing.push(n),
                    1 => {}
                    _ => {
                        return Err(Error::Repository(format!(
                            "disk '{n}' has more than one image"
                        )));
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(Error::Repository(format!(
                "no image for disk {} of VM '{}'",
                missing
                    .iter()
                    .map(|m| format!("'{m}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                rp.vm.name
            )));
        }
        let mut disks = Vec::new();
        for (name, path) in images {
            let io = |e: std::io::Error| {
                Error::Repository(format!("disk '{name}': {}: {e}", path.display()))
            };
            let mut f = std::fs::File::open(path).map_err(io)?;
            let size = f.metadata().map_err(io)?.len();
            let expected = match name.split_once('/') {
                None => rp
                    .vm
                    .disks
                    .iter()
                    .find(|d| d.name == *name)
                    .map(|d| d.size_bytes),
                Some((disk, vg)) => rp
                    .vm
                    .disks
                    .iter()
                    .find(|d| d.name == disk)
                    .and_then(|d| d.lvm_volume_groups.iter().find(|g| g.name == vg))
                    .map(|g| g.size_bytes),
            };
            match expected {
                None => {
                    return Err(Error::Repository(format!(
                        "'{name}' is not a disk (or disk/volume group) of VM '{}'",
                        rp.vm.name
                    )));
                }
                Some(e) if e != size => {
                    return Err(Error::Repository(format!(
                        "image {} of '{name}' has {size} bytes; the restore point says {e}",
                        path.display()
                    )));
                }
                Some(_) => {}
            }
            let mut chunks = Vec::new();
            let mut buf = vec![0u8; chunk_size as usize];
            let mut offset = 0u64;
            while offset < size {
                let len = chunk_size.min(size - offset) as usize;
                f.read_exact(&mut buf[..len]).map_err(io)?;
                let data = &buf[..len];
                if data.iter().any(|b| *b != 0) {
                    let sha = hex::encode(Sha256::digest(data));
                    let p = self.chunk_path(&sha);
                    if !p.exists() {
                        std::fs::create_dir_all(p.parent().unwrap_or(&self.root)).map_err(io)?;
                        let tmp = p.with_extension("tmp");
                        std::fs::write(&tmp, data).map_err(io)?;
                        std::fs::rename(&tmp, &p).map_err(io)?;
                    }
                    chunks.push(ChunkRef {
                        offset,
                        length: len as u64,
                        sha256: sha,
                    });
                }
                offset += len as u64;
            }
            disks.push(DiskManifest {
                name: name.to_string(),
                size_bytes: size,
                digest: disk_digest(&chunks),
                chunks,
            });
        }
        let m = Manifest {
            format: MANIFEST_FORMAT.into(),
            chunk_size,
            restore_point: rp.clone(),
            disks,
        };
        check_manifest(&m, &rp.id)?;
        let path = self.manifest_path(&rp.id)?;
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Repository(format!("cannot create {}: {e}", dir.display())))?;
        let text =
            serde_json::to_string_pretty(&m).map_err(|e| Error::Repository(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Repository(format!("cannot write {}: {e}", path.display())))?;
        Ok(m)
    }
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
    let m: Manifest = serde_path_to_error::deserialize(de).map_err(|e| {
        Error::Repository(format!(
            "restore point '{id}': the manifest does not parse at $.{}: {}",
            e.path(),
            e.inner()
        ))
    })?;
    check_manifest(&m, id)?;
    Ok(m)
}

/// Checks a chunk's bytes against its length and SHA-256; a mismatch is an
/// error naming the disk and offset.
pub(crate) fn verify_chunk(disk: &str, chunk: &ChunkRef, data: &[u8]) -> Result<()> {
    let integrity = |m: String| Error::Integrity {
        disk: disk.to_string(),
        offset: chunk.offset,
        message: m,
    };
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

fn check_manifest(m: &Manifest, id: &str) -> Result<()> {
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
    if m.chunk_size == 0 || !m.chunk_size.is_multiple_of(512) {
        return Err(bad(format!(
            "chunk size {} is not a positive multiple of 512",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rp() -> RestorePoint {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/vectors/bases.json")).unwrap();
        let mut rp: RestorePoint =
            serde_json::from_value(v["windows"]["restore_point"].clone()).unwrap();
        rp.vm.disks.truncate(1);
        rp.vm.disks[0].size_bytes = 3 << 20;
        rp.vm.disks[0].allocated_bytes = None;
        rp
    }

    #[test]
    fn import_refuses_a_missing_duplicate_or_foreign_image() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(dir.path().join("repo")).unwrap();
        let img = image(dir.path());
        let e = repo.import_raw(&rp(), &[], 1 << 20).unwrap_err();
        assert!(e.to_string().contains("no image for disk 'osdisk'"), "{e}");
        let e = repo
            .import_raw(&rp(), &[("osdisk", &img), ("osdisk", &img)], 1 << 20)
            .unwrap_err();
        assert!(e.to_string().contains("more than one image"), "{e}");
        let e = repo
            .import_raw(&rp(), &[("osdisk", &img), ("data9", &img)], 1 << 20)
            .unwrap_err();
        assert!(e.to_string().contains("'data9' is not a disk"), "{e}");
        assert!(repo.list().unwrap().is_empty(), "nothing was recorded");
    }

    fn image(dir: &Path) -> PathBuf {
        let p = dir.join("os.raw");
        let mut data = vec![0u8; 3 << 20];
        data[100] = 1;
        data[(2 << 20) + 5] = 9;
        std::fs::write(&p, &data).unwrap();
        p
    }

    #[test]
    fn import_skips_zero_chunks_and_reads_back_verified() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(dir.path().join("repo")).unwrap();
        let img = image(dir.path());
        let m = repo
            .import_raw(&rp(), &[("osdisk", &img)], 1 << 20)
            .unwrap();
        assert_eq!(
            m.disks[0].chunks.len(),
            2,
            "the all-zero middle chunk is left out"
        );
        assert_eq!(repo.list().unwrap(), vec![rp().id]);
        let again = repo.manifest(&rp().id).unwrap();
        assert_eq!(again, m);
        let c = &m.disks[0].chunks[1];
        assert_eq!(repo.read_chunk("osdisk", c).unwrap()[5], 9);
    }

    #[test]
    fn corruption_missing_chunks_and_traversal_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(dir.path().join("repo")).unwrap();
        let img = image(dir.path());
        let m = repo
            .import_raw(&rp(), &[("osdisk", &img)], 1 << 20)
            .unwrap();
        let c = m.disks[0].chunks[1].clone();
        let path = repo.chunk_path(&c.sha256);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let e = repo.read_chunk("osdisk", &c).unwrap_err();
        assert_eq!(e.code(), "E_INTEGRITY");
        assert!(
            e.to_string().contains("disk 'osdisk' at offset 2097152"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(
            repo.read_chunk("osdisk", &c)
                .unwrap_err()
                .to_string()
                .contains("cannot be read")
        );
        for bad in ["../etc", "a/b", "..", ""] {
            assert_eq!(
                repo.manifest(bad).unwrap_err().code(),
                "E_REPOSITORY",
                "{bad}"
            );
        }
        let mpath = repo.manifest_path(&rp().id).unwrap();
        std::fs::write(&mpath, "{ not json").unwrap();
        assert!(
            repo.manifest(&rp().id)
                .unwrap_err()
                .to_string()
                .contains("does not parse")
        );
        let mut lying = m.clone();
        lying.disks[0].chunks[0].length = 5 << 20;
        std::fs::write(&mpath, serde_json::to_string(&lying).unwrap()).unwrap();
        assert_eq!(repo.manifest(&rp().id).unwrap_err().code(), "E_INTEGRITY");
    }
}
