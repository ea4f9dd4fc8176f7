//! JSON Schemas of the inputs (and of the plan), generated with schemars.
//!
//! The committed copies live under `schema/` at the repository root; a test
//! fails when they drift from the code (`VMRESTORE_BLESS=1 cargo test
//! --test schema` rewrites them).

use crate::exec::{Event, Report};
use crate::model::{Catalog, RestorePoint, RestoreRequest};
use crate::plan::Plan;

/// `(file name, schema)` for every published type.
pub fn all() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "restore_point.schema.json",
            schemars::schema_for!(RestorePoint).to_value(),
        ),
        (
            "restore_request.schema.json",
            schemars::schema_for!(RestoreRequest).to_value(),
        ),
        (
            "catalog.schema.json",
            schemars::schema_for!(Catalog).to_value(),
        ),
        ("plan.schema.json", schemars::schema_for!(Plan).to_value()),
        (
            "report.schema.json",
            schemars::schema_for!(Report).to_value(),
        ),
        ("event.schema.json", schemars::schema_for!(Event).to_value()),
    ]
}

/// The schema of one type by name: `restore_point`, `restore_request`,
/// `catalog`, `plan`, `report` or `event` (a progress event).
pub fn by_name(name: &str) -> Option<serde_json::Value> {
    all()
        .into_iter()
        .find(|(f, _)| f.strip_suffix(".schema.json") == Some(name))
        .map(|(_, s)| s)
}
