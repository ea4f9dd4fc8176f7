//! What the executor checks of a plan it is handed, before the first cloud
//! call: that it is exactly what the planner makes of the inputs it records
//! (so a hand-edited verdict, a grafted step or a changed target is refused),
//! and, where the host asks for it, that its seal (HMAC-SHA256 with the
//! host's key) matches, for plans that pass through untrusted hands.
//!
//! Re-planning is enough against edits that leave the inputs alone. Someone
//! who can edit the plan can also edit the request it records and plan
//! again, which is a consistent plan of another request: only the seal
//! (a key the editor does not have) stops that.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{Plan, Planner};
use crate::error::{Error, Result};
use crate::model::{Catalog, RestorePoint};
use crate::policy::{Profile, custom};

/// The profiles a plan records, loaded again (built-in profiles by name,
/// custom rule sets from their recorded text).
pub fn recorded_profiles(plan: &Plan) -> Result<Vec<Profile>> {
    plan.inputs
        .profiles
        .iter()
        .map(|p| match &p.rules {
            Some(text) => custom::load(text, &p.name),
            None => Profile::builtin(&p.name),
        })
        .collect()
}

/// Plans again from `rp`, `catalog` and the request and profiles `plan`
/// records, and refuses any difference with [`Error::PlanMismatch`] naming
/// the JSON path of the first one. The seal is not compared (see
/// [`verify_seal`]).
pub fn check_replan(plan: &Plan, rp: &RestorePoint, catalog: &Catalog) -> Result<()> {
    if plan.format_version != super::FORMAT_VERSION {
        return Err(Error::PlanMismatch {
            path: "$.format_version".into(),
            message: format!(
                "the plan has format {:?}; this version of vmrestore makes and runs format {:?}",
                plan.format_version.chars().take(16).collect::<String>(),
                super::FORMAT_VERSION
            ),
        });
    }
    let profiles = recorded_profiles(plan)?;
    if profiles.iter().map(|p| &p.name).ne(plan.profiles.iter()) {
        return Err(Error::PlanMismatch {
            path: "$.profiles".into(),
            message: "the profiles differ from those in $.inputs.profiles".into(),
        });
    }
    let mut planner = Planner::new(catalog)?;
    if let Some(caps) = &plan.inputs.capabilities {
        planner = planner.for_cloud(caps.clone());
    }
    let fresh = planner.plan(rp, &plan.inputs.request, &profiles)?;
    let unsealed = Plan {
        seal: None,
        ..plan.clone()
    };
    if fresh == unsealed {
        return Ok(());
    }
    let mut got = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Some(o) = got.as_object_mut() {
        o.remove("seal");
    }
    let want = serde_json::to_value(&fresh).unwrap_or(Value::Null);
    let (path, message) = first_difference("$", &got, &want)
        .unwrap_or_else(|| ("$".into(), "the plan differs from a fresh plan".into()));
    Err(Error::PlanMismatch { path, message })
}

/// The first place where `got` differs from `want`, as a JSON path and a
/// short description (values are cut: a plan holds no secrets, but a path
/// is what a reader needs).
fn first_difference(path: &str, got: &Value, want: &Value) -> Option<(String, String)> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    None => return Some((p, "missing".into())),
                    Some(gv) => {
                        if let Some(d) = first_difference(&p, gv, wv) {
                            return Some(d);
                        }
                    }
                }
            }
            g.keys().find(|k| !w.contains_key(*k)).map(|k| {
                (
                    format!("{path}.{k}"),
                    "not a field the planner makes".into(),
                )
            })
        }
        (Value::Array(g), Value::Array(w)) => {
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                if let Some(d) = first_difference(&format!("{path}[{i}]"), gv, wv) {
                    return Some(d);
                }
            }
            (g.len() != w.len()).then(|| {
                (
                    format!("{path}[{}]", g.len().min(w.len())),
                    format!("{} entries where the planner makes {}", g.len(), w.len()),
                )
            })
        }
        (g, w) if g == w => None,
        (g, w) => Some((
            path.to_string(),
            format!("{} where the planner makes {}", short(g), short(w)),
        )),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac_of(plan: &Plan, key: &[u8]) -> Result<HmacSha256> {
    if key.len() < 16 {
        return Err(Error::PlanSeal(
            "the seal key must be at least 16 bytes".into(),
        ));
    }
    let unsealed = Plan {
        seal: None,
        ..plan.clone()
    };
    let bytes = serde_json::to_vec(&unsealed)
        .map_err(|e| Error::PlanSeal(format!("cannot encode the plan: {e}")))?;
    let mut mac =
        HmacSha256::new_from_slice(key).map_err(|e| Error::PlanSeal(format!("bad key: {e}")))?;
    mac.update(b"vmrestore plan seal v1\0");
    mac.update(&bytes);
    Ok(mac)
}

/// Seals `plan` with `key` (at least 16 bytes): sets [`Plan::seal`] to
/// `hmac-sha256:<hex>` over the rest of the plan.
pub fn seal(plan: &mut Plan, key: &[u8]) -> Result<()> {
    let tag = mac_of(plan, key)?.finalize().into_bytes();
    plan.seal = Some(format!("hmac-sha256:{}", hex::encode(tag)));
    Ok(())
}

/// Checks `plan`'s seal against `key` (in constant time): a missing,
/// malformed or wrong seal is [`Error::PlanSeal`].
pub fn verify_seal(plan: &Plan, key: &[u8]) -> Result<()> {
    let Some(s) = &plan.seal else {
        return Err(Error::PlanSeal(
            "the plan is not sealed, and this executor runs only sealed plans".into(),
        ));
    };
    let tag = s
        .strip_prefix("hmac-sha256:")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| Error::PlanSeal("the seal is not hmac-sha256:<hex>".into()))?;
    mac_of(plan, key)?
        .verify_slice(&tag)
        .map_err(|_| Error::PlanSeal("the seal does not match: the plan was changed after it was sealed, or sealed with another key".into()))
}
