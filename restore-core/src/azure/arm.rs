//! The `Cloud` over Azure Resource Manager's REST API (plain reqwest; see
//! ARCHITECTURE.md for why not the `azure_core` pipeline).
//!
//! - Every create is a PUT of the whole resource, idempotent by design: a
//!   retried PUT with the same body is safe, and the step's key goes into a
//!   `vmrestore-key` tag.
//! - Long-running operations: `Azure-AsyncOperation` (polled until
//!   `Succeeded`, `Failed` or `Canceled`) or `Location` (202 while running);
//!   `Retry-After` is honoured; a terminal failure is surfaced with ARM's
//!   error code and message.
//! - 429 and 5xx come back as transient `CallError`s with `Retry-After`, so
//!   the executor's retry policy applies; the latest
//!   `x-ms-ratelimit-remaining-subscription-writes` is kept in the stats.
//! - Disks are managed disks created for upload (`uploadSizeBytes = size +
//!   512`), written through the SAS URL of `beginGetAccess` with the
//!   page-blob writer, then `endGetAccess`.
//! - Tokens come from a [`TokenProvider`] and are never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use super::auth::{TokenError, TokenProvider};
use super::pageblob::{PageBlobWriter, WriteStats};
use super::storage::{self, BlobClient, StorageAuth, http_client, transport_error};
use crate::exec::{
    CallError, CallErrorKind, CallResult, CloudAction, DiskWriter, Resource, ResourceSpec,
};
use crate::model::{Catalog, DiskSku, Generation, OsFamily, Region, SecurityType, VmSize};

/// api-versions (AZURE.md).
pub mod api {
    /// Microsoft.Compute/virtualMachines.
    pub const VM: &str = "2025-04-01";
    /// Microsoft.Compute/disks.
    pub const DISK: &str = "2025-01-02";
    /// Microsoft.Network (NICs, NSGs, public IPs).
    pub const NETWORK: &str = "2024-10-01";
    /// Microsoft.KeyVault/vaults.
    pub const KEY_VAULT: &str = "2024-11-01";
    /// Resource groups.
    pub const RESOURCES: &str = "2021-04-01";
    /// Microsoft.Storage/storageAccounts.
    pub const STORAGE: &str = "2023-05-01";
    /// Subscription locations.
    pub const LOCATIONS: &str = "2022-12-01";
    /// Microsoft.Compute/skus.
    pub const SKUS: &str = "2021-07-01";
}

/// Where and as whom the ARM cloud works.
#[derive(Debug, Clone)]
pub struct ArmConfig {
    /// `https://management.azure.com` (or a sovereign cloud, or a test server).
    pub endpoint: String,
    /// Subscription of resources whose spec names none.
    pub subscription_id: String,
    /// Tenant (key vaults need it).
    pub tenant_id: String,
    /// Object ID of the application's service principal (key-vault grants).
    pub principal_object_id: String,
    /// Poll interval when ARM gives no `Retry-After`.
    pub poll_interval: Duration,
    /// Longest wait for one long-running operation.
    pub lro_timeout: Duration,
    /// Lifetime of a disk's upload SAS.
    pub upload_access_seconds: u32,
}

impl Default for ArmConfig {
    fn default() -> Self {
        ArmConfig {
            endpoint: "https://management.azure.com".into(),
            subscription_id: String::new(),
            tenant_id: String::new(),
            principal_object_id: String::new(),
            poll_interval: Duration::from_secs(2),
            lro_timeout: Duration::from_secs(3600),
            upload_access_seconds: 86_400,
        }
    }
}

/// A credential that the VMAccess extension sets on a restored VM.
#[derive(Clone)]
pub enum VmCredential {
    /// A new password.
    Password(String),
    /// An SSH public key to authorise (Linux).
    SshPublicKey(String),
}

impl std::fmt::Debug for VmCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VmCredential::Password(_) => f.write_str("Password(<redacted>)"),
            VmCredential::SshPublicKey(_) => f.write_str("SshPublicKey(<redacted>)"),
        }
    }
}

/// Gives the credential to reset on a restored VM (`vm_access_extension`
/// post-actions). Plans never hold it: the host answers at run time, from
/// its vault or its operator. Implemented for closures.
#[async_trait]
pub trait VmCredentials: Send + Sync {
    /// The credential for `username` on `vm`.
    async fn credential(&self, vm: &str, username: &str) -> Result<VmCredential, TokenError>;
}

#[async_trait]
impl<F> VmCredentials for F
where
    F: Fn(&str, &str) -> Result<VmCredential, TokenError> + Send + Sync,
{
    async fn credential(&self, vm: &str, username: &str) -> Result<VmCredential, TokenError> {
        self(vm, username)
    }
}

/// Counters of an [`ArmCloud`].
#[derive(Debug, Default)]
pub struct ArmStats {
    /// Requests sent.
    pub requests: AtomicU64,
    /// Polls of long-running operations.
    pub polls: AtomicU64,
    /// The last `x-ms-ratelimit-remaining-subscription-writes` seen.
    pub remaining_writes: AtomicU64,
}

