//! Building the step graph from the decisions (the target is seeded in
//! `seed.rs`).

use std::sync::Arc;

use super::*;
use crate::model::names::NameKind;
use crate::policy::{Stage, unsupported_steps};
use StepKind::*;

/// A deterministic staging account name (3-24 lowercase letters and digits),
/// one per restored VM: restores of several VMs into one resource group
/// each create, and clean up, their own.
fn default_staging_name(t: &Target) -> String {
    let digest = short_digest(
        format!(
            "{}/{}/{}/{}",
            t.subscription_id, t.resource_group, t.region, t.vm_name
        )
        .as_bytes(),
    );
    format!("vmrstage{digest}")
}

/// Whether the disks go through a staging storage account.
fn uses_staging(d: &Decisions) -> bool {
    d.has_step(StagingAccount) || d.target().disks_staged || d.target().staging_account.is_some()
}

/// Where the disks' bytes go, decided once: page blobs in the staging
/// account when the disks are unmanaged or are converted to managed ones
/// afterwards.
fn disks_staged(d: &Decisions) -> bool {
    !d.target().managed || d.has_step(ConvertToManaged)
}

/// Whether the profile's stages put the NSG after the VM.
fn nsg_after_vm(stages: &[Stage]) -> bool {
    let stage = |kind: StepKind| {
        stages
            .iter()
            .rposition(|s| s.steps.contains(&kind))
            .unwrap_or(stages.len().saturating_sub(1))
    };
    stage(NetworkSecurityGroup) > stage(VirtualMachine)
}

/// Collects steps; dependencies are indices into `steps` until `order`
/// turns them into IDs.
struct Builder<'s> {
    steps: Vec<Step>,
    /// Stage index and dependencies of each step, parallel to `steps`.
    meta: Vec<(usize, Vec<usize>)>,
    stage_of: [usize; StepKind::COUNT],
    stages: &'s [Stage],
    rules: &'s std::collections::BTreeMap<StepKind, Vec<Arc<str>>>,
    target: &'s Target,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        id: impl Into<Arc<str>>,
        kind: StepKind,
        action: Action,
        resource: Arc<str>,
        deps: &[usize],
        disk: Option<&Arc<str>>,
        bytes: u64,
        detail: String,
    ) -> usize {
        let stage = self.stage_of[kind as usize];
        self.meta.push((stage, deps.to_vec()));
        // Disk and NIC steps are made from the target's own disks and NICs,
        // so their operation is always found; the fallback (a read that
        // checks nothing) is never planned.
        let operation = super::operate::operation(self.target, kind, &resource, disk.map(|d| &**d));
        debug_assert!(
            operation.is_some(),
            "no operation for step {kind:?} {resource}"
        );
        let operation = operation.unwrap_or(super::Operation::VerifyRestorePoint {
            disks: Vec::new(),
            deep: false,
        });
        self.steps.push(Step {
            id: id.into(),
            kind,
            action,
            resource,
            stage: self
                .stages
                .get(stage)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| Arc::from("")),
            depends_on: Vec::new(),
            rule_ids: self.rules.get(&kind).cloned().unwrap_or_default(),
            disk: disk.cloned(),
            bytes,
            detail,
            operation,
        });
        self.steps.len() - 1
    }
}

