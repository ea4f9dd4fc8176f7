//! The error type of the core, with a stable machine-readable code per variant.
//!
//! Bindings map [`Error::code`] onto their own error types (Python exception
//! classes, Node `err.code`), so codes never change once published.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way the core can fail. Messages name the thing that is wrong (the
/// JSON path of a field, the disk and offset of a chunk, the rule ID), and
/// never carry secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that is not valid JSON/TOML or does not match the model's shape.
    #[error("malformed input at {path}: {message}")]
    Parse {
        /// JSON path of the offending field (`$` for the document itself).
        path: String,
        /// What the parser said.
        message: String,
    },
    /// Input that parsed but breaks a rule of the model (a size, a name, an ID).
    #[error("invalid input at {path}: {message}")]
    Invalid {
        /// JSON path of the offending field.
        path: String,
        /// Why it is invalid.
        message: String,
    },
    /// A profile name that the library does not know.
    #[error("unknown profile '{name}' (known: {known})")]
    UnknownProfile {
        /// The name asked for (at most 64 characters of it).
        name: String,
        /// The profiles the library knows, comma-separated (from the
        /// registry, `policy::BUILTIN`).
        known: String,
    },
    /// A custom rule that cannot be loaded (syntax error, unknown field, bad outcome).
    #[error("custom rule {rule}: {message}")]
    Rule {
        /// The rule's ID, or its position when it has none.
        rule: String,
        /// What is wrong with it.
        message: String,
    },
    /// A custom rule that failed while it was evaluated against one input.
    #[error("custom rule {rule} failed to evaluate: {message}")]
    RuleEvaluation {
        /// The rule's ID.
        rule: String,
        /// The evaluator's message.
        message: String,
    },
    /// A backup repository that cannot be read as expected (missing or
    /// unparsable manifest, missing chunk, a path that escapes the root).
    #[error("repository: {0}")]
    Repository(String),
    /// Data that does not match its recorded digest.
    #[error("integrity: disk '{disk}' at offset {offset}: {message}")]
    Integrity {
        /// Disk name.
        disk: String,
        /// Byte offset of the chunk in the disk.
        offset: u64,
        /// What did not match.
        message: String,
    },
    /// The plan is blocked; it has nothing to run.
    #[error("the plan is blocked by {}: nothing to run", .0.join(", "))]
    PlanBlocked(Vec<String>),
    /// The plan's inputs changed since it was made.
    #[error("stale plan: {0} changed since the plan was made; plan again")]
    StalePlan(String),
    /// The plan is not what the planner makes of the inputs it records
    /// (edited by hand or by someone else): it is not run.
    #[error(
        "the plan differs from what the planner makes of its inputs at {path}: {message}; plan again instead of editing a plan"
    )]
    PlanMismatch {
        /// JSON path of the first difference, e.g. `$.steps[3]`.
        path: String,
        /// What differs.
        message: String,
    },
    /// A seal was required and is missing or does not match.
    #[error("plan seal: {0}")]
    PlanSeal(String),
    /// The cloud cannot run some steps of the plan (checked before the first
    /// change; plan with the cloud's capabilities to see this as VMR-07).
    #[error(
        "the {cloud} cloud cannot run {} step(s) of this plan: {}; nothing was changed (plan for this cloud with its capabilities to see this before running)",
        steps.len(),
        steps.join("; ")
    )]
    Unsupported {
        /// The cloud's name.
        cloud: String,
        /// Each step it cannot run: `id (kind): why`.
        steps: Vec<String>,
    },
    /// The journal cannot be used.
    #[error("journal: {0}")]
    Journal(String),
    /// The journal is locked by another run (another executor, process or
    /// host on the same file); nothing was done.
    #[error("journal locked: {0}")]
    JournalLocked(String),
    /// A cloud call failed before any step ran (e.g. reading the catalog).
    #[error("cloud: {0}")]
    Cloud(#[from] CallError),
}

impl Error {
    /// A stable code for this variant, for bindings and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Parse { .. } => "E_PARSE",
            Error::Invalid { .. } => "E_INVALID",
            Error::UnknownProfile { .. } => "E_UNKNOWN_PROFILE",
            Error::Rule { .. } => "E_RULE",
            Error::RuleEvaluation { .. } => "E_RULE_EVAL",
            Error::Repository(_) => "E_REPOSITORY",
            Error::Integrity { .. } => "E_INTEGRITY",
            Error::PlanBlocked(_) => "E_PLAN_BLOCKED",
            Error::StalePlan(_) => "E_STALE_PLAN",
            Error::PlanMismatch { .. } => "E_PLAN_MISMATCH",
            Error::PlanSeal(_) => "E_PLAN_SEAL",
            Error::Unsupported { .. } => "E_UNSUPPORTED",
            Error::Journal(_) => "E_JOURNAL",
            Error::JournalLocked(_) => "E_JOURNAL_LOCKED",
            Error::Cloud(_) => "E_CLOUD",
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What went wrong in a call to a cloud, a repository or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallErrorKind {
    /// 429: throttled.
    Throttled,
    /// 5xx: the service failed.
    Unavailable,
    /// The call timed out or the connection dropped.
    Timeout,
    /// The request conflicts with existing state (name taken, wrong state).
    Conflict,
    /// The resource does not exist.
    NotFound,
    /// The request is invalid (name, size, alignment).
    Invalid,
    /// A quota is exhausted.
    QuotaExceeded,
    /// Anything else that will not succeed on retry.
    Fatal,
}

/// A failed call to something outside the library: a cloud
/// ([`crate::cloud::Cloud`], [`crate::cloud::DiskWriter`]), a repository
/// ([`crate::repo::Repository`]) or a file (a sink, a journal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{operation}: {kind:?}: {message}")]
pub struct CallError {
    /// Category; decides whether a retry can help.
    pub kind: CallErrorKind,
    /// The operation, e.g. `create disk 'web01-osdisk'`.
    pub operation: String,
    /// What the service said (never a secret).
    pub message: String,
    /// Seconds the service asked to wait (`Retry-After`).
    pub retry_after_ms: Option<u64>,
}

impl CallError {
    /// A new error.
    pub fn new(
        kind: CallErrorKind,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        CallError {
            kind,
            operation: operation.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// With a `Retry-After`.
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after_ms = Some(d.as_millis() as u64);
        self
    }

    /// Whether retrying may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            CallErrorKind::Throttled | CallErrorKind::Unavailable | CallErrorKind::Timeout
        )
    }
}

/// Result of calls to clouds, repositories and files.
pub type CallResult<T> = std::result::Result<T, CallError>;
