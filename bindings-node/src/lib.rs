//! Node bindings of vmrestore (napi-rs 3): thin conversions around
//! `restore-core`. No rule, plan or data-path logic lives here.
//!
//! Data crosses as plain JavaScript objects with the JSON Schema's field
//! names (snake_case, exactly as `schema(name)` and the Rust and Python JSON
//! say); function and option names are camelCase. Errors are `Error`
//! objects whose `code` is the core's stable error code (`E_PARSE`, ...).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use restore_core::exec::{self, Event, Executor, LocalVhdSink, ProgressFn, SimConfig};
use restore_core::facade::{self, Doc, Naming};
use restore_core::model::{Catalog, RestorePoint, Validate};
use restore_core::plan as core_plan;
use restore_core::policy::{BUILTIN_PROFILES, Profile};
use restore_core::repo::LocalRepository;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

mod json;
mod log;

pub use json::Json;
pub use log::set_logger;

type CoreError = restore_core::Error;

/// The `code` of a JavaScript error: the core's stable error code.
pub struct Code(String);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Status> for Code {
    fn from(s: Status) -> Self {
        Code(format!("{s:?}"))
    }
}

/// The message of a core error with its cause chain.
fn message(e: &CoreError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        src = s.source();
    }
    msg
}

/// A core error as a napi error whose JS `code` is the core's code.
fn coded(e: CoreError) -> napi::Error<Code> {
    napi::Error::new(Code(e.code().to_string()), message(&e))
}

/// A core error as a JS `Error` (with `code`) for rejecting a promise.
fn js_error(env: &Env, e: CoreError) -> napi::Error {
    let err = JsError::from(coded(e)).into_unknown(*env);
    napi::Error::from(err)
}

fn invalid(path: &str, message: impl Into<String>) -> CoreError {
    CoreError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

fn parse_error(path: &str, message: impl Into<String>) -> CoreError {
    CoreError::Parse {
        path: path.into(),
        message: message.into(),
    }
}

/// A JS document (an object or JSON text) for the facade.
fn doc_of(v: Json) -> restore_core::Result<Doc> {
    v.value().map(Doc::Value)
}

/// A model document given as an object or as JSON text.
fn doc<T: DeserializeOwned + Validate>(v: Json) -> restore_core::Result<T> {
    doc_of(v)?.parse()
}

/// A plan given as an object (from `plan()`) or as JSON text.
fn plan_of(v: Json) -> restore_core::Result<core_plan::Plan> {
    let r = match v.value()? {
        Value::String(s) => serde_json::from_str(&s),
        other => serde_json::from_value(other),
    };
    r.map_err(|e| parse_error("$.plan", e.to_string()))
}

fn to_js<T: Serialize>(v: &T) -> napi::Result<Value, Code> {
    serde_json::to_value(v).map_err(|e| coded(invalid("$", e.to_string())))
}

/// Runs `fut` on the runtime; the promise rejects with a coded `Error`.
fn promise<'env, T, V, F, M>(env: &'env Env, fut: F, map: M) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = restore_core::Result<T>> + Send + 'static,
    M: FnOnce(T) -> Result<V> + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, move |env, r| match r {
        Ok(v) => map(v),
        Err(e) => Err(js_error(env, e)),
    })
}

/// Options of `plan()`.
#[napi(object, object_to_js = false)]
pub struct PlanOptions {
    /// Built-in profile names (`commvault`, `veeam`, `azure-backup@2016`,
    /// `azure-backup`).
    pub profiles: Option<Vec<String>>,
    /// A custom rules document: TOML or JSON text, or an object.
    #[napi(ts_type = "string | Record<string, unknown>")]
    pub rules: Option<Json>,
    /// The name of the custom rule set when the document has none
    /// (default `custom`).
    pub rules_name: Option<String>,
    /// The destination catalog (default: the built-in one).
    #[napi(ts_type = "Catalog | string")]
    pub catalog: Option<Json>,
    /// What the cloud the plan is for can perform (`cloud.capabilities()`):
    /// steps it cannot run block the plan (VMR-07).
    #[napi(ts_type = "Capabilities | string")]
    pub capabilities: Option<Json>,
}

