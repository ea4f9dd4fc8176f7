//! Veeam Backup & Replication 13, restore to Microsoft Azure (`VE-`).
//!
//! Sources: seed 003 (restoring Veeam Agent backups to Azure) and the Veeam
//! help-center pages named per rule in RULES.md.

use super::*;
use crate::model::*;
use crate::plan::types::{OutcomeKind::*, StepKind::*};
use crate::units::{human_bytes, lun_text};

const SEED: &str = "seed 003 (Veeam: restoring to Microsoft Azure)";
const LIMITS: &str = "Veeam help center: restore_azure_limitations";
const HIW: &str = "Veeam help center: restore_azure_hiw";

/// Veeam's disk limits, in GB as Azure counts them (GiB).
const UNMANAGED_MAX: u64 = 4093 * GB;
const MANAGED_OS_MAX: u64 = 4093 * GB;
const MANAGED_DATA_MAX: u64 = 32765 * GB;
const AZURE_STACK_MAX: u64 = 1021 * GB;
/// Conversion to VHD can grow a disk by up to this much.
const CONVERSION_GROWTH: u64 = 2 * GB;

/// The restore stages, in order.
pub(super) fn restore_stages() -> Vec<Stage> {
    // VE-19: proxy on, disks converted and uploaded, mounted, boot fixed,
    // unmounted, VM registered, powered on.
    stages(&[
        (
            "prepare the restore",
            StepKind::through(VerifyRestorePoint, SnapshotExistingDisks),
        ),
        (
            "convert disks to VHD and upload them to Blob storage",
            StepKind::through(CreateDisk, FinalizeDisk),
        ),
        (
            "mount the disks and fix the boot configuration",
            &[BootFix, ConvertToManaged],
        ),
        // The point of no return: only after every disk is verified.
        ("replace the existing VM", &[DeleteExistingVm]),
        (
            "register the VM",
            StepKind::through(NetworkSecurityGroup, SwapDisks),
        ),
        ("power on the VM", &[PowerOn, DeleteExistingDisks]),
    ])
}

/// The rules, in evaluation order.
pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule::builtin(
            "VE-23",
            &[Block],
            "restore to Azure always registers a new VM (inferred)",
            HIW,
            ve23,
        ),
        Rule::builtin(
            "VE-01",
            &[Block],
            "only Veeam Agent backups in a backup repository can be restored, not Cloud Connect",
            SEED,
            ve01,
        ),
        Rule::builtin(
            "VE-02",
            &[Block],
            "Veeam Agent backups must be entire-computer or volume level",
            SEED,
            ve02,
        ),
        Rule::builtin(
            "VE-05",
            &[Block],
            "Windows older than Server 2008 / Vista is not supported",
            LIMITS,
            ve05,
        ),
        Rule::builtin(
            "VE-06",
            &[Warn],
            "Linux without dracut / mkinitrd / initramfs may not boot",
            LIMITS,
            ve06,
        ),
        Rule::builtin(
            "VE-07",
            &[Block],
            "disks with 4096-byte logical sectors are not supported",
            LIMITS,
            ve07,
        ),
        Rule::builtin(
            "VE-08",
            &[Block],
            "BitLocker disks with a Windows backup server are supported only from Veeam Agent for Windows backups",
            LIMITS,
            ve08,
        ),
        Rule::builtin(
            "VE-09",
            &[Block],
            "Windows with boot and OS partitions on different disks is not supported",
            LIMITS,
            ve09,
        ),
        Rule::builtin(
            "VE-16",
            &[Transform],
            "a failover-cluster node becomes its own VM; shared disks become regular disks",
            LIMITS,
            ve16,
        ),
        Rule::builtin(
            "VE-03",
            &[Transform, Warn],
            "EFI systems from agent backups are restored as BIOS Generation 1 VMs",
            SEED,
            ve03,
        ),
        Rule::builtin(
            "VE-11",
            &[Block, Transform],
            "a GPT system disk with more than 4 partitions is not supported; otherwise it becomes MBR",
            LIMITS,
            ve11,
        ),
        Rule::builtin(
            "VE-04",
            &[Transform, Warn, Post],
            "each LVM volume group is restored as a separate disk (KB4680)",
            SEED,
            ve04,
        ),
        Rule::builtin(
            "VE-12",
            &[Block],
            "staging accounts with ZRS, GZRS or GRS replication are not supported",
            LIMITS,
            ve12,
        ),
        Rule::builtin(
            "VE-13",
            &[Warn],
            "unmanaged disks in a Premium storage account are slow (about 30 MB/s)",
            LIMITS,
            ve13,
        ),
        Rule::builtin(
            "VE-15",
            &[Block, Warn],
            "disk size limits (unmanaged 4093 GB, managed OS 4093 GB, data 32765 GB, Azure Stack 1021 GB)",
            LIMITS,
            ve15,
        ),
        Rule::builtin(
            "VE-22",
            &[Block, Transform],
            "the VM size must support the number of disks; default: the smallest size that does",
            "Veeam help center: restore_azure_size",
            ve22,
        ),
        Rule::builtin(
            "VE-14",
            &[Block],
            "NVMe-only VM sizes and Ultra disks are not supported",
            LIMITS,
            ve14,
        ),
        Rule::builtin(
            "VE-17",
            &[Block, Transform],
            "Generation 2 needs managed disks and a Gen2-capable size; UEFI VM backups restore as Gen2",
            "Veeam help center: restore_azure",
            ve17,
        ),
        Rule::builtin(
            "VE-10",
            &[Post],
            "Linux with cloud-init and password sign-in: the password is blocked; reset it with VMAccess",
            LIMITS,
            ve10,
        ),
        Rule::builtin(
            "VE-18",
            &[Step, Warn],
            "Linux restores use a helper appliance in the target location, left powered off",
            "Veeam help center: restore_azure_helper, restore_azure_hiw",
            ve18,
        ),
        Rule::builtin(
            "VE-19",
            &[Step],
            "restore pipeline: upload VHDs, mount, fix boot, unmount, register, power on",
            HIW,
            ve19,
        ),
        Rule::builtin(
            "VE-20",
            &[Step],
            "without an NSG, a new one allows RDP 3389 or SSH 22 at priority 300",
            "Veeam help center: restore_azure_network",
            ve20,
        ),
        Rule::builtin(
            "VE-21",
            &[Transform, Post],
            "only one virtual network per VM is restored",
            "Veeam help center: restore_azure_network",
            ve21,
        ),
    ]
}

