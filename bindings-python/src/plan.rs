//! Plans: `Plan` and its parts (`Finding`, `Step`, ...), and the planning
//! functions.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use restore_core::facade::{self, Doc};
use restore_core::model::Catalog;
use restore_core::plan as core_plan;
use restore_core::policy::{BUILTIN_PROFILES, Profile};

use crate::convert::{all, capabilities_of, enum_str, input_json, to_py};
use crate::errors::to_py_err;

/// `to_dict()`'s dict: each named field of `$obj` under its name, in order.
macro_rules! fields_dict {
    ($py:expr, $obj:expr, $($field:ident),+ $(,)?) => {{
        let d = PyDict::new($py);
        $(d.set_item(stringify!($field), &$obj.$field)?;)+
        Ok(d.into_any().unbind())
    }};
}

/// A finding of a rule.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct Finding {
    rule_id: String,
    severity: String,
    kind: String,
    message: String,
    source: String,
    path: String,
}

/// A transformation: how the restored VM differs from the source.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
pub(crate) struct Transformation {
    rule_id: String,
    kind: String,
    path: String,
    before: Py<PyAny>,
    after: Py<PyAny>,
    message: String,
}

/// A step of the plan.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
pub(crate) struct Step {
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
    /// The whole operation the step performs, as the planner decided it
    /// (`op` names it: create, act, write_disk, ...), as a dict.
    operation: Py<PyAny>,
}

/// Something to do after the restore.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct PostAction {
    rule_id: String,
    message: String,
    source: String,
}

/// Sizes and counts of a plan.
#[pyclass(module = "vmrestore._native", frozen, get_all)]
#[derive(Clone)]
pub(crate) struct Estimates {
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
pub(crate) struct Plan {
    pub(crate) inner: Arc<core_plan::Plan>,
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
        all(&self.inner.findings, Finding::from_core)
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
        let ts = self.inner.transformations.iter();
        ts.map(|t| Transformation::from_core(py, t)).collect()
    }
    #[getter]
    fn steps(&self, py: Python<'_>) -> PyResult<Vec<Step>> {
        let steps = self.inner.steps.iter();
        steps.map(|s| Step::from_core(py, s)).collect()
    }
    #[getter]
    fn post_actions(&self) -> Vec<PostAction> {
        all(&self.inner.post_actions, PostAction::from_core)
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

impl Finding {
    pub(crate) fn from_core(f: &core_plan::Finding) -> Self {
        Finding {
            rule_id: f.rule_id.clone(),
            severity: enum_str(&f.severity),
            kind: enum_str(&f.kind),
            message: f.message.clone(),
            source: f.source.clone(),
            path: f.path.clone(),
        }
    }
}

impl PostAction {
    pub(crate) fn from_core(p: &core_plan::PostAction) -> Self {
        PostAction {
            rule_id: p.rule_id.clone(),
            message: p.message.clone(),
            source: p.source.clone(),
        }
    }
}

impl Transformation {
    fn from_core(py: Python<'_>, t: &core_plan::Transformation) -> PyResult<Self> {
        Ok(Transformation {
            rule_id: t.rule_id.clone(),
            kind: enum_str(&t.kind),
            path: t.path.clone(),
            before: to_py(py, &t.before)?,
            after: to_py(py, &t.after)?,
            message: t.message.clone(),
        })
    }
}

impl Step {
    fn from_core(py: Python<'_>, s: &core_plan::Step) -> PyResult<Self> {
        Ok(Step {
            operation: to_py(py, &s.operation)?,
            bytes: s.bytes,
            id: s.id.to_string(),
            kind: enum_str(&s.kind),
            action: enum_str(&s.action),
            resource: s.resource.to_string(),
            stage: s.stage.to_string(),
            depends_on: s.depends_on.iter().map(|d| d.to_string()).collect(),
            rule_ids: s.rule_ids.iter().map(|d| d.to_string()).collect(),
            disk: s.disk.as_ref().map(|d| d.to_string()),
            detail: s.detail.clone(),
        })
    }
}

#[pymethods]
impl Finding {
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        fields_dict!(py, self, rule_id, severity, kind, message, source, path)
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
        fields_dict!(py, self, rule_id, message, source)
    }
    fn __repr__(&self) -> String {
        format!("PostAction({}: {})", self.rule_id, self.message)
    }
}

#[pymethods]
impl Transformation {
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        fields_dict!(py, self, rule_id, kind, path, before, after, message)
    }
}

#[pymethods]
impl Step {
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        fields_dict!(
            py, self, id, kind, action, resource, stage, depends_on, rule_ids, disk, bytes, detail,
            operation
        )
    }
}

#[pymethods]
impl Estimates {
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        fields_dict!(
            py,
            self,
            bytes_to_move,
            storage_bytes,
            disks,
            to_create,
            to_change,
            to_delete,
            transfer_seconds
        )
    }
}

pub(crate) fn profiles_of(
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
pub(crate) fn plan(
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
pub(crate) fn plan_many(
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
pub(crate) fn check_rules(rules: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let p = profiles_of(None, Some(rules))?;
    Ok(p.into_iter()
        .flat_map(|p| p.rules.into_iter().map(|r| r.id))
        .collect())
}

/// The built-in catalog (real Azure regions and common VM sizes).
#[pyfunction]
pub(crate) fn builtin_catalog(py: Python<'_>) -> PyResult<Py<PyAny>> {
    to_py(py, &Catalog::builtin())
}

/// Names of the built-in profiles.
#[pyfunction]
pub(crate) fn builtin_profiles() -> Vec<&'static str> {
    BUILTIN_PROFILES.to_vec()
}

/// The JSON Schema of `restore_point`, `restore_request`, `catalog`, `plan`, `report` or `event`.
#[pyfunction]
pub(crate) fn schema(py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
    let s = restore_core::schema::by_name(name).ok_or_else(|| {
        to_py_err(restore_core::Error::Invalid {
            path: "name".into(),
            message: format!("no schema '{name}'"),
        })
    })?;
    to_py(py, &s)
}

/// Builds the demo repository under `dir`; returns the demo restores as
/// dicts with `name`, `restore_point` and `request`.
#[pyfunction]
pub(crate) fn build_demo(py: Python<'_>, dir: std::path::PathBuf) -> PyResult<Py<PyAny>> {
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
