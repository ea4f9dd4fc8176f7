//! The plan: pure data, serialisable, the only thing the executor runs.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::step_kind::StepKind;
use crate::model::{DiskRole, DiskSku, Firmware, Generation, OsFamily, SecurityType};

/// Version of the plan's JSON format. Bumped on any incompatible change.
pub const FORMAT_VERSION: &str = "2.0";

/// A restore plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Version of this JSON format.
    pub format_version: String,
    /// Digests of the inputs; the executor refuses a plan whose inputs changed.
    pub fingerprint: Fingerprint,
    /// Profiles (and custom rule sets) the plan was made under, in order.
    pub profiles: Vec<String>,
    /// Ready to run, or blocked.
    pub verdict: Verdict,
    /// Everything the rules had to say, in rule order.
    pub findings: Vec<Finding>,
    /// Ways the restored VM differs from the source.
    pub transformations: Vec<Transformation>,
    /// What will be created, changed or deleted, as a dependency graph in the
    /// profile's stage order. Empty when the plan is blocked.
    pub steps: Vec<Step>,
    /// What a person or script must do after the restore.
    pub post_actions: Vec<PostAction>,
    /// Sizes and counts.
    pub estimates: Estimates,
    /// The VM and disks the restore produces.
    pub target: Target,
    /// Every rule ID that contributed to the plan, sorted.
    pub rules_applied: Vec<String>,
    /// What the plan was made from, besides the restore point (in the
    /// repository) and the catalog (the cloud's): the executor plans again
    /// from these and refuses a plan that differs from what the planner
    /// makes of them.
    pub inputs: PlanInputs,
    /// An HMAC-SHA256 over the plan (see [`crate::plan::seal`]), for plans
    /// that pass through untrusted hands: an executor given the key runs
    /// only a plan whose seal matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// The inputs a plan records so that it can be planned again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanInputs {
    /// The request.
    pub request: crate::model::RestoreRequest,
    /// The profiles and custom rule sets, in order.
    pub profiles: Vec<ProfileInput>,
    /// What the cloud the plan was made for can perform, when it was made
    /// for one ([`super::Planner::for_cloud`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<super::capabilities::Capabilities>,
}

/// A profile the plan was made under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProfileInput {
    /// Its name (a built-in profile's, or a custom rule set's).
    pub name: String,
    /// For a custom rule set, the text it was loaded from (TOML or JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<String>,
}

impl Plan {
    /// Whether the plan can run.
    pub fn is_ready(&self) -> bool {
        self.verdict == Verdict::Ready
    }
    /// The findings that block the plan.
    pub fn blocking(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Block)
    }
    /// A step by ID.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| &*s.id == id)
    }
}

/// Digests (SHA-256, hex) of everything the plan was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Fingerprint {
    /// Digest over all the parts below.
    pub combined: String,
    /// The restore point.
    pub restore_point: String,
    /// The request.
    pub request: String,
    /// The destination catalog.
    pub catalog: String,
    /// The profiles and custom rules.
    pub policy: String,
}

/// Plan verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The restore can run.
    Ready,
    /// At least one finding blocks the restore.
    Blocked,
}

/// How serious a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// The restore runs, but something may go wrong or cost more.
    Warning,
    /// The restore cannot run as requested.
    Block,
}

/// The kind of outcome a rule has (RULES.md's outcome kinds).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The restore cannot run.
    Block,
    /// A warning.
    Warn,
    /// Information only.
    Info,
    /// The restored VM differs from the source.
    Transform,
    /// Something to do after the restore.
    Post,
    /// Adds, removes or orders a step.
    Step,
}

/// Something a rule said about this restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// Rule ID, e.g. `CV-02`.
    pub rule_id: String,
    /// Severity.
    pub severity: Severity,
    /// Outcome kind of this finding.
    pub kind: OutcomeKind,
    /// Human-readable message naming the thing concerned.
    pub message: String,
    /// Where the rule comes from (document, page).
    pub source: String,
    /// JSON path of the input this finding concerns (`$.restore_point...`,
    /// `$.request...`).
    pub path: String,
}

/// A way the restored VM differs from the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Transformation {
    /// Rule that caused it.
    pub rule_id: String,
    /// What changes (the fixed vocabulary).
    pub kind: TransformKind,
    /// JSON path of the source value.
    pub path: String,
    /// Value before.
    pub before: serde_json::Value,
    /// Value after.
    pub after: serde_json::Value,
    /// Explanation.
    pub message: String,
}

