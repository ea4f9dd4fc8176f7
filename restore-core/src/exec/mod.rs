//! The executor: runs a [`Plan`] over a [`Cloud`] and a [`Repository`].
//!
//! * Runs a plan and nothing else; refuses a blocked plan, and a stale one
//!   (the restore point or the catalog changed since planning).
//! * Schedules the step graph with bounded concurrency, separately for
//!   control-plane steps and for disk data streams.
//! * Streams allocated chunks only; checks each chunk's SHA-256 before it is
//!   written and the disk digest before the disk is finished; a mismatch
//!   stops that disk with an error naming the disk and offset, and no VM is
//!   created from it (the VM step depends on every disk's finish).
//! * Retries transient failures with exponential backoff and jitter,
//!   honouring Retry-After, and gives up with the history of attempts.
//! * On failure or cancellation, deletes in reverse order what the run
//!   created; never touches the repository. An in-place restore deletes the
//!   existing VM only after the restore point is verified, keeping its disks.
//! * Reports progress as events, keeps a journal to resume from, and ends
//!   with a [`Report`].

mod journal;
mod local;
mod report;
mod retry;

pub use crate::cloud::*;
pub use journal::{Journal, JournalState};
pub use local::{LocalVhdSink, arm_template, arm_template_for_target};
pub use report::*;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::model::{Catalog, DiskRole, Generation, SecurityType, Validate};
use crate::plan::{Plan, Step, StepKind, Target, Verdict, catalog_digest, restore_point_digest};
use crate::repo::Manifest;
pub use retry::RetryPolicy;
use retry::{Stop, retry};

/// Options of a run.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Control-plane steps in flight at once.
    pub control_concurrency: usize,
    /// Disks streamed at once.
    pub data_concurrency: usize,
    /// Chunks read ahead per disk while earlier ones are written.
    pub read_ahead: usize,
    /// Chunk writes in flight per disk (a page blob takes several at once;
    /// the journal records each chunk when its write returns).
    pub write_concurrency: usize,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Journal file; `None` runs without one (no resume).
    pub journal: Option<PathBuf>,
    /// The application's service principal, the only one granted key-vault access (CV-05).
    pub service_principal: String,
    /// Compare the cloud's catalog with the plan's (stale check).
    pub check_catalog: bool,
    /// On cancellation, keep what was made so that a later run resumes
    /// from the journal (default: clean up, as on failure).
    pub keep_on_cancel: bool,
    /// The catalog the plan was made with, when the cloud's is not checked
    /// (`check_catalog: false`): the executor plans again with it. Default:
    /// the built-in catalog.
    pub catalog: Option<Catalog>,
    /// Run only plans sealed with this key ([`crate::plan::seal`]).
    pub seal_key: Option<SealKey>,
}

/// A key for plan seals (HMAC-SHA256): `Debug` never shows it.
#[derive(Clone)]
pub struct SealKey(Vec<u8>);

impl SealKey {
    /// A key of at least 16 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let b = bytes.into();
        if b.len() < 16 {
            return Err(Error::invalid(
                "seal_key",
                "a seal key needs at least 16 bytes",
            ));
        }
        Ok(SealKey(b))
    }
    /// The key's bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            control_concurrency: 8,
            data_concurrency: 4,
            read_ahead: 4,
            write_concurrency: 4,
            retry: RetryPolicy::default(),
            journal: None,
            service_principal: "vmrestore-app".into(),
            check_catalog: true,
            keep_on_cancel: false,
            catalog: None,
            seal_key: None,
        }
    }
}

/// Receives progress events.
pub type ProgressFn = Arc<dyn Fn(&Event) + Send + Sync>;

/// A progress callback that forwards events to a channel, and the receiving
/// end, for consumers that prefer a stream.
pub fn progress_channel() -> (ProgressFn, tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (
        Arc::new(move |e: &Event| {
            let _ = tx.send(e.clone());
        }),
        rx,
    )
}

/// Why a step failed.
#[derive(Debug)]
struct StepFailure {
    code: &'static str,
    message: String,
    attempts: Vec<Attempt>,
    cancelled: bool,
}

impl StepFailure {
    fn from_error(e: Error) -> Self {
        StepFailure {
            code: e.code(),
            message: e.to_string(),
            attempts: Vec::new(),
            cancelled: false,
        }
    }
    fn cancelled() -> Self {
        StepFailure {
            code: "E_CANCELLED",
            message: "cancelled".into(),
            attempts: Vec::new(),
            cancelled: true,
        }
    }
}

