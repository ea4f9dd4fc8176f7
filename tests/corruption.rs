//! The corruption sweep: every chunk of a restore point, in turn, with a
//! flipped byte, cut short, or gone; and manifests that lie about chunk
//! lengths, chunk digests, disk digests, disk sizes and offsets. Each is
//! detected; the restore fails with an error that names the disk and the
//! offset; no VM is created and nothing the run made is left; an in-place
//! restore leaves the existing VM in place.

use vmrestore::demo::DemoRestore;
use vmrestore::exec::*;
use vmrestore::plan::Plan;
use vmrestore::repo::{LocalRepository, Manifest, disk_digest};

mod common;
use common::restore::*;

fn ready_plan(r: &DemoRestore) -> Plan {
    let plan = plan_for(r, "commvault");
    assert!(plan.is_ready(), "{:?}", plan.findings);
    plan
}

/// The two restores of web01: to a new VM, and in place over the running one.
fn plans(r: &DemoRestore) -> (Plan, Plan) {
    (ready_plan(r), ready_plan(&in_place(r)))
}

/// How a run that met bad data ended: the error's code and message (from
/// the report, or from `run` refusing to start), and the cloud it left.
async fn run(repo: &LocalRepository, plan: &Plan, in_place: bool) -> (String, String, SimCloud) {
    let sim = SimCloud::new(SimConfig {
        existing_vms: if in_place {
            vec![existing_web01()]
        } else {
            vec![]
        },
        ..Default::default()
    });
    let r = run_sim(&sim, repo, plan, ExecOptions::default(), None).await;
    let (code, message) = match r {
        Ok(report) => {
            assert_eq!(report.outcome, Outcome::Failed, "bad data went unnoticed");
            let e = report.error.unwrap();
            (e.code, e.message)
        }
        Err(e) => (e.code().to_string(), e.to_string()),
    };
    // Nothing made is left, no VM was created; in place, the VM is still there.
    let dump = sim.dump();
    assert_eq!(dump["resources"], serde_json::json!([]), "{message}");
    assert!(sim.names("virtual_machine").is_empty());
    if in_place {
        assert_eq!(
            dump["existing_vms"],
            serde_json::json!(["web01"]),
            "{message}"
        );
    }
    (code, message, sim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_chunk_flipped_truncated_or_missing_is_caught_with_its_disk_and_offset() {
    let (_dir, repo, restores) = demo_repo();
    let r = &restores[0];
    let (new_vm, in_place) = plans(r);
    let m = repo.manifest(&r.restore_point.id).unwrap();
    let (mut runs, mut seed) = (0u64, 0x5eed_u64);
    for d in &m.disks {
        for (i, c) in d.chunks.iter().enumerate() {
            let path = chunk_path(&repo, &c.sha256);
            let good = std::fs::read(&path).unwrap();
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let what = match i % 3 {
                0 => {
                    let mut b = good.clone();
                    let at = (seed >> 33) as usize % b.len();
                    b[at] ^= 1 << ((seed >> 20) % 8);
                    std::fs::write(&path, b).unwrap();
                    format!("byte {at} flipped")
                }
                1 => {
                    let cut = (seed >> 33) as usize % good.len();
                    std::fs::write(&path, &good[..cut]).unwrap();
                    format!("cut to {cut} bytes")
                }
                _ => {
                    std::fs::remove_file(&path).unwrap();
                    "missing".to_string()
                }
            };
            // Chunks are stored by content: the same bytes may serve other offsets.
            let places: Vec<String> = m
                .disks
                .iter()
                .flat_map(|d| d.chunks.iter().map(move |o| (d, o)))
                .filter(|(_, o)| o.sha256 == c.sha256)
                .map(|(d, o)| format!("disk '{}' at offset {}", d.name, o.offset))
                .collect();
            let placements: &[(&Plan, bool)] = if i % 4 == 0 {
                &[(&new_vm, false), (&in_place, true)]
            } else {
                &[(&new_vm, false)]
            };
            for (plan, inplace) in placements {
                let (code, message, _) = run(&repo, plan, *inplace).await;
                let ctx = format!(
                    "disk {} chunk at {} {what} (in place: {inplace})",
                    d.name, c.offset
                );
                assert_eq!(code, "E_INTEGRITY", "{ctx}: {message}");
                assert!(
                    places.iter().any(|p| message.contains(p)),
                    "{ctx}: {message}"
                );
                runs += 1;
            }
            std::fs::write(&path, &good).unwrap();
        }
    }
    assert!(runs >= 36, "{runs} runs");
    // Repaired, the restore goes through: the sweep put every chunk back.
    let sim = SimCloud::new(SimConfig::default());
    let report = run_sim(&sim, &repo, &new_vm, ExecOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    println!("corruption sweep: {runs} corrupted runs, each caught with its disk and offset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_lies_about_sizes_or_digests_is_caught() {
    let (_dir, repo, restores) = demo_repo();
    let r = &restores[0];
    let (new_vm, in_place) = plans(r);
    let path = repo
        .root()
        .join("restore-points")
        .join(&r.restore_point.id)
        .join("manifest.json");
    let original = std::fs::read_to_string(&path).unwrap();
    let truth: Manifest = serde_json::from_str(&original).unwrap();
    let d = 1; // data1
    let name = truth.disks[d].name.clone();
    let mid = truth.disks[d].chunks.len() / 2;
    let at = truth.disks[d].chunks[mid].offset;
    type Lie = (&'static str, Box<dyn Fn(&mut Manifest)>, Option<u64>);
    let lies: Vec<Lie> = vec![
        (
            "a chunk shorter than stored (disk digest recomputed)",
            Box::new(move |m: &mut Manifest| {
                m.disks[d].chunks[mid].length -= 512;
                m.disks[d].digest = disk_digest(&m.disks[d].chunks);
            }),
            Some(at),
        ),
        (
            "a chunk digest of no stored chunk (disk digest recomputed)",
            Box::new(move |m: &mut Manifest| {
                m.disks[d].chunks[mid].sha256 = "ab".repeat(32);
                m.disks[d].digest = disk_digest(&m.disks[d].chunks);
            }),
            Some(at),
        ),
        (
            "a chunk digest that is not a digest",
            Box::new(move |m: &mut Manifest| {
                m.disks[d].chunks[mid].sha256 = "../../etc/passwd".into();
                m.disks[d].digest = disk_digest(&m.disks[d].chunks);
            }),
            Some(at),
        ),
        (
            "a disk digest that does not match its chunks",
            Box::new(move |m: &mut Manifest| {
                m.disks[d].digest = "00".repeat(32);
            }),
            Some(0),
        ),
        (
            "a disk smaller than its chunks",
            Box::new(move |m: &mut Manifest| {
                m.disks[d].size_bytes = at;
            }),
            Some(at),
        ),
        (
            "a disk larger than the restore point says",
            Box::new(move |m: &mut Manifest| {
                m.disks[d].size_bytes *= 2;
            }),
            None,
        ),
        (
            "chunks out of order",
            Box::new(move |m: &mut Manifest| {
                m.disks[d].chunks.swap(mid, mid + 1);
                m.disks[d].digest = disk_digest(&m.disks[d].chunks);
            }),
            Some(at),
        ),
        (
            "a chunk longer than the chunk size",
            Box::new(move |m: &mut Manifest| {
                m.disks[d].chunks[mid].length = m.chunk_size * 2;
                m.disks[d].digest = disk_digest(&m.disks[d].chunks);
            }),
            Some(at),
        ),
    ];
    for (what, lie, offset) in &lies {
        let mut m = truth.clone();
        lie(&mut m);
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        for (plan, inplace) in [(&new_vm, false), (&in_place, true)] {
            let (code, message, _) = run(&repo, plan, inplace).await;
            assert!(
                message.contains(&format!("'{name}'")),
                "{what}: the error names the disk: {code} {message}"
            );
            if let Some(o) = offset {
                assert_eq!(code, "E_INTEGRITY", "{what}: {message}");
                assert!(
                    message.contains(&format!("at offset {o}")),
                    "{what}: the error names offset {o}: {message}"
                );
            }
        }
    }
    std::fs::write(&path, &original).unwrap();
}
