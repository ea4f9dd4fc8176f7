//! JavaScript documents to the core's types and back.

use restore_core::facade::Doc;
use restore_core::model::Validate;
use restore_core::plan as core_plan;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::errors::*;
use crate::json::Json;

/// A JS document (an object or JSON text) for the facade.
pub(crate) fn doc_of(v: Json) -> restore_core::Result<Doc> {
    v.value().map(Doc::Value)
}

/// A model document given as an object or as JSON text.
pub(crate) fn doc<T: DeserializeOwned + Validate>(v: Json) -> restore_core::Result<T> {
    doc_of(v)?.parse()
}

/// A plan given as an object (from `plan()`) or as JSON text.
pub(crate) fn plan_of(v: Json) -> restore_core::Result<core_plan::Plan> {
    let r = match v.value()? {
        Value::String(s) => serde_json::from_str(&s),
        other => serde_json::from_value(other),
    };
    r.map_err(|e| parse_error("$.plan", e.to_string()))
}

pub(crate) fn to_js<T: Serialize>(v: &T) -> napi::Result<Value, Code> {
    serde_json::to_value(v).map_err(|e| coded(invalid("$", e.to_string())))
}
