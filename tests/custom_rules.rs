//! Custom rules: the README's example rule file loads and behaves as it says;
//! bad rules fail at load time with a clear message.

mod common;

use vmrestore::model::{Catalog, RestorePoint, RestoreRequest, from_value};
use vmrestore::plan::Planner;
use vmrestore::policy::{Profile, custom};

fn acme() -> Profile {
    custom::load_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rules/acme.toml"),
    )
    .unwrap()
}

/// Plans the `windows` base of `bases` with `profiles`.
fn plan_windows(
    bases: &serde_json::Value,
    profiles: &[Profile],
) -> vmrestore::Result<vmrestore::plan::Plan> {
    let rp: RestorePoint = from_value(bases["windows"]["restore_point"].clone()).unwrap();
    let req: RestoreRequest = from_value(bases["windows"]["request"].clone()).unwrap();
    let cat = Catalog::builtin();
    Planner::new(&cat).unwrap().plan(&rp, &req, profiles)
}

fn plan(set: &[(&str, serde_json::Value)], profiles: &[Profile]) -> vmrestore::plan::Plan {
    let mut bases = common::load("bases.json");
    for (p, v) in set {
        common::set_pointer(&mut bases["windows"], p, v.clone());
    }
    plan_windows(&bases, profiles).unwrap()
}

#[test]
fn readme_rules_fire_and_stay_quiet() {
    let p = acme();
    assert_eq!(p.name, "acme");
    let quiet = plan(&[], std::slice::from_ref(&p));
    assert!(quiet.is_ready(), "{:?}", quiet.findings);
    assert!(quiet.rules_applied.iter().all(|r| !r.starts_with("ACME")));

    let prod_elsewhere = plan(
        &[
            ("/restore_point/vm/tags", serde_json::json!({"env": "prod"})),
            ("/request/destination/region", "northeurope".into()),
        ],
        std::slice::from_ref(&p),
    );
    assert!(prod_elsewhere.blocking().any(|f| f.rule_id == "ACME-02"));

    let dc_in_place = plan(
        &[
            ("/restore_point/vm/domain_controller", "single".into()),
            ("/request/placement", "in_place".into()),
            ("/request/overwrite_confirmed", true.into()),
        ],
        &[Profile::builtin("commvault").unwrap(), p.clone()],
    );
    let f = dc_in_place
        .blocking()
        .find(|f| f.rule_id == "ACME-01")
        .expect("ACME-01 blocks");
    assert_eq!(f.path, "$.request.placement");
    assert_eq!(f.source, "ACME DR policy, section 3");

    let big = plan(
        &[(
            "/restore_point/vm/disks/1/size_bytes",
            serde_json::json!(5u64 << 40),
        )],
        std::slice::from_ref(&p),
    );
    assert!(big.findings.iter().any(|f| f.rule_id == "ACME-03"));
    assert!(big.is_ready());
}

