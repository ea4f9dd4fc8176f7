//! The local repository: restore points and content-addressed chunks in a
//! directory (the format is described in [`crate::repo`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::Repository;
use super::beneath;
use super::manifest::*;
use crate::error::{Error, Result};
use crate::model::{RestorePoint, Validate};

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
            // Neither the directory nor its manifest may be a symbolic link.
            if let Some(name) = e.file_name().to_str()
                && e.file_type().is_ok_and(|t| t.is_dir())
                && std::fs::symlink_metadata(e.path().join("manifest.json"))
                    .is_ok_and(|m| m.is_file())
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

    /// Reads and checks a restore point's manifest. It must be a regular
    /// file beneath the root (no symbolic link on the way, no FIFO or
    /// device) of at most 64 MiB.
    pub fn manifest(&self, id: &str) -> Result<Manifest> {
        let path = self.manifest_path(id)?;
        let (file, size) = beneath::open_file(&self.root, &["restore-points", id, "manifest.json"])
            .map_err(|e| {
                Error::Repository(format!(
                    "restore point '{id}': cannot open {}: {e}",
                    path.display()
                ))
            })?;
        if size > MAX_MANIFEST {
            return Err(Error::Repository(format!(
                "restore point '{id}': the manifest exceeds {MAX_MANIFEST} bytes"
            )));
        }
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

    #[cfg(test)]
    fn chunk_path(&self, sha: &str) -> PathBuf {
        self.root.join("chunks").join(&sha[..2]).join(sha)
    }

    /// Opens a chunk file: a regular file beneath the root, no symbolic
    /// link followed. Returns it and its size.
    fn open_chunk(&self, sha: &str) -> std::io::Result<(std::fs::File, u64)> {
        beneath::open_file(&self.root, &["chunks", &sha[..2], sha])
    }

    /// Whether a chunk file is present (a regular file beneath the root)
    /// with the length the manifest gives.
    pub fn has_chunk(&self, chunk: &ChunkRef) -> bool {
        is_hex64(&chunk.sha256)
            && self
                .open_chunk(&chunk.sha256)
                .is_ok_and(|(_, len)| len == chunk.length)
    }

    /// Reads one chunk of `disk` and checks its length and SHA-256; a
    /// mismatch or a missing chunk is an error naming the disk and offset.
    pub fn read_chunk(&self, disk: &str, chunk: &ChunkRef) -> Result<Vec<u8>> {
        check_chunk_ref(disk, chunk)?;
        let integrity = |m: String| chunk_error(disk, chunk, m);
        let cannot =
            |e: std::io::Error| integrity(format!("chunk {} cannot be read: {e}", chunk.sha256));
        // Reads are bounded by the declared length (one byte more tells a
        // longer file), whatever the file is.
        let (file, _) = self.open_chunk(&chunk.sha256).map_err(cannot)?;
        let mut data = Vec::with_capacity(chunk.length as usize);
        file.take(chunk.length + 1)
            .read_to_end(&mut data)
            .map_err(cannot)?;
        if data.len() as u64 > chunk.length {
            return Err(integrity(format!(
                "chunk {} holds more than the {} bytes the manifest says",
                chunk.sha256, chunk.length
            )));
        }
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
        if chunk_size == 0 || !chunk_size.is_multiple_of(512) || chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::Repository(format!(
                "chunk size {chunk_size} must be a multiple of 512 up to 64 MiB"
            )));
        }
        check_images(rp, images)?;
        let mut disks = Vec::new();
        for (name, path) in images {
            disks.push(self.import_image(rp, name, path, chunk_size)?);
        }
        let m = Manifest {
            format: MANIFEST_FORMAT.into(),
            chunk_size,
            restore_point: rp.clone(),
            disks,
        };
        check_manifest(&m, &rp.id)?;
        let path = self.manifest_path(&rp.id)?;
        let text =
            serde_json::to_string_pretty(&m).map_err(|e| Error::Repository(e.to_string()))?;
        beneath::write_file(
            &self.root,
            &["restore-points", &rp.id],
            "manifest.json",
            text.as_bytes(),
        )
        .map_err(|e| Error::Repository(format!("cannot write {}: {e}", path.display())))?;
        Ok(m)
    }

    /// Cuts one image into chunks and stores those that are not all zero.
    fn import_image(
        &self,
        rp: &RestorePoint,
        name: &str,
        path: &Path,
        chunk_size: u64,
    ) -> Result<DiskManifest> {
        let io = |e: std::io::Error| {
            Error::Repository(format!("disk '{name}': {}: {e}", path.display()))
        };
        let (mut f, size) = open_image(path).map_err(io)?;
        let expected = image_size(rp, name);
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
                // A chunk already there is kept when it is a regular
                // file of the right length; anything else (a symbolic
                // link, a FIFO, a torn file) is replaced, not followed.
                if !self.open_chunk(&sha).is_ok_and(|(_, l)| l == len as u64) {
                    beneath::write_file(&self.root, &["chunks", &sha[..2]], &sha, data).map_err(
                        |e| {
                            Error::Repository(format!(
                                "disk '{name}': cannot store chunk {sha}: {e}"
                            ))
                        },
                    )?;
                }
                chunks.push(ChunkRef {
                    offset,
                    length: len as u64,
                    sha256: sha,
                });
            }
            offset += len as u64;
        }
        Ok(DiskManifest {
            name: name.to_string(),
            size_bytes: size,
            digest: disk_digest(&chunks),
            chunks,
        })
    }
}

