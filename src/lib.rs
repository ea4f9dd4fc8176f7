//! Thin re-export of `restore-core` (see that crate), so that the top-level
//! `examples/`, `benches/` and `tests/` build and run with plain `cargo`.
pub use restore_core::*;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
