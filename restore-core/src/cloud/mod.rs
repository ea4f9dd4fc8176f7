//! The plug points a host product implements: the cloud, the repository and
//! the disk writer.
//!
//! **Contract: every create is keyed by its plan step.** `Cloud::create` gets
//! a key made of the plan's fingerprint and the step's ID (`<plan>:<step>`);
//! called again with the same key (a retry after a timeout, a resumed run),
//! it returns what it made the first time instead of making it twice. A
//! create that finds a shared container that already exists (a resource
//! group) returns it with `existed: true`, and clean-up leaves it alone.
//! Deletes of something already gone succeed.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub mod arm_bodies;
mod limit;
mod sim;

pub use limit::{ArmLimits, TokenBucket, WriteLimitedCloud};
pub use sim::{ExistingDisk, Faults, MAX_PAGE_WRITE, SimCloud, SimConfig, SimResource};

pub use crate::error::{CallError, CallErrorKind, CallResult};
use crate::model::Catalog;
pub use crate::plan::{CloudAction, ResourceSpec};
pub use crate::repo::Repository;

/// A resource the cloud made (or found) for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Resource {
    /// Cloud ID (an ARM resource ID for Azure).
    pub id: String,
    /// Type, e.g. `disk`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Idempotency key of the step that created it (`<plan>:<step>`).
    pub key: String,
    /// It existed before (e.g. a shared resource group): clean-up leaves it.
    #[serde(default)]
    pub existed: bool,
}

/// Positioned writes of verified bytes into one disk, then a finish.
#[async_trait]
pub trait DiskWriter: Send + Sync {
    /// Writes `data` at `offset`. Offsets and lengths are multiples of 512;
    /// writers split larger writes as their destination requires.
    async fn write_at(&self, offset: u64, data: Bytes) -> CallResult<()>;
    /// Writes a chunk whose SHA-256 (verified) is `sha256`. Writers that can
    /// tell their destination already holds it skip it; the default writes.
    /// The executor calls this one; several calls on a disk may be in flight.
    async fn write_chunk(&self, offset: u64, data: Bytes, sha256: &str) -> CallResult<()> {
        let _ = sha256;
        self.write_at(offset, data).await
    }
    /// Whether the destination already holds this chunk (so the executor
    /// need not even read it from the repository). Default: no.
    async fn holds(&self, offset: u64, length: u64, sha256: &str) -> bool {
        let _ = (offset, length, sha256);
        false
    }
    /// Whether the destination provably holds this chunk, by reading it
    /// back and hashing it (or by a destination-side proof such as a
    /// state file matched to the blob's ETag). The executor asks this of
    /// every chunk a journal says an earlier run wrote: a chunk it cannot
    /// prove is written again, so `verified` in the report always means
    /// the destination's bytes. Default: [`DiskWriter::holds`].
    async fn verify_held(&self, offset: u64, length: u64, sha256: &str) -> bool {
        self.holds(offset, length, sha256).await
    }
    /// Completes the disk (for a VHD: writes the footer) after every write
    /// has returned and the disk's digest has been verified.
    async fn finish(&self, digest: &str) -> CallResult<()>;
}

/// SHA-256 (hex) of `data` equals `sha256`: for [`DiskWriter::verify_held`].
pub fn digest_matches(data: &[u8], sha256: &str) -> bool {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data)).eq_ignore_ascii_case(sha256)
}

/// Azure Resource Manager operations the plan's steps need. Async,
/// object-safe, `Send + Sync`.
#[async_trait]
pub trait Cloud: Send + Sync {
    /// What this cloud can perform: the executor refuses a plan with any
    /// other step before the first change (`E_UNSUPPORTED`), and
    /// [`crate::plan::Planner::for_cloud`] blocks such a plan (VMR-07). The
    /// default is everything; a cloud that cannot run a step kind, or an
    /// option of one, must say so here.
    fn capabilities(&self) -> crate::plan::Capabilities {
        crate::plan::Capabilities::all("custom")
    }
    /// What the planner needs to know of the destination.
    async fn catalog(&self) -> CallResult<Catalog>;
    /// Creates `spec` for plan step `key`, or returns what an earlier call
    /// with the same key created.
    async fn create(&self, key: &str, spec: &ResourceSpec) -> CallResult<Resource>;
    /// Deletes a resource this run created. Deleting something already gone
    /// succeeds.
    async fn delete(&self, resource: &Resource) -> CallResult<()>;
    /// Runs an action for plan step `key` (idempotent for the same key).
    async fn act(&self, key: &str, action: &CloudAction) -> CallResult<()>;
    /// Opens write access to a disk created by [`Cloud::create`].
    async fn open_disk(&self, disk: &Resource) -> CallResult<Box<dyn DiskWriter>>;
    /// Ends write access to a disk (it can then be attached).
    async fn close_disk(&self, disk: &Resource) -> CallResult<()>;
}

/// Where disk data and artifacts (templates, reports) go when they do not
/// go to the cloud's own disks: for example [`super::LocalVhdSink`].
#[async_trait]
pub trait DiskSink: Send + Sync {
    /// Opens a writer for `disk` of `size_bytes`. `resume` keeps what an
    /// earlier, interrupted run wrote.
    async fn open(
        &self,
        disk: &str,
        size_bytes: u64,
        resume: bool,
    ) -> CallResult<Box<dyn DiskWriter>>;
    /// Stores an artifact (template, report) under `name`.
    async fn write_artifact(&self, name: &str, bytes: Bytes) -> CallResult<()>;
}
