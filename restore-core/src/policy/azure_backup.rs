//! Azure Backup: as in seed 004 (`AB16-`) and as documented from 2023 on (`AB-`).

use super::*;
use crate::model::*;
use crate::plan::types::{OutcomeKind::*, StepKind::*};
use crate::units::human_bytes;

const SEED: &str = "seed 004 (Azure VM restore limitations, 2016)";
const RESTORE: &str = "Microsoft Learn: backup-azure-arm-restore-vms";
const MATRIX: &str = "Microsoft Learn: backup-support-matrix-iaas";
const ENCRYPTED: &str = "Microsoft Learn: restore-azure-encrypted-virtual-machines";

/// The restore stages, in order (both versions).
pub(super) fn restore_stages() -> Vec<Stage> {
    stages(&[
        (
            "trigger the restore",
            StepKind::through(VerifyRestorePoint, HelperAppliance),
        ),
        ("snapshot the existing disks", &[SnapshotExistingDisks]),
        (
            "transfer data",
            StepKind::through(CreateDisk, ConvertToManaged),
        ),
        // The point of no return: only after every disk is verified.
        ("replace the existing VM", &[DeleteExistingVm]),
        (
            "create the VM or the template",
            StepKind::through(NetworkSecurityGroup, SwapDisks),
        ),
        ("finish", &[PowerOn, DeleteExistingDisks]),
    ])
}

/// The rules, in evaluation order.
pub(super) fn rules_2016() -> Vec<Rule> {
    vec![
        Rule::builtin(
            "AB16-01",
            &[Block],
            "replacing an existing VM is not supported",
            SEED,
            ab16_01,
        ),
        Rule::builtin(
            "AB16-06",
            &[Transform],
            "after a declared datacenter disaster the VM is restored in the paired region",
            SEED,
            ab16_06,
        ),
        Rule::builtin(
            "AB16-02",
            &[Block],
            "restore only to the same region and subscription",
            SEED,
            ab16_02,
        ),
        Rule::builtin(
            "AB16-03",
            &[Warn],
            "domain controllers: restore disks and create the VM from them",
            SEED,
            ab16_03,
        ),
        Rule::builtin(
            "AB16-04",
            &[Post],
            "Linux password sign-in: reset the password with VMAccess after restore",
            SEED,
            ab16_04,
        ),
        Rule::builtin(
            "AB16-05",
            &[Block],
            "a specific availability set needs restore disks plus configuration",
            SEED,
            ab16_05,
        ),
    ]
}

/// The rules, in evaluation order.
pub(super) fn rules_current() -> Vec<Rule> {
    vec![
        Rule::builtin(
            "AB-12",
            &[Block],
            "limits: 32 disks (16 unmanaged/Classic), 32 TiB a disk, 256 TiB a VM, 4095 GiB OS disk",
            "Microsoft Learn: backup-support-matrix-iaas; managed disks overview",
            ab12,
        ),
        Rule::builtin(
            "AB-01",
            &[Block],
            "other region without cross-region restore; VM name in use; VNet in another subscription or region",
            RESTORE,
            ab01,
        ),
        Rule::builtin(
            "AB-02",
            &[Block],
            "staging account: vault region, no ZRS or Blob account, Premium only for premium VMs",
            RESTORE,
            ab02,
        ),
        Rule::builtin(
            "AB-03",
            &[Block, Step, Post],
            "replace disks: existing managed unencrypted VM; snapshot then swap; original disks kept",
            "Microsoft Learn: backup-azure-arm-restore-vms; backup-support-matrix-iaas",
            ab03,
        ),
        Rule::builtin(
            "AB-04",
            &[Block, Post, Transform],
            "cross-region restore conditions",
            "Microsoft Learn: backup-azure-arm-restore-vms; restore-azure-encrypted-virtual-machines",
            ab04,
        ),
        Rule::builtin(
            "AB-05",
            &[Block],
            "cross-subscription restore conditions",
            "Microsoft Learn: backup-azure-arm-restore-vms (2023)",
            ab05,
        ),
        Rule::builtin(
            "AB-06",
            &[Block],
            "cross-zonal restore conditions",
            RESTORE,
            ab06,
        ),
        Rule::builtin(
            "AB-10",
            &[Warn, Transform],
            "domain controllers: last DC needs forest recovery; multi-domain DCs restore as disks + template",
            RESTORE,
            ab10,
        ),
        Rule::builtin(
            "AB-11",
            &[Block, Post, Warn],
            "ADE VMs: restore disks and deploy the template; reapply ADE",
            ENCRYPTED,
            ab11,
        ),
        Rule::builtin(
            "AB-07",
            &[Transform, Warn],
            "create VM drops the availability set",
            RESTORE,
            ab07,
        ),
        Rule::builtin(
            "AB-08",
            &[Transform, Post],
            "static IPs become dynamic; public IPs and extensions are re-added after",
            RESTORE,
            ab08,
        ),
        Rule::builtin(
            "AB-09",
            &[Post],
            "Linux with cloud-init and password sign-in: reset the password with VMAccess",
            RESTORE,
            ab09,
        ),
        Rule::builtin(
            "AB-13",
            &[Transform, Warn, Info],
            "Spot VMs become regular; dedicated hosts: restore disks; Gen2 stays Gen2",
            MATRIX,
            ab13,
        ),
    ]
}

