//! The executor's `Report`, typed like `Plan`: its steps, disks, error,
//! attempts, created resources and VM are classes with attributes (and
//! `to_dict()`; `obj["field"]` still reads a field, as the dicts of
//! earlier versions did).

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use restore_core::cloud::Resource;
use restore_core::exec;

use crate::convert::{all, enum_str, to_py};
use crate::plan::{Finding, PostAction};

/// `to_dict()`, `obj["field"]` and `__repr__` for a class that keeps the
/// core value it was made from in `core`.
macro_rules! dict_like {
    ($ty:ident, $repr:expr) => {
        #[pymethods]
        impl $ty {
            /// The same data as a dict (JSON types).
            fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                to_py(py, &self.core)
            }
            fn __getitem__(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
                let d = self.to_dict(py)?;
                let d = d.bind(py);
                if !d.contains(key)? {
                    return Err(PyKeyError::new_err(key.to_string()));
                }
                Ok(d.get_item(key)?.unbind())
            }
            fn __repr__(&self) -> String {
                let f: fn(&Self) -> String = $repr;
                f(self)
            }
        }
    };
}

/// A failed attempt of a call (retried, or the last that gave up).
#[pyclass(module = "vmrestore._native", frozen)]
#[derive(Clone)]
pub(crate) struct Attempt {
    /// 1-based.
    #[pyo3(get)]
    attempt: u32,
    /// Category of the error (`throttled`, `transient`, ...).
    #[pyo3(get)]
    kind: String,
    #[pyo3(get)]
    error: String,
    /// Milliseconds waited before the next attempt (0 for the last).
    #[pyo3(get)]
    wait_ms: u64,
    core: exec::Attempt,
}

impl Attempt {
    fn all(a: &[exec::Attempt]) -> Vec<Attempt> {
        a.iter()
            .map(|a| Attempt {
                attempt: a.attempt,
                kind: enum_str(&a.kind),
                error: a.error.clone(),
                wait_ms: a.wait_ms,
                core: a.clone(),
            })
            .collect()
    }
}
dict_like!(Attempt, |a| format!(
    "Attempt({} {}: {})",
    a.attempt, a.kind, a.error
));

/// One step of the run.
#[pyclass(module = "vmrestore._native", frozen)]
#[derive(Clone)]
pub(crate) struct StepReport {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    kind: String,
    /// `done`, `failed`, `cancelled`, `not_run`, `resumed` or `skipped`.
    #[pyo3(get)]
    status: String,
    #[pyo3(get)]
    started_ms: Option<u64>,
    #[pyo3(get)]
    elapsed_ms: Option<u64>,
    #[pyo3(get)]
    attempts: Vec<Attempt>,
    /// The resource it created, if any.
    #[pyo3(get)]
    resource: Option<String>,
    core: exec::StepReport,
}
dict_like!(StepReport, |s| format!("StepReport({} {})", s.id, s.status));

impl StepReport {
    fn from_core(s: &exec::StepReport) -> Self {
        StepReport {
            id: s.id.clone(),
            kind: enum_str(&s.kind),
            status: enum_str(&s.status),
            started_ms: s.started_ms,
            elapsed_ms: s.elapsed_ms,
            attempts: Attempt::all(&s.attempts),
            resource: s.resource.clone(),
            core: s.clone(),
        }
    }
}

/// One disk of the run.
#[pyclass(module = "vmrestore._native", frozen)]
#[derive(Clone)]
pub(crate) struct DiskReport {
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    source: String,
    #[pyo3(get)]
    bytes_written: u64,
    #[pyo3(get)]
    chunks_written: u64,
    #[pyo3(get)]
    chunks_held: u64,
    #[pyo3(get)]
    chunks_resumed: u64,
    /// Disk digest (SHA-256 over the chunk digests), verified.
    #[pyo3(get)]
    digest: Option<String>,
    #[pyo3(get)]
    verified: bool,
    core: exec::DiskReport,
}
dict_like!(DiskReport, |d| format!(
    "DiskReport({} verified={})",
    d.name, d.verified
));

impl DiskReport {
    fn from_core(d: &exec::DiskReport) -> Self {
        DiskReport {
            name: d.name.clone(),
            source: d.source.clone(),
            bytes_written: d.bytes_written,
            chunks_written: d.chunks_written,
            chunks_held: d.chunks_held,
            chunks_resumed: d.chunks_resumed,
            digest: d.digest.clone(),
            verified: d.verified,
            core: d.clone(),
        }
    }
}

