//! Names that reach ARM paths (issue 12, items 1 and 14): every name and ID
//! of the inputs is checked with Azure's naming rules at the model boundary,
//! with the JSON path of the field; every name the plan generates is valid
//! (shortened deterministically when it would be too long), so nothing is
//! refused mid-run.

mod common;

use proptest::prelude::*;
use serde_json::{Value, json};
use vmrestore::model::names::{NameKind, check_name_or_id};
use vmrestore::model::{Catalog, RestorePoint, RestoreRequest};
use vmrestore::plan::{Plan, Planner, StepKind, Verdict};
use vmrestore::policy::{BUILTIN_PROFILES, Profile};

const HOSTILE_RG: &str = "rg-finance?api-version=2021-04-01#";
const CLIMBING_RG: &str =
    "../../../subscriptions/99999999-9999-9999-9999-999999999999/resourceGroups/rg-other";

/// Plans a document without validating it first, so that the planner's own
/// validation (with `$.restore_point` / `$.request` paths) is what runs.
fn plan_doc(doc: &Value, profile: &str) -> vmrestore::Result<Plan> {
    let rp: RestorePoint = serde_json::from_value(doc["restore_point"].clone()).unwrap();
    let req: RestoreRequest = serde_json::from_value(doc["request"].clone()).unwrap();
    Planner::new(&Catalog::builtin()).unwrap().plan(
        &rp,
        &req,
        &[Profile::builtin(profile).unwrap()],
    )
}

fn base(name: &str) -> Value {
    common::load("bases.json")[name].clone()
}

#[test]
fn every_name_and_id_that_reaches_an_arm_path_is_validated_with_its_json_path() {
    let ids = |last: &str| {
        format!(
            "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg/providers/{last}"
        )
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/restore_point/vm/resource_group",
            json!(HOSTILE_RG),
            "$.restore_point.vm.resource_group",
        ),
        (
            "/restore_point/vm/resource_group",
            json!(CLIMBING_RG),
            "$.restore_point.vm.resource_group",
        ),
        (
            "/restore_point/vm/resource_id",
            json!(ids("Microsoft.Compute/virtualMachines/web01/../../x")),
            "$.restore_point.vm.resource_id",
        ),
        (
            "/restore_point/vm/availability_set",
            json!("as#1"),
            "$.restore_point.vm.availability_set",
        ),
        (
            "/restore_point/vm/network_security_group",
            json!("nsg?x=1"),
            "$.restore_point.vm.network_security_group",
        ),
        (
            "/restore_point/vm/dedicated_host",
            json!("host/.."),
            "$.restore_point.vm.dedicated_host",
        ),
        (
            "/restore_point/vm/nics/0/public_ip",
            json!("pip%2F.."),
            "$.restore_point.vm.nics[0].public_ip",
        ),
        (
            "/restore_point/vm/nics/0/virtual_network",
            json!(ids("Microsoft.Network/virtualNetworks/v1?x")),
            "$.restore_point.vm.nics[0].virtual_network",
        ),
        (
            "/restore_point/vm/disks/0/name",
            json!("os/../../disk"),
            "$.restore_point.vm.disks[0].name",
        ),
        (
            "/restore_point/vm/disks/0/name",
            json!("osdisk."),
            "$.restore_point.vm.disks[0].name",
        ),
        (
            "/restore_point/vm/disks/0/encryption/disk_encryption_set",
            json!(ids("Microsoft.Compute/diskEncryptionSets/../x")),
            "$.restore_point.vm.disks[0].encryption.disk_encryption_set",
        ),
        (
            "/restore_point/disk_encryption_sets",
            json!([{"name": "des1", "region": "westeurope", "subscription_id": "22222222-2222-2222-2222-222222222222", "key_vault": "kv/../x"}]),
            "$.restore_point.disk_encryption_sets[0].key_vault",
        ),
        (
            "/request/destination/resource_group",
            json!(HOSTILE_RG),
            "$.request.destination.resource_group",
        ),
        (
            "/request/destination/vm_name",
            json!("web01\u{0}x"),
            "$.request.destination.vm_name",
        ),
        (
            "/request/destination/subnet",
            json!("default/../x"),
            "$.request.destination.subnet",
        ),
        (
            "/request/destination/availability_set",
            json!(ids("Microsoft.Compute/disks/notanas")),
            "$.request.destination.availability_set",
        ),
        (
            "/request/destination/disk_encryption_set",
            json!("des 1"),
            "$.request.destination.disk_encryption_set",
        ),
        (
            "/request/destination/virtual_network",
            json!({"name": ids("Microsoft.Network/virtualNetworks/..")}),
            "$.request.destination.virtual_network.name",
        ),
        (
            "/request/destination/network_security_group",
            json!("nsg#"),
            "$.request.destination.network_security_group",
        ),
    ];
    for (ptr, value, path) in cases {
        let mut doc = base("windows");
        // In place, so that the source's resource group is the target's.
        common::set_pointer(&mut doc, "/request/placement", json!("in_place"));
        common::set_pointer(&mut doc, "/request/overwrite_confirmed", json!(true));
        common::set_pointer(&mut doc, ptr, value.clone());
        let e = plan_doc(&doc, "commvault").expect_err(&format!("{ptr} = {value} was planned"));
        assert_eq!(e.code(), "E_INVALID", "{ptr}: {e}");
        assert!(
            e.to_string().contains(&format!("at {path}:")),
            "{ptr}: the error does not name {path}: {e}"
        );
    }
}

