//! Uploads a raw disk image to a page blob as a fixed VHD, the way the
//! restore writes disks: all-zero chunks are never sent, chunks the blob
//! already holds (per its state file) are skipped, at most 4 MiB per Put
//! Page, several in flight, the footer last.
//!
//!     cargo run --release --example blob_upload -- \
//!         --image disk.raw --container http://127.0.0.1:10000/devstoreaccount1/disks \
//!         --blob disk0 [--account devstoreaccount1 --key KEY | --sas 'sv=...'] [--concurrency 8]
//!
//! `--ceiling` sends the same 4 MiB buffer over the whole blob instead (no
//! file, no hashing, no zero check): the most the service can take.
//!
//! The restore's own path: `--prepare --repo DIR --image FILE --id ID`
//! imports the image into a local repository (one disk, `disk0`); then
//! `--repo DIR --id ID --container URL --blob NAME` writes that disk the
//! way the executor does (chunks the blob holds are not even read; the
//! others are read, verified with SHA-256, and sent).
//! Prints one JSON line: bytes, seconds and what was sent.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use vmrestore::azure::storage::{BlobClient, EMULATOR_ACCOUNT, EMULATOR_KEY, http_client};
use vmrestore::azure::{PageBlobSink, StorageAuth};
use vmrestore::exec::DiskSink;
use vmrestore::repo::{ChunkRef, disk_digest};

const CHUNK: usize = 4 << 20;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let container = arg(&args, "--container").ok_or("--container URL is required")?;
    let blob = arg(&args, "--blob").ok_or("--blob NAME is required")?;
    let concurrency: usize = arg(&args, "--concurrency")
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(8);
    let auth = match arg(&args, "--sas") {
        Some(s) => StorageAuth::Sas(s),
        None => StorageAuth::SharedKey {
            account: arg(&args, "--account").unwrap_or_else(|| EMULATOR_ACCOUNT.into()),
            key: arg(&args, "--key").unwrap_or_else(|| EMULATOR_KEY.into()),
        },
    };
    let t0 = Instant::now();
    if args.iter().any(|a| a == "--ceiling") {
        let size: u64 = arg(&args, "--size").ok_or("--size BYTES")?.parse()?;
        let client = BlobClient::new(http_client()?, &format!("{container}/{blob}"), auth)?;
        client.create_container().await?;
        client.create_page_blob(size).await?;
        let buf = Bytes::from(vec![0x5au8; CHUNK]);
        let results: Vec<_> = futures::stream::iter((0..size).step_by(CHUNK))
            .map(|o| {
                let (c, b) = (client.clone(), buf.clone());
                async move {
                    c.put_page(o, b.slice(..(size - o).min(CHUNK as u64) as usize))
                        .await
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for r in results {
            r?;
        }
        println!(
            "{{\"mode\": \"ceiling\", \"bytes\": {size}, \"seconds\": {:.3}}}",
            t0.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if let Some(dir) = arg(&args, "--repo") {
        let id = arg(&args, "--id").ok_or("--id ID is required")?;
        if args.iter().any(|a| a == "--prepare") {
            let image = arg(&args, "--image").ok_or("--image FILE is required")?;
            let size = std::fs::metadata(&image)?.len();
            let rp: vmrestore::model::RestorePoint = vmrestore::model::from_json(&format!(
                r#"{{"id": "{id}", "time": "2026-11-21T00:00:00Z", "backup": {{"kind": "vmware"}},
                    "vm": {{"name": "bench", "subscription_id": "11111111-1111-1111-1111-111111111111",
                            "region": "westeurope", "os": {{"family": "linux"}}, "size": "Standard_D2s_v5",
                            "disks": [{{"name": "disk0", "role": "os", "size_bytes": {size}}}]}}}}"#
            ))?;
            let repo = vmrestore::repo::LocalRepository::create(&dir)?;
            repo.import_raw(
                &rp,
                &[("disk0", std::path::Path::new(&image))],
                CHUNK as u64,
            )?;
            return Ok(());
        }
        let repo = vmrestore::repo::LocalRepository::open(&dir)?;
        let m = repo.manifest(&id)?;
        let disk = m.disks[0].clone();
        let sink = PageBlobSink::new(&container, auth)?;
        let writer: Arc<dyn vmrestore::exec::DiskWriter> =
            Arc::from(sink.open(&blob, disk.size_bytes, false).await?);
        let results: Vec<Result<(), Box<dyn std::error::Error + Send + Sync>>> =
            futures::stream::iter(disk.chunks.clone())
                .map(|c| {
                    let (w, repo) = (writer.clone(), repo.clone());
                    async move {
                        if w.holds(c.offset, c.length, &c.sha256).await {
                            return Ok(());
                        }
                        let c2 = c.clone();
                        let data =
                            tokio::task::spawn_blocking(move || repo.read_chunk("disk0", &c2))
                                .await??;
                        w.write_chunk(c.offset, Bytes::from(data), &c.sha256)
                            .await?;
                        Ok(())
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        for r in results {
            r.map_err(|e| e.to_string())?;
        }
        writer.finish(&disk.digest).await?;
        let s = sink.stats(&blob).unwrap_or_default();
        println!(
            "{{\"mode\": \"restore\", \"bytes\": {}, \"seconds\": {:.3}, \"bytes_put\": {}, \"puts\": {}, \"bytes_unchanged\": {}}}",
            disk.size_bytes,
            t0.elapsed().as_secs_f64(),
            s.bytes_put,
            s.puts,
            s.bytes_unchanged
        );
        return Ok(());
    }
    let image = arg(&args, "--image").ok_or("--image FILE is required")?;
    let mut file = std::fs::File::open(&image)?;
    let size = file.metadata()?.len();
    let sink = PageBlobSink::new(&container, auth)?;
    let writer: Arc<dyn vmrestore::exec::DiskWriter> =
        Arc::from(sink.open(&blob, size, false).await?);
    // Read sequentially on a blocking thread, hash, and send in parallel.
    let (tx, rx) = tokio::sync::mpsc::channel::<(u64, Bytes, String)>(concurrency * 2);
    let reader = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<ChunkRef>> {
        let mut refs = Vec::new();
        let mut offset = 0u64;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            while n < CHUNK {
                let r = file.read(&mut buf[n..])?;
                if r == 0 {
                    break;
                }
                n += r;
            }
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if buf.iter().any(|b| *b != 0) {
                let sha = hex::encode(Sha256::digest(&buf));
                refs.push(ChunkRef {
                    offset,
                    length: n as u64,
                    sha256: sha.clone(),
                });
                if tx.blocking_send((offset, Bytes::from(buf), sha)).is_err() {
                    break;
                }
            }
            offset += n as u64;
        }
        Ok(refs)
    });
    let results: Vec<_> = tokio_stream_from(rx)
        .map(|(o, data, sha)| {
            let w = writer.clone();
            async move { w.write_chunk(o, data, &sha).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let refs = reader.await??;
    writer.finish(&disk_digest(&refs)).await?;
    let s = sink.stats(&blob).unwrap_or_default();
    println!(
        "{{\"mode\": \"upload\", \"bytes\": {size}, \"seconds\": {:.3}, \"bytes_put\": {}, \"puts\": {}, \"bytes_unchanged\": {}, \"bytes_zero_skipped\": {}}}",
        t0.elapsed().as_secs_f64(),
        s.bytes_put,
        s.puts,
        s.bytes_unchanged,
        s.bytes_zero_skipped
    );
    Ok(())
}

/// A receiver as a stream.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
