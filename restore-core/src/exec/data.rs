//! The data path: verifying the restore point, streaming verified chunks
//! into a disk's writer, proving what a journal says was written, and
//! finishing a disk against its digest.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::stream::StreamExt;

use super::retry::{Stop, retry};
use super::*;
use crate::error::Error;
use crate::plan::{DiskSource, Step};

impl Run<'_> {
    /// Calls `f` until it succeeds, fails for good, or the attempts run out.
    /// Reads a chunk, retrying what the repository reports as transient
    /// (its store unavailable: `Error::Cloud` with a transient kind) under
    /// the retry policy. Integrity errors and missing chunks are final.
    pub(super) async fn read_chunk(
        &self,
        repo: &dyn Repository,
        disk: &str,
        c: &crate::repo::ChunkRef,
    ) -> std::result::Result<Bytes, StepFailure> {
        let key = format!("read {disk}@{}", c.offset);
        let r = retry(
            &self.ex.opts.retry,
            &key,
            Some(&self.stop),
            || repo.read_chunk(disk, c),
            |a| tracing::debug!(disk, offset = c.offset, attempt = a.attempt, error = %a.error, "chunk read retried"),
        )
        .await;
        match r {
            Ok((b, _)) => Ok(b),
            Err(Stop::Failed(e, _)) => Err(StepFailure::from_error(e)),
            Err(Stop::Cancelled) => Err(StepFailure::cancelled()),
        }
    }

    /// Every chunk the restore needs is present with its length. When the
    /// plan deletes an existing VM (in place), every chunk is also read and
    /// its SHA-256 checked first: the data must be known good before
    /// anything is deleted.
    pub(super) async fn verify(
        &self,
        disks: &[DiskSource],
        deep: bool,
    ) -> std::result::Result<(), StepFailure> {
        for d in disks {
            let (src, m, _) = self.source(d, 0)?;
            if deep {
                // Each read owns what it uses: the run's future stays `Send`
                // for any lifetime (it can be spawned).
                let mut reads = futures::stream::iter(m.chunks.clone())
                    .map(|c| {
                        let (repo, src) = (self.ex.repo.clone(), src.clone());
                        async move { repo.read_chunk(&src, &c).await }
                    })
                    .buffer_unordered(self.ex.opts.read_ahead.max(1));
                while let Some(r) = reads.next().await {
                    r.map_err(StepFailure::from_error)?;
                }
                continue;
            }
            for c in &m.chunks {
                if !self
                    .ex
                    .repo
                    .has_chunk(c)
                    .await
                    .map_err(StepFailure::from_error)?
                {
                    return Err(StepFailure::from_error(Error::Integrity {
                        disk: src.clone(),
                        offset: c.offset,
                        message: format!("chunk {} is missing or has the wrong length", c.sha256),
                    }));
                }
            }
        }
        Ok(())
    }

    pub(super) async fn writer(
        &self,
        s: &Step,
        d: &DiskSource,
        size_bytes: u64,
    ) -> std::result::Result<Arc<dyn DiskWriter>, StepFailure> {
        let d = Named {
            name: d.disk.clone(),
            size_bytes,
        };
        if let Some(w) = lock(&self.writers).get(&d.name) {
            return Ok(w.clone());
        }
        let w: Box<dyn DiskWriter> = match &self.ex.sink {
            Some(sink) => {
                let resume = lock(&self.written)
                    .get(&d.name)
                    .is_some_and(|c| !c.is_empty());
                self.retry_cloud(&s.id, &s.id, || sink.open(&d.name, d.size_bytes, resume))
                    .await?
            }
            None => {
                let key = format!("disk:{}", d.name);
                let r = lock(&self.resources).get(&key).cloned().ok_or_else(|| {
                    StepFailure::from_error(Error::Repository(format!(
                        "disk '{}' was not created",
                        d.name
                    )))
                })?;
                self.retry_cloud(&s.id, &s.id, || self.ex.cloud.open_disk(&r))
                    .await?
            }
        };
        let w: Arc<dyn DiskWriter> = Arc::from(w);
        lock(&self.writers).insert(d.name.clone(), w.clone());
        Ok(w)
    }

    /// The repository's data for a target disk: its name there and its chunks.
    pub(super) fn source(
        &self,
        d: &DiskSource,
        size_bytes: u64,
    ) -> std::result::Result<(String, &crate::repo::DiskManifest, Named), StepFailure> {
        let src = d.source.clone();
        let named = Named {
            name: d.disk.clone(),
            size_bytes,
        };
        match self.manifest.disks.iter().find(|m| m.name == src) {
            Some(m) => Ok((src, m, named)),
            None => Err(StepFailure::from_error(Error::Repository(format!(
                "no data for '{src}'"
            )))),
        }
    }

    /// Proves at the destination what a journal says an earlier run wrote
    /// (read back and hashed, or a destination-side proof); what is not
    /// proven is forgotten, counted and written again.
    async fn prove_journaled(
        &self,
        writer: &Arc<dyn DiskWriter>,
        m: &crate::repo::DiskManifest,
        name: &str,
    ) -> HashSet<u64> {
        let journaled: HashSet<u64> = lock(&self.written).get(name).cloned().unwrap_or_default();
        // What a journal says an earlier run wrote is proven at the
        // destination (read back and hashed, or a destination-side proof):
        // an emptied output directory, another directory or another blob
        // container holds none of it, and what is not proven is written
        // again. So `verified` always means the destination's bytes.
        let mut already: HashSet<u64> = HashSet::new();
        if journaled.is_empty() {
            return already;
        }
        // Owned chunks: the run's future stays `Send` for any lifetime.
        let carried: Vec<crate::repo::ChunkRef> = m
            .chunks
            .iter()
            .filter(|c| journaled.contains(&c.offset))
            .cloned()
            .collect();
        let mut proofs = futures::stream::iter(carried)
            .map(|c| {
                let writer = writer.clone();
                async move {
                    let ok = writer.verify_held(c.offset, c.length, &c.sha256).await;
                    (c.offset, ok)
                }
            })
            .buffer_unordered(self.ex.opts.read_ahead.max(1));
        while let Some((offset, ok)) = proofs.next().await {
            if ok {
                already.insert(offset);
            }
        }
        let unproven = journaled.len() - already.len();
        let mut written = lock(&self.written);
        let set = written.entry(name.to_string()).or_default();
        set.retain(|o| already.contains(o));
        drop(written);
        if unproven > 0 {
            tracing::warn!(disk = %name, unproven, "chunks the journal recorded are not at the destination: written again");
            lock(&self.rewritten).insert(name.to_string(), unproven as u64);
        }
        already
    }

    pub(super) async fn write_disk(
        &self,
        s: &Step,
        disk: &DiskSource,
        size_bytes: u64,
    ) -> std::result::Result<(), StepFailure> {
        let (src, m, d) = self.source(disk, size_bytes)?;
        let writer = self.writer(s, disk, size_bytes).await?;
        let already = self.prove_journaled(&writer, m, &d.name).await;
        let total = m.allocated();
        let mut done: u64 = m
            .chunks
            .iter()
            .filter(|c| already.contains(&c.offset))
            .map(|c| c.length)
            .sum();
        let resumed_chunks = m
            .chunks
            .iter()
            .filter(|c| already.contains(&c.offset))
            .count() as u64;
        let t0 = Instant::now();
        let (mut written, mut chunks, mut held) = (0u64, 0u64, 0u64);
        let todo: Vec<crate::repo::ChunkRef> = m
            .chunks
            .iter()
            .filter(|c| !already.contains(&c.offset))
            .cloned()
            .collect();
        let writes = futures::stream::iter(todo)
            .map(|c| {
                let (repo, src, writer) = (self.ex.repo.clone(), src.clone(), writer.clone());
                async move {
                    // A destination that already holds the chunk (a rerun
                    // over the same disk) spares reading it.
                    if writer.holds(c.offset, c.length, &c.sha256).await {
                        return (c, None);
                    }
                    let data = self.read_chunk(&*repo, &src, &c).await;
                    (c, Some(data))
                }
            })
            .buffered(self.ex.opts.read_ahead.max(1))
            .map(|(c, data)| {
                let writer = writer.clone();
                let name = d.name.clone();
                async move {
                    let Some(data) = data else {
                        return Ok::<_, StepFailure>((c, true));
                    };
                    let data = data?;
                    let key = format!("{name}@{}", c.offset);
                    self.retry_cloud(&key, &s.id, || {
                        writer.write_chunk(c.offset, data.clone(), &c.sha256)
                    })
                    .await?;
                    Ok::<_, StepFailure>((c, false))
                }
            })
            .buffer_unordered(self.ex.opts.write_concurrency.max(1));
        futures::pin_mut!(writes);
        while let Some(c) = writes.next().await {
            let (c, was_held) = c?;
            if let Some(j) = &self.journal {
                j.chunk(&d.name, c.offset)
                    .map_err(StepFailure::from_error)?;
            }
            lock(&self.written)
                .entry(d.name.clone())
                .or_default()
                .insert(c.offset);
            if was_held {
                held += 1;
            } else {
                written += c.length;
                chunks += 1;
            }
            done += c.length;
            let secs = t0.elapsed().as_secs_f64().max(1e-6);
            self.emit(Event::Bytes {
                disk: d.name.clone(),
                done,
                total,
                bytes_per_sec: (written as f64 / secs) as u64,
            });
        }
        self.record_disk(&d.name, &src, [written, chunks, held, resumed_chunks]);
        Ok(())
    }

    /// Adds a write's figures to the disk's report: bytes and chunks
    /// written, chunks the destination held, chunks resumed.
    fn record_disk(&self, name: &str, src: &str, [written, chunks, held, resumed]: [u64; 4]) {
        let mut disks = lock(&self.disks);
        let r = disks.entry(name.to_string()).or_insert_with(|| DiskReport {
            name: name.to_string(),
            source: src.to_string(),
            bytes_written: 0,
            chunks_written: 0,
            chunks_resumed: 0,
            chunks_held: 0,
            digest: None,
            verified: false,
        });
        r.bytes_written += written;
        r.chunks_written += chunks;
        r.chunks_held += held;
        r.chunks_resumed = resumed;
    }

    pub(super) async fn finalize_disk(
        &self,
        s: &Step,
        disk: &DiskSource,
        size_bytes: u64,
    ) -> std::result::Result<(), StepFailure> {
        let (src, m, d) = self.source(disk, size_bytes)?;
        // Every chunk was verified before it was written; the disk digest
        // over their digests, in order, must be the repository's.
        let written = lock(&self.written)
            .get(&d.name)
            .cloned()
            .unwrap_or_default();
        if let Some(missing) = m.chunks.iter().find(|c| !written.contains(&c.offset)) {
            return Err(StepFailure::from_error(Error::Integrity {
                disk: d.name.clone(),
                offset: missing.offset,
                message: "chunk was never written".into(),
            }));
        }
        let digest = crate::repo::disk_digest(&m.chunks);
        if digest != m.digest {
            return Err(StepFailure::from_error(Error::Integrity {
                disk: d.name.clone(),
                offset: 0,
                message: format!(
                    "disk digest {digest} does not match the repository's {}",
                    m.digest
                ),
            }));
        }
        let writer = self.writer(s, disk, size_bytes).await?;
        self.retry_cloud(&s.id, &s.id, || writer.finish(&digest))
            .await?;
        // End write access (with a sink, the cloud's disk got no data but
        // still has to leave the upload state before a VM can use it).
        let key = format!("disk:{}", d.name);
        let resource = lock(&self.resources).get(&key).cloned();
        if let Some(r) = resource {
            self.retry_cloud(&s.id, &s.id, || self.ex.cloud.close_disk(&r))
                .await?;
        }
        lock(&self.writers).remove(&d.name);
        let mut disks = lock(&self.disks);
        let r = disks.entry(d.name.clone()).or_insert_with(|| DiskReport {
            name: d.name.clone(),
            source: src.clone(),
            bytes_written: 0,
            chunks_written: 0,
            chunks_resumed: written.len() as u64,
            chunks_held: 0,
            digest: None,
            verified: false,
        });
        r.digest = Some(digest);
        r.verified = true;
        Ok(())
    }
}
