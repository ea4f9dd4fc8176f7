//! The backed-up virtual machine as it was at backup time.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::disk::Disk;

/// A virtual machine as recorded in a restore point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualMachine {
    /// VM name (Azure: 1-64 characters; Windows computer names are shorter but
    /// the resource name is what matters here).
    pub name: String,
    /// ARM resource ID of the source VM, when it was an Azure VM.
    #[serde(default)]
    pub resource_id: Option<String>,
    /// Subscription the VM lived in (GUID).
    pub subscription_id: String,
    /// Entra ID tenant of that subscription (GUID).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Azure region name, e.g. `westeurope`.
    pub region: String,
    /// Resource group of the source VM.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// Availability zone (1-3), if the VM was zonal.
    #[serde(default)]
    pub zone: Option<u8>,
    /// Availability set name, if the VM was in one.
    #[serde(default)]
    pub availability_set: Option<String>,
    /// Operating system.
    pub os: OperatingSystem,
    /// Hyper-V generation.
    #[serde(default)]
    pub generation: Generation,
    /// Firmware the guest boots with.
    #[serde(default)]
    pub firmware: Firmware,
    /// Azure security type.
    #[serde(default)]
    pub security_type: SecurityType,
    /// VM size, e.g. `Standard_D4s_v5`.
    pub size: String,
    /// Azure deployment model.
    #[serde(default)]
    pub deployment_model: DeploymentModel,
    /// Domain-controller role, if the VM is one.
    #[serde(default)]
    pub domain_controller: Option<DomainControllerRole>,
    /// Whether the VM is a node of a Windows failover cluster.
    #[serde(default)]
    pub failover_cluster_node: bool,
    /// Network interfaces, primary first.
    #[serde(default)]
    pub nics: Vec<Nic>,
    /// Network security group attached to the VM, if any.
    #[serde(default)]
    pub network_security_group: Option<String>,
    /// Spot (evictable) VM.
    #[serde(default)]
    pub spot: bool,
    /// Dedicated host the VM ran on, if any.
    #[serde(default)]
    pub dedicated_host: Option<String>,
    /// VM extensions installed (names such as `AzureDiskEncryption`).
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Azure tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Disks, OS disk first by convention (order is not relied upon).
    pub disks: Vec<Disk>,
}

/// Operating system of the guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatingSystem {
    /// Windows or Linux.
    pub family: OsFamily,
    /// Version as the product reports it: `"Windows Server 2019"`, `"10.0"`,
    /// `"22.04"`. Windows versions are compared by their NT version, parsed
    /// from either form.
    #[serde(default)]
    pub version: String,
    /// Linux distribution (`ubuntu`, `rhel`, ...).
    #[serde(default)]
    pub distribution: Option<String>,
    /// Linux: provisioned with cloud-init.
    #[serde(default)]
    pub cloud_init: bool,
    /// Linux: an initramfs tool (dracut, mkinitrd or initramfs-tools) is installed.
    #[serde(default = "yes")]
    pub initramfs_tools: bool,
    /// How administrators sign in.
    #[serde(default)]
    pub authentication: Authentication,
}

fn yes() -> bool {
    true
}

/// Operating-system family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OsFamily {
    /// Microsoft Windows.
    Windows,
    /// Any Linux distribution.
    Linux,
}

/// Sign-in method of the guest's administrator account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Authentication {
    /// Password sign-in (Windows always; Linux when enabled).
    #[default]
    Password,
    /// SSH public key only.
    SshKey,
    /// Both SSH key and password.
    SshKeyAndPassword,
}

impl Authentication {
    /// Whether a password can be used to sign in.
    pub fn uses_password(self) -> bool {
        matches!(
            self,
            Authentication::Password | Authentication::SshKeyAndPassword
        )
    }
}

/// Hyper-V VM generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Generation {
    /// Generation 1 (BIOS).
    #[default]
    #[serde(rename = "gen1")]
    Gen1,
    /// Generation 2 (UEFI).
    #[serde(rename = "gen2")]
    Gen2,
}

/// Guest firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Firmware {
    /// Legacy BIOS.
    #[default]
    Bios,
    /// UEFI (EFI).
    Uefi,
}

/// Azure VM security type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityType {
    /// No special security features.
    #[default]
    Standard,
    /// Trusted launch (secure boot, vTPM).
    TrustedLaunch,
    /// Confidential VM.
    Confidential,
}

impl SecurityType {
    /// Whether this is the standard security type (no trusted launch).
    pub fn is_standard(&self) -> bool {
        *self == SecurityType::Standard
    }
}

/// Azure deployment model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentModel {
    /// Azure Resource Manager.
    #[default]
    Arm,
    /// Azure Service Manager ("Classic").
    Classic,
}

/// Role of a domain controller in its forest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DomainControllerRole {
    /// One of several DCs of a single domain: restores like any VM.
    Single,
    /// The last DC of its domain, or one restored into an isolated network:
    /// needs a forest recovery.
    Last,
    /// A DC in a multi-domain forest.
    MultiDomain,
}

/// A network interface of the source VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// NIC name.
    pub name: String,
    /// Virtual network the NIC's subnet belongs to.
    pub virtual_network: String,
    /// Subnet name.
    pub subnet: String,
    /// Private IP allocation.
    #[serde(default)]
    pub private_ip: IpAllocation,
    /// Public IP address resource name, if one was attached.
    #[serde(default)]
    pub public_ip: Option<String>,
}

/// Private IP allocation of a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "allocation", deny_unknown_fields)]
pub enum IpAllocation {
    /// Assigned by Azure DHCP.
    #[default]
    Dynamic,
    /// A fixed address.
    Static {
        /// The IPv4 or IPv6 address.
        address: String,
    },
}
