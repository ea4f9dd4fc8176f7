//! # restore-core
//!
//! The core of vmrestore: a data model of backed-up virtual machines and
//! restore requests ([`model`]), vendor policies as rules ([`policy`]), and a
//! pure, deterministic planner ([`plan`]) whose plans explain every decision
//! with the rule ID that caused it.
#![warn(missing_docs)]

#[cfg(feature = "azure")]
pub mod azure;
pub mod cloud;
pub mod demo;
pub mod error;
pub mod exec;
pub mod facade;
pub mod model;
pub mod plan;
pub mod policy;
pub mod redact;
pub mod repo;
pub mod schema;
pub mod units;
pub mod vhd;

pub use error::{Error, Result};
