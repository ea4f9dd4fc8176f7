//! The fault suite: transient faults (429 with Retry-After, 503, timeouts,
//! dropped connections) at 10% of cloud calls, page writes and repository
//! reads, over many seeds and every ready demo restore. Every restore
//! completes, every disk is byte-identical to its source, and the cloud
//! holds exactly what the run created: no duplicate, no leak. Faults that
//! persist end the run with a report naming the step, and everything the
//! run created deleted.
//!
//! `VMRESTORE_FAULT_SEEDS` sets the number of seeds (default 3; more for a longer run); the
//! totals are printed (`cargo test --test faults -- --nocapture`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use vmrestore::demo::{self, DemoRestore};
use vmrestore::exec::*;
use vmrestore::model::Catalog;
use vmrestore::plan::{Action as PlanAction, Plan, Planner};
use vmrestore::policy::{BUILTIN_PROFILES, Profile};
use vmrestore::repo::{ChunkRef, LocalRepository, Manifest};

/// A repository whose chunk reads fail transiently (a dropped connection
/// to its store) with probability `p`, decided by (seed, chunk, attempt).
struct FlakyRepo {
    inner: LocalRepository,
    p: f64,
    seed: u64,
    attempts: Mutex<HashMap<String, u64>>,
    injected: AtomicU64,
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ceb9fe1a85ec53);
    x ^ (x >> 33)
}

#[vmrestore::azure::auth::async_trait]
impl Repository for FlakyRepo {
    async fn list(&self) -> vmrestore::Result<Vec<String>> {
        Repository::list(&self.inner).await
    }
    async fn manifest(&self, id: &str) -> vmrestore::Result<Manifest> {
        Repository::manifest(&self.inner, id).await
    }
    async fn has_chunk(&self, chunk: &ChunkRef) -> vmrestore::Result<bool> {
        Repository::has_chunk(&self.inner, chunk).await
    }
    async fn read_chunk(&self, disk: &str, chunk: &ChunkRef) -> vmrestore::Result<Bytes> {
        let key = format!("{disk}@{}", chunk.offset);
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let h = key
            .bytes()
            .fold(mix(self.seed ^ attempt), |h, b| mix(h ^ u64::from(b)));
        if (h as f64 / u64::MAX as f64) < self.p {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(vmrestore::Error::Cloud(CallError::new(
                CallErrorKind::Unavailable,
                format!("read chunk of disk '{disk}'"),
                "injected connection reset",
            )));
        }
        Repository::read_chunk(&self.inner, disk, chunk).await
    }
}

fn ready_plans(restores: &[DemoRestore]) -> Vec<(&DemoRestore, Plan)> {
    let catalog = Catalog::builtin();
    let planner = Planner::new(&catalog).unwrap();
    let mut out = Vec::new();
    for r in restores {
        for p in BUILTIN_PROFILES {
            let plan = planner
                .plan(
                    &r.restore_point,
                    &r.request,
                    &[Profile::builtin(p).unwrap()],
                )
                .unwrap();
            if plan.is_ready() {
                out.push((r, plan));
            }
        }
    }
    out
}

fn source(dir: &Path, vm: &str, disk: &str, vg: Option<&str>, size: usize) -> Vec<u8> {
    let mut b = std::fs::read(demo::image_path(dir, vm, disk, vg)).unwrap();
    b.resize(size, 0);
    b
}

