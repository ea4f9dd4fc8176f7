//! SimCloud refuses what Azure refuses, with the same kind of error.

use super::*;

const SUB: &str = "11111111-1111-1111-1111-111111111111";
const MIB: u64 = 1 << 20;

fn disk(name: &str, size: u64, os: bool, staging: Option<&str>) -> ResourceSpec {
    ResourceSpec::Disk {
        subscription_id: SUB.into(),
        resource_group: "rg".into(),
        name: name.into(),
        region: "westeurope".into(),
        size_bytes: size,
        sku: Default::default(),
        zone: None,
        os: os.then_some((crate::model::OsFamily::Linux, Default::default())),
        security_type: Default::default(),
        staging_account: staging.map(str::to_string),
        disk_encryption_set: None,
    }
}

fn existing(name: &str) -> ExistingVm {
    ExistingVm {
        subscription_id: SUB.into(),
        resource_group: "rg".into(),
        name: name.into(),
        region: "westeurope".into(),
        managed: true,
        encrypted: false,
        generalized: false,
    }
}

/// A cloud with VM `web01` (OS disk 64 MiB, data disk 128 MiB at LUN 0).
fn cloud(deallocated: bool) -> SimCloud {
    let disks = vec![
        ExistingDisk {
            name: "web01-os".into(),
            lun: None,
            size_bytes: 64 * MIB,
        },
        ExistingDisk {
            name: "web01-data".into(),
            lun: Some(0),
            size_bytes: 128 * MIB,
        },
    ];
    SimCloud::new(SimConfig {
        existing_vms: vec![existing("web01")],
        existing_vm_disks: [("web01".to_string(), disks)].into(),
        deallocated_vms: if deallocated {
            vec!["web01".into()]
        } else {
            vec![]
        },
        ..Default::default()
    })
}

/// Creates a disk and ends its upload.
async fn uploaded(c: &SimCloud, spec: ResourceSpec) -> Resource {
    let r = c
        .create(&format!("p:{}", spec.name()), &spec)
        .await
        .unwrap();
    let w = c.open_disk(&r).await.unwrap();
    w.finish("").await.unwrap();
    c.close_disk(&r).await.unwrap();
    r
}

fn kind<T: std::fmt::Debug>(r: CallResult<T>) -> (CallErrorKind, String) {
    let e = r.expect_err("refused");
    let m = e.to_string();
    (e.kind, m)
}

