//! Creates: names, regions, sizes and uniqueness checked as Azure checks them.

use super::*;
use crate::model::names::{NameKind, check_name_or_id};
use crate::units::MIN_UPLOAD_DISK;
use state::{SimDisk, State};

/// Largest disk.
const MAX_DISK: u64 = 32 << 40;

impl SimCloud {
    /// The rule of a spec's name (a snapshot's is its VM's name).
    fn name_kind(spec: &ResourceSpec) -> NameKind {
        match spec {
            ResourceSpec::ResourceGroup { .. } => NameKind::ResourceGroup,
            ResourceSpec::KeyVault { .. } => NameKind::KeyVault,
            ResourceSpec::StorageAccount { .. } => NameKind::StorageAccount,
            ResourceSpec::HelperAppliance { .. }
            | ResourceSpec::Snapshot { .. }
            | ResourceSpec::VirtualMachine { .. } => NameKind::VirtualMachine,
            ResourceSpec::Disk { .. } => NameKind::Disk,
            ResourceSpec::NetworkSecurityGroup { .. } => NameKind::NetworkSecurityGroup,
            ResourceSpec::PublicIp { .. } => NameKind::PublicIp,
            ResourceSpec::NetworkInterface { .. } => NameKind::NetworkInterface,
        }
    }

