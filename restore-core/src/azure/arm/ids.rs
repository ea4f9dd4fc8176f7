//! ARM resource IDs: built from names (through [`super::path`]), or the
//! ones this cloud created.

use super::{ArmCloud, bad, path};
use crate::cloud::arm_bodies::{Ref, ResourceType};
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

    /// The ID of resource `name` (one segment) of type `ty` in `rg`.
    pub(super) fn id(
        &self,
        sub: Option<&str>,
        rg: &str,
        ty: ResourceType,
        name: &str,
    ) -> CallResult<String> {
        let rg_id = self.rg_id(sub, rg)?;
        path::child(
            &path::join(&[&rg_id[1..], "providers", ty.arm_type()])?,
            &[name],
        )
    }

    /// The ARM ID of a resource a body names (see
    /// [`crate::cloud::arm_bodies`]); a subnet of a virtual network given
    /// by its ARM ID is a child of that ID.
    pub(super) fn ref_id(&self, r: &Ref<'_>) -> CallResult<String> {
        match r.ty {
            ResourceType::ResourceGroup => self.rg_id(r.subscription_id, r.name),
            ResourceType::Subnet => {
                let vnet = if r.name.starts_with("/subscriptions/") {
                    r.name.to_string()
                } else {
                    self.id(
                        r.subscription_id,
                        r.resource_group,
                        ResourceType::VirtualNetwork,
                        r.name,
                    )?
                };
                path::child(&vnet, &["subnets", r.child.unwrap_or_default()])
            }
            ty => self.id(r.subscription_id, r.resource_group, ty, r.name),
        }
    }

    /// The ID of a VM: the one this cloud created, else in the default
    /// subscription.
    pub(super) fn vm_id(&self, resource_group: &str, vm: &str) -> CallResult<String> {
        self.known_id("virtual_machine", resource_group, vm, || {
            self.id(None, resource_group, ResourceType::VirtualMachine, vm)
        })
    }

    /// The ID of a VM in a given subscription (the one an in-place plan
    /// names), built by the one path builder.
    pub(super) fn vm_id_in(&self, sub: &str, resource_group: &str, vm: &str) -> CallResult<String> {
        self.id(Some(sub), resource_group, ResourceType::VirtualMachine, vm)
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

    /// The api-version to read or delete `id` with: its type's in the
    /// table, else (a type the table does not know) the resource kind's,
    /// else the resource groups'.
    pub(super) fn api_of(id: &str, kind: &str) -> &'static str {
        ResourceType::of_id(id)
            .or_else(|| ResourceType::of_kind(kind))
            .unwrap_or(ResourceType::ResourceGroup)
            .api_version()
    }
}
