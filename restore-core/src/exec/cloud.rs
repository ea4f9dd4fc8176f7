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

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{Catalog, DiskSku, Generation, OsFamily, SecurityType};

/// What went wrong in a cloud or storage call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloudErrorKind {
    /// 429: throttled.
    Throttled,
    /// 5xx: the service failed.
    Unavailable,
    /// The call timed out or the connection dropped.
    Timeout,
    /// The request conflicts with existing state (name taken, wrong state).
    Conflict,
    /// The resource does not exist.
    NotFound,
    /// The request is invalid (name, size, alignment).
    Invalid,
    /// A quota is exhausted.
    QuotaExceeded,
    /// Anything else that will not succeed on retry.
    Fatal,
}

/// An error from a [`Cloud`], [`DiskWriter`] or [`Repository`] call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{operation}: {kind:?}: {message}")]
pub struct CloudError {
    /// Category; decides whether a retry can help.
    pub kind: CloudErrorKind,
    /// The operation, e.g. `create disk 'web01-osdisk'`.
    pub operation: String,
    /// What the service said (never a secret).
    pub message: String,
    /// Seconds the service asked to wait (`Retry-After`).
    pub retry_after_ms: Option<u64>,
}

impl CloudError {
    /// A new error.
    pub fn new(
        kind: CloudErrorKind,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        CloudError {
            kind,
            operation: operation.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// With a `Retry-After`.
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after_ms = Some(d.as_millis() as u64);
        self
    }

    /// Whether retrying may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            CloudErrorKind::Throttled | CloudErrorKind::Unavailable | CloudErrorKind::Timeout
        )
    }
}

/// Result of cloud calls.
pub type CloudResult<T> = std::result::Result<T, CloudError>;

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

/// What to create. One variant per resource the plan's steps make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ResourceSpec {
    /// A resource group.
    ResourceGroup {
        /// Subscription.
        subscription_id: String,
        /// Name.
        name: String,
        /// Region.
        region: String,
    },
    /// A key vault.
    KeyVault {
        /// Subscription.
        subscription_id: String,
        /// Resource group.
        resource_group: String,
        /// Name.
        name: String,
        /// Region.
        region: String,
    },
    /// A staging storage account.
    StorageAccount {
        /// Subscription.
        subscription_id: String,
        /// Resource group.
        resource_group: String,
        /// Name.
        name: String,
        /// Region.
        region: String,
    },
    /// A helper appliance VM (Veeam, Linux restores).
    HelperAppliance {
        /// Resource group.
        resource_group: String,
        /// Name.
        name: String,
        /// Region.
        region: String,
    },
    /// Snapshots of an existing VM's disks.
    Snapshot {
        /// Resource group.
        resource_group: String,
        /// VM whose disks are snapshotted.
        vm: String,
    },
    /// A disk to upload into: a managed disk created for upload, or a page
    /// blob in the staging account.
    Disk {
        /// Subscription.
        subscription_id: String,
        /// Resource group.
        resource_group: String,
        /// Name.
        name: String,
        /// Region.
        region: String,
        /// Virtual size (a whole number of MiB).
        size_bytes: u64,
        /// SKU.
        sku: DiskSku,
        /// Zone.
        zone: Option<u8>,
        /// OS disk: its OS family and generation.
        os: Option<(OsFamily, Generation)>,
        /// Security type of the VM an OS disk is for (a trusted-launch VM
        /// needs its OS disk created as such).
        #[serde(default)]
        security_type: SecurityType,
        /// Page blob in this staging account instead of a managed disk.
        staging_account: Option<String>,
        /// Disk encryption set.
        disk_encryption_set: Option<String>,
    },
    /// A network security group.
    NetworkSecurityGroup {
        /// Resource group.
        resource_group: String,
        /// Name.
        name: String,
        /// Region.
        region: String,
        /// Inbound TCP ports allowed (priority 300).
        open_ports: Vec<u16>,
        /// NICs to attach it to.
        attach_to: Vec<String>,
    },
    /// A public IP.
    PublicIp {
        /// Resource group.
        resource_group: String,
        /// Name.
        name: String,
        /// Region.
        region: String,
    },
    /// A network interface.
    NetworkInterface {
        /// Resource group.
        resource_group: String,
        /// Name.
        name: String,
        /// Region.
        region: String,
        /// Virtual network.
        virtual_network: String,
        /// Subnet.
        subnet: String,
        /// Static private IP.
        static_ip: Option<String>,
        /// Public IP to attach.
        public_ip: Option<String>,
        /// NSG to attach.
        network_security_group: Option<String>,
    },
    /// A VM from attached disks.
    VirtualMachine {
        /// Subscription.
        subscription_id: String,
        /// Resource group.
        resource_group: String,
        /// Name.
        name: String,
        /// Region.
        region: String,
        /// Size.
        size: String,
        /// Zone.
        zone: Option<u8>,
        /// Availability set.
        availability_set: Option<String>,
        /// OS family.
        os: OsFamily,
        /// Generation.
        generation: Generation,
        /// Security type (trusted launch only with generation 2).
        #[serde(default)]
        security_type: SecurityType,
        /// OS disk name.
        os_disk: String,
        /// Data disks with their LUNs.
        data_disks: Vec<(u32, String)>,
        /// NIC names, primary first.
        nics: Vec<String>,
    },
}