fn ab16_01(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.facts.in_place || c.req.restore_type == RestoreType::ReplaceDisks {
        d.block(r, "$.request.placement", "replacing an existing VM is not supported: create a new VM, or restore disks and create a VM from them");
    }
}

fn ab16_06(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if let (Some(src), Some(pair)) = (c.src_region, &c.facts.source_paired_region)
        && src.disaster_declared
        && c.cat.regions.contains_key(pair.as_str())
    {
        d.paired_region(r, pair, format!("a datacenter disaster is declared for {}: the VM is restored in the paired region {pair}", src.name));
    }
}

fn ab16_02(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let paired = d.has_transformation(crate::plan::types::TransformKind::PairedRegion);
    if c.facts.cross_region && !paired {
        d.block(
            r,
            "$.request.destination.region",
            format!(
                "restore only to the source region: {} to {} is not supported",
                c.vm.region, c.dest.region
            ),
        );
    }
    if c.facts.cross_subscription {
        d.block(
            r,
            "$.request.destination.subscription_id",
            "restore only to the source subscription",
        );
    }
}

fn ab16_03(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.vm.domain_controller.is_some() && c.req.restore_type == RestoreType::FullVm {
        d.warn(r, "$.request.restore_type", format!("'{}' is a domain controller: restoring disks and creating a VM from them is recommended", c.vm.name));
    }
}

fn ab16_04(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.is_linux() && c.vm.os.authentication.uses_password() {
        d.post(
            r,
            format!(
                "reset the password of '{}' with the VMAccess extension; SSH keys are recommended",
                d.target().vm_name
            ),
        );
    }
}

fn ab16_05(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.dest.availability_set.is_some() {
        if c.req.restore_type == RestoreType::FullVm {
            d.block(r, "$.request.destination.availability_set", "to restore into a specific availability set, restore disks and configuration and create the VM from them");
        } else {
            d.step(r, Template);
        }
    }
}

fn ab01(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let crr = c.rp.vault.as_ref().is_some_and(|v| v.cross_region_restore);
    if c.facts.cross_region && !crr {
        d.block(
            r,
            "$.request.destination.region",
            format!(
                "restore to {} needs cross-region restore on the vault (source region {})",
                c.dest.region, c.vm.region
            ),
        );
    }
    if c.facts.target_vm_exists && !c.facts.in_place && c.req.restore_type == RestoreType::FullVm {
        d.block(
            r,
            "$.request.destination.vm_name",
            format!(
                "a VM named '{}' already exists in resource group '{}'",
                d.target().vm_name,
                d.target().resource_group
            ),
        );
    }
    if let Some(v) = &c.dest.virtual_network {
        if v.subscription_id
            .as_ref()
            .is_some_and(|s| s != &c.dest.subscription_id)
        {
            d.block(
                r,
                "$.request.destination.virtual_network.subscription_id",
                format!("virtual network '{}' is in another subscription", v.name),
            );
        }
        if v.region.as_ref().is_some_and(|x| x != &d.target().region) {
            d.block(
                r,
                "$.request.destination.virtual_network.region",
                format!("virtual network '{}' is in another region", v.name),
            );
        }
    }
}

