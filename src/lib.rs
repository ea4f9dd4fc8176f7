//! Thin re-export of `restore-core`; see that crate.
pub use restore_core::*;
