//! Commvault Virtual Server Agent, Azure Resource Manager restores (`CV-`).
//!
//! Sources: seed 000 (Commvault's "Restores of Azure VMs" considerations),
//! the Commvault REST model, and the pages named per rule in RULES.md.

use super::*;
use crate::model::*;
use crate::plan::types::{OutcomeKind::*, StepKind::*};
use crate::units::lun_text;

const SEED: &str = "seed 000 (Commvault: Azure Resource Manager restores)";

/// Commvault's limit for managed disks: 8 TB (binary, as Azure counts).
pub(crate) const MAX_MANAGED_DISK: u64 = 8 * TIB;

/// The restore stages of seed 000, in order.
pub(super) fn restore_stages() -> Vec<Stage> {
    // What seed 000 does once the data is written, and the steps it does
    // not name, up to the NSG it configures last.
    let create_vm: Vec<StepKind> = [HelperAppliance, SnapshotExistingDisks]
        .iter()
        .chain(StepKind::through(BootFix, ConvertToManaged))
        .chain(StepKind::through(PublicIp, DeleteExistingDisks))
        .copied()
        .collect();
    stages(&[
        (
            "engage the Virtual Server file system driver",
            &[VerifyRestorePoint],
        ),
        (
            "mount VM disks",
            &[
                ResourceGroup,
                KeyVault,
                KeyVaultAccess,
                StagingAccount,
                CreateDisk,
            ],
        ),
        ("write data from the library", &[WriteDisk, FinalizeDisk]),
        // Seed 000 deletes the existing VM first; we delete it only once
        // the new disks are written and verified (the point of no
        // return), so a failed transfer leaves the VM as it was.
        ("delete the existing VM", &[DeleteExistingVm]),
        ("create the VM", &create_vm),
        (
            "configure the network security group",
            &[NetworkSecurityGroup],
        ),
    ])
}

/// The rules, in evaluation order.
pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule::builtin(
            "CV-12",
            &[Step, Block],
            "in-place restores delete the existing VM, only after the user confirms overwrite",
            "seed 000; Commvault REST model (OverwriteVM)",
            cv12,
        ),
        Rule::builtin(
            "CV-14",
            &[Step],
            "out-of-place restores create a new VM from the destination given",
            SEED,
            cv14,
        ),
        Rule::builtin(
            "CV-01",
            &[Block],
            "Classic VMs cannot be recovered to Premium storage",
            SEED,
            cv01,
        ),
        Rule::builtin(
            "CV-02",
            &[Block],
            "managed disks up to 8 TB can be restored",
            SEED,
            cv02,
        ),
        Rule::builtin(
            "CV-16",
            &[Warn, Transform],
            "Ultra disks are not backed up: they are missing from the restore (inferred)",
            "Commvault 2022e backup page",
            cv16,
        ),
        Rule::builtin(
            "CV-03",
            &[Block],
            "Key-Vault-encrypted VMs cannot be restored to another subscription",
            SEED,
            cv03,
        ),
        Rule::builtin(
            "CV-04",
            &[Transform, Step, Warn],
            "Key-Vault-encrypted VM to another region: a new key vault is created (KB AZR0002)",
            SEED,
            cv04,
        ),
        Rule::builtin(
            "CV-05",
            &[Post],
            "a restored or created key vault grants access to the application's service principal only",
            SEED,
            cv05,
        ),
        Rule::builtin(
            "CV-06",
            &[Post, Transform],
            "CMK / disk encryption sets are not applied to VMs restored from streaming backups",
            SEED,
            cv06,
        ),
        Rule::builtin(
            "CV-07",
            &[Block],
            "guest file recovery of VMs with encrypted blobs is not supported",
            SEED,
            cv07,
        ),
        Rule::builtin(
            "CV-18",
            &[Transform, Block],
            "zone option: auto (the source's), none, or a zone number the region has",
            "Commvault REST model",
            cv18,
        ),
        Rule::builtin(
            "CV-08",
            &[Info],
            "the zone is restored where the destination region has zones",
            SEED,
            cv08,
        ),
        Rule::builtin(
            "CV-09",
            &[Transform],
            "the zone is dropped where the destination region has none",
            SEED,
            cv09,
        ),
        Rule::builtin(
            "CV-10",
            &[Info],
            "encryption at host is supported; it applies to data at rest only",
            SEED,
            cv10,
        ),
        Rule::builtin(
            "CV-11",
            &[Info],
            "restores from another hypervisor of VMs with customer-managed keys are supported",
            SEED,
            cv11,
        ),
        Rule::builtin(
            "CV-13",
            &[Step],
            "managed disks are written through a staging account as an unmanaged VM, then converted",
            SEED,
            cv13,
        ),
        Rule::builtin(
            "CV-15",
            &[Step, Post],
            "the source's network security group is configured on the restored VM",
            SEED,
            cv15,
        ),
        Rule::builtin(
            "CV-17",
            &[Transform, Warn],
            "availability sets are read at backup only: the restored VM has none (inferred)",
            "Commvault Azure resource provider usage page",
            cv17,
        ),
    ]
}