fn ab02(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let Some(sa) = &c.dest.staging_storage_account else {
        return;
    };
    let p = "$.request.destination.staging_storage_account";
    let vault_region =
        c.rp.vault
            .as_ref()
            .map_or(c.vm.region.as_str(), |v| v.region.as_str());
    let sa_region = sa.region.as_deref().unwrap_or(&c.dest.region);
    if !c.facts.cross_region && sa_region != vault_region {
        d.block(
            r,
            &format!("{p}.region"),
            format!(
                "staging account '{}' is in {sa_region}, not in the vault's region {vault_region}",
                sa.name
            ),
        );
    }
    if sa.sku.is_zone_redundant() {
        d.block(
            r,
            &format!("{p}.sku"),
            format!(
                "staging account '{}' is zone-redundant: not supported",
                sa.name
            ),
        );
    }
    if sa.kind == StorageKind::BlobStorage {
        d.block(
            r,
            &format!("{p}.kind"),
            format!(
                "staging account '{}' is a Blob storage account: not supported",
                sa.name
            ),
        );
    }
    let premium_vm = d.target().disks.iter().any(|x| x.sku.is_premium());
    if sa.sku.is_premium() && !premium_vm {
        d.block(
            r,
            &format!("{p}.sku"),
            format!(
                "staging account '{}' is Premium but the VM has no premium disks",
                sa.name
            ),
        );
    }
    if sa.sku.is_premium() && sa.network_rules && c.facts.target_managed {
        d.block(
            r,
            &format!("{p}.network_rules"),
            format!(
                "Premium staging account '{}' with network rules cannot be used for a managed VM",
                sa.name
            ),
        );
    }
}

fn ab03(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.req.restore_type != RestoreType::ReplaceDisks {
        return;
    }
    let p = "$.request.restore_type";
    let rg =
        c.vm.resource_group
            .as_deref()
            .unwrap_or(&c.dest.resource_group);
    let existing = c.cat.existing_vm(&c.vm.subscription_id, rg, &c.vm.name);
    let before = d.findings().len();
    match existing {
        None => d.block(
            r,
            p,
            format!(
                "replace existing disks: VM '{}' does not exist in resource group '{rg}'",
                c.vm.name
            ),
        ),
        Some(e) => {
            if !e.managed {
                d.block(
                    r,
                    p,
                    format!(
                        "replace existing disks: VM '{}' does not use managed disks",
                        e.name
                    ),
                );
            }
            if e.encrypted {
                d.block(
                    r,
                    p,
                    format!("replace existing disks: VM '{}' is encrypted", e.name),
                );
            }
            if e.generalized {
                d.block(
                    r,
                    p,
                    format!("replace existing disks: VM '{}' is generalized", e.name),
                );
            }
        }
    }
    if c.vm.deployment_model == DeploymentModel::Classic {
        d.block(
            r,
            "$.restore_point.vm.deployment_model",
            "replace existing disks is not supported for Classic VMs",
        );
    }
    if c.vm.disks.iter().any(|x| !x.is_managed()) {
        d.block(
            r,
            "$.restore_point.vm.disks",
            "replace existing disks is not supported for unmanaged disks",
        );
    }
    if c.facts.ade {
        d.block(
            r,
            "$.restore_point.vm.disks",
            "replace existing disks is not supported for VMs encrypted with ADE",
        );
    }
    if d.findings().len() == before {
        d.step(r, SnapshotExistingDisks);
        d.step(r, SwapDisks);
        d.post(r, format!("the original disks of '{}' are kept: delete them when you are satisfied with the restore", c.vm.name));
    }
}

