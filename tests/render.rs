//! Snapshot tests of the renderings (insta; snapshots in tests/snapshots/).

mod common;

use vmrestore::model::{Catalog, RestorePoint, RestoreRequest, from_value};
use vmrestore::plan::{Planner, render_text, to_dot, to_json, to_mermaid};
use vmrestore::policy::Profile;

fn plan_base(base: &str, profile: &str) -> vmrestore::plan::Plan {
    plan_with(base, profile, &[])
}

fn plan_with(
    base: &str,
    profile: &str,
    set: &[(&str, serde_json::Value)],
) -> vmrestore::plan::Plan {
    let mut bases = common::load("bases.json");
    for (ptr, v) in set {
        common::set_pointer(&mut bases[base], ptr, v.clone());
    }
    let rp: RestorePoint = from_value(bases[base]["restore_point"].clone()).unwrap();
    let req: RestoreRequest = from_value(bases[base]["request"].clone()).unwrap();
    let cat = Catalog::builtin();
    Planner::new(&cat)
        .unwrap()
        .plan(&rp, &req, &[Profile::builtin(profile).unwrap()])
        .unwrap()
}

#[test]
fn text_commvault_windows() {
    insta::assert_snapshot!(render_text(&plan_base("windows", "commvault")));
}

#[test]
fn text_veeam_linux_agent() {
    insta::assert_snapshot!(render_text(&plan_base("linux_agent", "veeam")));
}

#[test]
fn text_blocked_plan_lists_every_blocking_finding() {
    let plan = plan_with(
        "linux_agent",
        "azure-backup@2016",
        &[
            ("/request/restore_type", "replace_disks".into()),
            ("/request/destination/region", "northeurope".into()),
        ],
    );
    let blocking: Vec<&str> = plan.blocking().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(blocking, ["AB16-01", "AB16-02"]);
    assert!(plan.steps.is_empty());
    let text = render_text(&plan);
    assert!(text.contains("blocked by 2 findings: AB16-01, AB16-02"));
    insta::assert_snapshot!(text);
}

#[test]
fn mermaid_and_dot_commvault_windows() {
    let plan = plan_base("windows", "commvault");
    insta::assert_snapshot!("mermaid", to_mermaid(&plan));
    insta::assert_snapshot!("dot", to_dot(&plan));
}

#[test]
fn json_is_stable_and_round_trips() {
    let plan = plan_base("ade_linux", "azure-backup");
    let json = to_json(&plan);
    let back: vmrestore::plan::Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    assert_eq!(to_json(&back), json);
    assert!(json.contains("\"format_version\": \"2.0\""));
    insta::assert_snapshot!(json);
}

#[test]
fn summary_line_counts_match_steps() {
    let plan = plan_base("windows", "commvault");
    let creates = plan
        .steps
        .iter()
        .filter(|s| s.action == vmrestore::plan::Action::Create)
        .count();
    assert_eq!(plan.estimates.to_create as usize, creates);
    assert!(render_text(&plan).contains(&format!("Plan: {creates} to create")));
}
