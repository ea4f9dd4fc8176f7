//! Hostile files (issue 12, trust boundaries): a repository whose chunks or
//! manifest are symbolic links, FIFOs or devices; an output directory with
//! symbolic links where the VHDs, the template and the report go; journals
//! shared by two executors, torn, or with foreign lines.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vmrestore::demo::{self, DemoRestore};
use vmrestore::exec::*;
use vmrestore::plan::Plan;
use vmrestore::repo::{ChunkRef, LocalRepository};
use vmrestore::vhd::parse_footer;

mod common;
use common::restore::*;

fn chunk_file(repo: &LocalRepository, c: &ChunkRef) -> PathBuf {
    chunk_path(repo, &c.sha256)
}

fn mkfifo(p: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Runs `f` on a thread and fails the test if it takes more than 10 s (a
/// FIFO that blocks an open would hang forever).
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the call hung (blocked on a FIFO?)")
}

/// The first chunk of the first restore point's first disk that has one:
/// the disk's name, the chunk, and the chunk's file.
fn first_chunk(repo: &LocalRepository, restores: &[DemoRestore]) -> (String, ChunkRef, PathBuf) {
    let m = repo.manifest(&restores[0].restore_point.id).unwrap();
    let d = m.disks.iter().find(|d| !d.chunks.is_empty()).unwrap();
    let (name, c) = (d.name.clone(), d.chunks[0].clone());
    let path = chunk_file(repo, &c);
    (name, c, path)
}

#[test]
fn a_chunk_symlinked_outside_the_root_is_refused_without_reading_it() {
    let (dir, repo, restores) = demo_repo();
    let (disk, c, path) = first_chunk(&repo, &restores);
    // An outside file with exactly the chunk's bytes: following the link
    // would even verify. It must not be read at all.
    let outside = dir.path().join("outside.bin");
    std::fs::copy(&path, &outside).unwrap();
    std::fs::remove_file(&path).unwrap();
    symlink(&outside, &path).unwrap();
    let e = repo.read_chunk(&disk, &c).unwrap_err();
    assert_eq!(e.code(), "E_INTEGRITY");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("disk '{disk}' at offset {}", c.offset)),
        "{msg}"
    );
    assert!(msg.contains("symbolic link"), "{msg}");
    assert!(!repo.has_chunk(&c), "a symlinked chunk is not present");

    // /etc/passwd: its size is not printed.
    std::fs::remove_file(&path).unwrap();
    symlink("/etc/passwd", &path).unwrap();
    let msg = repo.read_chunk(&disk, &c).unwrap_err().to_string();
    let size = std::fs::metadata("/etc/passwd").unwrap().len();
    assert!(!msg.contains(&format!("{size} bytes")), "{msg}");
    assert!(!msg.contains("root:"), "{msg}");

    // A symlinked chunk directory (chunks/ab -> outside) is refused too.
    std::fs::remove_file(&path).unwrap();
    let sub = path.parent().unwrap().to_path_buf();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::rename(&sub, &elsewhere).unwrap();
    std::fs::copy(&outside, elsewhere.join(&c.sha256)).unwrap();
    symlink(&elsewhere, &sub).unwrap();
    let msg = repo.read_chunk(&disk, &c).unwrap_err().to_string();
    assert!(msg.contains("symbolic link"), "{msg}");
}

#[test]
fn dev_zero_and_a_fifo_as_a_chunk_neither_hang_nor_read_unbounded() {
    let (_dir, repo, restores) = demo_repo();
    let (disk, c, path) = first_chunk(&repo, &restores);
    std::fs::remove_file(&path).unwrap();
    symlink("/dev/zero", &path).unwrap();
    let e = repo.read_chunk(&disk, &c).unwrap_err();
    assert_eq!(e.code(), "E_INTEGRITY", "{e}");
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let (r, c2, d2) = (repo.clone(), c.clone(), disk.clone());
    let e = within_10s(move || r.read_chunk(&d2, &c2).unwrap_err());
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let r = repo.clone();
    assert!(!within_10s(move || r.has_chunk(&c)));
}

#[test]
fn a_chunk_longer_than_declared_is_read_only_up_to_its_length() {
    let (_dir, repo, restores) = demo_repo();
    let (disk, c, path) = first_chunk(&repo, &restores);
    // Grow the chunk file to 1 GiB (sparse): a read of it all would
    // allocate 1 GiB; the bounded read stops one byte past the length.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let msg = repo.read_chunk(&disk, &c).unwrap_err().to_string();
    assert!(msg.contains("holds more than"), "{msg}");
    assert!(!msg.contains(&(1u64 << 30).to_string()), "{msg}");
}

