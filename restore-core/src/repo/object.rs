//! The repository format (see the parent module) in an object store: Azure
//! Blob, S3, GCS, local files or memory, through the `object_store` crate
//! (cargo feature `object-store`). A backup kept in a storage account
//! restores the same way as one on disk: same manifest, same
//! content-addressed chunks, every chunk verified when read.
//!
//! ```text
//! <prefix>/restore-points/<id>/manifest.json
//! <prefix>/chunks/<first two hex digits>/<sha256 hex>
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{ChunkRef, LocalRepository, MAX_MANIFEST, Manifest, is_hex64, valid_id};
use crate::error::{Error, Result};

/// A repository in an object store.
#[derive(Clone)]
pub struct ObjectStoreRepository {
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
}

impl std::fmt::Debug for ObjectStoreRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The store's Display names the service and bucket, not credentials.
        f.debug_struct("ObjectStoreRepository")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .finish()
    }
}

fn repo_err(what: impl std::fmt::Display, e: object_store::Error) -> Error {
    Error::Repository(format!("{what}: {}", describe(&e)))
}

/// An object-store error without anything that could be a credential.
fn describe(e: &object_store::Error) -> String {
    match e {
        object_store::Error::NotFound { path, .. } => format!("{path} not found"),
        other => {
            let s = other.to_string();
            // URLs may carry SAS tokens: cut queries.
            s.split_whitespace()
                .map(|w| match w.find("://") {
                    Some(_) => crate::redact::redact_url(w),
                    None => w.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
    }
}

impl ObjectStoreRepository {
    /// A repository under `prefix` (may be empty) of `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self> {
        let prefix = ObjPath::parse(prefix.trim_matches('/'))
            .map_err(|e| Error::Repository(format!("prefix '{prefix}': {e}")))?;
        if prefix.parts().any(|p| p.as_ref() == "..") {
            return Err(Error::Repository(format!(
                "prefix '{prefix}' must not contain '..'"
            )));
        }
        Ok(ObjectStoreRepository { store, prefix })
    }

    /// A repository from a URL: `az://container/prefix`,
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `file:///dir`,
    /// `memory:///`, with the store's options (account, keys, endpoint,
    /// ...; see `object_store`'s builders). Options are secrets: they never
    /// appear in errors.
    pub fn from_url<I, K, V>(url: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let u =
            url::Url::parse(url).map_err(|e| Error::Repository(format!("repository URL: {e}")))?;
        let (store, path) =
            object_store::parse_url_opts(&u, options).map_err(|e| repo_err("repository URL", e))?;
        Ok(ObjectStoreRepository {
            store: Arc::from(store),
            prefix: path,
        })
    }

    /// A repository in a container of an Azure storage account reached at
    /// `endpoint` with shared key: `https://<account>.blob.core.windows.net`,
    /// or Azurite's `http://127.0.0.1:<port>/devstoreaccount1` with its
    /// well-known account and key. The key never appears in errors.
    pub fn azure_shared_key(
        endpoint: &str,
        account: &str,
        key: &str,
        container: &str,
        prefix: &str,
    ) -> Result<Self> {
        let store = object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(account)
            .with_access_key(key)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint.trim_end_matches('/').to_string())
            .with_container_name(container)
            .build()
            .map_err(|e| repo_err("Azurite store", e))?;
        Self::new(Arc::new(store), prefix)
    }

    fn path(&self, rest: &str) -> ObjPath {
        let mut p = self.prefix.clone();
        for part in rest.split('/') {
            p = p.clone().join(part);
        }
        p
    }

    fn manifest_path(&self, id: &str) -> Result<ObjPath> {
        if !valid_id(id) {
            return Err(Error::Repository(format!(
                "'{}' is not a restore point ID (letters, digits, '-', '_', '.'; no path separators)",
                id.chars().take(64).collect::<String>()
            )));
        }
        Ok(self.path(&format!("restore-points/{id}/manifest.json")))
    }

    fn chunk_path(&self, sha: &str) -> ObjPath {
        self.path(&format!("chunks/{}/{sha}", &sha[..2]))
    }

    /// Restore point IDs.
    pub async fn list(&self) -> Result<Vec<String>> {
        let dir = self.path("restore-points");
        let r = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| repo_err("list restore points", e))?;
        let mut ids: Vec<String> = r
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|id| valid_id(id))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Reads and checks a restore point's manifest.
    pub async fn manifest(&self, id: &str) -> Result<Manifest> {
        let path = self.manifest_path(id)?;
        let what = format!("restore point '{id}'");
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| repo_err(&what, e))?;
        if meta.size > MAX_MANIFEST {
            return Err(Error::Repository(format!(
                "{what}: the manifest exceeds {MAX_MANIFEST} bytes"
            )));
        }
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(|e| repo_err(&what, e))?
            .bytes()
            .await
            .map_err(|e| repo_err(&what, e))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| Error::Repository(format!("{what}: the manifest is not UTF-8: {e}")))?;
        super::parse_manifest(text, id)
    }

    /// Whether a chunk is present with the length the manifest gives.
    pub async fn has_chunk(&self, chunk: &ChunkRef) -> Result<bool> {
        if !is_hex64(&chunk.sha256) {
            return Ok(false);
        }
        match self.store.head(&self.chunk_path(&chunk.sha256)).await {
            Ok(m) => Ok(m.size == chunk.length),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(repo_err(format!("chunk {}", chunk.sha256), e)),
        }
    }

    /// Reads one chunk of `disk`, checking its length and SHA-256.
    pub async fn read_chunk(&self, disk: &str, chunk: &ChunkRef) -> Result<Bytes> {
        super::check_chunk_ref(disk, chunk)?;
        let integrity = |m: String| super::chunk_error(disk, chunk, m);
        let path = self.chunk_path(&chunk.sha256);
        let read = async { self.store.get(&path).await?.bytes().await };
        let data = match read.await {
            Ok(d) => d,
            Err(e @ object_store::Error::NotFound { .. }) => {
                return Err(integrity(format!(
                    "chunk {} cannot be read: {}",
                    chunk.sha256,
                    describe(&e)
                )));
            }
            // Anything else (network, throttling) is not the data's fault:
            // transient, for the executor to retry (the store has retried
            // already under its own policy).
            Err(e) => {
                return Err(Error::Cloud(crate::exec::CallError::new(
                    crate::exec::CallErrorKind::Unavailable,
                    format!("read chunk {} of disk '{disk}'", chunk.sha256),
                    describe(&e),
                )));
            }
        };
        super::verify_chunk(disk, chunk, &data)?;
        Ok(data)
    }

    /// Copies restore point `id` (manifest and chunks) from a local
    /// repository; chunks already present are not sent again. The manifest
    /// goes last, so a partial copy is never listed. Returns the chunks sent.
    pub async fn upload_from(&self, local: &LocalRepository, id: &str) -> Result<usize> {
        let m = local.manifest(id)?;
        let mut todo: Vec<ChunkRef> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for d in &m.disks {
            for c in &d.chunks {
                if seen.insert(c.sha256.clone()) {
                    todo.push(c.clone());
                }
            }
        }
        let results: Vec<Result<bool>> = futures::stream::iter(todo)
            .map(|c| {
                let local = local.clone();
                async move {
                    if self.has_chunk(&c).await? {
                        return Ok(false);
                    }
                    let data = tokio::task::spawn_blocking(move || {
                        local.read_chunk("upload", &c).map(|d| (c, d))
                    })
                    .await
                    .map_err(|e| Error::Repository(format!("read task failed: {e}")))??;
                    let (c, data) = data;
                    self.store
                        .put(&self.chunk_path(&c.sha256), PutPayload::from(data))
                        .await
                        .map_err(|e| repo_err(format!("upload chunk {}", c.sha256), e))?;
                    Ok(true)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut sent = 0;
        for r in results {
            if r? {
                sent += 1;
            }
        }
        let json = serde_json::to_vec_pretty(&m)
            .map_err(|e| Error::Repository(format!("restore point '{id}': {e}")))?;
        self.store
            .put(&self.manifest_path(id)?, PutPayload::from(json))
            .await
            .map_err(|e| repo_err(format!("upload the manifest of '{id}'"), e))?;
        Ok(sent)
    }
}

#[async_trait]
impl crate::exec::Repository for ObjectStoreRepository {
    async fn list(&self) -> Result<Vec<String>> {
        ObjectStoreRepository::list(self).await
    }
    async fn manifest(&self, id: &str) -> Result<Manifest> {
        ObjectStoreRepository::manifest(self, id).await
    }
    async fn has_chunk(&self, chunk: &ChunkRef) -> Result<bool> {
        ObjectStoreRepository::has_chunk(self, chunk).await
    }
    async fn read_chunk(&self, disk: &str, chunk: &ChunkRef) -> Result<Bytes> {
        ObjectStoreRepository::read_chunk(self, disk, chunk).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_repository_copied_to_memory_reads_back_verified() {
        let dir = tempfile::tempdir().unwrap();
        let (local, restores) = crate::demo::build(dir.path()).unwrap();
        let id = restores[0].restore_point.id.clone();
        let store = Arc::new(object_store::memory::InMemory::new());
        let repo = ObjectStoreRepository::new(store.clone(), "backups/site-a").unwrap();
        let sent = repo.upload_from(&local, &id).await.unwrap();
        assert!(sent > 0);
        assert_eq!(
            repo.upload_from(&local, &id).await.unwrap(),
            0,
            "nothing twice"
        );
        assert_eq!(repo.list().await.unwrap(), vec![id.clone()]);
        let m = repo.manifest(&id).await.unwrap();
        assert_eq!(m, local.manifest(&id).unwrap());
        let c = &m.disks[0].chunks[0];
        assert_eq!(
            repo.read_chunk(&m.disks[0].name, c).await.unwrap().as_ref(),
            local.read_chunk(&m.disks[0].name, c).unwrap().as_slice()
        );
        // A flipped byte is caught, naming the disk and offset.
        let p = repo.chunk_path(&c.sha256);
        let mut bad = store.get(&p).await.unwrap().bytes().await.unwrap().to_vec();
        bad[7] ^= 1;
        store.put(&p, PutPayload::from(bad)).await.unwrap();
        let e = repo.read_chunk("osdisk", c).await.unwrap_err();
        assert_eq!(e.code(), "E_INTEGRITY");
        assert!(
            e.to_string()
                .contains(&format!("disk 'osdisk' at offset {}", c.offset)),
            "{e}"
        );
        // IDs cannot walk out of the prefix.
        for bad in ["../x", "a/b", ".."] {
            assert_eq!(repo.manifest(bad).await.unwrap_err().code(), "E_REPOSITORY");
        }
        assert!(ObjectStoreRepository::new(store, "a/../b").is_err());
    }
}
