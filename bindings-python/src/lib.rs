//! Python bindings of vmrestore: thin conversions around `restore-core`.
//! No rule, plan or data-path logic lives here.

mod aio;
mod logs;

use std::sync::{Arc, Mutex, OnceLock};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyStopAsyncIteration};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use restore_core::azure;
use restore_core::exec::{self, Event, Executor, LocalVhdSink, ProgressFn, SimConfig};
use restore_core::facade::{self, Doc, Naming};
use restore_core::model::{Catalog, RestorePoint, from_json};
use restore_core::plan as core_plan;
use restore_core::policy::{BUILTIN_PROFILES, Profile};
use restore_core::repo::LocalRepository;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

create_exception!(
    _native,
    VmrestoreError,
    PyException,
    "Base class of every vmrestore error; `.code` is the core's stable error code."
);
create_exception!(
    _native,
    ParseError,
    VmrestoreError,
    "Malformed input (E_PARSE)."
);
create_exception!(
    _native,
    InvalidInputError,
    VmrestoreError,
    "Input that breaks a rule of the model (E_INVALID)."
);
create_exception!(
    _native,
    UnknownProfileError,
    VmrestoreError,
    "Unknown profile name (E_UNKNOWN_PROFILE)."
);
create_exception!(
    _native,
    RuleError,
    VmrestoreError,
    "A custom rule that cannot be loaded (E_RULE)."
);
create_exception!(
    _native,
    RuleEvaluationError,
    VmrestoreError,
    "A custom rule that failed to evaluate (E_RULE_EVAL)."
);
create_exception!(
    _native,
    RepositoryError,
    VmrestoreError,
    "A repository that cannot be read (E_REPOSITORY)."
);
create_exception!(
    _native,
    IntegrityError,
    VmrestoreError,
    "Data that does not match its digest (E_INTEGRITY)."
);
create_exception!(
    _native,
    PlanBlockedError,
    VmrestoreError,
    "The plan is blocked (E_PLAN_BLOCKED)."
);
create_exception!(
    _native,
    StalePlanError,
    VmrestoreError,
    "The plan's inputs changed (E_STALE_PLAN)."
);
create_exception!(
    _native,
    JournalError,
    VmrestoreError,
    "The journal cannot be used (E_JOURNAL)."
);
create_exception!(
    _native,
    CloudError,
    VmrestoreError,
    "A cloud call failed (E_CLOUD)."
);
create_exception!(
    _native,
    PlanMismatchError,
    VmrestoreError,
    "The plan differs from what the planner makes of its inputs: it was edited (E_PLAN_MISMATCH)."
);
create_exception!(
    _native,
    PlanSealError,
    VmrestoreError,
    "A required plan seal is missing or does not match (E_PLAN_SEAL)."
);
create_exception!(
    _native,
    UnsupportedError,
    VmrestoreError,
    "The cloud cannot run some steps of the plan; nothing was changed (E_UNSUPPORTED)."
);
create_exception!(
    _native,
    JournalLockedError,
    JournalError,
    "Another run holds the journal (E_JOURNAL_LOCKED)."
);

/// The one conversion from core errors to Python exceptions: a match on the
/// core's variants (the core's `Error` is `#[non_exhaustive]`, so a variant
/// added later lands on `VmrestoreError` until it is named here).
fn to_py_err(e: restore_core::Error) -> PyErr {
    use restore_core::Error as E;
    let msg = e.to_string();
    let err = match &e {
        E::Parse { .. } => ParseError::new_err(msg),
        E::Invalid { .. } => InvalidInputError::new_err(msg),
        E::UnknownProfile(_) => UnknownProfileError::new_err(msg),
        E::Rule { .. } => RuleError::new_err(msg),
        E::RuleEvaluation { .. } => RuleEvaluationError::new_err(msg),
        E::Repository(_) => RepositoryError::new_err(msg),
        E::Integrity { .. } => IntegrityError::new_err(msg),
        E::PlanBlocked(_) => PlanBlockedError::new_err(msg),
        E::StalePlan(_) => StalePlanError::new_err(msg),
        E::PlanMismatch { .. } => PlanMismatchError::new_err(msg),
        E::PlanSeal(_) => PlanSealError::new_err(msg),
        E::Unsupported { .. } => UnsupportedError::new_err(msg),
        E::Journal(_) => JournalError::new_err(msg),
        E::JournalLocked(_) => JournalLockedError::new_err(msg),
        E::Cloud(_) => CloudError::new_err(msg),
        _ => VmrestoreError::new_err(msg),
    };
    Python::attach(|py| {
        let _ = err.value(py).setattr("code", e.code());
    });
    err
}

/// Capabilities given as a dict (from `cloud.capabilities()`) or JSON text.
fn capabilities_of(obj: &Bound<'_, PyAny>) -> PyResult<core_plan::Capabilities> {
    facade::capabilities(Doc::Text(input_json(obj)?)).map_err(to_py_err)
}

