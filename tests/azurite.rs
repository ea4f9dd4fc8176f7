//! Against Azurite, the official Azure Storage emulator (npm `azurite`,
//! installed into `bindings-node/node_modules` by the test script), started
//! here on 127.0.0.1 on a free port with in-memory persistence and stopped
//! after: a repository in an Azurite container → restore → each disk a page
//! blob in Azurite → read back byte-identical; a rerun writes only what
//! differs.

use std::sync::Arc;

use tokio_util::bytes::Bytes;
use tokio_util::sync::CancellationToken;
use vmrestore::azure::storage::{BlobClient, EMULATOR_ACCOUNT, EMULATOR_KEY, http_client};
use vmrestore::azure::{PageBlobSink, StorageAuth};
use vmrestore::demo;
use vmrestore::exec::{Executor, Outcome, SimCloud, SimConfig};
use vmrestore::plan::Plan;
use vmrestore::repo::ObjectStoreRepository;
use vmrestore::vhd::parse_footer;

mod common;
use common::azurite::Azurite;
use common::restore::*;

async fn restore(
    plan: &Plan,
    repo: &ObjectStoreRepository,
    sink: Arc<PageBlobSink>,
) -> vmrestore::exec::Report {
    let ex = Executor::new(
        Arc::new(SimCloud::new(SimConfig::default())),
        Arc::new(repo.clone()),
    )
    .with_sink(sink);
    ex.run(plan, CancellationToken::new(), None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_in_azurite_restores_to_page_blobs_byte_identical_and_reruns_write_only_differences()
 {
    let az = Azurite::start();
    let dir = tempfile::tempdir().unwrap();
    let (local, restores) = demo::build(dir.path()).unwrap();
    let web01 = restore_of(&restores, "web01");

    // The backup lives in an Azurite container, in the repository format.
    let http = http_client().unwrap();
    BlobClient::new(
        http.clone(),
        &format!("{}/backups/x", az.endpoint()),
        az.auth(),
    )
    .unwrap()
    .create_container()
    .await
    .unwrap();
    let repo = ObjectStoreRepository::azure_shared_key(
        &az.endpoint(),
        EMULATOR_ACCOUNT,
        EMULATOR_KEY,
        "backups",
        "site-a",
    )
    .unwrap();
    let sent = repo
        .upload_from(&local, &web01.restore_point.id)
        .await
        .unwrap();
    assert!(sent > 10, "{sent} chunks uploaded");
    assert_eq!(
        repo.list().await.unwrap(),
        vec![web01.restore_point.id.clone()]
    );

    let plan = plan_for(web01, "commvault");
    let sink =
        Arc::new(PageBlobSink::new(&format!("{}/restores", az.endpoint()), az.auth()).unwrap());
    let report = restore(&plan, &repo, sink.clone()).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);

    let manifest = repo.manifest(&web01.restore_point.id).await.unwrap();
    for disk in &plan.target.disks {
        let size = disk.size_bytes as usize;
        let blob = sink.disk_blob(&disk.name).unwrap();
        let got = blob.get().await.unwrap().expect("the disk's blob");
        assert_eq!(got.len(), size + 512, "{}: blob length", disk.name);
        let want = source_image(dir.path(), "web01", &disk.source_disk, None, size);
        assert!(
            got[..size] == want[..],
            "{} differs from its source",
            disk.name
        );
        let footer = parse_footer(&got[size..]).unwrap();
        assert_eq!(footer.size, disk.size_bytes);
        // Zeros were never sent: the written ranges are the chunks with
        // data, plus the footer.
        let ranges = blob.page_ranges().await.unwrap();
        let written: u64 = ranges.iter().map(|(s, e)| e - s).sum();
        let m = manifest
            .disks
            .iter()
            .find(|m| m.name == disk.source_disk)
            .unwrap();
        assert_eq!(written, m.allocated() + 512, "{}: page ranges", disk.name);
        let stats = sink.stats(&disk.name).unwrap();
        assert_eq!(stats.bytes_put, m.allocated() + 512);
        assert!(
            stats.puts as u64 >= m.allocated() / (4 << 20),
            "at most 4 MiB per Put Page"
        );
    }

    // A rerun over the unchanged blobs sends the footers and nothing else.
    let sink2 =
        Arc::new(PageBlobSink::new(&format!("{}/restores", az.endpoint()), az.auth()).unwrap());
    let report = restore(&plan, &repo, sink2.clone()).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    for disk in &plan.target.disks {
        let s = sink2.stats(&disk.name).unwrap();
        assert_eq!(s.bytes_put, 512, "{}: {s:?}", disk.name);
        assert_eq!(s.bytes_read_back, 0, "the state file says what is there");
        assert!(s.bytes_unchanged > 0);
        // The report says so too: every chunk held, none written.
        let r = report.disks.iter().find(|r| r.name == disk.name).unwrap();
        assert_eq!((r.bytes_written, r.chunks_written), (0, 0), "{r:?}");
        assert!(r.chunks_held > 0 && r.verified, "{r:?}");
    }

    // Someone writes into a blob behind our back: one page inside a chunk
    // with data, one where the disk is all zeros. The rerun no longer trusts
    // the state file (the ETag changed), compares, and fixes exactly those.
    let disk = &plan.target.disks[0];
    let m = manifest
        .disks
        .iter()
        .find(|m| m.name == disk.source_disk)
        .unwrap();
    let blob = sink.disk_blob(&disk.name).unwrap();
    let data_chunk = &m.chunks[1];
    blob.put_page(data_chunk.offset + 4096, Bytes::from(vec![0xAB; 512]))
        .await
        .unwrap();
    let hole = (0..disk.size_bytes)
        .step_by(4 << 20)
        .find(|o| !m.chunks.iter().any(|c| c.offset == *o))
        .expect("a chunk without data");
    blob.put_page(hole + 8192, Bytes::from(vec![0xCD; 1024]))
        .await
        .unwrap();
    let sink3 =
        Arc::new(PageBlobSink::new(&format!("{}/restores", az.endpoint()), az.auth()).unwrap());
    let report = restore(&plan, &repo, sink3.clone()).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let s = sink3.stats(&disk.name).unwrap();
    assert_eq!(s.bytes_put, data_chunk.length + 512, "{s:?}");
    assert_eq!(s.bytes_cleared, 1024, "{s:?}");
    let got = blob.get().await.unwrap().unwrap();
    let size = disk.size_bytes as usize;
    assert!(got[..size] == source_image(dir.path(), "web01", &disk.source_disk, None, size)[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_limits_are_enforced_even_though_azurite_is_lenient() {
    let az = Azurite::start();
    let http = http_client().unwrap();
    let blob = BlobClient::new(
        http,
        &format!("{}/limits/disk.vhd", az.endpoint()),
        az.auth(),
    )
    .unwrap();
    blob.create_container().await.unwrap();
    blob.create_page_blob(16 << 20).await.unwrap();
    let e = blob
        .put_page(0, Bytes::from(vec![1u8; (4 << 20) + 512]))
        .await
        .unwrap_err();
    assert!(e.message.contains("4 MiB"), "{e:?}");
    let e = blob
        .put_page(100, Bytes::from(vec![1u8; 512]))
        .await
        .unwrap_err();
    assert!(e.message.contains("multiples of 512"), "{e:?}");
    // A wrong key is refused by Azurite, and the error holds no key.
    let bad = BlobClient::new(
        http_client().unwrap(),
        &format!("{}/limits/disk.vhd", az.endpoint()),
        StorageAuth::SharedKey {
            account: EMULATOR_ACCOUNT.into(),
            key: "c2VjcmV0LWtleS1zZW50aW5lbA==".into(),
        },
    )
    .unwrap();
    let e = bad.properties().await.unwrap_err();
    assert!(!format!("{e:?} {e}").contains("c2VjcmV0"), "{e:?}");
    assert_eq!(e.kind, vmrestore::exec::CallErrorKind::Fatal, "{e:?}");
}