/// Transformations that need code; rules (built-in and custom) name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransformKind {
    /// The availability zone is removed.
    DropZone,
    /// A different zone is used.
    ChangeZone,
    /// The availability set is removed.
    DropAvailabilitySet,
    /// A UEFI system becomes a BIOS Generation 1 VM.
    EfiToBios,
    /// A GPT system disk is converted to MBR.
    GptToMbr,
    /// Each LVM volume group becomes an extra disk.
    SplitLvm,
    /// Static private IPs become dynamic.
    StaticToDynamicIp,
    /// A Spot VM becomes a regular VM.
    SpotToRegular,
    /// The VM is restored in the source's paired region.
    PairedRegion,
    /// A new key vault is created in the destination region.
    NewKeyVault,
    /// Disks (and a template) are restored instead of a VM.
    RestoreDisksInstead,
    /// Customer-managed keys are not applied to the restored disks.
    DropCustomerManagedKeys,
    /// A cluster node becomes its own VM; shared disks become regular disks.
    ClusterNodeToVm,
    /// Only the first virtual network is kept.
    KeepFirstVirtualNetwork,
    /// A disk is left out of the restore.
    OmitDisk,
    /// The VM size is chosen or changed.
    ChangeVmSize,
    /// The public IP is not restored.
    DropPublicIp,
    /// The VM's generation (and firmware) changes, e.g. to Generation 2.
    ChangeGeneration,
    /// A new network security group replaces the source's.
    NewNetworkSecurityGroup,
    /// A disk grows to the smallest size Azure takes.
    GrowDisk,
}

impl TransformKind {
    /// Whether applying it needs an argument (a zone, a vault, a disk, a
    /// size, a generation, an NSG) that a custom rule cannot give.
    pub fn needs_argument(self) -> bool {
        matches!(
            self,
            TransformKind::ChangeZone
                | TransformKind::NewKeyVault
                | TransformKind::OmitDisk
                | TransformKind::ChangeVmSize
                | TransformKind::ChangeGeneration
                | TransformKind::NewNetworkSecurityGroup
                | TransformKind::GrowDisk
        )
    }

    /// Every kind, for documentation and validation of custom rules.
    pub const ALL: [TransformKind; 20] = [
        TransformKind::DropZone,
        TransformKind::ChangeZone,
        TransformKind::DropAvailabilitySet,
        TransformKind::EfiToBios,
        TransformKind::GptToMbr,
        TransformKind::SplitLvm,
        TransformKind::StaticToDynamicIp,
        TransformKind::SpotToRegular,
        TransformKind::PairedRegion,
        TransformKind::NewKeyVault,
        TransformKind::RestoreDisksInstead,
        TransformKind::DropCustomerManagedKeys,
        TransformKind::ClusterNodeToVm,
        TransformKind::KeepFirstVirtualNetwork,
        TransformKind::OmitDisk,
        TransformKind::ChangeVmSize,
        TransformKind::DropPublicIp,
        TransformKind::ChangeGeneration,
        TransformKind::NewNetworkSecurityGroup,
        TransformKind::GrowDisk,
    ];
}

/// What a step does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Creates a resource.
    Create,
    /// Changes an existing resource (or writes data into one).
    Update,
    /// Deletes a resource.
    Delete,
    /// Reads or verifies without changing anything.
    Read,
}

impl Action {
    /// The terraform-style symbol.
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
            Action::Read => '?',
        }
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// Unique, stable ID within the plan (`disk:web01-os`); resources created
    /// by the step are keyed by it.
    pub id: Arc<str>,
    /// What kind of step.
    pub kind: StepKind,
    /// What it does to its resource.
    pub action: Action,
    /// Name of the resource concerned.
    pub resource: Arc<str>,
    /// Stage of the profile the step belongs to.
    pub stage: Arc<str>,
    /// Steps that must finish first.
    pub depends_on: Vec<Arc<str>>,
    /// Rules that caused or shaped this step.
    pub rule_ids: Vec<Arc<str>>,
    /// For disk steps: the target disk's name.
    pub disk: Option<Arc<str>>,
    /// Bytes this step moves (data steps).
    pub bytes: u64,
    /// Human-readable detail.
    pub detail: String,
    /// The whole operation: what the executor hands the cloud, the
    /// repository or the sink, as the planner decided it.
    pub operation: super::ops::Operation,
}