struct PlanInputs {
    rp: Json,
    req: Json,
    profiles: Vec<Profile>,
    catalog: Option<Json>,
    capabilities: Option<core_plan::Capabilities>,
}

/// Capabilities given as an object or JSON text.
fn capabilities_of(v: Json) -> restore_core::Result<core_plan::Capabilities> {
    facade::capabilities(doc_of(v)?)
}

fn plan_inputs(
    rp: Json,
    req: Json,
    options: Option<PlanOptions>,
) -> restore_core::Result<PlanInputs> {
    let o = options.unwrap_or(PlanOptions {
        profiles: None,
        rules: None,
        rules_name: None,
        catalog: None,
        capabilities: None,
    });
    let rules = match o.rules {
        Some(r) => Some(facade::Rules {
            text: rules_text(r)?,
            name: o.rules_name.unwrap_or_else(|| "custom".into()),
        }),
        None => None,
    };
    let profiles = facade::profiles(&o.profiles.unwrap_or_default(), rules.as_ref())?;
    Ok(PlanInputs {
        rp,
        req,
        profiles,
        catalog: o.catalog,
        capabilities: o.capabilities.map(capabilities_of).transpose()?,
    })
}

/// A rules document given as text or as an object.
fn rules_text(r: Json) -> restore_core::Result<String> {
    Ok(match r.value()? {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

fn catalog_of(v: Option<Json>) -> restore_core::Result<Catalog> {
    facade::catalog(v.map(doc_of).transpose()?)
}

fn run_plan(i: PlanInputs) -> restore_core::Result<core_plan::Plan> {
    facade::plan(
        doc_of(i.rp)?,
        doc_of(i.req)?,
        &i.profiles,
        i.catalog.map(doc_of).transpose()?,
        i.capabilities,
    )
}

/// Plans one restore. `restorePoint`, `request` and `options.catalog` are
/// objects or JSON text. Throws an `Error` with `code` on bad input.
#[napi(
    ts_args_type = "restorePoint: RestorePoint | string, request: RestoreRequest | string, options?: PlanOptions",
    ts_return_type = "Plan"
)]
pub fn plan(
    restore_point: Json,
    request: Json,
    options: Option<PlanOptions>,
) -> napi::Result<Value, Code> {
    let p = plan_inputs(restore_point, request, options)
        .and_then(run_plan)
        .map_err(coded)?;
    to_js(&p)
}

/// `plan()` off the main thread, for servers that must not block their
/// event loop.
#[napi(
    ts_args_type = "restorePoint: RestorePoint | string, request: RestoreRequest | string, options?: PlanOptions",
    ts_return_type = "Promise<Plan>"
)]
pub fn plan_async<'env>(
    env: &'env Env,
    restore_point: Json,
    request: Json,
    options: Option<PlanOptions>,
) -> Result<PromiseRaw<'env, Value>> {
    let inputs = plan_inputs(restore_point, request, options);
    promise(
        env,
        async move {
            let i = inputs?;
            tokio::task::spawn_blocking(move || run_plan(i))
                .await
                .map_err(|e| invalid("$", format!("the planning task failed: {e}")))?
        },
        |p| serde_json::to_value(&p).map_err(|e| Error::from_reason(e.to_string())),
    )
}

/// One restore of `planMany()`.
#[napi(object, object_to_js = false)]
pub struct PlanItem {
    #[napi(ts_type = "RestorePoint | string")]
    pub restore_point: Json,
    #[napi(ts_type = "RestoreRequest | string")]
    pub request: Json,
    /// A built-in profile name.
    pub profile: String,
}

/// Plans many restores against one catalog (each with one built-in profile).
#[napi(
    ts_args_type = "items: PlanItem[], catalog?: Catalog | string",
    ts_return_type = "Plan[]"
)]
pub fn plan_many(items: Vec<PlanItem>, catalog: Option<Json>) -> napi::Result<Vec<Value>, Code> {
    let items = items
        .into_iter()
        .map(|it| {
            Ok(facade::PlanItem {
                restore_point: doc_of(it.restore_point)?,
                request: doc_of(it.request)?,
                profile: it.profile,
            })
        })
        .collect::<restore_core::Result<Vec<_>>>()
        .map_err(coded)?;
    let catalog = catalog.map(doc_of).transpose().map_err(coded)?;
    let plans = facade::plan_many(items, catalog).map_err(coded)?;
    plans.iter().map(to_js).collect()
}

