"""Bad input raises a VmrestoreError subclass with the core's code; it never
crashes the interpreter."""

import copy
import json
import shutil

import pytest

import vmrestore
from conftest import load

BASES = load("bases.json")


def test_malformed_json_names_the_path():
    with pytest.raises(vmrestore.ParseError) as err:
        vmrestore.plan('{"id": 5}', BASES["windows"]["request"], profiles=["commvault"])
    assert err.value.code == "E_PARSE"
    assert "$.id" in str(err.value)
    assert isinstance(err.value, vmrestore.VmrestoreError)


def test_unknown_region_is_invalid_input_with_a_hint():
    req = copy.deepcopy(BASES["windows"]["request"])
    req["destination"]["region"] = "westeuropa"
    with pytest.raises(vmrestore.InvalidInputError) as err:
        vmrestore.plan(BASES["windows"]["restore_point"], req, profiles=["commvault"])
    assert "$.request.destination.region" in str(err.value)
    assert "westeurope" in str(err.value)


def test_unknown_profile_and_bad_rules():
    with pytest.raises(vmrestore.UnknownProfileError):
        vmrestore.plan(BASES["windows"]["restore_point"], BASES["windows"]["request"], profiles=["netbackup"])
    with pytest.raises(vmrestore.RuleError) as err:
        vmrestore.check_rules('[[rules]]\nid = "X-1"\nwhen = "vm.nmae == 1"\noutcome = "warn"\nmessage = "m"\n')
    assert "did you mean 'name'" in str(err.value)
    assert vmrestore.check_rules('[[rules]]\nid = "X-1"\nwhen = "vm.name == \'a\'"\noutcome = "warn"\nmessage = "m"\n') == ["X-1"]


def test_a_rule_whose_cost_explodes_is_refused_by_check_rules():
    # Issue 12, item 12: eight nested maps are 10^8 iterations; the
    # load-time estimate refuses them, naming the rule.
    when = "x7"
    for i in range(7, -1, -1):
        when = f"[0,1,2,3,4,5,6,7,8,9].map(x{i}, {when})"
    rules = {"rules": [{"id": "COST-1", "when": f"size({when}) > 0", "outcome": "warn", "message": "m"}]}
    with pytest.raises(vmrestore.RuleError) as err:
        vmrestore.check_rules(json.dumps(rules))
    assert "COST-1" in str(err.value) and "more than the limit" in str(err.value)


def test_garbage_of_every_type_raises_cleanly():
    for bad in [None, 5, 3.5, b"bytes", [1, 2], {"x": object}, "", "[", "{}" * 1000]:
        with pytest.raises((vmrestore.VmrestoreError, TypeError)):
            vmrestore.plan(bad, BASES["windows"]["request"], profiles=["commvault"])


def test_schema_and_catalog():
    assert "vm" in vmrestore.schema("restore_point")["properties"]
    assert any(r["name"] == "westeurope" for r in vmrestore.builtin_catalog()["regions"])
    with pytest.raises(vmrestore.InvalidInputError):
        vmrestore.schema("nope")


# Trailing data after a JSON document is refused, whatever the document.
# (The check is in the core's model::from_json and the manifest parser, from
# issue 12 item 13; these tests fail on a core without it.)
TRAILERS = ['{"id": "other"}', "]]]", "\0garbage", " 1", "\n[]"]


def test_trailing_data_after_a_restore_point_or_request_is_refused():
    rp, req = BASES["windows"]["restore_point"], BASES["windows"]["request"]
    for trailer in TRAILERS:
        with pytest.raises(vmrestore.ParseError) as err:
            vmrestore.plan(json.dumps(rp) + trailer, req, profiles=["commvault"])
        assert err.value.code == "E_PARSE"
        with pytest.raises(vmrestore.ParseError):
            vmrestore.plan(rp, json.dumps(req) + trailer, profiles=["commvault"])
        with pytest.raises(vmrestore.ParseError):
            vmrestore.plan_many([(json.dumps(rp) + trailer, req, "commvault")])
    # Whitespace after the document is still fine.
    assert vmrestore.plan(json.dumps(rp) + " \n\t", json.dumps(req) + "\n", profiles=["commvault"]).steps


def test_trailing_data_after_a_catalog_is_refused():
    rp, req = BASES["windows"]["restore_point"], BASES["windows"]["request"]
    catalog = json.dumps(vmrestore.builtin_catalog())
    for trailer in TRAILERS:
        with pytest.raises(vmrestore.ParseError):
            vmrestore.plan(rp, req, profiles=["commvault"], catalog=catalog + trailer)
        with pytest.raises(vmrestore.ParseError):
            vmrestore.SimCloud(catalog=catalog + trailer)
    assert vmrestore.plan(rp, req, profiles=["commvault"], catalog=catalog + "\n").steps


def test_trailing_data_after_a_manifest_is_refused(demo, tmp_path):
    d, _ = demo
    repo = tmp_path / "repository"
    shutil.copytree(d / "repository" / "restore-points", repo / "restore-points")
    (repo / "chunks").symlink_to(d / "repository" / "chunks")
    rid = vmrestore.Repository(repo).list()[0]
    path = repo / "restore-points" / rid / "manifest.json"
    text = path.read_text()
    for trailer in TRAILERS:
        path.write_text(text + trailer)
        with pytest.raises((vmrestore.ParseError, vmrestore.RepositoryError)) as err:
            vmrestore.Repository(repo).manifest(rid)
        assert rid in str(err.value)
    path.write_text(text + "\n")
    assert vmrestore.Repository(repo).manifest(rid)
