//! Node bindings of vmrestore (napi-rs 3): thin conversions around
//! `restore-core`. No rule, plan or data-path logic lives here.
//!
//! Data crosses as plain JavaScript objects with the JSON Schema's field
//! names (snake_case, exactly as `schema(name)` and the Rust and Python JSON
//! say); function and option names are camelCase. Errors are `Error`
//! objects whose `code` is the core's stable error code (`E_PARSE`, ...).

pub mod azure;
mod convert;
mod errors;
pub mod executor;
mod json;
mod log;
pub mod plan;
pub mod repository;
mod runtime;

pub use azure::{ArmCloud, ObjectStoreRepository, PageBlobSink};
pub use errors::Code;
pub use executor::{ProgressStream, RestoreExecutor, SimCloud};
pub use json::Json;
pub use log::set_logger;
pub use repository::Repository;
