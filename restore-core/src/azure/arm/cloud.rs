//! `impl Cloud for ArmCloud`.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use super::bodies::strip_read_only;
use super::{ArmCloud, api, bad, path};
use crate::azure::pageblob::{PageBlobWriter, WriteStats};
use crate::azure::storage::BlobClient;
use crate::cloud::arm_bodies::ResourceType;
use crate::exec::{
    CallError, CallErrorKind, CallResult, CloudAction, DiskWriter, Resource, ResourceSpec,
};
use crate::model::Catalog;

#[async_trait]
impl crate::exec::Cloud for ArmCloud {
    fn capabilities(&self) -> crate::plan::Capabilities {
        Self::declared_capabilities()
    }

    async fn catalog(&self) -> CallResult<Catalog> {
        self.read_catalog().await
    }

    async fn create(&self, key: &str, spec: &ResourceSpec) -> CallResult<Resource> {
        let op = format!("create {} '{}'", spec.kind(), spec.name());
        if let ResourceSpec::Disk {
            staging_account: Some(_),
            ..
        } = spec
        {
            return self.create_staged(key, spec, &op).await;
        }
        let (id, api_version, body) = self.body(key, spec, &op, false)?;
        // A PUT overwrites, and clean-up deletes what the run created: so
        // look first. What this step made before (its `vmrestore-key` tag)
        // is completed by the PUT; a resource group that was there is used
        // and left alone (`existed`); anything else of that name is not
        // ours to overwrite, nor to delete.
        let before = self.call_found(Method::GET, &id, api_version, &op).await?;
        if let Some(v) = &before {
            let ours = v.pointer("/tags/vmrestore-key").and_then(Value::as_str) == Some(key);
            if !ours {
                if matches!(spec, ResourceSpec::ResourceGroup { .. }) {
                    return Ok(resource_from(v, &id, spec, key, true));
                }
                return Err(CallError::new(
                    CallErrorKind::Conflict,
                    op,
                    format!(
                        "a {} named '{}' exists already and this restore did not make it: it is left as it is (choose another name or resource group)",
                        spec.kind(),
                        spec.name()
                    ),
                ));
            }
        }
        let v = match self
            .call(Method::PUT, &id, api_version, Some(&body), &op)
            .await
        {
            Ok(v) => v,
            Err(e) if !e.is_transient() && before.is_none() => {
                // ARM keeps a resource whose creation failed (in state
                // Failed): remove it, or clean-up would never know of it.
                // Only if it carries this step's tag: a 409 can mean that
                // someone else's resource of that name exists (a resource
                // group in another location, a name taken meanwhile).
                let _ = self.delete_if_ours(&id, api_version, key, &op).await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(rg) = resource_group_of(&id) {
            self.created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    (
                        spec.kind().into(),
                        rg.to_ascii_lowercase(),
                        spec.name().to_ascii_lowercase(),
                    ),
                    id.clone(),
                );
        }
        if let ResourceSpec::NetworkSecurityGroup {
            resource_group,
            attach_to,
            ..
        } = spec
        {
            self.attach_nsg(&id, resource_group, attach_to, &op).await?;
        }
        Ok(resource_from(&v, &id, spec, key, false))
    }

    async fn delete(&self, resource: &Resource) -> CallResult<()> {
        let op = format!("delete {} '{}'", resource.kind, resource.name);
        if let Some(s) = self.staged_disk(&resource.id) {
            // The managed disk made of it, if any, then the blob and the
            // writer's state.
            self.delete_if_ours(&resource.id, api::DISK, &resource.key, &op)
                .await?;
            let (_, auth) = self.staging(&s.account_id, &op).await?;
            let blob = BlobClient::new(self.http.clone(), &s.blob_url, auth)?;
            blob.delete().await?;
            blob.sibling(&format!("{}.vhd.vmrestore-state.json", resource.name))?
                .delete()
                .await?;
            return Ok(());
        }
        self.delete_if_ours(
            &resource.id,
            Self::api_of(&resource.id, &resource.kind),
            &resource.key,
            &op,
        )
        .await
    }

    async fn act(&self, key: &str, action: &CloudAction) -> CallResult<()> {
        match action {
            CloudAction::ConvertToManaged {
                resource_group,
                disks,
            } => self.convert_to_managed(key, resource_group, disks).await,
            CloudAction::PowerOn { resource_group, vm } => self.power_on(resource_group, vm).await,
            CloudAction::GrantKeyVaultAccess { vault, principal } => {
                self.grant_key_vault_access(vault, principal).await
            }
            CloudAction::DeleteExistingVm {
                subscription_id,
                resource_group,
                vm,
            } => {
                let id = self.vm_id_in(subscription_id, resource_group, vm)?;
                self.delete_existing_vm(&id, vm).await
            }
            CloudAction::RestoreExistingVm {
                subscription_id,
                resource_group,
                vm,
            } => {
                let id = self.vm_id_in(subscription_id, resource_group, vm)?;
                self.restore_existing_vm(&id, vm).await
            }
            CloudAction::VmAccessExtension {
                resource_group,
                vm,
                username,
            } => self.vm_access(resource_group, vm, username).await,
            other => Err(bad(
                "act",
                format!(
                    "{} is not supported by the ARM cloud yet",
                    serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v.get("type").cloned())
                        .unwrap_or_default()
                ),
            )),
        }
    }