fn ve01(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.is_agent_backup() && c.rp.backup.repository == RepositoryKind::CloudConnect {
        d.block(r, "$.restore_point.backup.repository", "Veeam Agent backups stored in a Veeam Cloud Connect repository cannot be restored to Azure: only backups in a backup repository");
    }
}

fn ve02(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.is_agent_backup() && c.rp.backup.agent_level == Some(AgentLevel::File) {
        d.block(r, "$.restore_point.backup.agent_level", "Veeam Agent backups must be created at the entire computer or volume level, not file level");
    }
}

fn ve03(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !(c.is_agent_backup() && c.vm.firmware == Firmware::Uefi) {
        return;
    }
    if c.dest.gen2_opt_in {
        d.set_generation(
            r,
            Generation::Gen2,
            Firmware::Uefi,
            "the EFI system is restored as a Generation 2 VM (opt-in)",
        );
        d.warn(
            r,
            "$.request.destination.gen2_opt_in",
            "restore of an EFI system as a Generation 2 VM is experimental",
        );
    } else {
        d.efi_to_bios(
            r,
            "Veeam Agent restores an EFI-based system as a BIOS-based Generation 1 VM",
        );
        d.warn(r, "$.restore_point.vm.firmware", "EFI system restored as BIOS Generation 1; Generation 2 is experimental (opt in with gen2_opt_in)");
    }
}

fn ve04(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !(c.is_linux() && c.is_agent_backup()) {
        return;
    }
    let vgs: u64 =
        c.vm.disks
            .iter()
            .flat_map(|x| &x.lvm_volume_groups)
            .map(|v| v.size_bytes)
            .sum();
    if vgs == 0 {
        return;
    }
    d.split_lvm(r, c);
    d.warn(
        r,
        "$.restore_point.vm.disks",
        format!(
            "LVM volume groups are restored as separate disks: {} of extra storage",
            human_bytes(vgs)
        ),
    );
    d.post(
        r,
        "remove the disks the restored machine does not need (Veeam KB4680)",
    );
}

fn ve05(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.is_windows()
        && let Some(v) = c.windows_nt_version()
        && v < (6, 0)
    {
        d.block(
            r,
            "$.restore_point.vm.os.version",
            format!(
                "'{}' is older than Windows Server 2008 / Vista and cannot be restored to Azure",
                c.vm.os.version
            ),
        );
    }
}

fn ve06(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.is_linux() && !c.vm.os.initramfs_tools {
        d.warn(
            r,
            "$.restore_point.vm.os.initramfs_tools",
            "no dracut, mkinitrd or initramfs tool: the restored VM may not boot",
        );
    }
}

