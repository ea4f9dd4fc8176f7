"""How a team unit-tests its own restore policy with pytest: the rules live
in a file (here inline), and each test plans a realistic restore and asserts
on the verdict and the rule that decided it."""

import copy

import pytest

import vmrestore

POLICY = """
name = "acme"

[[rules]]
id = "ACME-01"
when = "vm.domain_controller != null && request.placement == 'in_place'"
outcome = "block"
message = "never restore a domain controller in place"
path = "$.request.placement"

[[rules]]
id = "ACME-02"
when = "has(vm.tags.env) && vm.tags.env == 'prod' && destination.region != 'westeurope'"
outcome = "block"
message = "production VMs are restored to West Europe only"
"""

VM = {
    "id": "rp-1", "time": "2026-11-20T22:00:00Z", "backup": {"kind": "azure_vm"},
    "vm": {"name": "dc01", "subscription_id": "11111111-1111-1111-1111-111111111111", "region": "westeurope",
           "os": {"family": "windows", "version": "Windows Server 2022"}, "size": "Standard_D2s_v5",
           "tags": {"env": "prod"},
           "disks": [{"name": "os", "role": "os", "size_bytes": 137438953472}]},
}
REQUEST = {"destination": {"subscription_id": "11111111-1111-1111-1111-111111111111",
                           "region": "westeurope", "resource_group": "rg-dr"}}


def plan(vm_patch=None, request_patch=None):
    vm, req = copy.deepcopy(VM), copy.deepcopy(REQUEST)
    vm["vm"].update(vm_patch or {})
    req.update(request_patch or {})
    return vmrestore.plan(vm, req, profiles=["commvault"], rules=POLICY)


def test_the_policy_loads():
    assert vmrestore.check_rules(POLICY) == ["ACME-01", "ACME-02"]


def test_domain_controllers_are_never_restored_in_place():
    p = plan({"domain_controller": "single"}, {"placement": "in_place", "overwrite_confirmed": True})
    assert not p.is_ready
    assert [f.rule_id for f in p.blocking] == ["ACME-01"]


def test_domain_controllers_may_be_restored_beside_the_original():
    assert plan({"domain_controller": "single"}).is_ready


@pytest.mark.parametrize("region,ready", [("westeurope", True), ("northeurope", False)])
def test_production_stays_in_west_europe(region, ready):
    p = plan(request_patch={"destination": dict(REQUEST["destination"], region=region)})
    assert p.is_ready is ready
    assert ("ACME-02" in p.rules_applied) is (not ready)
