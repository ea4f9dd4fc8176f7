//! Restore points: what was backed up, when, and how.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::vm::VirtualMachine;

/// One restore point of one VM: the VM's configuration at backup time plus
/// how the backup was made and where it is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestorePoint {
    /// Identifier of the restore point in its repository (`[A-Za-z0-9._-]`, 1-128).
    pub id: String,
    /// Time of the backup, RFC 3339 (`2026-11-20T22:00:00Z`).
    pub time: String,
    /// Where the recovery point is kept.
    #[serde(default)]
    pub tier: Tier,
    /// Consistency of the backup.
    #[serde(default)]
    pub consistency: Consistency,
    /// How the backup was made.
    pub backup: BackupInfo,
    /// The Azure Backup vault holding it, when there is one.
    #[serde(default)]
    pub vault: Option<VaultInfo>,
    /// The VM as backed up.
    pub vm: VirtualMachine,
    /// Key vaults the VM's encryption depends on.
    #[serde(default)]
    pub key_vaults: Vec<KeyVault>,
    /// Disk encryption sets the VM's disks use.
    #[serde(default)]
    pub disk_encryption_sets: Vec<DiskEncryptionSet>,
}

/// Recovery point tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Snapshot only (instant restore).
    Snapshot,
    /// Vault only.
    #[default]
    Vault,
    /// Both a snapshot and a vault copy.
    SnapshotAndVault,
}

/// Consistency of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Application consistent (VSS / pre-post scripts).
    ApplicationConsistent,
    /// File-system consistent.
    FileSystemConsistent,
    /// Crash consistent.
    #[default]
    CrashConsistent,
}

/// How and by what the backup was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupInfo {
    /// What was backed up.
    pub kind: BackupKind,
    /// Veeam Agent backups: the level of the backup job.
    #[serde(default)]
    pub agent_level: Option<AgentLevel>,
    /// Kind of repository the backup is stored in.
    #[serde(default)]
    pub repository: RepositoryKind,
    /// Streaming (data read through the proxy) or snapshot-based backup.
    #[serde(default)]
    pub method: BackupMethod,
    /// OS of the backup server that will mount the disks (Veeam).
    #[serde(default)]
    pub server_os: Option<super::vm::OsFamily>,
}

/// What kind of source the backup is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// An Azure VM backed up by its platform API.
    AzureVm,
    /// A Veeam Agent (Windows or Linux) backup of a computer.
    VeeamAgent,
    /// A VMware vSphere VM.
    Vmware,
    /// A Hyper-V VM.
    HyperV,
    /// A physical machine.
    Physical,
}

/// Level of a Veeam Agent backup job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentLevel {
    /// Entire computer.
    EntireComputer,
    /// Selected volumes.
    Volume,
    /// Selected files and folders.
    File,
}

/// Kind of repository holding the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RepositoryKind {
    /// A backup repository (disk library, vault, object storage).
    #[default]
    BackupRepository,
    /// A Veeam Cloud Connect repository at a service provider.
    CloudConnect,
}

/// How the data was read at backup time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupMethod {
    /// Streaming backup through a proxy.
    #[default]
    Streaming,
    /// Snapshot-based (IntelliSnap, platform snapshot).
    Snapshot,
}

/// The Recovery Services vault holding an Azure Backup restore point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VaultInfo {
    /// Region of the vault.
    pub region: String,
    /// Storage redundancy of the vault.
    #[serde(default)]
    pub redundancy: VaultRedundancy,
    /// Cross-region restore enabled on the vault.
    #[serde(default)]
    pub cross_region_restore: bool,
    /// Cross-subscription restore enabled on the vault.
    #[serde(default = "yes")]
    pub cross_subscription_restore: bool,
    /// The vault itself is encrypted with customer-managed keys.
    #[serde(default)]
    pub cmk_encrypted: bool,
}

fn yes() -> bool {
    true
}

/// Vault storage redundancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VaultRedundancy {
    /// Locally redundant.
    Lrs,
    /// Zone redundant.
    Zrs,
    /// Geo redundant.
    #[default]
    Grs,
}

/// A key vault holding keys or secrets the VM's encryption needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyVault {
    /// Vault name (3-24 characters, globally unique).
    pub name: String,
    /// Region of the vault.
    pub region: String,
    /// Subscription of the vault.
    pub subscription_id: String,
    /// Authorization model.
    #[serde(default)]
    pub authorization: VaultAuthorization,
    /// Keys are backed by certificates.
    #[serde(default)]
    pub certificate_backed_keys: bool,
}

/// Authorization model of a key vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VaultAuthorization {
    /// Azure RBAC.
    Rbac,
    /// Vault access policies.
    #[default]
    AccessPolicies,
}

/// A disk encryption set (customer-managed keys for managed disks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskEncryptionSet {
    /// Name of the set.
    pub name: String,
    /// Region of the set.
    pub region: String,
    /// Subscription of the set.
    pub subscription_id: String,
    /// Key vault holding the key.
    pub key_vault: String,
}
