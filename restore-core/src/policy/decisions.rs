//! The outcome accumulator rules write to, and the fixed vocabulary of
//! transformations and step changes.
//!
//! The planner seeds a [`Decisions`] with the target as requested; rules then
//! add findings and change the target only through the methods here, so that
//! every change is recorded with the rule that made it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Ctx, Rule};
use crate::model::*;
use crate::plan::types::*;
use crate::units::{disk_name, round_up_mib};

/// What happens about the network security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NsgPlan {
    /// No NSG.
    None,
    /// Attach an NSG that exists (the request named it).
    Existing(String),
    /// Configure an NSG of the source's name (Commvault CV-15).
    CopySource(String),
    /// Create a new NSG opening these ports (Veeam VE-20).
    Create { name: String, ports: Vec<u16> },
}

/// The fields are private: rules read the target through [`Decisions::target`]
/// and change it only through the methods below, which record each change
/// as a [`Transformation`] with the rule that made it.
pub(crate) struct Decisions {
    findings: Vec<Finding>,
    transformations: Vec<Transformation>,
    post_actions: Vec<PostAction>,
    rules_applied: BTreeSet<String>,
    /// Optional steps requested, with the rules that asked for them; rule IDs
    /// listed for default steps are attached to those steps.
    steps: BTreeMap<StepKind, Vec<std::sync::Arc<str>>>,
    target: Target,
    zone_decided: bool,
    nsg: NsgPlan,
    /// Create the key vault (else: restore into an existing/named vault).
    create_key_vault: bool,
    /// Expected transfer rate in bytes per second.
    throughput: u64,
}

/// What the planner takes out of [`Decisions`] once the rules have run.
pub(crate) struct Outcome {
    pub findings: Vec<Finding>,
    pub transformations: Vec<Transformation>,
    pub post_actions: Vec<PostAction>,
    pub rules_applied: BTreeSet<String>,
    pub target: Target,
}

impl Decisions {
    /// Seeds the decisions with the target as requested; an NSG the request
    /// names is attached as it is.
    pub fn new(mut target: Target, nsg: NsgPlan) -> Self {
        if let NsgPlan::Existing(n) = &nsg {
            target.network_security_group = Some(n.clone());
        }
        Decisions {
            findings: Vec::new(),
            transformations: Vec::new(),
            post_actions: Vec::new(),
            rules_applied: BTreeSet::new(),
            steps: BTreeMap::new(),
            target,
            zone_decided: false,
            nsg,
            create_key_vault: false,
            throughput: 100 << 20,
        }
    }

    // --- reading ----------------------------------------------------------

    /// The target as the rules so far left it.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The findings so far.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Whether a transformation of `kind` was recorded.
    pub fn has_transformation(&self, kind: TransformKind) -> bool {
        self.transformations.iter().any(|t| t.kind == kind)
    }

    /// Whether the rule `id` produced an outcome.
    pub fn applied(&self, id: &str) -> bool {
        self.rules_applied.contains(id)
    }

    /// Whether a rule already settled the zone.
    pub fn zone_decided(&self) -> bool {
        self.zone_decided
    }

    /// What happens about the network security group.
    pub fn nsg(&self) -> &NsgPlan {
        &self.nsg
    }

    /// Whether a new key vault is created at the destination.
    pub fn creates_key_vault(&self) -> bool {
        self.create_key_vault
    }

    /// Expected transfer rate in bytes per second.
    pub fn throughput(&self) -> u64 {
        self.throughput
    }

    /// Steps asked for, with the rules that asked.
    pub fn step_rules(&self) -> &BTreeMap<StepKind, Vec<std::sync::Arc<str>>> {
        &self.steps
    }

    // --- what is not a change of the VM ---------------------------------

    /// The zone is settled as it is (nothing to change, or the rule blocks).
    pub fn settle_zone(&mut self) {
        self.zone_decided = true;
    }

    /// The source's zone `zone` is kept: no transformation.
    pub fn keep_source_zone(&mut self, zone: u8) {
        self.zone_decided = true;
        self.target.zone = Some(zone);
    }