/// Renders a plan (an object from `plan()` or its JSON text) as `text`
/// (terraform-style), `json` (stable), `mermaid` or `dot`.
#[napi(ts_args_type = "plan: Plan | string, format?: 'text' | 'json' | 'mermaid' | 'dot'")]
pub fn render(plan: Json, format: Option<String>) -> napi::Result<String, Code> {
    let p = plan_of(plan).map_err(coded)?;
    match format.as_deref().unwrap_or("text") {
        "text" => Ok(core_plan::render_text(&p)),
        "json" => Ok(core_plan::to_json(&p)),
        "mermaid" => Ok(core_plan::to_mermaid(&p)),
        "dot" => Ok(core_plan::to_dot(&p)),
        other => Err(coded(invalid(
            "format",
            format!("unknown format '{other}' (text, json, mermaid, dot)"),
        ))),
    }
}

/// Checks a custom rules document (TOML or JSON text, or an object);
/// returns the rule IDs, or throws `E_RULE` with the reason.
#[napi(ts_args_type = "rules: string | Record<string, unknown>, name?: string")]
pub fn check_rules(rules: Json, name: Option<String>) -> napi::Result<Vec<String>, Code> {
    let rules = facade::Rules {
        text: rules_text(rules).map_err(coded)?,
        name: name.unwrap_or_else(|| "custom".into()),
    };
    let p = facade::profiles(&[], Some(&rules)).map_err(coded)?;
    Ok(p.into_iter()
        .flat_map(|p| p.rules.into_iter().map(|r| r.id))
        .collect())
}

/// The built-in catalog (real Azure regions and common VM sizes).
#[napi(ts_return_type = "Catalog")]
pub fn builtin_catalog() -> napi::Result<Value, Code> {
    to_js(&Catalog::builtin())
}

/// Names of the built-in profiles.
#[napi]
pub fn builtin_profiles() -> Vec<String> {
    BUILTIN_PROFILES.iter().map(|s| s.to_string()).collect()
}

/// The JSON Schema of `restore_point`, `restore_request`, `catalog`,
/// `plan`, `report` or `event` (a progress event).
#[napi(
    ts_args_type = "name: 'restore_point' | 'restore_request' | 'catalog' | 'plan' | 'report' | 'event'",
    ts_return_type = "Record<string, unknown>"
)]
pub fn schema(name: String) -> napi::Result<Value, Code> {
    restore_core::schema::by_name(&name)
        .ok_or_else(|| coded(invalid("name", format!("no schema '{name}'"))))
}

/// Builds the demo repository under `dir`; returns the demo restores.
#[napi(ts_return_type = "DemoRestore[]")]
pub fn build_demo(dir: String) -> napi::Result<Vec<Value>, Code> {
    let (_, restores) = restore_core::demo::build(std::path::Path::new(&dir)).map_err(coded)?;
    restores
        .iter()
        .map(|r| {
            Ok(serde_json::json!({
                "name": r.name,
                "restore_point": to_js(&r.restore_point)?,
                "request": to_js(&r.request)?,
            }))
        })
        .collect()
}

/// The path of a demo disk image (to compare a restored disk with).
#[napi]
pub fn demo_image_path(
    dir: String,
    vm: String,
    disk: String,
    volume_group: Option<String>,
) -> String {
    restore_core::demo::image_path(
        std::path::Path::new(&dir),
        &vm,
        &disk,
        volume_group.as_deref(),
    )
    .to_string_lossy()
    .into_owned()
}

