//! Seeding the target from the request, and building the step graph.

use std::collections::HashMap;

use super::*;
use crate::policy::{Stage, disk_name, round_up_mib};
use StepKind::*;

/// The target as requested, before any rule runs.
pub(super) fn initial_target(
    rp: &RestorePoint,
    req: &RestoreRequest,
    idx: &CatalogIndex,
) -> Target {
    let vm = &rp.vm;
    let dest = &req.destination;
    let in_place = req.placement == Placement::InPlace;
    let (subscription_id, region, resource_group, vm_name) = if in_place {
        (
            vm.subscription_id.clone(),
            vm.region.clone(),
            vm.resource_group
                .clone()
                .unwrap_or_else(|| dest.resource_group.clone()),
            vm.name.clone(),
        )
    } else {
        (
            dest.subscription_id.clone(),
            dest.region.clone(),
            dest.resource_group.clone(),
            dest.vm_name.clone().unwrap_or_else(|| vm.name.clone()),
        )
    };
    let managed = match dest.disk_storage {
        Some(DiskStorageChoice::Managed) => true,
        Some(DiskStorageChoice::Unmanaged) => false,
        None => vm.disks.iter().all(Disk::is_managed),
    };
    let zone = match dest.zone {
        ZoneChoice::Auto => vm.zone,
        ZoneChoice::None => None,
        ZoneChoice::Zone(z) => Some(z),
    };
    let disks = vm
        .disks
        .iter()
        .map(|d| TargetDisk {
            name: disk_name(&vm_name, &d.name),
            source_disk: d.name.clone(),
            volume_group: None,
            role: d.role,
            lun: if d.role == DiskRole::Data {
                d.lun
            } else {
                None
            },
            size_bytes: round_up_mib(d.size_bytes),
            bytes_to_write: d.allocated(),
            sku: dest.disk_sku.unwrap_or(d.sku),
            disk_encryption_set: dest
                .disk_encryption_set
                .clone()
                .or_else(|| d.encryption.disk_encryption_set.clone()),
        })
        .collect();
    let nics = if vm.nics.is_empty() {
        vec![TargetNic {
            name: format!("{vm_name}-nic0"),
            virtual_network: dest
                .virtual_network
                .as_ref()
                .map_or_else(|| format!("{vm_name}-vnet"), |v| v.name.clone()),
            subnet: dest.subnet.clone().unwrap_or_else(|| "default".into()),
            static_ip: None,
            public_ip: dest.public_ip.then(|| format!("{vm_name}-pip0")),
        }]
    } else {
        vm.nics
            .iter()
            .enumerate()
            .map(|(i, n)| TargetNic {
                name: format!("{vm_name}-nic{i}"),
                // A destination network replaces the source's for the primary NIC.
                virtual_network: match (&dest.virtual_network, i) {
                    (Some(v), 0) if !in_place => v.name.clone(),
                    _ => n.virtual_network.clone(),
                },
                subnet: match (&dest.subnet, i) {
                    (Some(s), 0) if !in_place => s.clone(),
                    _ => n.subnet.clone(),
                },
                static_ip: match &n.private_ip {
                    IpAllocation::Static { address } => Some(address.clone()),
                    IpAllocation::Dynamic => None,
                },
                public_ip: (n.public_ip.is_some() || (i == 0 && dest.public_ip))
                    .then(|| format!("{vm_name}-pip{i}")),
            })
            .collect()
    };
    let staging = dest
        .staging_storage_account
        .as_ref()
        .map(|s| s.name.clone());
    let vm_size = dest.vm_size.clone().unwrap_or_else(|| vm.size.clone());
    let _ = idx;
    Target {
        restore_point_id: rp.id.clone(),
        source_vm: vm.name.clone(),
        tenant_id: dest.tenant_id.clone().or_else(|| vm.tenant_id.clone()),
        subscription_id,
        region,
        resource_group,
        vm_name,
        vm_size,
        zone,
        availability_set: dest.availability_set.clone(),
        os_family: vm.os.family,
        generation: vm.generation,
        firmware: vm.firmware,
        managed,
        create_vm: req.restore_type == RestoreType::FullVm,
        power_on: req.restore_type == RestoreType::FullVm && dest.power_on,
        staging_account: staging,
        key_vault: None,
        network_security_group: None,
        nsg_open_ports: Vec::new(),
        nics,
        disks,
    }
}