/// The ARM cloud.
pub struct ArmCloud {
    http: reqwest::Client,
    cfg: ArmConfig,
    token: Arc<dyn TokenProvider>,
    /// Counters.
    pub stats: Arc<ArmStats>,
    /// IDs of what this cloud created, by `(kind, resource group, name)`
    /// (lower case): actions name resources without their subscription.
    created: std::sync::Mutex<std::collections::HashMap<(String, String, String), String>>,
    /// Where VMAccess credentials come from.
    vm_credentials: Option<Arc<dyn VmCredentials>>,
    /// Disks staged as page blobs, by the (lower-case) ID of the managed
    /// disk `ConvertToManaged` makes of them.
    staged: std::sync::Mutex<std::collections::HashMap<String, Staged>>,
    /// Blob endpoint and key of each staging account, by its ID.
    staging_access: tokio::sync::Mutex<std::collections::HashMap<String, (String, StorageAuth)>>,
    /// Existing VMs deleted in place, as ARM showed them before the delete
    /// (by lower-case ID): what `RestoreExistingVm` puts back.
    deleted_vms: std::sync::Mutex<std::collections::HashMap<String, Value>>,
}

/// A disk staged as a page blob in a storage account.
#[derive(Clone)]
struct Staged {
    /// The disk's spec (what the managed disk is made from).
    spec: ResourceSpec,
    /// ARM ID of the storage account.
    account_id: String,
    /// The blob (`<endpoint>vhds/<disk>.vhd`), without a query.
    blob_url: String,
    /// The idempotency key of the step that created the disk: the managed
    /// disk made of the blob carries it, so clean-up can prove it ours.
    key: String,
}

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

impl std::fmt::Debug for ArmCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmCloud")
            .field("endpoint", &storage::redact_url(&self.cfg.endpoint))
            .field("subscription_id", &self.cfg.subscription_id)
            .finish()
    }
}

/// Confidential VMs need their disks' security state (VMGS) restored with
/// them, which an upload of the disk images cannot carry.
fn confidential(op: &str) -> CallError {
    bad(
        op,
        "confidential VMs are not supported by the ARM cloud: their disks need the VM guest state, which a disk upload cannot carry",
    )
}

fn bad(op: &str, m: impl Into<String>) -> CallError {
    CallError::new(CallErrorKind::Invalid, op, m)
}

fn sku_name(s: DiskSku) -> &'static str {
    match s {
        DiskSku::StandardHdd => "Standard_LRS",
        DiskSku::StandardSsd => "StandardSSD_LRS",
        DiskSku::Premium => "Premium_LRS",
        DiskSku::PremiumV2 => "PremiumV2_LRS",
        DiskSku::Ultra => "UltraSSD_LRS",
    }
}

fn os_type(o: OsFamily) -> &'static str {
    match o {
        OsFamily::Windows => "Windows",
        OsFamily::Linux => "Linux",
    }
}

fn hyperv(g: Generation) -> &'static str {
    match g {
        Generation::Gen1 => "V1",
        Generation::Gen2 => "V2",
    }
}

/// ARM paths are built here and nowhere else. A path is a list of segments;
/// each is refused when it is empty, `.` or `..`, or holds `/`, `\`, `?`,
/// `#`, `%`, whitespace or a control character, so that no name can end a
/// path early, climb out of it, add a query or a fragment, or smuggle in an
/// encoded separator; then it is percent-encoded into the URL. Resource IDs
/// travel as plain `/`-joined segments (as ARM writes them) and are split
/// and checked again whenever one becomes a URL, so an ID from anywhere (a
/// plan, ARM's own answer) gets the same test. The names were validated
/// with Azure's naming rules at the model boundary already; this is the
/// defence in depth for plans that did not come from the planner.
mod path {
    use super::{CallError, CallErrorKind, CallResult};

    fn refuse(segment: &str, why: &str) -> CallError {
        let shown: String = segment
            .chars()
            .take(64)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        CallError::new(
            CallErrorKind::Invalid,
            "build an ARM path",
            format!("'{shown}' cannot be part of an ARM path: {why}"),
        )
    }

    /// Checks one segment.
    pub(super) fn segment(s: &str) -> CallResult<&str> {
        if s.is_empty() {
            return Err(refuse(s, "it is empty"));
        }
        if s == "." || s == ".." {
            return Err(refuse(s, "it is a relative path"));
        }
        if let Some(c) = s.chars().find(|c| {
            matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control() || c.is_whitespace()
        }) {
            return Err(refuse(s, &format!("it holds {c:?}")));
        }
        Ok(s)
    }

    /// `/a/b/c` from checked segments; a segment given as `Microsoft.Compute/disks`
    /// (a provider and type) is taken as its parts.
    pub(super) fn join(segments: &[&str]) -> CallResult<String> {
        let mut out = String::new();
        for s in segments {
            for part in s.split('/') {
                out.push('/');
                out.push_str(segment(part)?);
            }
        }
        Ok(out)
    }

    /// `id` followed by more segments.
    pub(super) fn child(id: &str, segments: &[&str]) -> CallResult<String> {
        split(id)?;
        let mut out = id.to_string();
        for s in segments {
            out.push('/');
            out.push_str(segment(s)?);
        }
        Ok(out)
    }

