//! The library's own checks (`VMR-`), run after every built-in profile's
//! rules. They cover what any restore into Azure must respect, where a
//! product's documents are silent.

use super::*;
use crate::model::*;
use crate::plan::types::OutcomeKind::*;

const SOURCE: &str = "vmrestore (Azure platform constraint)";

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule::builtin(
            "VMR-01",
            &[Transform, Block],
            "zones: keep the source's where the region has it, else drop it; a requested zone must exist",
            SOURCE,
            vmr01,
        ),
        Rule::builtin(
            "VMR-02",
            &[Block],
            "the VM size must support the number of data disks",
            SOURCE,
            vmr02,
        ),
        Rule::builtin(
            "VMR-03",
            &[Warn],
            "a VM size the catalog does not know cannot be checked",
            SOURCE,
            vmr03,
        ),
        Rule::builtin(
            "VMR-04",
            &[Warn],
            "access-restricted destination regions need an enabled subscription",
            SOURCE,
            vmr04,
        ),
    ]
}

/// The catalog's entry for the region the target is in now (a rule may
/// have moved it), else the destination's.
fn target_region<'c>(c: &Ctx<'c>, d: &Decisions) -> &'c crate::model::Region {
    c.cat
        .regions
        .get(d.target().region.as_str())
        .copied()
        .unwrap_or(c.dst_region)
}

fn vmr01(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if d.zone_decided() {
        return;
    }
    let region = target_region(c, d);
    match c.dest.zone {
        ZoneChoice::Zone(z) if !region.zones.contains(&z) => {
            d.block(
                r,
                "$.request.destination.zone",
                format!("zone {z} does not exist in {}", region.name),
            );
        }
        ZoneChoice::Zone(z) => {
            d.set_zone(r, c.vm.zone, z, format!("the VM is restored in zone {z}"))
        }
        ZoneChoice::None => {
            // The target is seeded without a zone already: the source's is
            // the one recorded as dropped.
            d.drop_source_zone(r, c.vm.zone, "no zone requested");
        }
        ZoneChoice::Auto => {
            if let Some(z) = d.target().zone
                && !region.zones.contains(&z)
            {
                d.drop_zone(
                    r,
                    format!("zone {z} is dropped: {} has no zone {z}", region.name),
                );
            }
        }
    }
}

fn vmr02(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if d.applied("VE-22")
        || c.dest.vm_size.is_none() && !c.cat.sizes.contains_key(d.target().vm_size.as_str())
    {
        return;
    }
    d.block_if_size_too_small(r, c);
}

fn vmr03(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !c.cat.sizes.is_empty() && !c.cat.sizes.contains_key(d.target().vm_size.as_str()) {
        let hint = crate::model::suggest(&d.target().vm_size, c.cat.sizes.keys().copied())
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        d.warn(r, "$.request.destination.vm_size", format!("VM size '{}' is not in the catalog: its disk count and generation cannot be checked{hint}", d.target().vm_size));
    }
}

fn vmr04(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let region = target_region(c, d);
    if region.access_restricted {
        d.warn(
            r,
            "$.request.destination.region",
            format!(
                "{} is access-restricted: the destination subscription must be enabled for it",
                region.name
            ),
        );
    }
}

/// VMR-06: every name the plan gives a resource follows Azure's naming rules
/// and is unique among its kind. Generated names are shortened to fit when
/// they are made (`NameKind::fit`); this check runs once all rules have run,
/// before the steps are built, so that a bad name blocks the plan instead of
/// failing the run half-way.
pub(crate) fn names_rule() -> &'static Rule {
    static RULE: std::sync::OnceLock<Rule> = std::sync::OnceLock::new();
    RULE.get_or_init(|| {
        Rule::builtin(
            "VMR-06",
            &[Block],
            "every resource name of the plan follows Azure's naming rules and is unique",
            "vmrestore (Azure naming rules and restrictions)",
            vmr06,
        )
    })
}

