//! What rules read: the inputs and facts derived from them once.

use schemars::JsonSchema;
use serde::Serialize;

use crate::model::*;

/// Facts derived from the inputs, computed once per plan and available to
/// built-in rules and, as the variable `facts`, to CEL rules.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Facts {
    /// Destination region differs from the source's.
    pub cross_region: bool,
    /// Destination subscription differs from the source's.
    pub cross_subscription: bool,
    /// Destination tenant differs from the source's.
    pub cross_tenant: bool,
    /// In-place restore.
    pub in_place: bool,
    /// The restored disks are managed disks.
    pub target_managed: bool,
    /// Some disk uses Azure Disk Encryption with a key vault.
    pub ade: bool,
    /// Some disk uses customer-managed keys (disk encryption set).
    pub cmk: bool,
    /// Some disk is encrypted in any way beyond platform keys.
    pub encrypted: bool,
    /// Number of disks of the source VM.
    pub disk_count: u32,
    /// Number of data disks of the source VM.
    pub data_disk_count: u32,
    /// Total provisioned bytes of the source disks.
    pub total_size_bytes: u64,
    /// Total allocated bytes of the source disks.
    pub total_allocated_bytes: u64,
    /// Destination region has availability zones.
    pub destination_has_zones: bool,
    /// Geography of the destination region.
    pub destination_geography: String,
    /// Geography of the source region, when the catalog knows it.
    pub source_geography: Option<String>,
    /// Paired region of the source region, when the catalog knows it.
    pub source_paired_region: Option<String>,
    /// A VM with the target name already exists in the target resource group.
    pub target_vm_exists: bool,
    /// The backup was made by Azure Backup / a platform snapshot of an Azure VM.
    pub azure_source: bool,
}

/// The document CEL rules evaluate against; its JSON Schema also tells the
/// custom-rule loader which fields exist.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RuleInput<'a> {
    /// The restore point.
    pub restore_point: &'a RestorePoint,
    /// The backed-up VM (same as `restore_point.vm`).
    pub vm: &'a VirtualMachine,
    /// The request.
    pub request: &'a RestoreRequest,
    /// The request's destination (same as `request.destination`).
    pub destination: &'a Destination,
    /// Derived facts.
    pub facts: &'a Facts,
}

/// Inputs of one planning run, as rules see them.
pub(crate) struct Ctx<'a> {
    pub rp: &'a RestorePoint,
    pub req: &'a RestoreRequest,
    pub vm: &'a VirtualMachine,
    pub dest: &'a Destination,
    pub cat: &'a CatalogIndex<'a>,
    pub src_region: Option<&'a Region>,
    pub dst_region: &'a Region,
    pub facts: Facts,
}

impl<'a> Ctx<'a> {
    pub fn new(
        rp: &'a RestorePoint,
        req: &'a RestoreRequest,
        cat: &'a CatalogIndex<'a>,
        dst_region: &'a Region,
        target_vm_exists: bool,
    ) -> Self {
        let vm = &rp.vm;
        let dest = &req.destination;
        let src_region = cat.regions.get(vm.region.as_str()).copied();
        let in_place = req.placement == Placement::InPlace;
        let source_managed = vm.disks.iter().all(Disk::is_managed);
        let target_managed = match dest.disk_storage {
            Some(DiskStorageChoice::Managed) => true,
            Some(DiskStorageChoice::Unmanaged) => false,
            None => source_managed,
        };
        let facts = Facts {
            cross_region: !in_place && dest.region != vm.region,
            cross_subscription: !in_place && dest.subscription_id != vm.subscription_id,
            cross_tenant: !in_place
                && matches!((&dest.tenant_id, &vm.tenant_id), (Some(a), Some(b)) if a != b),
            in_place,
            target_managed,
            ade: vm
                .disks
                .iter()
                .any(|d| d.encryption.ade_key_vault.is_some()),
            cmk: vm
                .disks
                .iter()
                .any(|d| d.encryption.disk_encryption_set.is_some()),
            encrypted: vm.disks.iter().any(|d| d.encryption.is_encrypted()),
            disk_count: vm.disks.len() as u32,
            data_disk_count: vm.disks.iter().filter(|d| d.role == DiskRole::Data).count() as u32,
            total_size_bytes: vm.disks.iter().map(|d| d.size_bytes).sum(),
            total_allocated_bytes: vm.disks.iter().map(Disk::allocated).sum(),
            destination_has_zones: !dst_region.zones.is_empty(),
            destination_geography: dst_region.geography.clone(),
            source_geography: src_region.map(|r| r.geography.clone()),
            source_paired_region: src_region.and_then(|r| r.paired_region.clone()),
            target_vm_exists,
            azure_source: rp.backup.kind == BackupKind::AzureVm,
        };
        Ctx {
            rp,
            req,
            vm,
            dest,
            cat,
            src_region,
            dst_region,
            facts,
        }
    }