    /// The segments of an ID, each checked.
    pub(super) fn split(id: &str) -> CallResult<Vec<&str>> {
        let Some(rest) = id.strip_prefix('/') else {
            return Err(refuse(id, "an ARM path starts with '/'"));
        };
        rest.split('/').map(segment).collect()
    }

    /// The URL of `id` at `endpoint`, every segment percent-encoded.
    pub(super) fn url(endpoint: &str, id: &str, api_version: &str) -> CallResult<String> {
        let mut out = String::from(endpoint);
        for s in split(id)? {
            out.push('/');
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'(' | b')')
                {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
        out.push_str("?api-version=");
        out.push_str(segment(api_version)?);
        Ok(out)
    }
}

impl ArmCloud {
    /// An ARM cloud with `token` (scope `<endpoint>/.default`).
    pub fn new(cfg: ArmConfig, token: Arc<dyn TokenProvider>) -> CallResult<Self> {
        if cfg.subscription_id.is_empty() {
            return Err(bad("configure ARM", "subscription_id is required"));
        }
        Ok(ArmCloud {
            http: http_client()?,
            cfg: ArmConfig {
                endpoint: cfg.endpoint.trim_end_matches('/').to_string(),
                ..cfg
            },
            token,
            stats: Arc::new(ArmStats::default()),
            created: Default::default(),
            vm_credentials: None,
            staged: Default::default(),
            staging_access: Default::default(),
            deleted_vms: Default::default(),
        })
    }

    /// Where the credentials of `vm_access_extension` actions come from.
    /// Without it, such actions fail with a clear error.
    pub fn with_vm_credentials(mut self, credentials: Arc<dyn VmCredentials>) -> Self {
        self.vm_credentials = Some(credentials);
        self
    }

    /// The blob endpoint of a staging account and a shared key for it (from
    /// `listKeys`), cached per account. The key stays in memory only.
    async fn staging(&self, account_id: &str, op: &str) -> CallResult<(String, StorageAuth)> {
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
    async fn create_staged(
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
                "Microsoft.Storage/storageAccounts",
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
            "Microsoft.Compute/disks",
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

    fn staged_disk(&self, id: &str) -> Option<Staged> {
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id.to_ascii_lowercase())
            .cloned()
    }

    /// Makes managed disks of staged page blobs (`createOption: Import`).
    async fn convert_to_managed(
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

    /// Installs the VMAccess extension on a VM to set `username`'s
    /// credential. The secret goes only into the extension's
    /// `protectedSettings` (encrypted by Azure, never returned).
    async fn vm_access(&self, resource_group: &str, vm: &str, username: &str) -> CallResult<()> {
        let op = format!("reset access of '{username}' on VM '{vm}'");
        let source = self.vm_credentials.as_ref().ok_or_else(|| {
            bad(
                &op,
                "no VM credential source: give the ARM cloud one (with_vm_credentials)",
            )
        })?;
        let credential = source
            .credential(vm, username)
            .await
            .map_err(|e| CallError::new(CallErrorKind::Fatal, &op, e.to_string()))?;
        let id = self.vm_id(resource_group, vm)?;
        let v = self.call(Method::GET, &id, api::VM, None, &op).await?;
        let location = v.get("location").cloned().unwrap_or(Value::Null);
        let os = v
            .pointer("/properties/storageProfile/osDisk/osType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let properties = match (os, &credential) {
            ("Linux", VmCredential::Password(p)) => json!({
                "publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux",
                "typeHandlerVersion": "1.5", "autoUpgradeMinorVersion": true,
                "protectedSettings": { "username": username, "password": p }
            }),
            ("Linux", VmCredential::SshPublicKey(k)) => json!({
                "publisher": "Microsoft.OSTCExtensions", "type": "VMAccessForLinux",
                "typeHandlerVersion": "1.5", "autoUpgradeMinorVersion": true,
                "protectedSettings": { "username": username, "ssh_key": k }
            }),
            ("Windows", VmCredential::Password(p)) => json!({
                "publisher": "Microsoft.Compute", "type": "VMAccessAgent",
                "typeHandlerVersion": "2.4", "autoUpgradeMinorVersion": true,
                "settings": { "UserName": username },
                "protectedSettings": { "Password": p }
            }),
            ("Windows", VmCredential::SshPublicKey(_)) => {
                return Err(bad(&op, "a Windows VM takes a password, not an SSH key"));
            }
            (other, _) => {
                return Err(bad(
                    &op,
                    format!("the VM's OS type is {other:?}, not Linux or Windows"),
                ));
            }
        };
        let body = json!({ "location": location, "properties": properties });
        self.call(
            Method::PUT,
            &path::child(&id, &["extensions", "enablevmaccess"])?,
            api::VM,
            Some(&body),
            &op,
        )
        .await
        .map(drop)
    }

    fn rg_id(&self, sub: Option<&str>, rg: &str) -> CallResult<String> {
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
    fn id(&self, sub: Option<&str>, rg: &str, provider: &str, name: &str) -> CallResult<String> {
        let rg_id = self.rg_id(sub, rg)?;
        path::child(&path::join(&[&rg_id[1..], "providers", provider])?, &[name])
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        op: &str,
    ) -> CallResult<reqwest::Response> {
        self.same_origin(url, op)?;
        let scope = format!("{}/.default", self.cfg.endpoint);
        let token = self
            .token
            .token(&[scope.as_str()])
            .await
            .map_err(|e| CallError::new(CallErrorKind::Fatal, op, e.to_string()))?;
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token.secret())
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).unwrap_or_default());
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await.map_err(|e| transport_error(op, &e))?;
        if let Some(v) = resp
            .headers()
            .get("x-ms-ratelimit-remaining-subscription-writes")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            self.stats.remaining_writes.store(v, Ordering::Relaxed);
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(arm_error(op, resp).await)
    }