#[test]
fn bad_rules_fail_at_load_time_with_the_reason() {
    let cases = [
        ("when = \"vm.name ==\"", "syntax error"),
        (
            "when = \"vm.nmae == 'x'\"",
            "unknown field 'nmae' in 'vm' (did you mean 'name'?)",
        ),
        (
            "when = \"vm.os.family.x == 1\"",
            "'vm.os.family' has no field 'x'",
        ),
        (
            "when = \"vm.disks.exists(d, d.sise_bytes > 1)\"",
            "unknown field 'sise_bytes'",
        ),
        ("when = \"foo == 1\"", "unknown variable 'foo'"),
    ];
    for (when, want) in cases {
        let text =
            format!("[[rules]]\nid = \"T-1\"\n{when}\noutcome = \"warn\"\nmessage = \"m\"\n");
        let err = custom::load(&text, "t").unwrap_err();
        assert_eq!(err.code(), "E_RULE");
        assert!(err.to_string().contains(want), "{when}: {err}");
    }
    let bad_outcome = custom::load(
        "[[rules]]\nid = \"T-1\"\nwhen = \"true\"\noutcome = \"explode\"\nmessage = \"m\"\n",
        "t",
    )
    .unwrap_err();
    assert!(
        bad_outcome
            .to_string()
            .contains("unknown outcome 'explode'")
    );
    let bad_transform = custom::load("[[rules]]\nid = \"T-1\"\nwhen = \"true\"\noutcome = \"transform\"\ntransform = \"teleport\"\nmessage = \"m\"\n", "t").unwrap_err();
    assert!(
        bad_transform
            .to_string()
            .contains("unknown transformation 'teleport'")
    );
    let dup = custom::load("[[rules]]\nid = \"T-1\"\nwhen = \"true\"\noutcome = \"warn\"\nmessage = \"m\"\n[[rules]]\nid = \"T-1\"\nwhen = \"true\"\noutcome = \"warn\"\nmessage = \"m\"\n", "t").unwrap_err();
    assert!(dup.to_string().contains("used twice"));
    let json = custom::load(r#"{"rules": [{"id": "J-1", "when": "facts.cross_region", "outcome": "info", "message": "m", "unknown": 1}]}"#, "t").unwrap_err();
    assert_eq!(json.code(), "E_PARSE");
}

#[test]
fn a_rule_that_does_not_give_a_boolean_is_an_evaluation_error() {
    let p = custom::load(
        "[[rules]]\nid = \"T-1\"\nwhen = \"vm.name\"\noutcome = \"warn\"\nmessage = \"m\"\n",
        "t",
    )
    .unwrap();
    let err = plan_windows(&common::load("bases.json"), &[p]).unwrap_err();
    assert_eq!(err.code(), "E_RULE_EVAL");
    assert!(err.to_string().contains("T-1"));
}

fn rule(id: &str, when: &str) -> String {
    format!(
        "[[rules]]\nid = \"{id}\"\nwhen = {}\noutcome = \"warn\"\nmessage = \"m\"\n",
        serde_json::Value::String(when.into())
    )
}

/// Issue 12, item 12: eight nested maps over ten-element lists are 10^8
/// iterations in about 300 characters; the load-time estimate refuses them,
/// naming the rule, before any planning runs.
#[test]
fn a_rule_whose_cost_explodes_is_refused_at_load_time_naming_it() {
    let ten = "[0,1,2,3,4,5,6,7,8,9]";
    let mut when = "x7".to_string();
    for i in (0..8).rev() {
        when = format!("{ten}.map(x{i}, {when})");
    }
    let when = format!("size({when}) > 0");
    assert!(when.len() < 400, "{}", when.len());
    let err = custom::load(&rule("COST-1", &when), "t").unwrap_err();
    assert_eq!(err.code(), "E_RULE");
    let msg = err.to_string();
    assert!(msg.contains("COST-1"), "{msg}");
    assert!(msg.contains("more than the limit of 1000000"), "{msg}");

    // Doubling a value at each level costs no iterations, only size.
    let mut when = "[1]".to_string();
    for i in 0..30 {
        when = format!("[{when}].map(a{i}, a{i} + a{i})[0]");
    }
    let err = custom::load(&rule("COST-2", &format!("size({when}) > 0")), "t").unwrap_err();
    assert!(err.to_string().contains("COST-2"), "{err}");

    // Three levels over the inputs' collections are refused too; two pass.
    let three = "vm.disks.exists(a, vm.disks.exists(b, vm.disks.exists(c, a.lun == c.lun)))";
    assert!(custom::load(&rule("COST-3", three), "t").is_err());
    let two = "vm.disks.exists(a, vm.disks.exists(b, a.lun == b.lun && a.name != b.name))";
    custom::load(&rule("OK-2", two), "t").unwrap();
}

/// The runtime limit covers inputs larger than the load-time estimate
/// assumes: two nested loops over 3,000 tags pass the estimate (256 items
/// assumed) but are stopped at run time, naming the rule.
#[test]
fn a_rule_over_inputs_larger_than_assumed_is_stopped_at_run_time() {
    let when = "vm.tags.all(k, vm.tags.all(j, k != j || vm.tags[k] == vm.tags[j]))";
    let p = custom::load(&rule("RUN-1", when), "t").unwrap();
    let tags: serde_json::Map<String, serde_json::Value> = (0..3000)
        .map(|i| (format!("t{i}"), serde_json::Value::from("v")))
        .collect();
    let few: serde_json::Map<String, serde_json::Value> = (0..20)
        .map(|i| (format!("t{i}"), serde_json::Value::from("v")))
        .collect();

    // With 20 tags the rule evaluates (every tag has the same value: it
    // fires).
    let fine = plan(
        &[("/restore_point/vm/tags", few.into())],
        std::slice::from_ref(&p),
    );
    assert!(
        fine.findings.iter().any(|f| f.rule_id == "RUN-1"),
        "{:?}",
        fine.findings
    );

    let mut bases = common::load("bases.json");
    common::set_pointer(&mut bases["windows"], "/restore_point/vm/tags", tags.into());
    let err = plan_windows(&bases, &[p]).unwrap_err();
    assert_eq!(err.code(), "E_RULE", "{err}");
    assert!(err.to_string().contains("RUN-1"), "{err}");
    assert!(err.to_string().contains("budget"), "{err}");
}

/// The functions the budget inserts cannot be called by a rule.
#[test]
fn the_budget_functions_are_reserved() {
    let err = custom::load(&rule("RES-1", "__vmr_tick(true)"), "t").unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
}
