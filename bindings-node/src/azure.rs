//! Azure and object stores: `ArmCloud`, `PageBlobSink` (storage auth) and
//! `ObjectStoreRepository`.

use std::collections::HashMap;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use restore_core::exec::{self};
use restore_core::facade::{self};
use serde_json::Value;

use crate::convert::*;
use crate::errors::*;
use crate::json::{self};
use crate::repository::Repository;
use crate::runtime::*;

pub(crate) fn cloud_err(e: restore_core::error::CallError) -> CoreError {
    CoreError::Cloud(e)
}

/// Options of an `ObjectStoreRepository`.
#[napi(object)]
#[derive(Default)]
pub struct ObjectStoreOptions {
    /// `az://container/prefix`, `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `file:///dir` or `memory:///`, with `options` for the store.
    pub url: Option<String>,
    /// The store's options (account, keys, region, endpoint, ...): secrets,
    /// never shown in errors.
    pub options: Option<HashMap<String, String>>,
    /// Or an Azure storage account (or Azurite) with shared key: endpoint ...
    pub endpoint: Option<String>,
    /// ... account ...
    pub account: Option<String>,
    /// ... key ...
    pub key: Option<String>,
    /// ... and container.
    pub container: Option<String>,
    /// Path prefix inside the container or bucket.
    pub prefix: Option<String>,
}

/// A backup repository in an object store (Azure Blob, S3, GCS, local
/// files), in the same format as `Repository`.
#[napi]
pub struct ObjectStoreRepository {
    pub(crate) inner: restore_core::repo::ObjectStoreRepository,
}

#[napi]
impl ObjectStoreRepository {
    #[napi(constructor)]
    pub fn new(options: ObjectStoreOptions) -> napi::Result<Self, Code> {
        let o = options;
        let settings = facade::ObjectStoreSettings {
            url: o.url,
            options: o.options.unwrap_or_default(),
            endpoint: o.endpoint,
            account: o.account,
            key: o.key,
            container: o.container,
            prefix: o.prefix.unwrap_or_default(),
        };
        let inner = facade::object_store(settings, "options").map_err(coded)?;
        Ok(ObjectStoreRepository { inner })
    }

    /// Restore point IDs.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn list<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Vec<String>>> {
        let r = self.inner.clone();
        promise(env, async move { r.list().await }, Ok)
    }

    /// Copies restore point `id` from a local `Repository`; resolves to the
    /// number of chunks sent (those already there are not sent again).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn upload_from<'env>(
        &self,
        env: &'env Env,
        local: &Repository,
        id: String,
    ) -> Result<PromiseRaw<'env, u32>> {
        let (r, l) = (self.inner.clone(), local.inner.clone());
        promise(env, async move { r.upload_from(&l, &id).await }, |n| {
            Ok(n as u32)
        })
    }
}

/// Authorisation of a `PageBlobSink`: `account` and `key`, or `sas`.
#[napi(object)]
#[derive(Default)]
pub struct BlobAuth {
    /// Storage account (shared key).
    pub account: Option<String>,
    /// Account key (a secret).
    pub key: Option<String>,
    /// A SAS query string (a secret).
    pub sas: Option<String>,
}

/// Disks written as page blobs `<disk>.vhd` into an Azure container (or
/// Azurite).
#[napi]
pub struct PageBlobSink {
    pub(crate) inner: Arc<restore_core::azure::PageBlobSink>,
}

#[napi]
impl PageBlobSink {
    #[napi(constructor)]
    pub fn new(container_url: String, auth: Option<BlobAuth>) -> napi::Result<Self, Code> {
        let a = auth.unwrap_or_default();
        let auth = facade::storage_auth(a.account, a.key, a.sas).map_err(coded)?;
        let inner = restore_core::azure::PageBlobSink::new(&container_url, auth)
            .map_err(|e| coded(cloud_err(e)))?;
        Ok(PageBlobSink {
            inner: Arc::new(inner),
        })
    }