    /// Deletes `id` only if ARM shows it as made under `key` (its
    /// `vmrestore-key` tag): clean-up never deletes what the run did not
    /// create, whatever a journal or a caller claims. Gone already is
    /// success; someone else's resource is a `Conflict`, left in place.
    async fn delete_if_ours(
        &self,
        id: &str,
        api_version: &str,
        key: &str,
        op: &str,
    ) -> CallResult<()> {
        let v = match self.call(Method::GET, id, api_version, None, op).await {
            Ok(v) => v,
            Err(e) if e.kind == CallErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let tag = v.pointer("/tags/vmrestore-key").and_then(Value::as_str);
        if key.is_empty() || tag != Some(key) {
            return Err(CallError::new(
                CallErrorKind::Conflict,
                op,
                format!(
                    "{id} was not created by this restore (its vmrestore-key tag is {}): it is left in place",
                    if tag.is_some() {
                        "another step's"
                    } else {
                        "missing"
                    }
                ),
            ));
        }
        match self.call(Method::DELETE, id, api_version, None, op).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == CallErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The bearer token goes only to the ARM endpoint: a URL that ARM
    /// handed back (an `Azure-AsyncOperation` or `Location` header, a
    /// `nextLink`) is followed only on the endpoint's own scheme, host and
    /// port, so a hostile or broken server cannot send the token elsewhere
    /// (or over plain http when the endpoint is https).
    fn same_origin(&self, url: &str, op: &str) -> CallResult<()> {
        let origin = |u: &str| {
            reqwest::Url::parse(u).ok().map(|u| {
                (
                    u.scheme().to_string(),
                    u.host_str().map(str::to_string),
                    u.port_or_known_default(),
                )
            })
        };
        let ours = origin(&self.cfg.endpoint);
        let theirs = origin(url);
        if ours.is_some() && ours == theirs {
            return Ok(());
        }
        Err(CallError::new(
            CallErrorKind::Fatal,
            op,
            format!(
                "refusing to follow {} with the ARM token: only {} is trusted",
                storage::redact_url(url),
                storage::redact_url(&self.cfg.endpoint)
            ),
        ))
    }

    fn url(&self, id: &str, api_version: &str) -> CallResult<String> {
        path::url(&self.cfg.endpoint, id, api_version)
    }

    /// GET a resource (or a collection) as JSON.
    async fn get(&self, id: &str, api_version: &str, op: &str) -> CallResult<Value> {
        let resp = self
            .send(Method::GET, &self.url(id, api_version)?, None, op)
            .await?;
        let text = resp.text().await.map_err(|e| transport_error(op, &e))?;
        serde_json::from_str(&text).map_err(|e| {
            CallError::new(
                CallErrorKind::Unavailable,
                op,
                format!("ARM answered with malformed JSON: {e}"),
            )
        })
    }

    /// A request whose answer may be a long-running operation; returns the
    /// final body (for PUT, the resource).
    async fn call(
        &self,
        method: Method,
        id: &str,
        api_version: &str,
        body: Option<&Value>,
        op: &str,
    ) -> CallResult<Value> {
        let resp = self
            .send(method.clone(), &self.url(id, api_version)?, body, op)
            .await?;
        let status = resp.status().as_u16();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let async_op = header("azure-asyncoperation");
        let location = header("location");
        let retry = header("retry-after").and_then(|v| v.parse::<u64>().ok());
        let text = resp.text().await.map_err(|e| transport_error(op, &e))?;
        let first: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                CallError::new(
                    CallErrorKind::Fatal,
                    op,
                    format!("ARM answered with malformed JSON: {e}"),
                )
            })?
        };
        let deadline = Instant::now() + self.cfg.lro_timeout;
        if let Some(url) = async_op {
            self.poll_async(&url, retry, deadline, op).await?;
            return match method {
                Method::PUT | Method::PATCH => self.get(id, api_version, op).await,
                _ => Ok(first),
            };
        }
        if status == 202
            && let Some(url) = location
        {
            return self.poll_location(&url, retry, deadline, op).await;
        }
        // A PUT answered at once may still be provisioning.
        if matches!(method, Method::PUT | Method::PATCH) {
            let state = first
                .pointer("/properties/provisioningState")
                .and_then(Value::as_str)
                .unwrap_or("Succeeded");
            if !matches!(state, "Succeeded" | "Failed" | "Canceled") {
                let mut wait = self.cfg.poll_interval;
                loop {
                    if Instant::now() > deadline {
                        return Err(CallError::new(
                            CallErrorKind::Timeout,
                            op,
                            "provisioning did not finish in time",
                        ));
                    }
                    tokio::time::sleep(wait).await;
                    self.stats.polls.fetch_add(1, Ordering::Relaxed);
                    let v = self.get(id, api_version, op).await?;
                    match v
                        .pointer("/properties/provisioningState")
                        .and_then(Value::as_str)
                    {
                        Some("Succeeded") | None => return Ok(v),
                        Some(s @ ("Failed" | "Canceled")) => {
                            return Err(CallError::new(
                                CallErrorKind::Fatal,
                                op,
                                format!("provisioning {s}"),
                            ));
                        }
                        _ => wait = self.cfg.poll_interval,
                    }
                }
            }
            if state != "Succeeded" {
                return Err(CallError::new(
                    CallErrorKind::Fatal,
                    op,
                    format!("provisioning {state}"),
                ));
            }
        }
        Ok(first)
    }

