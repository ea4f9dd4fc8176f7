//! Plans the demo restores from the shared test bases under every profile and
//! prints the renderings. `cargo run --release --example quickstart [-- --json | --mermaid]`

use vmrestore::model::{Catalog, RestorePoint, RestoreRequest, from_value};
use vmrestore::plan::{Planner, render_text, to_json, to_mermaid};
use vmrestore::policy::{BUILTIN_PROFILES, Profile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let json = std::env::args().any(|a| a == "--json");
    let mermaid = std::env::args().any(|a| a == "--mermaid");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/bases.json");
    let bases: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let catalog = Catalog::builtin();
    let planner = Planner::new(&catalog)?;
    for (name, base) in bases.as_object().into_iter().flatten() {
        let rp: RestorePoint = from_value(base["restore_point"].clone())?;
        let req: RestoreRequest = from_value(base["request"].clone())?;
        for profile in BUILTIN_PROFILES {
            let plan = planner.plan(&rp, &req, &[Profile::builtin(profile)?])?;
            println!("==== {name} under {profile} ====");
            if json {
                print!("{}", to_json(&plan));
            } else if mermaid {
                print!("{}", to_mermaid(&plan));
            } else {
                print!("{}", render_text(&plan));
            }
            println!();
        }
    }
    Ok(())
}
