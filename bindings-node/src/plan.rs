//! Planning: `plan`, `planAsync`, `planMany`, `render`, rules, catalog, schemas, demo.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use restore_core::facade::{self};
use restore_core::model::Catalog;
use restore_core::plan as core_plan;
use restore_core::policy::{BUILTIN_PROFILES, Profile};
use serde_json::Value;

use crate::convert::*;
use crate::errors::*;
use crate::json::Json;
use crate::runtime::*;

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
pub(crate) fn capabilities_of(v: Json) -> restore_core::Result<core_plan::Capabilities> {
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
pub(crate) fn rules_text(r: Json) -> restore_core::Result<String> {
    Ok(match r.value()? {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

pub(crate) fn catalog_of(v: Option<Json>) -> restore_core::Result<Catalog> {
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
