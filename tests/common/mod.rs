//! Shared helpers for the top-level tests: the JSON test vectors here; the
//! server that behaves like ARM, Azurite, and the set-up of restores (the
//! demo repository, plans, runs) in the modules below.
#![allow(dead_code)]

pub mod arm_server;
pub mod azurite;
pub mod restore;

use serde_json::{Value, json};
use vmrestore::model::{Catalog, RestorePoint, RestoreRequest, from_value};
use vmrestore::plan::{Plan, Planner};
use vmrestore::policy::{Profile, custom};

pub fn vectors_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(vectors_dir().join(name)).expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

/// Sets `value` at JSON pointer `ptr`, creating objects on the way; an array
/// index equal to the length appends.
pub fn set_pointer(doc: &mut Value, ptr: &str, value: Value) {
    let parts: Vec<String> = ptr
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut cur = doc;
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        match cur {
            Value::Array(a) => {
                let idx: usize = part.parse().expect("array index");
                if idx == a.len() {
                    a.push(json!({}));
                }
                if last {
                    a[idx] = value;
                    return;
                }
                cur = &mut a[idx];
            }
            _ => {
                if !cur.is_object() {
                    *cur = json!({});
                }
                let obj = cur.as_object_mut().expect("object");
                if last {
                    obj.insert(part.clone(), value);
                    return;
                }
                cur = obj.entry(part.clone()).or_insert(json!({}));
            }
        }
    }
}

/// The input document of a case: its base with the case's `set` applied.
pub fn case_document(case: &Value, bases: &Value) -> Value {
    let base = case["base"].as_str().expect("base");
    let mut doc = bases[base].clone();
    doc["catalog"] = serde_json::to_value(Catalog::builtin()).unwrap();
    if let Some(set) = case.get("set").and_then(Value::as_object) {
        for (ptr, v) in set {
            set_pointer(&mut doc, ptr, v.clone());
        }
    }
    doc
}

pub fn profiles_of(case: &Value) -> vmrestore::Result<Vec<Profile>> {
    let mut out = Vec::new();
    for p in case["profiles"].as_array().into_iter().flatten() {
        out.push(Profile::builtin(p.as_str().unwrap_or_default())?);
    }
    if let Some(rules) = case.get("custom_rules").and_then(Value::as_str) {
        out.push(custom::load(rules, "custom")?);
    }
    Ok(out)
}

/// Plans a case, returning the plan or the error's code.
pub fn plan_case(case: &Value, bases: &Value) -> Result<Plan, (String, String)> {
    let doc = case_document(case, bases);
    let e = |e: vmrestore::Error| (e.code().to_string(), e.to_string());
    let rp: RestorePoint = from_value(doc["restore_point"].clone()).map_err(e)?;
    let req: RestoreRequest = from_value(doc["request"].clone()).map_err(e)?;
    let cat: Catalog = from_value(doc["catalog"].clone()).map_err(e)?;
    let profiles = profiles_of(case).map_err(e)?;
    Planner::new(&cat)
        .map_err(e)?
        .plan(&rp, &req, &profiles)
        .map_err(e)
}

/// Checks a plan (or error) against a case's `expect`; returns the failures.
pub fn check_case(case: &Value, result: &Result<Plan, (String, String)>) -> Vec<String> {
    let exp = &case["expect"];
    let mut fails = Vec::new();
    let strs = |k: &str| -> Vec<String> {
        exp.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    match result {
        Err((code, msg)) => {
            if exp.get("error").and_then(Value::as_str) != Some(code.as_str()) {
                fails.push(format!("unexpected error {code}: {msg}"));
            } else if let Some(path) = exp.get("error_contains").and_then(Value::as_str)
                && !msg.contains(path)
            {
                fails.push(format!("error '{msg}' does not contain '{path}'"));
            }
        }
        Ok(plan) => {
            if let Some(code) = exp.get("error") {
                fails.push(format!("expected error {code}, got a plan"));
                return fails;
            }
            let verdict = serde_json::to_value(plan.verdict).unwrap();
            if exp.get("verdict").is_some_and(|v| v != &verdict) {
                fails.push(format!("verdict {verdict}, expected {}", exp["verdict"]));
            }
            for id in strs("fired") {
                if !plan.rules_applied.contains(&id) {
                    fails.push(format!(
                        "rule {id} did not fire (applied: {:?})",
                        plan.rules_applied
                    ));
                }
            }
            for id in strs("not_fired") {
                if plan.rules_applied.contains(&id) {
                    fails.push(format!("rule {id} fired but should not"));
                }
            }
            for id in strs("blocked_by") {
                if !plan.blocking().any(|f| f.rule_id == id) {
                    fails.push(format!("no blocking finding of {id}"));
                }
            }
            for k in strs("transformations") {
                if !plan
                    .transformations
                    .iter()
                    .any(|t| serde_json::to_value(t.kind).unwrap() == Value::String(k.clone()))
                {
                    fails.push(format!("no transformation {k}"));
                }
            }
            for id in strs("post_actions") {
                if !plan.post_actions.iter().any(|p| p.rule_id == id) {
                    fails.push(format!("no post-action of {id}"));
                }
            }
            for id in strs("steps") {
                if plan.step(&id).is_none() {
                    fails.push(format!(
                        "no step {id} (steps: {:?})",
                        plan.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
                    ));
                }
            }
            for id in strs("no_steps") {
                if plan.step(&id).is_some() {
                    fails.push(format!("unexpected step {id}"));
                }
            }
            if let Some(n) = exp.get("disks").and_then(Value::as_u64)
                && plan.target.disks.len() as u64 != n
            {
                fails.push(format!(
                    "{} target disks, expected {n}",
                    plan.target.disks.len()
                ));
            }
            if let Some(z) = exp.get("zone")
                && &serde_json::to_value(plan.target.zone).unwrap() != z
            {
                fails.push(format!("target zone {:?}, expected {z}", plan.target.zone));
            }
        }
    }
    fails
}