/// JSON text of an input given as a dict/list, a JSON string, or a path.
fn input_json(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = obj.py();
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_str()?.to_string());
    }
    if obj.hasattr("__fspath__")? {
        let path: String = obj.call_method0("__fspath__")?.extract()?;
        return std::fs::read_to_string(&path).map_err(|e| {
            to_py_err(restore_core::Error::Parse {
                path: "$".into(),
                message: format!("cannot read {path}: {e}"),
            })
        });
    }
    let json = py.import("json")?;
    json.call_method1("dumps", (obj,))?.extract()
}

/// A serde value as Python objects (dicts, lists, ...).
fn to_py<T: Serialize>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

fn enum_str<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A finding of a rule.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
#[derive(Clone)]
struct Finding {
    rule_id: String,
    severity: String,
    kind: String,
    message: String,
    source: String,
    path: String,
}

/// A transformation: how the restored VM differs from the source.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
struct Transformation {
    rule_id: String,
    kind: String,
    path: String,
    before: Py<PyAny>,
    after: Py<PyAny>,
    message: String,
}

/// A step of the plan.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
#[derive(Clone)]
struct Step {
    id: String,
    kind: String,
    action: String,
    resource: String,
    stage: String,
    depends_on: Vec<String>,
    rule_ids: Vec<String>,
    disk: Option<String>,
    bytes: u64,
    detail: String,
}

/// Something to do after the restore.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
#[derive(Clone)]
struct PostAction {
    rule_id: String,
    message: String,
    source: String,
}

/// Sizes and counts of a plan.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
#[derive(Clone)]
struct Estimates {
    bytes_to_move: u64,
    storage_bytes: u64,
    disks: u32,
    to_create: u32,
    to_change: u32,
    to_delete: u32,
    transfer_seconds: u64,
}

/// A restore plan.
#[pyclass(module = "vmrestore._native", frozen)]
struct Plan {
    inner: Arc<core_plan::Plan>,
}

#[pymethods]
impl Plan {
    /// Parses a plan saved with `to_json()`.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Plan> {
        let p: core_plan::Plan = serde_json::from_str(text).map_err(|e| {
            to_py_err(restore_core::Error::Parse {
                path: "$".into(),
                message: e.to_string(),
            })
        })?;
        Ok(Plan { inner: Arc::new(p) })
    }
    /// `"ready"` or `"blocked"`.
    #[getter]
    fn verdict(&self) -> String {
        enum_str(&self.inner.verdict)
    }
    #[getter]
    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }
    #[getter]
    fn profiles(&self) -> Vec<String> {
        self.inner.profiles.clone()
    }
    #[getter]
    fn fingerprint(&self) -> String {
        self.inner.fingerprint.combined.clone()
    }
    #[getter]
    fn rules_applied(&self) -> Vec<String> {
        self.inner.rules_applied.clone()
    }
    #[getter]
    fn findings(&self) -> Vec<Finding> {
        self.inner
            .findings
            .iter()
            .map(|f| Finding {
                rule_id: f.rule_id.clone(),
                severity: enum_str(&f.severity),
                kind: enum_str(&f.kind),
                message: f.message.clone(),
                source: f.source.clone(),
                path: f.path.clone(),
            })
            .collect()
    }
    /// The findings that block the plan.
    #[getter]
    fn blocking(&self) -> Vec<Finding> {
        self.findings()
            .into_iter()
            .filter(|f| f.severity == "block")
            .collect()
    }
    #[getter]
    fn transformations(&self, py: Python<'_>) -> PyResult<Vec<Transformation>> {
        self.inner
            .transformations
            .iter()
            .map(|t| {
                Ok(Transformation {
                    rule_id: t.rule_id.clone(),
                    kind: enum_str(&t.kind),
                    path: t.path.clone(),
                    before: to_py(py, &t.before)?,
                    after: to_py(py, &t.after)?,
                    message: t.message.clone(),
                })
            })
            .collect()
    }
    #[getter]
    fn steps(&self) -> Vec<Step> {
        self.inner
            .steps
            .iter()
            .map(|s| Step {
                id: s.id.to_string(),
                kind: enum_str(&s.kind),
                action: enum_str(&s.action),
                resource: s.resource.to_string(),
                stage: s.stage.to_string(),
                depends_on: s.depends_on.iter().map(|d| d.to_string()).collect(),
                rule_ids: s.rule_ids.iter().map(|d| d.to_string()).collect(),
                disk: s.disk.as_ref().map(|d| d.to_string()),
                bytes: s.bytes,
                detail: s.detail.clone(),
            })
            .collect()
    }
    #[getter]
    fn post_actions(&self) -> Vec<PostAction> {
        self.inner
            .post_actions
            .iter()
            .map(|p| PostAction {
                rule_id: p.rule_id.clone(),
                message: p.message.clone(),
                source: p.source.clone(),
            })
            .collect()
    }
    #[getter]
    fn estimates(&self) -> Estimates {
        let e = &self.inner.estimates;
        Estimates {
            bytes_to_move: e.bytes_to_move,
            storage_bytes: e.storage_bytes,
            disks: e.disks,
            to_create: e.to_create,
            to_change: e.to_change,
            to_delete: e.to_delete,
            transfer_seconds: e.transfer_seconds,
        }
    }
    /// The target VM as a dict.
    #[getter]
    fn target(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.target)
    }
    /// The terraform-style rendering.
    fn render(&self) -> String {
        core_plan::render_text(&self.inner)
    }
    /// Stable JSON.
    fn to_json(&self) -> String {
        core_plan::to_json(&self.inner)
    }
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &*self.inner)
    }
    fn to_mermaid(&self) -> String {
        core_plan::to_mermaid(&self.inner)
    }
    fn to_dot(&self) -> String {
        core_plan::to_dot(&self.inner)
    }
    fn __repr__(&self) -> String {
        format!(
            "<Plan {} {} steps={} findings={}>",
            self.inner.target.vm_name,
            self.verdict(),
            self.inner.steps.len(),
            self.inner.findings.len()
        )
    }
}

