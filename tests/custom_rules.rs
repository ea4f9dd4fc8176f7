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

fn plan(set: &[(&str, serde_json::Value)], profiles: &[Profile]) -> vmrestore::plan::Plan {
    let mut bases = common::load("bases.json");
    for (p, v) in set {
        common::set_pointer(&mut bases["windows"], p, v.clone());
    }
    let rp: RestorePoint = from_value(bases["windows"]["restore_point"].clone()).unwrap();
    let req: RestoreRequest = from_value(bases["windows"]["request"].clone()).unwrap();
    let cat = Catalog::builtin();
    Planner::new(&cat)
        .unwrap()
        .plan(&rp, &req, profiles)
        .unwrap()
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
    let bases = common::load("bases.json");
    let rp: RestorePoint = from_value(bases["windows"]["restore_point"].clone()).unwrap();
    let req: RestoreRequest = from_value(bases["windows"]["request"].clone()).unwrap();
    let cat = Catalog::builtin();
    let err = Planner::new(&cat)
        .unwrap()
        .plan(&rp, &req, &[p])
        .unwrap_err();
    assert_eq!(err.code(), "E_RULE_EVAL");
    assert!(err.to_string().contains("T-1"));
}