#[test]
fn a_catalogs_hostile_names_are_refused_with_their_path() {
    let mut cat = serde_json::to_value(Catalog::builtin()).unwrap();
    cat["existing"]["vms"] = json!([{ "subscription_id": "11111111-1111-1111-1111-111111111111", "resource_group": CLIMBING_RG, "name": "web01" }]);
    let cat: Catalog = serde_json::from_value(cat).unwrap();
    let e = Planner::new(&cat).err().expect("the catalog was taken");
    assert!(
        e.to_string()
            .contains("$.catalog.existing.vms[0].resource_group"),
        "{e}"
    );
}

/// The kind of name a step's resource is (None: not an Azure resource name).
fn kind_of(step: StepKind) -> Option<NameKind> {
    use StepKind::*;
    Some(match step {
        ResourceGroup => NameKind::ResourceGroup,
        KeyVault | KeyVaultAccess => NameKind::KeyVault,
        StagingAccount => NameKind::StorageAccount,
        HelperAppliance
        | SnapshotExistingDisks
        | DeleteExistingVm
        | BootFix
        | ConvertToManaged
        | VirtualMachine
        | SwapDisks
        | PowerOn => NameKind::VirtualMachine,
        CreateDisk | WriteDisk | FinalizeDisk => NameKind::Disk,
        NetworkSecurityGroup => NameKind::NetworkSecurityGroup,
        PublicIp => NameKind::PublicIp,
        NetworkInterface => NameKind::NetworkInterface,
        VerifyRestorePoint | Template | DeleteExistingDisks => return None,
    })
}

/// Every name of the plan, in its steps and its target, per the naming module.
fn assert_all_names_valid(plan: &Plan) -> Result<(), String> {
    let check = |kind: NameKind, s: &str| check_name_or_id(kind, s);
    for s in &plan.steps {
        if let Some(k) = kind_of(s.kind) {
            check(k, &s.resource).map_err(|e| format!("step {}: {e}", s.id))?;
        }
        if let Some(d) = &s.disk {
            check(NameKind::Disk, d).map_err(|e| format!("step {}: {e}", s.id))?;
        }
    }
    let t = &plan.target;
    check(NameKind::ResourceGroup, &t.resource_group)?;
    check(NameKind::VirtualMachine, &t.vm_name)?;
    for d in &t.disks {
        check(NameKind::Disk, &d.name)?;
    }
    for n in &t.nics {
        check(NameKind::NetworkInterface, &n.name)?;
        check(NameKind::VirtualNetwork, &n.virtual_network)?;
        check(NameKind::Subnet, &n.subnet)?;
        if let Some(p) = &n.public_ip {
            check(NameKind::PublicIp, p)?;
        }
    }
    if let Some(s) = &t.staging_account {
        check(NameKind::StorageAccount, s)?;
    }
    if let Some(k) = &t.key_vault {
        check(NameKind::KeyVault, k)?;
    }
    if let Some(n) = &t.network_security_group {
        check(NameKind::NetworkSecurityGroup, n)?;
    }
    for (i, d) in t.disks.iter().enumerate() {
        if t.disks[..i]
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&d.name))
        {
            return Err(format!("disk name '{}' is used twice", d.name));
        }
    }
    Ok(())
}

#[test]
fn a_64_character_vm_name_with_long_disk_names_plans_names_within_azures_limits() {
    let vm = format!("vm-{}", "x".repeat(61));
    assert_eq!(vm.len(), 64);
    let long = |c: &str| format!("{}{c}", "d".repeat(79));
    for (b, profile) in [
        ("windows", "commvault"),
        ("windows", "azure-backup"),
        ("linux_agent", "veeam"),
    ] {
        let mut doc = base(b);
        common::set_pointer(&mut doc, "/restore_point/vm/name", json!(vm));
        common::set_pointer(&mut doc, "/request/destination/vm_name", Value::Null);
        common::set_pointer(&mut doc, "/request/destination/public_ip", json!(true));
        common::set_pointer(&mut doc, "/restore_point/vm/disks/0/name", json!(long("0")));
        common::set_pointer(&mut doc, "/restore_point/vm/disks/1/name", json!(long("1")));
        if b == "linux_agent" {
            common::set_pointer(
                &mut doc,
                "/restore_point/vm/disks/1/lvm_volume_groups/0/name",
                json!("v".repeat(64)),
            );
        }
        let plan = plan_doc(&doc, profile).unwrap();
        assert_eq!(
            plan.verdict,
            Verdict::Ready,
            "{profile}: {:?}",
            plan.findings
        );
        assert!(!plan.rules_applied.iter().any(|r| r == "VMR-06"));
        for d in &plan.target.disks {
            assert!(
                d.name.len() <= 80,
                "{profile}: '{}' has {} characters",
                d.name,
                d.name.len()
            );
        }
        assert_all_names_valid(&plan).unwrap_or_else(|e| panic!("{profile}: {e}"));
        if b == "linux_agent" {
            assert_eq!(
                plan.target.disks.len(),
                3,
                "the volume group is its own disk"
            );
        }
        // The same input gives the same names.
        assert_eq!(plan_doc(&doc, profile).unwrap().target, plan.target);
    }
}