/// Turns the decisions into a plan: the step graph, estimates and verdict.
pub(super) fn finish(
    ctx: &Ctx,
    mut d: Decisions,
    stages: &[Stage],
    profiles: &[Profile],
    fingerprint: Fingerprint,
    capabilities: Option<&Capabilities>,
) -> Plan {
    let mut blocked = d.is_blocked();
    let staged = disks_staged(&d);
    let nsg_late =
        matches!(d.nsg(), NsgPlan::CopySource(_) | NsgPlan::Create { .. }) && nsg_after_vm(stages);
    d.settle_layout(staged, nsg_late);
    // VMR-08: managed disks for upload are at least 20 MiB.
    crate::policy::grow_small_disks(ctx, &mut d);
    if !blocked && uses_staging(&d) && d.target().staging_account.is_none() {
        let name = default_staging_name(d.target());
        d.default_staging_account(name);
    }
    // VMR-06: every name the steps would use, checked before there are steps.
    crate::policy::check_names(ctx, &mut d);
    blocked = blocked || d.is_blocked();
    if ctx.req.restore_type == RestoreType::GuestFiles && !blocked {
        d.library_post(PostAction {
            rule_id: "VMR-05".into(),
            message: "copy the files you need from the restored disks, then delete the disks"
                .into(),
            source: "vmrestore (guest-file restores restore the disks)".into(),
        });
    }
    let mut steps = if blocked {
        Vec::new()
    } else {
        build_steps(ctx, &d, stages)
    };
    // VMR-07: every step must be one the cloud the plan is for can run.
    if let Some(caps) = capabilities
        && !steps.is_empty()
    {
        unsupported_steps(caps, &mut d, &steps);
        if d.is_blocked() {
            blocked = true;
            steps = Vec::new();
        }
    }

    let mut est = Estimates {
        disks: d.target().disks.len() as u32,
        bytes_to_move: d.target().disks.iter().map(|x| x.bytes_to_write).sum(),
        storage_bytes: d.target().disks.iter().map(|x| x.size_bytes).sum(),
        ..Default::default()
    };
    est.transfer_seconds = est.bytes_to_move.div_ceil(d.throughput().max(1));
    let out = d.into_outcome();
    for s in &steps {
        match (s.action, s.kind) {
            (Action::Create, _) => est.to_create += 1,
            (Action::Delete, _) => est.to_delete += 1,
            (Action::Update, WriteDisk | FinalizeDisk) | (Action::Read, _) => {}
            (Action::Update, _) => est.to_change += 1,
        }
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
        findings: out.findings,
        transformations: out.transformations,
        steps,
        post_actions: out.post_actions,
        estimates: est,
        target: out.target,
        rules_applied: out.rules_applied.into_iter().collect(),
        inputs: PlanInputs {
            request: ctx.req.clone(),
            profiles: profiles
                .iter()
                .map(|p| ProfileInput {
                    name: p.name.clone(),
                    rules: p.source.as_deref().map(str::to_string),
                })
                .collect(),
            capabilities: capabilities.cloned(),
        },
        seal: None,
    }
}

/// The step indices the later stages depend on.
struct Prelude {
    verify: usize,
    rg_deps: Vec<usize>,
    kv_access: Option<usize>,
    staging: Option<usize>,
    snapshot: Option<usize>,
}

