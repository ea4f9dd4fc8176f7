//! Fixed VHD files, the format Azure disks are uploaded in: the raw disk bytes
//! followed by a 512-byte footer (big-endian), the virtual size a whole
//! number of MiB. See AZURE.md ("Fixed VHD") and the VHD specification.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Size of the footer.
pub const FOOTER_SIZE: u64 = 512;
/// Azure requires the virtual size of a disk to be a multiple of this.
pub const SIZE_ALIGNMENT: u64 = 1 << 20;
/// Creator application written into the footer. "win " is what Hyper-V and
/// Azure write; readers such as qemu then take the size from the footer's
/// current-size field rather than from the CHS geometry.
pub const CREATOR_APP: &[u8; 4] = b"win ";

/// Seconds between the Unix epoch and the VHD epoch (2000-01-01T00:00:00Z).
const VHD_EPOCH: u64 = 946_684_800;

/// CHS geometry per the VHD specification's algorithm (as qemu's
/// `calculate_geometry`): `(cylinders, heads, sectors per track)`.
pub fn geometry(size: u64) -> (u16, u8, u8) {
    let mut total = (size / 512).min(65535 * 16 * 255);
    let (spt, heads, cth);
    if total >= 65535 * 16 * 63 {
        total = total.min(65535 * 16 * 255);
        spt = 255u64;
        heads = 16u64;
        cth = total / spt;
    } else {
        let mut s = 17u64;
        let mut c = total / s;
        let mut h = c.div_ceil(1024).max(4);
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = total / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = total / s;
        }
        spt = s;
        heads = h;
        cth = c;
    }
    ((cth / heads).min(65535) as u16, heads as u8, spt as u8)
}

/// Builds the footer of a fixed VHD of `size` bytes (`size` is the virtual
/// size, without the footer). `unix_time` is the creation time; `unique_id`
/// identifies the disk.
pub fn footer(size: u64, unix_time: u64, unique_id: [u8; 16]) -> [u8; 512] {
    let mut f = [0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes());
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
    f[24..28].copy_from_slice(&(unix_time.saturating_sub(VHD_EPOCH) as u32).to_be_bytes());
    f[28..32].copy_from_slice(CREATOR_APP);
    f[32..36].copy_from_slice(&0x000a_0000u32.to_be_bytes());
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    let (c, h, s) = geometry(size);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f[58] = h;
    f[59] = s;
    f[60..64].copy_from_slice(&2u32.to_be_bytes());
    f[68..84].copy_from_slice(&unique_id);
    let sum = checksum(&f);
    f[64..68].copy_from_slice(&sum.to_be_bytes());
    f
}

/// One's complement of the byte sum with the checksum field taken as zero.
fn checksum(f: &[u8; 512]) -> u32 {
    let sum = f
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |a, (_, b)| a.wrapping_add(u32::from(*b)));
    !sum
}

/// What a footer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterInfo {
    /// Current (virtual) size in bytes.
    pub size: u64,
    /// Disk type (2 = fixed).
    pub disk_type: u32,
    /// Unique ID.
    pub unique_id: [u8; 16],
}

/// Parses and checks a footer: cookie, checksum, fixed type.
pub fn parse_footer(f: &[u8]) -> Result<FooterInfo> {
    let bad = |m: &str| Error::Invalid {
        path: "vhd footer".into(),
        message: m.to_string(),
    };
    let f: &[u8; 512] = f.try_into().map_err(|_| bad("a footer is 512 bytes"))?;
    if &f[0..8] != b"conectix" {
        return Err(bad("no 'conectix' cookie"));
    }
    let stored = u32::from_be_bytes([f[64], f[65], f[66], f[67]]);
    if stored != checksum(f) {
        return Err(bad("checksum mismatch"));
    }
    let mut unique_id = [0u8; 16];
    unique_id.copy_from_slice(&f[68..84]);
    Ok(FooterInfo {
        size: u64::from_be_bytes(f[48..56].try_into().unwrap_or_default()),
        disk_type: u32::from_be_bytes([f[60], f[61], f[62], f[63]]),
        unique_id,
    })
}

