//! Demo backups: a small local repository with deterministic, sparse disks
//! for the quickstart, the tests and the bindings' examples.
//!
//! * `web01`: a Windows VM with two managed disks (Azure VM backup), zonal;
//! * `db01`: a Linux Veeam Agent backup with an LVM volume group on its data disk;
//! * `app01`: a Linux VM encrypted with Azure Disk Encryption (Key Vault).

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::error::{Error, Result};
use crate::model::{RestorePoint, RestoreRequest, from_value};
use crate::repo::{DEFAULT_CHUNK_SIZE, LocalRepository};

/// Subscription of the demo VMs.
pub const SUBSCRIPTION: &str = "11111111-1111-1111-1111-111111111111";
const MIB: u64 = 1 << 20;

/// A demo restore: what to restore and the request to plan it with.
#[derive(Debug, Clone)]
pub struct DemoRestore {
    /// Short name.
    pub name: &'static str,
    /// The restore point (also stored in the repository).
    pub restore_point: RestorePoint,
    /// A request for it.
    pub request: RestoreRequest,
}

fn disk(
    name: &str,
    role: &str,
    size: u64,
    lun: Option<u32>,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut d = json!({"name": name, "role": role, "size_bytes": size, "sku": "standard_ssd"});
    if let Some(l) = lun {
        d["lun"] = json!(l);
    }
    if let (Some(obj), Some(e)) = (d.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            obj.insert(k.clone(), v.clone());
        }
    }
    d
}

/// The demo restore points and requests (without building a repository).
pub fn restores() -> Result<Vec<DemoRestore>> {
    let windows = json!({
        "id": "web01-20261120", "time": "2026-11-20T22:00:00Z", "tier": "vault", "consistency": "application_consistent",
        "backup": {"kind": "azure_vm", "method": "snapshot"},
        "vault": {"region": "westeurope", "redundancy": "grs", "cross_region_restore": true},
        "vm": {"name": "web01", "subscription_id": SUBSCRIPTION, "region": "westeurope", "resource_group": "rg-prod", "zone": 2,
               "os": {"family": "windows", "version": "Windows Server 2022", "authentication": "password"},
               "size": "Standard_D2s_v5", "network_security_group": "web-nsg",
               "nics": [{"name": "web01-nic", "virtual_network": "vnet-prod", "subnet": "web"}],
               "disks": [disk("osdisk", "os", 1024 * MIB, None, json!({"allocated_bytes": 96 * MIB, "partition_table": "mbr", "partition_count": 2, "boot_partition": true, "os_partition": true})),
                         disk("data1", "data", 512 * MIB, Some(0), json!({"allocated_bytes": 48 * MIB}))]}
    });
    let linux = json!({
        "id": "db01-20261120", "time": "2026-11-20T23:00:00Z",
        "backup": {"kind": "veeam_agent", "agent_level": "entire_computer", "repository": "backup_repository", "server_os": "windows"},
        "vm": {"name": "db01", "subscription_id": SUBSCRIPTION, "region": "westeurope",
               "os": {"family": "linux", "version": "22.04", "distribution": "ubuntu", "authentication": "ssh_key"},
               "size": "Standard_D2s_v5", "firmware": "uefi", "generation": "gen2",
               "nics": [{"name": "db01-nic", "virtual_network": "vnet-db", "subnet": "db"}],
               "disks": [disk("sda", "os", 512 * MIB, None, json!({"allocated_bytes": 40 * MIB, "partition_table": "gpt", "partition_count": 3})),
                         disk("sdb", "data", 768 * MIB, Some(0), json!({"allocated_bytes": 64 * MIB, "lvm_volume_groups": [{"name": "vgdata", "size_bytes": 256 * MIB}]}))]}
    });
    let ade = json!({
        "id": "app01-20261120", "time": "2026-11-20T21:00:00Z", "tier": "vault",
        "backup": {"kind": "azure_vm", "method": "streaming"},
        "vm": {"name": "app01", "subscription_id": SUBSCRIPTION, "region": "westeurope", "resource_group": "rg-app",
               "os": {"family": "linux", "version": "9.4", "distribution": "rhel", "cloud_init": true, "authentication": "password"},
               "size": "Standard_D2s_v5",
               "nics": [{"name": "app01-nic", "virtual_network": "vnet-app", "subnet": "app"}],
               "disks": [disk("osdisk", "os", 512 * MIB, None, json!({"allocated_bytes": 32 * MIB, "encryption": {"ade_key_vault": "kv-app01"}})),
                         disk("data1", "data", 256 * MIB, Some(0), json!({"allocated_bytes": 16 * MIB, "encryption": {"ade_key_vault": "kv-app01"}}))]},
        "key_vaults": [{"name": "kv-app01", "region": "westeurope", "subscription_id": SUBSCRIPTION}]
    });
    let req = |region: &str, rg: &str, extra: serde_json::Value| {
        let mut r = json!({"restore_type": "full_vm", "destination": {"subscription_id": SUBSCRIPTION, "region": region, "resource_group": rg}});
        if let (Some(d), Some(e)) = (r["destination"].as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                d.insert(k.clone(), v.clone());
            }
        }
        r
    };
    Ok(vec![
        DemoRestore {
            name: "web01",
            restore_point: from_value(windows)?,
            request: from_value(req("northeurope", "rg-dr", json!({"vm_name": "web01-dr"})))?,
        },
        DemoRestore {
            name: "db01",
            restore_point: from_value(linux)?,
            request: from_value(req("westeurope", "rg-dr", json!({})))?,
        },
        DemoRestore {
            name: "app01",
            restore_point: from_value(ade)?,
            request: from_value(req("northeurope", "rg-dr", json!({})))?,
        },
    ])
}

