//! Azure and object stores: `ArmCloud`, `PageBlobSink` (storage auth) and
//! `ObjectStoreRepository`.

use std::sync::Arc;

use pyo3::prelude::*;
use restore_core::azure;
use restore_core::exec;
use restore_core::facade;

use crate::convert::to_py;
use crate::errors::to_py_err;
use crate::repository::Repository;
use crate::runtime::{blocking, runtime};

pub(crate) fn cloud_err(e: restore_core::error::CallError) -> PyErr {
    to_py_err(restore_core::Error::Cloud(e))
}

/// A backup repository in an object store (Azure Blob, S3, GCS, local files),
/// in the same format as `Repository`.
#[pyclass(module = "vmrestore._native", frozen)]
pub(crate) struct ObjectStoreRepository {
    pub(crate) inner: restore_core::repo::ObjectStoreRepository,
}

#[pymethods]
impl ObjectStoreRepository {
    /// `url` is `az://container/prefix`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `file:///dir` or `memory:///`; `options` are
    /// the store's (account, keys, endpoint, ...). Or give `endpoint`,
    /// `account`, `key` and `container` for an Azure storage account (or
    /// Azurite) with shared key.
    #[new]
    #[pyo3(signature = (url=None, options=None, endpoint=None, account=None, key=None, container=None, prefix=""))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        url: Option<String>,
        options: Option<std::collections::HashMap<String, String>>,
        endpoint: Option<String>,
        account: Option<String>,
        key: Option<String>,
        container: Option<String>,
        prefix: &str,
    ) -> PyResult<Self> {
        let settings = facade::ObjectStoreSettings {
            url,
            options: options.unwrap_or_default(),
            endpoint,
            account,
            key,
            container,
            prefix: prefix.to_string(),
        };
        let inner = facade::object_store(settings, "url").map_err(to_py_err)?;
        Ok(ObjectStoreRepository { inner })
    }
    /// Restore point IDs.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let r = self.inner.clone();
        blocking(py, move || {
            runtime()?
                .block_on(async move { r.list().await })
                .map_err(to_py_err)
        })
    }
    /// A restore point's manifest as a dict.
    fn manifest(&self, py: Python<'_>, id: String) -> PyResult<Py<PyAny>> {
        let r = self.inner.clone();
        let m = blocking(py, move || {
            runtime()?
                .block_on(async move { r.manifest(&id).await })
                .map_err(to_py_err)
        })?;
        to_py(py, &m)
    }
    /// Copies restore point `id` from a local `Repository`; returns the
    /// number of chunks sent (those already there are not sent again).
    fn upload_from(&self, py: Python<'_>, local: &Repository, id: String) -> PyResult<usize> {
        let (r, l) = (self.inner.clone(), local.inner.clone());
        blocking(py, move || {
            runtime()?
                .block_on(async move { r.upload_from(&l, &id).await })
                .map_err(to_py_err)
        })
    }
    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// Disks written as page blobs `<disk>.vhd` into an Azure container (or
/// Azurite): pass as `RestoreExecutor(..., blob_sink=...)`.
#[pyclass(module = "vmrestore._native", frozen)]
pub(crate) struct PageBlobSink {
    pub(crate) inner: Arc<azure::PageBlobSink>,
}

#[pymethods]
impl PageBlobSink {
    /// `container_url` like `https://acct.blob.core.windows.net/restores`;
    /// authorise with `account` and `key` (shared key) or `sas`.
    #[new]
    #[pyo3(signature = (container_url, account=None, key=None, sas=None))]
    fn new(
        container_url: &str,
        account: Option<String>,
        key: Option<String>,
        sas: Option<String>,
    ) -> PyResult<Self> {
        let auth = facade::storage_auth(account, key, sas).map_err(to_py_err)?;
        let inner = azure::PageBlobSink::new(container_url, auth).map_err(cloud_err)?;
        Ok(PageBlobSink {
            inner: Arc::new(inner),
        })
    }
    /// What was sent for `disk`: bytes_put, puts, bytes_cleared,
    /// bytes_unchanged, bytes_zero_skipped, bytes_read_back; or None.
    fn stats(&self, py: Python<'_>, disk: &str) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.stats(disk))
    }
    /// The bytes of a disk's blob (the VHD: data then footer), or None.
    fn read_disk<'py>(
        &self,
        py: Python<'py>,
        disk: String,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyBytes>>> {
        let s = self.inner.clone();
        let b = blocking(py, move || {
            runtime()?.block_on(async move {
                let blob = s.disk_blob(&disk).map_err(cloud_err)?;
                blob.get().await.map_err(cloud_err)
            })
        })?;
        Ok(b.map(|b| pyo3::types::PyBytes::new(py, &b)))
    }
    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// The Azure Resource Manager cloud. `token` is an access token for ARM
/// (the host refreshes it by making a new ArmCloud); it never appears in
/// errors or reprs.
#[pyclass(module = "vmrestore._native", frozen)]
pub(crate) struct ArmCloud {
    pub(crate) inner: Arc<azure::ArmCloud>,
}

#[pymethods]
impl ArmCloud {
    #[new]
    #[pyo3(signature = (subscription_id, token=None, tenant_id="", endpoint="https://management.azure.com", principal_object_id="", poll_interval_ms=2000, credential=None, managed_identity_client_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        subscription_id: &str,
        token: Option<String>,
        tenant_id: &str,
        endpoint: &str,
        principal_object_id: &str,
        poll_interval_ms: u64,
        credential: Option<&str>,
        managed_identity_client_id: Option<String>,
    ) -> PyResult<Self> {
        let cfg = azure::ArmConfig {
            endpoint: endpoint.into(),
            subscription_id: subscription_id.into(),
            tenant_id: tenant_id.into(),
            principal_object_id: principal_object_id.into(),
            poll_interval: std::time::Duration::from_millis(poll_interval_ms),
            ..Default::default()
        };
        let tp = facade::token_source(token, credential, tenant_id, managed_identity_client_id)
            .map_err(to_py_err)?;
        let inner = azure::ArmCloud::new(cfg, tp).map_err(cloud_err)?;
        Ok(ArmCloud {
            inner: Arc::new(inner),
        })
    }
    /// What this cloud can perform (give it to `plan(capabilities=...)`).
    fn capabilities(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &exec::Cloud::capabilities(&*self.inner))
    }
    /// The destination catalog read from ARM (regions with zones, VM sizes).
    fn catalog(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let c = self.inner.clone();
        let cat = blocking(py, move || {
            runtime()?
                .block_on(async move { exec::Cloud::catalog(&*c).await })
                .map_err(cloud_err)
        })?;
        to_py(py, &cat)
    }
    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}