fn cv01(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.vm.deployment_model != DeploymentModel::Classic {
        return;
    }
    if let Some(sa) = &c.dest.staging_storage_account
        && sa.sku.is_premium()
    {
        d.block(r, "$.request.destination.staging_storage_account.sku", format!("VM '{}' was deployed with Azure Classic: data recovery to the Premium storage account '{}' is not supported", c.vm.name, sa.name));
        return;
    }
    if d.target().disks.iter().any(|t| t.sku.is_premium()) {
        d.block(r, "$.request.destination.disk_sku", format!("VM '{}' was deployed with Azure Classic: data recovery to Premium storage is not supported; choose a Standard disk SKU", c.vm.name));
    }
}

fn cv02(r: &Rule, c: &Ctx, d: &mut Decisions) {
    for (i, disk) in c.vm.disks.iter().enumerate() {
        if disk.is_managed() && disk.size_bytes > MAX_MANAGED_DISK {
            d.block(
                r,
                &format!("$.restore_point.vm.disks[{i}].size_bytes"),
                format!(
                    "disk '{}'{}: {} exceeds the 8 TiB limit of profile commvault, rule CV-02",
                    disk.name,
                    lun_text(disk),
                    human_bytes(disk.size_bytes)
                ),
            );
        }
    }
}

fn cv03(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.facts.ade && c.facts.cross_subscription {
        d.block(r, "$.request.destination.subscription_id", format!("VM '{}' is encrypted with Azure Key Vault: Azure cannot restore a key vault across subscriptions ({} to {})", c.vm.name, c.vm.subscription_id, c.dest.subscription_id));
    }
}

fn cv04(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !(c.facts.ade && c.facts.cross_region && !c.facts.cross_subscription) {
        return;
    }
    let source = ade_vault(c).unwrap_or("key-vault");
    let name = new_vault_name(source, &c.dest.region);
    d.new_key_vault(
        r,
        source,
        &name,
        format!(
            "a new key vault '{name}' is created in {} before the disks are restored",
            c.dest.region
        ),
    );
    d.step(r, KeyVaultAccess);
    d.warn(r, "$.request.destination.region", format!("out-of-place restore of encrypted VM '{}' to another region ({} to {}) might fail (Commvault KB AZR0002)", c.vm.name, c.vm.region, c.dest.region));
}

fn cv05(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !c.facts.ade {
        return;
    }
    if !d.creates_key_vault() {
        // Same region: the vault's keys and secrets are restored into the
        // source vault, unless it already exists at the destination.
        let Some(vault) = ade_vault(c) else { return };
        let exists = c.cat_existing_vault(vault);
        d.restore_into_source_vault(vault);
        if exists {
            return;
        }
        d.step(r, KeyVault);
    }
    d.step(r, KeyVaultAccess);
    let vault = d.target().key_vault.clone().unwrap_or_default();
    d.post(r, format!("keys and secrets in key vault '{vault}' are accessible to the application's service principal only: an administrator must grant users access"));
}

fn cv06(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.facts.cmk
        && c.req.restore_type == RestoreType::FullVm
        && c.rp.backup.method == BackupMethod::Streaming
    {
        d.drop_cmk(r, "customer-managed key settings are not applied to a VM restored from a streaming backup");
        d.post(
            r,
            format!(
                "apply the disk encryption set to the disks of VM '{}' manually",
                d.target().vm_name
            ),
        );
    }
}

fn cv07(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.req.restore_type == RestoreType::GuestFiles
        && c.vm.disks.iter().any(|x| x.encryption.encrypted_blob)
    {
        d.block(r, "$.request.restore_type", format!("VM '{}' has encrypted blobs: guest file recovery is not supported; restore the full VM", c.vm.name));
    }
}

fn cv08(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if let (Some(z), ZoneChoice::Auto) = (c.vm.zone, c.dest.zone)
        && c.dst_region.zones.contains(&z)
    {
        d.keep_source_zone(z);
        d.info(
            r,
            "$.restore_point.vm.zone",
            format!(
                "zone {z} is restored: {} has availability zones",
                d.target().region
            ),
        );
    }
}

fn cv09(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if let (Some(z), ZoneChoice::Auto) = (c.vm.zone, c.dest.zone)
        && c.dst_region.zones.is_empty()
    {
        d.drop_zone(
            r,
            format!(
                "zone {z} is dropped: {} has no availability zones; the restore completes",
                d.target().region
            ),
        );
    }
}

