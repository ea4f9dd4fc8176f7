//! The fixed vocabulary of steps (a leaf: it imports nothing of the plan).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The fixed vocabulary of steps the executor knows how to run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Check that the restore point's data is present and readable.
    VerifyRestorePoint,
    /// Ensure the resource group exists.
    ResourceGroup,
    /// Create a key vault (or restore keys into one).
    KeyVault,
    /// Grant the application's service principal access to the key vault.
    KeyVaultAccess,
    /// Create the staging storage account.
    StagingAccount,
    /// Create the helper appliance (Veeam, Linux).
    HelperAppliance,
    /// Snapshot the existing VM's disks (replace-disks restores).
    SnapshotExistingDisks,
    /// Delete the existing VM (in-place restores), keeping its disks.
    DeleteExistingVm,
    /// Create a disk (managed disk for upload, or a page blob).
    CreateDisk,
    /// Stream a disk's data from the repository.
    WriteDisk,
    /// Finish a disk: footer, end write access.
    FinalizeDisk,
    /// Mount the disks and fix the boot configuration (Veeam).
    BootFix,
    /// Convert unmanaged disks to managed disks.
    ConvertToManaged,
    /// Create or configure a network security group.
    NetworkSecurityGroup,
    /// Create a public IP.
    PublicIp,
    /// Create a network interface.
    NetworkInterface,
    /// Create the VM from the restored disks.
    VirtualMachine,
    /// Write an ARM template that creates the VM from the restored disks.
    Template,
    /// Swap the restored disks into the existing VM.
    SwapDisks,
    /// Power the VM on.
    PowerOn,
    /// Delete the replaced VM's old disks once the new VM runs.
    DeleteExistingDisks,
}

impl StepKind {
    /// Number of step kinds.
    pub const COUNT: usize = StepKind::DeleteExistingDisks as usize + 1;

    /// Every step kind, in the order of the enum (the order stages are
    /// usually written in).
    #[rustfmt::skip]
    pub const ALL: [StepKind; StepKind::COUNT] = {
        use StepKind::*;
        [
            VerifyRestorePoint, ResourceGroup, KeyVault, KeyVaultAccess, StagingAccount,
            HelperAppliance, SnapshotExistingDisks, DeleteExistingVm, CreateDisk, WriteDisk,
            FinalizeDisk, BootFix, ConvertToManaged, NetworkSecurityGroup, PublicIp,
            NetworkInterface, VirtualMachine, Template, SwapDisks, PowerOn, DeleteExistingDisks,
        ]
    };

    /// The kinds from `first` through `last` in the enum's order: how a
    /// profile's stage names a run of consecutive kinds.
    pub fn through(first: StepKind, last: StepKind) -> &'static [StepKind] {
        let (a, b) = (first as usize, last as usize);
        if a <= b { &Self::ALL[a..=b] } else { &[] }
    }

    /// The resource type shown in renderings.
    pub fn resource_type(self) -> &'static str {
        match self {
            StepKind::VerifyRestorePoint => "restore_point",
            StepKind::ResourceGroup => "resource_group",
            StepKind::KeyVault => "key_vault",
            StepKind::KeyVaultAccess => "key_vault_access",
            StepKind::StagingAccount => "storage_account",
            StepKind::HelperAppliance => "helper_appliance",
            StepKind::SnapshotExistingDisks => "snapshot",
            StepKind::DeleteExistingVm => "virtual_machine",
            StepKind::CreateDisk => "disk",
            StepKind::WriteDisk => "disk_data",
            StepKind::FinalizeDisk => "disk",
            StepKind::BootFix => "boot_fix",
            StepKind::ConvertToManaged => "managed_disks",
            StepKind::NetworkSecurityGroup => "network_security_group",
            StepKind::PublicIp => "public_ip",
            StepKind::NetworkInterface => "network_interface",
            StepKind::VirtualMachine => "virtual_machine",
            StepKind::Template => "template",
            StepKind::SwapDisks => "virtual_machine_disks",
            StepKind::PowerOn => "virtual_machine_power",
            StepKind::DeleteExistingDisks => "disk",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StepKind;

    #[test]
    fn all_lists_every_kind_in_the_enum_order() {
        for (i, k) in StepKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?} out of place in StepKind::ALL");
        }
        assert_eq!(
            StepKind::through(StepKind::CreateDisk, StepKind::FinalizeDisk),
            [
                StepKind::CreateDisk,
                StepKind::WriteDisk,
                StepKind::FinalizeDisk
            ]
        );
        assert!(StepKind::through(StepKind::PowerOn, StepKind::KeyVault).is_empty());
    }
}