    /// What Azure checks of a create before looking at what exists: the
    /// names (the crate's naming rules, `model::names`), the region and
    /// the VM size against the catalog.
    pub(super) fn check_spec(&self, spec: &ResourceSpec, op: &str) -> CallResult<()> {
        let invalid = |m: String| CallError::new(CallErrorKind::Invalid, op, m);
        Self::name_kind(spec).check(spec.name()).map_err(invalid)?;
        if let Some(rg) = spec.resource_group() {
            NameKind::ResourceGroup.check(rg).map_err(invalid)?;
        }
        if let Some(region) = spec.region() {
            self.region_ok(op, region)?;
        }
        match spec {
            ResourceSpec::Disk {
                size_bytes,
                staging_account,
                ..
            } => {
                // A managed disk for upload: 20 MiB to 32 TiB (AZURE.md);
                // a page blob: any whole number of MiB up to that.
                let min = if staging_account.is_some() {
                    1 << 20
                } else {
                    MIN_UPLOAD_DISK
                };
                if *size_bytes < min
                    || !size_bytes.is_multiple_of(1 << 20)
                    || *size_bytes > MAX_DISK
                {
                    return Err(invalid(format!(
                        "disk size {size_bytes} must be a whole number of MiB from {} MiB to 32 TiB",
                        min >> 20
                    )));
                }
                if let Some(a) = staging_account {
                    NameKind::StorageAccount.check(a).map_err(invalid)?;
                }
            }
            ResourceSpec::VirtualMachine { size, nics, .. } => {
                if !self
                    .cfg
                    .catalog
                    .vm_sizes
                    .iter()
                    .any(|v| v.name.eq_ignore_ascii_case(size))
                {
                    return Err(invalid(format!(
                        "the VM size '{size}' is not available in this subscription"
                    )));
                }
                if nics.is_empty() {
                    return Err(invalid("a VM needs a network interface".into()));
                }
            }
            ResourceSpec::NetworkInterface {
                virtual_network,
                subnet,
                ..
            } => {
                check_name_or_id(NameKind::VirtualNetwork, virtual_network).map_err(invalid)?;
                NameKind::Subnet.check(subnet).map_err(invalid)?;
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn region_ok(&self, op: &str, region: &str) -> CallResult<()> {
        if self.cfg.catalog.region(region).is_some() {
            Ok(())
        } else {
            Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("location '{region}' is not available"),
            ))
        }
    }

    pub(super) fn create_locked(
        &self,
        key: &str,
        spec: &ResourceSpec,
        op: &str,
    ) -> CallResult<(Resource, bool)> {
        let mut st = self.lock();
        if let Some(done) = replayed(&st, key, spec, op)? {
            return Ok((done, false));
        }
        let id = resource_id(spec);
        if let Some(shared) = name_in_use(&st, key, spec, op, &id)? {
            return Ok((shared, false));
        }
        match spec {
            ResourceSpec::Disk {
                size_bytes,
                resource_group,
                staging_account,
                ..
            } => {
                if let Some(a) = staging_account
                    && st.find("storage_account", resource_group, a).is_none()
                {
                    return Err(CallError::new(
                        CallErrorKind::NotFound,
                        op,
                        format!("storage account '{a}' does not exist"),
                    ));
                }
                if st.disks.len() >= self.cfg.max_disks {
                    return Err(CallError::new(
                        CallErrorKind::QuotaExceeded,
                        op,
                        format!("quota of {} disks reached", self.cfg.max_disks),
                    ));
                }
                st.disks.insert(
                    id.clone(),
                    SimDisk {
                        size: *size_bytes,
                        ..Default::default()
                    },
                );
            }
            ResourceSpec::Snapshot { resource_group, vm } => {
                snapshot_source(&st, resource_group, vm, op)?;
            }
            ResourceSpec::NetworkInterface {
                resource_group,
                public_ip,
                network_security_group,
                ..
            } => nic_references(&st, resource_group, public_ip, network_security_group, op)?,
            ResourceSpec::NetworkSecurityGroup {
                resource_group,
                attach_to,
                ..
            } => {
                for n in attach_to {
                    if st.find("network_interface", resource_group, n).is_none() {
                        return Err(CallError::new(
                            CallErrorKind::NotFound,
                            op,
                            format!("network interface '{n}' to attach the NSG to does not exist"),
                        ));
                    }
                }
            }
            ResourceSpec::VirtualMachine { .. } => self.vm_references(&st, spec, op)?,
            _ => {}
        }
        let resource = Resource {
            id: id.clone(),
            kind: spec.kind().into(),
            name: spec.name().into(),
            key: key.into(),
            existed: false,
        };
        st.by_key.insert(key.into(), id.clone());
        st.resources.insert(
            id,
            SimResource {
                resource: resource.clone(),
                spec: spec.clone(),
            },
        );
        st.creates += 1;
        self.saved(op, &st)?;
        self.append_log(
            "creates.log",
            &serde_json::json!({"key": key, "id": resource.id}),
        )?;
        Ok((resource, true))
    }

    /// A VM's NICs and disks exist (the disks closed for upload), within
    /// the VM quota.
    fn vm_references(&self, st: &State, spec: &ResourceSpec, op: &str) -> CallResult<()> {
        let ResourceSpec::VirtualMachine {
            resource_group,
            os_disk,
            data_disks,
            nics,
            ..
        } = spec
        else {
            return Ok(());
        };
        for n in nics {
            if st.find("network_interface", resource_group, n).is_none() {
                return Err(CallError::new(
                    CallErrorKind::Invalid,
                    op,
                    format!("network interface '{n}' does not exist"),
                ));
            }
        }
        let vms = st
            .resources
            .values()
            .filter(|r| r.resource.kind == "virtual_machine")
            .count();
        if vms >= self.cfg.max_vms {
            return Err(CallError::new(
                CallErrorKind::QuotaExceeded,
                op,
                format!("quota of {} VMs reached", self.cfg.max_vms),
            ));
        }
        for d in std::iter::once(os_disk).chain(data_disks.iter().map(|(_, d)| d)) {
            let disk = st
                .find("disk", resource_group, d)
                .map(|r| r.resource.id.clone());
            match disk.and_then(|id| st.disks.get(&id)) {
                None => {
                    return Err(CallError::new(
                        CallErrorKind::NotFound,
                        op,
                        format!("disk '{d}' does not exist"),
                    ));
                }
                Some(sd) if sd.open || !sd.closed_once => {
                    return Err(CallError::new(
                        CallErrorKind::Conflict,
                        op,
                        format!("disk '{d}' is still open for upload (endGetAccess first)"),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The resource a step already created with this spec (a retried or
/// resumed create), or a conflict when the step created a different one.
fn replayed(st: &State, key: &str, spec: &ResourceSpec, op: &str) -> CallResult<Option<Resource>> {
    let Some(r) = st.by_key.get(key).and_then(|id| st.resources.get(id)) else {
        return Ok(None);
    };
    if r.spec == *spec {
        return Ok(Some(r.resource.clone()));
    }
    Err(CallError::new(
        CallErrorKind::Conflict,
        op,
        format!(
            "step '{key}' already created a different {}",
            r.resource.kind
        ),
    ))
}

/// Whether the name is free: globally for storage accounts and key vaults,
/// within the resource group for the rest, and not an existing VM's.
/// Resource groups and the region's helper appliance are shared: a restore
/// that finds one uses it (and leaves it at clean-up).
fn name_in_use(
    st: &State,
    key: &str,
    spec: &ResourceSpec,
    op: &str,
    id: &str,
) -> CallResult<Option<Resource>> {
    let global = matches!(
        spec,
        ResourceSpec::StorageAccount { .. } | ResourceSpec::KeyVault { .. }
    );
    let taken = st.resources.values().any(|r| {
        if global {
            r.resource.kind == spec.kind() && r.resource.name == spec.name()
        } else {
            r.resource.id.eq_ignore_ascii_case(id)
        }
    });
    let existing_vm = match spec {
        ResourceSpec::VirtualMachine { resource_group, .. } => {
            st.existing_vm(resource_group, spec.name()).is_some()
        }
        _ => false,
    };
    let shared = matches!(
        spec,
        ResourceSpec::ResourceGroup { .. } | ResourceSpec::HelperAppliance { .. }
    );
    if taken
        && shared
        && let Some(r) = st.resources.get(id)
    {
        return Ok(Some(Resource {
            existed: true,
            key: key.into(),
            ..r.resource.clone()
        }));
    }
    if taken || existing_vm {
        return Err(CallError::new(
            CallErrorKind::Conflict,
            op,
            format!("the name '{}' is already in use", spec.name()),
        ));
    }
    Ok(None)
}

/// A snapshot needs an existing VM with disks.
fn snapshot_source(st: &State, resource_group: &str, vm: &str, op: &str) -> CallResult<()> {
    if st.existing_vm(resource_group, vm).is_none() {
        return Err(CallError::new(
            CallErrorKind::NotFound,
            op,
            format!("VM '{vm}' does not exist in resource group '{resource_group}'"),
        ));
    }
    if st
        .vm_disks
        .get(&vm.to_ascii_lowercase())
        .is_none_or(Vec::is_empty)
    {
        return Err(CallError::new(
            CallErrorKind::Invalid,
            op,
            format!("VM '{vm}' has no disks to snapshot"),
        ));
    }
    Ok(())
}

/// ARM refuses a reference to a resource that does not exist (400
/// InvalidResourceReference).
fn nic_references(
    st: &State,
    resource_group: &str,
    public_ip: &Option<String>,
    network_security_group: &Option<String>,
    op: &str,
) -> CallResult<()> {
    let refs = [
        ("public_ip", public_ip, "public IP"),
        (
            "network_security_group",
            network_security_group,
            "network security group",
        ),
    ];
    for (kind, name, what) in refs {
        if let Some(n) = name
            && st.find(kind, resource_group, n).is_none()
        {
            return Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("{what} '{n}' referenced by the NIC does not exist"),
            ));
        }
    }
    Ok(())
}

pub(super) fn resource_id(spec: &ResourceSpec) -> String {
    match spec.resource_group() {
        None => format!("/resourceGroups/{}", spec.name()),
        Some(rg) => format!("/resourceGroups/{rg}/{}/{}", spec.kind(), spec.name()),
    }
}