#[pymethods]
impl Finding {
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let d = PyDict::new(py);
        for (k, v) in [
            ("rule_id", &self.rule_id),
            ("severity", &self.severity),
            ("kind", &self.kind),
            ("message", &self.message),
            ("source", &self.source),
            ("path", &self.path),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d.into_any().unbind())
    }
    fn __repr__(&self) -> String {
        format!(
            "Finding({} {}: {})",
            self.rule_id, self.severity, self.message
        )
    }
}

#[pymethods]
impl PostAction {
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let d = PyDict::new(py);
        d.set_item("rule_id", &self.rule_id)?;
        d.set_item("message", &self.message)?;
        d.set_item("source", &self.source)?;
        Ok(d.into_any().unbind())
    }
    fn __repr__(&self) -> String {
        format!("PostAction({}: {})", self.rule_id, self.message)
    }
}

#[pymethods]
impl Transformation {
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let d = PyDict::new(py);
        d.set_item("rule_id", &self.rule_id)?;
        d.set_item("kind", &self.kind)?;
        d.set_item("path", &self.path)?;
        d.set_item("before", self.before.bind(py))?;
        d.set_item("after", self.after.bind(py))?;
        d.set_item("message", &self.message)?;
        Ok(d.into_any().unbind())
    }
}

#[pymethods]
impl Step {
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let d = PyDict::new(py);
        d.set_item("id", &self.id)?;
        d.set_item("kind", &self.kind)?;
        d.set_item("action", &self.action)?;
        d.set_item("resource", &self.resource)?;
        d.set_item("stage", &self.stage)?;
        d.set_item("depends_on", PyList::new(py, &self.depends_on)?)?;
        d.set_item("rule_ids", PyList::new(py, &self.rule_ids)?)?;
        d.set_item("disk", &self.disk)?;
        d.set_item("bytes", self.bytes)?;
        d.set_item("detail", &self.detail)?;
        Ok(d.into_any().unbind())
    }
}

#[pymethods]
impl Estimates {
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let d = PyDict::new(py);
        d.set_item("bytes_to_move", self.bytes_to_move)?;
        d.set_item("storage_bytes", self.storage_bytes)?;
        d.set_item("disks", self.disks)?;
        d.set_item("to_create", self.to_create)?;
        d.set_item("to_change", self.to_change)?;
        d.set_item("to_delete", self.to_delete)?;
        d.set_item("transfer_seconds", self.transfer_seconds)?;
        Ok(d.into_any().unbind())
    }
}

