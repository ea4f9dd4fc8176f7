//! `Repository`: a local backup repository (list, manifests, importing raw
//! images). Below `executor.rs` and `azure.rs`, which both take it.

use std::collections::HashMap;
use std::path::PathBuf;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use restore_core::model::RestorePoint;
use restore_core::repo::LocalRepository;
use serde_json::Value;

use crate::convert::*;
use crate::errors::*;
use crate::json::{self, Json};
use crate::runtime::*;

/// A local backup repository (manifest plus content-addressed chunks).
#[napi]
pub struct Repository {
    pub(crate) inner: LocalRepository,
}

#[napi]
impl Repository {
    /// Opens the repository at `path`; `create` makes the directories.
    #[napi(constructor)]
    pub fn new(path: String, create: Option<bool>) -> napi::Result<Self, Code> {
        let inner = if create.unwrap_or(false) {
            LocalRepository::create(path)
        } else {
            LocalRepository::open(path)
        }
        .map_err(coded)?;
        Ok(Repository { inner })
    }

    /// Restore point IDs.
    #[napi]
    pub fn list(&self) -> napi::Result<Vec<String>, Code> {
        self.inner.list().map_err(coded)
    }

    /// A restore point's manifest.
    #[napi(ts_return_type = "Record<string, unknown>")]
    pub fn manifest(&self, id: String) -> napi::Result<Value, Code> {
        to_js(&self.inner.manifest(&id).map_err(coded)?)
    }

    /// Imports raw disk images as a restore point: `images` maps disk names
    /// (or `disk/volume_group`) to image paths. Resolves to the manifest.
    #[napi(
        ts_args_type = "restorePoint: RestorePoint | string, images: Record<string, string>, chunkSize?: number",
        ts_return_type = "Promise<Record<string, unknown>>"
    )]
    pub fn import_raw<'env>(
        &self,
        env: &'env Env,
        restore_point: Json,
        images: HashMap<String, String>,
        chunk_size: Option<f64>,
    ) -> Result<PromiseRaw<'env, Value>> {
        let repo = self.inner.clone();
        promise(
            env,
            async move {
                let rp: RestorePoint = doc(restore_point)?;
                let chunk_size = json::whole("chunkSize", chunk_size, u64::from(u32::MAX))?;
                tokio::task::spawn_blocking(move || {
                    let mut list: Vec<(String, PathBuf)> = images
                        .into_iter()
                        .map(|(k, v)| (k, PathBuf::from(v)))
                        .collect();
                    list.sort();
                    let refs: Vec<(&str, &std::path::Path)> = list
                        .iter()
                        .map(|(n, p)| (n.as_str(), p.as_path()))
                        .collect();
                    repo.import_raw(&rp, &refs, chunk_size.unwrap_or(4 << 20))
                })
                .await
                .map_err(|e| CoreError::Repository(format!("the import task failed: {e}")))?
            },
            |m| serde_json::to_value(&m).map_err(|e| Error::from_reason(e.to_string())),
        )
    }
}
