//! The operations a plan's steps carry: what to create, with every field a
//! cloud needs ([`ResourceSpec`]), and the changes that are not creates
//! ([`CloudAction`]). The planner builds them; the executor hands them to
//! the cloud as they stand.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{DiskSku, Generation, OsFamily, SecurityType};

/// What to create. One variant per resource the plan's steps make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

    /// The resource group it goes in (`None` for a resource group).
    pub fn resource_group(&self) -> Option<&str> {
        match self {
            ResourceSpec::ResourceGroup { .. } => None,
            ResourceSpec::KeyVault { resource_group, .. }
            | ResourceSpec::StorageAccount { resource_group, .. }
            | ResourceSpec::HelperAppliance { resource_group, .. }
            | ResourceSpec::Snapshot { resource_group, .. }
            | ResourceSpec::Disk { resource_group, .. }
            | ResourceSpec::NetworkSecurityGroup { resource_group, .. }
            | ResourceSpec::PublicIp { resource_group, .. }
            | ResourceSpec::NetworkInterface { resource_group, .. }
            | ResourceSpec::VirtualMachine { resource_group, .. } => Some(resource_group),
        }
    }

    /// The region it is created in (`None` for a snapshot: its disks').
    pub fn region(&self) -> Option<&str> {
        match self {
            ResourceSpec::Snapshot { .. } => None,
            ResourceSpec::ResourceGroup { region, .. }
            | ResourceSpec::KeyVault { region, .. }
            | ResourceSpec::StorageAccount { region, .. }
            | ResourceSpec::HelperAppliance { region, .. }
            | ResourceSpec::Disk { region, .. }
            | ResourceSpec::NetworkSecurityGroup { region, .. }
            | ResourceSpec::PublicIp { region, .. }
            | ResourceSpec::NetworkInterface { region, .. }
            | ResourceSpec::VirtualMachine { region, .. } => Some(region),
        }
    }
}

/// Changes that are not creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum CloudAction {
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
    /// Put back an existing VM deleted by [`CloudAction::DeleteExistingVm`], on
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

/// A target disk and where its bytes are in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiskSource {
    /// The restored disk's name.
    pub disk: String,
    /// The disk's name in the restore point's manifest (`<disk>/<volume
    /// group>` for a volume group restored as its own disk).
    pub source: String,
}

/// The whole operation one step performs, as the planner decided it: the
/// executor hands it to the cloud, the repository or the sink as it stands
/// and decides nothing again (as a `terraform` plan carries every change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Operation {
    /// Check the restore point's chunks in the repository.
    VerifyRestorePoint {
        /// The disks whose chunks are checked.
        disks: Vec<DiskSource>,
        /// Read and hash every chunk, not only check that it is there: the
        /// plan deletes an existing VM, so the data must be known good
        /// before anything is deleted.
        deep: bool,
    },
    /// Create a resource.
    Create {
        /// The resource, with every field the cloud needs.
        spec: ResourceSpec,
    },
    /// A change that is not a create. A
    /// [`CloudAction::GrantKeyVaultAccess`] carries no principal in a plan
    /// (it is the host's identity, not a restore decision): the executor
    /// binds `ExecOptions::service_principal` when it runs the step.
    Act {
        /// The change.
        action: CloudAction,
    },
    /// Stream a disk's allocated chunks, each verified, into the disk the
    /// plan created (or into the run's sink).
    WriteDisk {
        /// The disk and its data.
        #[serde(flatten)]
        disk: DiskSource,
        /// The disk's virtual size.
        size_bytes: u64,
    },
    /// Check the disk's digest over every written chunk, finish the writer
    /// and end write access.
    FinalizeDisk {
        /// The disk and its data.
        #[serde(flatten)]
        disk: DiskSource,
        /// The disk's virtual size.
        size_bytes: u64,
    },
    /// Write an ARM template that creates the VM from the restored disks
    /// (restore disks): the resources it declares, with the bodies and
    /// api-versions ArmCloud uses.
    WriteTemplate {
        /// The artifact's name in the sink, e.g. `web01.template.json`.
        artifact: String,
        /// What the template creates: the disks it refers to, the network
        /// and the VM ([`super::template_resources`]).
        resources: Vec<ResourceSpec>,
    },
}

impl Operation {
    /// The resource this operation creates, if it is a create.
    pub fn spec(&self) -> Option<&ResourceSpec> {
        match self {
            Operation::Create { spec } => Some(spec),
            _ => None,
        }
    }

    /// Whether a run whose disks go to a sink performs this operation: the
    /// data and the template do, the cloud's own operations do not.
    pub fn runs_with_sink(&self) -> bool {
        matches!(
            self,
            Operation::VerifyRestorePoint { .. }
                | Operation::WriteDisk { .. }
                | Operation::FinalizeDisk { .. }
                | Operation::WriteTemplate { .. }
        )
    }
}
