//! Disks written to page blobs: a blob in a container (`PageBlobSink`) or a
//! managed disk's upload SAS URL (`PageBlobWriter::open_url`).
//!
//! What goes over the wire, and what does not:
//! - each chunk in 512-byte aligned Put Page calls of at most 4 MiB;
//! - all-zero pieces are never sent; they are *cleared* only where the
//!   destination already holds data (Get Page Ranges at open);
//! - on a rerun over an existing blob, a chunk is skipped when the blob
//!   already holds it: known from the state file this writer leaves beside
//!   a blob in a container (valid only while the blob's ETag is the one it
//!   recorded), otherwise by reading the range back and comparing;
//! - at the end, ranges that held data and are not part of the disk are
//!   cleared, then the fixed-VHD footer goes in the last page.
//!
//! Concurrency comes from the executor (several chunks of a disk in flight);
//! retries too (every call here is idempotent).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::storage::{self, BlobClient, MAX_PUT_PAGE, PAGE, StorageAuth};
use crate::exec::{CallError, CallErrorKind, CallResult, DiskSink, DiskWriter};
use crate::vhd::{FOOTER_SIZE, SIZE_ALIGNMENT};

/// What a writer sent, skipped and cleared.
#[derive(Debug, Default, Serialize)]
pub struct WriteStats {
    /// Bytes sent with Put Page (update), the footer included.
    pub bytes_put: AtomicU64,
    /// Put Page (update) calls.
    pub puts: AtomicU64,
    /// Bytes cleared (Put Page, clear).
    pub bytes_cleared: AtomicU64,
    /// Bytes not sent because the blob already held them.
    pub bytes_unchanged: AtomicU64,
    /// All-zero bytes not sent (nothing to clear there).
    pub bytes_zero_skipped: AtomicU64,
    /// Bytes read back to compare (reruns without a valid state file).
    pub bytes_read_back: AtomicU64,
}