/// Something to do after the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PostAction {
    /// Rule that asks for it.
    pub rule_id: String,
    /// What to do.
    pub message: String,
    /// Where the rule comes from.
    pub source: String,
}

/// Sizes and counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Estimates {
    /// Bytes to move: allocated data only.
    pub bytes_to_move: u64,
    /// Provisioned storage of the restored disks.
    pub storage_bytes: u64,
    /// Disks the restore creates.
    pub disks: u32,
    /// Resources created.
    pub to_create: u32,
    /// Resources changed.
    pub to_change: u32,
    /// Resources deleted.
    pub to_delete: u32,
    /// Seconds to move the data at the expected throughput (100 MiB/s, or
    /// 30 MB/s for unmanaged disks in Premium accounts under Veeam).
    pub transfer_seconds: u64,
}

/// The VM the restore produces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Target {
    /// Restore point restored.
    pub restore_point_id: String,
    /// Source VM name.
    pub source_vm: String,
    /// Tenant.
    pub tenant_id: Option<String>,
    /// Subscription.
    pub subscription_id: String,
    /// Region.
    pub region: String,
    /// Resource group.
    pub resource_group: String,
    /// VM name.
    pub vm_name: String,
    /// VM size.
    pub vm_size: String,
    /// Zone, if any.
    pub zone: Option<u8>,
    /// Availability set, if any.
    pub availability_set: Option<String>,
    /// OS family.
    pub os_family: OsFamily,
    /// Hyper-V generation.
    pub generation: Generation,
    /// Firmware.
    pub firmware: Firmware,
    /// Security type of the restored VM (trusted launch needs generation 2;
    /// left out of the JSON when standard).
    #[serde(default, skip_serializing_if = "SecurityType::is_standard")]
    pub security_type: SecurityType,
    /// Managed disks (else unmanaged VHD blobs).
    pub managed: bool,
    /// Create a VM (false: restore disks and a template only).
    pub create_vm: bool,
    /// Power on after creation.
    pub power_on: bool,
    /// Staging storage account, when one is used.
    pub staging_account: Option<String>,
    /// Key vault in use at the destination, if any.
    pub key_vault: Option<String>,
    /// Network security group, if any.
    pub network_security_group: Option<String>,
    /// Ports the NSG opens when the restore creates it.
    pub nsg_open_ports: Vec<u16>,
    /// The NSG the restore creates comes after the VM (Commvault's order)
    /// and is then attached to the VM's NICs; otherwise the NICs are
    /// created with it. Decided by the planner from the profile's stages.
    #[serde(default)]
    pub nsg_after_vm: bool,
    /// The disks' bytes go to page blobs in the staging account (unmanaged
    /// disks, or managed disks made from them by `convert_to_managed`);
    /// otherwise straight into managed disks created for upload.
    #[serde(default)]
    pub disks_staged: bool,
    /// NICs to create.
    pub nics: Vec<TargetNic>,
    /// Disks to create.
    pub disks: Vec<TargetDisk>,
}

/// A NIC of the restored VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetNic {
    /// NIC name.
    pub name: String,
    /// Virtual network.
    pub virtual_network: String,
    /// Subnet.
    pub subnet: String,
    /// Static private IP (None: dynamic).
    pub static_ip: Option<String>,
    /// Public IP resource to create and attach.
    pub public_ip: Option<String>,
}

/// A disk of the restored VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TargetDisk {
    /// Name of the restored disk.
    pub name: String,
    /// Name of the source disk its data comes from.
    pub source_disk: String,
    /// Volume group, when the disk holds an LVM volume group split out of
    /// `source_disk` (VE-04).
    pub volume_group: Option<String>,
    /// OS or data.
    pub role: DiskRole,
    /// LUN for data disks.
    pub lun: Option<u32>,
    /// Size in bytes (a whole number of MiB, as Azure requires).
    pub size_bytes: u64,
    /// Bytes of data to write.
    pub bytes_to_write: u64,
    /// SKU.
    pub sku: DiskSku,
    /// Disk encryption set applied, if any.
    pub disk_encryption_set: Option<String>,
}
