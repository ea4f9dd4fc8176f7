//! The `Cloud` over Azure Resource Manager's REST API (plain reqwest; see
//! ARCHITECTURE.md for why not the `azure_core` pipeline).
//!
//! - Every create is a PUT of the whole resource, idempotent by design: a
//!   retried PUT with the same body is safe, and the step's key goes into a
//!   `vmrestore-key` tag.
//! - Long-running operations: `Azure-AsyncOperation` (polled until
//!   `Succeeded`, `Failed` or `Canceled`) or `Location` (202 while running);
//!   `Retry-After` is honoured; a terminal failure is surfaced with ARM's
//!   error code and message.
//! - 429 and 5xx come back as transient `CallError`s with `Retry-After`, so
//!   the executor's retry policy applies; the latest
//!   `x-ms-ratelimit-remaining-subscription-writes` is kept in the stats.
//! - Disks are managed disks created for upload (`uploadSizeBytes = size +
//!   512`), written through the SAS URL of `beginGetAccess` with the
//!   page-blob writer, then `endGetAccess`.
//! - Tokens come from a [`TokenProvider`] and are never logged.

mod access;
mod actions;
mod bodies;
mod catalog;
mod client;
mod cloud;
mod ids;
mod path;
mod staging;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::auth::{TokenError, TokenProvider};
use super::storage::{self, StorageAuth, http_client};
#[cfg(doc)]
use crate::cloud::arm_bodies::ResourceType;
use crate::exec::{CallError, CallErrorKind, CallResult, ResourceSpec};

/// api-versions, by the names ArmCloud's calls use: each is the entry of
/// the one table, [`ResourceType::api_version`] (`../shared/spec/AZURE.md`).
pub mod api {
    use crate::cloud::arm_bodies::{self, ResourceType};

    /// Microsoft.Compute/virtualMachines (and their extensions).
    pub const VM: &str = ResourceType::VirtualMachine.api_version();
    /// Microsoft.Compute/disks.
    pub const DISK: &str = ResourceType::Disk.api_version();
    /// Microsoft.Network (NICs, NSGs, public IPs).
    pub const NETWORK: &str = ResourceType::NetworkInterface.api_version();
    /// Microsoft.KeyVault/vaults.
    pub const KEY_VAULT: &str = ResourceType::KeyVault.api_version();
    /// Resource groups.
    pub const RESOURCES: &str = ResourceType::ResourceGroup.api_version();
    /// Microsoft.Storage/storageAccounts.
    pub const STORAGE: &str = ResourceType::StorageAccount.api_version();
    /// Subscription locations.
    pub const LOCATIONS: &str = arm_bodies::LOCATIONS_API;
    /// Microsoft.Compute/skus.
    pub const SKUS: &str = arm_bodies::SKUS_API;
}

/// Where and as whom the ARM cloud works.
#[derive(Debug, Clone)]
pub struct ArmConfig {
    /// `https://management.azure.com` (or a sovereign cloud, or a test server).
    pub endpoint: String,
    /// Subscription of resources whose spec names none.
    pub subscription_id: String,
    /// Tenant (key vaults need it).
    pub tenant_id: String,
    /// Object ID of the application's service principal (key-vault grants).
    pub principal_object_id: String,
    /// Poll interval when ARM gives no `Retry-After`.
    pub poll_interval: Duration,
    /// Longest wait for one long-running operation.
    pub lro_timeout: Duration,
    /// Lifetime of a disk's upload SAS.
    pub upload_access_seconds: u32,
}

impl Default for ArmConfig {
    fn default() -> Self {
        ArmConfig {
            endpoint: "https://management.azure.com".into(),
            subscription_id: String::new(),
            tenant_id: String::new(),
            principal_object_id: String::new(),
            poll_interval: Duration::from_secs(2),
            lro_timeout: Duration::from_secs(3600),
            upload_access_seconds: 86_400,
        }
    }
}

/// A credential that the VMAccess extension sets on a restored VM.
#[derive(Clone)]
pub enum VmCredential {
    /// A new password.
    Password(String),
    /// An SSH public key to authorise (Linux).
    SshPublicKey(String),
}

impl std::fmt::Debug for VmCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmCredential::Password(_) => f.write_str("Password(<redacted>)"),
            VmCredential::SshPublicKey(_) => f.write_str("SshPublicKey(<redacted>)"),
        }
    }
}

/// Gives the credential to reset on a restored VM (`vm_access_extension`
/// post-actions). Plans never hold it: the host answers at run time, from
/// its vault or its operator. Implemented for closures.
#[async_trait]
pub trait VmCredentials: Send + Sync {
    /// The credential for `username` on `vm`.
    async fn credential(&self, vm: &str, username: &str) -> Result<VmCredential, TokenError>;
}