fn profiles_of(
    profiles: Option<Vec<String>>,
    rules: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<Profile>> {
    let rules = match rules {
        Some(r) => {
            let is_path = r.hasattr("__fspath__")?;
            let text = input_json(r)?;
            let name = if is_path {
                r.call_method0("__fspath__")?
                    .extract::<String>()?
                    .rsplit('/')
                    .next()
                    .unwrap_or("custom")
                    .trim_end_matches(".toml")
                    .trim_end_matches(".json")
                    .to_string()
            } else {
                "custom".to_string()
            };
            Some(facade::Rules { text, name })
        }
        None => None,
    };
    facade::profiles(&profiles.unwrap_or_default(), rules.as_ref()).map_err(to_py_err)
}

/// Plans one restore. `restore_point`, `request` and `catalog` are dicts,
/// JSON strings or paths; `profiles` are built-in profile names; `rules` is
/// a custom rules document (TOML or JSON text, or a path). The catalog
/// defaults to the built-in one.
#[pyfunction]
#[pyo3(signature = (restore_point, request, profiles=None, rules=None, catalog=None, capabilities=None))]
fn plan(
    py: Python<'_>,
    restore_point: &Bound<'_, PyAny>,
    request: &Bound<'_, PyAny>,
    profiles: Option<Vec<String>>,
    rules: Option<&Bound<'_, PyAny>>,
    catalog: Option<&Bound<'_, PyAny>>,
    capabilities: Option<&Bound<'_, PyAny>>,
) -> PyResult<Plan> {
    let rp = Doc::Text(input_json(restore_point)?);
    let req = Doc::Text(input_json(request)?);
    let cat = catalog.map(input_json).transpose()?.map(Doc::Text);
    let caps = capabilities.map(capabilities_of).transpose()?;
    let profiles = profiles_of(profiles, rules)?;
    // Own everything before releasing the GIL.
    py.detach(move || facade::plan(rp, req, &profiles, cat, caps))
        .map(|p| Plan { inner: Arc::new(p) })
        .map_err(to_py_err)
}

/// Plans many restores against one catalog: `items` is a list of
/// `(restore_point, request, profile)` with dicts or JSON strings.
#[pyfunction]
#[pyo3(signature = (items, catalog=None))]
fn plan_many(
    py: Python<'_>,
    items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>, String)>,
    catalog: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<Plan>> {
    let mut inputs = Vec::with_capacity(items.len());
    for (rp, req, profile) in &items {
        inputs.push(facade::PlanItem {
            restore_point: Doc::Text(input_json(rp)?),
            request: Doc::Text(input_json(req)?),
            profile: profile.clone(),
        });
    }
    let cat = catalog.map(input_json).transpose()?.map(Doc::Text);
    py.detach(move || facade::plan_many(inputs, cat))
        .map(|v| v.into_iter().map(|p| Plan { inner: Arc::new(p) }).collect())
        .map_err(to_py_err)
}

/// Checks a custom rules document (TOML or JSON text, or a path); raises
/// `RuleError` with the reason when a rule cannot be loaded.
#[pyfunction]
fn check_rules(rules: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let p = profiles_of(None, Some(rules))?;
    Ok(p.into_iter()
        .flat_map(|p| p.rules.into_iter().map(|r| r.id))
        .collect())
}

/// The built-in catalog (real Azure regions and common VM sizes).
#[pyfunction]
fn builtin_catalog(py: Python<'_>) -> PyResult<Py<PyAny>> {
    to_py(py, &Catalog::builtin())
}

/// Names of the built-in profiles.
#[pyfunction]
fn builtin_profiles() -> Vec<&'static str> {
    BUILTIN_PROFILES.to_vec()
}

/// The JSON Schema of `restore_point`, `restore_request`, `catalog`, `plan`, `report` or `event`.
#[pyfunction]
fn schema(py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
    let s = restore_core::schema::by_name(name).ok_or_else(|| {
        to_py_err(restore_core::Error::Invalid {
            path: "name".into(),
            message: format!("no schema '{name}'"),
        })
    })?;
    to_py(py, &s)
}

/// A local backup repository.
#[pyclass(module = "vmrestore._native", frozen)]
struct Repository {
    inner: LocalRepository,
}

#[pymethods]
impl Repository {
    /// Opens a repository; `create=True` makes the directories.
    #[new]
    #[pyo3(signature = (path, create=false))]
    fn new(path: std::path::PathBuf, create: bool) -> PyResult<Self> {
        let inner = if create {
            LocalRepository::create(path)
        } else {
            LocalRepository::open(path)
        }
        .map_err(to_py_err)?;
        Ok(Repository { inner })
    }
    /// Restore point IDs.
    fn list(&self) -> PyResult<Vec<String>> {
        self.inner.list().map_err(to_py_err)
    }
    /// A restore point's manifest as a dict.
    fn manifest(&self, py: Python<'_>, id: &str) -> PyResult<Py<PyAny>> {
        let m = self.inner.manifest(id).map_err(to_py_err)?;
        to_py(py, &m)
    }
    /// Imports raw disk images as a restore point: `images` maps disk names
    /// (or `disk/volume_group`) to image paths.
    #[pyo3(signature = (restore_point, images, chunk_size=4194304))]
    fn import_raw(
        &self,
        py: Python<'_>,
        restore_point: &Bound<'_, PyAny>,
        images: std::collections::HashMap<String, std::path::PathBuf>,
        chunk_size: u64,
    ) -> PyResult<Py<PyAny>> {
        let rp: RestorePoint = from_json(&input_json(restore_point)?).map_err(to_py_err)?;
        let repo = self.inner.clone();
        let m = py
            .detach(move || {
                let mut list: Vec<(&String, &std::path::PathBuf)> = images.iter().collect();
                list.sort();
                let refs: Vec<(&str, &std::path::Path)> = list
                    .iter()
                    .map(|(n, p)| (n.as_str(), p.as_path()))
                    .collect();
                repo.import_raw(&rp, &refs, chunk_size)
            })
            .map_err(to_py_err)?;
        to_py(py, &m)
    }
}

fn cloud_err(e: restore_core::error::CallError) -> PyErr {
    to_py_err(restore_core::Error::Cloud(e))
}

/// A backup repository in an object store (Azure Blob, S3, GCS, local files),
/// in the same format as `Repository`.
#[pyclass(module = "vmrestore._native", frozen)]
struct ObjectStoreRepository {
    inner: restore_core::repo::ObjectStoreRepository,
}

