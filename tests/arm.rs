//! The ARM cloud against a local server on 127.0.0.1 that behaves like
//! Azure Resource Manager: 201/202 with `Azure-AsyncOperation` and
//! `Location` headers, polling, 429 with `Retry-After`, failed operations,
//! and a managed disk's upload endpoint that enforces Azure's page rules.
//!
//! Every request body is checked twice:
//! - by the server, against the rules of the resource types in AZURE.md
//!   (api-versions, `createOption`, `uploadSizeBytes`, attached disks that
//!   must exist and have left the upload state, ...);
//! - after the run, against Microsoft's published API definitions, by
//!   `tests/arm_spec/validate.py` with Microsoft's AutoRest-generated
//!   management SDK models (property names and nesting, types, read-only
//!   and required properties, enum values, constraints) for the
//!   api-versions of AZURE.md.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, Uri};
use serde_json::{Value, json};
use vmrestore::azure::{ArmCloud, ArmConfig};
use vmrestore::demo;
use vmrestore::exec::{Cloud, ExecOptions, Outcome, Resource};
use vmrestore::model::Catalog;
use vmrestore::plan::{Plan, Planner, StepKind};

mod common;
use common::arm_server::*;
use common::azurite::Azurite;
use common::restore::*;
use vmrestore::policy::Profile;

/// The Python that has Microsoft's management SDKs
/// (`tests/arm_spec/requirements.txt`): `VMRESTORE_SPEC_PYTHON`, else the
/// repository's `.venv` (made by `scripts/test.sh`). `None` when neither
/// has them, unless `VMRESTORE_REQUIRE_SPEC` is set (as the test script
/// does): then the check may not be skipped.
fn spec_python() -> Option<std::path::PathBuf> {
    let candidate = std::env::var_os("VMRESTORE_SPEC_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
        });
    let ok = std::process::Command::new(&candidate)
        .args(["-c", "import azure.mgmt.compute, azure.mgmt.network, azure.mgmt.keyvault, azure.mgmt.storage, azure.mgmt.resource"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("VMRESTORE_REQUIRE_SPEC").is_none(),
        "{} cannot import Microsoft's management SDKs: pip install -r tests/arm_spec/requirements.txt",
        candidate.display()
    );
    eprintln!(
        "skipping the published-definitions check: no Python with tests/arm_spec/requirements.txt"
    );
    None
}