fn ve07(r: &Rule, c: &Ctx, d: &mut Decisions) {
    for (i, x) in c.vm.disks.iter().enumerate() {
        if x.logical_sector_size == 4096 {
            d.block(
                r,
                &format!("$.restore_point.vm.disks[{i}].logical_sector_size"),
                format!(
                    "disk '{}'{} has 4096-byte logical sectors (4Kn), which are not supported",
                    x.name,
                    lun_text(x)
                ),
            );
        }
    }
}

fn ve08(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let windows_agent = c.is_agent_backup() && c.is_windows();
    if c.rp.backup.server_os != Some(OsFamily::Windows) || windows_agent {
        return;
    }
    for (i, x) in c.vm.disks.iter().enumerate() {
        if x.encryption.bitlocker {
            d.block(r, &format!("$.restore_point.vm.disks[{i}].encryption.bitlocker"), format!("disk '{}' is BitLocker-encrypted and the backup server runs Windows: only Veeam Agent for Windows backups of such disks can be restored", x.name));
        }
    }
}

fn ve09(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !c.is_windows() {
        return;
    }
    let boot: Vec<usize> =
        c.vm.disks
            .iter()
            .enumerate()
            .filter(|(_, x)| x.boot_partition)
            .map(|(i, _)| i)
            .collect();
    let os: Vec<usize> =
        c.vm.disks
            .iter()
            .enumerate()
            .filter(|(_, x)| x.os_partition)
            .map(|(i, _)| i)
            .collect();
    if let (Some(b), Some(o)) = (boot.first(), os.first())
        && b != o
    {
        d.block(r, &format!("$.restore_point.vm.disks[{b}].boot_partition"), format!("the boot partition is on disk '{}' and the OS partition on disk '{}': not supported", c.vm.disks[*b].name, c.vm.disks[*o].name));
    }
}

fn ve10(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.is_linux() && c.vm.os.cloud_init && c.vm.os.authentication.uses_password() {
        d.post(r, format!("the password of VM '{}' is blocked after restore (cloud-init): reset it with the VMAccess extension", d.target().vm_name));
    }
}

fn ve11(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let (i, os) = c.os_disk();
    if os.partition_table != PartitionTable::Gpt {
        return;
    }
    if os.partition_count > 4 {
        d.block(
            r,
            &format!("$.restore_point.vm.disks[{i}].partition_count"),
            format!(
                "system disk '{}' is GPT with {} partitions: more than 4 is not supported",
                os.name, os.partition_count
            ),
        );
    } else if d.target().generation == Generation::Gen1 {
        d.gpt_to_mbr(
            r,
            &format!("$.restore_point.vm.disks[{i}].partition_table"),
            format!("GPT system disk '{}' is converted to MBR", os.name),
        );
    }
}

fn ve12(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if let Some(sa) = &c.dest.staging_storage_account
        && matches!(
            sa.sku,
            StorageSku::StandardZrs
                | StorageSku::StandardGzrs
                | StorageSku::StandardRagzrs
                | StorageSku::StandardGrs
                | StorageSku::PremiumZrs
        )
    {
        d.block(r, "$.request.destination.staging_storage_account.sku", format!("storage account '{}' uses {} replication: only LRS and RA-GRS accounts are supported", sa.name, serde_json::to_value(sa.sku).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()));
    }
}

fn ve13(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.facts.target_managed {
        return;
    }
    let premium = c
        .dest
        .staging_storage_account
        .as_ref()
        .is_some_and(|s| s.sku.is_premium())
        || (c.dest.staging_storage_account.is_none()
            && c.vm.disks.iter().any(|x| {
                matches!(
                    x.storage,
                    DiskStorage::Unmanaged {
                        premium_account: true,
                        ..
                    }
                )
            }));
    if premium {
        d.expect_throughput(30_000_000);
        d.warn(
            r,
            "$.request.destination.staging_storage_account",
            "unmanaged disks in a Premium storage account restore slowly (about 30 MB/s)",
        );
    }
}

fn ve14(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if let Some(size) = c.cat.sizes.get(d.target().vm_size.as_str())
        && size.nvme_only
    {
        d.block(
            r,
            "$.request.destination.vm_size",
            format!(
                "VM size '{}' offers only NVMe disk controllers: the restored VM would not boot",
                size.name
            ),
        );
    }
    if c.dest.disk_sku == Some(DiskSku::Ultra) {
        d.block(
            r,
            "$.request.destination.disk_sku",
            "restore to Ultra disks is not supported",
        );
    }
}

