//! Executor tests on SimCloud: end to end, ordering, concurrency limits,
//! retries and Retry-After, cancellation, clean-up, resume, corruption.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vmrestore::demo;
use vmrestore::exec::*;
use vmrestore::model::Catalog;
use vmrestore::plan::{Plan, StepKind};
use vmrestore::repo::LocalRepository;

mod common;
use common::restore::*;

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
    let (dir, repo, restores) = demo_repo();
    let sim = SimCloud::new(SimConfig::default());
    let plan = plan_for(&restores[0], "commvault");
    assert!(plan.is_ready(), "{:?}", plan.findings);
    let (progress, log) = events();
    let report = run_sim(&sim, &repo, &plan, ExecOptions::default(), Some(progress))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert!(report.steps.iter().all(|s| s.status == StepStatus::Done));
    for d in &plan.target.disks {
        let got = sim.disk_bytes(&d.name).unwrap();
        let want = source_image(dir.path(), "web01", &d.source_disk, None, got.len());
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
    let (_dir, repo, restores) = demo_repo();
    let sim = SimCloud::new(SimConfig {
        latency: Duration::from_millis(2),
        ..Default::default()
    });
    let plan = plan_for(&restores[0], "commvault");
    let (progress, log) = events();
    let report = run_sim(&sim, &repo, &plan, ExecOptions::default(), Some(progress))
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
    let (_dir, repo, restores) = demo_repo();
    let sim = slow_writes(3);
    let plan = plan_for(&restores[1], "veeam");
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
    run_succeeded(&sim, &repo, &plan, opts, Some(progress)).await;
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

/// How many writes `sim` took to the disks of `plan`.
fn disk_writes(sim: &SimCloud, plan: &Plan) -> u64 {
    plan.target
        .disks
        .iter()
        .filter_map(|d| sim.disk_writes(&d.name))
        .map(|w| w.1)
        .sum()
}

/// Options that retry each call up to `max_attempts` times, backing off
/// from 1 ms to at most `max_delay_ms`.
fn retrying(max_attempts: u32, max_delay_ms: u64) -> ExecOptions {
    ExecOptions {
        retry: RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(max_delay_ms),
            seed: 1,
        },
        ..Default::default()
    }
}