/// Deterministic content: `allocated` bytes of pseudo-random data spread in
/// 1 MiB extents over a sparse image of `size` bytes.
fn write_image(path: &Path, size: u64, allocated: u64, seed: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let io = |e: std::io::Error| Error::Repository(format!("{}: {e}", path.display()));
    let f = std::fs::File::create(path).map_err(io)?;
    f.set_len(size).map_err(io)?;
    let extents = (allocated / MIB).max(1);
    let slots = size / MIB;
    let mut x = seed | 1;
    let mut block = vec![0u8; MIB as usize];
    for k in 0..extents {
        // Spread extents over the disk, always including the first MiB.
        let slot = if k == 0 { 0 } else { (k * 7919 + seed) % slots };
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all_at(&block, slot * MIB).map_err(io)?;
    }
    f.sync_all().map_err(io)
}

/// Builds the demo repository under `dir/repository` (raw images under
/// `dir/images`, kept for comparisons) and returns the demo restores.
pub fn build(dir: &Path) -> Result<(LocalRepository, Vec<DemoRestore>)> {
    let images = dir.join("images");
    std::fs::create_dir_all(&images)
        .map_err(|e| Error::Repository(format!("{}: {e}", images.display())))?;
    let repo = LocalRepository::create(dir.join("repository"))?;
    let restores = restores()?;
    for (n, r) in restores.iter().enumerate() {
        let mut files = Vec::new();
        for (i, d) in r.restore_point.vm.disks.iter().enumerate() {
            let p = images.join(format!("{}-{}.raw", r.name, d.name));
            write_image(
                &p,
                d.size_bytes,
                d.allocated(),
                (n as u64 + 1) * 1000 + i as u64,
            )?;
            files.push((d.name.clone(), p));
            for vg in &d.lvm_volume_groups {
                let p = images.join(format!("{}-{}-{}.raw", r.name, d.name, vg.name));
                write_image(
                    &p,
                    vg.size_bytes,
                    vg.size_bytes / 8,
                    (n as u64 + 1) * 1000 + 100 + i as u64,
                )?;
                files.push((format!("{}/{}", d.name, vg.name), p));
            }
        }
        let refs: Vec<(&str, &Path)> = files
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_path()))
            .collect();
        repo.import_raw(&r.restore_point, &refs, DEFAULT_CHUNK_SIZE)?;
    }
    let mut readme = std::fs::File::create(dir.join("README.txt"))
        .map_err(|e| Error::Repository(e.to_string()))?;
    let _ = writeln!(
        readme,
        "vmrestore demo: images/ holds the source disks, repository/ the backups made of them."
    );
    Ok((repo, restores))
}

/// Path of a demo disk's raw image (or a volume group's, with `vg`).
pub fn image_path(dir: &Path, vm: &str, disk: &str, vg: Option<&str>) -> std::path::PathBuf {
    match vg {
        Some(vg) => dir.join("images").join(format!("{vm}-{disk}-{vg}.raw")),
        None => dir.join("images").join(format!("{vm}-{disk}.raw")),
    }
}
