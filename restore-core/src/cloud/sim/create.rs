//! Creates: names, regions, sizes and uniqueness checked as Azure checks them.

use super::*;
use state::SimDisk;

impl SimCloud {
    pub(super) fn check_name(spec: &ResourceSpec) -> CallResult<()> {
        let name = spec.name();
        let op = format!("create {} '{name}'", spec.kind());
        let ok = match spec {
            ResourceSpec::StorageAccount { .. } => {
                (3..=24).contains(&name.len())
                    && name
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            }
            ResourceSpec::KeyVault { .. } => {
                (3..=24).contains(&name.len())
                    && name.as_bytes()[0].is_ascii_alphabetic()
                    && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                    && !name.contains("--")
            }
            ResourceSpec::VirtualMachine { .. } => crate::model::is_resource_name(name, 64),
            ResourceSpec::ResourceGroup { .. } => {
                !name.is_empty() && name.len() <= 90 && !name.ends_with('.')
            }
            _ => crate::model::is_resource_name(name, 80),
        };
        if ok {
            Ok(())
        } else {
            Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("'{name}' is not a valid {} name", spec.kind()),
            ))
        }
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
        let op = op.to_string();
        {
            let mut st = self.lock();
            if let Some(id) = st.by_key.get(key)
                && let Some(r) = st.resources.get(id)
            {
                if r.spec == *spec {
                    return Ok((r.resource.clone(), false));
                }
                return Err(CallError::new(
                    CallErrorKind::Conflict,
                    op,
                    format!(
                        "step '{key}' already created a different {}",
                        r.resource.kind
                    ),
                ));
            }
            let id = resource_id(spec);
            // Globally unique names (storage accounts, key vaults) and names
            // unique within a resource group.
            let global = matches!(
                spec,
                ResourceSpec::StorageAccount { .. } | ResourceSpec::KeyVault { .. }
            );
            let taken = st.resources.values().any(|r| {
                if global {
                    r.resource.kind == spec.kind() && r.resource.name == spec.name()
                } else {
                    r.resource.id.eq_ignore_ascii_case(&id)
                }
            });
            let existing_vm = matches!(spec, ResourceSpec::VirtualMachine { .. })
                && st
                    .existing
                    .iter()
                    .any(|v| v.name.eq_ignore_ascii_case(spec.name()));
            // Resource groups and the region's helper appliance are shared:
            // a restore that finds one uses it (and leaves it at clean-up).
            if taken
                && matches!(
                    spec,
                    ResourceSpec::ResourceGroup { .. } | ResourceSpec::HelperAppliance { .. }
                )
            {
                let r = st.resources.get(&id).map(|r| Resource {
                    existed: true,
                    key: key.into(),
                    ..r.resource.clone()
                });
                if let Some(r) = r {
                    return Ok((r, false));
                }
            }
            if taken || existing_vm {
                return Err(CallError::new(
                    CallErrorKind::Conflict,
                    op,
                    format!("the name '{}' is already in use", spec.name()),
                ));
            }
            match spec {
                ResourceSpec::Disk { size_bytes, .. } => {
                    if *size_bytes == 0 || *size_bytes % (1 << 20) != 0 || *size_bytes > 32 << 40 {
                        return Err(CallError::new(
                            CallErrorKind::Invalid,
                            op,
                            format!(
                                "disk size {size_bytes} must be a whole number of MiB up to 32 TiB"
                            ),
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
                ResourceSpec::VirtualMachine {
                    os_disk,
                    data_disks,
                    ..
                } => {
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
                            .resources
                            .values()
                            .find(|r| r.resource.kind == "disk" && &r.resource.name == d)
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
                                    format!(
                                        "disk '{d}' is still open for upload (endGetAccess first)"
                                    ),
                                ));
                            }
                            Some(_) => {}
                        }
                    }
                }
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
            self.saved(&op, &st)?;
            self.append_log(
                "creates.log",
                &serde_json::json!({"key": key, "id": resource.id}),
            )?;
            Ok((resource, true))
        }
    }
}

pub(super) fn resource_id(spec: &ResourceSpec) -> String {
    let rg = match spec {
        ResourceSpec::ResourceGroup { name, .. } => return format!("/resourceGroups/{name}"),
        ResourceSpec::KeyVault { resource_group, .. }
        | ResourceSpec::StorageAccount { resource_group, .. }
        | ResourceSpec::HelperAppliance { resource_group, .. }
        | ResourceSpec::Snapshot { resource_group, .. }
        | ResourceSpec::Disk { resource_group, .. }
        | ResourceSpec::NetworkSecurityGroup { resource_group, .. }
        | ResourceSpec::PublicIp { resource_group, .. }
        | ResourceSpec::NetworkInterface { resource_group, .. }
        | ResourceSpec::VirtualMachine { resource_group, .. } => resource_group,
    };
    format!("/resourceGroups/{rg}/{}/{}", spec.kind(), spec.name())
}
