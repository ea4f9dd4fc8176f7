//! Runs the shared JSON test vectors (`tests/vectors/cases.json`), the same
//! cases the Python and Node bindings run, and checks that every rule of
//! RULES.md has a case where it fires and one where it does not.

mod common;

use std::collections::BTreeSet;

use common::*;
use vmrestore::policy::{BUILTIN, BuiltinProfile};

#[test]
fn shared_vectors() {
    let bases = load("bases.json");
    let cases = load("cases.json");
    let mut failures = Vec::new();
    let mut n = 0;
    for case in cases.as_array().expect("cases array") {
        n += 1;
        let result = plan_case(case, &bases);
        for f in check_case(case, &result) {
            failures.push(format!("{}: {f}", case["name"]));
        }
    }
    assert!(n > 0);
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn rule_ids_of_catalog() -> BTreeSet<String> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/RULES.md"),
    )
    .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter(|id| {
            let (p, n) = id.rsplit_once('-').unwrap_or(("", ""));
            BUILTIN.iter().any(|b| b.rule_prefix == format!("{p}-"))
                && n.len() == 2
                && n.bytes().all(|c| c.is_ascii_digit())
        })
        .map(String::from)
        .collect()
}

#[test]
fn every_rule_has_a_firing_and_a_quiet_case() {
    let ids = rule_ids_of_catalog();
    let implemented: BTreeSet<String> = BUILTIN
        .iter()
        .flat_map(|b| b.own_rules())
        .map(|r| r.id)
        .collect();
    assert_eq!(
        ids, implemented,
        "RULES.md and the registered profiles list different rules"
    );
    let cases = load("cases.json");
    let collect = |key: &str| -> BTreeSet<String> {
        cases
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["expect"][key].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let fired: BTreeSet<String> = collect("fired")
        .union(&collect("blocked_by"))
        .cloned()
        .collect();
    let quiet = collect("not_fired");
    let missing_fire: Vec<&String> = ids.iter().filter(|id| !fired.contains(*id)).collect();
    let missing_quiet: Vec<&String> = ids.iter().filter(|id| !quiet.contains(*id)).collect();
    assert!(
        missing_fire.is_empty(),
        "rules without a firing case: {missing_fire:?}"
    );
    assert!(
        missing_quiet.is_empty(),
        "rules without a quiet case: {missing_quiet:?}"
    );
}

#[test]
fn every_rule_of_the_catalog_is_implemented_in_its_profile() {
    for id in rule_ids_of_catalog() {
        let profile = BuiltinProfile::of_rule(&id)
            .unwrap_or_else(|| panic!("{id}: no registered profile has its prefix"))
            .name;
        let p = vmrestore::policy::Profile::builtin(profile).unwrap();
        let rule = p
            .rule(&id)
            .unwrap_or_else(|| panic!("{id} missing from {profile}"));
        assert!(
            !rule.source.is_empty() && !rule.summary.is_empty() && !rule.kinds.is_empty(),
            "{id} lacks metadata"
        );
    }
}

/// VE-17's switch to Generation 2 is a transformation of the plan, with its
/// rule ID, and the target is Generation 2 with UEFI.
#[test]
fn the_veeam_generation_2_switch_is_a_recorded_transformation() {
    let bases = load("bases.json");
    let case = serde_json::json!({
        "base": "windows",
        "profiles": ["veeam"],
        "set": {"/restore_point/vm/generation": "gen1", "/restore_point/vm/firmware": "uefi"},
    });
    let plan = plan_case(&case, &bases).expect("planned");
    let t: Vec<_> = plan
        .transformations
        .iter()
        .filter(|t| t.kind == vmrestore::plan::TransformKind::ChangeGeneration)
        .collect();
    assert_eq!(t.len(), 1, "{:?}", plan.transformations);
    assert_eq!(t[0].rule_id, "VE-17");
    assert_eq!(t[0].path, "$.restore_point.vm.generation");
    assert_eq!(
        t[0].before,
        serde_json::json!({"generation": "gen1", "firmware": "uefi"})
    );
    assert_eq!(
        t[0].after,
        serde_json::json!({"generation": "gen2", "firmware": "uefi"})
    );
    assert_eq!(plan.target.generation, vmrestore::model::Generation::Gen2);
    assert!(plan.rules_applied.iter().any(|r| r == "VE-17"));

    // A source that is Generation 2 already changes nothing.
    let same = serde_json::json!({
        "base": "windows",
        "profiles": ["veeam"],
        "set": {"/restore_point/vm/generation": "gen2", "/restore_point/vm/firmware": "uefi"},
    });
    let plan = plan_case(&same, &bases).expect("planned");
    assert!(
        !plan
            .transformations
            .iter()
            .any(|t| t.kind == vmrestore::plan::TransformKind::ChangeGeneration)
    );
}
