//! A deterministic fleet of VMs for the planning benchmarks (shared by the
//! Rust bench and, as JSON, by the binding benches).

use serde_json::{Value, json};

/// A fleet of `n` restores: VMs with 1 to 16 disks, mixed OSes, encryption,
/// zones and profiles. Returns a JSON array of
/// `{"profile": ..., "restore_point": ..., "request": ...}`.
pub fn fleet(n: usize) -> Value {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let profiles = vmrestore::policy::BUILTIN_PROFILES;
    let regions = [
        "westeurope",
        "northeurope",
        "eastus",
        "westus",
        "uksouth",
        "japaneast",
    ];
    let sub = "11111111-1111-1111-1111-111111111111";
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let disks = 1 + (next() % 16) as usize;
        let linux = next() % 2 == 0;
        let region = regions[(next() % regions.len() as u64) as usize];
        let dest = regions[(next() % regions.len() as u64) as usize];
        let ade = next() % 10 == 0;
        let mut ds = Vec::with_capacity(disks);
        for d in 0..disks {
            let size = (16 + next() % 2048) << 30;
            let sku = ["standard_hdd", "standard_ssd", "premium"][(next() % 3) as usize];
            let mut disk = json!({
                "name": if d == 0 { "osdisk".to_string() } else { format!("data{d}") },
                "role": if d == 0 { "os" } else { "data" },
                "size_bytes": size,
                "allocated_bytes": size / 3 / 512 * 512,
                "sku": sku,
            });
            if d > 0 {
                disk["lun"] = json!(d - 1);
            }
            if ade {
                disk["encryption"] = json!({"ade_key_vault": format!("kv-vm{i}")});
            }
            if linux && d == 1 && next() % 4 == 0 {
                disk["lvm_volume_groups"] =
                    json!([{"name": "vg0", "size_bytes": size / 2 / 512 * 512}]);
            }
            ds.push(disk);
        }
        let profile = profiles[i % profiles.len()];
        let agent = profile == "veeam";
        let mut rp = json!({
            "id": format!("rp-{i}"),
            "time": "2026-11-20T22:00:00Z",
            "backup": if agent { json!({"kind": "veeam_agent", "agent_level": "entire_computer"}) } else { json!({"kind": "azure_vm", "method": "snapshot"}) },
            "vault": {"region": region, "cross_region_restore": next() % 2 == 0},
            "vm": {
                "name": format!("vm{i}"),
                "subscription_id": sub,
                "region": region,
                "zone": if next() % 2 == 0 { json!(1 + next() % 3) } else { Value::Null },
                "os": {"family": if linux { "linux" } else { "windows" }, "version": if linux { "22.04" } else { "Windows Server 2022" }, "cloud_init": linux, "authentication": "password"},
                "firmware": if next() % 3 == 0 { "uefi" } else { "bios" },
                "size": "Standard_D16s_v5",
                "nics": [{"name": format!("vm{i}-nic"), "virtual_network": "vnet", "subnet": "default"}],
                "network_security_group": if next() % 2 == 0 { json!(format!("vm{i}-nsg")) } else { Value::Null },
                "tags": {"env": "prod", "owner": "team-a"},
                "disks": ds,
            },
        });
        if ade {
            rp["key_vaults"] =
                json!([{"name": format!("kv-vm{i}"), "region": region, "subscription_id": sub}]);
        }
        out.push(json!({
            "profile": profile,
            "restore_point": rp,
            "request": {"restore_type": "full_vm", "overwrite_confirmed": true,
                        "destination": {"subscription_id": sub, "region": dest, "resource_group": "rg-dr"}},
        }));
    }
    Value::Array(out)
}
