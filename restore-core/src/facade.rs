//! What the bindings need from the core in one place, so that Python and
//! Node resolve profiles, plan and validate their options the same way (the
//! bindings only convert their values into these arguments and the results
//! back).
//!
//! Option names appear in error messages as the host language spells them:
//! see [`Naming`].

use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::exec::{ExecOptions, Faults, RetryPolicy};
use crate::model::{Catalog, RestorePoint, RestoreRequest, Validate, from_json, from_value};
use crate::plan::{Capabilities, Plan, Planner};
use crate::policy::{BUILTIN_PROFILES, Profile, custom};
use crate::{Error, Result};

/// How the host language spells option names (they appear in errors as
/// the `path` of [`Error::Invalid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `control_concurrency` (Python).
    Snake,
    /// `controlConcurrency` (JavaScript).
    Camel,
}

impl Naming {
    /// `name` (given in snake case) as this host spells it.
    pub fn spell(self, name: &str) -> String {
        match self {
            Naming::Snake => name.to_string(),
            Naming::Camel => {
                let mut out = String::with_capacity(name.len());
                let mut upper = false;
                for c in name.chars() {
                    if c == '_' {
                        upper = true;
                    } else if upper {
                        out.extend(c.to_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// A document handed over by a binding: JSON text, or a value the host
/// already converted (a JavaScript object).
#[derive(Debug, Clone)]
pub enum Doc {
    /// JSON text.
    Text(String),
    /// A parsed value (a JSON string value counts as JSON text).
    Value(serde_json::Value),
}

impl Doc {
    /// Parses and validates the document as `T`.
    pub fn parse<T: DeserializeOwned + Validate>(self) -> Result<T> {
        match self {
            Doc::Text(s) | Doc::Value(serde_json::Value::String(s)) => from_json(&s),
            Doc::Value(v) => from_value(v),
        }
    }

    /// Parses the document as `T` without model validation; a shape error
    /// is an [`Error::Parse`] at `path`.
    fn deserialize<T: DeserializeOwned>(self, path: &str) -> Result<T> {
        match self {
            Doc::Text(s) | Doc::Value(serde_json::Value::String(s)) => serde_json::from_str(&s),
            Doc::Value(v) => serde_json::from_value(v),
        }
        .map_err(|e| Error::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }
}

/// A custom rules document: TOML or JSON text, and the name of its rule set
/// when the document gives none.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The document.
    pub text: String,
    /// The rule set's name if the document has none.
    pub name: String,
}

/// Built-in profiles by name, then the custom rules (if any) as one more profile.
pub fn profiles(names: &[String], rules: Option<&Rules>) -> Result<Vec<Profile>> {
    let mut out = Vec::with_capacity(names.len() + 1);
    for n in names {
        out.push(Profile::builtin(n)?);
    }
    if let Some(r) = rules {
        out.push(custom::load(&r.text, &r.name)?);
    }
    Ok(out)
}

/// The catalog given, or the built-in one.
pub fn catalog(doc: Option<Doc>) -> Result<Catalog> {
    match doc {
        Some(d) => d.parse(),
        None => Ok(Catalog::builtin()),
    }
}

/// A cloud's capabilities (from `capabilities()` of a cloud).
pub fn capabilities(doc: Doc) -> Result<Capabilities> {
    doc.deserialize("$.capabilities")
}

/// Plans one restore: `profiles` from [`profiles`], the catalog defaults to
/// the built-in one, `capabilities` those of the cloud it is for.
pub fn plan(
    restore_point: Doc,
    request: Doc,
    profiles: &[Profile],
    catalog_doc: Option<Doc>,
    capabilities: Option<Capabilities>,
) -> Result<Plan> {
    let rp: RestorePoint = restore_point.parse()?;
    let req: RestoreRequest = request.parse()?;
    let cat = catalog(catalog_doc)?;
    let mut planner = Planner::new(&cat)?;
    if let Some(c) = capabilities {
        planner = planner.for_cloud(c);
    }
    planner.plan(&rp, &req, profiles)
}

/// One restore of [`plan_many`].
#[derive(Debug, Clone)]
pub struct PlanItem {
    /// The restore point.
    pub restore_point: Doc,
    /// The request.
    pub request: Doc,
    /// A built-in profile name.
    pub profile: String,
}

/// Plans many restores against one catalog, each with one built-in profile;
/// the first error ends it.
pub fn plan_many(items: Vec<PlanItem>, catalog_doc: Option<Doc>) -> Result<Vec<Plan>> {
    let cat = catalog(catalog_doc)?;
    let planner = Planner::new(&cat)?;
    let builtin: Vec<Profile> = BUILTIN_PROFILES
        .iter()
        .map(|p| Profile::builtin(p))
        .collect::<Result<_>>()?;
    items
        .into_iter()
        .map(|it| {
            let profile = match builtin.iter().find(|p| p.name == it.profile) {
                Some(p) => p.clone(),
                None => Profile::builtin(&it.profile)?,
            };
            let rp: RestorePoint = it.restore_point.parse()?;
            let req: RestoreRequest = it.request.parse()?;
            planner.plan(&rp, &req, std::slice::from_ref(&profile))
        })
        .collect()
}

/// The executor's options as a binding takes them (`None`: the default).
#[derive(Debug, Clone, Default)]
pub struct ExecSettings {
    /// Control-plane calls at once (at least 1; default 8).
    pub control_concurrency: Option<u64>,
    /// Disks written at once (at least 1; default 4).
    pub data_concurrency: Option<u64>,
    /// Attempts per call (at least 1; default 8).
    pub max_attempts: Option<u64>,
    /// First retry delay in ms (default 200).
    pub base_delay_ms: Option<u64>,
    /// The journal file.
    pub journal: Option<PathBuf>,
    /// Keep what was made on cancel.
    pub keep_on_cancel: bool,
}

fn invalid(naming: Naming, name: &str, message: impl Into<String>) -> Error {
    Error::Invalid {
        path: naming.spell(name),
        message: message.into(),
    }
}

/// A count of at least 1 that fits `u32`, or the default.
fn count(naming: Naming, name: &str, v: Option<u64>, default: u64) -> Result<u64> {
    match v {
        Some(0) => Err(invalid(naming, name, "must be at least 1")),
        Some(n) if n > u64::from(u32::MAX) => Err(invalid(
            naming,
            name,
            format!("{n} is too large (at most {})", u32::MAX),
        )),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// Validated executor options: counts of at least 1, the other settings
/// as the core's defaults.
pub fn exec_options(s: ExecSettings, naming: Naming) -> Result<ExecOptions> {
    let d = ExecOptions::default();
    let control = count(
        naming,
        "control_concurrency",
        s.control_concurrency,
        d.control_concurrency as u64,
    )?;
    let data = count(
        naming,
        "data_concurrency",
        s.data_concurrency,
        d.data_concurrency as u64,
    )?;
    let attempts = count(
        naming,
        "max_attempts",
        s.max_attempts,
        u64::from(d.retry.max_attempts),
    )?;
    Ok(ExecOptions {
        control_concurrency: control as usize,
        data_concurrency: data as usize,
        journal: s.journal,
        keep_on_cancel: s.keep_on_cancel,
        retry: RetryPolicy {
            max_attempts: attempts as u32,
            base_delay: s
                .base_delay_ms
                .map_or(d.retry.base_delay, std::time::Duration::from_millis),
            ..d.retry.clone()
        },
        ..d
    })
}

/// Faults of the simulated cloud as a binding takes them.
#[derive(Debug, Clone, Default)]
pub struct FaultSettings {
    /// Probability (0 to 1) of a transient fault per control call.
    pub fault_probability: Option<f64>,
    /// Probability (0 to 1) of a transient fault per data call.
    pub data_fault_probability: Option<f64>,
    /// Seed of the fault decisions.
    pub seed: u64,
    /// Retry-After of injected 429s, in ms.
    pub retry_after_ms: u64,
    /// Operations that always fail.
    pub always_fail: Vec<String>,
}

fn probability(naming: Naming, name: &str, p: Option<f64>) -> Result<f64> {
    match p {
        Some(p) if !(0.0..=1.0).contains(&p) => Err(invalid(
            naming,
            name,
            format!("{p} is not a probability (0 to 1)"),
        )),
        p => Ok(p.unwrap_or(0.0)),
    }
}

/// Validated faults: probabilities between 0 and 1.
pub fn faults(s: FaultSettings, naming: Naming) -> Result<Faults> {
    Ok(Faults {
        control: probability(naming, "fault_probability", s.fault_probability)?,
        data: probability(naming, "data_fault_probability", s.data_fault_probability)?,
        seed: s.seed,
        retry_after: std::time::Duration::from_millis(s.retry_after_ms),
        always_fail: s.always_fail,
    })
}

/// Authorisation of blob storage: `account` and `key` (shared key), or a
/// SAS, or neither when the URL carries a SAS.
#[cfg(feature = "azure")]
pub fn storage_auth(
    account: Option<String>,
    key: Option<String>,
    sas: Option<String>,
) -> Result<crate::azure::StorageAuth> {
    use crate::azure::StorageAuth;
    match (account, key, sas) {
        (Some(account), Some(key), None) => Ok(StorageAuth::SharedKey { account, key }),
        (None, None, sas) => Ok(StorageAuth::Sas(sas.unwrap_or_default())),
        _ => Err(Error::Invalid {
            path: "auth".into(),
            message: "give account and key, or a SAS (or neither when the URL carries one)".into(),
        }),
    }
}

/// Where an object-store repository is: a URL with the store's options, or
/// an Azure storage account (or Azurite) with shared key.
#[cfg(feature = "object-store")]
#[derive(Debug, Clone, Default)]
pub struct ObjectStoreSettings {
    /// `az://container/prefix`, `s3://bucket/prefix`, ...
    pub url: Option<String>,
    /// The store's options (secrets).
    pub options: std::collections::HashMap<String, String>,
    /// Blob endpoint of the account.
    pub endpoint: Option<String>,
    /// Storage account.
    pub account: Option<String>,
    /// Account key (a secret).
    pub key: Option<String>,
    /// Container.
    pub container: Option<String>,
    /// Path prefix inside the container.
    pub prefix: String,
}

/// Opens an object-store repository; `path` names the binding's argument
/// in the error when the settings are neither form.
#[cfg(feature = "object-store")]
pub fn object_store(
    s: ObjectStoreSettings,
    path: &str,
) -> Result<crate::repo::ObjectStoreRepository> {
    use crate::repo::ObjectStoreRepository;
    match (s.url, s.endpoint, s.account, s.key, s.container) {
        (Some(u), None, None, None, None) => ObjectStoreRepository::from_url(&u, s.options),
        (None, Some(e), Some(a), Some(k), Some(c)) => {
            ObjectStoreRepository::azure_shared_key(&e, &a, &k, &c, &s.prefix)
        }
        _ => Err(Error::Invalid {
            path: path.into(),
            message: "give url (and options), or endpoint, account, key and container".into(),
        }),
    }
}

/// The access tokens of an ARM cloud: a fixed `token`, or an
/// `azure_identity` credential by name.
#[cfg(feature = "azure-identity")]
pub fn token_source(
    token: Option<String>,
    credential: Option<&str>,
    tenant_id: &str,
    managed_identity_client_id: Option<String>,
) -> Result<std::sync::Arc<dyn crate::azure::TokenProvider>> {
    crate::azure::identity::token_source(
        token,
        credential,
        Some(tenant_id.to_string()),
        managed_identity_client_id,
    )
    .map_err(|e| Error::Invalid {
        path: "credential".into(),
        message: e.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_as_the_host_does() {
        assert_eq!(
            Naming::Camel.spell("data_fault_probability"),
            "dataFaultProbability"
        );
        assert_eq!(
            Naming::Snake.spell("data_fault_probability"),
            "data_fault_probability"
        );
    }

    #[test]
    fn a_concurrency_of_zero_is_refused_by_name() {
        for (naming, name) in [
            (Naming::Snake, "control_concurrency"),
            (Naming::Camel, "controlConcurrency"),
        ] {
            let e = exec_options(
                ExecSettings {
                    control_concurrency: Some(0),
                    ..Default::default()
                },
                naming,
            )
            .unwrap_err();
            assert_eq!(e.code(), "E_INVALID");
            assert_eq!(
                e.to_string(),
                format!("invalid input at {name}: must be at least 1")
            );
        }
        let e = exec_options(
            ExecSettings {
                max_attempts: Some(0),
                ..Default::default()
            },
            Naming::Snake,
        )
        .unwrap_err();
        assert!(e.to_string().contains("max_attempts"), "{e}");
    }

    #[test]
    fn defaults_are_the_cores() {
        let o = exec_options(ExecSettings::default(), Naming::Snake).unwrap();
        let d = ExecOptions::default();
        assert_eq!(o.control_concurrency, d.control_concurrency);
        assert_eq!(o.data_concurrency, d.data_concurrency);
        assert_eq!(o.retry.max_attempts, d.retry.max_attempts);
        assert_eq!(o.retry.base_delay, d.retry.base_delay);
    }

    #[test]
    fn a_probability_out_of_range_is_refused_by_name() {
        for p in [1.5, -0.1, f64::NAN] {
            let e = faults(
                FaultSettings {
                    data_fault_probability: Some(p),
                    ..Default::default()
                },
                Naming::Camel,
            )
            .unwrap_err();
            assert_eq!(e.code(), "E_INVALID");
            assert!(e.to_string().contains("dataFaultProbability"), "{e}");
            assert!(e.to_string().contains("not a probability"), "{e}");
        }
        let f = faults(
            FaultSettings {
                fault_probability: Some(1.0),
                ..Default::default()
            },
            Naming::Snake,
        )
        .unwrap();
        assert_eq!(f.control, 1.0);
        assert_eq!(f.data, 0.0);
    }

    #[test]
    fn unknown_profiles_and_bad_rules_are_the_cores_errors() {
        assert_eq!(
            profiles(&["nope".into()], None).unwrap_err().code(),
            "E_UNKNOWN_PROFILE"
        );
        let bad = Rules {
            text: "not = [valid".into(),
            name: "custom".into(),
        };
        assert_eq!(profiles(&[], Some(&bad)).unwrap_err().code(), "E_PARSE");
        assert_eq!(
            profiles(&["commvault".into()], None).unwrap()[0].name,
            "commvault"
        );
    }

    #[test]
    fn documents_parse_from_text_or_value() {
        let cat = catalog(None).unwrap();
        let text = serde_json::to_string(&cat).unwrap();
        let value = serde_json::to_value(&cat).unwrap();
        assert!(catalog(Some(Doc::Text(text))).is_ok());
        assert!(catalog(Some(Doc::Value(value))).is_ok());
        let e = capabilities(Doc::Text("[".into())).unwrap_err();
        assert_eq!(e.code(), "E_PARSE");
        assert!(e.to_string().contains("$.capabilities"), "{e}");
    }

    #[test]
    fn plan_many_plans_each_item_with_its_profile() {
        let dir = std::env::temp_dir().join(format!("vmr-facade-{}", std::process::id()));
        let (_, restores) = crate::demo::build(&dir).unwrap();
        let items: Vec<PlanItem> = restores
            .iter()
            .take(2)
            .map(|r| PlanItem {
                restore_point: Doc::Value(serde_json::to_value(&r.restore_point).unwrap()),
                request: Doc::Text(serde_json::to_string(&r.request).unwrap()),
                profile: "commvault".into(),
            })
            .collect();
        let n = items.len();
        let plans = plan_many(items, None).unwrap();
        assert_eq!(plans.len(), n);
        assert!(plans.iter().all(|p| p.profiles == ["commvault"]));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(feature = "azure")]
    #[test]
    fn storage_auth_takes_a_key_pair_or_a_sas() {
        assert!(storage_auth(Some("a".into()), Some("k".into()), None).is_ok());
        assert!(storage_auth(None, None, Some("sv=1".into())).is_ok());
        assert!(storage_auth(None, None, None).is_ok());
        let e = storage_auth(Some("a".into()), None, None).unwrap_err();
        assert!(e.to_string().contains("give account and key"), "{e}");
    }
}
