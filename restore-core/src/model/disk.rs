//! Disks of a backed-up VM.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A disk of the source VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Disk name; unique within the VM. Used to name the restored disk.
    pub name: String,
    /// OS or data disk.
    pub role: DiskRole,
    /// Logical unit number (data disks; 0-63).
    #[serde(default)]
    pub lun: Option<u32>,
    /// Provisioned size in bytes.
    pub size_bytes: u64,
    /// Bytes holding data (allocated); the rest reads as zeros. Defaults to the size.
    #[serde(default)]
    pub allocated_bytes: Option<u64>,
    /// Azure disk SKU.
    #[serde(default)]
    pub sku: DiskSku,
    /// Managed disk, or a VHD blob in a storage account.
    #[serde(default)]
    pub storage: DiskStorage,
    /// Logical sector size: 512 or 4096.
    #[serde(default = "default_sector")]
    pub logical_sector_size: u32,
    /// Partition table type.
    #[serde(default)]
    pub partition_table: PartitionTable,
    /// Number of partitions.
    #[serde(default)]
    pub partition_count: u32,
    /// Holds the boot (system) partition of the guest.
    #[serde(default)]
    pub boot_partition: bool,
    /// Holds the OS partition (Windows directory, Linux root).
    #[serde(default)]
    pub os_partition: bool,
    /// Encryption applied to this disk.
    #[serde(default)]
    pub encryption: DiskEncryption,
    /// LVM volume groups whose physical volumes live on this disk.
    #[serde(default)]
    pub lvm_volume_groups: Vec<VolumeGroup>,
    /// A shared (cluster) disk.
    #[serde(default)]
    pub shared: bool,
}

fn default_sector() -> u32 {
    512
}

impl Disk {
    /// Bytes that must be moved to restore this disk.
    pub fn allocated(&self) -> u64 {
        self.allocated_bytes
            .unwrap_or(self.size_bytes)
            .min(self.size_bytes)
    }
    /// Whether this is a managed disk.
    pub fn is_managed(&self) -> bool {
        matches!(self.storage, DiskStorage::Managed)
    }
}

/// Disk role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiskRole {
    /// The OS disk.
    Os,
    /// A data disk.
    Data,
}

/// Azure disk SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiskSku {
    /// Standard HDD.
    StandardHdd,
    /// Standard SSD.
    #[default]
    StandardSsd,
    /// Premium SSD.
    Premium,
    /// Premium SSD v2.
    PremiumV2,
    /// Ultra Disk.
    Ultra,
}

impl DiskSku {
    /// The ARM SKU name.
    pub fn arm_name(self) -> &'static str {
        match self {
            DiskSku::StandardHdd => "Standard_LRS",
            DiskSku::StandardSsd => "StandardSSD_LRS",
            DiskSku::Premium => "Premium_LRS",
            DiskSku::PremiumV2 => "PremiumV2_LRS",
            DiskSku::Ultra => "UltraSSD_LRS",
        }
    }
    /// Whether the SKU is premium storage.
    pub fn is_premium(self) -> bool {
        matches!(self, DiskSku::Premium | DiskSku::PremiumV2 | DiskSku::Ultra)
    }
}

/// Where a disk lives.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum DiskStorage {
    /// An Azure managed disk.
    #[default]
    Managed,
    /// A page-blob VHD in a storage account.
    Unmanaged {
        /// Storage account name.
        storage_account: String,
        /// Blob path inside the account (`container/name.vhd`).
        blob: String,
        /// Whether that account is a Premium account.
        #[serde(default)]
        premium_account: bool,
    },
}

/// Partition table type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionTable {
    /// Master boot record.
    Mbr,
    /// GUID partition table.
    Gpt,
    /// Not known or none.
    #[default]
    Unknown,
}

/// Encryption applied to a disk. Several can apply at once (e.g. a disk
/// encryption set and encryption at host). Nothing set means platform-managed
/// keys.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskEncryption {
    /// Customer-managed keys through this disk encryption set (ID or name).
    #[serde(default)]
    pub disk_encryption_set: Option<String>,
    /// Azure Disk Encryption with keys in this key vault (name).
    #[serde(default)]
    pub ade_key_vault: Option<String>,
    /// Encryption at host.
    #[serde(default)]
    pub at_host: bool,
    /// Storage-service encrypted blobs (unmanaged disks).
    #[serde(default)]
    pub encrypted_blob: bool,
    /// BitLocker inside the guest.
    #[serde(default)]
    pub bitlocker: bool,
}

impl DiskEncryption {
    /// Whether any encryption beyond platform-managed keys applies.
    pub fn is_encrypted(&self) -> bool {
        self.disk_encryption_set.is_some()
            || self.ade_key_vault.is_some()
            || self.encrypted_blob
            || self.bitlocker
    }
}

/// An LVM volume group with physical volumes on a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeGroup {
    /// Volume group name.
    pub name: String,
    /// Size of the volume group in bytes.
    pub size_bytes: u64,
}
