//! What ArmCloud does to resources that exist: start a VM, grant key-vault
//! access, delete an existing VM (keeping its disks) and put it back.

use reqwest::Method;
use serde_json::{Value, json};

use super::bodies::reattach_body;
use super::{ArmCloud, api, bad, path};
use crate::exec::CallResult;

impl ArmCloud {
    /// Starts a VM.
    pub(super) async fn power_on(&self, resource_group: &str, vm: &str) -> CallResult<()> {
        let id = self.vm_id(resource_group, vm)?;
        self.call(
            Method::POST,
            &path::child(&id, &["start"])?,
            api::VM,
            None,
            &format!("start VM '{vm}'"),
        )
        .await
        .map(drop)
    }

    /// Grants one principal what disk encryption needs of a key vault.
    pub(super) async fn grant_key_vault_access(
        &self,
        vault: &str,
        principal: &str,
    ) -> CallResult<()> {
        let op = format!("grant '{principal}' access to key vault '{vault}'");
        // Only this principal, only what disk encryption needs.
        let object_id = if self.cfg.principal_object_id.is_empty() {
            principal
        } else {
            &self.cfg.principal_object_id
        };
        let body = json!({ "properties": { "accessPolicies": [ {
            "tenantId": self.cfg.tenant_id,
            "objectId": object_id,
            "permissions": { "keys": ["get", "wrapKey", "unwrapKey"], "secrets": ["get", "set"] }
        } ] } });
        let id = if vault.starts_with("/subscriptions/") {
            vault.to_string()
        } else {
            // A vault this run created, by its name.
            let created = self.created.lock().unwrap_or_else(|e| e.into_inner());
            let mut ids = created
                .iter()
                .filter(|((k, _, n), _)| k == "key_vault" && n.eq_ignore_ascii_case(vault))
                .map(|(_, id)| id.clone());
            match (ids.next(), ids.next()) {
                (Some(id), None) => id,
                _ => {
                    return Err(bad(
                        &op,
                        "the vault was not created by this run: give its ARM resource ID",
                    ));
                }
            }
        };
        self.call(
            Method::PUT,
            &path::child(&id, &["accessPolicies", "add"])?,
            api::KEY_VAULT,
            Some(&body),
            &op,
        )
        .await
        .map(drop)
    }

    /// Deletes an existing VM, keeping its disks and its definition (so a
    /// failed restore can put it back).
    pub(super) async fn delete_existing_vm(&self, id: &str, vm: &str) -> CallResult<()> {
        let op = format!("delete VM '{vm}'");
        // Gone already: a retried or resumed step.
        let Some(v) = self.call_found(Method::GET, id, api::VM, &op).await? else {
            return Ok(());
        };
        // Its disks must outlive it: they are what a failed restore
        // puts the VM back on, and what the replaced disks' step
        // deletes only once the new VM runs.
        let storage = v.pointer("/properties/storageProfile");
        let deleted_with_vm = storage
            .into_iter()
            .flat_map(|p| {
                p.get("osDisk").into_iter().chain(
                    p.get("dataDisks")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                )
            })
            .any(|d| d.get("deleteOption").and_then(Value::as_str) == Some("Delete"));
        if deleted_with_vm {
            return Err(bad(
                &op,
                "its disks have deleteOption 'Delete' and would be deleted with it: set them to 'Detach' first",
            ));
        }
        self.deleted_vms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_ascii_lowercase(), v);
        self.call(Method::DELETE, id, api::VM, None, &op)
            .await
            .map(drop)
    }

    /// Puts back a VM this cloud deleted, on its kept disks.
    pub(super) async fn restore_existing_vm(&self, id: &str, vm: &str) -> CallResult<()> {
        let op = format!("put back VM '{vm}' on its kept disks");
        if self
            .call_found(Method::GET, id, api::VM, &op)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let saved = self
            .deleted_vms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| {
                bad(
                    &op,
                    "this cloud did not delete it, so it has no definition to put back",
                )
            })?;
        let body = reattach_body(saved);
        self.call(Method::PUT, id, api::VM, Some(&body), &op)
            .await
            .map(drop)
    }
}