/// A local backup repository (manifest plus content-addressed chunks).
#[napi]
pub struct Repository {
    inner: LocalRepository,
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

fn cloud_err(e: restore_core::error::CallError) -> CoreError {
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
    inner: restore_core::repo::ObjectStoreRepository,
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
    inner: Arc<restore_core::azure::PageBlobSink>,
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
    inner: Arc<restore_core::azure::ArmCloud>,
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

/// Options of the simulated Azure.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct SimCloudOptions {
    /// Seed of the fault decisions (the same seed gives the same faults).
    pub seed: Option<f64>,
    /// Latency of every control-plane call, in ms.
    pub latency_ms: Option<f64>,
    /// Duration of long-running operations, in ms.
    pub lro_ms: Option<f64>,
    /// Latency of every page write, in ms.
    pub write_latency_ms: Option<f64>,
    /// Probability of a transient fault (429, 503, timeout) per control call.
    pub fault_probability: Option<f64>,
    /// Probability of a transient fault per data call.
    pub data_fault_probability: Option<f64>,
    /// Retry-After of injected 429s, in ms.
    pub retry_after_ms: Option<f64>,
    /// Control-plane writes per second (a token bucket), unlimited if unset.
    pub write_rate: Option<f64>,
    /// Operations (`create:<kind>`, `act:<action>`, ...) that always fail.
    pub always_fail: Option<Vec<String>>,
    /// The catalog of the simulated destination (default: built-in).
    #[napi(ts_type = "Catalog | string")]
    pub catalog: Option<Json>,
    /// What it declares it can perform (default: everything); e.g. an
    /// `ArmCloud`'s `capabilities()`, to try a plan as ARM would take it.
    #[napi(ts_type = "Capabilities | string")]
    pub capabilities: Option<Json>,
}

/// The simulated Azure: in memory, with Azure's naming rules, limits,
/// latencies and injected faults.
#[napi]
pub struct SimCloud {
    inner: exec::SimCloud,
}

#[napi]
impl SimCloud {
    #[napi(constructor)]
    pub fn new(options: Option<SimCloudOptions>) -> napi::Result<Self, Code> {
        let o = options.unwrap_or_default();
        let max = u64::from(u32::MAX);
        let ms = |name: &str, v: Option<f64>| {
            json::whole(name, v, max)
                .map(|v| std::time::Duration::from_millis(v.unwrap_or(0)))
                .map_err(coded)
        };
        let seed = match o.seed {
            Some(f) if !f.is_finite() || f.fract() != 0.0 || f.abs() > 9_007_199_254_740_992.0 => {
                return Err(coded(invalid(
                    "seed",
                    format!("{f} is not a whole number (a safe integer)"),
                )));
            }
            Some(f) => f as i64 as u64,
            None => 0,
        };
        let faults = facade::faults(
            facade::FaultSettings {
                fault_probability: o.fault_probability,
                data_fault_probability: o.data_fault_probability,
                seed,
                retry_after_ms: json::whole("retryAfterMs", o.retry_after_ms, max)
                    .map_err(coded)?
                    .unwrap_or(0),
                always_fail: o.always_fail.unwrap_or_default(),
            },
            Naming::Camel,
        )
        .map_err(coded)?;
        let catalog = catalog_of(o.catalog).map_err(coded)?;
        Ok(SimCloud {
            inner: exec::SimCloud::new(SimConfig {
                catalog,
                latency: ms("latencyMs", o.latency_ms)?,
                lro: ms("lroMs", o.lro_ms)?,
                write_latency: ms("writeLatencyMs", o.write_latency_ms)?,
                write_rate: json::whole("writeRate", o.write_rate, max).map_err(coded)?,
                faults,
                capabilities: match o.capabilities {
                    Some(c) => capabilities_of(c).map_err(coded)?,
                    None => core_plan::Capabilities::all("sim"),
                },
                ..Default::default()
            }),
        })
    }

    /// The state: resources, disks, actions, counters.
    #[napi(ts_return_type = "Record<string, any>")]
    pub fn dump(&self) -> napi::Result<Value, Code> {
        to_js(&self.inner.dump())
    }

    /// A disk's bytes as written, or null.
    #[napi]
    pub fn disk_bytes(&self, name: String) -> Option<Buffer> {
        self.inner.disk_bytes(&name).map(Buffer::from)
    }

    /// Faults injected so far.
    #[napi]
    pub fn faults_injected(&self) -> f64 {
        self.inner.faults_injected() as f64
    }

