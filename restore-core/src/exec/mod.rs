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

mod data;
mod journal;
mod local;
mod recover;
mod report;
mod retry;
mod run;
mod steps;

pub use crate::cloud::*;
pub use journal::{Journal, JournalState};
pub use local::{LocalVhdSink, arm_template};
pub use report::*;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::model::{Catalog, Validate};
use crate::plan::{Operation, Plan, Verdict, catalog_digest, restore_point_digest};
use crate::repo::Manifest;
pub use retry::RetryPolicy;

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

    /// Refuses, before any call, a plan with a step the cloud cannot run
    /// (steps a sink skips aside), naming every such step: a plan never
    /// fails halfway on a step kind the cloud never had.
    fn check_supported(&self, plan: &Plan) -> Result<()> {
        let caps = self.cloud.capabilities();
        let sink = self.sink.is_some();
        let unsupported = caps.unsupported(plan, |s| !sink || s.operation.runs_with_sink());
        if !unsupported.is_empty() {
            return Err(Error::Unsupported {
                cloud: caps.cloud,
                steps: unsupported.iter().map(ToString::to_string).collect(),
            });
        }
        Ok(())
    }

    /// The catalog the plan was made with: the cloud's own when the
    /// options ask to check it, else the one given (or the built-in one);
    /// a different catalog makes the plan stale.
    async fn catalog_for(&self, plan: &Plan) -> Result<Catalog> {
        Ok(if self.opts.check_catalog {
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
        })
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
        self.check_supported(plan)?;
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
        let catalog = self.catalog_for(plan).await?;
        // The executor runs only what the planner makes of the plan's
        // inputs: a plan edited after planning (a verdict, a step, the
        // target) is refused before the first cloud change.
        crate::plan::check_replan(plan, &manifest.restore_point, &catalog)?;
        check_disk_data(plan, &manifest)?;
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

/// Every disk write the plan holds has its data in the restore point, and
/// the disk it writes is large enough for it.
fn check_disk_data(plan: &Plan, manifest: &crate::repo::Manifest) -> Result<()> {
    let target = &plan.target;
    let writes = plan.steps.iter().filter_map(|s| match &s.operation {
        Operation::WriteDisk { disk, size_bytes } => Some((disk, *size_bytes)),
        _ => None,
    });
    for (d, size_bytes) in writes {
        let src = &d.source;
        let m = manifest
            .disks
            .iter()
            .find(|m| m.name == *src)
            .ok_or_else(|| {
                Error::Repository(format!(
                    "restore point '{}' holds no data for '{src}' (disk '{}')",
                    target.restore_point_id, d.disk
                ))
            })?;
        if m.size_bytes > size_bytes {
            return Err(Error::Invalid {
                path: format!("plan.target.disks[{}]", d.disk),
                message: format!(
                    "the disk of {} bytes cannot hold the {} bytes of '{src}'",
                    size_bytes, m.size_bytes
                ),
            });
        }
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A disk as the data path names it.
struct Named {
    name: String,
    size_bytes: u64,
}

/// The ARM template that declares `resources` (a plan's
/// [`Operation::WriteTemplate`] resources), as JSON text.
fn template(resources: &[ResourceSpec]) -> CallResult<String> {
    arm_template(resources).map(|t| serde_json::to_string_pretty(&t).unwrap_or_default())
}
