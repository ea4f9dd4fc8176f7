//! Progress events and the final report.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cloud::{CallErrorKind, Resource};
use crate::plan::{Finding, PostAction, StepKind};

/// Version of the report's JSON format.
pub const REPORT_FORMAT_VERSION: &str = "1.0";

/// A progress event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// A step started.
    StepStarted {
        /// Step ID.
        step: String,
    },
    /// A step finished.
    StepFinished {
        /// Step ID.
        step: String,
        /// Milliseconds it took.
        elapsed_ms: u64,
    },
    /// A step was skipped because a resumed run had finished it.
    StepSkipped {
        /// Step ID.
        step: String,
    },
    /// A call of a step failed transiently and is retried.
    StepRetried {
        /// Step ID.
        step: String,
        /// Attempt that failed (1-based).
        attempt: u32,
        /// Why.
        error: String,
        /// Milliseconds until the next attempt.
        wait_ms: u64,
    },
    /// A step failed for good.
    StepFailed {
        /// Step ID.
        step: String,
        /// Why.
        error: String,
    },
    /// Bytes written to a disk.
    Bytes {
        /// Disk name.
        disk: String,
        /// Bytes done (including chunks a resumed run had written).
        done: u64,
        /// Bytes in all.
        total: u64,
        /// Throughput of this run so far, bytes per second.
        bytes_per_sec: u64,
    },
    /// A resource this run created was deleted during clean-up.
    CleanedUp {
        /// Resource ID.
        resource: String,
    },
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step finished.
    Succeeded,
    /// A step failed; what the run created was deleted.
    Failed,
    /// The run was cancelled.
    Cancelled,
    /// An in-place restore failed or was cancelled after the point of no
    /// return (the existing VM was deleted): nothing the restore needs was
    /// cleaned up, and `vm` and `notes` say exactly what exists and what
    /// to do.
    NeedsAttention,
}

/// Which VM exists after a run that has one (a VM step, or an existing VM
/// it replaces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VmReport {
    /// The VM's name.
    pub name: String,
    /// Which VM that is.
    pub state: VmState,
}

/// What the VM of a run is at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// The restored VM exists.
    Restored,
    /// The existing VM is untouched (the run stopped before the point of
    /// no return).
    Original,
    /// The existing VM was deleted, then put back on its kept disks because
    /// the new VM could not be made.
    OriginalRecreated,
    /// No VM of that name exists: see the notes.
    Missing,
    /// The run created no VM (and replaced none).
    NotCreated,
}

/// Status of one step in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Finished in this run.
    Done,
    /// Finished by an earlier run (resumed).
    Resumed,
    /// Failed.
    Failed,
    /// Stopped by cancellation.
    Cancelled,
    /// Never started.
    NotRun,
    /// Not run by design (e.g. cloud steps of a run whose disks go to a
    /// sink): the notes say why.
    Skipped,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    /// 1-based.
    pub attempt: u32,
    /// Category of the error.
    pub kind: CallErrorKind,
    /// The error.
    pub error: String,
    /// Milliseconds waited before the next attempt (0 for the last).
    pub wait_ms: u64,
}

/// One step in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepReport {
    /// Step ID.
    pub id: String,
    /// Kind.
    pub kind: StepKind,
    /// Status.
    pub status: StepStatus,
    /// Milliseconds from the start of the run to the start of the step.
    pub started_ms: Option<u64>,
    /// Milliseconds the step took.
    pub elapsed_ms: Option<u64>,
    /// Failed attempts (retried, or the last that gave up).
    pub attempts: Vec<Attempt>,
    /// Resource it created, if any.
    pub resource: Option<String>,
}

/// One disk in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiskReport {
    /// Restored disk.
    pub name: String,
    /// Source of its data in the repository.
    pub source: String,
    /// Bytes written by this run.
    pub bytes_written: u64,
    /// Chunks written by this run.
    pub chunks_written: u64,
    /// Chunks the destination already held (a rerun over the same blob):
    /// neither read nor written.
    #[serde(default)]
    pub chunks_held: u64,
    /// Chunks an earlier run had written (resume).
    pub chunks_resumed: u64,
    /// Disk digest (SHA-256 over the chunk digests), verified.
    pub digest: Option<String>,
    /// The digest matched the repository's.
    pub verified: bool,
}

/// The error that ended a failed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportError {
    /// Stable code (`E_INTEGRITY`, `E_CLOUD`, ...).
    pub code: String,
    /// The step that failed.
    pub step: String,
    /// What happened.
    pub message: String,
    /// Every attempt.
    pub attempts: Vec<Attempt>,
}

/// The final report of a run, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Version of this format.
    pub format_version: String,
    /// The plan's combined fingerprint.
    pub plan: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed.
    pub error: Option<ReportError>,
    /// Milliseconds in all.
    pub elapsed_ms: u64,
    /// Each step.
    pub steps: Vec<StepReport>,
    /// Each disk.
    pub disks: Vec<DiskReport>,
    /// The plan's findings.
    pub findings: Vec<Finding>,
    /// What to do now.
    pub post_actions: Vec<PostAction>,
    /// What the run created (and kept).
    pub created: Vec<Resource>,
    /// What clean-up deleted.
    pub cleaned_up: Vec<String>,
    /// Notes, e.g. that an in-place restore's existing VM is gone but its disks were kept.
    pub notes: Vec<String>,
    /// Which VM exists at the end (for plans that create or replace one).
    #[serde(default)]
    pub vm: Option<VmReport>,
}

impl Report {
    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}