fn ve15(r: &Rule, c: &Ctx, d: &mut Decisions) {
    for (i, x) in c.vm.disks.iter().enumerate() {
        let (limit, what) = if c.dest.azure_stack {
            (AZURE_STACK_MAX, "an Azure Stack disk")
        } else if !c.facts.target_managed {
            (UNMANAGED_MAX, "an unmanaged disk")
        } else if x.role == DiskRole::Os {
            (MANAGED_OS_MAX, "a managed OS disk")
        } else {
            (MANAGED_DATA_MAX, "a managed data disk")
        };
        let path = format!("$.restore_point.vm.disks[{i}].size_bytes");
        if x.size_bytes > limit {
            d.block(
                r,
                &path,
                format!(
                    "disk '{}'{}: {} exceeds the {} GB limit for {what}",
                    x.name,
                    lun_text(x),
                    human_bytes(x.size_bytes),
                    limit / GB
                ),
            );
        } else if x.size_bytes + CONVERSION_GROWTH > limit {
            d.warn(r, &path, format!("disk '{}'{}: {} is within 2 GB of the {} GB limit for {what}; conversion can grow a disk by up to 2 GB", x.name, lun_text(x), human_bytes(x.size_bytes), limit / GB));
        }
    }
}

fn ve16(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.is_agent_backup() && c.is_windows() && c.vm.failover_cluster_node {
        d.cluster_to_vm(r, c, "the failover-cluster node is restored as its own VM; shared disks become regular disks");
    }
}

fn ve17(r: &Rule, c: &Ctx, d: &mut Decisions) {
    // v13 restores UEFI VM backups as Gen2 by default; agent backups follow VE-03.
    if !c.is_agent_backup()
        && c.vm.firmware == Firmware::Uefi
        && d.target().generation != Generation::Gen2
    {
        d.set_generation(
            r,
            Generation::Gen2,
            Firmware::Uefi,
            "Veeam 13 restores a UEFI VM as a Generation 2 VM",
        );
    }
    if d.target().generation != Generation::Gen2 {
        return;
    }
    if !c.facts.target_managed {
        d.block(
            r,
            "$.request.destination.disk_storage",
            "a Generation 2 VM needs managed disks",
        );
    }
    if let Some(size) = c.cat.sizes.get(d.target().vm_size.as_str())
        && !size.gen2
    {
        d.block(
            r,
            "$.request.destination.vm_size",
            format!("VM size '{}' does not support Generation 2", size.name),
        );
    }
}

fn ve18(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.is_linux() {
        d.step(r, HelperAppliance);
        d.warn(r, "$.request.destination.region", format!("a helper appliance in {} fixes the boot configuration; it stays there, powered off, and its disks are billed", d.target().region));
    }
}

fn ve19(r: &Rule, _c: &Ctx, d: &mut Decisions) {
    for k in [CreateDisk, WriteDisk, BootFix, VirtualMachine] {
        d.step(r, k);
    }
    if d.target().power_on {
        d.step(r, PowerOn);
    }
}

fn ve20(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.dest.network_security_group.is_none() {
        let port = if c.is_windows() { 3389 } else { 22 };
        let name = crate::model::names::NameKind::NetworkSecurityGroup
            .fit(&format!("{}-nsg", d.target().vm_name));
        d.new_nsg(
            r,
            &c.vm.network_security_group,
            &name,
            vec![port],
            format!("a new network security group '{name}' opening port {port} is created"),
        );
    }
}

fn ve21(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let first = c.vm.nics.first().map(|n| n.virtual_network.as_str());
    if c.vm
        .nics
        .iter()
        .any(|n| Some(n.virtual_network.as_str()) != first)
    {
        d.keep_first_vnet(r, "only one virtual network per VM is restored");
        d.post(r, "connect the restored VM to its other virtual networks");
    }
}

fn ve22(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let data = d.data_disk_count();
    if c.dest.vm_size.is_none() {
        let gen2 = d.target().generation == Generation::Gen2;
        let current_fits = c
            .cat
            .sizes
            .get(d.target().vm_size.as_str())
            .is_some_and(|s| s.max_data_disks >= data);
        if !current_fits {
            let best = c.cat.sizes_ordered.iter().find(|s| {
                s.max_data_disks >= data && !s.nvme_only && if gen2 { s.gen2 } else { s.gen1 }
            });
            match best {
                Some(s) => {
                    let name = s.name.clone();
                    d.set_vm_size(
                        r,
                        &name,
                        format!("the smallest size that supports {data} data disks"),
                    );
                    return;
                }
                None => {
                    d.block(
                        r,
                        "$.request.destination.vm_size",
                        format!("no VM size in the catalog supports {data} data disks"),
                    );
                    return;
                }
            }
        }
    }
    d.block_if_size_too_small(r, c);
}

fn ve23(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.facts.in_place || c.req.restore_type == RestoreType::ReplaceDisks {
        d.block(
            r,
            "$.request.placement",
            "restore to Azure always registers a new VM: in-place restore is not available",
        );
    }
}