fn flip_byte_in_chunk(repo: &LocalRepository, sha: &str) {
    let p = chunk_path(repo, sha);
    let mut b = std::fs::read(&p).unwrap();
    b[1234] ^= 0x40;
    std::fs::write(&p, b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_honouring_retry_after() {
    let (dir, repo, restores) = demo_repo();
    let faults = Faults {
        control: 0.3,
        data: 0.2,
        seed: 7,
        retry_after: Duration::from_millis(300),
        ..Default::default()
    };
    let sim = SimCloud::new(SimConfig {
        faults,
        ..Default::default()
    });
    let plan = plan_for(&restores[0], "commvault");
    let (progress, log) = events();
    let opts = retrying(12, 5);
    let report = run_succeeded(&sim, &repo, &plan, opts, Some(progress)).await;
    assert!(
        sim.faults_injected() > 5,
        "only {} faults",
        sim.faults_injected()
    );
    let log = log.lock().unwrap();
    let retries: Vec<(&String, u64)> = log
        .iter()
        .filter_map(|e| match e {
            Event::StepRetried { error, wait_ms, .. } => Some((error, *wait_ms)),
            _ => None,
        })
        .collect();
    assert!(!retries.is_empty());
    for (error, wait) in &retries {
        if error.contains("429") {
            assert!(
                *wait >= 300,
                "a throttled call waited {wait} ms, less than its Retry-After"
            );
        } else {
            assert!(*wait <= 5, "backoff {wait} ms above the policy's maximum");
        }
    }
    assert!(retries.iter().any(|(e, _)| e.contains("429")));
    // The report keeps the attempts, and the data is intact.
    assert!(report.steps.iter().any(|s| !s.attempts.is_empty()));
    for d in &plan.target.disks {
        let got = sim.disk_bytes(&d.name).unwrap();
        assert!(got == source_image(dir.path(), "web01", &d.source_disk, None, got.len()));
    }
    // No duplicates: one resource per create step.
    let creates = create_step_count(&plan) as u64;
    assert_eq!(sim.creates(), creates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_fault_fails_the_run_names_the_step_and_cleans_up() {
    let (_dir, repo, restores) = demo_repo();
    let faults = Faults {
        always_fail: vec!["act".into()],
        ..Default::default()
    };
    let sim = SimCloud::new(SimConfig {
        faults,
        ..Default::default()
    });
    let plan = plan_for(&restores[0], "commvault");
    let opts = retrying(3, 2);
    let report = run_sim(&sim, &repo, &plan, opts, None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Failed);
    let err = report.error.as_ref().unwrap();
    assert_eq!(err.step, "convert", "the first action of the plan fails");
    assert_eq!(err.attempts.len(), 3, "the full history of attempts");
    assert!(
        err.message.contains("gave up after 3 attempts"),
        "{}",
        err.message
    );
    assert!(!report.cleaned_up.is_empty());
    assert!(report.created.is_empty());
    assert_eq!(
        sim.dump()["resources"],
        serde_json::json!([]),
        "everything the run created is deleted"
    );
    assert!(no_vm_step_ran(&report.steps));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_and_cleans_up() {
    let (_dir, repo, restores) = demo_repo();
    let sim = slow_writes(5);
    let plan = plan_for(&restores[0], "commvault");
    let (token, progress) = cancel_after(8 << 20);
    let report = Executor::new(Arc::new(sim.clone()), Arc::new(repo))
        .run(&plan, token, Some(progress))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Cancelled);
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.status == StepStatus::Cancelled)
    );
    assert!(no_vm_step_ran(&report.steps));
    assert_eq!(sim.dump()["resources"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_resumes_from_its_journal_without_redoing_work() {
    let (dir, repo, restores) = demo_repo();
    let sim = slow_writes(3);
    let plan = plan_for(&restores[0], "commvault");
    let opts = resumable(&dir.path().join("run.journal"));
    let (token, progress) = cancel_after(40 << 20);
    let ex = Executor::new(Arc::new(sim.clone()), Arc::new(repo)).with_options(opts);
    let first = ex.run(&plan, token, Some(progress)).await.unwrap();
    assert_eq!(first.outcome, Outcome::Cancelled);
    let creates_before = sim.creates();
    let writes_before = disk_writes(&sim, &plan);
    assert!(writes_before > 0);

    let second = ex.run(&plan, CancellationToken::new(), None).await.unwrap();
    assert_eq!(second.outcome, Outcome::Succeeded, "{:?}", second.error);
    assert!(second.steps.iter().any(|s| s.status == StepStatus::Resumed));
    let resumed: u64 = second.disks.iter().map(|d| d.chunks_resumed).sum();
    assert!(
        resumed > 0,
        "chunks written before the cancel are not written again"
    );
    // No step created anything twice.
    let creates = create_step_count(&plan) as u64;
    assert_eq!(sim.creates(), creates);
    assert!(creates_before <= creates);
    // Total writes: each chunk once (plus at most the ones in flight at the cancel).
    let chunks: u64 = second
        .disks
        .iter()
        .map(|d| d.chunks_written + d.chunks_resumed)
        .sum();
    let writes_after = disk_writes(&sim, &plan);
    assert!(
        writes_after <= chunks + 1,
        "{writes_after} writes for {chunks} chunks"
    );
    for d in &plan.target.disks {
        let got = sim.disk_bytes(&d.name).unwrap();
        assert!(got == source_image(dir.path(), "web01", &d.source_disk, None, got.len()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_chunk_fails_the_disk_with_its_offset_and_no_vm_is_created() {
    let (_dir, repo, restores) = demo_repo();
    let m = repo.manifest(&restores[0].restore_point.id).unwrap();
    let data1 = m.disks.iter().find(|d| d.name == "data1").unwrap();
    let victim = data1.chunks[data1.chunks.len() / 2].clone();
    flip_byte_in_chunk(&repo, &victim.sha256);
    let sim = SimCloud::new(SimConfig::default());
    let plan = plan_for(&restores[0], "commvault");
    let report = run_sim(&sim, &repo, &plan, ExecOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Failed);
    let err = report.error.unwrap();
    assert_eq!(err.code, "E_INTEGRITY");
    assert!(
        err.message
            .contains(&format!("disk 'data1' at offset {}", victim.offset)),
        "{}",
        err.message
    );
    assert_eq!(err.step, "write:web01-dr-data1");
    assert!(sim.names("virtual_machine").is_empty());
    assert!(no_vm_step_ran(&report.steps));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_restores_delete_the_vm_only_after_verifying_and_survive_corruption() {
    let (_dir, repo, restores) = demo_repo();
    let r = in_place(&restores[0]);
    let existing = existing_web01();
    let cfg = || SimConfig {
        existing_vms: vec![existing.clone()],
        ..Default::default()
    };
    let plan = plan_for(&r, "commvault");
    assert!(plan.is_ready(), "{:?}", plan.findings);
    // The point of no return: the existing VM is deleted only after every
    // new disk is written and verified.
    let before = |a: &str, b: &str| {
        let (ia, ib) = (
            plan.steps.iter().position(|s| &*s.id == a).unwrap(),
            plan.steps.iter().position(|s| &*s.id == b).unwrap(),
        );
        ia < ib
    };
    for s in plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::FinalizeDisk)
    {
        assert!(before(&s.id, "delete-vm"), "{} after delete-vm", s.id);
    }
    assert!(before("delete-vm", "vm"));

    // A corrupted chunk: verification fails, the existing VM is untouched.
    let m = repo.manifest(&r.restore_point.id).unwrap();
    let victim = m.disks[0].chunks[3].clone();
    let p = chunk_path(&repo, &victim.sha256);
    let good = std::fs::read(&p).unwrap();
    flip_byte_in_chunk(&repo, &victim.sha256);
    let sim = SimCloud::new(cfg());
    let report = run_sim(&sim, &repo, &plan, ExecOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(
        report.error.as_ref().unwrap().step,
        "verify",
        "{:?}",
        report.error
    );
    assert_eq!(
        sim.dump()["existing_vms"],
        serde_json::json!(["web01"]),
        "the existing VM survives"
    );

    // Repaired: the restore replaces the VM; old disks go only after the new VM runs.
    std::fs::write(&p, good).unwrap();
    let sim = SimCloud::new(cfg());
    let (progress, log) = events();
    let report = run_sim(&sim, &repo, &plan, ExecOptions::default(), Some(progress))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert_eq!(sim.dump()["existing_vms"], serde_json::json!([]));
    let log = log.lock().unwrap();
    let at = |id: &str| {
        log.iter()
            .position(|e| matches!(e, Event::StepFinished { step, .. } if step == id))
            .unwrap()
    };
    assert!(at("verify") < at("delete-vm"));
    assert!(at("power-on") < at("delete-old-disks"));
}

/// The error with which `ex` refuses to run `plan`.
async fn refusal(ex: &Executor, plan: &Plan) -> vmrestore::Error {
    ex.run(plan, CancellationToken::new(), None)
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_and_stale_plans_are_refused() {
    let (_dir, repo, restores) = demo_repo();
    let sim = Arc::new(SimCloud::new(SimConfig::default()));
    let ex = Executor::new(sim.clone(), Arc::new(repo));
    let mut r = restores[0].clone();
    r.request.placement = vmrestore::model::Placement::InPlace; // no overwrite confirmed: CV-12 blocks
    let blocked = plan_for(&r, "commvault");
    let e = refusal(&ex, &blocked).await;
    assert_eq!(e.code(), "E_PLAN_BLOCKED");
    assert!(e.to_string().contains("CV-12"));

    let mut changed = restores[0].clone();
    changed
        .restore_point
        .vm
        .tags
        .insert("edited".into(), "after backup".into());
    let stale = plan_for(&changed, "commvault");
    let e = refusal(&ex, &stale).await;
    assert_eq!(e.code(), "E_STALE_PLAN");

    let mut cat = Catalog::builtin();
    cat.vm_sizes.pop();
    let other_catalog = plan_with(&restores[0], "commvault", &cat, None);
    let e = refusal(&ex, &other_catalog).await;
    assert_eq!(e.code(), "E_STALE_PLAN");
    assert!(e.to_string().contains("catalog"));
    assert_eq!(
        sim.dump()["resources"],
        serde_json::json!([]),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_vhd_destination_writes_disks_qemu_reads_as_identical() {
    let (dir, repo, restores) = demo_repo();
    let out = dir.path().join("out");
    let sink = Arc::new(LocalVhdSink::new(&out).unwrap());
    let sim = SimCloud::new(SimConfig::default());
    let plan = plan_for(&restores[1], "veeam");
    let report = run_to_sink(&sim, &repo, &plan, sink.clone(), ExecOptions::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert_eq!(
        plan.target.disks.len(),
        3,
        "VE-04: the volume group is a disk of its own"
    );
    for d in &plan.target.disks {
        let vhd = sink.vhd_path(&d.name);
        let raw = demo::image_path(
            dir.path(),
            "db01",
            &d.source_disk,
            d.volume_group.as_deref(),
        );
        let padded = dir.path().join(format!("{}.padded", d.name));
        padded_copy(&raw, &padded, d.size_bytes);
        let out = std::process::Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "vpc"])
            .arg(&padded)
            .arg(&vhd)
            .output()
            .expect("qemu-img");
        assert!(
            out.status.success(),
            "{}: {}",
            d.name,
            String::from_utf8_lossy(&out.stdout)
        );
        let info = std::process::Command::new("qemu-img")
            .args(["info", "-f", "vpc", "--output=json"])
            .arg(&vhd)
            .output()
            .unwrap();
        let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(info["virtual-size"].as_u64(), Some(d.size_bytes));
    }
    let template: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("db01.template.json")).unwrap()).unwrap();
    assert_eq!(
        template["resources"][0]["properties"]["storageProfile"]["dataDisks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let saved: Report =
        serde_json::from_slice(&std::fs::read(out.join("db01.report.json")).unwrap()).unwrap();
    assert_eq!(saved.outcome, Outcome::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_steps_respect_their_concurrency_limit() {
    let (_dir, repo, restores) = demo_repo();
    let mut op_latency = std::collections::HashMap::new();
    op_latency.insert("create".to_string(), Duration::from_millis(4));
    let sim = SimCloud::new(SimConfig {
        op_latency,
        ..Default::default()
    });
    let plan = plan_for(&restores[1], "veeam");
    let (progress, log) = events();
    let opts = ExecOptions {
        control_concurrency: 1,
        data_concurrency: 4,
        ..Default::default()
    };
    run_succeeded(&sim, &repo, &plan, opts, Some(progress)).await;
    let (mut open, mut max) = (0, 0);
    for e in log.lock().unwrap().iter() {
        match e {
            Event::StepStarted { step } if !step.starts_with("write:") => {
                open += 1;
                max = max.max(open);
            }
            Event::StepFinished { step, .. } if !step.starts_with("write:") => open -= 1,
            _ => {}
        }
    }
    assert_eq!(max, 1, "control steps overlapped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_can_be_spawned_on_the_runtime() {
    let (_dir, repo, restores) = demo_repo();
    let plan = plan_for(&restores[2], "commvault");
    let ex = Arc::new(Executor::new(
        Arc::new(SimCloud::new(SimConfig::default())),
        Arc::new(repo),
    ));
    // Compiles only if the run's future is Send + 'static once it owns its inputs.
    let report = tokio::spawn(async move { ex.run(&plan, CancellationToken::new(), None).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
}

/// Issue 12, item 3: in place, a failure at any step after the point of no
/// return ends with a VM (the new one kept, or the old one put back on its
/// kept disks), nothing the restore needs cleaned up, outcome
/// `needs_attention` and the report saying which VM exists. A failure
/// before it leaves the existing VM and cleans up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_failures_after_the_point_of_no_return_always_leave_a_vm() {
    let (_dir, repo, restores) = demo_repo();
    let r = in_place(&restores[0]);
    let existing = existing_web01();
    let plan = plan_for(&r, "commvault");
    assert!(plan.is_ready(), "{:?}", plan.findings);
    let ponr = step_index(&plan, StepKind::DeleteExistingVm);
    let vm_at = step_index(&plan, StepKind::VirtualMachine);
    let retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        ..Default::default()
    };
    let mut checked = 0;
    for (i, s) in plan.steps.iter().enumerate() {
        if matches!(
            s.kind,
            StepKind::WriteDisk | StepKind::FinalizeDisk | StepKind::VerifyRestorePoint
        ) {
            continue;
        }
        let sim = SimCloud::new(SimConfig {
            existing_vms: vec![existing.clone()],
            faults: Faults {
                always_fail: vec![format!("step:{}", s.id)],
                ..Default::default()
            },
            ..Default::default()
        });
        let opts = ExecOptions {
            retry: retry.clone(),
            ..Default::default()
        };
        let report = run_sim(&sim, &repo, &plan, opts, None).await.unwrap();
        let dump = sim.dump();
        let vms: Vec<&serde_json::Value> = dump["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["resource"]["kind"] == "virtual_machine")
            .collect();
        let vm = report.vm.clone().expect("the report says which VM exists");
        assert_eq!(vm.name, "web01");
        if i < ponr {
            assert_eq!(
                report.outcome,
                Outcome::Failed,
                "{}: {:?}",
                s.id,
                report.notes
            );
            assert_eq!(vm.state, VmState::Original, "{}", s.id);
            assert!(only_existing_web01(&dump, &vms), "{}: {dump}", s.id);
            continue;
        }
        checked += 1;
        assert_eq!(
            report.outcome,
            Outcome::NeedsAttention,
            "{}: {:?}",
            s.id,
            report.error
        );
        assert!(
            report.cleaned_up.is_empty(),
            "{}: {:?}",
            s.id,
            report.cleaned_up
        );
        // Every new disk is still there.
        for d in &plan.target.disks {
            assert!(
                sim.disk_bytes(&d.name).is_some(),
                "{}: disk {} gone",
                s.id,
                d.name
            );
        }
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("point of no return")),
            "{}: {:?}",
            s.id,
            report.notes
        );
        if i > vm_at {
            assert_eq!(vm.state, VmState::Restored, "{}: {:?}", s.id, report.notes);
            assert_eq!(vms.len(), 1, "{}", s.id);
        } else {
            assert_eq!(
                vm.state,
                VmState::OriginalRecreated,
                "{}: {:?}",
                s.id,
                report.notes
            );
            assert!(only_existing_web01(&dump, &vms), "{}: {dump}", s.id);
        }
    }
    assert!(
        checked >= 3,
        "steps after the point of no return: {checked}"
    );
}

/// Issue 12, item 2: the executor runs only what the planner makes of the
/// plan's recorded inputs. A blocked plan made `ready` with steps grafted
/// in, or a ready plan with an extra `delete_existing_vm` aimed at another
/// VM, is refused before the first cloud change, naming what differs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_plans_are_refused_before_any_cloud_change() {
    let (_dir, repo, restores) = demo_repo();
    let good = plan_for(&restores[0], "commvault");
    assert!(good.is_ready());
    let run = |plan: Plan, opts: ExecOptions| {
        let repo = repo.clone();
        async move {
            let sim = SimCloud::new(SimConfig::default());
            (run_sim(&sim, &repo, &plan, opts, None).await, sim)
        }
    };
    let refused = |r: &vmrestore::Result<Report>, sim: &SimCloud, code: &str, path: &str| {
        let e = r.as_ref().expect_err("the edited plan ran");
        assert_eq!(e.code(), code, "{e}");
        assert!(e.to_string().contains(path), "{e}");
        let dump = sim.dump();
        assert_eq!(
            dump["resources"],
            serde_json::json!([]),
            "something was created"
        );
        assert_eq!(dump["actions"], serde_json::json!([]), "an action ran");
    };

    // Blocked (in place without overwrite confirmed: CV-12), made ready,
    // with the steps of a ready plan grafted in.
    let mut r = restores[0].clone();
    r.request.placement = vmrestore::model::Placement::InPlace;
    let mut blocked = plan_for(&r, "commvault");
    assert!(!blocked.is_ready());
    blocked.verdict = vmrestore::plan::Verdict::Ready;
    blocked
        .findings
        .retain(|f| f.severity != vmrestore::plan::Severity::Block);
    blocked.steps = good.steps.clone();
    let (res, sim) = run(blocked, ExecOptions::default()).await;
    refused(&res, &sim, "E_PLAN_MISMATCH", "$.");

    // A ready plan with a grafted delete of another VM.
    let mut evil = good.clone();
    let mut step = evil.steps[0].clone();
    step.id = "delete-vm".into();
    step.kind = StepKind::DeleteExistingVm;
    step.resource = "finance-db".into();
    evil.steps.push(step);
    let (res, sim) = run(evil, ExecOptions::default()).await;
    refused(&res, &sim, "E_PLAN_MISMATCH", "$.steps[");

    // An operation pointed at another VM (the operation is what the cloud
    // is handed) is refused, naming the operation's field.
    let mut evil = good.clone();
    let vm_step = evil
        .steps
        .iter()
        .position(|s| s.kind == StepKind::VirtualMachine)
        .expect("a VM step");
    match &mut evil.steps[vm_step].operation {
        vmrestore::plan::Operation::Create {
            spec: vmrestore::plan::ResourceSpec::VirtualMachine { resource_group, .. },
        } => *resource_group = "finance-rg".into(),
        other => panic!("the VM step creates a VM: {other:?}"),
    }
    let (res, sim) = run(evil, ExecOptions::default()).await;
    refused(
        &res,
        &sim,
        "E_PLAN_MISMATCH",
        &format!("$.steps[{vm_step}].operation.spec.resource_group"),
    );

    // A changed target (another VM name) is refused too.
    let mut evil = good.clone();
    evil.target.vm_name = "finance-db".into();
    let (res, sim) = run(evil, ExecOptions::default()).await;
    refused(&res, &sim, "E_PLAN_MISMATCH", "$.target.vm_name");

    // The plan survives JSON (as through a binding or a browser) and runs.
    let text = vmrestore::plan::to_json(&good);
    let back: Plan = serde_json::from_str(&text).unwrap();
    let (res, _) = run(back, ExecOptions::default()).await;
    assert_eq!(res.unwrap().outcome, Outcome::Succeeded);

    // Seals: a host that requires one runs only plans it sealed.
    let key = SealKey::new(b"0123456789abcdef-host-key".to_vec()).unwrap();
    assert!(!format!("{key:?}").contains("0123456789"));
    let sealed_opts = || ExecOptions {
        seal_key: Some(key.clone()),
        ..Default::default()
    };
    let (res, sim) = run(good.clone(), sealed_opts()).await;
    refused(&res, &sim, "E_PLAN_SEAL", "not sealed");
    let mut sealed = good.clone();
    vmrestore::plan::seal(&mut sealed, key.expose()).unwrap();
    let mut tampered = sealed.clone();
    tampered.inputs.request.overwrite_confirmed = true;
    let (res, sim) = run(tampered, sealed_opts()).await;
    refused(&res, &sim, "E_PLAN_SEAL", "does not match");
    let mut other = good.clone();
    vmrestore::plan::seal(&mut other, b"another key of 16+ bytes").unwrap();
    let (res, sim) = run(other, sealed_opts()).await;
    refused(&res, &sim, "E_PLAN_SEAL", "does not match");
    let text = vmrestore::plan::to_json(&sealed);
    let back: Plan = serde_json::from_str(&text).unwrap();
    let (res, _) = run(back, sealed_opts()).await;
    assert_eq!(res.unwrap().outcome, Outcome::Succeeded);
}

/// Issue 12, item 4 (SimCloud): the cloud deletes only what it shows as
/// made under the resource's key; another restore's resource, or one
/// claimed under a key it was not made with, is refused and kept.
#[tokio::test]
async fn simcloud_deletes_only_what_was_made_under_the_key() {
    let sim = SimCloud::new(SimConfig::default());
    let spec = ResourceSpec::ResourceGroup {
        subscription_id: demo::SUBSCRIPTION.into(),
        name: "rg-finance".into(),
        region: "westeurope".into(),
    };
    let theirs = sim.create("someoneelse:rg", &spec).await.unwrap();
    let claimed = Resource {
        key: "0123456789abcdef:rg".into(),
        ..theirs.clone()
    };
    let e = sim.delete(&claimed).await.unwrap_err();
    assert!(e.to_string().contains("not created by this restore"), "{e}");
    assert_eq!(sim.names("resource_group"), vec!["rg-finance".to_string()]);
    sim.delete(&theirs).await.unwrap();
    assert!(sim.names("resource_group").is_empty());
}

/// Cancels `plan` (kept, with a journal) once 40 MiB are written.
async fn cancel_midway(ex: &Executor, plan: &Plan) -> Report {
    let (token, progress) = cancel_after(40 << 20);
    let r = ex.run(plan, token, Some(progress)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Cancelled);
    r
}

fn vhd_matches(dir: &Path, sink: &LocalVhdSink, d: &vmrestore::plan::TargetDisk, vm: &str) -> bool {
    let vhd = std::fs::read(sink.vhd_path(&d.name)).unwrap();
    let data = &vhd[..vhd.len() - 512];
    data == source_image(
        dir,
        vm,
        &d.source_disk,
        d.volume_group.as_deref(),
        data.len(),
    )
    .as_slice()
}

/// Issue 12, item 7: resume trusts no journal about the destination's
/// bytes. Cancel (kept, with a journal), then resume into an emptied output
/// directory, into another directory, or against another cloud: every
/// chunk the destination cannot prove is written again, and the disks are
/// byte-identical wherever the report says `verified`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_proves_journaled_chunks_at_the_destination_or_rewrites_them() {
    let (dir, repo, restores) = demo_repo();
    let repo = Arc::new(repo);
    let plan = plan_for(&restores[0], "commvault");
    for case in ["emptied", "elsewhere"] {
        let out = dir.path().join(format!("out-{case}"));
        let journal = dir.path().join(format!("{case}.journal"));
        let sink = Arc::new(LocalVhdSink::new(&out).unwrap());
        let ex = Executor::new(Arc::new(slow_writes(3)), repo.clone())
            .with_sink(sink.clone())
            .with_options(resumable(&journal));
        cancel_midway(&ex, &plan).await;
        let sink = if case == "emptied" {
            for e in std::fs::read_dir(&out).unwrap() {
                std::fs::remove_file(e.unwrap().path()).unwrap();
            }
            sink
        } else {
            Arc::new(LocalVhdSink::new(dir.path().join("out-other")).unwrap())
        };
        let sim = SimCloud::new(SimConfig::default());
        let report = run_to_sink(&sim, &repo, &plan, sink.clone(), resumable(&journal))
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            Outcome::Succeeded,
            "{case}: {:?}",
            report.error
        );
        assert!(
            has_note(&report, "written again"),
            "{case}: {:?}",
            report.notes
        );
        for d in &plan.target.disks {
            let r = report.disks.iter().find(|x| x.name == d.name).unwrap();
            assert!(r.verified, "{case}: {}", d.name);
            assert!(
                vhd_matches(dir.path(), &sink, d, "web01"),
                "{case}: {} differs",
                d.name
            );
        }
    }

    // Against another cloud (a new SimCloud: the disks are new and empty).
    let journal = dir.path().join("cloud.journal");
    let ex =
        Executor::new(Arc::new(slow_writes(3)), repo.clone()).with_options(resumable(&journal));
    cancel_midway(&ex, &plan).await;
    let other = SimCloud::new(SimConfig::default());
    let report = run_sim(&other, &repo, &plan, resumable(&journal), None)
        .await
        .unwrap();
    // The journal's disks are not in this cloud: the run fails (or, were
    // they found, rewrites); it never reports a wrong disk as verified.
    for r in report.disks.iter().filter(|r| r.verified) {
        let got = other.disk_bytes(&r.name).unwrap();
        let d = plan.target.disks.iter().find(|d| d.name == r.name).unwrap();
        assert!(
            got == source_image(dir.path(), "web01", &d.source_disk, None, got.len()),
            "{} is reported verified and differs from the source",
            d.name
        );
    }
    if report.outcome != Outcome::Succeeded {
        let e = report.error.as_ref().unwrap();
        assert!(e.message.contains("web01-dr"), "{}", e.message);
    }

    // Resumed into the same, intact directory: nothing is written again.
    let out = dir.path().join("out-same");
    let journal = dir.path().join("same.journal");
    let sink = Arc::new(LocalVhdSink::new(&out).unwrap());
    let ex = Executor::new(Arc::new(slow_writes(3)), repo.clone())
        .with_sink(sink.clone())
        .with_options(resumable(&journal));
    cancel_midway(&ex, &plan).await;
    let report = ex.run(&plan, CancellationToken::new(), None).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert!(
        !report.notes.iter().any(|n| n.contains("written again")),
        "{:?}",
        report.notes
    );
    assert!(report.disks.iter().map(|d| d.chunks_resumed).sum::<u64>() > 0);
    for d in &plan.target.disks {
        assert!(
            vhd_matches(dir.path(), &sink, d, "web01"),
            "{} differs",
            d.name
        );
    }
}

/// Issue 12, item 9: with a sink, the disks' bytes go to the sink and the
/// cloud's disks would get none, so no cloud step runs: no empty disk, no
/// VM on blank disks; the report says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_disks_go_to_a_sink_creates_no_cloud_disk_and_no_vm() {
    let (dir, repo, restores) = demo_repo();
    let plan = plan_for(&restores[0], "commvault");
    let sink = Arc::new(LocalVhdSink::new(dir.path().join("out")).unwrap());
    let sim = SimCloud::new(SimConfig::default());
    let report = run_to_sink(&sim, &repo, &plan, sink.clone(), ExecOptions::default())
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert_eq!(
        sim.dump()["resources"],
        serde_json::json!([]),
        "the cloud was changed"
    );
    assert_eq!(sim.dump()["actions"], serde_json::json!([]));
    assert_eq!(report.vm.as_ref().unwrap().state, VmState::NotCreated);
    for s in &report.steps {
        let data = matches!(
            s.kind,
            StepKind::VerifyRestorePoint
                | StepKind::WriteDisk
                | StepKind::FinalizeDisk
                | StepKind::Template
        );
        assert_eq!(
            s.status == StepStatus::Skipped,
            !data,
            "{}: {:?}",
            s.id,
            s.status
        );
    }
    assert!(has_note(&report, "no VM was created"), "{:?}", report.notes);
    for d in &plan.target.disks {
        assert!(report.disks.iter().any(|r| r.name == d.name && r.verified));
        assert!(vhd_matches(dir.path(), &sink, d, "web01"));
    }
}

/// Issue 13: a cloud declares what it can perform. A Veeam plan (its boot
/// fix, among others) given to a cloud that declares ArmCloud's
/// capabilities is refused before any call with one error listing every
/// step it cannot run; planned for that cloud, it is blocked (VMR-07) with
/// one finding per step instead of `ready`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_that_cannot_run_a_step_refuses_the_plan_before_any_change() {
    let (_dir, repo, restores) = demo_repo();
    let arm = vmrestore::azure::ArmCloud::declared_capabilities();
    let sim = SimCloud::new(SimConfig {
        capabilities: arm.clone(),
        ..Default::default()
    });
    let plan = plan_for(&restores[0], "veeam");
    assert!(plan.is_ready(), "{:?}", plan.findings);
    let cannot: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| !arm.step_kinds.contains(&s.kind))
        .map(|s| &*s.id)
        .collect();
    assert!(
        plan.steps.iter().any(|s| s.kind == StepKind::BootFix),
        "the Veeam plan has a boot fix"
    );
    let err = run_sim(&sim, &repo, &plan, ExecOptions::default(), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "E_UNSUPPORTED", "{err}");
    let msg = err.to_string();
    for id in &cannot {
        assert!(msg.contains(id), "{id} missing from: {msg}");
    }
    assert!(msg.contains("boot_fix"), "{msg}");
    assert!(sim.names("resource_group").is_empty());
    assert!(sim.names("disk").is_empty());

    // Planned for that cloud: blocked, one VMR-07 finding per step.
    let for_arm = plan_with(
        &restores[0],
        "veeam",
        &Catalog::builtin(),
        Some(arm.clone()),
    );
    assert!(!for_arm.is_ready());
    let vmr07: Vec<_> = for_arm
        .blocking()
        .filter(|f| f.rule_id == "VMR-07")
        .collect();
    assert_eq!(vmr07.len(), cannot.len(), "{vmr07:?}");
    for id in &cannot {
        assert!(vmr07.iter().any(|f| f.message.contains(id)), "{id}");
    }
    assert_eq!(
        for_arm.inputs.capabilities.as_ref(),
        Some(&arm),
        "the capabilities are recorded for re-planning"
    );
    // A Commvault restore of the same VM runs on such a cloud, and a plan
    // made for it re-plans identically (the capabilities are an input).
    let cv = plan_with(&restores[0], "commvault", &Catalog::builtin(), Some(arm));
    assert!(cv.is_ready(), "{:?}", cv.findings);
    let (_dir2, repo2, _) = demo_repo();
    let report = run_sim(&sim, &repo2, &cv, ExecOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
}

/// Issue 13: where the disks' bytes go and when the NSG attaches are the
/// planner's decisions, carried by the plan (`target.disks_staged`,
/// `target.nsg_after_vm`); the executor reads them instead of deciding
/// again, and a plan whose decisions were edited, or of an older format,
/// is refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_carries_the_staging_and_nsg_decisions() {
    let (_dir, repo, restores) = demo_repo();
    let plan = plan_for(&restores[0], "commvault");
    assert!(plan.is_ready());
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["format_version"], "2.0");
    assert!(json["target"]["disks_staged"].is_boolean());
    assert!(json["target"]["nsg_after_vm"].is_boolean());
    let detail = |p: &Plan| {
        p.steps
            .iter()
            .find(|s| s.kind == StepKind::CreateDisk)
            .map(|s| s.detail.clone())
            .unwrap()
    };
    assert_eq!(
        detail(&plan).contains("page blob"),
        plan.target.disks_staged,
        "the step says what the executor does: {}",
        detail(&plan)
    );
    for (path, edit) in [
        (
            "$.format_version",
            serde_json::json!({"format_version": "1.0"}),
        ),
        (
            "$.target.disks_staged",
            serde_json::json!({"target": {"disks_staged": !plan.target.disks_staged}}),
        ),
        (
            "$.target.nsg_after_vm",
            serde_json::json!({"target": {"nsg_after_vm": !plan.target.nsg_after_vm}}),
        ),
    ] {
        let mut v = json.clone();
        for (k, x) in edit.as_object().unwrap() {
            match x {
                serde_json::Value::Object(o) => {
                    for (k2, x2) in o {
                        v[k][k2] = x2.clone();
                    }
                }
                other => v[k] = other.clone(),
            }
        }
        let edited: Plan = serde_json::from_value(v).unwrap();
        let sim = SimCloud::new(SimConfig::default());
        let err = run_sim(&sim, &repo, &edited, ExecOptions::default(), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "E_PLAN_MISMATCH", "{err}");
        assert!(err.to_string().contains(path), "{path}: {err}");
        assert!(sim.names("resource_group").is_empty());
    }
}

/// Whether one of the report's notes says `text`.
fn has_note(report: &vmrestore::exec::Report, text: &str) -> bool {
    report.notes.iter().any(|n| n.contains(text))
}

/// Runs `plan` on `sim` and asserts that it succeeded.
async fn run_succeeded(
    sim: &SimCloud,
    repo: &vmrestore::repo::LocalRepository,
    plan: &vmrestore::plan::Plan,
    opts: ExecOptions,
    progress: Option<vmrestore::exec::ProgressFn>,
) -> vmrestore::exec::Report {
    let report = run_sim(sim, repo, plan, opts, progress).await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    report
}

/// The cloud holds the existing web01 as it was and no VM the run made.
fn only_existing_web01(dump: &serde_json::Value, made: &[&serde_json::Value]) -> bool {
    dump["existing_vms"] == serde_json::json!(["web01"]) && made.is_empty()
}
