//! Custom rules: any bytes as a TOML or JSON rules document. A document
//! that loads is run beside the Commvault profile over the shared test
//! inputs: loading and planning must not panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use restore_core::model::{self, Catalog, RestorePoint, RestoreRequest};
use restore_core::plan::Planner;
use restore_core::policy::{Profile, custom};

fn inputs() -> &'static (Catalog, Vec<(RestorePoint, RestoreRequest)>) {
    static I: OnceLock<(Catalog, Vec<(RestorePoint, RestoreRequest)>)> = OnceLock::new();
    I.get_or_init(|| {
        let bases: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/bases.json")).unwrap();
        let pairs = bases
            .as_object()
            .unwrap()
            .values()
            .map(|b| {
                (
                    model::from_value(b["restore_point"].clone()).unwrap(),
                    model::from_value(b["request"].clone()).unwrap(),
                )
            })
            .collect();
        (Catalog::builtin(), pairs)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = custom::load(text, "fuzz") else {
        return;
    };
    let (catalog, pairs) = inputs();
    let planner = Planner::new(catalog).unwrap();
    let profiles = [Profile::builtin("commvault").unwrap(), rules.clone()];
    for (rp, req) in pairs {
        let _ = planner.plan(rp, req, &profiles);
        let _ = planner.plan(rp, req, std::slice::from_ref(&rules));
    }
});