    /// What it declares it can perform.
    #[napi(ts_return_type = "Capabilities")]
    pub fn capabilities(&self) -> napi::Result<Value, Code> {
        to_js(&exec::Cloud::capabilities(&self.inner))
    }
}

/// Options of the executor.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct ExecutorOptions {
    /// Write disks as fixed VHD files in this directory (with an ARM
    /// template and the report) instead of the cloud's disks.
    pub out_dir: Option<String>,
    /// A journal file: a rerun with the same journal resumes.
    pub journal: Option<String>,
    /// Control-plane calls at once (default 8).
    pub control_concurrency: Option<f64>,
    /// Disks written at once (default 4).
    pub data_concurrency: Option<f64>,
    /// Attempts per call before the step fails (default 8).
    pub max_attempts: Option<f64>,
    /// First retry delay in ms, doubled per attempt (default 200).
    pub base_delay_ms: Option<f64>,
    /// On cancel, keep what was created (for a resume) instead of cleaning up.
    pub keep_on_cancel: Option<bool>,
}

/// Progress events as an async iterator: pass it as `options.progress` to
/// `run()` and read it with `for await`. It ends when the run ends.
#[napi(async_iterator)]
pub struct ProgressStream {
    tx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Event>>>,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Event>>>,
}

#[napi]
impl AsyncGenerator for ProgressStream {
    type Yield = Value;
    type Next = ();
    type Return = ();

    fn next(
        &mut self,
        _value: Option<Self::Next>,
    ) -> impl Future<Output = Result<Option<Self::Yield>>> + Send + 'static {
        let rx = self.rx.clone();
        async move {
            let e = rx.lock().await.recv().await;
            Ok(e.and_then(|e| serde_json::to_value(&e).ok()))
        }
    }
}

#[napi]
impl ProgressStream {
    #[napi(constructor)]
    pub fn new() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        ProgressStream {
            tx: std::sync::Mutex::new(Some(tx)),
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }
}

impl Default for ProgressStream {
    fn default() -> Self {
        Self::new()
    }
}