impl WriteStats {
    /// A plain copy of the counters.
    pub fn snapshot(&self) -> WriteStatsSnapshot {
        WriteStatsSnapshot {
            bytes_put: self.bytes_put.load(Ordering::Relaxed),
            puts: self.puts.load(Ordering::Relaxed),
            bytes_cleared: self.bytes_cleared.load(Ordering::Relaxed),
            bytes_unchanged: self.bytes_unchanged.load(Ordering::Relaxed),
            bytes_zero_skipped: self.bytes_zero_skipped.load(Ordering::Relaxed),
            bytes_read_back: self.bytes_read_back.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of [`WriteStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteStatsSnapshot {
    /// Bytes sent with Put Page (update), the footer included.
    pub bytes_put: u64,
    /// Put Page (update) calls.
    pub puts: u64,
    /// Bytes cleared.
    pub bytes_cleared: u64,
    /// Bytes the blob already held.
    pub bytes_unchanged: u64,
    /// All-zero bytes not sent.
    pub bytes_zero_skipped: u64,
    /// Bytes read back to compare.
    pub bytes_read_back: u64,
}

const STATE_FORMAT: &str = "vmrestore-pageblob-state/1";

/// The state file beside a blob: what it holds, valid for one ETag.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    format: String,
    etag: String,
    size_bytes: u64,
    digest: String,
    /// `(offset, length, sha256)` of every chunk with data.
    chunks: Vec<(u64, u64, String)>,
}

/// Writes one disk to one page blob.
pub struct PageBlobWriter {
    blob: BlobClient,
    state_blob: Option<BlobClient>,
    size: u64,
    /// Ranges `[start, end)` that held data when the writer opened.
    existing: Vec<(u64, u64)>,
    /// Chunks the blob holds, from a state file matching its ETag.
    known: Option<HashMap<u64, (u64, String)>>,
    /// Chunks of this disk handled so far: offset → (length, sha256).
    done: Mutex<BTreeMap<u64, (u64, String)>>,
    stats: Arc<WriteStats>,
}

impl std::fmt::Debug for PageBlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBlobWriter")
            .field("blob", &self.blob)
            .field("size", &self.size)
            .finish()
    }
}

impl PageBlobWriter {
    /// Opens (creating or resizing when needed) the page blob `blob` for a
    /// disk of `size` bytes (a whole number of MiB; the blob is 512 bytes
    /// longer, for the footer). `state_blob` is where the writer keeps what
    /// the blob holds, for fast reruns (`None` for managed-disk URLs).
    pub async fn open(
        blob: BlobClient,
        state_blob: Option<BlobClient>,
        size: u64,
        create: bool,
        stats: Arc<WriteStats>,
    ) -> CallResult<Self> {
        let op = format!("open page blob {}", blob.url());
        if size == 0 || !size.is_multiple_of(SIZE_ALIGNMENT) {
            return Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("size {size} is not a whole number of MiB"),
            ));
        }
        let length = size + FOOTER_SIZE;
        let props = blob.properties().await?;
        let mut existing = Vec::new();
        let mut known = None;
        match props {
            None if create => blob.create_page_blob(length).await?,
            None => {
                return Err(CallError::new(
                    CallErrorKind::NotFound,
                    op,
                    "the blob does not exist",
                ));
            }
            Some(p) => {
                if !p.blob_type.is_empty() && p.blob_type != "PageBlob" {
                    return Err(CallError::new(
                        CallErrorKind::Invalid,
                        op,
                        format!("the blob is a {}, not a page blob", p.blob_type),
                    ));
                }
                let mut etag = p.etag.clone();
                if p.length != length {
                    blob.resize(length).await?;
                    etag.clear();
                }
                existing = blob.page_ranges().await?;
                if let (Some(sb), false) = (&state_blob, etag.is_empty())
                    && let Some(bytes) = sb.get().await?
                    && let Ok(st) = serde_json::from_slice::<State>(&bytes)
                    && st.format == STATE_FORMAT
                    && st.etag == etag
                    && st.size_bytes == size
                {
                    known = Some(st.chunks.into_iter().map(|(o, l, s)| (o, (l, s))).collect());
                }
            }
        }
        tracing::debug!(blob = %blob.url(), ranges = existing.len(), known = known.is_some(), "page blob opened");
        Ok(PageBlobWriter {
            blob,
            state_blob,
            size,
            existing,
            known,
            done: Mutex::new(BTreeMap::new()),
            stats,
        })
    }

    /// Opens a managed disk's upload URL (from `beginGetAccess`): the blob
    /// exists; the SAS is in the URL.
    pub async fn open_url(
        http: reqwest::Client,
        sas_url: &str,
        size: u64,
        stats: Arc<WriteStats>,
    ) -> CallResult<Self> {
        let blob = BlobClient::new(http, sas_url, StorageAuth::Sas(String::new()))?;
        Self::open(blob, None, size, false, stats).await
    }

    /// What this writer has sent so far.
    pub fn stats(&self) -> WriteStatsSnapshot {
        self.stats.snapshot()
    }

    fn overlaps_existing(&self, start: u64, end: u64) -> bool {
        self.existing.iter().any(|&(s, e)| s < end && start < e)
    }

    async fn write_piece(&self, offset: u64, piece: Bytes) -> CallResult<()> {
        let len = piece.len() as u64;
        let end = offset + len;
        if piece.iter().all(|b| *b == 0) {
            if self.overlaps_existing(offset, end) {
                self.blob.clear_pages(offset, len).await?;
                self.stats.bytes_cleared.fetch_add(len, Ordering::Relaxed);
            } else {
                self.stats
                    .bytes_zero_skipped
                    .fetch_add(len, Ordering::Relaxed);
            }
            return Ok(());
        }
        if self.known.is_none() && self.overlaps_existing(offset, end) {
            let old = self.blob.read_range(offset, len).await?;
            self.stats.bytes_read_back.fetch_add(len, Ordering::Relaxed);
            if old == piece {
                self.stats.bytes_unchanged.fetch_add(len, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.blob.put_page(offset, piece).await?;
        self.stats.bytes_put.fetch_add(len, Ordering::Relaxed);
        self.stats.puts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn write(&self, offset: u64, data: Bytes, sha256: Option<&str>) -> CallResult<()> {
        let len = data.len() as u64;
        let op = format!("write {len} bytes at {offset} of {}", self.blob.url());
        if !offset.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
            return Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                "offset and length must be multiples of 512",
            ));
        }
        if offset + len > self.size {
            return Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("past the end of the {}-byte disk", self.size),
            ));
        }
        let sha = sha256.map(str::to_string).unwrap_or_default();
        let unchanged = match (&self.known, sha256) {
            (Some(k), Some(s)) => k.get(&offset).is_some_and(|(l, d)| *l == len && d == s),
            _ => false,
        };
        if unchanged {
            self.stats.bytes_unchanged.fetch_add(len, Ordering::Relaxed);
        } else {
            let mut at = 0u64;
            while at < len {
                let n = (len - at).min(MAX_PUT_PAGE);
                self.write_piece(offset + at, data.slice(at as usize..(at + n) as usize))
                    .await?;
                at += n;
            }
        }
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(offset, (len, sha));
        Ok(())
    }
}

#[async_trait]
impl DiskWriter for PageBlobWriter {
    async fn write_at(&self, offset: u64, data: Bytes) -> CallResult<()> {
        self.write(offset, data, None).await
    }

    async fn write_chunk(&self, offset: u64, data: Bytes, sha256: &str) -> CallResult<()> {
        self.write(offset, data, Some(sha256)).await
    }

    async fn holds(&self, offset: u64, length: u64, sha256: &str) -> bool {
        let held = self
            .known
            .as_ref()
            .and_then(|k| k.get(&offset))
            .is_some_and(|(l, s)| *l == length && s == sha256);
        if held {
            self.stats
                .bytes_unchanged
                .fetch_add(length, Ordering::Relaxed);
            self.done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(offset, (length, sha256.to_string()));
        }
        held
    }

    async fn verify_held(&self, offset: u64, length: u64, sha256: &str) -> bool {
        // The state file matched to the blob's ETag is a proof; else the
        // bytes are read back.
        if self.holds(offset, length, sha256).await {
            return true;
        }
        let held = offset.checked_add(length).is_some_and(|e| e <= self.size)
            && match self.blob.read_range(offset, length).await {
                Ok(data) => crate::exec::digest_matches(&data, sha256),
                Err(_) => false,
            };
        if held {
            self.done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(offset, (length, sha256.to_string()));
        }
        held
    }

    async fn finish(&self, digest: &str) -> CallResult<()> {
        let done: Vec<(u64, u64, String)> = self
            .done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(o, (l, s))| (*o, *l, s.clone()))
            .collect();
        // Data the blob held outside this disk's chunks goes.
        let covered: Vec<(u64, u64)> = done.iter().map(|(o, l, _)| (*o, o + l)).collect();
        for (s, e) in subtract(&self.existing, &covered, self.size) {
            self.blob.clear_pages(s, e - s).await?;
            self.stats.bytes_cleared.fetch_add(e - s, Ordering::Relaxed);
        }
        let footer = crate::vhd::footer(
            self.size,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            unique_id(digest),
        );
        self.blob
            .put_page(self.size, Bytes::copy_from_slice(&footer))
            .await?;
        self.stats
            .bytes_put
            .fetch_add(FOOTER_SIZE, Ordering::Relaxed);
        self.stats.puts.fetch_add(1, Ordering::Relaxed);
        if let Some(sb) = &self.state_blob {
            let etag = self
                .blob
                .properties()
                .await?
                .map(|p| p.etag)
                .unwrap_or_default();
            let st = State {
                format: STATE_FORMAT.into(),
                etag,
                size_bytes: self.size,
                digest: digest.to_string(),
                chunks: done.into_iter().filter(|(_, _, s)| !s.is_empty()).collect(),
            };
            let json = serde_json::to_vec(&st).unwrap_or_default();
            sb.put_block_blob(Bytes::from(json)).await?;
        }
        Ok(())
    }
}

/// A stable unique ID for the footer, from the disk digest.
fn unique_id(digest: &str) -> [u8; 16] {
    let mut id = [0u8; 16];
    if let Ok(b) = hex::decode(digest) {
        for (i, x) in b.iter().take(16).enumerate() {
            id[i] = *x;
        }
    }
    id
}

/// `ranges` minus `covered`, both `[start, end)`, limited to `[0, limit)`.
fn subtract(ranges: &[(u64, u64)], covered: &[(u64, u64)], limit: u64) -> Vec<(u64, u64)> {
    let mut cov = covered.to_vec();
    cov.sort_unstable();
    let mut out = Vec::new();
    for &(s, e) in ranges {
        let e = e.min(limit);
        let mut at = s;
        for &(cs, ce) in &cov {
            if ce <= at || cs >= e {
                continue;
            }
            if cs > at {
                out.push((at, cs));
            }
            at = at.max(ce);
            if at >= e {
                break;
            }
        }
        if at < e {
            out.push((at, e));
        }
    }
    out
}

/// Disks as page blobs `<disk>.vhd` in a container, each with its state
/// file `<disk>.vhd.vmrestore-state.json`; artifacts (template, report) as
/// block blobs beside them.
pub struct PageBlobSink {
    http: reqwest::Client,
    container_url: String,
    auth: StorageAuth,
    stats: Mutex<HashMap<String, Arc<WriteStats>>>,
    container_ready: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for PageBlobSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBlobSink")
            .field("container", &storage::redact_url(&self.container_url))
            .field("auth", &self.auth)
            .finish()
    }
}

impl PageBlobSink {
    /// A sink into the container at `container_url` (e.g.
    /// `http://127.0.0.1:10000/devstoreaccount1/restores`).
    pub fn new(container_url: &str, auth: StorageAuth) -> CallResult<Self> {
        Ok(PageBlobSink {
            http: storage::http_client()?,
            container_url: container_url.trim_end_matches('/').to_string(),
            auth,
            stats: Mutex::new(HashMap::new()),
            container_ready: tokio::sync::OnceCell::new(),
        })
    }

    fn blob(&self, op: &str, name: &str) -> CallResult<BlobClient> {
        if name.is_empty()
            || name.contains('/')
            || name.contains('\\')
            || name.contains("..")
            || name.contains('?')
            || name.contains('#')
        {
            return Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("'{name}' is not a plain blob name"),
            ));
        }
        let (base, q) = match self.container_url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.container_url.as_str(), None),
        };
        let url = match q {
            Some(q) => format!("{base}/{name}?{q}"),
            None => format!("{base}/{name}"),
        };
        BlobClient::new(self.http.clone(), &url, self.auth.clone())
    }

    async fn ensure_container(&self, probe: &BlobClient) -> CallResult<()> {
        if matches!(self.auth, StorageAuth::Sas(_)) {
            return Ok(()); // a SAS may not allow it; the container must exist
        }
        self.container_ready
            .get_or_try_init(|| async { probe.create_container().await })
            .await
            .map(|_| ())
    }

    /// What was sent for `disk` (`None` before it was opened).
    pub fn stats(&self, disk: &str) -> Option<WriteStatsSnapshot> {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(disk)
            .map(|s| s.snapshot())
    }

    /// A client of the blob of `disk` (to read it back).
    pub fn disk_blob(&self, disk: &str) -> CallResult<BlobClient> {
        self.blob("disk blob", &format!("{disk}.vhd"))
    }
}