impl ResourceSpec {
    /// The resource type, e.g. `disk`.
    pub fn kind(&self) -> &'static str {
        match self {
            ResourceSpec::ResourceGroup { .. } => "resource_group",
            ResourceSpec::KeyVault { .. } => "key_vault",
            ResourceSpec::StorageAccount { .. } => "storage_account",
            ResourceSpec::HelperAppliance { .. } => "helper_appliance",
            ResourceSpec::Snapshot { .. } => "snapshot",
            ResourceSpec::Disk { .. } => "disk",
            ResourceSpec::NetworkSecurityGroup { .. } => "network_security_group",
            ResourceSpec::PublicIp { .. } => "public_ip",
            ResourceSpec::NetworkInterface { .. } => "network_interface",
            ResourceSpec::VirtualMachine { .. } => "virtual_machine",
        }
    }

    /// The resource name.
    pub fn name(&self) -> &str {
        match self {
            ResourceSpec::Snapshot { vm, .. } => vm,
            ResourceSpec::ResourceGroup { name, .. }
            | ResourceSpec::KeyVault { name, .. }
            | ResourceSpec::StorageAccount { name, .. }
            | ResourceSpec::HelperAppliance { name, .. }
            | ResourceSpec::Disk { name, .. }
            | ResourceSpec::NetworkSecurityGroup { name, .. }
            | ResourceSpec::PublicIp { name, .. }
            | ResourceSpec::NetworkInterface { name, .. }
            | ResourceSpec::VirtualMachine { name, .. } => name,
        }
    }
}