/// `EventTarget.addEventListener(type, listener)`.
type AddEventListener<'a> = Function<'a, FnArgs<(String, Function<'a, (), ()>)>, Unknown<'a>>;

type ProgressCallback = ThreadsafeFunction<Value, Unknown<'static>, Value, Status, false, true>;

/// Runs plans over a cloud and a repository.
#[napi]
pub struct RestoreExecutor {
    inner: Arc<Executor>,
}

#[napi]
impl RestoreExecutor {
    /// `cloud` is a `SimCloud` or an `ArmCloud`; `repository` a `Repository`
    /// or an `ObjectStoreRepository`; `blobSink` sends the disks to page
    /// blobs instead of the cloud's disks (or `options.outDir` to VHD files).
    #[napi(constructor)]
    pub fn new(
        cloud: Either<&SimCloud, &ArmCloud>,
        repository: Either<&Repository, &ObjectStoreRepository>,
        options: Option<ExecutorOptions>,
        blob_sink: Option<&PageBlobSink>,
    ) -> napi::Result<Self, Code> {
        let o = options.unwrap_or_default();
        let max = u64::from(u32::MAX);
        let whole = |name: &str, v: Option<f64>| json::whole(name, v, max).map_err(coded);
        let opts = facade::exec_options(
            facade::ExecSettings {
                control_concurrency: whole("controlConcurrency", o.control_concurrency)?,
                data_concurrency: whole("dataConcurrency", o.data_concurrency)?,
                max_attempts: whole("maxAttempts", o.max_attempts)?,
                base_delay_ms: whole("baseDelayMs", o.base_delay_ms)?,
                journal: o.journal.map(PathBuf::from),
                keep_on_cancel: o.keep_on_cancel.unwrap_or(false),
            },
            Naming::Camel,
        )
        .map_err(coded)?;
        let cloud: Arc<dyn exec::Cloud> = match cloud {
            Either::A(c) => Arc::new(c.inner.clone()),
            Either::B(c) => c.inner.clone(),
        };
        let repo: Arc<dyn exec::Repository> = match repository {
            Either::A(r) => Arc::new(r.inner.clone()),
            Either::B(r) => Arc::new(r.inner.clone()),
        };
        let mut ex = Executor::new(cloud, repo).with_options(opts);
        if let Some(dir) = o.out_dir {
            let sink = LocalVhdSink::new(std::path::Path::new(&dir))
                .map_err(|e| coded(invalid("outDir", e.to_string())))?;
            ex = ex.with_sink(Arc::new(sink));
        } else if let Some(b) = blob_sink {
            ex = ex.with_sink(b.inner.clone());
        }
        Ok(RestoreExecutor {
            inner: Arc::new(ex),
        })
    }

    /// Runs `plan`; resolves to the report. `options.onProgress` receives
    /// each event (it never keeps the process alive); `options.progress`
    /// takes a `ProgressStream`; `options.signal` (an `AbortSignal`)
    /// cancels the run, which then cleans up and resolves with outcome
    /// `cancelled`. Rejects (with `code`) when the run cannot start: a
    /// blocked or stale plan, an unreadable repository or journal.
    #[napi(
        ts_args_type = "plan: Plan | string, options?: RunOptions",
        ts_return_type = "Promise<Report>"
    )]
    pub fn run<'env>(
        &self,
        env: &'env Env,
        plan: Json,
        options: Option<Object<'env>>,
    ) -> Result<PromiseRaw<'env, Value>> {
        let token = CancellationToken::new();
        let mut callbacks: Vec<ProgressFn> = Vec::new();
        if let Some(o) = &options {
            if let Some(f) = o.get::<Function<'_, Value, Unknown<'_>>>("onProgress")? {
                let tsfn: ProgressCallback =
                    f.build_threadsafe_function().weak::<true>().build()?;
                callbacks.push(Arc::new(move |e: &Event| {
                    if let Ok(v) = serde_json::to_value(e) {
                        tsfn.call_with_return_value(
                            v,
                            ThreadsafeFunctionCallMode::NonBlocking,
                            |r, _| {
                                if let Err(err) = r {
                                    // A failing callback must not break the restore.
                                    eprintln!(
                                        "vmrestore: the onProgress callback threw: {}",
                                        err.reason
                                    );
                                }
                                Ok(())
                            },
                        );
                    }
                }));
            }
            if o.has_named_property("progress")? {
                let v: Unknown = o.get_named_property("progress")?;
                if v.get_type()? != ValueType::Undefined {
                    let stream: ClassInstance<'_, ProgressStream> =
                        o.get_named_property("progress").map_err(|_| {
                            js_error(env, invalid("options.progress", "must be a ProgressStream"))
                        })?;
                    let tx = stream.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let Some(tx) = tx else {
                        return Err(js_error(
                            env,
                            invalid(
                                "options.progress",
                                "this ProgressStream was already used by a run",
                            ),
                        ));
                    };
                    callbacks.push(Arc::new(move |e: &Event| {
                        let _ = tx.send(e.clone());
                    }));
                }
            }
            if let Some(signal) = o.get::<Object>("signal")? {
                if signal.get::<bool>("aborted")?.unwrap_or(false) {
                    token.cancel();
                } else {
                    let add: AddEventListener<'_> =
                        signal.get_named_property("addEventListener").map_err(|_| {
                            js_error(env, invalid("options.signal", "must be an AbortSignal"))
                        })?;
                    let t = token.clone();
                    let on_abort =
                        env.create_function_from_closure::<(), (), _>("onAbort", move |_| {
                            t.cancel();
                            Ok(())
                        })?;
                    add.apply(signal, FnArgs::from(("abort".to_string(), on_abort)))?;
                }
            }
        }
        let progress: Option<ProgressFn> = match callbacks.len() {
            0 => None,
            1 => callbacks.pop(),
            _ => Some(Arc::new(move |e: &Event| {
                for c in &callbacks {
                    c(e);
                }
            })),
        };
        let ex = self.inner.clone();
        promise(
            env,
            async move {
                let plan = plan_of(plan)?;
                ex.run(&plan, token, progress).await
            },
            |report| serde_json::to_value(&report).map_err(|e| Error::from_reason(e.to_string())),
        )
    }
}