/// VMR-08: a disk uploaded as a managed disk is at least 20 MiB, Azure's
/// smallest for upload; one smaller grows to it. Runs once the planner knows
/// where the disks' bytes go (page blobs in a staging account take any
/// whole number of MiB).
pub(crate) fn grow_small_disks(c: &Ctx, d: &mut Decisions) {
    static RULE: std::sync::OnceLock<Rule> = std::sync::OnceLock::new();
    let rule = RULE.get_or_init(|| {
        Rule::builtin(
            "VMR-08",
            &[Transform],
            "a disk uploaded as a managed disk is at least 20 MiB (Azure's smallest for upload)",
            "vmrestore (Azure managed disk direct upload)",
            |_, _, _| {},
        )
    });
    if !d.target().disks_staged {
        d.grow_disks_to(rule, c, crate::units::MIN_UPLOAD_DISK);
    }
}

pub(crate) fn capabilities_rule() -> &'static Rule {
    static RULE: std::sync::OnceLock<Rule> = std::sync::OnceLock::new();
    RULE.get_or_init(|| {
        Rule::builtin(
            "VMR-07",
            &[Block],
            "every step of the plan is one the cloud it is planned for can run",
            "vmrestore (the cloud's declared capabilities)",
            |_, _, _| {},
        )
    })
}

/// VMR-07: blocks each step of `steps` that `caps` says the cloud cannot
/// run, naming the step, its kind and why.
pub(crate) fn unsupported_steps(
    caps: &crate::plan::capabilities::Capabilities,
    d: &mut Decisions,
    plan_steps: &[crate::plan::types::Step],
) {
    let r = capabilities_rule();
    for (i, s) in plan_steps.iter().enumerate() {
        if let Some(why) = caps.refuses(d.target(), s) {
            d.block(
                r,
                &format!("$.steps[{i}]"),
                format!(
                    "step '{}' ({}) cannot run on the {} cloud: {why}",
                    s.id,
                    crate::plan::capabilities::kind_name(s.kind),
                    caps.cloud
                ),
            );
        }
    }
}

/// Runs VMR-06 over the target as the rules left it.
pub(crate) fn check_names(c: &Ctx, d: &mut Decisions) {
    vmr06(names_rule(), c, d);
}

/// The names VMR-06 finds wrong: (the finding's path, why).
#[derive(Default)]
struct BadNames(Vec<(String, String)>);

impl BadNames {
    fn check(&mut self, path: impl Into<String>, kind: crate::model::names::NameKind, s: &str) {
        if let Err(m) = crate::model::names::check_name_or_id(kind, s) {
            self.0.push((path.into(), m));
        }
    }
}

fn vmr06(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let t = d.target();
    let mut bad = BadNames::default();
    resource_names(c, t, &mut bad);
    nic_names(c, t, &mut bad);
    disk_names(c, t, &mut bad);
    nic_duplicates(t, &mut bad);
    for (path, message) in bad.0 {
        d.block(r, &path, message);
    }
}

/// Where the names a request may override came from, for the findings'
/// paths: the request's field when it gave one, the restore point's else.
struct Origin {
    nsg: &'static str,
    des: &'static str,
}

fn origin(c: &Ctx) -> Origin {
    Origin {
        nsg: match c.dest.network_security_group {
            Some(_) => "$.request.destination.network_security_group",
            None => "$.restore_point.vm.network_security_group",
        },
        des: match c.dest.disk_encryption_set {
            Some(_) => "$.request.destination.disk_encryption_set",
            None => "$.restore_point.vm.disks",
        },
    }
}