fn build_steps(ctx: &Ctx, d: &Decisions, stages: &[Stage]) -> Vec<Step> {
    // Steps of a kind no stage lists go to the last stage.
    let mut stage_of = [stages.len().saturating_sub(1); StepKind::COUNT];
    for (i, s) in stages.iter().enumerate() {
        for k in &s.steps {
            stage_of[*k as usize] = i;
        }
    }
    let mut b = Builder {
        steps: Vec::with_capacity(12 + 3 * d.target().disks.len()),
        meta: Vec::with_capacity(12 + 3 * d.target().disks.len()),
        stage_of,
        stages,
        rules: d.step_rules(),
        target: d.target(),
    };
    let in_place = ctx.facts.in_place;
    let pre = b.prelude(d, ctx.req.restore_type, in_place);
    let mut disk_deps = pre.rg_deps.clone();
    disk_deps.extend(pre.staging);
    disk_deps.extend(pre.kv_access);
    let finals = b.disks(&disk_deps, pre.verify);
    let ready = b.prepare(d, finals);
    let t = d.target();
    // The point of no return (in place): the existing VM is deleted only
    // once every new disk is written, verified and ready, right before the
    // new VM that takes its name. A failure before it leaves the existing
    // VM as it was; after it, the executor rolls forward (or puts the old
    // VM back from its kept disks) and never cleans up the new disks.
    let delete_vm = (in_place && d.has_step(DeleteExistingVm)).then(|| {
        b.add(
            "delete-vm",
            DeleteExistingVm,
            Action::Delete,
            Arc::from(t.vm_name.as_str()),
            &ready,
            None,
            0,
            "delete the existing VM once every new disk is written and verified (the point of no return); its disks are kept until the new VM runs".into(),
        )
    });
    let vm_step = match ctx.req.restore_type {
        RestoreType::FullVm if t.create_vm => {
            let mut deps = ready;
            deps.extend(pre.kv_access);
            deps.extend(delete_vm);
            Some(b.virtual_machine(d, &pre.rg_deps, deps))
        }
        RestoreType::GuestFiles => None,
        RestoreType::ReplaceDisks => {
            let mut deps = ready;
            deps.extend(pre.snapshot);
            b.add(
                "swap",
                SwapDisks,
                Action::Update,
                Arc::from(t.vm_name.as_str()),
                &deps,
                None,
                0,
                "swap the restored disks into the existing VM".into(),
            );
            None
        }
        _ => {
            b.add(
                "template",
                Template,
                Action::Create,
                Arc::from(format!("{}.template.json", t.vm_name)),
                &ready,
                None,
                0,
                "ARM template that creates the VM from the restored disks".into(),
            );
            None
        }
    };
    if let (Some(last), true) = (vm_step, in_place && d.has_step(DeleteExistingDisks)) {
        b.add(
            "delete-old-disks",
            DeleteExistingDisks,
            Action::Delete,
            Arc::from(format!("{} (replaced disks)", t.vm_name)),
            &[last],
            None,
            0,
            "delete the replaced VM's disks once the new VM runs".into(),
        );
    }
    let mut steps = order(b.steps, b.meta, stages);
    // Deleting an existing VM needs the data known good first: every chunk
    // is read and hashed before anything is deleted.
    let deep = steps.iter().any(|s| s.kind == DeleteExistingVm);
    for s in &mut steps {
        if let super::Operation::VerifyRestorePoint { deep: d, .. } = &mut s.operation {
            *d = deep;
        }
    }
    steps
}

