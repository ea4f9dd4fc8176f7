//! The local "restore disks" destination: each disk as a fixed VHD file
//! (sparse, footer last), an ARM template that creates the VM from them, and
//! the report.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

use crate::cloud::*;
use crate::vhd::{SIZE_ALIGNMENT, VhdFile};

/// Writes disks as fixed VHDs and artifacts as files into a directory.
///
/// No file is written through a symbolic link: VHDs are created with
/// `O_CREAT | O_EXCL | O_NOFOLLOW` as `<disk>.vhd.partial` and renamed to
/// `<disk>.vhd` only once the footer is written and synced (a failed run
/// leaves only `.partial` files, never a complete-looking VHD); artifacts go
/// to a new temporary file in the same directory, then are renamed into
/// place. An existing `<disk>.vhd`, or an existing artifact with other
/// content (a template), is not replaced unless [`LocalVhdSink::overwrite`]
/// is set; the report (`*.report.json`) is always replaced. Resuming (the
/// journal recorded chunks of the disk) reopens the `.partial` file, or the
/// finished VHD when the earlier run had finished it.
#[derive(Debug, Clone)]
pub struct LocalVhdSink {
    dir: PathBuf,
    overwrite: bool,
}

impl LocalVhdSink {
    /// A sink writing into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(LocalVhdSink {
            dir,
            overwrite: false,
        })
    }

    /// Whether existing VHDs and artifacts in the directory may be replaced
    /// (default: no, a run that finds one fails before writing it).
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Path of the VHD of `disk`.
    pub fn vhd_path(&self, disk: &str) -> PathBuf {
        self.dir.join(format!("{disk}.vhd"))
    }

    /// Path of the VHD of `disk` while it is being written.
    pub fn partial_path(&self, disk: &str) -> PathBuf {
        self.dir.join(format!("{disk}.vhd.partial"))
    }

    fn safe(&self, op: &str, name: &str) -> CallResult<PathBuf> {
        let ok = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        if ok {
            Ok(self.dir.join(name))
        } else {
            Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("'{name}' is not a safe file name"),
            ))
        }
    }
}

fn io(op: &str, e: impl std::fmt::Display) -> CallError {
    CallError::new(CallErrorKind::Fatal, op, e.to_string())
}

#[async_trait]
impl DiskSink for LocalVhdSink {
    async fn open(
        &self,
        disk: &str,
        size_bytes: u64,
        resume: bool,
    ) -> CallResult<Box<dyn DiskWriter>> {
        let op = format!("open VHD '{disk}'");
        let path = self.safe(&op, &format!("{disk}.vhd"))?;
        if size_bytes == 0 || !size_bytes.is_multiple_of(SIZE_ALIGNMENT) {
            return Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("size {size_bytes} is not a whole number of MiB"),
            ));
        }
        let partial = self.partial_path(disk);
        let (p, fin, opc, overwrite) = (partial.clone(), path.clone(), op.clone(), self.overwrite);
        let file = tokio::task::spawn_blocking(move || {
            let exists = |p: &PathBuf| std::fs::symlink_metadata(p).is_ok();
            let conflict = |m: String| CallError::new(CallErrorKind::Conflict, &opc, m);
            if resume {
                // The earlier run of this plan finished the disk but was
                // stopped before recording it: take the VHD up again.
                if !exists(&p) && exists(&fin) {
                    std::fs::rename(&fin, &p).map_err(|e| io(&opc, e))?;
                }
                if exists(&p) {
                    return VhdFile::reopen(&p, size_bytes).map_err(|e| io(&opc, e));
                }
            }
            if exists(&fin) {
                if !overwrite {
                    return Err(conflict(format!(
                        "{} already exists (set overwrite to replace it)",
                        fin.display()
                    )));
                }
                std::fs::remove_file(&fin).map_err(|e| io(&opc, e))?;
            }
            // A partial file is never a finished VHD: one left by a failed
            // run is replaced (remove_file removes a link, not its target).
            if exists(&p) {
                std::fs::remove_file(&p).map_err(|e| io(&opc, e))?;
            }
            VhdFile::create(&p, size_bytes).map_err(|e| io(&opc, e))
        })
        .await
        .map_err(|e| io(&op, e))??;
        Ok(Box::new(VhdWriter {
            file: Arc::new(std::sync::Mutex::new(Some(file))),
            name: disk.to_string(),
            partial,
            path,
            overwrite: self.overwrite,
        }))
    }

    async fn write_artifact(&self, name: &str, bytes: Bytes) -> CallResult<()> {
        let op = format!("write '{name}'");
        let path = self.safe(&op, name)?;
        let (dir, name, overwrite) = (self.dir.clone(), name.to_string(), self.overwrite);
        tokio::task::spawn_blocking(move || {
            // Reports are rewritten by every run; other artifacts (the
            // template) are kept unless they say the same or overwrite is set.
            if !overwrite && !name.ends_with(".report.json") {
                match std::fs::symlink_metadata(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Ok(m)
                        if m.is_file()
                            && m.len() == bytes.len() as u64
                            && crate::repo::beneath::open_file(&dir, &[&name]).is_ok_and(
                                |(f, _)| {
                                    let mut old = Vec::new();
                                    std::io::Read::read_to_end(
                                        &mut std::io::Read::take(f, bytes.len() as u64 + 1),
                                        &mut old,
                                    )
                                    .is_ok()
                                        && old == bytes
                                },
                            ) =>
                    {
                        return Ok(());
                    }
                    _ => {
                        return Err(CallError::new(
                            CallErrorKind::Conflict,
                            &op,
                            format!(
                                "{} already exists (set overwrite to replace it)",
                                path.display()
                            ),
                        ));
                    }
                }
            }
            crate::repo::beneath::write_file(&dir, &[], &name, &bytes).map_err(|e| io(&op, e))
        })
        .await
        .map_err(|e| io("write artifact", e))?
    }
}

