//! The `Cloud` contract: creates, deletes, actions and disk upload access.

use async_trait::async_trait;

use super::*;
use disk::SimDiskWriter;
use state::SimDisk;

#[async_trait]
impl Cloud for SimCloud {
    fn capabilities(&self) -> crate::plan::Capabilities {
        self.cfg.capabilities.clone()
    }

    async fn catalog(&self) -> CallResult<Catalog> {
        self.delay(self.latency("catalog")).await;
        Ok(self.cfg.catalog.clone())
    }

    async fn create(&self, key: &str, spec: &ResourceSpec) -> CallResult<Resource> {
        self.throttle("create", key, false)?;
        self.delay(self.latency("create")).await;
        if let Some(e) = self.fault("create", key, self.cfg.faults.control) {
            return Err(e);
        }
        let op = format!("create {} '{}'", spec.kind(), spec.name());
        self.check_spec(spec, &op)?;
        let lro = matches!(
            spec,
            ResourceSpec::VirtualMachine { .. }
                | ResourceSpec::Disk { .. }
                | ResourceSpec::StorageAccount { .. }
        );
        let (resource, new) = self.create_locked(key, spec, &op)?;
        if lro && new {
            self.delay(self.cfg.lro).await;
        }
        Ok(resource)
    }

    async fn delete(&self, resource: &Resource) -> CallResult<()> {
        self.throttle("delete", &resource.key, true)?;
        self.delay(self.latency("delete")).await;
        if let Some(e) = self.fault("delete", &resource.key, self.cfg.faults.control) {
            return Err(e);
        }
        let mut st = self.lock();
        // Only what the cloud shows as made under this key (as ARM's
        // `vmrestore-key` tag does): a resource that existed, was made by
        // another restore, or is claimed by a forged journal line is left.
        match st.resources.get(&resource.id) {
            None => return Ok(()),
            Some(r) if r.resource.key != resource.key || resource.key.is_empty() => {
                return Err(CallError::new(
                    CallErrorKind::Conflict,
                    format!("delete {} '{}'", resource.kind, resource.name),
                    format!(
                        "{} was not created by this restore: it is left in place",
                        resource.id
                    ),
                ));
            }
            Some(_) => {}
        }
        st.resources.remove(&resource.id);
        st.disks.remove(&resource.id);
        st.by_key.retain(|_, v| v != &resource.id);
        st.powered_on
            .retain(|v| v != &resource.name || resource.kind != "virtual_machine");
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_file(Self::image_path(dir, &resource.id));
        }
        self.saved(&format!("delete '{}'", resource.name), &st)
    }

    async fn act(&self, key: &str, action: &CloudAction) -> CallResult<()> {
        self.throttle("act", key, false)?;
        self.delay(self.latency("act")).await;
        if let Some(e) = self.fault("act", key, self.cfg.faults.control) {
            return Err(e);
        }
        let mut st = self.lock();
        if st.actions.iter().any(|(k, a)| k == key && a == action) {
            return Ok(());
        }
        match action {
            CloudAction::DeleteExistingVm { vm, .. } => {
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut st.existing)
                    .into_iter()
                    .partition(|v| v.name.eq_ignore_ascii_case(vm));
                st.existing = kept;
                st.deleted_existing.extend(gone);
            }
            CloudAction::RestoreExistingVm { vm, .. } => {
                let op = format!("put back VM '{vm}'");
                if st.existing.iter().any(|v| v.name.eq_ignore_ascii_case(vm)) {
                    return Ok(());
                }
                if st.resources.values().any(|r| {
                    r.resource.kind == "virtual_machine" && r.resource.name.eq_ignore_ascii_case(vm)
                }) {
                    return Err(CallError::new(
                        CallErrorKind::Conflict,
                        op,
                        "a VM of that name exists (the restored one)",
                    ));
                }
                let Some(i) = st
                    .deleted_existing
                    .iter()
                    .position(|v| v.name.eq_ignore_ascii_case(vm))
                else {
                    return Err(CallError::new(
                        CallErrorKind::NotFound,
                        op,
                        "no deleted VM of that name to put back",
                    ));
                };
                let v = st.deleted_existing.remove(i);
                st.existing.push(v);
            }
            CloudAction::PowerOn { resource_group, vm } => st.power_on(resource_group, vm)?,
            CloudAction::SwapDisks {
                resource_group,
                vm,
                disks,
            } => st.swap_disks(resource_group, vm, disks)?,
            CloudAction::DeleteReplacedDisks { resource_group, vm } => {
                st.delete_replaced(resource_group, vm)?
            }
            CloudAction::BootFix { vm, disks } => st.boot_fix(vm, disks)?,
            CloudAction::ConvertToManaged {
                resource_group,
                disks,
            } => st.convert_to_managed(resource_group, disks)?,
            _ => {}
        }
        st.actions.push((key.into(), action.clone()));
        self.saved(&format!("act '{key}'"), &st)
    }

    async fn open_disk(&self, disk: &Resource) -> CallResult<Box<dyn DiskWriter>> {
        self.with_disk("open_disk", disk, |d| d.open = true).await?;
        Ok(Box::new(SimDiskWriter {
            cloud: self.clone(),
            id: disk.id.clone(),
            name: disk.name.clone(),
        }))
    }

    async fn close_disk(&self, disk: &Resource) -> CallResult<()> {
        self.with_disk("close_disk", disk, |d| {
            d.open = false;
            d.closed_once = true;
        })
        .await
    }
}

impl SimCloud {
    /// A control-plane call on a disk's upload state: latency, faults,
    /// then `f` on the disk.
    pub(super) async fn with_disk(
        &self,
        op: &str,
        disk: &Resource,
        f: impl FnOnce(&mut SimDisk),
    ) -> CallResult<()> {
        self.throttle(op, &disk.key, false)?;
        self.delay(self.latency(op)).await;
        if let Some(e) = self.fault(op, &disk.key, self.cfg.faults.control) {
            return Err(e);
        }
        let mut st = self.lock();
        let d = st.disks.get_mut(&disk.id).ok_or_else(|| {
            CallError::new(
                CallErrorKind::NotFound,
                format!("{op} '{}'", disk.name),
                "no such disk",
            )
        })?;
        f(d);
        self.saved(&format!("{op} '{}'", disk.name), &st)
    }
}