#[async_trait]
impl DiskSink for PageBlobSink {
    async fn open(
        &self,
        disk: &str,
        size_bytes: u64,
        _resume: bool,
    ) -> CallResult<Box<dyn DiskWriter>> {
        let op = format!("open disk '{disk}'");
        let blob = self.blob(&op, &format!("{disk}.vhd"))?;
        let state = self.blob(&op, &format!("{disk}.vhd.vmrestore-state.json"))?;
        self.ensure_container(&blob).await?;
        let stats = Arc::new(WriteStats::default());
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(disk.to_string(), stats.clone());
        let w = PageBlobWriter::open(blob, Some(state), size_bytes, true, stats).await?;
        Ok(Box::new(w))
    }

    async fn write_artifact(&self, name: &str, bytes: Bytes) -> CallResult<()> {
        let blob = self.blob(&format!("write '{name}'"), name)?;
        self.ensure_container(&blob).await?;
        blob.put_block_blob(bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_leaves_what_is_not_covered() {
        assert_eq!(
            subtract(&[(0, 100)], &[(10, 20), (50, 60)], 1000),
            vec![(0, 10), (20, 50), (60, 100)]
        );
        assert_eq!(subtract(&[(0, 100)], &[(0, 100)], 1000), vec![]);
        assert_eq!(subtract(&[(0, 100)], &[], 50), vec![(0, 50)]);
        assert_eq!(
            subtract(&[(0, 10), (20, 30)], &[(5, 25)], 100),
            vec![(0, 5), (25, 30)]
        );
    }
}