    fn wait_for(&self, retry_after: Option<u64>) -> Duration {
        retry_after
            .map(Duration::from_secs)
            .unwrap_or(self.cfg.poll_interval)
            .min(Duration::from_secs(60))
    }

    async fn poll_async(
        &self,
        url: &str,
        mut retry: Option<u64>,
        deadline: Instant,
        op: &str,
    ) -> CallResult<()> {
        loop {
            if Instant::now() > deadline {
                return Err(CallError::new(
                    CallErrorKind::Timeout,
                    op,
                    "the operation did not finish in time",
                ));
            }
            tokio::time::sleep(self.wait_for(retry)).await;
            self.stats.polls.fetch_add(1, Ordering::Relaxed);
            let resp = match self.send(Method::GET, url, None, op).await {
                Ok(r) => r,
                // A throttled or failed poll is retried here: the operation
                // itself is still running.
                Err(e) if e.is_transient() => {
                    retry = e.retry_after_ms.map(|ms| ms.div_ceil(1000));
                    continue;
                }
                Err(e) => return Err(e),
            };
            retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let text = resp.text().await.map_err(|e| transport_error(op, &e))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                CallError::new(
                    CallErrorKind::Unavailable,
                    op,
                    format!("malformed operation status: {e}"),
                )
            })?;
            match v.get("status").and_then(Value::as_str).unwrap_or("") {
                "Succeeded" => return Ok(()),
                "Failed" | "Canceled" => return Err(lro_failure(op, &v)),
                _ => {}
            }
        }
    }

    async fn poll_location(
        &self,
        url: &str,
        mut retry: Option<u64>,
        deadline: Instant,
        op: &str,
    ) -> CallResult<Value> {
        loop {
            if Instant::now() > deadline {
                return Err(CallError::new(
                    CallErrorKind::Timeout,
                    op,
                    "the operation did not finish in time",
                ));
            }
            tokio::time::sleep(self.wait_for(retry)).await;
            self.stats.polls.fetch_add(1, Ordering::Relaxed);
            let resp = match self.send(Method::GET, url, None, op).await {
                Ok(r) => r,
                Err(e) if e.is_transient() => {
                    retry = e.retry_after_ms.map(|ms| ms.div_ceil(1000));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if resp.status().as_u16() == 202 {
                retry = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                continue;
            }
            let text = resp.text().await.map_err(|e| transport_error(op, &e))?;
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
    }

    /// The body of a resource to create.
    fn body(
        &self,
        key: &str,
        spec: &ResourceSpec,
        op: &str,
        staged_import: bool,
    ) -> CallResult<(String, &'static str, Value)> {
        let tags = json!({ "vmrestore-key": key });
        Ok(match spec {
            ResourceSpec::ResourceGroup {
                subscription_id,
                name,
                region,
            } => (
                self.rg_id(Some(subscription_id), name)?,
                api::RESOURCES,
                json!({ "location": region, "tags": tags }),
            ),
            ResourceSpec::KeyVault {
                subscription_id,
                resource_group,
                name,
                region,
            } => (
                self.id(
                    Some(subscription_id),
                    resource_group,
                    "Microsoft.KeyVault/vaults",
                    name,
                )?,
                api::KEY_VAULT,
                json!({
                    "location": region,
                    "tags": tags,
                    "properties": {
                        "tenantId": self.cfg.tenant_id,
                        "sku": { "family": "A", "name": "standard" },
                        "enabledForDiskEncryption": true,
                        "enableRbacAuthorization": false,
                        "accessPolicies": []
                    }
                }),
            ),
            ResourceSpec::StorageAccount {
                subscription_id,
                resource_group,
                name,
                region,
            } => (
                self.id(
                    Some(subscription_id),
                    resource_group,
                    "Microsoft.Storage/storageAccounts",
                    name,
                )?,
                api::STORAGE,
                json!({
                    "location": region,
                    "tags": tags,
                    "sku": { "name": "Standard_LRS" },
                    "kind": "StorageV2",
                    "properties": { "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": false }
                }),
            ),
            ResourceSpec::Disk {
                subscription_id,
                resource_group,
                name,
                region,
                size_bytes,
                sku,
                zone,
                os,
                security_type,
                staging_account,
                disk_encryption_set,
            } => {
                if staging_account.is_some() && !staged_import {
                    return Err(bad(op, "a staged disk is a page blob, not a managed disk"));
                }
                let mut props = json!({
                    "creationData": { "createOption": "Upload", "uploadSizeBytes": size_bytes + 512 }
                });
                if let Some((family, generation)) = os {
                    props["osType"] = json!(os_type(*family));
                    props["hyperVGeneration"] = json!(hyperv(*generation));
                }
                match security_type {
                    SecurityType::Standard => {}
                    SecurityType::TrustedLaunch => {
                        props["securityProfile"] = json!({ "securityType": "TrustedLaunch" });
                    }
                    SecurityType::Confidential => return Err(confidential(op)),
                }
                if let Some(des) = disk_encryption_set {
                    props["encryption"] = json!({ "type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": des });
                }
                let mut body = json!({ "location": region, "tags": tags, "sku": { "name": sku_name(*sku) }, "properties": props });
                if let Some(z) = zone {
                    body["zones"] = json!([z.to_string()]);
                }
                (
                    self.id(
                        Some(subscription_id),
                        resource_group,
                        "Microsoft.Compute/disks",
                        name,
                    )?,
                    api::DISK,
                    body,
                )
            }
            ResourceSpec::NetworkSecurityGroup {
                resource_group,
                name,
                region,
                open_ports,
                ..
            } => {
                let rules: Vec<Value> = open_ports
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        json!({
                            "name": format!("allow-tcp-{p}"),
                            "properties": {
                                "protocol": "Tcp",
                                "sourcePortRange": "*",
                                "destinationPortRange": p.to_string(),
                                "sourceAddressPrefix": "*",
                                "destinationAddressPrefix": "*",
                                "access": "Allow",
                                "priority": 300 + i,
                                "direction": "Inbound"
                            }
                        })
                    })
                    .collect();
                (
                    self.id(
                        None,
                        resource_group,
                        "Microsoft.Network/networkSecurityGroups",
                        name,
                    )?,
                    api::NETWORK,
                    json!({ "location": region, "tags": tags, "properties": { "securityRules": rules } }),
                )
            }
            ResourceSpec::PublicIp {
                resource_group,
                name,
                region,
            } => (
                self.id(
                    None,
                    resource_group,
                    "Microsoft.Network/publicIPAddresses",
                    name,
                )?,
                api::NETWORK,
                json!({
                    "location": region,
                    "tags": tags,
                    "sku": { "name": "Standard" },
                    "properties": { "publicIPAllocationMethod": "Static" }
                }),
            ),
            ResourceSpec::NetworkInterface {
                resource_group,
                name,
                region,
                virtual_network,
                subnet,
                static_ip,
                public_ip,
                network_security_group,
            } => {
                let vnet_id = if virtual_network.starts_with("/subscriptions/") {
                    virtual_network.clone()
                } else {
                    self.id(
                        None,
                        resource_group,
                        "Microsoft.Network/virtualNetworks",
                        virtual_network,
                    )?
                };
                let subnet_id = path::child(&vnet_id, &["subnets", subnet])?;
                let mut ipc = json!({
                    "subnet": { "id": subnet_id },
                    "privateIPAllocationMethod": if static_ip.is_some() { "Static" } else { "Dynamic" }
                });
                if let Some(ip) = static_ip {
                    ipc["privateIPAddress"] = json!(ip);
                }
                if let Some(p) = public_ip {
                    ipc["publicIPAddress"] = json!({ "id": self.id(None, resource_group, "Microsoft.Network/publicIPAddresses", p)? });
                }
                let mut props =
                    json!({ "ipConfigurations": [ { "name": "ipconfig1", "properties": ipc } ] });
                if let Some(n) = network_security_group {
                    props["networkSecurityGroup"] = json!({ "id": self.id(None, resource_group, "Microsoft.Network/networkSecurityGroups", n)? });
                }
                (
                    self.id(
                        None,
                        resource_group,
                        "Microsoft.Network/networkInterfaces",
                        name,
                    )?,
                    api::NETWORK,
                    json!({ "location": region, "tags": tags, "properties": props }),
                )
            }
            ResourceSpec::VirtualMachine {
                subscription_id,
                resource_group,
                name,
                region,
                size,
                zone,
                availability_set,
                os,
                generation: _,
                security_type,
                os_disk,
                data_disks,
                nics,
            } => {
                let sub = Some(subscription_id.as_str());
                let disk_id = |d: &str| self.id(sub, resource_group, "Microsoft.Compute/disks", d);
                let data: Vec<Value> = data_disks
                    .iter()
                    .map(|(lun, d)| Ok(json!({ "lun": lun, "createOption": "Attach", "managedDisk": { "id": disk_id(d)? } })))
                    .collect::<CallResult<_>>()?;
                let nic_refs: Vec<Value> = nics
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Ok(json!({
                        "id": self.id(None, resource_group, "Microsoft.Network/networkInterfaces", n)?,
                        "properties": { "primary": i == 0 }
                    })))
                    .collect::<CallResult<_>>()?;
                let mut props = json!({
                    "hardwareProfile": { "vmSize": size },
                    "storageProfile": {
                        "osDisk": { "createOption": "Attach", "osType": os_type(*os), "managedDisk": { "id": disk_id(os_disk)? } },
                        "dataDisks": data
                    },
                    "networkProfile": { "networkInterfaces": nic_refs }
                });
                match security_type {
                    SecurityType::Standard => {}
                    SecurityType::TrustedLaunch => {
                        props["securityProfile"] = json!({
                            "securityType": "TrustedLaunch",
                            "uefiSettings": { "secureBootEnabled": true, "vTpmEnabled": true }
                        });
                    }
                    SecurityType::Confidential => return Err(confidential(op)),
                }
                if let Some(a) = availability_set {
                    props["availabilitySet"] = json!({ "id": self.id(sub, resource_group, "Microsoft.Compute/availabilitySets", a)? });
                }
                let mut body = json!({ "location": region, "tags": tags, "properties": props });
                if let Some(z) = zone {
                    body["zones"] = json!([z.to_string()]);
                }
                (
                    self.id(
                        sub,
                        resource_group,
                        "Microsoft.Compute/virtualMachines",
                        name,
                    )?,
                    api::VM,
                    body,
                )
            }
            ResourceSpec::HelperAppliance { .. } | ResourceSpec::Snapshot { .. } => {
                return Err(bad(
                    op,
                    format!(
                        "{} is deployed by the backup product's own tooling, not by the ARM cloud",
                        spec.kind()
                    ),
                ));
            }
        })
    }

    /// The ID of a VM: the one this cloud created, else in the default
    /// subscription.
    fn vm_id(&self, resource_group: &str, vm: &str) -> CallResult<String> {
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
    fn vm_id_in(&self, sub: &str, resource_group: &str, vm: &str) -> CallResult<String> {
        self.id(
            Some(sub),
            resource_group,
            "Microsoft.Compute/virtualMachines",
            vm,
        )
    }

    /// The ID of a resource this cloud created, else `fallback()`.
    fn known_id(
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

    fn api_of(id: &str) -> &'static str {
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

/// An ARM error answer as a `CallError` with ARM's code and message.
async fn arm_error(op: &str, resp: reqwest::Response) -> CallError {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = resp.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let code = v
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("");
    let msg = v
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut e = CallError::new(
        storage::kind_of(status),
        op,
        format!("HTTP {} {code}: {msg}", status.as_u16()),
    );
    if let Some(s) = retry_after {
        e = e.retry_after(Duration::from_secs(s));
    }
    e
}

fn lro_failure(op: &str, v: &Value) -> CallError {
    let status = v.get("status").and_then(Value::as_str).unwrap_or("Failed");
    let code = v
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("");
    let msg = v
        .pointer("/error/message")
        .and_then(Value::as_str)
        .unwrap_or("");
    CallError::new(
        CallErrorKind::Fatal,
        op,
        format!("the operation ended {status}: {code}: {msg}"),
    )
}

impl ArmCloud {
    /// What ArmCloud performs today: every step kind but those listed with
    /// their reason, and no confidential VM.
    pub fn declared_capabilities() -> crate::plan::Capabilities {
        use crate::plan::{CONFIDENTIAL_VM, Capabilities, StepKind};
        Capabilities::all("arm")
            .without(
                StepKind::HelperAppliance,
                "the helper appliance is deployed by the backup product's own tooling, not by ArmCloud",
            )
            .without(
                StepKind::SnapshotExistingDisks,
                "ArmCloud does not snapshot existing disks yet",
            )
            .without(
                StepKind::BootFix,
                "ArmCloud has no boot fixer (disks attached to a helper VM and a Run Command script)",
            )
            .without(
                StepKind::SwapDisks,
                "ArmCloud does not swap disks into an existing VM yet",
            )
            .without(
                StepKind::DeleteExistingDisks,
                "ArmCloud does not delete replaced disks yet",
            )
            .refusing(
                CONFIDENTIAL_VM,
                "confidential VMs are not supported by ArmCloud: their disks need the VM guest state, which a disk upload cannot carry",
            )
    }
}

#[async_trait]
impl crate::exec::Cloud for ArmCloud {
    fn capabilities(&self) -> crate::plan::Capabilities {
        Self::declared_capabilities()
    }

    async fn catalog(&self) -> CallResult<Catalog> {
        let op = "read the destination catalog";
        let sub = &self.cfg.subscription_id;
        let locs = self
            .call(
                Method::GET,
                &path::join(&["subscriptions", sub, "locations"])?,
                api::LOCATIONS,
                None,
                op,
            )
            .await?;
        let mut regions = Vec::new();
        for l in locs
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |p: &str| {
                l.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            if s("/metadata/regionType") == "Logical" {
                continue;
            }
            let mut zones: Vec<u8> = l
                .get("availabilityZoneMappings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("logicalZone").and_then(Value::as_str)?.parse().ok())
                .collect();
            zones.sort_unstable();
            regions.push(Region {
                name: s("/name"),
                display_name: s("/displayName"),
                geography: s("/metadata/geographyGroup"),
                zones,
                paired_region: l
                    .pointer("/metadata/pairedRegion/0/name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                access_restricted: false,
                disaster_declared: false,
            });
        }
        let skus = self
            .call(
                Method::GET,
                &path::join(&[
                    "subscriptions",
                    sub,
                    "providers",
                    "Microsoft.Compute",
                    "skus",
                ])?,
                api::SKUS,
                None,
                op,
            )
            .await?;
        let mut vm_sizes: Vec<VmSize> = Vec::new();
        for k in skus
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if k.get("resourceType").and_then(Value::as_str) != Some("virtualMachines") {
                continue;
            }
            let Some(name) = k.get("name").and_then(Value::as_str) else {
                continue;
            };
            if vm_sizes.iter().any(|v| v.name == name) {
                continue;
            }
            let cap = |n: &str| {
                k.get("capabilities")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(n))
                    .and_then(|c| c.get("value").and_then(Value::as_str))
                    .unwrap_or("")
                    .to_string()
            };
            let gens = cap("HyperVGenerations");
            vm_sizes.push(VmSize {
                name: name.to_string(),
                vcpus: cap("vCPUs").parse().unwrap_or(0),
                memory_gib: cap("MemoryGB").parse().unwrap_or(0.0),
                max_data_disks: cap("MaxDataDiskCount").parse().unwrap_or(0),
                gen1: gens.is_empty() || gens.contains("V1"),
                gen2: gens.contains("V2"),
                nvme_only: cap("DiskControllerTypes") == "NVMe",
                premium_storage: cap("PremiumIO") == "True",
            });
        }
        Ok(Catalog {
            regions,
            vm_sizes,
            ..Default::default()
        })
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
        let before = match self.call(Method::GET, &id, api_version, None, &op).await {
            Ok(v) => Some(v),
            Err(e) if e.kind == CallErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(v) = &before {
            let ours = v.pointer("/tags/vmrestore-key").and_then(Value::as_str) == Some(key);
            if !ours {
                if matches!(spec, ResourceSpec::ResourceGroup { .. }) {
                    return Ok(Resource {
                        id: v
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or(&id)
                            .to_string(),
                        kind: spec.kind().to_string(),
                        name: spec.name().to_string(),
                        key: key.to_string(),
                        existed: true,
                    });
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
            for nic in attach_to {
                let nic_id = self.id(
                    None,
                    resource_group,
                    "Microsoft.Network/networkInterfaces",
                    nic,
                )?;
                let mut n = self
                    .call(Method::GET, &nic_id, api::NETWORK, None, &op)
                    .await?;
                n["properties"]["networkSecurityGroup"] = json!({ "id": id });
                strip_read_only(&mut n);
                self.call(Method::PUT, &nic_id, api::NETWORK, Some(&n), &op)
                    .await?;
            }
        }
        Ok(Resource {
            id: v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or(&id)
                .to_string(),
            kind: spec.kind().to_string(),
            name: spec.name().to_string(),
            key: key.to_string(),
            existed: false,
        })
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
        self.delete_if_ours(&resource.id, Self::api_of(&resource.id), &resource.key, &op)
            .await
    }

    async fn act(&self, key: &str, action: &CloudAction) -> CallResult<()> {
        match action {
            CloudAction::ConvertToManaged {
                resource_group,
                disks,
            } => self.convert_to_managed(key, resource_group, disks).await,
            CloudAction::PowerOn { resource_group, vm } => {
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
            CloudAction::GrantKeyVaultAccess { vault, principal } => {
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
                    vault.clone()
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
            CloudAction::DeleteExistingVm {
                subscription_id,
                resource_group,
                vm,
            } => {
                let id = self.vm_id_in(subscription_id, resource_group, vm)?;
                let op = format!("delete VM '{vm}'");
                let v = match self.call(Method::GET, &id, api::VM, None, &op).await {
                    Ok(v) => v,
                    // Gone already (a retried or resumed step).
                    Err(e) if e.kind == CallErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
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
                self.call(Method::DELETE, &id, api::VM, None, &op)
                    .await
                    .map(drop)
            }
            CloudAction::RestoreExistingVm {
                subscription_id,
                resource_group,
                vm,
            } => {
                let id = self.vm_id_in(subscription_id, resource_group, vm)?;
                let op = format!("put back VM '{vm}' on its kept disks");
                match self.call(Method::GET, &id, api::VM, None, &op).await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind == CallErrorKind::NotFound => {}
                    Err(e) => return Err(e),
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
                self.call(Method::PUT, &id, api::VM, Some(&body), &op)
                    .await
                    .map(drop)
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

/// Drops what ARM returns but does not take back in a PUT.
/// The body that re-creates a deleted VM on its kept disks: the disks are
/// attached (not created from an image), the OS profile (set only at
/// creation) and read-only properties are left out.
fn reattach_body(mut v: Value) -> Value {
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

fn strip_read_only(v: &mut Value) {
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
