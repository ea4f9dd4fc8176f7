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
/// Largest chunk size a manifest may declare (64 MiB); a chunk is read into
/// memory whole, so this bounds what one read can allocate.
pub const MAX_CHUNK_SIZE: u64 = 64 << 20;

/// Opening and creating files beneath a directory without following
/// symbolic links: every component is opened relative to its parent with
/// `O_NOFOLLOW` (directories also with `O_DIRECTORY`), the last one with
/// `O_NONBLOCK` so that a FIFO does not block the open, and its type is
/// checked on the opened descriptor (no check-then-open race).
pub(crate) mod beneath {
    use std::ffi::CString;
    use std::fs::File;
    use std::io::{Error, ErrorKind, Result, Write};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn cname(c: &str) -> Result<CString> {
        if c.is_empty() || c == "." || c == ".." || c.contains('/') {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("'{c}' is not a plain file name"),
            ));
        }
        CString::new(c).map_err(|_| Error::new(ErrorKind::InvalidInput, "NUL in a file name"))
    }

    fn explain(e: Error, what: &str) -> Error {
        match e.raw_os_error() {
            Some(libc::ELOOP) | Some(libc::EMLINK) => Error::new(
                ErrorKind::InvalidInput,
                format!("{what} is a symbolic link (not followed)"),
            ),
            Some(libc::ENOTDIR) => Error::new(
                ErrorKind::InvalidInput,
                format!("{what} is not a directory"),
            ),
            _ => e,
        }
    }

    fn openat(dir: &File, name: &str, flags: libc::c_int, mode: libc::c_uint) -> Result<File> {
        let c = cname(name)?;
        // SAFETY: `dir` is an open descriptor and `c` a NUL-terminated string;
        // the returned descriptor, if valid, is owned by the new `File`.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            )
        };
        if fd < 0 {
            let e = Error::last_os_error();
            // Linux says ENOTDIR for a symbolic link opened with
            // O_DIRECTORY | O_NOFOLLOW: tell a link from a file.
            // SAFETY: `st` is plain data that fstatat fills in.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            let link = unsafe {
                libc::fstatat(
                    dir.as_raw_fd(),
                    c.as_ptr(),
                    &mut st,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            } == 0
                && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK;
            if link {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("'{name}' is a symbolic link (not followed)"),
                ));
            }
            return Err(explain(e, &format!("'{name}'")));
        }
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    fn root_dir(root: &Path) -> Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(root)
    }

    /// Opens directory `dirs` beneath `root` (creating them when `create`).
    fn walk(root: &Path, dirs: &[&str], create: bool) -> Result<File> {
        let mut d = root_dir(root)?;
        for c in dirs {
            if create {
                let n = cname(c)?;
                // SAFETY: as in `openat`.
                let r = unsafe { libc::mkdirat(d.as_raw_fd(), n.as_ptr(), 0o755) };
                if r != 0 {
                    let e = Error::last_os_error();
                    if e.kind() != ErrorKind::AlreadyExists {
                        return Err(e);
                    }
                }
            }
            d = openat(&d, c, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        }
        Ok(d)
    }

    /// Opens `rel` (directory components, then a file name) beneath `root`
    /// for reading; it must be a regular file. Returns the file and its size.
    pub fn open_file(root: &Path, rel: &[&str]) -> Result<(File, u64)> {
        let (name, dirs) = rel
            .split_last()
            .ok_or_else(|| Error::new(ErrorKind::InvalidInput, "no file name"))?;
        let d = walk(root, dirs, false)?;
        let f = openat(&d, name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
        let m = f.metadata()?;
        if !m.is_file() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("'{name}' is not a regular file"),
            ));
        }
        Ok((f, m.len()))
    }

    static SEQ: AtomicU64 = AtomicU64::new(0);

    /// A temporary name next to `name`, unique to this process and call.
    pub fn temp_name(name: &str) -> String {
        format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Writes `data` as `name` in directory `dirs` beneath `root` (creating
    /// the directories): into a new temporary file (`O_EXCL | O_NOFOLLOW`),
    /// synced, then renamed over `name` (a rename replaces a symbolic link
    /// there rather than writing through it).
    pub fn write_file(root: &Path, dirs: &[&str], name: &str, data: &[u8]) -> Result<()> {
        cname(name)?;
        let d = walk(root, dirs, true)?;
        let tmp = temp_name(name);
        let mut f = openat(
            &d,
            &tmp,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o644,
        )?;
        let done = f
            .write_all(data)
            .and_then(|_| f.sync_all())
            .and_then(|_| rename_in(&d, &tmp, name));
        if done.is_err() {
            let _ = unlink_in(&d, &tmp);
        }
        done
    }

    fn rename_in(d: &File, from: &str, to: &str) -> Result<()> {
        let (a, b) = (cname(from)?, cname(to)?);
        // SAFETY: as in `openat`.
        let r = unsafe { libc::renameat(d.as_raw_fd(), a.as_ptr(), d.as_raw_fd(), b.as_ptr()) };
        if r == 0 {
            Ok(())
        } else {
            Err(Error::last_os_error())
        }
    }

    fn unlink_in(d: &File, name: &str) -> Result<()> {
        let n = cname(name)?;
        // SAFETY: as in `openat`.
        let r = unsafe { libc::unlinkat(d.as_raw_fd(), n.as_ptr(), 0) };
        if r == 0 {
            Ok(())
        } else {
            Err(Error::last_os_error())
        }
    }
}

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
        if chunk.length == 0 || chunk.length > MAX_CHUNK_SIZE {
            return Err(integrity(format!(
                "a chunk of {} bytes is not between 1 byte and {MAX_CHUNK_SIZE}",
                chunk.length
            )));
        }
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
            let (mut f, size) = open_image(path).map_err(io)?;
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
                    // A chunk already there is kept when it is a regular
                    // file of the right length; anything else (a symbolic
                    // link, a FIFO, a torn file) is replaced, not followed.
                    if !self.open_chunk(&sha).is_ok_and(|(_, l)| l == len as u64) {
                        beneath::write_file(&self.root, &["chunks", &sha[..2]], &sha, data)
                            .map_err(|e| {
                                Error::Repository(format!(
                                    "disk '{name}': cannot store chunk {sha}: {e}"
                                ))
                            })?;
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
