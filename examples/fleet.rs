//! The benchmark fleet (benches/fleet.rs) for other languages' benches:
//! `fleet json N` prints N restores as JSON; `fleet time N RUNS` plans them
//! (already parsed) RUNS times and prints the median milliseconds.

use serde::Deserialize;
use vmrestore::model::{Catalog, RestorePoint, RestoreRequest};
use vmrestore::plan::Planner;
use vmrestore::policy::{BUILTIN_PROFILES, Profile};

#[path = "../benches/fleet.rs"]
mod fleet;

#[derive(Deserialize)]
struct Item {
    profile: String,
    restore_point: RestorePoint,
    request: RestoreRequest,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    match args.get(1).map(String::as_str) {
        Some("json") => println!("{}", serde_json::to_string(&fleet::fleet(n))?),
        Some("time") => {
            let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
            let items: Vec<Item> = serde_json::from_value(fleet::fleet(n))?;
            let catalog = Catalog::builtin();
            let planner = Planner::new(&catalog)?;
            let profiles: Vec<Profile> = BUILTIN_PROFILES
                .iter()
                .map(|p| Profile::builtin(p))
                .collect::<Result<_, _>>()?;
            let mut times = Vec::new();
            for _ in 0..runs {
                let t = std::time::Instant::now();
                let mut steps = 0;
                for i in &items {
                    let p = profiles
                        .iter()
                        .find(|p| p.name == i.profile)
                        .ok_or("profile")?;
                    steps += planner
                        .plan(&i.restore_point, &i.request, std::slice::from_ref(p))?
                        .steps
                        .len();
                }
                times.push(t.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(steps);
            }
            times.sort_by(|a, b| a.total_cmp(b));
            println!("{:.1}", times[times.len() / 2]);
        }
        _ => return Err("usage: fleet json N | fleet time N RUNS".into()),
    }
    Ok(())
}