struct VhdWriter {
    file: Arc<std::sync::Mutex<Option<VhdFile>>>,
    name: String,
    /// Where the VHD is written (`<disk>.vhd.partial`).
    partial: PathBuf,
    /// Its final name, once finished (`<disk>.vhd`).
    path: PathBuf,
    overwrite: bool,
}

#[async_trait]
impl DiskWriter for VhdWriter {
    async fn write_at(&self, offset: u64, data: Bytes) -> CallResult<()> {
        let op = format!("write VHD '{}' at {offset}", self.name);
        let f = self.file.clone();
        let opc = op.clone();
        tokio::task::spawn_blocking(move || {
            let guard = f.lock().unwrap_or_else(|e| e.into_inner());
            let v = guard.as_ref().ok_or_else(|| {
                CallError::new(CallErrorKind::Conflict, &opc, "the VHD is already finished")
            })?;
            // Zeros need not be written: the file is sparse.
            if data.iter().all(|b| *b == 0) {
                return Ok(());
            }
            v.write_at(offset, &data).map_err(|e| io(&opc, e))
        })
        .await
        .map_err(|e| io(&op, e))?
    }

    async fn verify_held(&self, offset: u64, length: u64, sha256: &str) -> bool {
        let f = self.file.clone();
        let sha = sha256.to_string();
        tokio::task::spawn_blocking(move || {
            let guard = f.lock().unwrap_or_else(|e| e.into_inner());
            let Some(v) = guard.as_ref() else {
                return false;
            };
            usize::try_from(length)
                .ok()
                .and_then(|len| v.read_at(offset, len).ok())
                .is_some_and(|data| crate::cloud::digest_matches(&data, &sha))
        })
        .await
        .unwrap_or(false)
    }

    async fn finish(&self, digest: &str) -> CallResult<()> {
        let op = format!("finish VHD '{}'", self.path.display());
        let f = self.file.clone();
        let mut id = [0u8; 16];
        if let Ok(raw) = hex::decode(digest.get(..32).unwrap_or_default()) {
            id.copy_from_slice(&raw);
        }
        let opc = op.clone();
        let (partial, path, overwrite) = (self.partial.clone(), self.path.clone(), self.overwrite);
        tokio::task::spawn_blocking(move || {
            let v = f.lock().unwrap_or_else(|e| e.into_inner()).take();
            match v {
                Some(v) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    // Footer written and synced, then the final name.
                    v.finish(now, id).map_err(|e| io(&opc, e))?;
                    publish(&partial, &path, overwrite).map_err(|e| io(&opc, e))
                }
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| io(&op, e))?
    }
}

/// Renames the finished `partial` to `path`. Without `overwrite` an
/// existing `path` (put there since the disk was opened) is not replaced:
/// a hard link fails if the name exists; where hard links are not
/// supported, the name is checked and then renamed. The directory is
/// synced so that the name survives a power loss.
fn publish(
    partial: &std::path::Path,
    path: &std::path::Path,
    overwrite: bool,
) -> std::io::Result<()> {
    if overwrite {
        std::fs::rename(partial, path)?;
    } else {
        match std::fs::hard_link(partial, path) {
            Ok(()) => std::fs::remove_file(partial)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "{} already exists (set overwrite to replace it); the disk is left as {}",
                        path.display(),
                        partial.display()
                    ),
                ));
            }
            Err(_) => {
                if std::fs::symlink_metadata(path).is_ok() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{} already exists", path.display()),
                    ));
                }
                std::fs::rename(partial, path)?;
            }
        }
    }
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An ARM template that creates the VM from the restored disks (uploaded
/// as managed disks), as Azure Backup's "restore disks" gives one: from the
/// plan's creates (`specs`, in plan order), the network and the VM with the
/// bodies and api-versions ArmCloud uses ([`crate::cloud::arm_bodies`]).
/// Fails for what no template can declare (a confidential VM).
pub fn arm_template(specs: &[ResourceSpec]) -> CallResult<Value> {
    crate::cloud::arm_bodies::template(specs)
}
