//! The actions that change what exists (disk swaps, boot fixes, conversions,
//! power), each refused unless what Azure needs for it is there: the VM, its
//! power state, the disks and their upload state.

use super::*;

fn err(kind: CallErrorKind, op: &str, m: impl Into<String>) -> CallError {
    CallError::new(kind, op, m)
}

impl State {
    /// A disk this cloud made in `rg` whose upload has ended (it can be
    /// attached): its spec and size.
    fn attachable(
        &self,
        op: &str,
        rg: Option<&str>,
        name: &str,
    ) -> CallResult<(ResourceSpec, u64)> {
        let r = match rg {
            Some(rg) => self.find("disk", rg, name),
            None => self.disk_named(name),
        }
        .ok_or_else(|| {
            err(
                CallErrorKind::NotFound,
                op,
                format!("disk '{name}' does not exist"),
            )
        })?;
        let d = self.disks.get(&r.resource.id).ok_or_else(|| {
            err(
                CallErrorKind::NotFound,
                op,
                format!("disk '{name}' does not exist"),
            )
        })?;
        if d.open || !d.closed_once {
            return Err(err(
                CallErrorKind::Conflict,
                op,
                format!("disk '{name}' is still open for upload (endGetAccess first)"),
            ));
        }
        Ok((r.spec.clone(), d.size))
    }

    /// `SwapDisks`: the VM exists and is stop-deallocated, every new disk
    /// exists, has left the upload state and is not smaller than the disk
    /// it replaces (the OS disk replaces the OS disk; data disks replace
    /// the VM's data disks in LUN order).
    pub(super) fn swap_disks(&mut self, rg: &str, vm: &str, disks: &[String]) -> CallResult<()> {
        let op = format!("swap disks of VM '{vm}'");
        if self.existing_vm(rg, vm).is_none() {
            return Err(err(
                CallErrorKind::NotFound,
                &op,
                format!("VM '{vm}' does not exist in resource group '{rg}'"),
            ));
        }
        let key = vm.to_ascii_lowercase();
        if !self.deallocated.contains(&key) {
            return Err(err(
                CallErrorKind::Conflict,
                &op,
                format!("VM '{vm}' is running: Azure swaps disks only on a stop-deallocated VM"),
            ));
        }
        let old = self.vm_disks.get(&key).cloned().unwrap_or_default();
        let mut old_data: Vec<&ExistingDisk> = old.iter().filter(|d| d.lun.is_some()).collect();
        old_data.sort_by_key(|d| d.lun);
        let mut old_data = old_data.into_iter();
        let mut new = Vec::new();
        let mut next_lun = 0;
        for name in disks {
            let (spec, size) = self.attachable(&op, Some(rg), name)?;
            let is_os = matches!(spec, ResourceSpec::Disk { os: Some(_), .. });
            let replaced = if is_os {
                old.iter().find(|d| d.lun.is_none())
            } else {
                old_data.next()
            };
            if let Some(o) = replaced
                && size < o.size_bytes
            {
                return Err(err(
                    CallErrorKind::Invalid,
                    &op,
                    format!(
                        "disk '{name}' ({size} bytes) is smaller than disk '{}' ({} bytes) of VM '{vm}' it replaces",
                        o.name, o.size_bytes
                    ),
                ));
            }
            let lun = if is_os {
                None
            } else {
                let l = replaced.and_then(|o| o.lun).unwrap_or(next_lun);
                next_lun = l + 1;
                Some(l)
            };
            new.push(ExistingDisk {
                name: name.clone(),
                lun,
                size_bytes: size,
            });
        }
        self.replaced.entry(key.clone()).or_default().extend(old);
        self.vm_disks.insert(key, new);
        Ok(())
    }