/// Writes a fixed VHD file sparsely: the file is created at its full length
/// (holes read as zeros), data is written where it is given, and the footer
/// goes last.
#[derive(Debug)]
pub struct VhdFile {
    file: File,
    size: u64,
}

impl VhdFile {
    /// Creates `path` for a disk of `size` bytes, which must be a whole
    /// number of MiB. The file must not exist: it is created with
    /// `O_CREAT | O_EXCL | O_NOFOLLOW`, so neither an existing file nor a
    /// symbolic link there (to anywhere) is written through or truncated.
    pub fn create(path: &Path, size: u64) -> Result<Self> {
        if size == 0 || !size.is_multiple_of(SIZE_ALIGNMENT) {
            return Err(Error::Invalid {
                path: path.display().to_string(),
                message: format!(
                    "a VHD's virtual size must be a positive multiple of 1 MiB, not {size}"
                ),
            });
        }
        let io = |e: std::io::Error| Error::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        // Read too: a resumed run reads back what it is told was written.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        file.set_len(size + FOOTER_SIZE).map_err(io)?;
        Ok(VhdFile { file, size })
    }

    /// Reopens an existing VHD being written (to resume): `O_NOFOLLOW` (a
    /// symbolic link is refused) and `O_NONBLOCK` (a FIFO does not block),
    /// and the opened file must be a regular file; it is then set to
    /// `size + 512` bytes.
    pub fn reopen(path: &Path, size: u64) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        file.set_len(size + FOOTER_SIZE)?;
        Ok(VhdFile { file, size })
    }

    /// Wraps an already open file of `size + 512` bytes (to resume writing).
    pub fn from_file(file: File, size: u64) -> Self {
        VhdFile { file, size }
    }

    /// Virtual size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes `data` at `offset` of the virtual disk.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > self.size)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "write of {} bytes at offset {offset} goes past the end of the {}-byte disk",
                    data.len(),
                    self.size
                ),
            ));
        }
        self.file.write_all_at(data, offset)
    }

    /// Reads `len` bytes at `offset` of the virtual disk (a hole reads as
    /// zeros; past the end of the file is zeros too).
    pub fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.size)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("read of {len} bytes at offset {offset} goes past the end of the disk"),
            ));
        }
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            match self.file.read_at(&mut buf[done..], offset + done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        Ok(buf)
    }

    /// Writes the footer and syncs the file.
    pub fn finish(self, unix_time: u64, unique_id: [u8; 16]) -> std::io::Result<()> {
        self.file
            .write_all_at(&footer(self.size, unix_time, unique_id), self.size)?;
        self.file.sync_all()
    }
}