#[pymethods]
impl ObjectStoreRepository {
    /// `url` is `az://container/prefix`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `file:///dir` or `memory:///`; `options` are
    /// the store's (account, keys, endpoint, ...). Or give `endpoint`,
    /// `account`, `key` and `container` for an Azure storage account (or
    /// Azurite) with shared key.
    #[new]
    #[pyo3(signature = (url=None, options=None, endpoint=None, account=None, key=None, container=None, prefix=""))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        url: Option<String>,
        options: Option<std::collections::HashMap<String, String>>,
        endpoint: Option<String>,
        account: Option<String>,
        key: Option<String>,
        container: Option<String>,
        prefix: &str,
    ) -> PyResult<Self> {
        let settings = facade::ObjectStoreSettings {
            url,
            options: options.unwrap_or_default(),
            endpoint,
            account,
            key,
            container,
            prefix: prefix.to_string(),
        };
        let inner = facade::object_store(settings, "url").map_err(to_py_err)?;
        Ok(ObjectStoreRepository { inner })
    }
    /// Restore point IDs.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let r = self.inner.clone();
        blocking(py, move || {
            runtime()?
                .block_on(async move { r.list().await })
                .map_err(to_py_err)
        })
    }
    /// A restore point's manifest as a dict.
    fn manifest(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let r = self.inner.clone();
        let m = blocking(py, move || {
            runtime()?
                .block_on(async move { r.manifest(&id).await })
                .map_err(to_py_err)
        })?;
        to_py(py, &m)
    }
    /// Copies restore point `id` from a local `Repository`; returns the
    /// number of chunks sent (those already there are not sent again).
    fn upload_from(&self, py: Python<'_>, local: &Repository, id: String) -> PyResult<usize> {
        let (r, l) = (self.inner.clone(), local.inner.clone());
        blocking(py, move || {
            runtime()?
                .block_on(async move { r.upload_from(&l, &id).await })
                .map_err(to_py_err)
        })
    }
    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// Disks written as page blobs `<disk>.vhd` into an Azure container (or
/// Azurite): pass as `RestoreExecutor(..., blob_sink=...)`.
#[pyclass(module = "vmrestore._native", frozen)]
struct PageBlobSink {
    inner: Arc<azure::PageBlobSink>,
}

#[pymethods]
impl PageBlobSink {
    /// `container_url` like `https://acct.blob.core.windows.net/restores`;
    /// authorise with `account` and `key` (shared key) or `sas`.
    #[new]
    #[pyo3(signature = (container_url, account=None, key=None, sas=None))]
    fn new(
        container_url: &str,
        account: Option<String>,
        key: Option<String>,
        sas: Option<String>,
    ) -> PyResult<Self> {
        let auth = facade::storage_auth(account, key, sas).map_err(to_py_err)?;
        let inner = azure::PageBlobSink::new(container_url, auth).map_err(cloud_err)?;
        Ok(PageBlobSink {
            inner: Arc::new(inner),
        })
    }
    /// What was sent for `disk`: bytes_put, puts, bytes_cleared,
    /// bytes_unchanged, bytes_zero_skipped, bytes_read_back; or None.
    fn stats(&self, py: Python<'_>, disk: &str) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.stats(disk))
    }
    /// The bytes of a disk's blob (the VHD: data then footer), or None.
    fn read_disk<'py>(
        &self,
        py: Python<'py>,
        disk: String,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyBytes>>> {
        let s = self.inner.clone();
        let b = blocking(py, move || {
            runtime()?.block_on(async move {
                let blob = s.disk_blob(&disk).map_err(cloud_err)?;
                blob.get().await.map_err(cloud_err)
            })
        })?;
        Ok(b.map(|b| pyo3::types::PyBytes::new(py, &b)))
    }
    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// The Azure Resource Manager cloud. `token` is an access token for ARM
/// (the host refreshes it by making a new ArmCloud); it never appears in
/// errors or reprs.
#[pyclass(module = "vmrestore._native", frozen)]
struct ArmCloud {
    inner: Arc<azure::ArmCloud>,
}

#[pymethods]
impl ArmCloud {
    #[new]
    #[pyo3(signature = (subscription_id, token=None, tenant_id="", endpoint="https://management.azure.com", principal_object_id="", poll_interval_ms=2000, credential=None, managed_identity_client_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        subscription_id: &str,
        token: Option<String>,
        tenant_id: &str,
        endpoint: &str,
        principal_object_id: &str,
        poll_interval_ms: u64,
        credential: Option<&str>,
        managed_identity_client_id: Option<String>,
    ) -> PyResult<Self> {
        let cfg = azure::ArmConfig {
            endpoint: endpoint.into(),
            subscription_id: subscription_id.into(),
            tenant_id: tenant_id.into(),
            principal_object_id: principal_object_id.into(),
            poll_interval: std::time::Duration::from_millis(poll_interval_ms),
            ..Default::default()
        };
        let tp = facade::token_source(token, credential, tenant_id, managed_identity_client_id)
            .map_err(to_py_err)?;
        let inner = azure::ArmCloud::new(cfg, tp).map_err(cloud_err)?;
        Ok(ArmCloud {
            inner: Arc::new(inner),
        })
    }
    /// What this cloud can perform (give it to `plan(capabilities=...)`).
    fn capabilities(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &exec::Cloud::capabilities(&*self.inner))
    }
    /// The destination catalog read from ARM (regions with zones, VM sizes).
    fn catalog(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let cat = blocking(py, move || {
            runtime()?
                .block_on(async move { exec::Cloud::catalog(&*c).await })
                .map_err(cloud_err)
        })?;
        to_py(py, &cat)
    }
    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// The simulated Azure.
