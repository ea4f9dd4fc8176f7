//! Restore requests: what the user asks for.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::disk::DiskSku;

/// A request to restore one restore point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// What to restore.
    #[serde(default)]
    pub restore_type: RestoreType,
    /// Replace the source VM, or restore beside it.
    #[serde(default)]
    pub placement: Placement,
    /// For in-place restores: the user confirmed that the existing VM may be
    /// overwritten (Commvault's `OverwriteVM`).
    #[serde(default)]
    pub overwrite_confirmed: bool,
    /// Where to restore to.
    pub destination: Destination,
}

/// Restore type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestoreType {
    /// Create a whole VM.
    #[default]
    FullVm,
    /// Restore the disks (plus a template to create the VM).
    RestoreDisks,
    /// Replace the disks of an existing VM.
    ReplaceDisks,
    /// Restore files from inside the guest.
    GuestFiles,
}

/// In place (overwrite the source) or out of place (a new VM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Replace the source VM.
    InPlace,
    /// Create a new VM.
    #[default]
    OutOfPlace,
}

/// Destination of a restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// Tenant (GUID); defaults to the source's.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Subscription (GUID).
    pub subscription_id: String,
    /// Region name, e.g. `northeurope`.
    pub region: String,
    /// Resource group (1-90 characters).
    pub resource_group: String,
    /// Name of the restored VM; defaults to the source VM's name.
    #[serde(default)]
    pub vm_name: Option<String>,
    /// VM size; defaults to the source's, or the smallest size that fits.
    #[serde(default)]
    pub vm_size: Option<String>,
    /// Staging storage account for the disk data.
    #[serde(default)]
    pub staging_storage_account: Option<StorageAccount>,
    /// Virtual network (name or ID) for the NIC.
    #[serde(default)]
    pub virtual_network: Option<NetworkRef>,
    /// Subnet name in that virtual network.
    #[serde(default)]
    pub subnet: Option<String>,
    /// Network security group to attach; none means the profile decides.
    #[serde(default)]
    pub network_security_group: Option<String>,
    /// Availability zone choice.
    #[serde(default)]
    pub zone: ZoneChoice,
    /// Availability set to place the VM in.
    #[serde(default)]
    pub availability_set: Option<String>,
    /// Managed or unmanaged disks; defaults to what the source had.
    #[serde(default)]
    pub disk_storage: Option<DiskStorageChoice>,
    /// SKU for the restored disks; defaults to each source disk's SKU.
    #[serde(default)]
    pub disk_sku: Option<DiskSku>,
    /// Disk encryption set to apply to the restored disks.
    #[serde(default)]
    pub disk_encryption_set: Option<String>,
    /// Opt in to Generation 2 where the product calls it optional/experimental.
    #[serde(default)]
    pub gen2_opt_in: bool,
    /// Power the VM on after the restore.
    #[serde(default = "yes")]
    pub power_on: bool,
    /// Create a public IP for the restored VM.
    #[serde(default)]
    pub public_ip: bool,
    /// The destination is Azure Stack Hub rather than public Azure.
    #[serde(default)]
    pub azure_stack: bool,
}

fn yes() -> bool {
    true
}

/// A staging storage account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageAccount {
    /// Account name (3-24 lowercase letters and digits).
    pub name: String,
    /// Replication SKU.
    pub sku: StorageSku,
    /// Account kind.
    #[serde(default)]
    pub kind: StorageKind,
    /// Region of the account; defaults to the destination region.
    #[serde(default)]
    pub region: Option<String>,
    /// The account has firewall / network rules.
    #[serde(default)]
    pub network_rules: bool,
}

/// Storage account replication SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StorageSku {
    /// Standard locally redundant.
    #[serde(rename = "Standard_LRS")]
    StandardLrs,
    /// Standard geo redundant.
    #[serde(rename = "Standard_GRS")]
    StandardGrs,
    /// Standard read-access geo redundant.
    #[serde(rename = "Standard_RAGRS")]
    StandardRagrs,
    /// Standard zone redundant.
    #[serde(rename = "Standard_ZRS")]
    StandardZrs,
    /// Standard geo-zone redundant.
    #[serde(rename = "Standard_GZRS")]
    StandardGzrs,
    /// Standard read-access geo-zone redundant.
    #[serde(rename = "Standard_RAGZRS")]
    StandardRagzrs,
    /// Premium locally redundant.
    #[serde(rename = "Premium_LRS")]
    PremiumLrs,
    /// Premium zone redundant.
    #[serde(rename = "Premium_ZRS")]
    PremiumZrs,
}

impl StorageSku {
    /// Premium storage.
    pub fn is_premium(self) -> bool {
        matches!(self, StorageSku::PremiumLrs | StorageSku::PremiumZrs)
    }
    /// Zone-redundant (ZRS, GZRS, RA-GZRS, Premium ZRS).
    pub fn is_zone_redundant(self) -> bool {
        matches!(
            self,
            StorageSku::StandardZrs
                | StorageSku::StandardGzrs
                | StorageSku::StandardRagzrs
                | StorageSku::PremiumZrs
        )
    }
}

/// Storage account kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StorageKind {
    /// General-purpose v2.
    #[default]
    StorageV2,
    /// General-purpose v1.
    Storage,
    /// Blob-only account (cannot hold page blobs).
    BlobStorage,
    /// Premium block blobs.
    BlockBlobStorage,
}

/// A virtual network reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkRef {
    /// Network name.
    pub name: String,
    /// Subscription of the network; defaults to the destination's.
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// Region of the network; defaults to the destination's.
    #[serde(default)]
    pub region: Option<String>,
}

/// Availability zone choice: `"auto"` (the source's, where possible), `"none"`,
/// or a zone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[schemars(with = "ZoneChoiceRepr")]
pub enum ZoneChoice {
    /// Keep the source's zone where the destination region has zones.
    #[default]
    Auto,
    /// No zone.
    None,
    /// This zone.
    Zone(u8),
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ZoneChoiceRepr {
    Named(ZoneKeyword),
    Number(u8),
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum ZoneKeyword {
    Auto,
    None,
}

impl Serialize for ZoneChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ZoneChoice::Auto => s.serialize_str("auto"),
            ZoneChoice::None => s.serialize_str("none"),
            ZoneChoice::Zone(n) => s.serialize_u8(*n),
        }
    }
}

impl<'de> Deserialize<'de> for ZoneChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match ZoneChoiceRepr::deserialize(d) {
            Ok(ZoneChoiceRepr::Named(ZoneKeyword::Auto)) => Ok(ZoneChoice::Auto),
            Ok(ZoneChoiceRepr::Named(ZoneKeyword::None)) => Ok(ZoneChoice::None),
            Ok(ZoneChoiceRepr::Number(n)) => Ok(ZoneChoice::Zone(n)),
            Err(_) => Err(serde::de::Error::custom(
                "expected \"auto\", \"none\" or a zone number",
            )),
        }
    }
}

/// Managed or unmanaged disks for the restored VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiskStorageChoice {
    /// Managed disks.
    Managed,
    /// Unmanaged VHD blobs in the staging account.
    Unmanaged,
}