fn ab04(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !c.facts.cross_region {
        return;
    }
    let p = "$.request";
    if c.req.restore_type == RestoreType::ReplaceDisks {
        d.block(
            r,
            &format!("{p}.restore_type"),
            "cross-region restore cannot replace disks",
        );
    }
    for (i, x) in c.vm.disks.iter().enumerate() {
        if matches!(x.sku, DiskSku::Ultra | DiskSku::PremiumV2) {
            d.block(
                r,
                &format!("$.restore_point.vm.disks[{i}].sku"),
                format!(
                    "disk '{}' is {:?}: not supported by cross-region restore",
                    x.name, x.sku
                ),
            );
        }
    }
    if c.vm.security_type == SecurityType::Confidential {
        d.block(
            r,
            "$.restore_point.vm.security_type",
            "confidential VMs cannot be restored across regions",
        );
    }
    if let Some(sa) = &c.dest.staging_storage_account {
        let sa_region = sa.region.as_deref().unwrap_or(&c.dest.region);
        if sa_region != c.dest.region {
            d.block(
                r,
                &format!("{p}.destination.staging_storage_account.region"),
                format!(
                    "staging account '{}' must be in the secondary region {}",
                    sa.name, c.dest.region
                ),
            );
        }
    }
    if c.facts.encrypted
        && c.facts
            .source_geography
            .as_deref()
            .is_some_and(|g| g != c.facts.destination_geography)
    {
        d.block(
            r,
            &format!("{p}.destination.region"),
            format!(
                "encrypted VM: {} is in another geography than {}",
                c.dest.region, c.vm.region
            ),
        );
    }
    if c.facts.cmk || c.dest.disk_encryption_set.is_some() {
        if c.facts.cmk && !c.rp.vault.as_ref().is_some_and(|v| v.cmk_encrypted) {
            d.drop_cmk(r, "the vault is not CMK-encrypted: the restored disks in the secondary region have no customer-managed keys");
        } else {
            d.drop_cmk(
                r,
                "a disk encryption set cannot be set during cross-region restore",
            );
        }
        d.post(
            r,
            "assign the disk encryption set to the restored disks after the cross-region restore",
        );
    }
}

/// Blocks with each `(applies, path, why)` that applies: "`what` `why`".
fn block_each(r: &Rule, d: &mut Decisions, what: &str, checks: &[(bool, &str, &str)]) {
    for (applies, path, why) in checks {
        if *applies {
            d.block(r, path, format!("{what} {why}"));
        }
    }
}

fn ab05(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !c.facts.cross_subscription {
        return;
    }
    let p = "$.request.destination.subscription_id";
    let vault_off =
        c.rp.vault
            .as_ref()
            .is_some_and(|v| !v.cross_subscription_restore);
    block_each(
        r,
        d,
        "cross-subscription restore",
        &[
            (vault_off, p, "is disabled on the vault"),
            (
                c.vm.disks.iter().any(|x| !x.is_managed()),
                p,
                "is not supported for unmanaged disks",
            ),
            (c.facts.ade, p, "is not supported for ADE-encrypted VMs"),
            (
                c.rp.tier == Tier::Snapshot,
                "$.restore_point.tier",
                "needs a vault-tier recovery point, not a snapshot",
            ),
            (
                c.facts.cross_tenant,
                "$.request.destination.tenant_id",
                "to another tenant is not supported",
            ),
        ],
    );
}

fn ab06(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let ZoneChoice::Zone(z) = c.dest.zone else {
        return;
    };
    if c.facts.cross_region || c.vm.zone == Some(z) {
        return;
    }
    let p = "$.request.destination.zone";
    let grs_same_region =
        c.rp.vault
            .as_ref()
            .is_some_and(|v| v.redundancy == VaultRedundancy::Grs && !v.cross_region_restore);
    block_each(
        r,
        d,
        "cross-zonal restore",
        &[
            (
                c.vm.disks.iter().any(|x| !x.is_managed()),
                p,
                "is not supported for unmanaged disks",
            ),
            (c.facts.encrypted, p, "is not supported for encrypted VMs"),
            (
                c.rp.tier == Tier::Snapshot,
                "$.restore_point.tier",
                "needs a vault-tier recovery point, not a snapshot only",
            ),
            (
                grs_same_region,
                "$.restore_point.vault.redundancy",
                "is not supported from a GRS vault in the same region (use a ZRS vault or cross-region restore)",
            ),
        ],
    );
}

fn ab07(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if let (Some(set), RestoreType::FullVm) = (&c.vm.availability_set, c.req.restore_type) {
        d.drop_availability_set(
            r,
            &c.vm.availability_set,
            format!("availability set '{set}' is not kept when creating a VM"),
        );
        d.warn(
            r,
            "$.restore_point.vm.availability_set",
            "to keep the availability set, restore disks and deploy the template",
        );
    }
}