    /// The transfer is expected to run at `bytes_per_second`.
    pub fn expect_throughput(&mut self, bytes_per_second: u64) {
        self.throughput = bytes_per_second;
    }

    /// The keys and secrets are restored into the source's vault, `name`, at
    /// the destination: the vault the VM used, so no transformation.
    pub fn restore_into_source_vault(&mut self, name: &str) {
        self.target.key_vault = Some(name.to_string());
    }

    /// The source's NSG, `name`, is configured again for the restored VM:
    /// the NSG the VM had, so no transformation.
    pub fn copy_source_nsg(&mut self, rule: &Rule, name: &str) {
        self.nsg = NsgPlan::CopySource(name.to_string());
        self.target.network_security_group = Some(name.to_string());
        self.step(rule, StepKind::NetworkSecurityGroup);
    }

    /// Execution details the planner derives after the rules ran (where the
    /// disks' bytes go, when the NSG is made): not changes of the VM.
    pub fn settle_layout(&mut self, disks_staged: bool, nsg_after_vm: bool) {
        self.target.disks_staged = disks_staged;
        self.target.nsg_after_vm = nsg_after_vm;
    }

    /// The staging account the planner names when no request or rule did.
    pub fn default_staging_account(&mut self, name: String) {
        self.target.staging_account.get_or_insert(name);
    }

    /// A post-action of the library itself (no [`Rule`] behind it).
    pub fn library_post(&mut self, action: PostAction) {
        self.rules_applied.insert(action.rule_id.clone());
        self.post_actions.push(action);
    }

    /// Takes the outcome out, the target as the rules left it.
    pub fn into_outcome(self) -> Outcome {
        Outcome {
            findings: self.findings,
            transformations: self.transformations,
            post_actions: self.post_actions,
            rules_applied: self.rules_applied,
            target: self.target,
        }
    }

    fn finding(
        &mut self,
        rule: &Rule,
        severity: Severity,
        kind: OutcomeKind,
        path: &str,
        message: String,
    ) {
        self.rules_applied.insert(rule.id.clone());
        self.findings.push(Finding {
            rule_id: rule.id.clone(),
            severity,
            kind,
            message,
            source: rule.source.clone(),
            path: path.to_string(),
        });
    }

    /// The restore cannot run as requested.
    pub fn block(&mut self, rule: &Rule, path: &str, message: impl Into<String>) {
        self.finding(
            rule,
            Severity::Block,
            OutcomeKind::Block,
            path,
            message.into(),
        );
    }

    /// The restore runs but the user should know.
    pub fn warn(&mut self, rule: &Rule, path: &str, message: impl Into<String>) {
        self.finding(
            rule,
            Severity::Warning,
            OutcomeKind::Warn,
            path,
            message.into(),
        );
    }

    /// Information (a rule that confirms something is supported).
    pub fn info(&mut self, rule: &Rule, path: &str, message: impl Into<String>) {
        self.finding(
            rule,
            Severity::Info,
            OutcomeKind::Info,
            path,
            message.into(),
        );
    }

    /// Something to do after the restore.
    pub fn post(&mut self, rule: &Rule, message: impl Into<String>) {
        self.rules_applied.insert(rule.id.clone());
        let message = message.into();
        if !self
            .post_actions
            .iter()
            .any(|p| p.rule_id == rule.id && p.message == message)
        {
            self.post_actions.push(PostAction {
                rule_id: rule.id.clone(),
                message,
                source: rule.source.clone(),
            });
        }
    }

    /// Adds a step of `kind` (or marks an existing one) as caused by `rule`.
    pub fn step(&mut self, rule: &Rule, kind: StepKind) {
        self.rules_applied.insert(rule.id.clone());
        let ids = self.steps.entry(kind).or_default();
        if !ids.iter().any(|i| **i == *rule.id) {
            ids.push(std::sync::Arc::from(rule.id.as_str()));
        }
    }

    pub fn has_step(&self, kind: StepKind) -> bool {
        self.steps.contains_key(&kind)
    }