    /// `DeleteReplacedDisks`: only once the VM's disks were replaced,
    /// by a swap, or by deleting the VM in place (keeping its disks) and
    /// making a new VM of that name.
    pub(super) fn delete_replaced(&mut self, rg: &str, vm: &str) -> CallResult<()> {
        let key = vm.to_ascii_lowercase();
        let swapped = self.actions.iter().any(
            |(_, a)| matches!(a, CloudAction::SwapDisks { vm: v, .. } if v.eq_ignore_ascii_case(vm)),
        );
        let replaced_vm =
            self.deleted_existing.iter().any(|v| {
                v.name.eq_ignore_ascii_case(vm) && v.resource_group.eq_ignore_ascii_case(rg)
            }) && self.find("virtual_machine", rg, vm).is_some();
        if !swapped && !replaced_vm {
            return Err(err(
                CallErrorKind::Conflict,
                &format!("delete the replaced disks of VM '{vm}'"),
                format!(
                    "the disks of VM '{vm}' were not replaced (no swap, no new VM in its place): there is nothing to delete"
                ),
            ));
        }
        self.replaced.remove(&key);
        Ok(())
    }

    /// `BootFix`: every disk exists and has left the upload state; for a
    /// Linux OS disk a helper appliance exists to mount them on. (The rules
    /// say where the disks are mounted, VE-19: a Windows restore's on the
    /// backup server, a Linux restore's on the helper appliance, VE-18.)
    pub(super) fn boot_fix(&self, vm: &str, disks: &[String]) -> CallResult<()> {
        let op = format!("boot fix of VM '{vm}'");
        if disks.is_empty() {
            return Err(err(CallErrorKind::Invalid, &op, "no disks to fix"));
        }
        let mut linux = false;
        for d in disks {
            let (spec, _) = self.attachable(&op, None, d)?;
            linux |= matches!(
                spec,
                ResourceSpec::Disk {
                    os: Some((crate::model::OsFamily::Linux, _)),
                    ..
                }
            );
        }
        let helper = self
            .resources
            .values()
            .any(|r| r.resource.kind == "helper_appliance");
        if linux && !helper {
            return Err(err(
                CallErrorKind::Conflict,
                &op,
                "no helper appliance: a Linux VM's disks are mounted on the helper appliance to fix them",
            ));
        }
        Ok(())
    }

    /// `ConvertToManaged`: every disk is a page blob of an existing staging
    /// account, written and finished (its footer is there).
    pub(super) fn convert_to_managed(&self, rg: &str, disks: &[String]) -> CallResult<()> {
        for name in disks {
            let op = format!("convert page blob '{name}' to a managed disk");
            let r = self.find("disk", rg, name).ok_or_else(|| {
                err(
                    CallErrorKind::NotFound,
                    &op,
                    format!("blob '{name}' does not exist"),
                )
            })?;
            let ResourceSpec::Disk {
                staging_account: Some(account),
                ..
            } = &r.spec
            else {
                return Err(err(
                    CallErrorKind::Invalid,
                    &op,
                    format!("disk '{name}' is not a page blob in a staging account"),
                ));
            };
            if self.find("storage_account", rg, account).is_none() {
                return Err(err(
                    CallErrorKind::NotFound,
                    &op,
                    format!("storage account '{account}' does not exist"),
                ));
            }
            if !self
                .disks
                .get(&r.resource.id)
                .is_some_and(|d| d.finished && !d.open)
            {
                return Err(err(
                    CallErrorKind::Conflict,
                    &op,
                    format!("page blob '{name}' is not finished (no VHD footer yet)"),
                ));
            }
        }
        Ok(())
    }

    /// `PowerOn`: a VM this cloud made, or an existing one.
    pub(super) fn power_on(&mut self, rg: &str, vm: &str) -> CallResult<()> {
        let made = self.find("virtual_machine", rg, vm).is_some();
        if !made && self.existing_vm(rg, vm).is_none() {
            return Err(err(
                CallErrorKind::NotFound,
                &format!("power on '{vm}'"),
                "the VM does not exist",
            ));
        }
        let key = vm.to_ascii_lowercase();
        self.deallocated.retain(|v| v != &key);
        self.powered_on.push(vm.to_string());
        Ok(())
    }
}
