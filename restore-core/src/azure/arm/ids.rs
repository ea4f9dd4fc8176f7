//! ARM resource IDs: built from names (through [`super::path`]), or the
//! ones this cloud created.

use super::{ArmCloud, api, bad, path};
use crate::exec::CallResult;

impl ArmCloud {
    pub(super) fn rg_id(&self, sub: Option<&str>, rg: &str) -> CallResult<String> {
        let sub = sub
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.cfg.subscription_id);
        if !crate::model::names::is_guid(sub) {
            return Err(bad(
                "build an ARM path",
                format!("subscription '{}' is not a GUID", path::segment(sub)?),
            ));
        }
        path::join(&["subscriptions", sub, "resourceGroups", path::segment(rg)?])
    }

    /// `provider` is `Namespace/type`; `name` is one segment.
    pub(super) fn id(
        &self,
        sub: Option<&str>,
        rg: &str,
        provider: &str,
        name: &str,
    ) -> CallResult<String> {
        let rg_id = self.rg_id(sub, rg)?;
        path::child(&path::join(&[&rg_id[1..], "providers", provider])?, &[name])
    }

    /// The ID of a VM: the one this cloud created, else in the default
    /// subscription.
    pub(super) fn vm_id(&self, resource_group: &str, vm: &str) -> CallResult<String> {
        self.known_id("virtual_machine", resource_group, vm, || {
            self.id(
                None,
                resource_group,
                "Microsoft.Compute/virtualMachines",
                vm,
            )
        })
    }

    /// The ID of a VM in a given subscription (the one an in-place plan
    /// names), built by the one path builder.
    pub(super) fn vm_id_in(&self, sub: &str, resource_group: &str, vm: &str) -> CallResult<String> {
        self.id(
            Some(sub),
            resource_group,
            "Microsoft.Compute/virtualMachines",
            vm,
        )
    }

    /// The ID of a resource this cloud created, else `fallback()`.
    pub(super) fn known_id(
        &self,
        kind: &str,
        rg: &str,
        name: &str,
        fallback: impl FnOnce() -> CallResult<String>,
    ) -> CallResult<String> {
        let known = self
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(
                kind.into(),
                rg.to_ascii_lowercase(),
                name.to_ascii_lowercase(),
            ))
            .cloned();
        known.map_or_else(fallback, Ok)
    }

    pub(super) fn api_of(id: &str) -> &'static str {
        if id.contains("/Microsoft.Compute/virtualMachines/") {
            api::VM
        } else if id.contains("/Microsoft.Compute/disks/") {
            api::DISK
        } else if id.contains("/Microsoft.Network/") {
            api::NETWORK
        } else if id.contains("/Microsoft.KeyVault/") {
            api::KEY_VAULT
        } else if id.contains("/Microsoft.Storage/") {
            api::STORAGE
        } else {
            api::RESOURCES
        }
    }
}