/// The resource group, VM, subscription, availability set, staging
/// account, key vault and NSG, each found at the path it came from.
fn resource_names(c: &Ctx, t: &crate::plan::types::Target, bad: &mut BadNames) {
    use crate::model::names::{NameKind, is_guid};
    let (rg_path, vm_path, sub_path) = if c.facts.in_place {
        (
            "$.restore_point.vm.resource_group",
            "$.restore_point.vm.name",
            "$.restore_point.vm.subscription_id",
        )
    } else {
        (
            "$.request.destination.resource_group",
            if c.dest.vm_name.is_some() {
                "$.request.destination.vm_name"
            } else {
                "$.restore_point.vm.name"
            },
            "$.request.destination.subscription_id",
        )
    };
    bad.check(rg_path, NameKind::ResourceGroup, &t.resource_group);
    bad.check(vm_path, NameKind::VirtualMachine, &t.vm_name);
    if !is_guid(&t.subscription_id) {
        bad.0.push((
            sub_path.into(),
            format!("'{}' is not a subscription ID (a GUID)", t.subscription_id),
        ));
    }
    if let Some(a) = &t.availability_set {
        bad.check(
            "$.request.destination.availability_set",
            NameKind::AvailabilitySet,
            a,
        );
    }
    if let Some(s) = &t.staging_account {
        bad.check(
            "$.request.destination.staging_storage_account.name",
            NameKind::StorageAccount,
            s,
        );
    }
    if let Some(k) = &t.key_vault {
        bad.check("$.restore_point.key_vaults", NameKind::KeyVault, k);
    }
    if let Some(n) = &t.network_security_group {
        bad.check(origin(c).nsg, NameKind::NetworkSecurityGroup, n);
    }
}

/// Each NIC's name, network, subnet and public IP.
fn nic_names(c: &Ctx, t: &crate::plan::types::Target, bad: &mut BadNames) {
    use crate::model::names::NameKind;
    for (i, n) in t.nics.iter().enumerate() {
        let p = if i < c.vm.nics.len() {
            format!("$.restore_point.vm.nics[{i}]")
        } else {
            "$.request.destination".to_string()
        };
        bad.check(format!("{p}.name"), NameKind::NetworkInterface, &n.name);
        bad.check(
            format!("{p}.virtual_network"),
            NameKind::VirtualNetwork,
            &n.virtual_network,
        );
        bad.check(format!("{p}.subnet"), NameKind::Subnet, &n.subnet);
        if let Some(pip) = &n.public_ip {
            bad.check(format!("{p}.public_ip"), NameKind::PublicIp, pip);
        }
    }
}

/// No two NICs of a name.
fn nic_duplicates(t: &crate::plan::types::Target, bad: &mut BadNames) {
    for (i, n) in t.nics.iter().enumerate() {
        if t.nics[..i]
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&n.name))
        {
            bad.0.push((
                format!("$.restore_point.vm.nics[{i}].name"),
                format!("two NICs would be named '{}'", n.name),
            ));
        }
    }
}

/// Each disk's name and disk encryption set; no two disks of a name
/// (Azure names are unique per resource group and type, ignoring case).
fn disk_names(c: &Ctx, t: &crate::plan::types::Target, bad: &mut BadNames) {
    use crate::model::names::NameKind;
    use crate::plan::types::TargetDisk;
    // Where a target disk comes from, for the finding's path.
    let source_path = |disk: &TargetDisk| -> String {
        let Some(i) = c.vm.disks.iter().position(|s| s.name == disk.source_disk) else {
            return "$.restore_point.vm.disks".into();
        };
        match disk.volume_group.as_deref().and_then(|vg| {
            c.vm.disks[i]
                .lvm_volume_groups
                .iter()
                .position(|g| g.name == vg)
        }) {
            Some(j) => format!("$.restore_point.vm.disks[{i}].lvm_volume_groups[{j}].name"),
            None => format!("$.restore_point.vm.disks[{i}].name"),
        }
    };
    let what = |x: &TargetDisk| match &x.volume_group {
        Some(vg) => format!("volume group '{vg}' of disk '{}'", x.source_disk),
        None => format!("disk '{}'", x.source_disk),
    };
    for (i, disk) in t.disks.iter().enumerate() {
        bad.check(source_path(disk), NameKind::Disk, &disk.name);
        if let Some(des) = &disk.disk_encryption_set {
            bad.check(origin(c).des, NameKind::DiskEncryptionSet, des);
        }
        if let Some(first) = t.disks[..i]
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(&disk.name))
        {
            bad.0.push((
                source_path(disk),
                format!(
                    "{} would be restored as disk '{}', the name {} is restored as: rename one of them",
                    what(disk),
                    disk.name,
                    what(first)
                ),
            ));
        }
    }
}