    /// What was sent for `disk` (bytes_put, puts, bytes_cleared,
    /// bytes_unchanged, bytes_zero_skipped, bytes_read_back), or null.
    #[napi(ts_return_type = "Record<string, number> | null")]
    pub fn stats(&self, disk: String) -> napi::Result<Value, Code> {
        to_js(&self.inner.stats(&disk))
    }

    /// The bytes of a disk's blob (data, then the VHD footer), or null.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn read_disk<'env>(
        &self,
        env: &'env Env,
        disk: String,
    ) -> Result<PromiseRaw<'env, Option<Buffer>>> {
        let s = self.inner.clone();
        promise(
            env,
            async move {
                let blob = s.disk_blob(&disk).map_err(cloud_err)?;
                blob.get().await.map_err(cloud_err)
            },
            |b| Ok(b.map(|b| Buffer::from(b.to_vec()))),
        )
    }
}

/// Options of an `ArmCloud`.
#[napi(object)]
pub struct ArmCloudOptions {
    /// Subscription of resources whose request names none.
    pub subscription_id: String,
    /// A fixed access token for ARM (a secret; make a new ArmCloud to
    /// refresh it). Give this or `credential`.
    pub token: Option<String>,
    /// An `azure_identity` credential by name: `azure-cli`,
    /// `managed-identity` or `developer-tools` (tokens refreshed as needed).
    pub credential: Option<String>,
    /// Client ID of a user-assigned managed identity.
    pub managed_identity_client_id: Option<String>,
    /// Tenant (key vaults need it).
    pub tenant_id: Option<String>,
    /// Default `https://management.azure.com`.
    pub endpoint: Option<String>,
    /// Object ID of the application's service principal (key-vault grants).
    pub principal_object_id: Option<String>,
    /// Poll interval of long-running operations without Retry-After (ms).
    pub poll_interval_ms: Option<f64>,
}

/// The Azure Resource Manager cloud.
#[napi]
pub struct ArmCloud {
    pub(crate) inner: Arc<restore_core::azure::ArmCloud>,
}

#[napi]
impl ArmCloud {
    #[napi(constructor)]
    pub fn new(options: ArmCloudOptions) -> napi::Result<Self, Code> {
        let poll_ms = json::whole(
            "pollIntervalMs",
            options.poll_interval_ms,
            u64::from(u32::MAX),
        )
        .map_err(coded)?;
        let cfg = restore_core::azure::ArmConfig {
            endpoint: options
                .endpoint
                .unwrap_or_else(|| "https://management.azure.com".into()),
            subscription_id: options.subscription_id,
            tenant_id: options.tenant_id.unwrap_or_default(),
            principal_object_id: options.principal_object_id.unwrap_or_default(),
            poll_interval: std::time::Duration::from_millis(poll_ms.unwrap_or(2000)),
            ..Default::default()
        };
        let tp = facade::token_source(
            options.token,
            options.credential.as_deref(),
            &cfg.tenant_id,
            options.managed_identity_client_id,
        )
        .map_err(coded)?;
        let inner = restore_core::azure::ArmCloud::new(cfg, tp).map_err(|e| coded(cloud_err(e)))?;
        Ok(ArmCloud {
            inner: Arc::new(inner),
        })
    }

    /// What this cloud can perform (give it to `plan(..., { capabilities })`).
    #[napi(ts_return_type = "Capabilities")]
    pub fn capabilities(&self) -> napi::Result<Value, Code> {
        to_js(&exec::Cloud::capabilities(&*self.inner))
    }

    /// The destination catalog read from ARM (regions with zones, VM sizes).
    #[napi(ts_return_type = "Promise<Catalog>")]
    pub fn catalog<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Value>> {
        let c = self.inner.clone();
        promise(
            env,
            async move { exec::Cloud::catalog(&*c).await.map_err(cloud_err) },
            |cat| serde_json::to_value(&cat).map_err(|e| Error::from_reason(e.to_string())),
        )
    }
}