impl Builder<'_> {
    /// What comes before the disks: the restore point's check, the
    /// resource group, the key vault and its access, the staging account,
    /// the helper appliance and the snapshot of the disks to be replaced.
    fn prelude(&mut self, d: &Decisions, rt: RestoreType, in_place: bool) -> Prelude {
        let t = self.target;
        let arc = |s: &str| -> Arc<str> { Arc::from(s) };
        let verify = self.add(
            "verify",
            VerifyRestorePoint,
            Action::Read,
            arc(&t.restore_point_id),
            &[],
            None,
            0,
            "check that every chunk of the restore point is present and readable".into(),
        );
        let rg = (!in_place).then(|| {
            self.add(
                "rg",
                ResourceGroup,
                Action::Create,
                arc(&t.resource_group),
                &[],
                None,
                0,
                format!("in {} ({})", t.region, t.subscription_id),
            )
        });
        let rg_deps: Vec<usize> = rg.into_iter().collect();
        let kv = d.has_step(KeyVault).then(|| {
            let detail = if d.creates_key_vault() {
                format!("new key vault in {}", t.region)
            } else {
                "restore keys and secrets".into()
            };
            self.add(
                "kv",
                KeyVault,
                Action::Create,
                arc(t.key_vault.as_deref().unwrap_or_default()),
                &rg_deps,
                None,
                0,
                detail,
            )
        });
        let kv_access = d.has_step(KeyVaultAccess).then(|| {
            let deps: Vec<usize> = kv.into_iter().chain(rg_deps.iter().copied()).collect();
            self.add(
                "kv-access",
                KeyVaultAccess,
                Action::Update,
                arc(t.key_vault.as_deref().unwrap_or_default()),
                &deps,
                None,
                0,
                "grant the application's service principal access to keys and secrets (nobody else)"
                    .into(),
            )
        });
        let staging = uses_staging(d).then(|| {
            self.add(
                "staging",
                StagingAccount,
                Action::Create,
                arc(t.staging_account.as_deref().unwrap_or_default()),
                &rg_deps,
                None,
                0,
                "staging storage account for the disk data".into(),
            )
        });
        if d.has_step(HelperAppliance) {
            self.add(
                "helper",
                HelperAppliance,
                Action::Create,
                Arc::from(NameKind::VirtualMachine.fit(&format!("vmrestore-helper-{}", t.region))),
                &rg_deps,
                None,
                0,
                "helper appliance (left powered off after the restore)".into(),
            );
        }
        let snapshot =
            (rt == RestoreType::ReplaceDisks && d.has_step(SnapshotExistingDisks)).then(|| {
                self.add(
                    "snapshot-existing",
                    SnapshotExistingDisks,
                    Action::Create,
                    arc(&t.vm_name),
                    &[verify],
                    None,
                    0,
                    "snapshot the existing VM's disks before the swap".into(),
                )
            });
        Prelude {
            verify,
            rg_deps,
            kv_access,
            staging,
            snapshot,
        }
    }

    /// Create, write and finalize each disk; returns the finalize steps.
    fn disks(&mut self, deps: &[usize], verify: usize) -> Vec<usize> {
        let t = self.target;
        let kind = if !t.disks_staged {
            "managed disk for upload"
        } else {
            "page blob in the staging account"
        };
        let mut finals = Vec::with_capacity(t.disks.len());
        for disk in &t.disks {
            let name: Arc<str> = Arc::from(disk.name.as_str());
            let create = self.add(
                format!("disk:{}", disk.name),
                CreateDisk,
                Action::Create,
                name.clone(),
                deps,
                Some(&name),
                0,
                format!(
                    "{} {kind}, {}",
                    human_bytes(disk.size_bytes),
                    disk.sku.arm_name()
                ),
            );
            let write = self.add(
                format!("write:{}", disk.name),
                WriteDisk,
                Action::Update,
                name.clone(),
                &[create, verify],
                Some(&name),
                disk.bytes_to_write,
                format!(
                    "write {} from {}",
                    human_bytes(disk.bytes_to_write),
                    source_label(disk)
                ),
            );
            finals.push(self.add(
                format!("finalize:{}", disk.name),
                FinalizeDisk,
                Action::Update,
                name.clone(),
                &[write],
                Some(&name),
                0,
                "verify the disk digest, write the footer, end write access".into(),
            ));
        }
        finals
    }

    /// What the written disks go through before a VM can use them: the boot
    /// fix and the conversion to managed disks. Returns the steps a VM, a
    /// swap or a template waits for.
    fn prepare(&mut self, d: &Decisions, mut ready: Vec<usize>) -> Vec<usize> {
        let t = self.target;
        if d.has_step(BootFix) {
            ready = vec![self.add(
                "boot-fix",
                BootFix,
                Action::Update,
                Arc::from(t.vm_name.as_str()),
                &ready,
                None,
                0,
                "mount the disks, fix the boot configuration, unmount".into(),
            )];
        }
        if d.has_step(ConvertToManaged) && t.managed {
            ready = vec![self.add(
                "convert",
                ConvertToManaged,
                Action::Update,
                Arc::from(t.vm_name.as_str()),
                &ready,
                None,
                0,
                "create the VM's disks as unmanaged from the staging account, then convert them to managed".into(),
            )];
        }
        ready
    }

    /// The network security group, public IPs, NICs, the VM and its power
    /// on; returns the last of them.
    fn virtual_machine(&mut self, d: &Decisions, rg_deps: &[usize], mut deps: Vec<usize>) -> usize {
        let t = self.target;
        let vm_name: Arc<str> = Arc::from(t.vm_name.as_str());
        let nsg = match d.nsg() {
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
        let nsg_late = nsg.is_some() && t.nsg_after_vm;
        let nsg_step = match (&nsg, nsg_late) {
            (Some((name, detail)), false) => Some(self.add(
                "nsg",
                NetworkSecurityGroup,
                Action::Create,
                Arc::from(name.as_str()),
                rg_deps,
                None,
                0,
                detail.clone(),
            )),
            _ => None,
        };
        deps.extend(self.nics(rg_deps, nsg_step));
        let zone = t
            .zone
            .map_or("no zone".to_string(), |z| format!("zone {z}"));
        let vm = self.add(
            "vm",
            VirtualMachine,
            Action::Create,
            vm_name.clone(),
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
        let mut last = vm;
        if t.power_on {
            last = self.add(
                "power-on",
                PowerOn,
                Action::Update,
                vm_name,
                &[vm],
                None,
                0,
                "start the VM".into(),
            );
        }
        if let (Some((name, detail)), true) = (&nsg, nsg_late) {
            last = self.add(
                "nsg",
                NetworkSecurityGroup,
                Action::Create,
                Arc::from(name.as_str()),
                &[last],
                None,
                0,
                format!("{detail}, attached to the VM's NICs"),
            );
        }
        last
    }

    /// A public IP where a NIC has one, and each NIC; returns the NICs.
    fn nics(&mut self, rg_deps: &[usize], nsg_step: Option<usize>) -> Vec<usize> {
        let t = self.target;
        let mut nic_ids = Vec::with_capacity(t.nics.len());
        for (i, nic) in t.nics.iter().enumerate() {
            let mut deps: Vec<usize> = rg_deps.to_vec();
            deps.extend(nsg_step);
            if let Some(p) = &nic.public_ip {
                deps.push(self.add(
                    format!("pip:{i}"),
                    PublicIp,
                    Action::Create,
                    Arc::from(p.as_str()),
                    rg_deps,
                    None,
                    0,
                    "public IP".into(),
                ));
            }
            let ip = nic
                .static_ip
                .as_deref()
                .map_or("dynamic IP".to_string(), |a| format!("static IP {a}"));
            nic_ids.push(self.add(
                format!("nic:{i}"),
                NetworkInterface,
                Action::Create,
                Arc::from(nic.name.as_str()),
                &deps,
                None,
                0,
                format!("{}/{}, {ip}", nic.virtual_network, nic.subnet),
            ));
        }
        nic_ids
    }
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

use crate::units::human_bytes;

/// Sorts steps by stage (stable within a stage), keeps dependencies inside
/// a stage, and makes every step of a stage with no dependency inside it wait
/// for the sinks of the previous non-empty stage, so the graph follows the
/// profile's stage order with as few edges as possible.
fn order(mut steps: Vec<Step>, mut meta: Vec<(usize, Vec<usize>)>, stages: &[Stage]) -> Vec<Step> {
    // A step that depends on a step of a later stage moves to that stage
    // (steps are added after their dependencies, so one pass suffices).
    for k in 0..meta.len() {
        let latest = meta[k].1.iter().map(|d| meta[*d].0).max().unwrap_or(0);
        if latest > meta[k].0 {
            meta[k].0 = latest;
            if let Some(st) = stages.get(latest) {
                steps[k].stage = st.name.clone();
            }
        }
    }
    let mut perm: Vec<usize> = (0..steps.len()).collect();
    perm.sort_by_key(|i| meta[*i].0);
    let mut used = vec![false; steps.len()];
    let mut prev_sinks: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < perm.len() {
        let stage = meta[perm[i]].0;
        let j = perm[i..]
            .iter()
            .position(|k| meta[*k].0 != stage)
            .map_or(perm.len(), |p| i + p);
        for &k in &perm[i..j] {
            let deps = &meta[k].1;
            let inside = deps.iter().filter(|d| meta[**d].0 == stage).count();
            let ids: Vec<Arc<str>> = if inside == 0 {
                prev_sinks.iter().map(|d| steps[*d].id.clone()).collect()
            } else {
                deps.iter()
                    .filter(|d| meta[**d].0 == stage)
                    .map(|d| {
                        used[*d] = true;
                        steps[*d].id.clone()
                    })
                    .collect()
            };
            steps[k].depends_on = ids;
        }
        prev_sinks.clear();
        prev_sinks.extend(perm[i..j].iter().copied().filter(|k| !used[*k]));
        i = j;
    }
    if perm.windows(2).all(|w| w[0] < w[1]) {
        return steps;
    }
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    perm.iter().filter_map(|&k| slots[k].take()).collect()
}