fn cv10(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if let Some(i) = c.vm.disks.iter().position(|x| x.encryption.at_host) {
        d.info(r, &format!("$.restore_point.vm.disks[{i}].encryption.at_host"), "encryption at host is supported: it applies to data at rest only and has no effect on guest file restores");
    }
}

fn cv11(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.facts.cmk
        && matches!(
            c.rp.backup.kind,
            BackupKind::Vmware | BackupKind::HyperV | BackupKind::Physical
        )
    {
        d.info(
            r,
            "$.restore_point.backup.kind",
            "restore from another hypervisor of a VM with customer-managed keys is supported",
        );
    }
}

fn cv12(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !c.facts.in_place {
        return;
    }
    if !c.req.overwrite_confirmed {
        d.block(r, "$.request.overwrite_confirmed", format!("in-place restore deletes the existing VM '{}': confirm overwrite (OverwriteVM) to proceed", c.vm.name));
        return;
    }
    d.step(r, VerifyRestorePoint);
    d.step(r, DeleteExistingVm);
    d.step(r, VirtualMachine);
    d.step(r, DeleteExistingDisks);
}

fn cv13(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.facts.target_managed
        && matches!(
            c.req.restore_type,
            RestoreType::FullVm | RestoreType::RestoreDisks
        )
    {
        d.step(r, StagingAccount);
        d.step(r, ConvertToManaged);
    }
}

fn cv14(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !c.facts.in_place && c.req.restore_type == RestoreType::FullVm {
        d.step(r, VirtualMachine);
    }
}

fn cv15(r: &Rule, c: &Ctx, d: &mut Decisions) {
    match (&c.vm.network_security_group, &c.dest.network_security_group) {
        (_, Some(_)) => {}
        (Some(nsg), None) => {
            d.copy_source_nsg(r, nsg);
        }
        (None, None) => d.post(
            r,
            format!(
                "VM '{}' had no network security group: add one to the restored VM if it needs one",
                c.vm.name
            ),
        ),
    }
}

fn cv16(r: &Rule, c: &Ctx, d: &mut Decisions) {
    for (i, disk) in c.vm.disks.iter().enumerate() {
        if disk.sku == DiskSku::Ultra {
            d.warn(r, &format!("$.restore_point.vm.disks[{i}].sku"), format!("disk '{}'{} is an Ultra disk: Ultra disks are not backed up, so it is missing from the restore", disk.name, lun_text(disk)));
            d.omit_disk(
                r,
                i,
                disk,
                format!("Ultra disk '{}' is not part of the backup", disk.name),
            );
        }
    }
}

fn cv17(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if let Some(set) = &c.vm.availability_set {
        d.drop_availability_set(
            r,
            &c.vm.availability_set,
            format!("availability set '{set}' is not restored"),
        );
        d.warn(r, "$.restore_point.vm.availability_set", format!("availability-set details are read at backup only: the restored VM is not in availability set '{set}'"));
    }
}

fn cv18(r: &Rule, c: &Ctx, d: &mut Decisions) {
    match c.dest.zone {
        ZoneChoice::Auto => {}
        ZoneChoice::None => {
            if c.vm.zone.is_some() {
                // The target is seeded without a zone already: the
                // source's is the one recorded as dropped.
                d.drop_source_zone(
                    r,
                    c.vm.zone,
                    "zone option None: the VM is restored without a zone",
                );
            } else {
                d.settle_zone();
            }
        }
        ZoneChoice::Zone(z) => {
            if c.dst_region.zones.contains(&z) {
                d.set_zone(
                    r,
                    c.vm.zone,
                    z,
                    format!("zone option {z}: the VM is restored in zone {z}"),
                );
            } else {
                d.settle_zone();
                d.block(
                    r,
                    "$.request.destination.zone",
                    format!("zone {z} does not exist in {}", d.target().region),
                );
            }
        }
    }
}

pub(crate) fn ade_vault<'a>(c: &Ctx<'a>) -> Option<&'a str> {
    c.vm.disks
        .iter()
        .find_map(|d| d.encryption.ade_key_vault.as_deref())
}

/// A deterministic, valid name (3-24 characters) for a key vault created in `region`.
pub(crate) fn new_vault_name(source: &str, region: &str) -> String {
    let digest = crate::units::short_digest(format!("{source}/{region}").as_bytes());
    let head: String = source
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(14)
        .collect();
    let head = if head.starts_with(|c: char| c.is_ascii_alphabetic()) {
        head
    } else {
        format!("kv{head}")
    };
    format!("{}-{}", &head[..head.len().min(14)], &digest[..8])
}
