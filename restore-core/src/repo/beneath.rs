//! Opening and creating files beneath a directory without following
//! symbolic links: every component is opened relative to its parent with
//! `O_NOFOLLOW` (directories also with `O_DIRECTORY`), the last one with
//! `O_NONBLOCK` so that a FIFO does not block the open, and its type is
//! checked on the opened descriptor (no check-then-open race).

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