#[test]
fn a_manifest_that_is_a_symlink_fifo_or_huge_is_refused() {
    let (dir, repo, restores) = demo_repo();
    let id = restores[0].restore_point.id.clone();
    let mpath = repo
        .root()
        .join("restore-points")
        .join(&id)
        .join("manifest.json");
    let outside = dir.path().join("m.json");
    std::fs::rename(&mpath, &outside).unwrap();
    symlink(&outside, &mpath).unwrap();
    let e = repo.manifest(&id).unwrap_err();
    assert_eq!(e.code(), "E_REPOSITORY");
    assert!(e.to_string().contains(&format!("restore point '{id}'")));
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(!repo.list().unwrap().contains(&id), "not listed either");

    std::fs::remove_file(&mpath).unwrap();
    symlink("/dev/zero", &mpath).unwrap();
    assert_eq!(repo.manifest(&id).unwrap_err().code(), "E_REPOSITORY");

    std::fs::remove_file(&mpath).unwrap();
    mkfifo(&mpath);
    let (r, i) = (repo.clone(), id.clone());
    let e = within_10s(move || r.manifest(&i).unwrap_err());
    assert!(e.to_string().contains("not a regular file"), "{e}");

    // Bounded by its size before it is read: 65 MiB (sparse).
    std::fs::remove_file(&mpath).unwrap();
    std::fs::File::create(&mpath)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    assert!(
        repo.manifest(&id)
            .unwrap_err()
            .to_string()
            .contains("exceeds")
    );

    // The restore point's directory as a symlink.
    std::fs::remove_file(&mpath).unwrap();
    let rp_dir = mpath.parent().unwrap().to_path_buf();
    let moved = dir.path().join("rp");
    std::fs::rename(&rp_dir, &moved).unwrap();
    std::fs::copy(&outside, moved.join("manifest.json")).unwrap();
    symlink(&moved, &rp_dir).unwrap();
    assert!(
        repo.manifest(&id)
            .unwrap_err()
            .to_string()
            .contains("symbolic link")
    );
}

#[test]
fn a_16_gib_chunk_size_is_refused_at_parse_with_its_field() {
    let (_dir, repo, restores) = demo_repo();
    let id = &restores[0].restore_point.id;
    let mut m = repo.manifest(id).unwrap();
    m.chunk_size = 16 << 30;
    let text = serde_json::to_string(&m).unwrap();
    let e = vmrestore::repo::parse_manifest(&text, id).unwrap_err();
    assert_eq!(e.code(), "E_REPOSITORY");
    assert!(e.to_string().contains("$.chunk_size"), "{e}");
    assert!(
        e.to_string().contains(&format!("restore point '{id}'")),
        "{e}"
    );
    m.chunk_size = 64 << 20;
    vmrestore::repo::parse_manifest(&serde_json::to_string(&m).unwrap(), id).unwrap();
}

#[test]
fn a_device_or_fifo_as_repository_root_or_import_image_is_refused() {
    assert!(LocalRepository::open("/dev/zero").is_err());
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    assert!(LocalRepository::open(&fifo).is_err());

    let (_d, repo, restores) = demo_repo();
    let rp = restores[0].restore_point.clone();
    let names: Vec<String> = rp.vm.disks.iter().map(|d| d.name.clone()).collect();
    for image in [PathBuf::from("/dev/zero"), fifo.clone()] {
        let refs: Vec<(&str, &Path)> = names
            .iter()
            .map(|n| (n.as_str(), image.as_path()))
            .collect();
        let r = repo.clone();
        let rp2 = rp.clone();
        let owned: Vec<(String, PathBuf)> = refs
            .iter()
            .map(|(n, p)| (n.to_string(), p.to_path_buf()))
            .collect();
        let e = within_10s(move || {
            let refs: Vec<(&str, &Path)> = owned
                .iter()
                .map(|(n, p)| (n.as_str(), p.as_path()))
                .collect();
            r.import_raw(&rp2, &refs, 1 << 20).unwrap_err()
        });
        assert_eq!(e.code(), "E_REPOSITORY");
        assert!(
            e.to_string().contains("not a regular file or block device"),
            "{e}"
        );
    }
}

// ---- the output directory ------------------------------------------------

