//! Staging storage accounts: disks staged as page blobs (written through a
//! shared key from `listKeys`), then made managed disks (`ConvertToManaged`).

use reqwest::Method;
use serde_json::{Value, json};

use super::{ArmCloud, Staged, api, bad, path};
use crate::azure::storage::{BlobClient, StorageAuth};
use crate::cloud::arm_bodies::ResourceType;
use crate::exec::{CallResult, Resource, ResourceSpec};

/// The container staged disks go to (the one Azure's tools use).
const STAGING_CONTAINER: &str = "vhds";

/// The account name of a blob endpoint: the host's first label
/// (`https://<account>.blob.core.windows.net/`), or the first path segment
/// for path-style endpoints such as the emulator's
/// (`http://127.0.0.1:10000/<account>/`).
fn endpoint_account(endpoint: &str) -> Option<String> {
    let u = reqwest::Url::parse(endpoint).ok()?;
    let host = u.host_str()?;
    let path_style = host.parse::<std::net::IpAddr>().is_ok()
        || host.starts_with('[')
        || host.eq_ignore_ascii_case("localhost");
    if path_style {
        u.path_segments()?
            .find(|s| !s.is_empty())
            .map(str::to_string)
    } else {
        host.split('.').next().map(str::to_string)
    }
}

impl ArmCloud {
    /// The blob endpoint of a staging account and a shared key for it (from
    /// `listKeys`), cached per account. The key stays in memory only.
    pub(super) async fn staging(
        &self,
        account_id: &str,
        op: &str,
    ) -> CallResult<(String, StorageAuth)> {
        let mut cache = self.staging_access.lock().await;
        if let Some(a) = cache.get(&account_id.to_ascii_lowercase()) {
            return Ok(a.clone());
        }
        let acct = self.get(account_id, api::STORAGE, op).await?;
        let endpoint = acct
            .pointer("/properties/primaryEndpoints/blob")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(op, "the staging account has no blob endpoint"))?
            .to_string();
        let name = endpoint_account(&endpoint)
            .ok_or_else(|| bad(op, format!("cannot tell the account of {endpoint}")))?;
        let keys = self
            .call(
                Method::POST,
                &path::child(account_id, &["listKeys"])?,
                api::STORAGE,
                None,
                op,
            )
            .await?;
        let key = keys
            .pointer("/keys/0/value")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(op, "listKeys gave no key"))?
            .to_string();
        let auth = StorageAuth::SharedKey { account: name, key };
        let endpoint = format!("{}/", endpoint.trim_end_matches('/'));
        cache.insert(
            account_id.to_ascii_lowercase(),
            (endpoint.clone(), auth.clone()),
        );
        Ok((endpoint, auth))
    }

    /// A staged disk: a page blob in the staging account's `vhds` container,
    /// written by `open_disk`, made a managed disk by `ConvertToManaged`.
    pub(super) async fn create_staged(
        &self,
        key: &str,
        spec: &ResourceSpec,
        op: &str,
    ) -> CallResult<Resource> {
        let ResourceSpec::Disk {
            subscription_id,
            resource_group,
            name,
            staging_account: Some(account),
            ..
        } = spec
        else {
            return Err(bad(op, "not a staged disk"));
        };
        let account_id = self.known_id("storage_account", resource_group, account, || {
            self.id(
                Some(subscription_id),
                resource_group,
                ResourceType::StorageAccount,
                account,
            )
        })?;
        let (endpoint, auth) = self.staging(&account_id, op).await?;
        // The disk name is a blob name here: one segment, no query.
        let blob_url = format!("{endpoint}{STAGING_CONTAINER}/{}.vhd", path::segment(name)?);
        let blob = BlobClient::new(self.http.clone(), &blob_url, auth)?;
        blob.create_container().await?;
        let id = self.id(
            Some(subscription_id),
            resource_group,
            ResourceType::Disk,
            name,
        )?;
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.to_ascii_lowercase(),
                Staged {
                    spec: spec.clone(),
                    account_id,
                    blob_url,
                    key: key.to_string(),
                },
            );
        Ok(Resource {
            id,
            kind: spec.kind().to_string(),
            name: name.clone(),
            key: key.to_string(),
            existed: false,
        })
    }

    pub(super) fn staged_disk(&self, id: &str) -> Option<Staged> {
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id.to_ascii_lowercase())
            .cloned()
    }

    /// Makes managed disks of staged page blobs (`createOption: Import`).
    pub(super) async fn convert_to_managed(
        &self,
        key: &str,
        resource_group: &str,
        disks: &[String],
    ) -> CallResult<()> {
        for disk in disks {
            let op = format!("make managed disk '{disk}' from its staged blob");
            let staged = self
                .staged
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|(_, s)| match &s.spec {
                    ResourceSpec::Disk {
                        resource_group: rg,
                        name,
                        ..
                    } => rg.eq_ignore_ascii_case(resource_group) && name.eq_ignore_ascii_case(disk),
                    _ => false,
                })
                .map(|(id, s)| (id.clone(), s.clone()));
            let Some((_, s)) = staged else {
                return Err(bad(&op, "no such staged disk in this run"));
            };
            // Tagged with the disk's own key (not this action's): the
            // managed disk is the disk step's resource.
            let _ = key;
            let (id, _, mut body) = self.body(&s.key, &s.spec, &op, true)?;
            body["properties"]["creationData"] = json!({
                "createOption": "Import",
                "sourceUri": s.blob_url,
                "storageAccountId": s.account_id,
            });
            self.call(Method::PUT, &id, api::DISK, Some(&body), &op)
                .await?;
        }
        Ok(())
    }
}
