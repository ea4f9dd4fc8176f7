"""The shared JSON test vectors: the same cases the Rust tests run."""

import copy
import json

import pytest

import vmrestore
from conftest import load, set_pointer

BASES = load("bases.json")
CASES = load("cases.json")
CATALOG = vmrestore.builtin_catalog()


def run_case(case):
    doc = copy.deepcopy(BASES[case["base"]])
    doc["catalog"] = copy.deepcopy(CATALOG)
    for ptr, value in case.get("set", {}).items():
        set_pointer(doc, ptr, value)
    return vmrestore.plan(
        doc["restore_point"],
        doc["request"],
        profiles=case.get("profiles", []),
        rules=case.get("custom_rules"),
        catalog=doc["catalog"],
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case):
    exp = case["expect"]
    if "error" in exp:
        with pytest.raises(vmrestore.VmrestoreError) as err:
            run_case(case)
        assert err.value.code == exp["error"]
        if "error_contains" in exp:
            assert exp["error_contains"] in str(err.value)
        return
    plan = run_case(case)
    if "verdict" in exp:
        assert plan.verdict == exp["verdict"]
    for rule in exp.get("fired", []):
        assert rule in plan.rules_applied, f"{rule} did not fire"
    for rule in exp.get("not_fired", []):
        assert rule not in plan.rules_applied, f"{rule} fired"
    for rule in exp.get("blocked_by", []):
        assert any(f.rule_id == rule for f in plan.blocking)
    kinds = {t.kind for t in plan.transformations}
    for k in exp.get("transformations", []):
        assert k in kinds
    posts = {p.rule_id for p in plan.post_actions}
    for rule in exp.get("post_actions", []):
        assert rule in posts
    ids = {s.id for s in plan.steps}
    for s in exp.get("steps", []):
        assert s in ids
    for s in exp.get("no_steps", []):
        assert s not in ids
    if "disks" in exp:
        assert len(plan.target["disks"]) == exp["disks"]
    if "zone" in exp:
        assert plan.target["zone"] == exp["zone"]


def test_plan_outputs_and_round_trip():
    base = BASES["windows"]
    plan = vmrestore.plan(base["restore_point"], json.dumps(base["request"]), profiles=["commvault"])
    assert plan.is_ready and plan.verdict == "ready"
    assert "Plan:" in plan.render()
    assert plan.to_mermaid().startswith("flowchart TD")
    assert plan.to_dot().startswith("digraph plan")
    d = plan.to_dict()
    assert d["format_version"] == "2.0"
    assert json.loads(plan.to_json()) == d
    again = vmrestore.Plan.from_json(plan.to_json())
    assert again.to_json() == plan.to_json()
    assert plan.estimates.to_create == sum(1 for s in plan.steps if s.action == "create")
    assert all(isinstance(f.to_dict(), dict) for f in plan.findings)


def test_inputs_from_files(tmp_path):
    base = BASES["windows"]
    rp = tmp_path / "rp.json"
    rp.write_text(json.dumps(base["restore_point"]))
    plan = vmrestore.plan(rp, base["request"], profiles=["veeam"])
    assert plan.profiles == ["veeam"]
