//! The live catalog: regions (subscription locations) and VM sizes
//! (Compute SKUs).

use reqwest::Method;
use serde_json::Value;

use super::{ArmCloud, api, path};
use crate::exec::CallResult;
use crate::model::{Catalog, Region, VmSize};

impl ArmCloud {
    /// What the planner needs to know of the destination.
    pub(super) async fn read_catalog(&self) -> CallResult<Catalog> {
        let op = "read the destination catalog";
        let sub = &self.cfg.subscription_id;
        let locs = self
            .call(
                Method::GET,
                &path::join(&["subscriptions", sub, "locations"])?,
                api::LOCATIONS,
                None,
                op,
            )
            .await?;
        let mut regions = Vec::new();
        for l in locs
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |p: &str| {
                l.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            if s("/metadata/regionType") == "Logical" {
                continue;
            }
            let mut zones: Vec<u8> = l
                .get("availabilityZoneMappings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("logicalZone").and_then(Value::as_str)?.parse().ok())
                .collect();
            zones.sort_unstable();
            regions.push(Region {
                name: s("/name"),
                display_name: s("/displayName"),
                geography: s("/metadata/geographyGroup"),
                zones,
                paired_region: l
                    .pointer("/metadata/pairedRegion/0/name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                access_restricted: false,
                disaster_declared: false,
            });
        }
        let skus = self
            .call(
                Method::GET,
                &path::join(&[
                    "subscriptions",
                    sub,
                    "providers",
                    "Microsoft.Compute",
                    "skus",
                ])?,
                api::SKUS,
                None,
                op,
            )
            .await?;
        let mut vm_sizes: Vec<VmSize> = Vec::new();
        for k in skus
            .get("value")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if k.get("resourceType").and_then(Value::as_str) != Some("virtualMachines") {
                continue;
            }
            let Some(name) = k.get("name").and_then(Value::as_str) else {
                continue;
            };
            if vm_sizes.iter().any(|v| v.name == name) {
                continue;
            }
            let cap = |n: &str| {
                k.get("capabilities")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(n))
                    .and_then(|c| c.get("value").and_then(Value::as_str))
                    .unwrap_or("")
                    .to_string()
            };
            let gens = cap("HyperVGenerations");
            vm_sizes.push(VmSize {
                name: name.to_string(),
                vcpus: cap("vCPUs").parse().unwrap_or(0),
                memory_gib: cap("MemoryGB").parse().unwrap_or(0.0),
                max_data_disks: cap("MaxDataDiskCount").parse().unwrap_or(0),
                gen1: gens.is_empty() || gens.contains("V1"),
                gen2: gens.contains("V2"),
                nvme_only: cap("DiskControllerTypes") == "NVMe",
                premium_storage: cap("PremiumIO") == "True",
            });
        }
        Ok(Catalog {
            regions,
            vm_sizes,
            ..Default::default()
        })
    }
}