/// Runs plans. Build one per cloud and repository; it can run many plans.
pub struct Executor {
    cloud: Arc<dyn Cloud>,
    repo: Arc<dyn Repository>,
    sink: Option<Arc<dyn DiskSink>>,
    opts: ExecOptions,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("options", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Shared state of one run.
struct Run<'a> {
    ex: &'a Executor,
    plan: &'a Plan,
    manifest: Manifest,
    journal: Option<Journal>,
    resources: Mutex<HashMap<String, Resource>>,
    created: Mutex<Vec<Resource>>,
    written: Mutex<HashMap<String, HashSet<u64>>>,
    /// Per disk, chunks a journal recorded that the destination did not hold.
    rewritten: Mutex<HashMap<String, u64>>,
    /// Steps not run by design (cloud steps when the disks go to a sink).
    skipped: Mutex<HashSet<String>>,
    writers: Mutex<HashMap<String, Arc<dyn DiskWriter>>>,
    disks: Mutex<HashMap<String, DiskReport>>,
    attempts: Mutex<HashMap<String, Vec<Attempt>>>,
    progress: Option<ProgressFn>,
    stop: CancellationToken,
    start: Instant,
    resumed: bool,
}

impl Executor {
    /// An executor over `cloud` and `repo`, with default options.
    pub fn new(cloud: Arc<dyn Cloud>, repo: Arc<dyn Repository>) -> Self {
        Executor {
            cloud,
            repo,
            sink: None,
            opts: ExecOptions::default(),
        }
    }