/// Runs `plan` on a new SimCloud, the disks' bytes going to `sink`.
async fn run_sink(repo: &LocalRepository, plan: &Plan, sink: LocalVhdSink) -> Report {
    let sim = SimCloud::new(SimConfig::default());
    run_to_sink(&sim, repo, plan, Arc::new(sink), ExecOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_in_the_output_directory_are_never_written_through() {
    let (dir, repo, restores) = demo_repo();
    let plan = plan_for(&restores[1], "veeam");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let disk = plan.target.disks[0].name.clone();
    let vm = plan.target.vm_name.clone();
    symlink(&victim, out.join(format!("{disk}.vhd"))).unwrap();
    symlink(&victim, out.join(format!("{disk}.vhd.partial"))).unwrap();
    // The report's old temporary name and its final name.
    symlink(&victim, out.join(format!("{vm}.report.tmp"))).unwrap();
    symlink(&victim, out.join(format!("{vm}.report.json"))).unwrap();

    let sink = LocalVhdSink::new(&out).unwrap();
    let report = run_sink(&repo, &plan, sink).await;
    assert_eq!(
        report.outcome,
        Outcome::Failed,
        "an existing VHD name is a conflict"
    );
    let err = report.error.clone().map(|e| e.message).unwrap_or_default();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::metadata(&victim).unwrap().len(), 8);
    // The report replaced the symlink with a file of its own.
    let rpt = out.join(format!("{vm}.report.json"));
    assert!(std::fs::symlink_metadata(&rpt).unwrap().is_file());

    // With overwrite the links are replaced, still not written through.
    let sink = LocalVhdSink::new(&out).unwrap().overwrite(true);
    let report = run_sink(&repo, &plan, sink).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let vhd = out.join(format!("{disk}.vhd"));
    let meta = std::fs::symlink_metadata(&vhd).unwrap();
    assert!(meta.is_file());
    let bytes = std::fs::read(&vhd).unwrap();
    parse_footer(&bytes[bytes.len() - 512..]).unwrap();
    assert!(!out.join(format!("{disk}.vhd.partial")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_vhd_or_template_is_kept_unless_overwrite() {
    let (dir, repo, restores) = demo_repo();
    let plan = plan_for(&restores[1], "veeam");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let last = plan.target.disks.last().unwrap().name.clone();
    let existing = out.join(format!("{last}.vhd"));
    std::fs::write(&existing, b"someone else's disk").unwrap();
    let report = run_sink(&repo, &plan, LocalVhdSink::new(&out).unwrap()).await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(std::fs::read(&existing).unwrap(), b"someone else's disk");

    // A template with other content is kept too (the run itself succeeds
    // into a clean directory first).
    let out2 = dir.path().join("out2");
    std::fs::create_dir_all(&out2).unwrap();
    let tpl = out2.join(format!("{}.template.json", plan.target.vm_name));
    std::fs::write(&tpl, b"{}").unwrap();
    let report = run_sink(&repo, &plan, LocalVhdSink::new(&out2).unwrap()).await;
    assert_eq!(std::fs::read(&tpl).unwrap(), b"{}", "{:?}", report.outcome);
    // With overwrite, both are replaced.
    let report = run_sink(
        &repo,
        &plan,
        LocalVhdSink::new(&out).unwrap().overwrite(true),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let bytes = std::fs::read(&existing).unwrap();
    parse_footer(&bytes[bytes.len() - 512..]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_disk_leaves_no_complete_looking_vhd() {
    let (dir, repo, restores) = demo_repo();
    let plan = plan_for(&restores[1], "veeam");
    let id = &restores[1].restore_point.id;
    let m = repo.manifest(id).unwrap();
    // Corrupt the middle chunk of the first target disk's source.
    let d0 = &plan.target.disks[0];
    let src = m.disks.iter().find(|d| d.name == d0.source_disk).unwrap();
    let victim = &src.chunks[src.chunks.len() / 2];
    let path = chunk_file(&repo, victim);
    let mut b = std::fs::read(&path).unwrap();
    b[0] ^= 0xff;
    std::fs::write(&path, b).unwrap();
    let out = dir.path().join("out");
    let report = run_sink(&repo, &plan, LocalVhdSink::new(&out).unwrap()).await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(!out.join(format!("{}.vhd", d0.name)).exists());
    let partial = out.join(format!("{}.vhd.partial", d0.name));
    if let Ok(bytes) = std::fs::read(&partial) {
        assert!(parse_footer(&bytes[bytes.len() - 512..]).is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_local_restore_resumes_from_the_journal_into_the_same_vhds() {
    let (dir, repo, restores) = demo_repo();
    let plan = plan_for(&restores[1], "veeam");
    let out = dir.path().join("out");
    let opts = resumable(&dir.path().join("run.journal"));
    let (token, progress) = cancel_after(8 << 20);
    let ex = Executor::new(Arc::new(slow_writes(2)), Arc::new(repo.clone()))
        .with_options(opts)
        .with_sink(Arc::new(LocalVhdSink::new(&out).unwrap()));
    let first = ex.run(&plan, token, Some(progress)).await.unwrap();
    assert_eq!(first.outcome, Outcome::Cancelled);
    let second = ex.run(&plan, CancellationToken::new(), None).await.unwrap();
    assert_eq!(second.outcome, Outcome::Succeeded, "{:?}", second.error);
    assert!(second.disks.iter().map(|d| d.chunks_resumed).sum::<u64>() > 0);
    for d in &plan.target.disks {
        let vhd = std::fs::read(out.join(format!("{}.vhd", d.name))).unwrap();
        let (data, footer) = vhd.split_at(vhd.len() - 512);
        parse_footer(footer).unwrap();
        let mut raw = std::fs::read(demo::image_path(
            dir.path(),
            "db01",
            &d.source_disk,
            d.volume_group.as_deref(),
        ))
        .unwrap();
        raw.resize(data.len(), 0);
        assert!(raw == data, "disk {} differs from its source", d.name);
    }
}

// ---- the journal ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_executors_on_one_journal_the_second_is_locked_out() {
    let (dir, repo, restores) = demo_repo();
    let plan = plan_for(&restores[0], "commvault");
    let sim = slow_writes(3);
    let journal = dir.path().join("run.journal");
    let opts = ExecOptions {
        journal: Some(journal.clone()),
        ..Default::default()
    };
    let ex = Arc::new(
        Executor::new(Arc::new(sim.clone()), Arc::new(repo.clone())).with_options(opts.clone()),
    );
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started = std::sync::Mutex::new(Some(started_tx));
    let progress: ProgressFn = Arc::new(move |e: &Event| {
        if matches!(e, Event::Bytes { .. })
            && let Some(tx) = started.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    });
    let (ex1, plan1) = (ex.clone(), plan.clone());
    let first = tokio::spawn(async move {
        ex1.run(&plan1, CancellationToken::new(), Some(progress))
            .await
    });
    started_rx.await.unwrap();
    let creates = sim.creates();
    // A second executor (another process would be the same: flock). Its
    // cloud takes an hour to answer the first call (the catalog): the
    // refusal within seconds shows it came before any cloud call.
    let mut op_latency = std::collections::HashMap::new();
    op_latency.insert("catalog".to_string(), Duration::from_secs(3600));
    let other_sim = SimCloud::new(SimConfig {
        op_latency,
        ..Default::default()
    });
    let ex2 = Executor::new(Arc::new(other_sim.clone()), Arc::new(repo.clone())).with_options(opts);
    let second = ex2.run(&plan, CancellationToken::new(), None);
    let e = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("refused before the (slow) catalog call")
        .unwrap_err();
    assert_eq!(e.code(), "E_JOURNAL_LOCKED", "{e}");
    assert_eq!(other_sim.creates(), 0, "the second run made no cloud call");
    let report = first.await.unwrap().unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert!(sim.creates() >= creates);
    assert!(
        sim.dump()["resources"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "the first run's resources were not cleaned up by the second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_with_a_foreign_line_is_refused_before_any_cloud_call() {
    let (dir, repo, restores) = demo_repo();
    let plan = plan_for(&restores[0], "commvault");
    let other_plan = plan_for(&restores[1], "veeam");
    let (ja, jb) = (dir.path().join("a.journal"), dir.path().join("b.journal"));
    let run = |j: &Path, p: &Plan, sim: &SimCloud| {
        let ex = Executor::new(Arc::new(sim.clone()), Arc::new(repo.clone())).with_options(
            ExecOptions {
                journal: Some(j.to_path_buf()),
                ..Default::default()
            },
        );
        let p = p.clone();
        async move { ex.run(&p, CancellationToken::new(), None).await }
    };
    let sim = SimCloud::new(SimConfig::default());
    run(&ja, &plan, &sim).await.unwrap();
    run(&jb, &other_plan, &SimCloud::new(SimConfig::default()))
        .await
        .unwrap();
    // Paste a `created` line of the other plan's journal into this one.
    let a = std::fs::read_to_string(&ja).unwrap();
    let b = std::fs::read_to_string(&jb).unwrap();
    let foreign = b.lines().find(|l| l.contains("\"created\"")).unwrap();
    let mut lines: Vec<&str> = a.lines().collect();
    lines.insert(2, foreign);
    std::fs::write(&ja, lines.join("\n") + "\n").unwrap();
    let fresh = SimCloud::new(SimConfig::default());
    let e = run(&ja, &plan, &fresh).await.unwrap_err();
    assert_eq!(e.code(), "E_JOURNAL");
    assert!(e.to_string().contains("line 3"), "{e}");
    assert_eq!(fresh.creates(), 0);
}
