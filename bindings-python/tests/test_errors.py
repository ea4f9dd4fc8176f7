"""Bad input raises a VmrestoreError subclass with the core's code; it never
crashes the interpreter."""

import copy

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


def test_garbage_of_every_type_raises_cleanly():
    for bad in [None, 5, 3.5, b"bytes", [1, 2], {"x": object}, "", "[", "{}" * 1000]:
        with pytest.raises((vmrestore.VmrestoreError, TypeError)):
            vmrestore.plan(bad, BASES["windows"]["request"], profiles=["commvault"])


def test_schema_and_catalog():
    assert "vm" in vmrestore.schema("restore_point")["properties"]
    assert any(r["name"] == "westeurope" for r in vmrestore.builtin_catalog()["regions"])
    with pytest.raises(vmrestore.InvalidInputError):
        vmrestore.schema("nope")
