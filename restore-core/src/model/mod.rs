//! The data model: backed-up VMs, disks, key vaults, encryption, networks,
//! restore points, restore requests and the destination catalog.
//!
//! Everything is plain serde data. Field names are `snake_case` in JSON; enums
//! are `snake_case` strings except where Azure's own spelling is kept
//! (storage SKUs such as `Standard_LRS`). Unknown fields are rejected so that
//! a typo is an error rather than a silently ignored setting.
//!
//! Parse with [`from_json`] (or the `parse_*` helpers) to get errors that give
//! the JSON path of the offending field, and semantic validation
//! ([`Validate`]) in the same call.

mod catalog;
mod disk;
pub mod names;
mod request;
mod restore_point;
mod validate;
mod vm;

pub use catalog::*;
pub use disk::*;
pub use request::*;
pub use restore_point::*;
pub use validate::Validate;
pub use vm::*;

pub(crate) use catalog::CatalogIndex;
pub(crate) use validate::suggest;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// One gibibyte.
pub const GIB: u64 = 1 << 30;
/// One tebibyte.
pub const TIB: u64 = 1 << 40;
/// One gigabyte as Azure's disk documents count it (GB are GiB there).
pub const GB: u64 = GIB;

/// Largest JSON document accepted, in bytes (64 MiB): a bigger input is
/// refused before parsing so that it cannot exhaust memory.
pub const MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// Parses a JSON document into `T` and validates it. Errors carry the JSON
/// path of the offending field, e.g. `$.vm.disks[1].size_bytes`.
pub fn from_json<T: DeserializeOwned + Validate>(json: &str) -> Result<T> {
    let value: T = parse_only(json)?;
    value.validate()?;
    Ok(value)
}

/// Converts an already parsed [`serde_json::Value`] into `T` and validates it.
pub fn from_value<T: DeserializeOwned + Validate>(value: serde_json::Value) -> Result<T> {
    let v: T = serde_path_to_error::deserialize(value).map_err(|e| Error::Parse {
        path: json_path(&e.path().to_string()),
        message: e.inner().to_string(),
    })?;
    v.validate()?;
    Ok(v)
}

fn parse_only<T: DeserializeOwned>(json: &str) -> Result<T> {
    if json.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::Parse {
            path: "$".into(),
            message: format!(
                "document of {} bytes exceeds the limit of {} bytes",
                json.len(),
                MAX_DOCUMENT_BYTES
            ),
        });
    }
    let de = &mut serde_json::Deserializer::from_str(json);
    let v = serde_path_to_error::deserialize(&mut *de).map_err(|e| Error::Parse {
        path: json_path(&e.path().to_string()),
        message: e.inner().to_string(),
    })?;
    // One document only: `{...}{"id":"other"}`, `...]]]` or `...\0garbage`
    // is refused, not silently cut at the end of the first value.
    de.end().map_err(|e| Error::Parse {
        path: "$".into(),
        message: format!("trailing data after the JSON document: {e}"),
    })?;
    Ok(v)
}

/// serde_path_to_error prints `vm.disks[1].size_bytes` (or `.` for the root);
/// we present JSONPath-like `$.vm.disks[1].size_bytes`.
fn json_path(p: &str) -> String {
    if p.is_empty() || p == "." {
        "$".to_string()
    } else {
        format!("$.{p}")
    }
}