#[pyclass(module = "vmrestore._native", frozen)]
struct SimCloud {
    inner: exec::SimCloud,
}

#[pymethods]
impl SimCloud {
    /// A simulated Azure. Faults are transient (429 with Retry-After, 503,
    /// timeouts) with the given probabilities, deterministic for a seed.
    #[new]
    #[pyo3(signature = (seed=0, latency_ms=0, lro_ms=0, write_latency_ms=0, fault_probability=0.0, data_fault_probability=0.0, retry_after_ms=0, write_rate=None, always_fail=None, catalog=None, capabilities=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        seed: u64,
        latency_ms: u64,
        lro_ms: u64,
        write_latency_ms: u64,
        fault_probability: f64,
        data_fault_probability: f64,
        retry_after_ms: u64,
        write_rate: Option<u64>,
        always_fail: Option<Vec<String>>,
        catalog: Option<&Bound<'_, PyAny>>,
        capabilities: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let ms = std::time::Duration::from_millis;
        let catalog = match catalog {
            Some(c) => from_json(&input_json(c)?).map_err(to_py_err)?,
            None => Catalog::builtin(),
        };
        let faults = facade::faults(
            facade::FaultSettings {
                fault_probability: Some(fault_probability),
                data_fault_probability: Some(data_fault_probability),
                seed,
                retry_after_ms,
                always_fail: always_fail.unwrap_or_default(),
            },
            Naming::Snake,
        )
        .map_err(to_py_err)?;
        Ok(SimCloud {
            inner: exec::SimCloud::new(SimConfig {
                catalog,
                latency: ms(latency_ms),
                lro: ms(lro_ms),
                write_latency: ms(write_latency_ms),
                write_rate,
                faults,
                capabilities: match capabilities {
                    Some(c) => capabilities_of(c)?,
                    None => core_plan::Capabilities::all("sim"),
                },
                ..Default::default()
            }),
        })
    }
    /// What it declares it can perform.
    fn capabilities(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &exec::Cloud::capabilities(&self.inner))
    }
    /// The state: resources, disks, actions, counters.
    fn dump(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.dump())
    }
    /// A disk's bytes as written, or None.
    fn disk_bytes<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> Option<Bound<'py, pyo3::types::PyBytes>> {
        self.inner
            .disk_bytes(name)
            .map(|b| pyo3::types::PyBytes::new(py, &b))
    }
    /// Faults injected so far.
    fn faults_injected(&self) -> u64 {
        self.inner.faults_injected()
    }
}

/// The executor's outcome.
#[pyclass(module = "vmrestore._native", frozen)]
struct Report {
    inner: exec::Report,
}

#[pymethods]
impl Report {
    /// `"succeeded"`, `"failed"` or `"cancelled"`.
    #[getter]
    fn outcome(&self) -> String {
        enum_str(&self.inner.outcome)
    }
    #[getter]
    fn succeeded(&self) -> bool {
        self.inner.outcome == exec::Outcome::Succeeded
    }
    /// The error that ended a failed run (dict with code, step, message, attempts).
    #[getter]
    fn error(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.error)
    }
    #[getter]
    fn steps(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.steps)
    }
    #[getter]
    fn disks(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.disks)
    }
    #[getter]
    fn created(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.created)
    }
    #[getter]
    fn cleaned_up(&self) -> Vec<String> {
        self.inner.cleaned_up.clone()
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

/// Progress events as an async iterator: pass it as `progress=` and iterate
/// with `async for`. It ends when the run ends.
#[pyclass(module = "vmrestore._native", frozen)]
struct ProgressStream {
    tx: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Event>>>,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Event>>>,
}

#[pymethods]
impl ProgressStream {
    #[new]
    fn new() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        ProgressStream {
            tx: Mutex::new(Some(tx)),
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        logs::refresh(py);
        let rx = self.rx.clone();
        aio::future_into_py(
            py,
            async move { rx.lock().await.recv().await },
            |py, e| match e {
                Some(e) => to_py(py, &e),
                None => Err(PyStopAsyncIteration::new_err(())),
            },
        )
    }
}

fn progress_fn(
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<(Option<ProgressFn>, Option<Py<ProgressStream>>)> {
    let Some(p) = progress else {
        return Ok((None, None));
    };
    if let Ok(stream) = p.cast::<ProgressStream>() {
        let tx = stream
            .get()
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let f: ProgressFn = Arc::new(move |e: &Event| {
            if let Some(tx) = &tx {
                let _ = tx.send(e.clone());
            }
        });
        return Ok((Some(f), Some(stream.clone().unbind())));
    }
    if !p.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "progress must be a callable or a ProgressStream",
        ));
    }
    let cb = p.unbind();
    let f: ProgressFn = Arc::new(move |e: &Event| {
        aio::with_python(|py| {
            if let Ok(d) = to_py(py, e) {
                // A failing callback must not break the restore.
                if let Err(err) = cb.call1(py, (d,)) {
                    err.print(py);
                }
            }
        });
    });
    Ok((Some(f), None))
}

