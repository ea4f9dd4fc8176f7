//! VMR-08 end to end: a disk smaller than Azure's 20 MiB upload minimum is
//! planned as a 20 MiB managed disk, and the plan runs on SimCloud and on
//! ArmCloud over the local ARM-like server (which, as Azure does, refuses an
//! `uploadSizeBytes` under 20 MiB + 512). The source's bytes come back
//! first, zeros after them.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vmrestore::azure::ArmCloud;
use vmrestore::demo;
use vmrestore::exec::{Cloud, Executor, Outcome, SimCloud, SimConfig};
use vmrestore::model::Catalog;
use vmrestore::plan::TransformKind;
use vmrestore::repo::LocalRepository;

mod common;
use common::arm_server::{LOCATIONS, serve};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mib_disk_is_restored_as_a_twenty_mib_managed_disk_on_both_clouds() {
    let dir = tempfile::tempdir().unwrap();
    let web01 = demo::restores()
        .unwrap()
        .into_iter()
        .find(|r| r.name == "web01")
        .unwrap();
    let mut rp = web01.restore_point.clone();
    rp.vm.disks.truncate(1);
    let os = &mut rp.vm.disks[0];
    os.size_bytes = MIB;
    os.allocated_bytes = Some(MIB);
    let image: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8 | 1).collect();
    let raw = dir.path().join("os.raw");
    std::fs::write(&raw, &image).unwrap();
    let repo = LocalRepository::create(dir.path().join("repo")).unwrap();
    repo.import_raw(&rp, &[(rp.vm.disks[0].name.as_str(), raw.as_path())], MIB)
        .unwrap();

    let mut catalog = Catalog::builtin();
    catalog
        .regions
        .retain(|r| LOCATIONS.contains(&r.name.as_str()));
    let small = demo::DemoRestore {
        restore_point: rp.clone(),
        ..web01.clone()
    };
    let plan = common::restore::plan_with(
        &small,
        "azure-backup",
        &Catalog::builtin(),
        Some(ArmCloud::declared_capabilities()),
    );
    assert!(plan.is_ready(), "{:?}", plan.findings);
    assert!(
        !plan.target.disks_staged,
        "the disk goes up as a managed disk"
    );
    let grown: Vec<_> = plan
        .transformations
        .iter()
        .filter(|t| t.kind == TransformKind::GrowDisk)
        .collect();
    assert_eq!(grown.len(), 1, "{:?}", plan.transformations);
    assert_eq!(grown[0].rule_id, "VMR-08");
    assert_eq!(grown[0].path, "$.restore_point.vm.disks[0].size_bytes");
    assert_eq!(grown[0].before["size_bytes"], MIB);
    let disk = &plan.target.disks[0];
    assert_eq!(disk.size_bytes, 20 * MIB);
    assert_eq!(plan.estimates.storage_bytes, 20 * MIB);

    let repo = Arc::new(repo);
    let run = |cloud: Arc<dyn Cloud>| {
        let (repo, plan) = (repo.clone(), plan.clone());
        async move {
            Executor::new(cloud, repo)
                .with_options(common::arm_server::exec_options())
                .run(&plan, CancellationToken::new(), None)
                .await
                .unwrap()
        }
    };
    let sim = SimCloud::new(SimConfig {
        catalog: catalog.clone(),
        ..Default::default()
    });
    let s = run(Arc::new(sim.clone())).await;
    assert_eq!(s.outcome, Outcome::Succeeded, "SimCloud: {:?}", s.error);
    let (server, arm) = serve(false).await;
    let a = run(Arc::new(arm)).await;
    assert_eq!(a.outcome, Outcome::Succeeded, "ArmCloud: {:?}", a.error);

    let on_sim = sim.disk_bytes(&disk.name).unwrap();
    assert_eq!(on_sim.len() as u64, 20 * MIB);
    assert!(
        on_sim[..MIB as usize] == image[..],
        "the source's bytes first"
    );
    assert!(
        on_sim[MIB as usize..].iter().all(|b| *b == 0),
        "zeros after"
    );
    let f = server.lock().unwrap();
    let (_, on_arm, _) = &f.blobs[&disk.name.to_ascii_lowercase()];
    assert!(on_arm.len() as u64 >= 20 * MIB, "{} bytes", on_arm.len());
    assert!(
        on_arm[..MIB as usize] == image[..],
        "the source's bytes first"
    );
    assert!(
        on_arm[MIB as usize..(20 * MIB) as usize]
            .iter()
            .all(|b| *b == 0),
        "zeros after"
    );
}