    /// The OS disk and its index.
    pub fn os_disk(&self) -> (usize, &'a Disk) {
        self.vm
            .disks
            .iter()
            .enumerate()
            .find(|(_, d)| d.role == DiskRole::Os)
            .unwrap_or((0, &self.vm.disks[0]))
    }

    /// Whether a key vault of this name exists at the destination.
    pub fn cat_existing_vault(&self, name: &str) -> bool {
        self.cat.vaults.contains(name)
    }

    pub fn is_linux(&self) -> bool {
        self.vm.os.family == OsFamily::Linux
    }

    pub fn is_windows(&self) -> bool {
        self.vm.os.family == OsFamily::Windows
    }

    /// Windows NT version (major, minor) parsed from the OS version string:
    /// either a number such as `6.1` / `10.0`, or a product name.
    pub fn windows_nt_version(&self) -> Option<(u32, u32)> {
        nt_version(&self.vm.os.version)
    }

    pub fn is_agent_backup(&self) -> bool {
        self.rp.backup.kind == BackupKind::VeeamAgent
    }
}

pub(crate) fn nt_version(v: &str) -> Option<(u32, u32)> {
    let s = v.trim().to_ascii_lowercase();
    let mut parts = s.split('.');
    if let (Some(a), Some(b)) = (parts.next(), parts.next())
        && let (Ok(a), Ok(b)) = (
            a.parse(),
            b.trim_end_matches(|c: char| !c.is_ascii_digit()).parse(),
        )
    {
        return Some((a, b));
    }
    // Product names, newest first so that "2008 r2" matches before "2008".
    const NAMES: &[(&str, (u32, u32))] = &[
        ("2025", (10, 0)),
        ("2022", (10, 0)),
        ("2019", (10, 0)),
        ("2016", (10, 0)),
        ("windows 11", (10, 0)),
        ("windows 10", (10, 0)),
        ("2012 r2", (6, 3)),
        ("8.1", (6, 3)),
        ("2012", (6, 2)),
        ("windows 8", (6, 2)),
        ("2008 r2", (6, 1)),
        ("windows 7", (6, 1)),
        ("2008", (6, 0)),
        ("vista", (6, 0)),
        ("2003", (5, 2)),
        ("xp", (5, 1)),
        ("2000", (5, 0)),
        ("nt 4", (4, 0)),
    ];
    NAMES.iter().find(|(n, _)| s.contains(n)).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn nt_versions() {
        assert_eq!(super::nt_version("Windows Server 2003 R2"), Some((5, 2)));
        assert_eq!(super::nt_version("Windows Server 2008 R2"), Some((6, 1)));
        assert_eq!(super::nt_version("10.0"), Some((10, 0)));
        assert_eq!(
            super::nt_version("Windows Server 2019 Datacenter"),
            Some((10, 0))
        );
        assert_eq!(super::nt_version("unknown"), None);
    }
}