/// A deterministic staging account name (3-24 lowercase letters and digits).
fn default_staging_name(t: &Target) -> String {
    let digest =
        short_digest(format!("{}/{}/{}", t.subscription_id, t.resource_group, t.region).as_bytes());
    format!("vmrstage{digest}")
}

struct Builder<'s> {
    steps: Vec<Step>,
    /// Stage index of each step, parallel to `steps`.
    stage_idx: Vec<usize>,
    stage_of: HashMap<StepKind, usize>,
    stages: &'s [Stage],
    rules: &'s std::collections::BTreeMap<StepKind, Vec<String>>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        id: String,
        kind: StepKind,
        action: Action,
        resource: &str,
        deps: &[&str],
        disk: Option<&str>,
        bytes: u64,
        detail: String,
    ) -> String {
        let stage = self
            .stage_of
            .get(&kind)
            .copied()
            .unwrap_or(self.stages.len().saturating_sub(1));
        self.stage_idx.push(stage);
        self.steps.push(Step {
            id: id.clone(),
            kind,
            action,
            resource: resource.to_string(),
            stage: self
                .stages
                .get(stage)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            rule_ids: self.rules.get(&kind).cloned().unwrap_or_default(),
            disk: disk.map(str::to_string),
            bytes,
            detail,
        });
        id
    }
}

/// Turns the decisions into a plan: the step graph, estimates and verdict.
pub(super) fn finish(
    ctx: &Ctx,
    mut d: Decisions,
    stages: &[Stage],
    profiles: &[Profile],
    fingerprint: Fingerprint,
) -> Plan {
    let blocked = d.is_blocked();
    if ctx.req.restore_type == RestoreType::GuestFiles && !blocked {
        d.post_actions.push(PostAction {
            rule_id: "VMR-05".into(),
            message: "copy the files you need from the restored disks, then delete the disks"
                .into(),
            source: "vmrestore (guest-file restores restore the disks)".into(),
        });
        d.rules_applied.insert("VMR-05".into());
    }
    let steps = if blocked {
        Vec::new()
    } else {
        build_steps(ctx, &mut d, stages)
    };

    let mut est = Estimates {
        disks: d.target.disks.len() as u32,
        bytes_to_move: d.target.disks.iter().map(|x| x.bytes_to_write).sum(),
        storage_bytes: d.target.disks.iter().map(|x| x.size_bytes).sum(),
        ..Default::default()
    };
    est.transfer_seconds = est.bytes_to_move.div_ceil(d.throughput.max(1));
    for s in &steps {
        match (s.action, s.kind) {
            (Action::Create, _) => est.to_create += 1,
            (Action::Delete, _) => est.to_delete += 1,
            (Action::Update, WriteDisk | FinalizeDisk) | (Action::Read, _) => {}
            (Action::Update, _) => est.to_change += 1,
        }
    }
    for s in &steps {
        d.rules_applied.extend(s.rule_ids.iter().cloned());
    }
    Plan {
        format_version: FORMAT_VERSION.to_string(),
        fingerprint,
        profiles: profiles.iter().map(|p| p.name.clone()).collect(),
        verdict: if blocked {
            Verdict::Blocked
        } else {
            Verdict::Ready
        },
        findings: d.findings,
        transformations: d.transformations,
        steps,
        post_actions: d.post_actions,
        estimates: est,
        target: d.target,
        rules_applied: d.rules_applied.into_iter().collect(),
    }
}