/// The error that ended a failed run.
#[pyclass(module = "vmrestore._native", frozen)]
#[derive(Clone)]
pub(crate) struct ReportError {
    /// Stable code (`E_INTEGRITY`, `E_CLOUD`, ...).
    #[pyo3(get)]
    code: String,
    /// The step that failed.
    #[pyo3(get)]
    step: String,
    #[pyo3(get)]
    message: String,
    #[pyo3(get)]
    attempts: Vec<Attempt>,
    core: exec::ReportError,
}
dict_like!(ReportError, |e| format!(
    "ReportError({} at {})",
    e.code, e.step
));

impl ReportError {
    fn from_core(e: &exec::ReportError) -> Self {
        ReportError {
            code: e.code.clone(),
            step: e.step.clone(),
            message: e.message.clone(),
            attempts: Attempt::all(&e.attempts),
            core: e.clone(),
        }
    }
}

/// A resource the run created (and kept).
#[pyclass(module = "vmrestore._native", frozen)]
#[derive(Clone)]
pub(crate) struct CreatedResource {
    /// Cloud ID (an ARM resource ID on Azure).
    #[pyo3(get)]
    id: String,
    /// Type, e.g. `disk`.
    #[pyo3(get)]
    kind: String,
    #[pyo3(get)]
    name: String,
    /// Idempotency key of the step that created it (`<plan>:<step>`).
    #[pyo3(get)]
    key: String,
    /// It existed before the run: clean-up leaves it.
    #[pyo3(get)]
    existed: bool,
    core: Resource,
}
dict_like!(CreatedResource, |r| format!(
    "CreatedResource({} {})",
    r.kind, r.id
));

impl CreatedResource {
    fn from_core(r: &Resource) -> Self {
        CreatedResource {
            id: r.id.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            key: r.key.clone(),
            existed: r.existed,
            core: r.clone(),
        }
    }
}

/// Which VM exists at the end of the run.
#[pyclass(module = "vmrestore._native", frozen)]
#[derive(Clone)]
pub(crate) struct VmReport {
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    /// `restored`, `original`, `original_recreated`, `missing` or `not_created`.
    state: String,
    core: exec::VmReport,
}
dict_like!(VmReport, |v| format!("VmReport({} {})", v.name, v.state));

impl VmReport {
    fn from_core(v: &exec::VmReport) -> Self {
        VmReport {
            name: v.name.clone(),
            state: enum_str(&v.state),
            core: v.clone(),
        }
    }
}

/// The executor's outcome.
#[pyclass(module = "vmrestore._native", frozen)]
pub(crate) struct Report {
    pub(crate) inner: exec::Report,
}

#[pymethods]
impl Report {
    /// `"succeeded"`, `"failed"`, `"cancelled"` or `"needs_attention"`.
    #[getter]
    fn outcome(&self) -> String {
        enum_str(&self.inner.outcome)
    }
    #[getter]
    fn succeeded(&self) -> bool {
        self.inner.outcome == exec::Outcome::Succeeded
    }
    /// The version of the report format.
    #[getter]
    fn format_version(&self) -> String {
        self.inner.format_version.clone()
    }
    /// The plan's combined fingerprint.
    #[getter]
    fn plan(&self) -> String {
        self.inner.plan.clone()
    }
    /// The error that ended a failed run.
    #[getter]
    fn error(&self) -> Option<ReportError> {
        self.inner.error.as_ref().map(ReportError::from_core)
    }
    #[getter]
    fn steps(&self) -> Vec<StepReport> {
        all(&self.inner.steps, StepReport::from_core)
    }
    #[getter]
    fn disks(&self) -> Vec<DiskReport> {
        all(&self.inner.disks, DiskReport::from_core)
    }
    #[getter]
    fn created(&self) -> Vec<CreatedResource> {
        all(&self.inner.created, CreatedResource::from_core)
    }
    /// The plan's findings.
    #[getter]
    fn findings(&self) -> Vec<Finding> {
        all(&self.inner.findings, Finding::from_core)
    }
    /// What to do now.
    #[getter]
    fn post_actions(&self) -> Vec<PostAction> {
        all(&self.inner.post_actions, PostAction::from_core)
    }
    #[getter]
    fn cleaned_up(&self) -> Vec<String> {
        self.inner.cleaned_up.clone()
    }
    /// Notes, e.g. that the run resumed or what an in-place restore left.
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.inner.notes.clone()
    }
    /// Which VM exists at the end (plans that create or replace one).
    #[getter]
    fn vm(&self) -> Option<VmReport> {
        self.inner.vm.as_ref().map(VmReport::from_core)
    }
    #[getter]
    fn elapsed_ms(&self) -> u64 {
        self.inner.elapsed_ms
    }
    fn to_json(&self) -> String {
        self.inner.to_json()
    }
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner)
    }
    fn __repr__(&self) -> String {
        format!(
            "<Report {} steps={} disks={}>",
            self.outcome(),
            self.inner.steps.len(),
            self.inner.disks.len()
        )
    }
}