/// Changes that are not creates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Action {
    /// Grant a principal access to a key vault's keys and secrets (only that
    /// principal; never a broad role).
    GrantKeyVaultAccess {
        /// Vault.
        vault: String,
        /// Service principal (application) ID.
        principal: String,
    },
    /// Mount the restored disks, fix the boot configuration, unmount.
    BootFix {
        /// VM name.
        vm: String,
        /// Disks.
        disks: Vec<String>,
    },
    /// Make managed disks from the page blobs of the staging account.
    ConvertToManaged {
        /// Resource group.
        resource_group: String,
        /// Disks (blob names).
        disks: Vec<String>,
    },
    /// Swap the restored disks into an existing VM.
    SwapDisks {
        /// Resource group.
        resource_group: String,
        /// VM.
        vm: String,
        /// Disks.
        disks: Vec<String>,
    },
    /// Start a VM.
    PowerOn {
        /// Resource group.
        resource_group: String,
        /// VM.
        vm: String,
    },
    /// Delete an existing VM, keeping its disks.
    DeleteExistingVm {
        /// Subscription.
        subscription_id: String,
        /// Resource group.
        resource_group: String,
        /// VM.
        vm: String,
    },
    /// Put back an existing VM deleted by [`Action::DeleteExistingVm`], on
    /// its kept disks (in place, when the new VM could not be made after
    /// the point of no return). Succeeds when the VM exists.
    RestoreExistingVm {
        /// Subscription.
        subscription_id: String,
        /// Resource group.
        resource_group: String,
        /// VM.
        vm: String,
    },
    /// Delete the disks an existing VM had before it was replaced.
    DeleteReplacedDisks {
        /// Resource group.
        resource_group: String,
        /// VM.
        vm: String,
    },
    /// Install the VMAccess extension to reset a password or SSH key (the
    /// credential itself is passed by the host, never kept in a plan).
    VmAccessExtension {
        /// Resource group.
        resource_group: String,
        /// VM.
        vm: String,
        /// User whose access is reset.
        username: String,
    },
}

/// Positioned writes of verified bytes into one disk, then a finish.
#[async_trait]
pub trait DiskWriter: Send + Sync {
    /// Writes `data` at `offset`. Offsets and lengths are multiples of 512;
    /// writers split larger writes as their destination requires.
    async fn write_at(&self, offset: u64, data: Bytes) -> CloudResult<()>;
    /// Writes a chunk whose SHA-256 (verified) is `sha256`. Writers that can
    /// tell their destination already holds it skip it; the default writes.
    /// The executor calls this one; several calls on a disk may be in flight.
    async fn write_chunk(&self, offset: u64, data: Bytes, sha256: &str) -> CloudResult<()> {
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
    async fn finish(&self, digest: &str) -> CloudResult<()>;
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
    async fn catalog(&self) -> CloudResult<Catalog>;
    /// Creates `spec` for plan step `key`, or returns what an earlier call
    /// with the same key created.
    async fn create(&self, key: &str, spec: &ResourceSpec) -> CloudResult<Resource>;
    /// Deletes a resource this run created. Deleting something already gone
    /// succeeds.
    async fn delete(&self, resource: &Resource) -> CloudResult<()>;
    /// Runs an action for plan step `key` (idempotent for the same key).
    async fn act(&self, key: &str, action: &Action) -> CloudResult<()>;
    /// Opens write access to a disk created by [`Cloud::create`].
    async fn open_disk(&self, disk: &Resource) -> CloudResult<Box<dyn DiskWriter>>;
    /// Ends write access to a disk (it can then be attached).
    async fn close_disk(&self, disk: &Resource) -> CloudResult<()>;
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
    ) -> CloudResult<Box<dyn DiskWriter>>;
    /// Stores an artifact (template, report) under `name`.
    async fn write_artifact(&self, name: &str, bytes: Bytes) -> CloudResult<()>;
}

/// A backup repository, as the executor reads it.
#[async_trait]
pub trait Repository: Send + Sync {
    /// Restore point IDs.
    async fn list(&self) -> crate::Result<Vec<String>>;
    /// A restore point's manifest (its metadata, and each disk's allocated
    /// chunks with their SHA-256).
    async fn manifest(&self, id: &str) -> crate::Result<crate::repo::Manifest>;
    /// Whether a chunk is present with the right length (without reading it).
    async fn has_chunk(&self, chunk: &crate::repo::ChunkRef) -> crate::Result<bool>;
    /// A chunk's bytes, verified against its SHA-256; a mismatch is
    /// [`crate::Error::Integrity`] naming the disk and offset.
    async fn read_chunk(&self, disk: &str, chunk: &crate::repo::ChunkRef) -> crate::Result<Bytes>;
}