fn build_steps(ctx: &Ctx, d: &mut Decisions, stages: &[Stage]) -> Vec<Step> {
    let rt = ctx.req.restore_type;
    let in_place = ctx.facts.in_place;
    let uses_staging =
        d.has_step(StagingAccount) || !d.target.managed || d.target.staging_account.is_some();
    if uses_staging && d.target.staging_account.is_none() {
        d.target.staging_account = Some(default_staging_name(&d.target));
    }
    let stage_of: HashMap<StepKind, usize> = stages
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.steps.iter().map(move |k| (*k, i)))
        .collect();
    let d: &Decisions = d;
    let mut b = Builder {
        steps: Vec::with_capacity(8 + 3 * d.target.disks.len()),
        stage_idx: Vec::new(),
        stage_of,
        stages,
        rules: &d.steps,
    };
    let t = &d.target;

    let verify = b.add(
        "verify".into(),
        VerifyRestorePoint,
        Action::Read,
        &t.restore_point_id,
        &[],
        None,
        0,
        "check that every chunk of the restore point is present and readable".into(),
    );
    let rg = (!in_place).then(|| {
        b.add(
            "rg".into(),
            ResourceGroup,
            Action::Create,
            &t.resource_group,
            &[],
            None,
            0,
            format!("in {} ({})", t.region, t.subscription_id),
        )
    });
    let rg_deps: Vec<&str> = rg.iter().map(String::as_str).collect();

    let kv = (d.has_step(KeyVault)).then(|| {
        let name = t.key_vault.clone().unwrap_or_default();
        let detail = if d.create_key_vault {
            format!("new key vault in {}", t.region)
        } else {
            "restore keys and secrets".into()
        };
        b.add(
            "kv".into(),
            KeyVault,
            Action::Create,
            &name,
            &rg_deps,
            None,
            0,
            detail,
        )
    });
    let kv_access = d.has_step(KeyVaultAccess).then(|| {
        let deps: Vec<&str> = kv
            .iter()
            .map(String::as_str)
            .chain(rg_deps.iter().copied())
            .collect();
        b.add(
            "kv-access".into(),
            KeyVaultAccess,
            Action::Update,
            &t.key_vault.clone().unwrap_or_default(),
            &deps,
            None,
            0,
            "grant the application's service principal access to keys and secrets (nobody else)"
                .into(),
        )
    });
    let staging = uses_staging.then(|| {
        b.add(
            "staging".into(),
            StagingAccount,
            Action::Create,
            t.staging_account.as_deref().unwrap_or_default(),
            &rg_deps,
            None,
            0,
            "staging storage account for the disk data".into(),
        )
    });
    if d.has_step(HelperAppliance) {
        b.add(
            "helper".into(),
            HelperAppliance,
            Action::Create,
            &format!("vmrestore-helper-{}", t.region),
            &rg_deps,
            None,
            0,
            "helper appliance (left powered off after the restore)".into(),
        );
    }
    let snapshot =
        (rt == RestoreType::ReplaceDisks && d.has_step(SnapshotExistingDisks)).then(|| {
            b.add(
                "snapshot-existing".into(),
                SnapshotExistingDisks,
                Action::Create,
                &t.vm_name,
                &[&verify],
                None,
                0,
                "snapshot the existing VM's disks before the swap".into(),
            )
        });
    let delete_vm = (in_place && d.has_step(DeleteExistingVm)).then(|| b.add("delete-vm".into(), DeleteExistingVm, Action::Delete, &t.vm_name, &[&verify], None, 0, "delete the existing VM after the restore point is verified; its disks are kept until the new VM runs".into()));

    let mut finals = Vec::new();
    for disk in &t.disks {
        let mut deps: Vec<&str> = rg_deps.clone();
        deps.extend(staging.as_deref());
        deps.extend(kv_access.as_deref());
        deps.extend(delete_vm.as_deref());
        let kind = if t.managed && !uses_staging {
            "managed disk for upload"
        } else {
            "page blob in the staging account"
        };
        let create = b.add(
            format!("disk:{}", disk.name),
            CreateDisk,
            Action::Create,
            &disk.name,
            &deps,
            Some(&disk.name),
            0,
            format!(
                "{} {kind}, {}",
                human_bytes(disk.size_bytes),
                disk.sku.arm_name()
            ),
        );
        let write = b.add(
            format!("write:{}", disk.name),
            WriteDisk,
            Action::Update,
            &disk.name,
            &[&create, &verify],
            Some(&disk.name),
            disk.bytes_to_write,
            format!(
                "write {} from {}",
                human_bytes(disk.bytes_to_write),
                source_label(disk)
            ),
        );
        finals.push(b.add(
            format!("finalize:{}", disk.name),
            FinalizeDisk,
            Action::Update,
            &disk.name,
            &[&write],
            Some(&disk.name),
            0,
            "verify the disk digest, write the footer, end write access".into(),
        ));
    }
    let fin: Vec<&str> = finals.iter().map(String::as_str).collect();
    let mut data_ready: Vec<String> = finals.clone();
    if d.has_step(BootFix) {
        data_ready = vec![b.add(
            "boot-fix".into(),
            BootFix,
            Action::Update,
            &t.vm_name,
            &fin,
            None,
            0,
            "mount the disks, fix the boot configuration, unmount".into(),
        )];
    }
    if d.has_step(ConvertToManaged) && t.managed {
        let deps: Vec<&str> = data_ready.iter().map(String::as_str).collect();
        data_ready = vec![b.add("convert".into(), ConvertToManaged, Action::Update, &t.vm_name, &deps, None, 0, "create the VM's disks as unmanaged from the staging account, then convert them to managed".into())];
    }
    let ready: Vec<&str> = data_ready.iter().map(String::as_str).collect();

    let mut vm_step = None;
    match rt {
        RestoreType::FullVm if t.create_vm => {
            let nsg = match &d.nsg {
                NsgPlan::CopySource(n) => Some((
                    n.clone(),
                    "configure the source's network security group".to_string(),
                )),
                NsgPlan::Create { name, ports } => Some((
                    name.clone(),
                    format!("allow inbound TCP {ports:?} at priority 300"),
                )),
                NsgPlan::None | NsgPlan::Existing(_) => None,
            };
            // Where the profile puts the NSG after the VM (Commvault), it is
            // created and attached to the NIC at the end.
            let nsg_late = nsg.is_some()
                && b.stage_of.get(&NetworkSecurityGroup) > b.stage_of.get(&VirtualMachine);
            let nsg_step = match (&nsg, nsg_late) {
                (Some((name, detail)), false) => Some(b.add(
                    "nsg".into(),
                    NetworkSecurityGroup,
                    Action::Create,
                    name,
                    &rg_deps,
                    None,
                    0,
                    detail.clone(),
                )),
                _ => None,
            };
            let mut nic_ids = Vec::new();
            for (i, nic) in t.nics.iter().enumerate() {
                let mut deps: Vec<&str> = rg_deps.clone();
                deps.extend(nsg_step.as_deref());
                let pip;
                if let Some(p) = &nic.public_ip {
                    pip = b.add(
                        format!("pip:{i}"),
                        PublicIp,
                        Action::Create,
                        p,
                        &rg_deps,
                        None,
                        0,
                        "public IP".into(),
                    );
                    deps.push(&pip);
                }
                let ip = nic
                    .static_ip
                    .as_deref()
                    .map_or("dynamic IP".to_string(), |a| format!("static IP {a}"));
                nic_ids.push(b.add(
                    format!("nic:{i}"),
                    NetworkInterface,
                    Action::Create,
                    &nic.name,
                    &deps,
                    None,
                    0,
                    format!("{}/{}, {ip}", nic.virtual_network, nic.subnet),
                ));
            }
            let mut deps: Vec<&str> = ready.clone();
            deps.extend(nic_ids.iter().map(String::as_str));
            deps.extend(kv_access.as_deref());
            let zone = t
                .zone
                .map_or("no zone".to_string(), |z| format!("zone {z}"));
            let vm = b.add(
                "vm".into(),
                VirtualMachine,
                Action::Create,
                &t.vm_name,
                &deps,
                None,
                0,
                format!(
                    "{} {:?} {}, {zone}, {} disks",
                    t.vm_size,
                    t.generation,
                    os_label(t.os_family),
                    t.disks.len()
                ),
            );
            let mut last = vm.clone();
            if t.power_on {
                last = b.add(
                    "power-on".into(),
                    PowerOn,
                    Action::Update,
                    &t.vm_name,
                    &[&vm],
                    None,
                    0,
                    "start the VM".into(),
                );
            }
            if let (Some((name, detail)), true) = (&nsg, nsg_late) {
                last = b.add(
                    "nsg".into(),
                    NetworkSecurityGroup,
                    Action::Create,
                    name,
                    &[&last],
                    None,
                    0,
                    format!("{detail}, attached to the VM's NICs"),
                );
            }
            vm_step = Some(last);
        }
        RestoreType::ReplaceDisks => {
            let mut deps = ready.clone();
            deps.extend(snapshot.as_deref());
            b.add(
                "swap".into(),
                SwapDisks,
                Action::Update,
                &t.vm_name,
                &deps,
                None,
                0,
                "swap the restored disks into the existing VM".into(),
            );
        }
        RestoreType::GuestFiles => {}
        _ => {
            b.add(
                "template".into(),
                Template,
                Action::Create,
                &format!("{}.template.json", t.vm_name),
                &ready,
                None,
                0,
                "ARM template that creates the VM from the restored disks".into(),
            );
        }
    }
    if let (Some(last), true) = (vm_step, in_place && d.has_step(DeleteExistingDisks)) {
        b.add(
            "delete-old-disks".into(),
            DeleteExistingDisks,
            Action::Delete,
            &format!("{} (replaced disks)", t.vm_name),
            &[&last],
            None,
            0,
            "delete the replaced VM's disks once the new VM runs".into(),
        );
    }
    order(b.steps, b.stage_idx)
}

