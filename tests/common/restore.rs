//! Shared set-up of the tests that run restores: the demo repository, plans
//! of its restores, web01 restored in place over its running VM, runs of a
//! plan, a run cancelled midway, and the source bytes a restored disk holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vmrestore::demo::{self, DemoRestore};
use vmrestore::exec::{
    Cloud, DiskSink, Event, ExecOptions, Executor, ProgressFn, Report, SimCloud, SimConfig,
    StepReport, StepStatus,
};
use vmrestore::model::{Catalog, ExistingVm, Placement};
use vmrestore::plan::{Action, Capabilities, Plan, Planner, StepKind};
use vmrestore::policy::Profile;
use vmrestore::repo::{LocalRepository, Repository};

/// The demo repository, built in a temporary directory (the first element:
/// keep it alive), and its restores.
pub fn demo_repo() -> (tempfile::TempDir, LocalRepository, Vec<DemoRestore>) {
    let dir = tempfile::tempdir().unwrap();
    let (repo, restores) = demo::build(dir.path()).unwrap();
    (dir, repo, restores)
}

/// The demo restore of the VM `name`.
pub fn restore_of<'a>(restores: &'a [DemoRestore], name: &str) -> &'a DemoRestore {
    restores.iter().find(|r| r.name == name).unwrap()
}

/// Plans `r` with the built-in `profile` against `catalog`, for a cloud
/// that declares `capabilities` when given.
pub fn plan_with(
    r: &DemoRestore,
    profile: &str,
    catalog: &Catalog,
    capabilities: Option<Capabilities>,
) -> Plan {
    let mut planner = Planner::new(catalog).unwrap();
    if let Some(c) = capabilities {
        planner = planner.for_cloud(c);
    }
    planner
        .plan(
            &r.restore_point,
            &r.request,
            &[Profile::builtin(profile).unwrap()],
        )
        .unwrap()
}

/// Plans `r` with the built-in `profile` against the built-in catalog.
pub fn plan_for(r: &DemoRestore, profile: &str) -> Plan {
    plan_with(r, profile, &Catalog::builtin(), None)
}

/// How many steps of `plan` create a resource.
pub fn create_step_count(plan: &Plan) -> usize {
    plan.steps
        .iter()
        .filter(|s| s.action == Action::Create)
        .count()
}

/// Where the first step of `kind` stands in `plan`.
pub fn step_index(plan: &Plan, kind: StepKind) -> usize {
    plan.steps.iter().position(|s| s.kind == kind).unwrap()
}

/// `r` restored in place over its running VM, the overwrite confirmed.
pub fn in_place(r: &DemoRestore) -> DemoRestore {
    let mut r = r.clone();
    r.request.placement = Placement::InPlace;
    r.request.overwrite_confirmed = true;
    r
}

/// The running web01 that an in-place restore of it replaces.
pub fn existing_web01() -> ExistingVm {
    ExistingVm {
        subscription_id: demo::SUBSCRIPTION.into(),
        resource_group: "rg-prod".into(),
        name: "web01".into(),
        region: "westeurope".into(),
        managed: true,
        encrypted: false,
        generalized: false,
    }
}

/// A SimCloud whose disk writes each take `ms` milliseconds.
pub fn slow_writes(ms: u64) -> SimCloud {
    SimCloud::new(SimConfig {
        write_latency: Duration::from_millis(ms),
        ..Default::default()
    })
}

/// Whether no VM step among a report's `steps` ran.
pub fn no_vm_step_ran(steps: &[StepReport]) -> bool {
    steps
        .iter()
        .all(|s| s.kind != StepKind::VirtualMachine || s.status == StepStatus::NotRun)
}

/// Runs `plan` once, not cancelled, writing the disks to `sink` when given:
/// what `Executor::run` returned.
async fn execute(
    cloud: Arc<dyn Cloud>,
    repo: Arc<dyn Repository>,
    plan: &Plan,
    opts: ExecOptions,
    sink: Option<Arc<dyn DiskSink>>,
    progress: Option<ProgressFn>,
) -> vmrestore::Result<Report> {
    let mut ex = Executor::new(cloud, repo).with_options(opts);
    if let Some(sink) = sink {
        ex = ex.with_sink(sink);
    }
    ex.run(plan, CancellationToken::new(), progress).await
}

/// Runs `plan` once on `cloud` from `repo`, not cancelled.
pub async fn run_plan(
    cloud: Arc<dyn Cloud>,
    repo: Arc<dyn Repository>,
    plan: &Plan,
    opts: ExecOptions,
    progress: Option<ProgressFn>,
) -> vmrestore::Result<Report> {
    execute(cloud, repo, plan, opts, None, progress).await
}

/// Runs `plan` once on `sim` (a handle to the same cloud) from `repo`.
pub async fn run_sim(
    sim: &SimCloud,
    repo: &LocalRepository,
    plan: &Plan,
    opts: ExecOptions,
    progress: Option<ProgressFn>,
) -> vmrestore::Result<Report> {
    let (cloud, repo) = (Arc::new(sim.clone()), Arc::new(repo.clone()));
    execute(cloud, repo, plan, opts, None, progress).await
}

/// Runs `plan` once on `sim` from `repo`, the disks' bytes going to `sink`.
pub async fn run_to_sink(
    sim: &SimCloud,
    repo: &LocalRepository,
    plan: &Plan,
    sink: Arc<dyn DiskSink>,
    opts: ExecOptions,
) -> vmrestore::Result<Report> {
    let (cloud, repo) = (Arc::new(sim.clone()), Arc::new(repo.clone()));
    execute(cloud, repo, plan, opts, Some(sink), None).await
}

/// A token, and a progress callback that cancels it once a disk has
/// `bytes` written.
pub fn cancel_after(bytes: u64) -> (CancellationToken, ProgressFn) {
    let token = CancellationToken::new();
    let t = token.clone();
    let progress: ProgressFn = Arc::new(move |e: &Event| {
        if let Event::Bytes { done, .. } = e
            && *done >= bytes
        {
            t.cancel();
        }
    });
    (token, progress)
}

/// The options of a run that can be resumed: its journal at `journal`,
/// kept on cancel, one data stream.
pub fn resumable(journal: &Path) -> ExecOptions {
    ExecOptions {
        journal: Some(journal.to_path_buf()),
        keep_on_cancel: true,
        data_concurrency: 1,
        ..Default::default()
    }
}

/// Where the chunk of digest `sha` is stored in `repo`.
pub fn chunk_path(repo: &LocalRepository, sha: &str) -> PathBuf {
    repo.root().join("chunks").join(&sha[..2]).join(sha)
}

/// The source image of a demo disk under `dir`, cut or zero-padded to
/// `size` bytes.
pub fn source_image(dir: &Path, vm: &str, disk: &str, vg: Option<&str>, size: usize) -> Vec<u8> {
    let mut b = std::fs::read(demo::image_path(dir, vm, disk, vg)).unwrap();
    b.resize(size, 0);
    b
}

/// Copies the raw image `raw` to `to`, zero-padded (or cut) to `len` bytes:
/// what a VHD of `len` data bytes holds.
pub fn padded_copy(raw: &Path, to: &Path, len: u64) {
    std::fs::copy(raw, to).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(to)
        .unwrap()
        .set_len(len)
        .unwrap();
}