    async fn open_disk(&self, disk: &Resource) -> CallResult<Box<dyn DiskWriter>> {
        let op = format!("open disk '{}' for upload", disk.name);
        if let Some(s) = self.staged_disk(&disk.id) {
            let ResourceSpec::Disk { size_bytes, .. } = s.spec else {
                return Err(bad(&op, "not a disk"));
            };
            let (_, auth) = self.staging(&s.account_id, &op).await?;
            let blob = BlobClient::new(self.http.clone(), &s.blob_url, auth)?;
            let state = blob.sibling(&format!("{}.vhd.vmrestore-state.json", disk.name))?;
            let w = PageBlobWriter::open(
                blob,
                Some(state),
                size_bytes,
                true,
                Arc::new(WriteStats::default()),
            )
            .await?;
            return Ok(Box::new(w));
        }
        let d = self
            .call(Method::GET, &disk.id, api::DISK, None, &op)
            .await?;
        let upload = d
            .pointer("/properties/creationData/uploadSizeBytes")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(&op, "the disk was not created for upload"))?;
        let body =
            json!({ "access": "Write", "durationInSeconds": self.cfg.upload_access_seconds });
        let v = self
            .call(
                Method::POST,
                &path::child(&disk.id, &["beginGetAccess"])?,
                api::DISK,
                Some(&body),
                &op,
            )
            .await?;
        let sas = v
            .get("accessSAS")
            .or_else(|| v.pointer("/properties/output/accessSAS"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CallError::new(
                    CallErrorKind::Fatal,
                    &op,
                    "beginGetAccess gave no accessSAS",
                )
            })?;
        let w = PageBlobWriter::open_url(
            self.http.clone(),
            sas,
            upload - 512,
            Arc::new(WriteStats::default()),
        )
        .await?;
        Ok(Box::new(w))
    }

    async fn close_disk(&self, disk: &Resource) -> CallResult<()> {
        let op = format!("end upload of disk '{}'", disk.name);
        if self.staged_disk(&disk.id).is_some() {
            return Ok(()); // a page blob: nothing to end
        }
        self.call(
            Method::POST,
            &path::child(&disk.id, &["endGetAccess"])?,
            api::DISK,
            None,
            &op,
        )
        .await
        .map(drop)
    }
}

/// The resource group named in an ARM ID.
fn resource_group_of(id: &str) -> Option<&str> {
    let mut parts = id.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case("resourceGroups") {
            return parts.next();
        }
    }
    None
}

/// The resource ARM answered with (its `id` as ARM spells it).
fn resource_from(v: &Value, id: &str, spec: &ResourceSpec, key: &str, existed: bool) -> Resource {
    Resource {
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(id)
            .to_string(),
        kind: spec.kind().to_string(),
        name: spec.name().to_string(),
        key: key.to_string(),
        existed,
    }
}

impl ArmCloud {
    /// Points each NIC at the NSG (`nsg_id`): read, change, write back.
    async fn attach_nsg(
        &self,
        nsg_id: &str,
        resource_group: &str,
        nics: &[String],
        op: &str,
    ) -> CallResult<()> {
        for nic in nics {
            let nic_id = self.id(None, resource_group, ResourceType::NetworkInterface, nic)?;
            let mut n = self
                .call(Method::GET, &nic_id, api::NETWORK, None, op)
                .await?;
            n["properties"]["networkSecurityGroup"] = json!({ "id": nsg_id });
            strip_read_only(&mut n);
            self.call(Method::PUT, &nic_id, api::NETWORK, Some(&n), op)
                .await?;
        }
        Ok(())
    }
}