#[test]
fn a_volume_group_whose_disk_name_another_disk_has_blocks_the_plan() {
    let mut doc = base("linux_agent");
    common::set_pointer(
        &mut doc,
        "/restore_point/vm/disks/2",
        json!({"name": "sdb-vgdata", "role": "data", "lun": 1, "size_bytes": 10737418240u64}),
    );
    let plan = plan_doc(&doc, "veeam").unwrap();
    assert_eq!(plan.verdict, Verdict::Blocked);
    assert!(plan.steps.is_empty());
    let f = plan
        .blocking()
        .find(|f| f.rule_id == "VMR-06")
        .expect("VMR-06 blocks");
    assert_eq!(
        f.path,
        "$.restore_point.vm.disks[1].lvm_volume_groups[0].name"
    );
    assert!(
        f.message.contains("volume group 'vgdata'") && f.message.contains("disk 'sdb-vgdata'"),
        "{}",
        f.message
    );
}

/// Letters and digits, then inner characters of `[A-Za-z0-9_.-]`, ending with
/// a letter or digit: a valid VM or disk name of up to `max` characters.
fn name(max: usize) -> impl Strategy<Value = String> {
    let inner = max.saturating_sub(2);
    (
        "[a-zA-Z0-9]",
        proptest::string::string_regex(&format!("[a-zA-Z0-9_.-]{{0,{inner}}}")).unwrap(),
        "[a-zA-Z0-9]",
    )
        .prop_map(move |(a, b, c)| {
            let s: String = format!("{a}{b}{c}").chars().take(max).collect();
            s.trim_end_matches(['.', '-']).to_string()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_name_in_a_plan_is_valid_per_the_naming_module(
        base_name in prop::sample::select(vec!["windows", "linux_agent", "ade_linux"]),
        profile in 0usize..BUILTIN_PROFILES.len(),
        vm in name(64),
        dest_vm in prop::option::of(name(64)),
        disks in (name(80), name(80)),
        vg in name(64),
        nic in name(80),
        in_place in any::<bool>(),
        public_ip in any::<bool>(),
        unmanaged in any::<bool>(),
    ) {
        let mut doc = base(base_name);
        common::set_pointer(&mut doc, "/restore_point/vm/name", json!(vm));
        common::set_pointer(&mut doc, "/request/destination/vm_name", json!(dest_vm));
        common::set_pointer(&mut doc, "/request/destination/public_ip", json!(public_ip));
        prop_assume!(!disks.0.eq_ignore_ascii_case(&disks.1));
        common::set_pointer(&mut doc, "/restore_point/vm/disks/0/name", json!(disks.0));
        common::set_pointer(&mut doc, "/restore_point/vm/disks/1/name", json!(disks.1));
        if base_name == "linux_agent" {
            // (A volume group named so that its disk takes another disk's
            // name is blocked by VMR-06: see the test above.)
            prop_assume!(!format!("{}-{vg}", disks.1).eq_ignore_ascii_case(&disks.0));
            common::set_pointer(&mut doc, "/restore_point/vm/disks/1/lvm_volume_groups/0/name", json!(vg));
        }
        common::set_pointer(&mut doc, "/restore_point/vm/nics", json!([{"name": nic, "virtual_network": "vnet-prod", "subnet": "web"}]));
        if in_place {
            common::set_pointer(&mut doc, "/request/placement", json!("in_place"));
            common::set_pointer(&mut doc, "/request/overwrite_confirmed", json!(true));
            common::set_pointer(&mut doc, "/restore_point/vm/resource_group", json!("rg-prod"));
        }
        if unmanaged {
            common::set_pointer(&mut doc, "/request/destination/disk_storage", json!("unmanaged"));
        }
        let plan = plan_doc(&doc, BUILTIN_PROFILES[profile]);
        let plan = plan.map_err(|e| TestCaseError::fail(format!("valid input refused: {e}")))?;
        if plan.verdict == Verdict::Ready {
            prop_assert!(!plan.steps.is_empty());
            assert_all_names_valid(&plan).map_err(TestCaseError::fail)?;
        } else {
            // Not blocked for a name: valid, distinct input names always
            // give valid, distinct names.
            let by_names: Vec<_> = plan.blocking().filter(|f| f.rule_id == "VMR-06").collect();
            prop_assert!(by_names.is_empty(), "{:?}", by_names);
        }
    }
}
