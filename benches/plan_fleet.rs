//! Plans a fleet of 10,000 VMs (1 to 16 disks each, mixed profiles) and, in
//! the same run, deserialises the same input with serde_json.
//!
//! `cargo bench --bench plan_fleet`

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use vmrestore::model::{Catalog, RestorePoint, RestoreRequest};
use vmrestore::plan::Planner;
use vmrestore::policy::{BUILTIN_PROFILES, Profile};

#[path = "fleet.rs"]
mod fleet;

#[derive(Deserialize)]
struct Item {
    profile: String,
    restore_point: RestorePoint,
    request: RestoreRequest,
}

fn bench(c: &mut Criterion) {
    let json = serde_json::to_string(&fleet::fleet(10_000)).unwrap();
    let items: Vec<Item> = serde_json::from_str(&json).unwrap();
    let catalog = Catalog::builtin();
    let planner = Planner::new(&catalog).unwrap();
    let profiles: Vec<Profile> = BUILTIN_PROFILES
        .iter()
        .map(|p| Profile::builtin(p).unwrap())
        .collect();
    let by_name = |n: &str| std::slice::from_ref(profiles.iter().find(|p| p.name == n).unwrap());
    let ready = items
        .iter()
        .filter(|i| {
            planner
                .plan(&i.restore_point, &i.request, by_name(&i.profile))
                .unwrap()
                .is_ready()
        })
        .count();
    eprintln!(
        "fleet: {} VMs, {} bytes of JSON, {ready} plans ready",
        items.len(),
        json.len()
    );

    let mut g = c.benchmark_group("fleet_10k");
    g.sample_size(10);
    g.bench_function("serde_json_parse", |b| {
        b.iter(|| serde_json::from_str::<Vec<Item>>(&json).unwrap().len())
    });
    g.bench_function("plan", |b| {
        b.iter(|| {
            items
                .iter()
                .map(|i| {
                    planner
                        .plan(&i.restore_point, &i.request, by_name(&i.profile))
                        .unwrap()
                        .steps
                        .len()
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