#[async_trait]
impl<F> VmCredentials for F
where
    F: Fn(&str, &str) -> Result<VmCredential, TokenError> + Send + Sync,
{
    async fn credential(&self, vm: &str, username: &str) -> Result<VmCredential, TokenError> {
        self(vm, username)
    }
}

/// Counters of an [`ArmCloud`].
#[derive(Debug, Default)]
pub struct ArmStats {
    /// Requests sent.
    pub requests: AtomicU64,
    /// Polls of long-running operations.
    pub polls: AtomicU64,
    /// The last `x-ms-ratelimit-remaining-subscription-writes` seen.
    pub remaining_writes: AtomicU64,
}

/// The ARM cloud.
pub struct ArmCloud {
    http: reqwest::Client,
    cfg: ArmConfig,
    token: Arc<dyn TokenProvider>,
    /// Counters.
    pub stats: Arc<ArmStats>,
    /// IDs of what this cloud created, by `(kind, resource group, name)`
    /// (lower case): actions name resources without their subscription.
    created: std::sync::Mutex<std::collections::HashMap<(String, String, String), String>>,
    /// Where VMAccess credentials come from.
    vm_credentials: Option<Arc<dyn VmCredentials>>,
    /// Disks staged as page blobs, by the (lower-case) ID of the managed
    /// disk `ConvertToManaged` makes of them.
    staged: std::sync::Mutex<std::collections::HashMap<String, Staged>>,
    /// Blob endpoint and key of each staging account, by its ID.
    staging_access: tokio::sync::Mutex<std::collections::HashMap<String, (String, StorageAuth)>>,
    /// Existing VMs deleted in place, as ARM showed them before the delete
    /// (by lower-case ID): what `RestoreExistingVm` puts back.
    deleted_vms: std::sync::Mutex<std::collections::HashMap<String, Value>>,
}

/// A disk staged as a page blob in a storage account.
#[derive(Clone)]
struct Staged {
    /// The disk's spec (what the managed disk is made from).
    spec: ResourceSpec,
    /// ARM ID of the storage account.
    account_id: String,
    /// The blob (`<endpoint>vhds/<disk>.vhd`), without a query.
    blob_url: String,
    /// The idempotency key of the step that created the disk: the managed
    /// disk made of the blob carries it, so clean-up can prove it ours.
    key: String,
}

impl std::fmt::Debug for ArmCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmCloud")
            .field("endpoint", &storage::redact_url(&self.cfg.endpoint))
            .field("subscription_id", &self.cfg.subscription_id)
            .finish()
    }
}

fn bad(op: &str, m: impl Into<String>) -> CallError {
    CallError::new(CallErrorKind::Invalid, op, m)
}

impl ArmCloud {
    /// An ARM cloud with `token` (scope `<endpoint>/.default`).
    pub fn new(cfg: ArmConfig, token: Arc<dyn TokenProvider>) -> CallResult<Self> {
        if cfg.subscription_id.is_empty() {
            return Err(bad("configure ARM", "subscription_id is required"));
        }
        Ok(ArmCloud {
            http: http_client()?,
            cfg: ArmConfig {
                endpoint: cfg.endpoint.trim_end_matches('/').to_string(),
                ..cfg
            },
            token,
            stats: Arc::new(ArmStats::default()),
            created: Default::default(),
            vm_credentials: None,
            staged: Default::default(),
            staging_access: Default::default(),
            deleted_vms: Default::default(),
        })
    }

    /// Where the credentials of `vm_access_extension` actions come from.
    /// Without it, such actions fail with a clear error.
    pub fn with_vm_credentials(mut self, credentials: Arc<dyn VmCredentials>) -> Self {
        self.vm_credentials = Some(credentials);
        self
    }
}

impl ArmCloud {
    /// What ArmCloud performs today: every step kind but those listed with
    /// their reason, and no confidential VM.
    pub fn declared_capabilities() -> crate::plan::Capabilities {
        use crate::plan::{CONFIDENTIAL_VM, Capabilities, StepKind};
        Capabilities::all("arm")
            .without(
                StepKind::HelperAppliance,
                "the helper appliance is deployed by the backup product's own tooling, not by ArmCloud",
            )
            .without(
                StepKind::SnapshotExistingDisks,
                "ArmCloud does not snapshot existing disks yet",
            )
            .without(
                StepKind::BootFix,
                "ArmCloud has no boot fixer (disks attached to a helper VM and a Run Command script)",
            )
            .without(
                StepKind::SwapDisks,
                "ArmCloud does not swap disks into an existing VM yet",
            )
            .without(
                StepKind::DeleteExistingDisks,
                "ArmCloud does not delete replaced disks yet",
            )
            .refusing(
                CONFIDENTIAL_VM,
                "confidential VMs are not supported by ArmCloud: their disks need the VM guest state, which a disk upload cannot carry",
            )
    }
}
