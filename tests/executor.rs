//! Executor tests on SimCloud: end to end, ordering, concurrency limits,
//! retries and Retry-After, cancellation, clean-up, resume, corruption.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vmrestore::demo::{self, DemoRestore};
use vmrestore::exec::*;
use vmrestore::model::Catalog;
use vmrestore::plan::{Plan, Planner, StepKind};
use vmrestore::policy::Profile;
use vmrestore::repo::LocalRepository;

fn plan_for(r: &DemoRestore, profile: &str, catalog: &Catalog) -> Plan {
    Planner::new(catalog)
        .unwrap()
        .plan(
            &r.restore_point,
            &r.request,
            &[Profile::builtin(profile).unwrap()],
        )
        .unwrap()
}

fn setup() -> (tempfile::TempDir, LocalRepository, Vec<DemoRestore>) {
    let dir = tempfile::tempdir().unwrap();
    let (repo, restores) = demo::build(dir.path()).unwrap();
    (dir, repo, restores)
}

fn image(dir: &Path, vm: &str, disk: &str, vg: Option<&str>, size: usize) -> Vec<u8> {
    let mut b = std::fs::read(demo::image_path(dir, vm, disk, vg)).unwrap();
    b.resize(size, 0);
    b
}

fn events() -> (ProgressFn, Arc<Mutex<Vec<Event>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    (
        Arc::new(move |e: &Event| l.lock().unwrap().push(e.clone())),
        log,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_a_windows_vm_end_to_end_byte_identical() {
    let (dir, repo, restores) = setup();
    let sim = SimCloud::new(SimConfig::default());
    let plan = plan_for(&restores[0], "commvault", &Catalog::builtin());
    assert!(plan.is_ready(), "{:?}", plan.findings);
    let (progress, log) = events();
    let ex = Executor::new(Arc::new(sim.clone()), Arc::new(repo));
    let report = ex
        .run(&plan, CancellationToken::new(), Some(progress))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert!(report.steps.iter().all(|s| s.status == StepStatus::Done));
    for d in &plan.target.disks {
        let got = sim.disk_bytes(&d.name).unwrap();
        let want = image(dir.path(), "web01", &d.source_disk, None, got.len());
        assert!(got == want, "disk {} differs from its source", d.name);
        let dr = report.disks.iter().find(|r| r.name == d.name).unwrap();
        assert!(dr.verified && dr.digest.is_some());
    }
    let dump = sim.dump();
    assert_eq!(dump["powered_on"], serde_json::json!(["web01-dr"]));
    assert!(
        sim.names("virtual_machine")
            .contains(&"web01-dr".to_string())
    );
    // Progress: every step started and finished, bytes reached the total.
    let log = log.lock().unwrap();
    let finished = log
        .iter()
        .filter(|e| matches!(e, Event::StepFinished { .. }))
        .count();
    assert_eq!(finished, plan.steps.len());
    let last_bytes = log
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Bytes { done, total, .. } => Some((*done, *total)),
            _ => None,
        })
        .unwrap();
    assert!(last_bytes.0 > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_start_only_after_their_dependencies_and_stages() {
    let (_dir, repo, restores) = setup();
    let sim = SimCloud::new(SimConfig {
        latency: Duration::from_millis(2),
        ..Default::default()
    });
    let plan = plan_for(&restores[0], "commvault", &Catalog::builtin());
    let (progress, log) = events();
    let report = Executor::new(Arc::new(sim), Arc::new(repo))
        .run(&plan, CancellationToken::new(), Some(progress))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let log = log.lock().unwrap();
    let pos = |ev: &str, id: &str| {
        log.iter()
            .position(|e| match (e, ev) {
                (Event::StepStarted { step }, "start")
                | (Event::StepFinished { step, .. }, "end") => step == id,
                _ => false,
            })
            .unwrap_or_else(|| panic!("{ev} {id}"))
    };
    for s in &plan.steps {
        for d in &s.depends_on {
            assert!(
                pos("end", d) < pos("start", &s.id),
                "{} started before {} finished",
                s.id,
                d
            );
        }
    }
    // Commvault configures the NSG after the VM (seed 000's stage order).
    assert!(pos("end", "vm") < pos("start", "nsg"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_streams_respect_the_concurrency_limit() {
    let (_dir, repo, restores) = setup();
    let sim = SimCloud::new(SimConfig {
        write_latency: Duration::from_millis(3),
        ..Default::default()
    });
    let plan = plan_for(&restores[1], "veeam", &Catalog::builtin());
    assert!(plan.is_ready(), "{:?}", plan.findings);
    assert_eq!(
        plan.steps
            .iter()
            .filter(|s| s.kind == StepKind::WriteDisk)
            .count(),
        3
    );
    let (progress, log) = events();
    let opts = ExecOptions {
        data_concurrency: 1,
        ..Default::default()
    };
    let report = Executor::new(Arc::new(sim), Arc::new(repo))
        .with_options(opts)
        .run(&plan, CancellationToken::new(), Some(progress))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    // With one data stream, write steps never overlap.
    let mut open = 0;
    let mut max = 0;
    for e in log.lock().unwrap().iter() {
        match e {
            Event::StepStarted { step } if step.starts_with("write:") => {
                open += 1;
                max = max.max(open);
            }
            Event::StepFinished { step, .. } if step.starts_with("write:") => open -= 1,
            _ => {}
        }
    }
    assert_eq!(max, 1);
}
