//! Disk contents: the page writer and reading back what was written.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::*;

impl SimCloud {
    /// A disk's bytes as written (zeros where nothing was), `size` long.
    pub fn disk_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        let id = st.disk_id(name)?;
        let d = st.disks.get(&id)?;
        let mut out = vec![0u8; d.size as usize];
        if let Some(dir) = &self.dir {
            let mut f = match std::fs::File::open(Self::image_path(dir, &id)) {
                Ok(f) => f,
                // Nothing written yet.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(out),
                Err(_) => return None,
            };
            let len = f.metadata().ok()?.len().min(d.size) as usize;
            f.read_exact(&mut out[..len]).ok()?;
            return Some(out);
        }
        for (off, data) in &d.pages {
            let end = (*off as usize + data.len()).min(out.len());
            out[*off as usize..end].copy_from_slice(&data[..end - *off as usize]);
        }
        Some(out)
    }

    /// `len` bytes at `offset` of disk `id` as written (None when the
    /// bytes are not kept).
    pub(super) fn read_disk(&self, id: &str, offset: u64, len: usize) -> Option<Vec<u8>> {
        if !self.cfg.keep_pages {
            return None;
        }
        let st = self.lock();
        let d = st.disks.get(id)?;
        let end = offset.checked_add(len as u64).filter(|e| *e <= d.size)?;
        let mut out = vec![0u8; len];
        if let Some(dir) = &self.dir {
            use std::os::unix::fs::FileExt;
            let f = match std::fs::File::open(Self::image_path(dir, id)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(out),
                Err(_) => return None,
            };
            let mut done = 0;
            while done < len {
                match f.read_at(&mut out[done..], offset + done as u64).ok()? {
                    0 => break,
                    n => done += n,
                }
            }
            return Some(out);
        }
        for (off, data) in d.pages.range(..end) {
            let (p0, p1) = (*off, *off + data.len() as u64);
            if p1 <= offset {
                continue;
            }
            let (a, b) = (p0.max(offset), p1.min(end));
            out[(a - offset) as usize..(b - offset) as usize]
                .copy_from_slice(&data[(a - p0) as usize..(b - p0) as usize]);
        }
        Some(out)
    }
}

pub(super) struct SimDiskWriter {
    pub(super) cloud: SimCloud,
    pub(super) id: String,
    pub(super) name: String,
}

#[async_trait]
impl DiskWriter for SimDiskWriter {
    async fn verify_held(&self, offset: u64, length: u64, sha256: &str) -> bool {
        usize::try_from(length)
            .ok()
            .and_then(|len| self.cloud.read_disk(&self.id, offset, len))
            .is_some_and(|data| digest_matches(&data, sha256))
    }

    async fn write_at(&self, offset: u64, data: Bytes) -> CallResult<()> {
        let op = format!("put page '{}' at {offset}", self.name);
        if !offset.is_multiple_of(512) || !data.len().is_multiple_of(512) {
            return Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                "pages must be 512-byte aligned",
            ));
        }
        let mut pos = 0usize;
        // Azure takes at most 4 MiB per Put Page.
        while pos < data.len() {
            let len = (data.len() - pos).min(MAX_PAGE_WRITE);
            let piece = data.slice(pos..pos + len);
            let at = offset + pos as u64;
            self.cloud.delay(self.cloud.cfg.write_latency).await;
            if let Some(rate) = self.cloud.cfg.write_rate {
                let wait = {
                    let mut st = self.cloud.lock();
                    let now = tokio::time::Instant::now();
                    let free = st.write_free_at.map_or(now, |t| t.max(now));
                    let next = free + Duration::from_secs_f64(len as f64 / rate as f64);
                    st.write_free_at = Some(next);
                    free.saturating_duration_since(now)
                };
                self.cloud.delay(wait).await;
            }
            if let Some(e) = self.cloud.fault(
                "write",
                &format!("{}@{at}", self.id),
                self.cloud.cfg.faults.data,
            ) {
                return Err(e);
            }
            let mut st = self.cloud.lock();
            let d = st.disks.get_mut(&self.id).ok_or_else(|| {
                CallError::new(CallErrorKind::NotFound, op.clone(), "the disk was deleted")
            })?;
            if !d.open {
                return Err(CallError::new(
                    CallErrorKind::Conflict,
                    op.clone(),
                    "write access is not open (beginGetAccess first)",
                ));
            }
            if at + len as u64 > d.size {
                return Err(CallError::new(
                    CallErrorKind::Invalid,
                    op.clone(),
                    format!("write past the end of the {}-byte disk", d.size),
                ));
            }
            d.bytes_written += len as u64;
            d.writes += 1;
            match &self.cloud.dir {
                Some(dir) => {
                    let path = SimCloud::image_path(dir, &self.id);
                    std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                        .and_then(|mut f| {
                            f.seek(SeekFrom::Start(at))?;
                            f.write_all(&piece)
                        })
                        .map_err(|e| {
                            CallError::new(CallErrorKind::Fatal, op.clone(), e.to_string())
                        })?;
                    drop(st);
                    self.cloud.append_log(
                        "writes.log",
                        &WriteLine {
                            disk: self.id.clone(),
                            offset: at,
                            len: len as u64,
                        },
                    )?;
                }
                None if self.cloud.cfg.keep_pages => {
                    d.pages.insert(at, piece);
                }
                None => {}
            }
            pos += len;
        }
        self.cloud.delay(self.cloud.cfg.write_ack_latency).await;
        Ok(())
    }

    async fn finish(&self, _digest: &str) -> CallResult<()> {
        let mut st = self.cloud.lock();
        let d = st.disks.get_mut(&self.id).ok_or_else(|| {
            CallError::new(
                CallErrorKind::NotFound,
                format!("finish '{}'", self.name),
                "the disk was deleted",
            )
        })?;
        d.finished = true;
        self.cloud.saved(&format!("finish '{}'", self.name), &st)
    }
}