fn ab08(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.vm
        .nics
        .iter()
        .any(|n| matches!(n.private_ip, IpAllocation::Static { .. }))
    {
        d.static_to_dynamic(r, "static private IPs are restored as dynamic");
        d.post(
            r,
            "re-add the static private IP addresses to the restored NICs",
        );
    }
    if c.vm.nics.iter().any(|n| n.public_ip.is_some()) && !c.dest.public_ip {
        d.drop_public_ip(r, "public IPs are not restored");
        d.post(r, "create and attach public IPs to the restored VM");
    }
    if !c.vm.extensions.is_empty() {
        d.post(
            r,
            format!(
                "re-enable the VM extensions: {}",
                c.vm.extensions.join(", ")
            ),
        );
    }
}

fn ab09(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.is_linux() && c.vm.os.cloud_init && c.vm.os.authentication.uses_password() {
        d.post(
            r,
            format!(
                "reset the password of '{}' with the VMAccess extension (cloud-init blocks it)",
                d.target().vm_name
            ),
        );
    }
}

fn ab10(r: &Rule, c: &Ctx, d: &mut Decisions) {
    match c.vm.domain_controller {
        None | Some(DomainControllerRole::Single) => {}
        Some(DomainControllerRole::Last) => d.warn(r, "$.restore_point.vm.domain_controller", format!("'{}' is the last domain controller (or restored into an isolated network): follow the forest recovery procedure", c.vm.name)),
        Some(DomainControllerRole::MultiDomain) => {
            if c.req.restore_type == RestoreType::FullVm {
                d.restore_disks_instead(r, "a domain controller in a multi-domain forest is restored as disks plus a template");
            }
        }
    }
}

fn ab11(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !c.facts.ade {
        return;
    }
    if c.req.restore_type == RestoreType::FullVm && d.target().create_vm {
        d.block(
            r,
            "$.request.restore_type",
            format!(
                "'{}' uses Azure Disk Encryption: restore disks, then deploy the template",
                c.vm.name
            ),
        );
        return;
    }
    if c.is_linux() {
        d.post(r, "reinstall the ADE extension on the restored Linux VM");
    }
    d.post(
        r,
        "reapply Azure Disk Encryption with the original key vault",
    );
    if c.vm.disks.len() > 16 || c.vm.disks.iter().any(|x| x.size_bytes > 4095 * GIB) {
        d.warn(
            r,
            "$.restore_point.vm.disks",
            "more than 16 disks or a disk over 4095 GB: ADE settings are not restored",
        );
    }
}

fn ab12(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let unmanaged = c.vm.deployment_model == DeploymentModel::Classic
        || c.vm.disks.iter().any(|x| !x.is_managed());
    let max_disks = if unmanaged { 16 } else { 32 };
    let data = c.facts.data_disk_count;
    if data > max_disks {
        d.block(
            r,
            "$.restore_point.vm.disks",
            format!("{data} data disks: Azure Backup supports at most {max_disks}"),
        );
    }
    for (i, x) in c.vm.disks.iter().enumerate() {
        let p = format!("$.restore_point.vm.disks[{i}].size_bytes");
        if x.size_bytes > 32 * TIB {
            d.block(
                r,
                &p,
                format!(
                    "disk '{}': {} exceeds the 32 TiB limit",
                    x.name,
                    human_bytes(x.size_bytes)
                ),
            );
        } else if x.role == DiskRole::Os && x.size_bytes > 4095 * GIB {
            d.block(
                r,
                &p,
                format!(
                    "OS disk '{}': {} exceeds the 4095 GiB limit",
                    x.name,
                    human_bytes(x.size_bytes)
                ),
            );
        }
    }
    if c.facts.total_size_bytes > 256 * TIB {
        d.block(
            r,
            "$.restore_point.vm.disks",
            format!(
                "{} in all exceeds the 256 TiB limit per VM",
                human_bytes(c.facts.total_size_bytes)
            ),
        );
    }
}

fn ab13(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if c.vm.spot {
        d.spot_to_regular(r, "the Spot VM is restored as a regular VM");
    }
    if c.vm.dedicated_host.is_some() && c.req.restore_type == RestoreType::FullVm {
        d.warn(
            r,
            "$.restore_point.vm.dedicated_host",
            "the VM ran on a dedicated host: restore disks and create the VM on the host instead",
        );
    }
    if c.vm.generation == Generation::Gen2 {
        d.set_generation(
            r,
            Generation::Gen2,
            d.target().firmware,
            "the Generation 2 VM is restored as Generation 2",
        );
        d.info(
            r,
            "$.restore_point.vm.generation",
            "the Generation 2 VM is restored as Generation 2",
        );
    }
}