/// Every disk (and volume group) needs exactly one image: a restore point
/// imported without one would restore an empty disk.
fn check_images(rp: &RestorePoint, images: &[(&str, &Path)]) -> Result<()> {
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
    Ok(())
}

/// The size the restore point gives a disk (`name`) or a volume group
/// (`disk/group`); `None` when it has no such disk.
fn image_size(rp: &RestorePoint, name: &str) -> Option<u64> {
    match name.split_once('/') {
        None => rp
            .vm
            .disks
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.size_bytes),
        Some((disk, vg)) => rp
            .vm
            .disks
            .iter()
            .find(|d| d.name == disk)
            .and_then(|d| d.lvm_volume_groups.iter().find(|g| g.name == vg))
            .map(|g| g.size_bytes),
    }
}

/// Opens a raw image for import without blocking (a FIFO does not hang the
/// open): a regular file (its size from the opened file) or a block device
/// (its size by seeking to its end). Anything else is refused.
fn open_image(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    use std::io::Seek;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let m = f.metadata()?;
    let t = m.file_type();
    if t.is_file() {
        Ok((f, m.len()))
    } else if t.is_block_device() {
        let size = f.seek(std::io::SeekFrom::End(0))?;
        f.rewind()?;
        Ok((f, size))
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file or block device (a FIFO, socket or character device is not an image)",
        ))
    }
}

/// The [`Repository`] implementation: each call runs the blocking file work
/// on tokio's blocking pool.
#[async_trait::async_trait]
impl Repository for LocalRepository {
    async fn list(&self) -> Result<Vec<String>> {
        let r = self.clone();
        blocking(move || r.list()).await
    }
    async fn manifest(&self, id: &str) -> Result<Manifest> {
        let (r, id) = (self.clone(), id.to_string());
        blocking(move || r.manifest(&id)).await
    }
    async fn has_chunk(&self, chunk: &ChunkRef) -> Result<bool> {
        let (r, c) = (self.clone(), chunk.clone());
        blocking(move || Ok(r.has_chunk(&c))).await
    }
    async fn read_chunk(&self, disk: &str, chunk: &ChunkRef) -> Result<Bytes> {
        let (r, d, c) = (self.clone(), disk.to_string(), chunk.clone());
        blocking(move || r.read_chunk(&d, &c).map(Bytes::from)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Repository(format!("worker failed: {e}")))?
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

    /// A repository with `image` imported as disk `osdisk` of `rp()`.
    fn imported() -> (tempfile::TempDir, LocalRepository, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let repo = LocalRepository::create(dir.path().join("repo")).unwrap();
        let img = image(dir.path());
        let m = repo
            .import_raw(&rp(), &[("osdisk", &img)], 1 << 20)
            .unwrap();
        (dir, repo, m)
    }

    #[test]
    fn import_skips_zero_chunks_and_reads_back_verified() {
        let (_dir, repo, m) = imported();
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
        let (_dir, repo, m) = imported();
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