/// Runs `tests/arm_spec/validate.py` over requests: its exit status and
/// what it printed.
fn check_against_spec(python: &std::path::Path, requests: &[Value]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("requests.json");
    std::fs::write(&file, serde_json::to_vec(requests).unwrap()).unwrap();
    let out = std::process::Command::new(python)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/arm_spec/validate.py"))
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The demo repository (in the directory first returned) and web01's
/// restore planned under `profile`.
fn web01_plan(profile: &str) -> (tempfile::TempDir, vmrestore::repo::LocalRepository, Plan) {
    let (dir, repo, restores) = demo_repo();
    let plan = plan_for(restore_of(&restores, "web01"), profile);
    (dir, repo, plan)
}

/// A VMAccess reset of `username`'s credential on `vm`.
/// The run succeeded and the server refused none of its requests.
fn assert_succeeded_unrejected(report: &vmrestore::exec::Report, rejected: &[String]) {
    assert_eq!(
        report.outcome,
        Outcome::Succeeded,
        "{:?}\nrejected: {:?}",
        report.error,
        rejected
    );
    assert!(rejected.is_empty(), "{rejected:?}");
}

fn vm_access(resource_group: &str, vm: &str, username: &str) -> vmrestore::exec::CloudAction {
    vmrestore::exec::CloudAction::VmAccessExtension {
        resource_group: resource_group.into(),
        vm: vm.into(),
        username: username.into(),
    }
}

fn options() -> ExecOptions {
    common::arm_server::exec_options()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_restore_runs_through_arm_with_lros_throttling_and_disk_uploads() {
    let (st, cloud) = serve(false).await;
    let (dir, repo, plan) = web01_plan("azure-backup");
    assert!(plan.is_ready());
    let report = run_plan(Arc::new(cloud), Arc::new(repo), &plan, options(), None)
        .await
        .unwrap();
    let f = st.lock().unwrap();
    assert_succeeded_unrejected(&report, &f.rejected);
    assert_eq!(f.unauthorised, 0);
    assert_eq!(f.throttled, 1, "the 429 was met");
    assert!(
        report.steps.iter().any(|s| !s.attempts.is_empty()),
        "and retried"
    );
    // The disks hold the source bytes, footer last.
    for d in &plan.target.disks {
        let (size, data, _) = &f.blobs[&d.name.to_ascii_lowercase()];
        assert_eq!(*size, d.size_bytes + 512);
        let want = source_image(
            dir.path(),
            "web01",
            &d.source_disk,
            None,
            d.size_bytes as usize,
        );
        assert!(
            data[..d.size_bytes as usize] == want[..],
            "{} differs",
            d.name
        );
        assert_eq!(
            &data[d.size_bytes as usize..d.size_bytes as usize + 8],
            b"conectix"
        );
    }
    let vm = f
        .resources
        .iter()
        .find(|(k, _)| k.contains("/virtualmachines/"))
        .map(|(_, v)| v.clone())
        .expect("the VM");
    assert_eq!(vm["properties"]["powerState"], "running");
    assert_eq!(vm["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        vm["properties"]["storageProfile"]["dataDisks"]
            .as_array()
            .unwrap()
            .len(),
        plan.target.disks.len() - 1
    );
    // Uploads ended before the VM attached them (the server refuses otherwise).
    assert!(f.calls.iter().any(|c| c.ends_with("/endGetAccess")));
    // Every body the cloud sent, against Microsoft's published definitions.
    if let Some(python) = spec_python() {
        let kinds: BTreeSet<String> = f
            .bodies
            .iter()
            .filter_map(|b| b["path"].as_str())
            .filter_map(|p| p.split("/providers/").nth(1))
            .map(|p| p.split('/').take(2).collect::<Vec<_>>().join("/"))
            .collect();
        for k in [
            "Microsoft.Compute/disks",
            "Microsoft.Compute/virtualMachines",
            "Microsoft.Network/networkInterfaces",
        ] {
            assert!(kinds.contains(k), "no {k} body in {kinds:?}");
        }
        let (code, out) = check_against_spec(&python, &f.bodies);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("0 violation(s)"), "{out}");
    }
}

/// The published-definitions check is live: bodies that break Microsoft's
/// definitions in the ways a hand-written client can are each refused, with
/// the JSON path named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_definitions_refuse_bodies_that_break_them() {
    let Some(python) = spec_python() else { return };
    let (st, cloud) = serve(false).await;
    let (_dir, repo, plan) = web01_plan("azure-backup");
    let report = run_plan(Arc::new(cloud), Arc::new(repo), &plan, options(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    let bodies = st.lock().unwrap().bodies.clone();
    let find = |part: &str| {
        bodies
            .iter()
            .find(|b| b["path"].as_str().unwrap().contains(part) && b["method"] == "PUT")
            .cloned()
            .unwrap()
    };
    let (disk, vm) = (find("/disks/"), find("/virtualMachines/"));
    let mutants: Vec<(&str, Value, &str)> = vec![
        (
            "a misspelt property",
            {
                let mut d = disk.clone();
                let c = d["body"]["properties"]["creationData"]
                    .as_object_mut()
                    .unwrap();
                let v = c.remove("uploadSizeBytes").unwrap();
                c.insert("uploadSize".into(), v);
                d
            },
            "$.properties.creationData.uploadSize: unknown property",
        ),
        (
            "a read-only property",
            {
                let mut v = vm.clone();
                v["body"]["properties"]["vmId"] = json!("x");
                v
            },
            "$.properties.vmId: read-only",
        ),
        (
            "a missing required property",
            {
                let mut d = disk.clone();
                d["body"].as_object_mut().unwrap().remove("location");
                d
            },
            "$.location: required",
        ),
        (
            "a value outside an enum",
            {
                let mut v = vm.clone();
                v["body"]["properties"]["storageProfile"]["osDisk"]["createOption"] =
                    json!("Attached");
                v
            },
            "$.properties.storageProfile.osDisk.createOption: 'Attached' is not one of",
        ),
        (
            "a wrong type",
            {
                let mut d = disk.clone();
                d["body"]["properties"]["creationData"]["uploadSizeBytes"] = json!("21475837440");
                d
            },
            "$.properties.creationData.uploadSizeBytes: must be an integer",
        ),
        (
            "a wrong api-version",
            {
                let mut d = disk.clone();
                d["api_version"] = json!("2020-12-01");
                d
            },
            "api-version '2020-12-01'",
        ),
    ];
    for (what, request, expect) in mutants {
        let (code, out) = check_against_spec(&python, &[request]);
        assert_eq!(code, 1, "{what} was accepted: {out}");
        assert!(out.contains(expect), "{what}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_operation_surfaces_arms_error_and_everything_created_is_deleted() {
    let (st, cloud) = serve(true).await;
    let (_dir, repo, plan) = web01_plan("azure-backup");
    let report = run_plan(Arc::new(cloud), Arc::new(repo), &plan, options(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Failed);
    let e = report.error.clone().unwrap();
    assert_eq!(e.step, "vm");
    assert!(e.message.contains("AllocationFailed"), "{}", e.message);
    assert!(e.message.contains("no capacity"), "{}", e.message);
    let f = st.lock().unwrap();
    let left: Vec<&String> = f
        .resources
        .keys()
        .filter(|k| k.starts_with("/subscriptions/"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!format!("{report:?}").contains(TOKEN));
    assert!(!format!("{report:?}").contains("upload-sas-sentinel"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_there_before_is_neither_overwritten_nor_deleted() {
    let (_dir, repo, plan) = web01_plan("azure-backup");
    let repo = Arc::new(repo);
    let t = &plan.target;
    let rg = format!(
        "/subscriptions/{}/resourceGroups/{}",
        t.subscription_id, t.resource_group
    );
    let theirs = format!("{rg}/providers/Microsoft.Storage/storageAccounts/customerdata");
    let rg_body = json!({"id": rg, "location": t.region, "tags": {"owner": "customer"}});

    // A resource group that exists, holding the customer's data; the VM
    // fails, so clean-up runs: the group and its content stay, untouched.
    let (st, cloud) = serve(true).await;
    {
        let mut f = st.lock().unwrap();
        f.resources.insert(rg.to_ascii_lowercase(), rg_body.clone());
        f.resources
            .insert(theirs.to_ascii_lowercase(), json!({"id": theirs}));
    }
    let report = run_plan(Arc::new(cloud), repo.clone(), &plan, options(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(!report.cleaned_up.is_empty(), "clean-up ran");
    {
        let f = st.lock().unwrap();
        assert_eq!(f.resources.get(&rg.to_ascii_lowercase()), Some(&rg_body));
        assert!(f.resources.contains_key(&theirs.to_ascii_lowercase()));
        assert!(
            !f.bodies.iter().any(|b| b["path"]
                .as_str()
                .is_some_and(|p| p.eq_ignore_ascii_case(&rg))),
            "the existing resource group was PUT"
        );
        let left: Vec<&String> = f
            .resources
            .keys()
            .filter(|k| **k != rg.to_ascii_lowercase() && **k != theirs.to_ascii_lowercase())
            .filter(|k| k.starts_with("/subscriptions/"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    // A NIC of the plan's name that this restore did not make: refused
    // with a clear error, never overwritten, never deleted.
    let (st, cloud) = serve(false).await;
    // (Network resources go to the cloud's own subscription.)
    let nic = format!(
        "/subscriptions/{SUB}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{}",
        t.resource_group, t.nics[0].name
    );
    let nic_body =
        json!({"id": nic, "location": t.region, "properties": {"note": "the customer's"}});
    st.lock()
        .unwrap()
        .resources
        .insert(nic.to_ascii_lowercase(), nic_body.clone());
    let report = run_plan(Arc::new(cloud), repo, &plan, options(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Failed, "{report:?}");
    let e = report.error.unwrap();
    assert!(
        e.message.contains("exists already") && e.message.contains(&t.nics[0].name),
        "{}",
        e.message
    );
    let f = st.lock().unwrap();
    assert_eq!(f.resources.get(&nic.to_ascii_lowercase()), Some(&nic_body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_read_from_arm() {
    let (_st, cloud) = serve(false).await;
    let c = cloud.catalog().await.unwrap();
    assert_eq!(c.regions.len(), 1, "logical regions are left out");
    assert_eq!(c.regions[0].zones, vec![1, 2, 3]);
    assert_eq!(c.regions[0].paired_region.as_deref(), Some("northeurope"));
    assert_eq!(c.vm_sizes.len(), 1);
    let s = &c.vm_sizes[0];
    assert_eq!(
        (s.vcpus, s.max_data_disks, s.gen2, s.premium_storage),
        (4, 8, true, true)
    );
}

/// Runs the credential's shell command with a fake `az` first on `PATH`
/// (a real process, as the Azure CLI credential runs one).
#[derive(Debug)]
struct FakeAzPath(std::path::PathBuf);

#[vmrestore::azure::auth::async_trait]
impl vmrestore::azure::identity::azure_identity::Executor for FakeAzPath {
    async fn run(
        &self,
        program: &std::ffi::OsStr,
        args: &[&std::ffi::OsStr],
    ) -> std::io::Result<std::process::Output> {
        let path = format!(
            "{}:{}",
            self.0.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        tokio::process::Command::new(program)
            .args(args)
            .env("PATH", path)
            .output()
            .await
    }
}

fn fake_az(dir: &std::path::Path, script: &str) -> vmrestore::azure::AzureIdentity {
    use std::os::unix::fs::PermissionsExt;
    let az = dir.join("az");
    std::fs::write(&az, script).unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    vmrestore::azure::AzureIdentity::azure_cli_with(
        vmrestore::azure::identity::azure_identity::AzureCliCredentialOptions {
            executor: Some(Arc::new(FakeAzPath(dir.to_path_buf()))),
            ..Default::default()
        },
    )
    .unwrap()
}

/// `azure_identity`'s Azure CLI credential, through our token provider,
/// authenticates ARM calls; its token is cached (one `az` run for many
/// requests) and never shows in `Debug`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_identity_credentials_authenticate_arm_and_are_cached() {
    let (st, _) = serve(false).await;
    let dir = tempfile::tempdir().unwrap();
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let script = format!(
        "#!/bin/sh\necho run >> \"{}\"\ncase \"$*\" in *--scope*/.default*) ;; *) echo bad scope >&2; exit 1;; esac\n\
         echo '{{\"accessToken\": \"{TOKEN}\", \"expires_on\": {expires}, \"tokenType\": \"Bearer\"}}'\n",
        dir.path().join("runs").display()
    );
    let identity = fake_az(dir.path(), &script);
    assert!(!format!("{identity:?}").contains(TOKEN));
    let base = st.lock().unwrap().base.clone();
    let cloud = arm_cloud(base, Arc::new(identity));
    for _ in 0..3 {
        let c = cloud.catalog().await.unwrap();
        assert_eq!(c.regions.len(), 1);
    }
    assert_eq!(st.lock().unwrap().unauthorised, 0);
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the token is cached");
}

/// A credential that fails (not signed in) fails the ARM call with the
/// credential's reason, as an authentication error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_azure_identity_credential_is_a_clear_error() {
    let (st, _) = serve(false).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = fake_az(
        dir.path(),
        "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n",
    );
    let base = st.lock().unwrap().base.clone();
    let cloud = ArmCloud::new(
        ArmConfig {
            endpoint: base,
            subscription_id: SUB.into(),
            ..Default::default()
        },
        Arc::new(identity),
    )
    .unwrap();
    let e = cloud.catalog().await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("AzureCliCredential"), "{text}");
    assert!(text.contains("az login"), "{text}");
    assert_eq!(st.lock().unwrap().calls.len(), 0, "nothing was sent");
}

/// A trusted-launch (generation 2) VM is created with its security profile
/// and its OS disk as a trusted-launch disk; the VMAccess extension then
/// resets a password that reaches only the extension's protected settings.
/// Both bodies pass Microsoft's published definitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_launch_and_vm_access_reach_arm_as_published() {
    let (st, cloud) = serve(false).await;
    const PASSWORD: &str = "vm-password-sentinel-93af";
    let cloud = cloud.with_vm_credentials(Arc::new(|vm: &str, user: &str| {
        assert_eq!((vm, user), ("web01-dr", "azureadmin"));
        Ok(vmrestore::azure::VmCredential::Password(PASSWORD.into()))
    }));
    let (dir, _, restores) = demo_repo();
    let web01 = restore_of(&restores, "web01");
    let mut rp = serde_json::to_value(&web01.restore_point).unwrap();
    rp["vm"]["generation"] = json!("gen2");
    rp["vm"]["firmware"] = json!("uefi");
    rp["vm"]["security_type"] = json!("trusted_launch");
    let rp: vmrestore::model::RestorePoint = serde_json::from_value(rp).unwrap();
    let repo = vmrestore::repo::LocalRepository::create(dir.path().join("tl")).unwrap();
    let images: Vec<(String, std::path::PathBuf)> = rp
        .vm
        .disks
        .iter()
        .map(|d| {
            (
                d.name.clone(),
                demo::image_path(dir.path(), "web01", &d.name, None),
            )
        })
        .collect();
    let refs: Vec<(&str, &std::path::Path)> = images
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    repo.import_raw(&rp, &refs, 4 << 20).unwrap();
    let plan = Planner::new(&Catalog::builtin())
        .unwrap()
        .plan(
            &rp,
            &web01.request,
            &[Profile::builtin("azure-backup").unwrap()],
        )
        .unwrap();
    assert!(plan.is_ready(), "{:?}", plan.findings);
    let cloud = Arc::new(cloud);
    let report = run_plan(cloud.clone(), Arc::new(repo), &plan, options(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let rg = plan.target.resource_group.clone();
    cloud
        .act("k", &vm_access(&rg, "web01-dr", "azureadmin"))
        .await
        .unwrap();
    let f = st.lock().unwrap();
    assert!(f.rejected.is_empty(), "{:?}", f.rejected);
    let put = |part: &str| {
        f.bodies
            .iter()
            .filter(|b| b["method"] == "PUT")
            .find(|b| b["path"].as_str().unwrap().contains(part))
            .unwrap_or_else(|| panic!("no PUT of {part}"))
            .clone()
    };
    let vm = put("/virtualMachines/");
    assert_eq!(
        vm["body"]["properties"]["securityProfile"],
        json!({ "securityType": "TrustedLaunch", "uefiSettings": { "secureBootEnabled": true, "vTpmEnabled": true } })
    );
    let os_disk = plan
        .target
        .disks
        .iter()
        .find(|d| d.role == vmrestore::model::DiskRole::Os)
        .unwrap();
    let disk = put(&format!("/disks/{}", os_disk.name));
    assert_eq!(
        disk["body"]["properties"]["securityProfile"]["securityType"],
        "TrustedLaunch"
    );
    assert_eq!(disk["body"]["properties"]["hyperVGeneration"], "V2");
    let ext = put("/extensions/");
    assert_eq!(ext["body"]["properties"]["type"], "VMAccessAgent");
    assert_eq!(
        ext["body"]["properties"]["protectedSettings"]["Password"],
        PASSWORD
    );
    assert!(
        ext["body"]["properties"]["settings"]
            .to_string()
            .contains("azureadmin")
    );
    assert!(
        !ext["body"]["properties"]["settings"]
            .to_string()
            .contains(PASSWORD)
    );
    assert!(!format!("{report:?}{cloud:?}").contains(PASSWORD));
    if let Some(python) = spec_python() {
        let (code, out) = check_against_spec(&python, &f.bodies);
        assert_eq!(code, 0, "{out}");
    }
}

/// Without a credential source, a VMAccess reset fails clearly and sends
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vm_access_without_a_credential_source_is_refused() {
    let (st, cloud) = serve(false).await;
    let e = cloud
        .act("k", &vm_access("rg", "vm1", "admin"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no VM credential source"), "{e}");
    assert!(st.lock().unwrap().calls.is_empty());
}

/// A restore staged through a storage account: the disks are written as
/// page blobs to the account's blob endpoint (Azurite, reached with the key
/// from `listKeys`), made managed disks with `createOption: Import`, and
/// attached; the key vault and its access grant go through ARM too. Every
/// body passes the published definitions, and the blobs hold the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_restore_imports_page_blobs_from_a_storage_account() {
    let az = Azurite::start();
    let (st, cloud) = serve(false).await;
    st.lock().unwrap().staging_blob = format!("{}/", az.endpoint());
    let (dir, repo, restores) = demo_repo();
    // The first ready plan, over every demo VM and profile, that stages its
    // disks and makes a key vault.
    let (source, plan) = restores
        .iter()
        .flat_map(|r| {
            vmrestore::policy::BUILTIN_PROFILES
                .iter()
                .map(move |p| (r, plan_for(r, p)))
        })
        .find(|(_, p)| {
            p.is_ready()
                && p.steps.iter().any(|s| s.kind == StepKind::ConvertToManaged)
                && p.steps.iter().any(|s| s.kind == StepKind::KeyVault)
        })
        .expect("a ready staged plan with a key vault");
    let report = run_plan(Arc::new(cloud), Arc::new(repo), &plan, options(), None)
        .await
        .unwrap();
    let f = std::mem::take(&mut *st.lock().unwrap());
    assert_succeeded_unrejected(&report, &f.rejected);
    // Each disk: imported from its blob, which holds the source and a footer.
    let http = vmrestore::azure::storage::http_client().unwrap();
    for d in &plan.target.disks {
        let disk = f
            .bodies
            .iter()
            .filter(|b| b["method"] == "PUT")
            .find(|b| {
                b["path"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("/disks/{}", d.name))
            })
            .unwrap_or_else(|| panic!("no managed disk {}", d.name));
        let cd = &disk["body"]["properties"]["creationData"];
        assert_eq!(cd["createOption"], "Import");
        let uri = cd["sourceUri"].as_str().unwrap();
        let blob = vmrestore::azure::BlobClient::new(http.clone(), uri, az.auth()).unwrap();
        let data = blob.get().await.unwrap().expect("the staged blob");
        assert_eq!(data.len() as u64, d.size_bytes + 512);
        let size = d.size_bytes as usize;
        let vg = d.volume_group.as_deref();
        let want = source_image(dir.path(), source.name, &d.source_disk, vg, size);
        assert!(
            data[..d.size_bytes as usize] == want[..],
            "{} differs",
            d.name
        );
        assert_eq!(&data[d.size_bytes as usize..][..8], b"conectix");
    }
    let paths: Vec<&str> = f.bodies.iter().filter_map(|b| b["path"].as_str()).collect();
    for part in [
        "/Microsoft.KeyVault/vaults/",
        "/Microsoft.Storage/storageAccounts/",
    ] {
        assert!(paths.iter().any(|p| p.contains(part)), "{part}: {paths:?}");
    }
    // The grant is least privilege: one principal, only what disk
    // encryption needs (keys get/wrap/unwrap, secrets get/set).
    let grant = f
        .bodies
        .iter()
        .find(|b| b["path"].as_str().unwrap().ends_with("/accessPolicies/add"))
        .expect("the access grant");
    let policies = grant["body"]["properties"]["accessPolicies"]
        .as_array()
        .unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(
        policies[0]["permissions"],
        json!({ "keys": ["get", "wrapKey", "unwrapKey"], "secrets": ["get", "set"] })
    );
    assert!(!format!("{report:?}").contains(vmrestore::azure::storage::EMULATOR_KEY));
    if let Some(python) = spec_python() {
        let (code, out) = check_against_spec(&python, &f.bodies);
        assert_eq!(code, 0, "{out}");
    }
}

/// A `MakeWriter` into a shared buffer (what the tracing output holds).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The secrets sentinel: an ARM token, a managed disk's upload SAS, a
/// storage account key (from `listKeys`) and a VM password, all planted in
/// one run (direct uploads, a staged restore, a VMAccess reset, and calls
/// that fail), never appear in the tracing output at TRACE level (ours,
/// reqwest's, hyper's), in errors, in `Debug` output, in plans or in
/// reports.
#[tokio::test(flavor = "current_thread")]
async fn secrets_never_reach_logs_errors_debug_plans_or_reports() {
    // A global subscriber: a thread-local one misses events whose
    // callsites other tests (running in parallel) registered first. It
    // captures the other tests' output too, which only widens the check.
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    let logs = LOGS
        .get_or_init(|| {
            let logs = LogBuffer::default();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(logs.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            logs
        })
        .clone();
    const PASSWORD: &str = "vm-password-sentinel-71c2";
    let secrets = [
        TOKEN,
        "upload-sas-sentinel",
        vmrestore::azure::storage::EMULATOR_KEY,
        PASSWORD,
    ];
    let az = Azurite::start();
    let (st, cloud) = serve(false).await;
    st.lock().unwrap().staging_blob = format!("{}/", az.endpoint());
    let cloud = Arc::new(cloud.with_vm_credentials(Arc::new(|_: &str, _: &str| {
        Ok(vmrestore::azure::VmCredential::Password(PASSWORD.into()))
    })));
    let (_dir, repo, restores) = demo_repo();
    let repo = Arc::new(repo);
    let mut seen = String::new();
    // A direct upload and a staged restore.
    let staged = restores
        .iter()
        .flat_map(|r| {
            vmrestore::policy::BUILTIN_PROFILES
                .iter()
                .map(move |p| plan_for(r, p))
        })
        .find(|p| p.is_ready() && p.steps.iter().any(|s| s.kind == StepKind::ConvertToManaged))
        .unwrap();
    let direct = plan_for(restore_of(&restores, "web01"), "azure-backup");
    for (i, plan) in [&direct, &staged].into_iter().enumerate() {
        if i > 0 {
            // Another restore of the same VM: into an empty subscription,
            // or its NIC (made by the first plan) is not this plan's to reuse.
            st.lock().unwrap().resources.clear();
        }
        let report = run_plan(cloud.clone(), repo.clone(), plan, options(), None)
            .await
            .unwrap();
        assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
        seen += &format!("{report:?}{}", serde_json::to_string(&report).unwrap());
        seen += &format!("{plan:?}{}", serde_json::to_string(plan).unwrap());
    }
    // A VMAccess reset, then calls that fail.
    let reset = |vm: &str| vm_access(&direct.target.resource_group, vm, "azureadmin");
    cloud.act("k", &reset("web01-dr")).await.unwrap();
    let e = cloud.act("k", &reset("no-such-vm")).await.unwrap_err();
    seen += &format!("{e}{e:?}");
    let e = cloud
        .open_disk(&Resource {
            id: "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/disks/none".into(),
            kind: "disk".into(),
            name: "none".into(),
            key: "k".into(),
            existed: false,
        })
        .await
        .err()
        .unwrap();
    seen += &format!("{e}{e:?}{cloud:?}");
    let log = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("page blob opened"),
        "the capture works: {} bytes of log",
        log.len()
    );
    for secret in secrets {
        assert!(!log.contains(secret), "{secret} in the tracing output");
        assert!(
            !seen.contains(secret),
            "{secret} in errors, Debug, plans or reports"
        );
    }
    // The secrets did travel where they must: the ARM server saw the token
    // and the password reached the extension's protected settings only.
    let f = st.lock().unwrap();
    assert_eq!(f.unauthorised, 0);
    assert!(f.bodies.iter().any(|b| b.to_string().contains(PASSWORD)));
}

/// Issue 12, item 5: a server whose `Azure-AsyncOperation` / `Location`
/// headers point at another host (here another port on 127.0.0.1, over
/// plain http) never gets the bearer token: the URL is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_follows_a_poll_url_to_another_host() {
    // The other host: it records whatever reaches it.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    let rec = seen.clone();
    let app = Router::new().fallback(move |headers: HeaderMap, uri: Uri| {
        let rec = rec.clone();
        async move {
            rec.lock().unwrap().push(format!(
                "{uri} {:?}",
                headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap_or("").to_string())
            ));
            Json(json!({ "status": "Succeeded" }))
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (st, cloud) = serve(false).await;
    st.lock().unwrap().base = other.clone();
    let (_dir, repo, plan) = web01_plan("azure-backup");
    let report = run_plan(Arc::new(cloud), Arc::new(repo), &plan, options(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Failed, "{report:?}");
    let e = report.error.unwrap();
    assert!(e.message.contains("refusing to follow"), "{}", e.message);
    assert!(e.message.contains(&other), "{}", e.message);
    assert!(
        seen.lock().unwrap().is_empty(),
        "the other host was called: {:?}",
        seen.lock().unwrap()
    );
}

/// Issue 12, item 6: userinfo in an endpoint URL is redacted in `Debug`.
#[test]
fn userinfo_in_the_endpoint_is_redacted() {
    let cloud = ArmCloud::new(
        ArmConfig {
            endpoint: "http://operator:hunter2-secret@127.0.0.1:9/".into(),
            subscription_id: SUB.into(),
            ..Default::default()
        },
        Arc::new(Token),
    )
    .unwrap();
    let shown = format!("{cloud:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("operator"), "{shown}");
    assert!(shown.contains("127.0.0.1:9"), "{shown}");
}

/// Issue 12, item 4: clean-up deletes only what the cloud shows this run
/// made. `GET rg → 404, PUT → 409 InvalidResourceGroupLocation` (someone
/// else's group) sends no DELETE; a claimed resource (as a forged journal
/// line would claim it) without this step's tag is refused, not deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_up_deletes_only_what_arm_shows_this_run_made() {
    let (_dir, repo, plan) = web01_plan("azure-backup");
    let t = &plan.target;
    let rg = format!(
        "/subscriptions/{}/resourceGroups/{}",
        t.subscription_id, t.resource_group
    );
    let (st, cloud) = serve(false).await;
    st.lock().unwrap().hidden_rg = Some(rg.to_ascii_lowercase());
    let report = run_plan(Arc::new(cloud), Arc::new(repo), &plan, options(), None)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Failed, "{report:?}");
    assert!(
        report
            .error
            .unwrap()
            .message
            .contains("InvalidResourceGroupLocation")
    );
    {
        let f = st.lock().unwrap();
        let deletes: Vec<&String> = f.calls.iter().filter(|c| c.starts_with("DELETE")).collect();
        assert!(deletes.is_empty(), "deleted: {deletes:?}");
    }

    // A resource claimed by this plan's key but not tagged with it (the
    // customer's group, named in a forged journal line): refused.
    let (st, cloud) = serve(false).await;
    let theirs = format!("/subscriptions/{SUB}/resourceGroups/rg-finance");
    st.lock().unwrap().resources.insert(
        theirs.to_ascii_lowercase(),
        json!({"id": theirs, "location": "westeurope", "tags": {"owner": "finance"}}),
    );
    let claimed = Resource {
        id: theirs.clone(),
        kind: "resource_group".into(),
        name: "rg-finance".into(),
        key: format!("{}:rg", &plan.fingerprint.combined[..16]),
        existed: false,
    };
    let e = cloud.delete(&claimed).await.unwrap_err();
    assert!(e.to_string().contains("not created by this restore"), "{e}");
    let f = st.lock().unwrap();
    assert!(f.resources.contains_key(&theirs.to_ascii_lowercase()));
    assert!(
        !f.calls.iter().any(|c| c.starts_with("DELETE")),
        "{:?}",
        f.calls
    );
}

/// Issue 12, item 1: a name that would end an ARM path early
/// (`rg?api-version=...#`) or climb out of it (`../../..`) never becomes a
/// request. The planner refuses it at the model boundary with the field's
/// JSON path; a plan edited after planning (plans are data, handed to
/// workers) is refused by ArmCloud's path builder before any request; and
/// every request the server saw stays under the target resource group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_never_leave_the_target_resource_groups_path() {
    use vmrestore::exec::{CallErrorKind, CloudAction, ResourceSpec};
    use vmrestore::model::Placement;
    let other = "99999999-9999-9999-9999-999999999999";
    let hostile = [
        "rg-finance?api-version=2021-04-01#".to_string(),
        format!("../../../subscriptions/{other}/resourceGroups/rg-other"),
        "rg-finance/providers/Microsoft.Compute/virtualMachines/web01".to_string(),
        "rg%2F..%2Fx".to_string(),
    ];
    let (_dir, repo, restores) = demo_repo();
    let repo = Arc::new(repo);
    let web01 = restore_of(&restores, "web01");

    // 1. Planned in place under Commvault with the overwrite confirmed: refused.
    let catalog = Catalog::builtin();
    let planner = Planner::new(&catalog).unwrap();
    for rg in &hostile {
        let mut rp = web01.restore_point.clone();
        rp.vm.resource_group = Some(rg.clone());
        let mut req = web01.request.clone();
        req.placement = Placement::InPlace;
        req.overwrite_confirmed = true;
        let e = planner
            .plan(&rp, &req, &[Profile::builtin("commvault").unwrap()])
            .expect_err(rg);
        assert_eq!(e.code(), "E_INVALID");
        assert!(
            e.to_string()
                .contains("at $.restore_point.vm.resource_group:"),
            "{e}"
        );
    }

    // 2. ArmCloud itself, called with hostile names: refused, no request.
    let (st, cloud) = serve(false).await;
    for bad in &hostile {
        let e = cloud
            .act(
                "k:delete-vm",
                &CloudAction::DeleteExistingVm {
                    subscription_id: SUB.into(),
                    resource_group: bad.clone(),
                    vm: "web01".into(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind, CallErrorKind::Invalid, "{e}");
        assert!(e.message.contains("cannot be part of an ARM path"), "{e}");
        let specs = [
            (
                "k:rg",
                ResourceSpec::ResourceGroup {
                    subscription_id: SUB.into(),
                    name: bad.clone(),
                    region: "westeurope".into(),
                },
            ),
            (
                "k:pip",
                ResourceSpec::PublicIp {
                    resource_group: "rg-restore".into(),
                    name: bad.clone(),
                    region: "westeurope".into(),
                },
            ),
        ];
        for (key, spec) in &specs {
            let e = cloud.create(key, spec).await.unwrap_err();
            assert_eq!(e.kind, CallErrorKind::Invalid, "{e}");
        }
        // A resource ID is a path already: `a/b` in it is two segments, so
        // only what no segment may hold is refused there.
        if !bad.contains(['?', '#', '%']) && !bad.contains("..") {
            continue;
        }
        let e = cloud
            .delete(&Resource {
                id: format!("/subscriptions/{SUB}/resourceGroups/{bad}"),
                kind: "resource_group".into(),
                name: bad.clone(),
                key: "k".into(),
                existed: false,
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, CallErrorKind::Invalid, "{e}");
    }
    let e = cloud
        .act(
            "k:delete-vm",
            &CloudAction::DeleteExistingVm {
                subscription_id: format!("{SUB}/resourceGroups/rg-other/x/.."),
                resource_group: "rg-prod".into(),
                vm: "web01".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, CallErrorKind::Invalid, "{e}");
    assert!(
        st.lock().unwrap().calls.is_empty(),
        "{:?}",
        st.lock().unwrap().calls
    );

    // 3. A valid plan whose names are edited before it runs: the executor
    // plans again from the plan's inputs and refuses the difference (or the
    // hostile inputs) before the first request; the server sees nothing.
    let plan = plan_for(web01, "azure-backup");
    let t = &plan.target;
    let legit_rg = t.resource_group.clone();
    let os_disk = t.disks[0].name.clone();
    let json = vmrestore::plan::to_json(&plan);
    let edits: Vec<(String, String)> = hostile
        .iter()
        .flat_map(|h| {
            [
                (format!("\"{legit_rg}\""), h.clone()),
                (format!("\"{os_disk}\""), format!("{os_disk}/../../../{h}")),
            ]
        })
        .collect();
    for (from, to) in edits {
        let edited = json.replace(&from, &serde_json::to_string(&to).unwrap());
        assert_ne!(edited, json);
        let plan: Plan = serde_json::from_str(&edited).unwrap();
        let (st, cloud) = serve(false).await;
        let e = run_plan(Arc::new(cloud), repo.clone(), &plan, options(), None)
            .await
            .expect_err(&to);
        assert!(
            ["E_INVALID", "E_PLAN_MISMATCH"].contains(&e.code()),
            "{to}: {e}"
        );
        assert!(
            st.lock().unwrap().calls.is_empty(),
            "{to}: {:?}",
            st.lock().unwrap().calls
        );
    }
}

/// Issue 13: ArmCloud declares what it performs. Every Veeam restore used
/// to fail on ARM after uploading every disk ("boot_fix is not supported");
/// now the plan is refused before the first request, with every step ARM
/// cannot run listed, and a plan made for ARM is blocked (VMR-07).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_with_steps_arm_cannot_run_is_refused_before_any_request() {
    let (st, cloud) = serve(false).await;
    let (_dir, repo, restores) = demo_repo();
    let web01 = restore_of(&restores, "web01");
    let plan = plan_for(web01, "veeam");
    assert!(plan.is_ready(), "{:?}", plan.findings);
    let caps = vmrestore::exec::Cloud::capabilities(&cloud);
    assert_eq!(caps.cloud, "arm");
    let err = run_plan(Arc::new(cloud), Arc::new(repo), &plan, options(), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "E_UNSUPPORTED", "{err}");
    let msg = err.to_string();
    for s in plan
        .steps
        .iter()
        .filter(|s| !caps.step_kinds.contains(&s.kind))
    {
        assert!(msg.contains(&*s.id), "{} not listed: {msg}", s.id);
    }
    assert!(msg.contains("boot_fix"), "{msg}");
    let f = st.lock().unwrap();
    assert!(f.calls.is_empty(), "requests were sent: {:?}", f.calls);

    let for_arm = plan_with(web01, "veeam", &Catalog::builtin(), Some(caps));
    assert!(for_arm.blocking().any(|f| f.rule_id == "VMR-07"
        && f.message.contains("boot_fix")
        && f.message.contains("arm")));
}