    fn transform(
        &mut self,
        rule: &Rule,
        kind: TransformKind,
        path: &str,
        before: Value,
        after: Value,
        message: String,
    ) {
        self.rules_applied.insert(rule.id.clone());
        self.transformations.push(Transformation {
            rule_id: rule.id.clone(),
            kind,
            path: path.to_string(),
            before,
            after,
            message,
        });
    }

    /// Data disks the restored VM will have (after splits and omissions).
    pub fn data_disk_count(&self) -> u32 {
        self.target
            .disks
            .iter()
            .filter(|x| x.role == DiskRole::Data)
            .count() as u32
    }

    /// Blocks when the target VM size (if the catalog knows it) takes fewer
    /// data disks than the restore needs.
    pub fn block_if_size_too_small(&mut self, rule: &Rule, ctx: &Ctx) {
        let data = self.data_disk_count();
        if let Some(s) = ctx.cat.sizes.get(self.target.vm_size.as_str())
            && s.max_data_disks < data
        {
            let message = format!(
                "VM size '{}' supports {} data disks; the restore needs {data}",
                s.name, s.max_data_disks
            );
            self.block(rule, "$.request.destination.vm_size", message);
        }
    }

    pub fn is_blocked(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Block)
    }

    // --- the transformation vocabulary -----------------------------------

    /// Removes the availability zone.
    pub fn drop_zone(&mut self, rule: &Rule, message: impl Into<String>) {
        self.zone_decided = true;
        if let Some(z) = self.target.zone.take() {
            self.transform(
                rule,
                TransformKind::DropZone,
                "$.restore_point.vm.zone",
                json!(z),
                Value::Null,
                message.into(),
            );
        }
    }

    /// Removes the zone, recording the source's (`source`) as the one
    /// dropped when the target was seeded without it.
    pub fn drop_source_zone(
        &mut self,
        rule: &Rule,
        source: Option<u8>,
        message: impl Into<String>,
    ) {
        self.target.zone = self.target.zone.or(source);
        self.drop_zone(rule, message);
    }

    /// Places the VM in `zone`.
    pub fn set_zone(
        &mut self,
        rule: &Rule,
        source: Option<u8>,
        zone: u8,
        message: impl Into<String>,
    ) {
        self.zone_decided = true;
        self.target.zone = Some(zone);
        if source != Some(zone) {
            self.transform(
                rule,
                TransformKind::ChangeZone,
                "$.request.destination.zone",
                json!(source),
                json!(zone),
                message.into(),
            );
        }
    }

    /// Removes the availability set.
    pub fn drop_availability_set(
        &mut self,
        rule: &Rule,
        source: &Option<String>,
        message: impl Into<String>,
    ) {
        if source.is_some() || self.target.availability_set.is_some() {
            let before = self
                .target
                .availability_set
                .take()
                .or_else(|| source.clone());
            self.transform(
                rule,
                TransformKind::DropAvailabilitySet,
                "$.restore_point.vm.availability_set",
                json!(before),
                Value::Null,
                message.into(),
            );
        }
    }

    /// A UEFI system becomes a BIOS Generation 1 VM.
    pub fn efi_to_bios(&mut self, rule: &Rule, message: impl Into<String>) {
        let before =
            json!({"generation": self.target.generation, "firmware": self.target.firmware});
        self.target.generation = Generation::Gen1;
        self.target.firmware = Firmware::Bios;
        self.transform(
            rule,
            TransformKind::EfiToBios,
            "$.restore_point.vm.firmware",
            before,
            json!({"generation": "gen1", "firmware": "bios"}),
            message.into(),
        );
    }

    /// The VM becomes a `generation` VM with `firmware` (recorded only when
    /// that differs from the target so far).
    pub fn set_generation(
        &mut self,
        rule: &Rule,
        generation: Generation,
        firmware: Firmware,
        message: impl Into<String>,
    ) {
        if self.target.generation == generation && self.target.firmware == firmware {
            return;
        }
        let before =
            json!({"generation": self.target.generation, "firmware": self.target.firmware});
        self.target.generation = generation;
        self.target.firmware = firmware;
        self.transform(
            rule,
            TransformKind::ChangeGeneration,
            "$.restore_point.vm.generation",
            before,
            json!({"generation": generation, "firmware": firmware}),
            message.into(),
        );
    }

    /// The system disk's GPT becomes MBR.
    pub fn gpt_to_mbr(&mut self, rule: &Rule, path: &str, message: impl Into<String>) {
        self.transform(
            rule,
            TransformKind::GptToMbr,
            path,
            json!("gpt"),
            json!("mbr"),
            message.into(),
        );
    }

    /// Each LVM volume group becomes an extra data disk (the original disks stay).
    pub fn split_lvm(&mut self, rule: &Rule, ctx: &Ctx) {
        let mut next_lun = self.next_lun();
        for (i, d) in ctx.vm.disks.iter().enumerate() {
            for (j, vg) in d.lvm_volume_groups.iter().enumerate() {
                let name = disk_name(&self.target.vm_name, &format!("{}-{}", d.name, vg.name));
                // Split once (VE-04 and a custom rule may both ask). A name
                // taken by another disk is left for VMR-06 to block.
                if self.target.disks.iter().any(|t| {
                    t.source_disk == d.name && t.volume_group.as_deref() == Some(vg.name.as_str())
                }) {
                    continue;
                }
                let sku = self
                    .target
                    .disks
                    .iter()
                    .find(|t| t.source_disk == d.name)
                    .map_or(d.sku, |t| t.sku);
                self.target.disks.push(TargetDisk {
                    name: name.clone(),
                    source_disk: d.name.clone(),
                    volume_group: Some(vg.name.clone()),
                    role: DiskRole::Data,
                    lun: Some(next_lun),
                    size_bytes: round_up_mib(vg.size_bytes),
                    bytes_to_write: vg.size_bytes,
                    sku,
                    disk_encryption_set: None,
                });
                self.transform(
                    rule,
                    TransformKind::SplitLvm,
                    &format!("$.restore_point.vm.disks[{i}].lvm_volume_groups[{j}]"),
                    json!({"disk": d.name, "volume_group": vg.name}),
                    json!({"extra_disk": name, "lun": next_lun, "size_bytes": round_up_mib(vg.size_bytes)}),
                    format!("volume group '{}' on disk '{}' is restored as a separate disk '{name}' (LUN {next_lun})", vg.name, d.name),
                );
                next_lun += 1;
            }
        }
    }

    fn next_lun(&self) -> u32 {
        self.target
            .disks
            .iter()
            .filter_map(|d| d.lun)
            .max()
            .map_or(0, |l| l + 1)
    }

    /// Static private IPs become dynamic.
    pub fn static_to_dynamic(&mut self, rule: &Rule, message: &str) {
        let mut changed = Vec::new();
        for (i, n) in self.target.nics.iter_mut().enumerate() {
            if let Some(ip) = n.static_ip.take() {
                changed.push((i, ip));
            }
        }
        for (i, ip) in changed {
            self.transform(
                rule,
                TransformKind::StaticToDynamicIp,
                &format!("$.restore_point.vm.nics[{i}].private_ip"),
                json!(ip),
                json!("dynamic"),
                message.to_string(),
            );
        }
    }

    /// A Spot VM becomes a regular VM.
    pub fn spot_to_regular(&mut self, rule: &Rule, message: impl Into<String>) {
        self.transform(
            rule,
            TransformKind::SpotToRegular,
            "$.restore_point.vm.spot",
            json!(true),
            json!(false),
            message.into(),
        );
    }

    /// Restores disks and a template instead of creating the VM.
    pub fn restore_disks_instead(&mut self, rule: &Rule, message: impl Into<String>) {
        if self.target.create_vm {
            self.target.create_vm = false;
            self.target.power_on = false;
            self.transform(
                rule,
                TransformKind::RestoreDisksInstead,
                "$.request.restore_type",
                json!("full_vm"),
                json!("restore_disks"),
                message.into(),
            );
        }
        self.step(rule, StepKind::Template);
    }

    /// The restored disks do not get the source's disk encryption set.
    pub fn drop_cmk(&mut self, rule: &Rule, message: impl Into<String>) {
        let mut any = None;
        for d in &mut self.target.disks {
            if let Some(des) = d.disk_encryption_set.take() {
                any = Some(des);
            }
        }
        if let Some(des) = any {
            self.transform(
                rule,
                TransformKind::DropCustomerManagedKeys,
                "$.restore_point.vm.disks",
                json!(des),
                Value::Null,
                message.into(),
            );
        }
    }

    /// A disk is left out of the restore.
    pub fn omit_disk(
        &mut self,
        rule: &Rule,
        index: usize,
        source: &Disk,
        message: impl Into<String>,
    ) {
        let before = self.target.disks.len();
        self.target.disks.retain(|t| t.source_disk != source.name);
        if self.target.disks.len() != before {
            self.transform(
                rule,
                TransformKind::OmitDisk,
                &format!("$.restore_point.vm.disks[{index}]"),
                json!(source.name),
                Value::Null,
                message.into(),
            );
        }
    }

    /// Only the first virtual network's NICs are kept.
    pub fn keep_first_vnet(&mut self, rule: &Rule, message: impl Into<String>) {
        let Some(first) = self.target.nics.first().map(|n| n.virtual_network.clone()) else {
            return;
        };
        let dropped: Vec<String> = self
            .target
            .nics
            .iter()
            .filter(|n| n.virtual_network != first)
            .map(|n| n.virtual_network.clone())
            .collect();
        if !dropped.is_empty() {
            self.target.nics.retain(|n| n.virtual_network == first);
            self.transform(
                rule,
                TransformKind::KeepFirstVirtualNetwork,
                "$.restore_point.vm.nics",
                json!(dropped),
                json!(first),
                message.into(),
            );
        }
    }

    /// The failover-cluster node becomes its own VM; shared disks become regular.
    pub fn cluster_to_vm(&mut self, rule: &Rule, ctx: &Ctx, message: impl Into<String>) {
        let shared: Vec<&str> = ctx
            .vm
            .disks
            .iter()
            .filter(|d| d.shared)
            .map(|d| d.name.as_str())
            .collect();
        self.transform(
            rule,
            TransformKind::ClusterNodeToVm,
            "$.restore_point.vm.failover_cluster_node",
            json!({"cluster_node": true, "shared_disks": shared}),
            json!({"cluster_node": false, "shared_disks": []}),
            message.into(),
        );
    }

    /// The VM gets `size`.
    pub fn set_vm_size(&mut self, rule: &Rule, size: &str, message: impl Into<String>) {
        if self.target.vm_size != size {
            let before = std::mem::replace(&mut self.target.vm_size, size.to_string());
            self.transform(
                rule,
                TransformKind::ChangeVmSize,
                "$.request.destination.vm_size",
                json!(before),
                json!(size),
                message.into(),
            );
        }
    }

    /// The VM goes to another region (Azure Backup's paired-region restore).
    pub fn paired_region(&mut self, rule: &Rule, region: &str, message: impl Into<String>) {
        let before = std::mem::replace(&mut self.target.region, region.to_string());
        self.transform(
            rule,
            TransformKind::PairedRegion,
            "$.request.destination.region",
            json!(before),
            json!(region),
            message.into(),
        );
    }

    /// A new key vault is created at the destination.
    pub fn new_key_vault(
        &mut self,
        rule: &Rule,
        source: &str,
        name: &str,
        message: impl Into<String>,
    ) {
        self.create_key_vault = true;
        self.target.key_vault = Some(name.to_string());
        self.step(rule, StepKind::KeyVault);
        self.transform(
            rule,
            TransformKind::NewKeyVault,
            "$.restore_point.key_vaults",
            json!(source),
            json!(name),
            message.into(),
        );
    }

    /// A new NSG `name` opening `ports` replaces the source's (`source`).
    pub fn new_nsg(
        &mut self,
        rule: &Rule,
        source: &Option<String>,
        name: &str,
        ports: Vec<u16>,
        message: impl Into<String>,
    ) {
        self.target.network_security_group = Some(name.to_string());
        self.target.nsg_open_ports = ports.clone();
        self.step(rule, StepKind::NetworkSecurityGroup);
        self.transform(
            rule,
            TransformKind::NewNetworkSecurityGroup,
            "$.restore_point.vm.network_security_group",
            json!(source),
            json!({"name": name, "open_ports": ports}),
            message.into(),
        );
        self.nsg = NsgPlan::Create {
            name: name.to_string(),
            ports,
        };
    }

    /// Public IPs are not restored.
    pub fn drop_public_ip(&mut self, rule: &Rule, message: impl Into<String>) {
        let mut dropped = Vec::new();
        for n in &mut self.target.nics {
            if let Some(p) = n.public_ip.take() {
                dropped.push(p);
            }
        }
        if !dropped.is_empty() {
            self.transform(
                rule,
                TransformKind::DropPublicIp,
                "$.restore_point.vm.nics",
                json!(dropped),
                Value::Null,
                message.into(),
            );
        }
    }

    /// Grows every disk smaller than `min` bytes to `min` (the data is
    /// written as it is; the rest of the disk reads as zeros).
    pub fn grow_disks_to(&mut self, rule: &Rule, ctx: &Ctx, min: u64) {
        let mut grown = Vec::new();
        for disk in &mut self.target.disks {
            if disk.size_bytes < min {
                grown.push((disk.source_disk.clone(), disk.name.clone(), disk.size_bytes));
                disk.size_bytes = min;
            }
        }
        for (source, name, before) in grown {
            let path = match ctx.vm.disks.iter().position(|d| d.name == source) {
                Some(i) => format!("$.restore_point.vm.disks[{i}].size_bytes"),
                None => "$.restore_point.vm.disks".to_string(),
            };
            self.transform(
                rule,
                TransformKind::GrowDisk,
                &path,
                json!({ "disk": name, "size_bytes": before }),
                json!({ "disk": name, "size_bytes": min }),
                format!(
                    "disk '{name}' of {before} bytes is restored as a disk of {min} bytes ({} MiB): the smallest managed disk Azure takes for upload; the space after the data reads as zeros",
                    min >> 20
                ),
            );
        }
    }

    /// Applies a transformation named by a custom rule.
    pub fn apply_named(&mut self, kind: TransformKind, rule: &Rule, ctx: &Ctx, message: &str) {
        match kind {
            TransformKind::DropZone => self.drop_zone(rule, message),
            TransformKind::DropAvailabilitySet => {
                self.drop_availability_set(rule, &ctx.vm.availability_set, message)
            }
            TransformKind::EfiToBios => self.efi_to_bios(rule, message),
            TransformKind::GptToMbr => self.gpt_to_mbr(rule, "$.restore_point.vm.disks", message),
            TransformKind::SplitLvm => self.split_lvm(rule, ctx),
            TransformKind::StaticToDynamicIp => self.static_to_dynamic(rule, message),
            TransformKind::SpotToRegular => self.spot_to_regular(rule, message),
            TransformKind::RestoreDisksInstead => self.restore_disks_instead(rule, message),
            TransformKind::DropCustomerManagedKeys => self.drop_cmk(rule, message),
            TransformKind::ClusterNodeToVm => self.cluster_to_vm(rule, ctx, message),
            TransformKind::KeepFirstVirtualNetwork => self.keep_first_vnet(rule, message),
            TransformKind::DropPublicIp => self.drop_public_ip(rule, message),
            TransformKind::PairedRegion => {
                if let Some(p) = ctx.facts.source_paired_region.clone() {
                    self.paired_region(rule, &p, message)
                }
            }
            // These need an argument a custom rule cannot give; the loader
            // rejects them.
            other => debug_assert!(other.needs_argument(), "{other:?}"),
        }
    }
}
