//! Property tests: planning never panics, is deterministic, and a blocked
//! plan has no steps; parsing arbitrary text never panics.

mod common;

use proptest::prelude::*;
use serde_json::{Value, json};
use vmrestore::model::{Catalog, RestorePoint, RestoreRequest, from_json, from_value};
use vmrestore::plan::{Planner, Verdict, to_json};
use vmrestore::policy::{BUILTIN_PROFILES, Profile};

fn mutation() -> impl Strategy<Value = (String, Value)> {
    let ptrs = prop::sample::select(vec![
        "/restore_point/vm/zone",
        "/restore_point/vm/disks/0/size_bytes",
        "/restore_point/vm/disks/1/size_bytes",
        "/restore_point/vm/disks/1/sku",
        "/restore_point/vm/disks/0/logical_sector_size",
        "/restore_point/vm/disks/0/storage",
        "/restore_point/vm/firmware",
        "/restore_point/vm/os/family",
        "/restore_point/vm/os/version",
        "/restore_point/vm/deployment_model",
        "/restore_point/vm/availability_set",
        "/restore_point/vm/domain_controller",
        "/restore_point/vm/spot",
        "/restore_point/backup/kind",
        "/restore_point/tier",
        "/request/placement",
        "/request/restore_type",
        "/request/overwrite_confirmed",
        "/request/destination/region",
        "/request/destination/subscription_id",
        "/request/destination/zone",
        "/request/destination/vm_size",
        "/request/destination/disk_storage",
        "/request/destination/staging_storage_account",
        "/request/destination/gen2_opt_in",
    ]);
    let values = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u64..80_000_000_000_000).prop_map(|n| json!(n / 512 * 512)),
        (0u8..6).prop_map(Value::from),
        prop::sample::select(vec![
            "auto",
            "none",
            "westeurope",
            "westus",
            "northeurope",
            "uaecentral",
            "nowhere",
            "premium",
            "ultra",
            "uefi",
            "bios",
            "linux",
            "windows",
            "classic",
            "in_place",
            "out_of_place",
            "full_vm",
            "restore_disks",
            "replace_disks",
            "guest_files",
            "veeam_agent",
            "azure_vm",
            "snapshot",
            "managed",
            "unmanaged",
            "last",
            "multi_domain",
            "Standard_D2s_v6",
            "Standard_B1s",
            "Windows Server 2003",
            "22222222-2222-2222-2222-222222222222",
        ])
        .prop_map(Value::from),
        Just(json!({"name": "stagingacct", "sku": "Standard_ZRS"})),
        Just(
            json!({"kind": "unmanaged", "storage_account": "olddisks", "blob": "vhds/os.vhd", "premium_account": true})
        ),
    ];
    (ptrs, values).prop_map(|(p, v)| (p.to_string(), v))
}

fn doc_strategy() -> impl Strategy<Value = (String, Vec<(String, Value)>, usize)> {
    (
        prop::sample::select(vec!["windows", "linux_agent", "ade_linux"]),
        prop::collection::vec(mutation(), 0..6),
        0usize..BUILTIN_PROFILES.len(),
    )
        .prop_map(|(b, m, p)| (b.to_string(), m, p))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn planning_is_total_deterministic_and_blocked_plans_have_no_steps((base, muts, p) in doc_strategy()) {
        let bases = common::load("bases.json");
        let mut doc = bases[&base].clone();
        for (ptr, v) in &muts {
            common::set_pointer(&mut doc, ptr, v.clone());
        }
        let rp = from_value::<RestorePoint>(doc["restore_point"].clone());
        let req = from_value::<RestoreRequest>(doc["request"].clone());
        if let (Ok(rp), Ok(req)) = (rp, req) {
            let cat = Catalog::builtin();
            let planner = Planner::new(&cat).unwrap();
            let profile = Profile::builtin(BUILTIN_PROFILES[p]).unwrap();
            let a = planner.plan(&rp, &req, std::slice::from_ref(&profile));
            let b = planner.plan(&rp, &req, std::slice::from_ref(&profile));
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(to_json(&a), to_json(&b));
                    if a.verdict == Verdict::Blocked {
                        prop_assert!(a.steps.is_empty());
                        prop_assert!(a.blocking().count() > 0);
                    } else {
                        prop_assert!(a.blocking().count() == 0);
                        // Every dependency names an earlier step.
                        for (i, s) in a.steps.iter().enumerate() {
                            for d in &s.depends_on {
                                prop_assert!(a.steps[..i].iter().any(|x| &x.id == d), "{} depends on later/unknown {}", s.id, d);
                            }
                        }
                    }
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                _ => prop_assert!(false, "same input gave a plan once and an error once"),
            }
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(s in ".{0,400}") {
        let _ = from_json::<RestorePoint>(&s);
        let _ = from_json::<RestoreRequest>(&s);
        let _ = vmrestore::policy::custom::load(&s, "fuzz");
    }

    #[test]
    fn custom_rule_expressions_never_panic(expr in "[a-z_.()!=&|<> 0-9'\\[\\]]{0,80}") {
        let text = format!("[[rules]]\nid = \"P-1\"\nwhen = {expr:?}\noutcome = \"warn\"\nmessage = \"m\"\n");
        let _ = vmrestore::policy::custom::load(&text, "fuzz");
    }
}
