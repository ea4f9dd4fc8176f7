//! The model's JSON: any bytes as a restore point, a request, a catalog,
//! and a `{"restore_point": ..., "request": ...}` document that, when both
//! parse, is planned under every built-in profile: planning must not panic,
//! must give the same bytes twice, and a blocked plan must have no steps.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use restore_core::model::{self, Catalog, RestorePoint, RestoreRequest};
use restore_core::plan::{Planner, Verdict, to_json};
use restore_core::policy::{BUILTIN_PROFILES, Profile};

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(Catalog::builtin)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = model::from_json::<RestorePoint>(text);
    let _ = model::from_json::<RestoreRequest>(text);
    let _ = model::from_json::<Catalog>(text);
    let Ok(serde_json::Value::Object(mut doc)) = serde_json::from_str(text) else {
        return;
    };
    let (Some(rp), Some(req)) = (doc.remove("restore_point"), doc.remove("request")) else {
        return;
    };
    let (Ok(rp), Ok(req)) = (
        model::from_value::<RestorePoint>(rp),
        model::from_value::<RestoreRequest>(req),
    ) else {
        return;
    };
    let planner = Planner::new(catalog()).expect("the built-in catalog is valid");
    for name in BUILTIN_PROFILES {
        let profile = Profile::builtin(name).expect("built-in profile");
        let Ok(a) = planner.plan(&rp, &req, std::slice::from_ref(&profile)) else {
            continue;
        };
        let b = planner
            .plan(&rp, &req, &[profile])
            .expect("planned once, plans again");
        assert_eq!(to_json(&a), to_json(&b), "planning is deterministic");
        if a.verdict == Verdict::Blocked {
            assert!(a.steps.is_empty(), "a blocked plan has no steps");
        }
    }
});
