//! Python values to and from the core's documents.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use restore_core::facade::{self, Doc};
use restore_core::plan as core_plan;
use serde::Serialize;

use crate::errors::to_py_err;

/// Capabilities given as a dict (from `cloud.capabilities()`) or JSON text.
pub(crate) fn capabilities_of(obj: &Bound<'_, PyAny>) -> PyResult<core_plan::Capabilities> {
    facade::capabilities(Doc::Text(input_json(obj)?)).map_err(to_py_err)
}

/// JSON text of an input given as a dict/list, a JSON string, or a path.
pub(crate) fn input_json(obj: &Bound<'_, PyAny>) -> PyResult<String> {
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
pub(crate) fn to_py<T: Serialize>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

pub(crate) fn enum_str<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The typed parts of a core list: `f` of each (a getter's `Vec` of classes).
pub(crate) fn all<T, U>(items: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
    items.iter().map(f).collect()
}