fn source_label(d: &TargetDisk) -> String {
    match &d.volume_group {
        Some(vg) => format!("volume group '{vg}' of disk '{}'", d.source_disk),
        None => format!("source disk '{}'", d.source_disk),
    }
}

fn os_label(f: OsFamily) -> &'static str {
    match f {
        OsFamily::Windows => "Windows",
        OsFamily::Linux => "Linux",
    }
}

use crate::policy::human_bytes;

/// Sorts steps by stage (stable within a stage), keeps dependencies inside
/// a stage, and makes every step of a stage with no dependency inside it wait
/// for the sinks of the previous non-empty stage, so the graph follows the
/// profile's stage order with as few edges as possible.
fn order(steps: Vec<Step>, stage_idx: Vec<usize>) -> Vec<Step> {
    let mut paired: Vec<(usize, Step)> = stage_idx.into_iter().zip(steps).collect();
    paired.sort_by_key(|(st, _)| *st);
    let stage_by_id: HashMap<&str, usize> =
        paired.iter().map(|(st, s)| (s.id.as_str(), *st)).collect();
    // New dependency lists, computed before mutating so ids can be borrowed.
    let mut new_deps: Vec<Vec<String>> = Vec::with_capacity(paired.len());
    let mut prev_sinks: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < paired.len() {
        let stage = paired[i].0;
        let j = paired[i..]
            .iter()
            .position(|(st, _)| *st != stage)
            .map_or(paired.len(), |p| i + p);
        let mut used = std::collections::HashSet::new();
        for (_, s) in &paired[i..j] {
            let inside: Vec<String> = s
                .depends_on
                .iter()
                .filter(|d| stage_by_id.get(d.as_str()) == Some(&stage))
                .cloned()
                .collect();
            used.extend(inside.iter().cloned());
            let deps = if inside.is_empty() {
                prev_sinks.iter().map(|k| paired[*k].1.id.clone()).collect()
            } else {
                inside
            };
            new_deps.push(deps);
        }
        prev_sinks = (i..j)
            .filter(|k| !used.contains(&paired[*k].1.id))
            .collect();
        i = j;
    }
    paired
        .into_iter()
        .zip(new_deps)
        .map(|((_, mut s), deps)| {
            s.depends_on = deps;
            s
        })
        .collect()
}