    /// Sends disk data (and artifacts) to `sink` instead of the cloud's disks.
    pub fn with_sink(mut self, sink: Arc<dyn DiskSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Sets the options.
    pub fn with_options(mut self, opts: ExecOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Runs `plan`. Errors are for runs that cannot start (blocked or stale
    /// plan, unreadable repository, a journal of another plan); anything
    /// that goes wrong after the first step starts ends in a [`Report`] with
    /// outcome `failed` or `cancelled`, after clean-up.
    pub async fn run(
        &self,
        plan: &Plan,
        cancel: CancellationToken,
        progress: Option<ProgressFn>,
    ) -> Result<Report> {
        if plan.verdict == Verdict::Blocked {
            return Err(Error::PlanBlocked(
                plan.blocking().map(|f| f.rule_id.clone()).collect(),
            ));
        }
        // A sealed plan is checked first: nothing of an unsealed or
        // tampered plan is used, not even its restore point ID.
        if let Some(key) = &self.opts.seal_key {
            crate::plan::verify_seal(plan, key.expose())?;
        }
        // Every step that will run must be one the cloud can run: checked
        // here, before any call, so a plan never fails halfway on a step
        // kind the cloud never had.
        let caps = self.cloud.capabilities();
        let sink = self.sink.is_some();
        let unsupported = caps.unsupported(plan, |s| !sink || runs_with_sink(s.kind));
        if !unsupported.is_empty() {
            return Err(Error::Unsupported {
                cloud: caps.cloud,
                steps: unsupported.iter().map(ToString::to_string).collect(),
            });
        }
        let target = &plan.target;
        let manifest = self.repo.manifest(&target.restore_point_id).await?;
        if restore_point_digest(&manifest.restore_point) != plan.fingerprint.restore_point {
            return Err(Error::StalePlan(format!(
                "restore point '{}'",
                target.restore_point_id
            )));
        }
        manifest.restore_point.validate_at("$.restore_point")?;
        // The journal is opened (and locked) before any cloud call: a second
        // run on the same journal stops here with E_JOURNAL_LOCKED.
        let (journal, state) = match &self.opts.journal {
            Some(p) => {
                let (j, s) = Journal::open(p, &plan.fingerprint.combined)?;
                (Some(j), s)
            }
            None => (None, JournalState::default()),
        };
        let catalog = if self.opts.check_catalog {
            let cat = self.cloud.catalog().await?;
            if catalog_digest(&cat) != plan.fingerprint.catalog {
                return Err(Error::StalePlan(
                    "the destination catalog (plan with the cloud's catalog: cloud.catalog())"
                        .into(),
                ));
            }
            cat
        } else {
            let cat = self.opts.catalog.clone().unwrap_or_else(Catalog::builtin);
            if catalog_digest(&cat) != plan.fingerprint.catalog {
                return Err(Error::StalePlan(
                    "the catalog (the plan was made with a catalog this executor was not given: pass it in ExecOptions.catalog)".into(),
                ));
            }
            cat
        };
        // The executor runs only what the planner makes of the plan's
        // inputs: a plan edited after planning (a verdict, a step, the
        // target) is refused before the first cloud change.
        crate::plan::check_replan(plan, &manifest.restore_point, &catalog)?;
        for d in &target.disks {
            let src = source_name(d);
            let m = manifest
                .disks
                .iter()
                .find(|m| m.name == src)
                .ok_or_else(|| {
                    Error::Repository(format!(
                        "restore point '{}' holds no data for '{src}' (disk '{}')",
                        target.restore_point_id, d.name
                    ))
                })?;
            if m.size_bytes > d.size_bytes {
                return Err(Error::Invalid {
                    path: format!("plan.target.disks[{}]", d.name),
                    message: format!(
                        "the disk of {} bytes cannot hold the {} bytes of '{src}'",
                        d.size_bytes, m.size_bytes
                    ),
                });
            }
        }
        let resumed = !state.done.is_empty() || !state.created.is_empty();
        let run = Run {
            ex: self,
            plan,
            manifest,
            journal,
            resources: Mutex::new(
                state
                    .created
                    .iter()
                    .map(|r| {
                        (
                            r.key
                                .split_once(':')
                                .map_or(r.key.as_str(), |(_, step)| step)
                                .to_string(),
                            r.clone(),
                        )
                    })
                    .collect(),
            ),
            created: Mutex::new(state.created.clone()),
            written: Mutex::new(state.chunks.clone()),
            rewritten: Mutex::new(HashMap::new()),
            skipped: Mutex::new(HashSet::new()),
            writers: Mutex::new(HashMap::new()),
            disks: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            progress,
            stop: cancel.child_token(),
            start: Instant::now(),
            resumed,
        };
        Ok(run.execute(&cancel, &state.done).await)
    }
}

fn source_name(d: &crate::plan::TargetDisk) -> String {
    match &d.volume_group {
        Some(vg) => format!("{}/{vg}", d.source_disk),
        None => d.source_disk.clone(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Run<'_> {
    fn emit(&self, e: Event) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }

    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    async fn execute(&self, cancel: &CancellationToken, resumed_done: &HashSet<String>) -> Report {
        let steps = &self.plan.steps;
        let mut status: Vec<StepStatus> = vec![StepStatus::NotRun; steps.len()];
        let mut started: Vec<Option<u64>> = vec![None; steps.len()];
        let mut elapsed: Vec<Option<u64>> = vec![None; steps.len()];
        let index: HashMap<&str, usize> =
            steps.iter().enumerate().map(|(i, s)| (&*s.id, i)).collect();
        let mut done: HashSet<usize> = HashSet::new();
        for (i, s) in steps.iter().enumerate() {
            if resumed_done.contains(&*s.id) {
                done.insert(i);
                status[i] = StepStatus::Resumed;
                self.emit(Event::StepSkipped {
                    step: s.id.to_string(),
                });
            }
        }
        let control = Arc::new(Semaphore::new(self.ex.opts.control_concurrency.max(1)));
        let data = Arc::new(Semaphore::new(self.ex.opts.data_concurrency.max(1)));
        let mut running = FuturesUnordered::new();
        let mut launched: HashSet<usize> = done.clone();
        let mut failure: Option<(usize, StepFailure)> = None;
        let mut cancelled = false;
        loop {
            if failure.is_none() && !cancelled {
                for (i, s) in steps.iter().enumerate() {
                    if launched.contains(&i)
                        || !s
                            .depends_on
                            .iter()
                            .all(|d| index.get(&**d).is_some_and(|j| done.contains(j)))
                    {
                        continue;
                    }
                    launched.insert(i);
                    let sem = if s.kind == StepKind::WriteDisk {
                        data.clone()
                    } else {
                        control.clone()
                    };
                    let fut = async move {
                        let _permit = sem.acquire_owned().await;
                        let t0 = self.ms();
                        self.emit(Event::StepStarted {
                            step: s.id.to_string(),
                        });
                        let r = tokio::select! {
                            r = self.step(s) => r,
                            _ = self.stop.cancelled() => Err(StepFailure::cancelled()),
                        };
                        (i, t0, r)
                    };
                    running.push(fut);
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some((i, t0, r)) = running.next() => {
                    started[i] = Some(t0);
                    elapsed[i] = Some(self.ms() - t0);
                    match r {
                        Ok(()) => {
                            done.insert(i);
                            status[i] = StepStatus::Done;
                            if let Some(j) = &self.journal {
                                let _ = j.done(&steps[i].id);
                            }
                            self.emit(Event::StepFinished { step: steps[i].id.to_string(), elapsed_ms: elapsed[i].unwrap_or(0) });
                        }
                        Err(f) if f.cancelled => status[i] = StepStatus::Cancelled,
                        Err(f) => {
                            status[i] = StepStatus::Failed;
                            self.emit(Event::StepFailed { step: steps[i].id.to_string(), error: f.message.clone() });
                            if failure.is_none() {
                                failure = Some((i, f));
                            }
                            // Stop the steps still running: the run has failed.
                            self.stop.cancel();
                        }
                    }
                }
                _ = cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    self.stop.cancel();
                }
            }
        }
        if cancel.is_cancelled() && failure.is_none() {
            cancelled = true;
        }
        // The point of no return: the in-place delete of the existing VM
        // has run (or started: a failed or interrupted delete may have
        // happened on the cloud's side).
        let ponr = steps
            .iter()
            .position(|s| s.kind == StepKind::DeleteExistingVm);
        let past_ponr = ponr.is_some_and(|i| !lock(&self.skipped).contains(&*steps[i].id))
            && ponr.is_some_and(|i| {
                matches!(
                    status[i],
                    StepStatus::Done | StepStatus::Resumed | StepStatus::Failed
                ) || (status[i] == StepStatus::Cancelled && started[i].is_some())
            });
        let stopped = failure.is_some() || (cancelled && done.len() < steps.len());
        let outcome = if stopped && past_ponr {
            Outcome::NeedsAttention
        } else if failure.is_some() {
            Outcome::Failed
        } else if cancelled && done.len() < steps.len() {
            Outcome::Cancelled
        } else {
            Outcome::Succeeded
        };
        let mut cleaned_up = Vec::new();
        let mut notes = Vec::new();
        if outcome == Outcome::Failed
            || (outcome == Outcome::Cancelled && !self.ex.opts.keep_on_cancel)
        {
            cleaned_up = self.cleanup(&mut notes).await;
            if let Some(j) = &self.journal {
                let _ = j.reset();
            }
        }
        let vm_index = steps
            .iter()
            .position(|s| s.kind == StepKind::VirtualMachine);
        let vm_done = vm_index
            .is_some_and(|i| done.contains(&i) && !lock(&self.skipped).contains(&*steps[i].id));
        let mut vm = vm_index.map(|_| VmReport {
            name: self.plan.target.vm_name.clone(),
            state: if vm_done {
                VmState::Restored
            } else if ponr.is_some() {
                VmState::Original
            } else {
                VmState::NotCreated
            },
        });
        if outcome == Outcome::NeedsAttention {
            vm = Some(
                self.roll_forward(&steps[..], &status, vm_done, &failure, &mut notes)
                    .await,
            );
        }
        if self.resumed {
            notes.push("resumed from the journal".into());
        }
        let mut rewritten: Vec<(String, u64)> = lock(&self.rewritten)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        rewritten.sort();
        for (disk, n) in rewritten {
            notes.push(format!(
                "disk '{disk}': {n} chunks the journal recorded were not at the destination and were written again"
            ));
        }
        if self.resumed {
            notes.push("resumed from the journal".into());
        }
        let attempts = lock(&self.attempts).clone();
        let created = if cleaned_up.is_empty() {
            lock(&self.created).clone()
        } else {
            Vec::new()
        };
        let mut disks: Vec<DiskReport> = lock(&self.disks).values().cloned().collect();
        disks.sort_by(|a, b| a.name.cmp(&b.name));
        let resources = lock(&self.resources).clone();
        let skipped = lock(&self.skipped).clone();
        if !skipped.is_empty() {
            notes.push(format!(
                "the disks were written to the sink, so the cloud's disks would get no data: no cloud step ran ({} skipped) and no VM was created; {}.template.json creates the VM from the disks once they are uploaded",
                skipped.len(),
                self.plan.target.vm_name
            ));
        }
        let report = Report {
            format_version: REPORT_FORMAT_VERSION.into(),
            plan: self.plan.fingerprint.combined.clone(),
            outcome,
            error: failure.as_ref().map(|(i, f)| ReportError {
                code: f.code.into(),
                step: steps[*i].id.to_string(),
                message: f.message.clone(),
                attempts: f.attempts.clone(),
            }),
            elapsed_ms: self.ms(),
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepReport {
                    id: s.id.to_string(),
                    kind: s.kind,
                    status: if status[i] == StepStatus::Done && skipped.contains(&*s.id) {
                        StepStatus::Skipped
                    } else {
                        status[i]
                    },
                    started_ms: started[i],
                    elapsed_ms: elapsed[i],
                    attempts: attempts.get(&*s.id).cloned().unwrap_or_default(),
                    resource: resources.get(&*s.id).map(|r| r.id.clone()),
                })
                .collect(),
            disks,
            findings: self.plan.findings.clone(),
            post_actions: self.plan.post_actions.clone(),
            created,
            cleaned_up,
            notes,
            vm,
        };
        if let Some(sink) = &self.ex.sink {
            // The local destination always gets a template that creates the
            // VM from the restored disks ("restore disks" gives one).
            if outcome == Outcome::Succeeded
                && !steps.iter().any(|s| s.kind == StepKind::Template)
                && let Ok(template) = arm_template_for_target(&self.plan.target)
            {
                let body = serde_json::to_string_pretty(&template).unwrap_or_default();
                let _ = sink
                    .write_artifact(
                        &format!("{}.template.json", self.plan.target.vm_name),
                        Bytes::from(body),
                    )
                    .await;
            }
            let _ = sink
                .write_artifact(
                    &format!("{}.report.json", self.plan.target.vm_name),
                    Bytes::from(report.to_json()),
                )
                .await;
        }
        report
    }

    /// After the point of no return, nothing the restore needs is deleted.
    /// If the new VM exists, it is kept (roll forward). If it does not, the
    /// existing VM is put back on its kept disks. Either way, the notes say
    /// exactly what exists and what to do; the journal is kept so a rerun
    /// resumes (unless the old VM was put back, which a rerun redoes).
    async fn roll_forward(
        &self,
        steps: &[Step],
        status: &[StepStatus],
        vm_done: bool,
        failure: &Option<(usize, StepFailure)>,
        notes: &mut Vec<String>,
    ) -> VmReport {
        let t = self.target();
        let why = match failure {
            Some((i, f)) => format!("step '{}' failed: {}", steps[*i].id, f.message),
            None => "the run was cancelled".to_string(),
        };
        notes.push(format!(
            "after the point of no return (the existing VM '{}' was deleted; its disks were kept), {why}",
            t.vm_name
        ));
        let disks: Vec<String> = t.disks.iter().map(|d| d.name.clone()).collect();
        notes.push(format!(
            "the new disks are written, verified and kept: {}",
            disks.join(", ")
        ));
        let pending: Vec<String> = steps
            .iter()
            .zip(status)
            .filter(|(_, st)| !matches!(st, StepStatus::Done | StepStatus::Resumed))
            .map(|(s, _)| s.id.to_string())
            .collect();
        if vm_done {
            notes.push(format!(
                "the restored VM '{}' exists and is kept; not finished: {}; run the plan again with the same journal to finish them",
                t.vm_name,
                pending.join(", ")
            ));
            return VmReport {
                name: t.vm_name.clone(),
                state: VmState::Restored,
            };
        }
        let key = self.key("restore-existing-vm");
        let action = CloudAction::RestoreExistingVm {
            subscription_id: t.subscription_id.clone(),
            resource_group: t.resource_group.clone(),
            vm: t.vm_name.clone(),
        };
        // The put-back runs even after a cancellation: leaving no VM is
        // worse than finishing one more call.
        let r = retry(
            &self.ex.opts.retry,
            &key,
            None,
            || self.ex.cloud.act(&key, &action),
            |_| {},
        )
        .await;
        let last = match r {
            Ok(((), _)) => {
                notes.push(format!(
                    "the existing VM '{}' was put back on its kept disks; the new disks are kept for a rerun of the plan (it deletes the VM again only once they are ready)",
                    t.vm_name
                ));
                if let Some(j) = &self.journal {
                    let _ = j.reset();
                }
                return VmReport {
                    name: t.vm_name.clone(),
                    state: VmState::OriginalRecreated,
                };
            }
            Err(Stop::Failed(e, _)) => e.to_string(),
            Err(Stop::Cancelled) => "cancelled".to_string(),
        };
        notes.push(format!(
            "no VM '{}' exists: the existing VM could not be put back ({last}); create it from the new disks (run the plan again with the same journal) or from the kept disks of the old VM",
            t.vm_name
        ));
        VmReport {
            name: t.vm_name.clone(),
            state: VmState::Missing,
        }
    }

    /// Deletes, in reverse order, what the run (and the runs it resumed)
    /// created. Only resources whose key is one of this plan's steps are
    /// offered, and the cloud deletes only what it shows as made under that
    /// key (ARM: the `vmrestore-key` tag): a resource that existed, a
    /// forged journal line or another restore's resource is left, and
    /// said so in `notes`. Returns the IDs deleted.
    async fn cleanup(&self, notes: &mut Vec<String>) -> Vec<String> {
        let created: Vec<Resource> = lock(&self.created).clone();
        let prefix = self.key("");
        let mut deleted = Vec::new();
        for r in created.iter().rev() {
            if r.existed || !r.key.starts_with(&prefix) {
                notes.push(format!(
                    "left {}: it is not a resource of this plan's steps",
                    r.id
                ));
                continue;
            }
            let res = self
                .retry_cloud(&format!("cleanup:{}", r.key), "", || {
                    self.ex.cloud.delete(r)
                })
                .await;
            match res {
                Ok(()) => {
                    self.emit(Event::CleanedUp {
                        resource: r.id.clone(),
                    });
                    deleted.push(r.id.clone());
                }
                Err(f) => notes.push(format!("clean-up left {}: {}", r.id, f.message)),
            }
        }
        lock(&self.created).clear();
        deleted
    }

    /// Calls `f` until it succeeds, fails for good, or the attempts run out.
    /// Reads a chunk, retrying what the repository reports as transient
    /// (its store unavailable: `Error::Cloud` with a transient kind) under
    /// the retry policy. Integrity errors and missing chunks are final.
    async fn read_chunk(
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

    async fn retry_cloud<T, F, Fut>(
        &self,
        key: &str,
        step: &str,
        f: F,
    ) -> std::result::Result<T, StepFailure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = CallResult<T>>,
    {
        let r = retry(&self.ex.opts.retry, key, Some(&self.stop), f, |a| {
            if !step.is_empty() {
                self.emit(Event::StepRetried {
                    step: step.to_string(),
                    attempt: a.attempt,
                    error: a.error.clone(),
                    wait_ms: a.wait_ms,
                });
            }
        })
        .await;
        let record = |history: &[Attempt]| {
            if !history.is_empty() && !step.is_empty() {
                lock(&self.attempts)
                    .entry(step.to_string())
                    .or_default()
                    .extend(history.iter().cloned());
            }
        };
        match r {
            Ok((v, history)) => {
                record(&history);
                Ok(v)
            }
            Err(Stop::Failed(e, history)) => {
                record(&history);
                let message = if e.is_transient() {
                    format!("{e} (gave up after {} attempts)", history.len())
                } else {
                    e.to_string()
                };
                Err(StepFailure {
                    code: "E_CLOUD",
                    message,
                    attempts: history,
                    cancelled: false,
                })
            }
            Err(Stop::Cancelled) => Err(StepFailure::cancelled()),
        }
    }

    /// The idempotency key of a step: the plan's fingerprint and the step ID.
    fn key(&self, step: &str) -> String {
        let fp = &self.plan.fingerprint.combined;
        format!("{}:{step}", &fp[..16.min(fp.len())])
    }

    async fn create(
        &self,
        step: &Step,
        spec: ResourceSpec,
    ) -> std::result::Result<(), StepFailure> {
        let key = self.key(&step.id);
        let r = self
            .retry_cloud(&key, &step.id, || self.ex.cloud.create(&key, &spec))
            .await?;
        let new = lock(&self.resources)
            .insert(step.id.to_string(), r.clone())
            .is_none();
        if new && !r.existed {
            lock(&self.created).push(r.clone());
            if let Some(j) = &self.journal {
                j.created(&r).map_err(StepFailure::from_error)?;
            }
        }
        Ok(())
    }

    async fn act(&self, step: &Step, action: CloudAction) -> std::result::Result<(), StepFailure> {
        let key = self.key(&step.id);
        self.retry_cloud(&key, &step.id, || self.ex.cloud.act(&key, &action))
            .await
    }

    fn target(&self) -> &Target {
        &self.plan.target
    }

    fn disk_names(&self) -> Vec<String> {
        self.target().disks.iter().map(|d| d.name.clone()).collect()
    }

    async fn step(&self, s: &Step) -> std::result::Result<(), StepFailure> {
        // Where the disks' bytes go is one choice per run: with a sink they
        // go there, and the cloud's disks would get none. So no cloud step
        // runs (no empty disk, no VM on blank disks): the run exports the
        // verified disks and the template that creates the VM from them.
        if self.ex.sink.is_some() && !runs_with_sink(s.kind) {
            lock(&self.skipped).insert(s.id.to_string());
            return Ok(());
        }
        let t = self.target();
        let sub = t.subscription_id.clone();
        let rg = t.resource_group.clone();
        let region = t.region.clone();
        let res = s.resource.to_string();
        match s.kind {
            StepKind::VerifyRestorePoint => self.verify().await,
            StepKind::ResourceGroup => {
                self.create(
                    s,
                    ResourceSpec::ResourceGroup {
                        subscription_id: sub,
                        name: res,
                        region,
                    },
                )
                .await
            }
            StepKind::KeyVault => {
                self.create(
                    s,
                    ResourceSpec::KeyVault {
                        subscription_id: sub,
                        resource_group: rg,
                        name: res,
                        region,
                    },
                )
                .await
            }
            StepKind::KeyVaultAccess => {
                self.act(
                    s,
                    CloudAction::GrantKeyVaultAccess {
                        vault: res,
                        principal: self.ex.opts.service_principal.clone(),
                    },
                )
                .await
            }
            StepKind::StagingAccount => {
                self.create(
                    s,
                    ResourceSpec::StorageAccount {
                        subscription_id: sub,
                        resource_group: rg,
                        name: res,
                        region,
                    },
                )
                .await
            }
            StepKind::HelperAppliance => {
                self.create(
                    s,
                    ResourceSpec::HelperAppliance {
                        resource_group: rg,
                        name: res,
                        region,
                    },
                )
                .await
            }
            StepKind::SnapshotExistingDisks => {
                self.create(
                    s,
                    ResourceSpec::Snapshot {
                        resource_group: rg,
                        vm: t.vm_name.clone(),
                    },
                )
                .await
            }
            StepKind::DeleteExistingVm => {
                self.act(
                    s,
                    CloudAction::DeleteExistingVm {
                        subscription_id: sub,
                        resource_group: rg,
                        vm: t.vm_name.clone(),
                    },
                )
                .await
            }
            StepKind::CreateDisk => {
                let d = self.disk(s)?;
                let staged = t.disks_staged;
                let spec = ResourceSpec::Disk {
                    subscription_id: sub,
                    resource_group: rg,
                    name: d.name.clone(),
                    region,
                    size_bytes: d.size_bytes,
                    sku: d.sku,
                    zone: t.zone,
                    os: (d.role == DiskRole::Os).then_some((t.os_family, t.generation)),
                    security_type: if d.role == DiskRole::Os {
                        effective_security(t)
                    } else {
                        SecurityType::Standard
                    },
                    staging_account: if staged {
                        t.staging_account.clone()
                    } else {
                        None
                    },
                    disk_encryption_set: d.disk_encryption_set.clone(),
                };
                self.create(s, spec).await
            }
            StepKind::WriteDisk => self.write_disk(s).await,
            StepKind::FinalizeDisk => self.finalize_disk(s).await,
            StepKind::BootFix => {
                self.act(
                    s,
                    CloudAction::BootFix {
                        vm: t.vm_name.clone(),
                        disks: self.disk_names(),
                    },
                )
                .await
            }
            StepKind::ConvertToManaged => {
                self.act(
                    s,
                    CloudAction::ConvertToManaged {
                        resource_group: rg,
                        disks: self.disk_names(),
                    },
                )
                .await
            }
            StepKind::NetworkSecurityGroup => {
                let attach_to = if t.nsg_after_vm {
                    t.nics.iter().map(|n| n.name.clone()).collect()
                } else {
                    Vec::new()
                };
                self.create(
                    s,
                    ResourceSpec::NetworkSecurityGroup {
                        resource_group: rg,
                        name: res,
                        region,
                        open_ports: t.nsg_open_ports.clone(),
                        attach_to,
                    },
                )
                .await
            }
            StepKind::PublicIp => {
                self.create(
                    s,
                    ResourceSpec::PublicIp {
                        resource_group: rg,
                        name: res,
                        region,
                    },
                )
                .await
            }
            StepKind::NetworkInterface => {
                let nic = t
                    .nics
                    .iter()
                    .find(|n| *n.name == *s.resource)
                    .ok_or_else(|| {
                        StepFailure::from_error(Error::invalid(
                            format!("plan.steps[{}]", s.id),
                            "no such NIC in the target",
                        ))
                    })?;
                let spec = ResourceSpec::NetworkInterface {
                    resource_group: rg,
                    name: nic.name.clone(),
                    region,
                    virtual_network: nic.virtual_network.clone(),
                    subnet: nic.subnet.clone(),
                    static_ip: nic.static_ip.clone(),
                    public_ip: nic.public_ip.clone(),
                    network_security_group: if t.nsg_after_vm {
                        None
                    } else {
                        t.network_security_group.clone()
                    },
                };
                self.create(s, spec).await
            }
            StepKind::VirtualMachine => {
                let os_disk = t
                    .disks
                    .iter()
                    .find(|d| d.role == DiskRole::Os)
                    .map(|d| d.name.clone())
                    .unwrap_or_default();
                let data_disks = t
                    .disks
                    .iter()
                    .filter(|d| d.role == DiskRole::Data)
                    .map(|d| (d.lun.unwrap_or(0), d.name.clone()))
                    .collect();
                let spec = ResourceSpec::VirtualMachine {
                    subscription_id: sub,
                    resource_group: rg,
                    name: t.vm_name.clone(),
                    region,
                    size: t.vm_size.clone(),
                    zone: t.zone,
                    availability_set: t.availability_set.clone(),
                    os: t.os_family,
                    generation: t.generation,
                    security_type: effective_security(t),
                    os_disk,
                    data_disks,
                    nics: t.nics.iter().map(|n| n.name.clone()).collect(),
                };
                self.create(s, spec).await
            }
            StepKind::Template => {
                let template = arm_template_for_target(t)
                    .map_err(|e| StepFailure::from_error(Error::Cloud(e)))?;
                let body = serde_json::to_string_pretty(&template).unwrap_or_default();
                if let Some(sink) = &self.ex.sink {
                    let name = format!("{}.template.json", t.vm_name);
                    self.retry_cloud(&s.id, &s.id, || {
                        sink.write_artifact(&name, Bytes::from(body.clone()))
                    })
                    .await?;
                }
                Ok(())
            }
            StepKind::SwapDisks => {
                self.act(
                    s,
                    CloudAction::SwapDisks {
                        resource_group: rg,
                        vm: t.vm_name.clone(),
                        disks: self.disk_names(),
                    },
                )
                .await
            }
            StepKind::PowerOn => {
                self.act(
                    s,
                    CloudAction::PowerOn {
                        resource_group: rg,
                        vm: t.vm_name.clone(),
                    },
                )
                .await
            }
            StepKind::DeleteExistingDisks => {
                self.act(
                    s,
                    CloudAction::DeleteReplacedDisks {
                        resource_group: rg,
                        vm: t.vm_name.clone(),
                    },
                )
                .await
            }
        }
    }

    fn disk(&self, s: &Step) -> std::result::Result<&crate::plan::TargetDisk, StepFailure> {
        let name = s.disk.as_deref().unwrap_or_default();
        self.target()
            .disks
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                StepFailure::from_error(Error::invalid(
                    format!("plan.steps[{}].disk", s.id),
                    format!("'{name}' is not a disk of the target"),
                ))
            })
    }

    /// Every chunk the restore needs is present with its length. When the
    /// plan deletes an existing VM (in place), every chunk is also read and
    /// its SHA-256 checked first: the data must be known good before
    /// anything is deleted.
    async fn verify(&self) -> std::result::Result<(), StepFailure> {
        let deep = self
            .plan
            .steps
            .iter()
            .any(|s| s.kind == StepKind::DeleteExistingVm);
        for d in &self.target().disks {
            let (src, m) = self.source(d)?;
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

    async fn writer(
        &self,
        s: &Step,
        d: &crate::plan::TargetDisk,
    ) -> std::result::Result<Arc<dyn DiskWriter>, StepFailure> {
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
    fn source(
        &self,
        d: &crate::plan::TargetDisk,
    ) -> std::result::Result<(String, &crate::repo::DiskManifest), StepFailure> {
        let src = source_name(d);
        match self.manifest.disks.iter().find(|m| m.name == src) {
            Some(m) => Ok((src, m)),
            None => Err(StepFailure::from_error(Error::Repository(format!(
                "no data for '{src}'"
            )))),
        }
    }

    async fn write_disk(&self, s: &Step) -> std::result::Result<(), StepFailure> {
        let d = self.disk(s)?;
        let (src, m) = self.source(d)?;
        let writer = self.writer(s, d).await?;
        let journaled: HashSet<u64> = lock(&self.written)
            .get(&d.name)
            .cloned()
            .unwrap_or_default();
        // What a journal says an earlier run wrote is proven at the
        // destination (read back and hashed, or a destination-side proof):
        // an emptied output directory, another directory or another blob
        // container holds none of it, and what is not proven is written
        // again. So `verified` always means the destination's bytes.
        let mut already: HashSet<u64> = HashSet::new();
        if !journaled.is_empty() {
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
            let set = written.entry(d.name.clone()).or_default();
            set.retain(|o| already.contains(o));
            drop(written);
            if unproven > 0 {
                tracing::warn!(disk = %d.name, unproven, "chunks the journal recorded are not at the destination: written again");
                lock(&self.rewritten).insert(d.name.clone(), unproven as u64);
            }
        }
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
        let mut disks = lock(&self.disks);
        let r = disks.entry(d.name.clone()).or_insert_with(|| DiskReport {
            name: d.name.clone(),
            source: src.clone(),
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
        r.chunks_resumed = resumed_chunks;
        Ok(())
    }

    async fn finalize_disk(&self, s: &Step) -> std::result::Result<(), StepFailure> {
        let d = self.disk(s)?;
        let (src, m) = self.source(d)?;
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
        let writer = self.writer(s, d).await?;
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

/// The security type the restored VM gets: trusted launch and confidential
/// VMs need generation 2, so a VM restored as generation 1 is standard.
fn effective_security(t: &Target) -> SecurityType {
    if t.generation == Generation::Gen2 {
        t.security_type
    } else {
        SecurityType::Standard
    }
}

/// The steps a run whose disks go to a [`DiskSink`] runs: the data and the
/// template; the cloud's own steps are skipped.
fn runs_with_sink(kind: StepKind) -> bool {
    matches!(
        kind,
        StepKind::VerifyRestorePoint
            | StepKind::WriteDisk
            | StepKind::FinalizeDisk
            | StepKind::Template
    )
}