/// Restores one disk of a repository restore point into a fixed VHD at
/// `path`: every chunk's SHA-256 is checked before it is written, zeros are
/// not written (the file is sparse), the disk digest is checked at the end,
/// and only then is the footer written. The virtual size is the disk's size
/// rounded up to a whole MiB. Returns the verified disk digest.
///
/// The VHD is written as `<path>.partial` (created anew, never through a
/// symbolic link) and renamed to `path` only once its footer is written and
/// synced: `path` then replaces whatever was there (a symbolic link there
/// is replaced, not followed); a failed restore removes the partial file
/// and leaves `path` as it was.
pub fn restore_disk_to_vhd(
    repo: &crate::repo::LocalRepository,
    manifest: &crate::repo::Manifest,
    disk: &str,
    path: &Path,
) -> Result<String> {
    let d = manifest
        .disks
        .iter()
        .find(|d| d.name == disk)
        .ok_or_else(|| {
            Error::Repository(format!(
                "restore point '{}' has no disk '{disk}'",
                manifest.restore_point.id
            ))
        })?;
    let size = d.size_bytes.div_ceil(SIZE_ALIGNMENT) * SIZE_ALIGNMENT;
    let partial = partial_path(path);
    // A partial file is never a finished VHD: one left by a killed restore is
    // replaced (remove_file removes a symbolic link, not its target).
    if std::fs::symlink_metadata(&partial).is_ok() {
        std::fs::remove_file(&partial).map_err(|e| Error::Invalid {
            path: partial.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let vhd = VhdFile::create(&partial, size)?;
    let r = write_verified(repo, d, disk, path, vhd, size);
    match r {
        Ok(digest) => std::fs::rename(&partial, path)
            .map(|_| digest)
            .map_err(|e| Error::Invalid {
                path: path.display().to_string(),
                message: format!("cannot rename the finished VHD into place: {e}"),
            }),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// `<path>.partial`: where a VHD is written until it is finished.
pub fn partial_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn write_verified(
    repo: &crate::repo::LocalRepository,
    d: &crate::repo::DiskManifest,
    disk: &str,
    path: &Path,
    vhd: VhdFile,
    size: u64,
) -> Result<String> {
    let io = |offset: u64, e: std::io::Error| Error::Integrity {
        disk: disk.to_string(),
        offset,
        message: format!("write to {} failed: {e}", path.display()),
    };
    // Chunks are independent: read, verify and write them on every core.
    // The first error (by offset) wins, and nothing after it matters: no
    // footer is written for a disk that failed.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let errors: Vec<Error> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(c) = d.chunks.get(i) else {
                            return Ok(());
                        };
                        if failed.load(std::sync::atomic::Ordering::Relaxed) {
                            return Ok(());
                        }
                        let r = repo.read_chunk(disk, c).and_then(|data| {
                            vhd.write_at(c.offset, &data).map_err(|e| io(c.offset, e))
                        });
                        if let Err(e) = r {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::Repository("a worker thread panicked".into())))
                    .err()
            })
            .collect()
    });
    if let Some(e) = errors.into_iter().min_by_key(|e| match e {
        Error::Integrity { offset, .. } => *offset,
        _ => u64::MAX,
    }) {
        return Err(e);
    }
    let digest = crate::repo::disk_digest(&d.chunks);
    if digest != d.digest {
        return Err(Error::Integrity {
            disk: disk.to_string(),
            offset: 0,
            message: "the disk digest does not match".into(),
        });
    }
    let mut id = [0u8; 16];
    if let Ok(raw) = hex::decode(&digest[..32]) {
        id.copy_from_slice(&raw);
    }
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    vhd.finish(time, id).map_err(|e| io(size, e))?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trips_and_checksum_detects_a_flip() {
        let f = footer(64 << 20, VHD_EPOCH + 10, [7; 16]);
        let info = parse_footer(&f).unwrap();
        assert_eq!(info.size, 64 << 20);
        assert_eq!(info.disk_type, 2);
        let mut g = f;
        g[100] ^= 1;
        assert!(
            parse_footer(&g)
                .unwrap_err()
                .to_string()
                .contains("checksum")
        );
    }

    #[test]
    fn geometry_follows_the_spec() {
        // 64 MiB: 131072 sectors -> 17 sectors per track, 8 heads, 963
        // cylinders (qemu rounds up to 964 and grows the image instead).
        assert_eq!(geometry(64 << 20), (963, 8, 17));
        // Very large disks saturate at 65535/16/255.
        assert_eq!(geometry(4 << 40), (65535, 16, 255));
    }

    #[test]
    fn create_neither_truncates_an_existing_file_nor_follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"keep me").unwrap();
        let link = dir.path().join("l.vhd");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(VhdFile::create(&link, 1 << 20).is_err());
        assert!(VhdFile::create(&outside, 1 << 20).is_err());
        assert!(VhdFile::reopen(&link, 1 << 20).is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
    }

    #[test]
    fn refuses_unaligned_sizes_and_writes_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        assert!(VhdFile::create(&dir.path().join("a.vhd"), 1000).is_err());
        let v = VhdFile::create(&dir.path().join("b.vhd"), 1 << 20).unwrap();
        assert!(v.write_at((1 << 20) - 10, &[1; 20]).is_err());
    }
}