fn close_stream(stream: &Option<Py<ProgressStream>>) {
    if let Some(s) = stream {
        s.get().tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The process that made the runtime: after fork() the runtime's threads
/// are gone in the child, so a new one is made there.
struct OwnRuntime {
    pid: u32,
    rt: Arc<tokio::runtime::Runtime>,
}

static RUNTIME: Mutex<Option<OwnRuntime>> = Mutex::new(None);
static MODULE_PID: OnceLock<u32> = OnceLock::new();

/// The tokio runtime of this process (a new one after fork()).
fn runtime() -> PyResult<Arc<tokio::runtime::Runtime>> {
    let mut g = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if let Some(r) = g.as_ref().filter(|r| r.pid == pid) {
        return Ok(r.rt.clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the runtime: {e}")))?;
    let rt = Arc::new(rt);
    // The parent's runtime cannot be dropped safely in a forked child: forget it.
    if let Some(old) = g.take() {
        std::mem::forget(old);
    }
    *g = Some(OwnRuntime {
        pid,
        rt: rt.clone(),
    });
    Ok(rt)
}

/// Runs plans over a cloud and a repository.
#[pyclass(module = "vmrestore._native", frozen)]
struct RestoreExecutor {
    inner: Arc<Executor>,
}

/// Cancels the run when dropped (the asyncio task was cancelled).
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[pymethods]
impl RestoreExecutor {
    /// `out_dir` sends disks to fixed VHD files there (with a template and
    /// the report); without it the disks go to the cloud's own disks.
    #[new]
    #[pyo3(signature = (cloud, repository, out_dir=None, journal=None, control_concurrency=8, data_concurrency=4, max_attempts=8, base_delay_ms=200, keep_on_cancel=false, blob_sink=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        cloud: &Bound<'_, PyAny>,
        repository: &Bound<'_, PyAny>,
        out_dir: Option<std::path::PathBuf>,
        journal: Option<std::path::PathBuf>,
        control_concurrency: usize,
        data_concurrency: usize,
        max_attempts: u32,
        base_delay_ms: u64,
        keep_on_cancel: bool,
        blob_sink: Option<&PageBlobSink>,
    ) -> PyResult<Self> {
        let opts = facade::exec_options(
            facade::ExecSettings {
                control_concurrency: Some(control_concurrency as u64),
                data_concurrency: Some(data_concurrency as u64),
                max_attempts: Some(u64::from(max_attempts)),
                base_delay_ms: Some(base_delay_ms),
                journal,
                keep_on_cancel,
            },
            Naming::Snake,
        )
        .map_err(to_py_err)?;
        let cloud: Arc<dyn exec::Cloud> = if let Ok(c) = cloud.cast::<SimCloud>() {
            Arc::new(c.get().inner.clone())
        } else if let Ok(c) = cloud.cast::<ArmCloud>() {
            c.get().inner.clone()
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "cloud must be a SimCloud or an ArmCloud",
            ));
        };
        let repo: Arc<dyn exec::Repository> = if let Ok(r) = repository.cast::<Repository>() {
            Arc::new(r.get().inner.clone())
        } else if let Ok(r) = repository.cast::<ObjectStoreRepository>() {
            Arc::new(r.get().inner.clone())
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "repository must be a Repository or an ObjectStoreRepository",
            ));
        };
        let mut ex = Executor::new(cloud, repo).with_options(opts);
        if let Some(dir) = out_dir {
            let sink = LocalVhdSink::new(&dir).map_err(|e| {
                to_py_err(restore_core::Error::Invalid {
                    path: "out_dir".into(),
                    message: e.to_string(),
                })
            })?;
            ex = ex.with_sink(Arc::new(sink));
        } else if let Some(b) = blob_sink {
            ex = ex.with_sink(b.inner.clone());
        }
        Ok(RestoreExecutor {
            inner: Arc::new(ex),
        })
    }

    /// Runs `plan` under asyncio: returns a coroutine whose result is the
    /// `Report`. `progress` is a callable receiving event dicts, or a
    /// `ProgressStream`. Cancelling the task that awaits it cancels the
    /// restore, waits for its clean-up and returns the report (outcome
    /// `"cancelled"`) instead of raising `CancelledError`.
    #[pyo3(signature = (plan, progress=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        plan: &Plan,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if MODULE_PID.get().is_some_and(|p| *p != std::process::id()) {
            return Err(PyRuntimeError::new_err(
                "vmrestore: the asyncio runtime does not survive fork(); in a forked child use run_sync(), or start processes with the 'spawn' method",
            ));
        }
        logs::refresh(py);
        let (progress, stream) = progress_fn(progress)?;
        let ex = self.inner.clone();
        let plan = plan.inner.clone();
        let token = CancellationToken::new();
        let guard = CancelOnDrop(token.clone());
        let live = aio::LiveRun::register(&token);
        let run_token = token.clone();
        // The run is its own task: it finishes its clean-up whatever
        // happens to the future that reports it.
        let handle = runtime()?.spawn(async move {
            let _live = live;
            let r = ex.run(&plan, run_token, progress).await;
            close_stream(&stream);
            r
        });
        let fut = aio::future_into_py(
            py,
            async move {
                let _guard = guard;
                handle.await
            },
            |py, r| match r {
                Ok(Ok(inner)) => Ok(Py::new(py, Report { inner })?.into_any()),
                Ok(Err(e)) => Err(to_py_err(e)),
                Err(e) => Err(PyRuntimeError::new_err(format!(
                    "the restore task failed: {e}"
                ))),
            },
        )?;
        py.import("vmrestore._aio")?
            .call_method1("run_to_report", (fut, aio::CancelRun(token)))
    }

    /// Runs `plan` to the end, releasing the GIL; returns a `Report`.
    #[pyo3(signature = (plan, progress=None))]
    fn run_sync(
        &self,
        py: Python<'_>,
        plan: &Plan,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Report> {
        let (progress, stream) = progress_fn(progress)?;
        let rt = runtime()?;
        let ex = self.inner.clone();
        let plan = plan.inner.clone();
        let r = blocking(py, move || {
            let token = CancellationToken::new();
            let _live = aio::LiveRun::register(&token);
            rt.block_on(async move { ex.run(&plan, token, progress).await })
        });
        close_stream(&stream);
        r.map(|inner| Report { inner }).map_err(to_py_err)
    }
}

