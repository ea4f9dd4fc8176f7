//! What ArmCloud PUTs: the bodies of [`crate::cloud::arm_bodies`] (shared
//! with the local template) with real ARM IDs and the step's
//! `vmrestore-key` tag; and the body that puts a deleted VM back.

use serde_json::{Value, json};

use super::{ArmCloud, bad};
use crate::cloud::arm_bodies::{own_ref, resource_body, with_tags};
use crate::exec::{CallResult, ResourceSpec};

impl ArmCloud {
    /// The ID, api-version and body of a resource to create, tagged with
    /// the step's `key`. `staged_import`: the managed disk made of a staged
    /// blob (otherwise a staged disk has no managed-disk body).
    pub(super) fn body(
        &self,
        key: &str,
        spec: &ResourceSpec,
        op: &str,
        staged_import: bool,
    ) -> CallResult<(String, &'static str, Value)> {
        if let ResourceSpec::Disk {
            staging_account: Some(_),
            ..
        } = spec
            && !staged_import
        {
            return Err(bad(op, "a staged disk is a page blob, not a managed disk"));
        }
        let me = own_ref(spec, op)?;
        let body = resource_body(spec, &self.cfg.tenant_id, op, &mut |r| self.ref_id(r))?;
        let id = self.ref_id(&me)?;
        let tags = json!({ "vmrestore-key": key });
        Ok((id, me.ty.api_version(), with_tags(body, tags)))
    }
}

/// The body that re-creates a deleted VM on its kept disks: the disks are
/// attached (not created from an image), the OS profile (set only at
/// creation) and read-only properties are left out.
pub(super) fn reattach_body(mut v: Value) -> Value {
    strip_read_only(&mut v);
    if let Some(p) = v.get_mut("properties").and_then(Value::as_object_mut) {
        for k in ["osProfile", "vmId", "instanceView", "timeCreated"] {
            p.remove(k);
        }
        if let Some(sp) = p.get_mut("storageProfile").and_then(Value::as_object_mut) {
            sp.remove("imageReference");
            if let Some(os) = sp.get_mut("osDisk").and_then(Value::as_object_mut) {
                os.insert("createOption".into(), json!("Attach"));
            }
            if let Some(dd) = sp.get_mut("dataDisks").and_then(Value::as_array_mut) {
                for d in dd {
                    d["createOption"] = json!("Attach");
                }
            }
        }
    }
    v
}

/// Drops what ARM returns but does not take back in a PUT.
pub(super) fn strip_read_only(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        for k in ["id", "etag", "type", "name"] {
            o.remove(k);
        }
        if let Some(p) = o.get_mut("properties").and_then(Value::as_object_mut) {
            for k in [
                "provisioningState",
                "resourceGuid",
                "macAddress",
                "virtualMachine",
            ] {
                p.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::super::{ArmCloud, ArmConfig};
    use crate::azure::{AccessToken, StaticToken};
    use crate::cloud::arm_bodies::{ResourceType, template, tests::specs};

    /// Every `id` (a reference) as `<ref>`: ArmCloud holds real IDs, a
    /// template `[resourceId(...)]` expressions.
    fn without_ids(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "id" {
                        *x = Value::from("<ref>");
                    } else {
                        without_ids(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(without_ids),
            _ => {}
        }
    }

    #[test]
    fn arm_cloud_puts_the_vm_the_template_declares() {
        let cloud = ArmCloud::new(
            ArmConfig {
                subscription_id: "00000000-0000-0000-0000-000000000001".into(),
                ..Default::default()
            },
            Arc::new(StaticToken(AccessToken::new("t", None))),
        )
        .unwrap();
        let specs = specs();
        let vm = specs
            .iter()
            .find(|s| s.kind() == "virtual_machine")
            .unwrap();
        let (id, api, mut put) = cloud.body("plan:vm", vm, "test", false).unwrap();
        assert!(id.ends_with("/providers/Microsoft.Compute/virtualMachines/vm1"));
        assert_eq!(api, ResourceType::VirtualMachine.api_version());
        assert_eq!(put["tags"]["vmrestore-key"], "plan:vm");
        assert!(
            put.pointer("/properties/storageProfile/osDisk/managedDisk/id")
                .and_then(Value::as_str)
                .is_some_and(|d| d.ends_with("/providers/Microsoft.Compute/disks/vm1-os"))
        );
        let t = template(&specs).unwrap();
        let mut declared = t["resources"][0]["properties"].clone();
        assert!(declared.get("securityProfile").is_some());
        without_ids(&mut put["properties"]);
        without_ids(&mut declared);
        assert_eq!(put["properties"], declared);
    }
}