fn options() -> ExecOptions {
    ExecOptions {
        retry: RetryPolicy {
            max_attempts: 12,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            seed: 3,
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_restore_completes_byte_identical_under_ten_percent_faults_over_many_seeds() {
    let seeds: u64 = std::env::var("VMRESTORE_FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let (_, restores) = demo::build(dir.path()).unwrap();
    let plans = ready_plans(&restores);
    assert!(plans.len() >= 5, "{} ready plans", plans.len());
    let (mut runs, mut cloud_faults, mut repo_faults, mut verified) = (0u64, 0u64, 0u64, 0u64);
    for seed in 0..seeds {
        for (r, plan) in &plans {
            let sim = SimCloud::new(SimConfig {
                faults: Faults {
                    control: 0.1,
                    data: 0.1,
                    seed: seed * 1000 + runs,
                    retry_after: Duration::from_millis(2),
                    ..Default::default()
                },
                ..Default::default()
            });
            let repo = Arc::new(FlakyRepo {
                inner: LocalRepository::open(dir.path().join("repository")).unwrap(),
                p: 0.1,
                seed: seed ^ 0x5eed,
                attempts: Mutex::default(),
                injected: AtomicU64::new(0),
            });
            let report = Executor::new(Arc::new(sim.clone()), repo.clone())
                .with_options(options())
                .run(plan, CancellationToken::new(), None)
                .await
                .unwrap();
            let what = format!("{} ({}), seed {seed}", r.name, plan.profiles.join("+"));
            assert_eq!(
                report.outcome,
                Outcome::Succeeded,
                "{what}: {:?}",
                report.error
            );
            for d in &plan.target.disks {
                let got = sim
                    .disk_bytes(&d.name)
                    .unwrap_or_else(|| panic!("{what}: no disk {}", d.name));
                let want = source(
                    dir.path(),
                    r.name,
                    &d.source_disk,
                    d.volume_group.as_deref(),
                    got.len(),
                );
                assert!(got == want, "{what}: disk {} differs", d.name);
                verified += got.len() as u64;
            }
            // No duplicate: one create per create step; no leak: what the
            // cloud holds is what the report says the run created.
            let creates = plan
                .steps
                .iter()
                .filter(|s| s.action == PlanAction::Create)
                .count() as u64;
            assert_eq!(sim.creates(), creates, "{what}: duplicate creates");
            let held = sim.dump()["resources"].as_array().unwrap().len();
            assert_eq!(held, report.created.len(), "{what}: {:?}", sim.dump());
            runs += 1;
            cloud_faults += sim.faults_injected();
            repo_faults += repo.injected.load(Ordering::Relaxed);
        }
    }
    assert!(
        cloud_faults > runs,
        "{cloud_faults} cloud faults in {runs} runs"
    );
    assert!(repo_faults > 0, "no repository fault was injected");
    println!(
        "fault suite: {runs} restores completed over {seeds} seeds, {cloud_faults} cloud faults and {repo_faults} repository faults injected, {:.1} MiB verified byte-identical",
        verified as f64 / (1 << 20) as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_persists_fails_the_run_naming_the_step_and_deletes_what_it_created() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, restores) = demo::build(dir.path()).unwrap();
    let repo = Arc::new(repo);
    let plans = ready_plans(&restores);
    for op in ["create", "write", "open_disk", "close_disk", "act"] {
        for (r, plan) in &plans {
            let sim = SimCloud::new(SimConfig {
                faults: Faults {
                    always_fail: vec![op.into()],
                    ..Default::default()
                },
                ..Default::default()
            });
            let mut opts = options();
            opts.retry.max_attempts = 3;
            let report = Executor::new(Arc::new(sim.clone()), repo.clone())
                .with_options(opts)
                .run(plan, CancellationToken::new(), None)
                .await
                .unwrap();
            let what = format!(
                "{} ({}), {op} always fails",
                r.name,
                plan.profiles.join("+")
            );
            if report.outcome == Outcome::Succeeded {
                // Plans without such an operation (no actions) succeed.
                assert_eq!(op, "act", "{what}");
                continue;
            }
            assert_eq!(report.outcome, Outcome::Failed, "{what}");
            let e = report.error.as_ref().unwrap();
            assert!(
                plan.steps.iter().any(|s| *s.id == *e.step),
                "{what}: the error names step '{}'",
                e.step
            );
            assert_eq!(e.attempts.len(), 3, "{what}: {e:?}");
            assert_eq!(
                sim.dump()["resources"],
                serde_json::json!([]),
                "{what}: everything created is deleted"
            );
            assert!(
                sim.dump()["powered_on"]
                    .as_array()
                    .is_none_or(|a| a.is_empty())
            );
        }
    }
}

/// A repository whose store throttles every chunk read with a ten-minute
/// Retry-After.
struct ThrottledRepo(LocalRepository);

#[vmrestore::azure::auth::async_trait]
impl Repository for ThrottledRepo {
    async fn list(&self) -> vmrestore::Result<Vec<String>> {
        Repository::list(&self.0).await
    }
    async fn manifest(&self, id: &str) -> vmrestore::Result<Manifest> {
        Repository::manifest(&self.0, id).await
    }
    async fn has_chunk(&self, chunk: &ChunkRef) -> vmrestore::Result<bool> {
        Repository::has_chunk(&self.0, chunk).await
    }
    async fn read_chunk(&self, disk: &str, _chunk: &ChunkRef) -> vmrestore::Result<Bytes> {
        Err(vmrestore::Error::Cloud(
            CallError::new(
                CallErrorKind::Throttled,
                format!("read chunk of disk '{disk}'"),
                "throttled",
            )
            .retry_after(Duration::from_secs(600)),
        ))
    }
}

/// Issue 13: one retry loop for cloud and repository calls, and it hears
/// cancellation: a run whose chunk reads wait out a ten-minute Retry-After
/// ends `cancelled`, cleaned up, soon after it is cancelled. (The executor
/// also drops a cancelled step's futures, so this held before the loop
/// heard cancellation; `exec::retry`'s unit tests prove the loop itself.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_does_not_wait_out_a_repository_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, restores) = demo::build(dir.path()).unwrap();
    let plan = Planner::new(&Catalog::builtin())
        .unwrap()
        .plan(
            &restores[0].restore_point,
            &restores[0].request,
            &[Profile::builtin("commvault").unwrap()],
        )
        .unwrap();
    let sim = SimCloud::new(SimConfig::default());
    let ex = Executor::new(Arc::new(sim.clone()), Arc::new(ThrottledRepo(repo)));
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let progress: ProgressFn = Arc::new(move |e: &Event| {
        if let Event::StepStarted { step } = e
            && step.starts_with("write")
        {
            let _ = tx.send(());
        }
    });
    let run = {
        let cancel = cancel.clone();
        tokio::spawn(async move { ex.run(&plan, cancel, Some(progress)).await })
    };
    rx.recv().await.expect("a disk write started");
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();
    // Without cancellation the read would wait ten minutes per attempt.
    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ended soon after the cancel")
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome, Outcome::Cancelled, "{:?}", report.error);
    assert!(sim.names("disk").is_empty(), "cleaned up");
}