/// Runs `f` with the GIL released, Rust logs forwarded to `logging` at the
/// level set when the call starts and flushed before it returns.
fn blocking<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    logs::refresh(py);
    let r = py.detach(f);
    logs::flush(py);
    r
}

/// Builds the demo repository under `dir`; returns the demo restores as
/// dicts with `name`, `restore_point` and `request`.
#[pyfunction]
fn build_demo(py: Python<'_>, dir: std::path::PathBuf) -> PyResult<Py<PyAny>> {
    let (_, restores) = py
        .detach(move || restore_core::demo::build(&dir))
        .map_err(to_py_err)?;
    let list = PyList::empty(py);
    for r in restores {
        let d = PyDict::new(py);
        d.set_item("name", r.name)?;
        d.set_item("restore_point", to_py(py, &r.restore_point)?)?;
        d.set_item("request", to_py(py, &r.request)?)?;
        list.append(d)?;
    }
    Ok(list.into_any().unbind())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let _ = MODULE_PID.set(std::process::id());
    let py = m.py();
    // `logging` first: atexit hooks run last-registered first, so ours
    // forwards the last records before logging shuts down.
    logs::install(py);
    py.import("atexit")?
        .call_method1("register", (wrap_pyfunction!(aio::_at_exit, m)?,))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(plan_many, m)?)?;
    m.add_function(wrap_pyfunction!(check_rules, m)?)?;
    m.add_function(wrap_pyfunction!(builtin_catalog, m)?)?;
    m.add_function(wrap_pyfunction!(builtin_profiles, m)?)?;
    m.add_function(wrap_pyfunction!(schema, m)?)?;
    m.add_function(wrap_pyfunction!(build_demo, m)?)?;
    m.add_class::<Plan>()?;
    m.add_class::<Finding>()?;
    m.add_class::<Transformation>()?;
    m.add_class::<Step>()?;
    m.add_class::<PostAction>()?;
    m.add_class::<Estimates>()?;
    m.add_class::<Repository>()?;
    m.add_class::<SimCloud>()?;
    m.add_class::<ArmCloud>()?;
    m.add_class::<ObjectStoreRepository>()?;
    m.add_class::<PageBlobSink>()?;
    m.add_class::<Report>()?;
    m.add_class::<ProgressStream>()?;
    m.add_class::<RestoreExecutor>()?;
    m.add("VmrestoreError", py.get_type::<VmrestoreError>())?;
    m.add("ParseError", py.get_type::<ParseError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("UnknownProfileError", py.get_type::<UnknownProfileError>())?;
    m.add("RuleError", py.get_type::<RuleError>())?;
    m.add("RuleEvaluationError", py.get_type::<RuleEvaluationError>())?;
    m.add("RepositoryError", py.get_type::<RepositoryError>())?;
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    m.add("PlanBlockedError", py.get_type::<PlanBlockedError>())?;
    m.add("StalePlanError", py.get_type::<StalePlanError>())?;
    m.add("JournalError", py.get_type::<JournalError>())?;
    m.add("CloudError", py.get_type::<CloudError>())?;
    m.add("PlanMismatchError", py.get_type::<PlanMismatchError>())?;
    m.add("PlanSealError", py.get_type::<PlanSealError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("JournalLockedError", py.get_type::<JournalLockedError>())?;
    Ok(())
}