fn swap(disks: &[&str]) -> CloudAction {
    CloudAction::SwapDisks {
        resource_group: "rg".into(),
        vm: "web01".into(),
        disks: disks.iter().map(|d| d.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_swap_needs_a_deallocated_vm_and_disks_not_smaller_than_those_it_replaces() {
    let c = cloud(false);
    uploaded(&c, disk("new-os", 64 * MIB, true, None)).await;
    uploaded(&c, disk("new-data", 64 * MIB, false, None)).await;
    uploaded(&c, disk("big-data", 256 * MIB, false, None)).await;
    let (k, m) = kind(c.act("p:swap", &swap(&["new-os", "big-data"])).await);
    assert_eq!(k, CallErrorKind::Conflict, "{m}");
    assert!(m.contains("web01") && m.contains("deallocated"), "{m}");

    let c2 = cloud(true);
    for (n, s, os) in [
        ("new-os", 64, true),
        ("new-data", 64, false),
        ("big-data", 256, false),
    ] {
        uploaded(&c2, disk(n, s * MIB, os, None)).await;
    }
    let (k, m) = kind(c2.act("p:swap", &swap(&["new-os", "new-data"])).await);
    assert_eq!(k, CallErrorKind::Invalid, "{m}");
    assert!(
        m.contains("new-data") && m.contains("web01-data") && m.contains("web01"),
        "{m}"
    );
    let (k, m) = kind(c2.act("p:swap", &swap(&["new-os", "missing"])).await);
    assert_eq!(k, CallErrorKind::NotFound, "{m}");
    let missing_vm = CloudAction::SwapDisks {
        resource_group: "rg".into(),
        vm: "nope".into(),
        disks: vec!["new-os".into()],
    };
    assert_eq!(
        kind(c2.act("p:swap", &missing_vm).await).0,
        CallErrorKind::NotFound
    );

    // Replaced disks are deleted only after the swap.
    let del = CloudAction::DeleteReplacedDisks {
        resource_group: "rg".into(),
        vm: "web01".into(),
    };
    assert_eq!(kind(c2.act("p:del", &del).await).0, CallErrorKind::Conflict);
    c2.act("p:swap", &swap(&["new-os", "big-data"]))
        .await
        .unwrap();
    c2.act("p:del", &del).await.unwrap();
    let power = CloudAction::PowerOn {
        resource_group: "rg".into(),
        vm: "web01".into(),
    };
    c2.act("p:on", &power).await.unwrap();
    assert_eq!(c2.dump()["deallocated"], serde_json::json!([]));
}

#[tokio::test]
async fn a_disk_still_open_for_upload_cannot_be_swapped_in() {
    let c = cloud(true);
    let r = c
        .create("p:d", &disk("new-os", 64 * MIB, true, None))
        .await
        .unwrap();
    c.open_disk(&r).await.unwrap();
    assert_eq!(
        kind(c.act("p:swap", &swap(&["new-os"])).await).0,
        CallErrorKind::Conflict
    );
}

#[tokio::test]
async fn a_linux_boot_fix_needs_a_helper_appliance_and_uploaded_disks() {
    let c = cloud(false);
    uploaded(&c, disk("os", 64 * MIB, true, None)).await;
    let fix = CloudAction::BootFix {
        vm: "vm1".into(),
        disks: vec!["os".into()],
    };
    let (k, m) = kind(c.act("p:fix", &fix).await);
    assert_eq!(k, CallErrorKind::Conflict, "{m}");
    assert!(m.contains("helper"), "{m}");
    let helper = ResourceSpec::HelperAppliance {
        resource_group: "rg".into(),
        name: "helper".into(),
        region: "westeurope".into(),
    };
    c.create("p:helper", &helper).await.unwrap();
    let missing = CloudAction::BootFix {
        vm: "vm1".into(),
        disks: vec!["other".into()],
    };
    assert_eq!(
        kind(c.act("p:fix2", &missing).await).0,
        CallErrorKind::NotFound
    );
    c.act("p:fix", &fix).await.unwrap();
    // A Windows restore's disks are mounted on the backup server (VE-19).
    let w = SimCloud::new(SimConfig::default());
    let mut win = disk("win-os", 64 * MIB, true, None);
    if let ResourceSpec::Disk { os, .. } = &mut win {
        *os = Some((crate::model::OsFamily::Windows, Default::default()));
    }
    uploaded(&w, win).await;
    let fix = CloudAction::BootFix {
        vm: "vm2".into(),
        disks: vec!["win-os".into()],
    };
    w.act("p:fix", &fix).await.unwrap();
}

#[tokio::test]
async fn a_snapshot_needs_an_existing_vm_with_disks() {
    let snap = |vm: &str| ResourceSpec::Snapshot {
        resource_group: "rg".into(),
        vm: vm.into(),
    };
    let c = cloud(false);
    assert_eq!(
        kind(c.create("p:s", &snap("nope")).await).0,
        CallErrorKind::NotFound
    );
    c.create("p:s", &snap("web01")).await.unwrap();
    let bare = SimCloud::new(SimConfig {
        existing_vms: vec![existing("web01")],
        ..Default::default()
    });
    assert_eq!(
        kind(bare.create("p:s", &snap("web01")).await).0,
        CallErrorKind::Invalid
    );
}

#[tokio::test]
async fn conversion_needs_finished_page_blobs_of_an_existing_staging_account() {
    let c = SimCloud::new(SimConfig::default());
    assert_eq!(
        kind(
            c.create("p:b", &disk("blob", 64 * MIB, false, Some("stage1")))
                .await
        )
        .0,
        CallErrorKind::NotFound,
        "no staging account"
    );
    let account = ResourceSpec::StorageAccount {
        subscription_id: SUB.into(),
        resource_group: "rg".into(),
        name: "stage1".into(),
        region: "westeurope".into(),
    };
    c.create("p:acct", &account).await.unwrap();
    let b = c
        .create("p:b", &disk("blob", 64 * MIB, false, Some("stage1")))
        .await
        .unwrap();
    let convert = |d: &str| CloudAction::ConvertToManaged {
        resource_group: "rg".into(),
        disks: vec![d.into()],
    };
    let (k, m) = kind(c.act("p:conv", &convert("blob")).await);
    assert_eq!(k, CallErrorKind::Conflict, "{m}");
    let w = c.open_disk(&b).await.unwrap();
    w.finish("").await.unwrap();
    c.close_disk(&b).await.unwrap();
    c.act("p:conv", &convert("blob")).await.unwrap();
    uploaded(&c, disk("managed", 64 * MIB, false, None)).await;
    assert_eq!(
        kind(c.act("p:conv2", &convert("managed")).await).0,
        CallErrorKind::Invalid
    );
    assert_eq!(
        kind(c.act("p:conv3", &convert("gone")).await).0,
        CallErrorKind::NotFound
    );
}

#[tokio::test]
async fn creates_check_names_regions_sizes_and_references_as_azure_does() {
    let c = cloud(false);
    let nic = |name: &str, region: &str, pip: Option<&str>| ResourceSpec::NetworkInterface {
        resource_group: "rg".into(),
        name: name.into(),
        region: region.into(),
        virtual_network: "vnet".into(),
        subnet: "default".into(),
        static_ip: None,
        public_ip: pip.map(str::to_string),
        network_security_group: None,
    };
    assert_eq!(
        kind(c.create("p:n", &nic("nic", "atlantis", None)).await).0,
        CallErrorKind::Invalid
    );
    assert_eq!(
        kind(c.create("p:n", &nic("-bad", "westeurope", None)).await).0,
        CallErrorKind::Invalid
    );
    assert_eq!(
        kind(
            c.create("p:n", &nic("nic", "westeurope", Some("pip")))
                .await
        )
        .0,
        CallErrorKind::Invalid,
        "a public IP that does not exist"
    );
    c.create("p:n", &nic("nic", "westeurope", None))
        .await
        .unwrap();
    for size in [MIB, 20 * MIB + 512, (32 << 40) + MIB] {
        assert_eq!(
            kind(c.create("p:d", &disk("d", size, false, None)).await).0,
            CallErrorKind::Invalid,
            "{size}"
        );
    }
    uploaded(&c, disk("os", 20 * MIB, true, None)).await;
    let vm = |name: &str, rg: &str, size: &str| ResourceSpec::VirtualMachine {
        subscription_id: SUB.into(),
        resource_group: rg.into(),
        name: name.into(),
        region: "westeurope".into(),
        size: size.into(),
        zone: None,
        availability_set: None,
        os: crate::model::OsFamily::Linux,
        generation: Default::default(),
        security_type: Default::default(),
        os_disk: "os".into(),
        data_disks: vec![],
        nics: vec!["nic".into()],
    };
    let size = Catalog::builtin().vm_sizes[0].name.clone();
    assert_eq!(
        kind(c.create("p:vm", &vm("vm1", "rg", "Standard_Nope")).await).0,
        CallErrorKind::Invalid
    );
    assert_eq!(
        kind(c.create("p:vm", &vm("web01", "rg", &size)).await).0,
        CallErrorKind::Conflict
    );
    // The same name in another resource group is another VM (its disk and
    // NIC are not there, though).
    assert_eq!(
        kind(c.create("p:vm", &vm("web01", "rg2", &size)).await).0,
        CallErrorKind::Invalid
    );
    c.create("p:vm", &vm("vm1", "rg", &size)).await.unwrap();
    assert_eq!(
        kind(c.create("p:vm2", &vm("vm1", "rg", &size)).await).0,
        CallErrorKind::Conflict
    );
}
