//! The destination catalog: what the planner knows of the target cloud.
//!
//! Passed in as data so that planning stays a pure function. A built-in
//! catalog of real Azure regions and common VM sizes is available through
//! [`Catalog::builtin`].

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::restore_point::{DiskEncryptionSet, KeyVault};

/// What is known of the destination cloud.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Regions.
    pub regions: Vec<Region>,
    /// VM sizes.
    pub vm_sizes: Vec<VmSize>,
    /// Resources that already exist at the destination.
    #[serde(default)]
    pub existing: ExistingResources,
}

/// An Azure region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Programmatic name, e.g. `westeurope`.
    pub name: String,
    /// Display name, e.g. `West Europe`.
    #[serde(default)]
    pub display_name: String,
    /// Geography the region belongs to (data residency boundary).
    pub geography: String,
    /// Availability zones the region offers (empty: none).
    #[serde(default)]
    pub zones: Vec<u8>,
    /// Paired region, if any.
    #[serde(default)]
    pub paired_region: Option<String>,
    /// Access is restricted to customers with a business need.
    #[serde(default)]
    pub access_restricted: bool,
    /// Microsoft has declared a datacenter disaster for this region.
    #[serde(default)]
    pub disaster_declared: bool,
}

/// A VM size and the capabilities restores depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmSize {
    /// Size name, e.g. `Standard_D4s_v5`.
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Maximum number of data disks.
    pub max_data_disks: u32,
    /// Supports Generation 1 VMs.
    #[serde(default = "yes")]
    pub gen1: bool,
    /// Supports Generation 2 VMs.
    #[serde(default)]
    pub gen2: bool,
    /// Offers only NVMe disk controllers (no SCSI).
    #[serde(default)]
    pub nvme_only: bool,
    /// Supports premium storage.
    #[serde(default)]
    pub premium_storage: bool,
}

fn yes() -> bool {
    true
}

/// Resources that exist at the destination.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExistingResources {
    /// Existing VMs.
    #[serde(default)]
    pub vms: Vec<ExistingVm>,
    /// Existing key vaults.
    #[serde(default)]
    pub key_vaults: Vec<KeyVault>,
    /// Existing disk encryption sets.
    #[serde(default)]
    pub disk_encryption_sets: Vec<DiskEncryptionSet>,
}

/// A VM that exists at the destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExistingVm {
    /// Subscription.
    pub subscription_id: String,
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Region.
    #[serde(default)]
    pub region: String,
    /// Uses managed disks.
    #[serde(default = "yes")]
    pub managed: bool,
    /// Has encrypted disks (ADE).
    #[serde(default)]
    pub encrypted: bool,
    /// Generalized (sysprep'd) image VM.
    #[serde(default)]
    pub generalized: bool,
}

impl Catalog {
    /// The built-in catalog: real Azure regions (zones, pairs, geographies)
    /// and common VM sizes, as of late 2026. No existing resources.
    pub fn builtin() -> Catalog {
        static JSON: &str = include_str!("../../data/catalog.json");
        // The file is part of the crate and checked by a unit test, so this
        // cannot fail at run time.
        serde_json::from_str(JSON).unwrap_or_default()
    }

    /// Looks a region up by name.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }
}

/// Hash indexes over a catalog, built once per planner.
#[derive(Debug)]
pub(crate) struct CatalogIndex<'a> {
    pub regions: HashMap<&'a str, &'a Region>,
    pub sizes: HashMap<&'a str, &'a VmSize>,
    /// Sizes by ascending (max data disks, vcpus, name), for "smallest size that fits".
    pub sizes_ordered: Vec<&'a VmSize>,
    pub vms: HashMap<(&'a str, String, String), &'a ExistingVm>,
    pub vaults: std::collections::HashSet<&'a str>,
}

impl<'a> CatalogIndex<'a> {
    pub fn new(c: &'a Catalog) -> Self {
        let mut sizes_ordered: Vec<&VmSize> = c.vm_sizes.iter().collect();
        sizes_ordered.sort_by(|a, b| {
            (a.max_data_disks, a.vcpus, &a.name).cmp(&(b.max_data_disks, b.vcpus, &b.name))
        });
        CatalogIndex {
            regions: c.regions.iter().map(|r| (r.name.as_str(), r)).collect(),
            sizes: c.vm_sizes.iter().map(|s| (s.name.as_str(), s)).collect(),
            sizes_ordered,
            vms: c
                .existing
                .vms
                .iter()
                .map(|v| {
                    (
                        (
                            v.subscription_id.as_str(),
                            v.resource_group.to_ascii_lowercase(),
                            v.name.to_ascii_lowercase(),
                        ),
                        v,
                    )
                })
                .collect(),
            vaults: c
                .existing
                .key_vaults
                .iter()
                .map(|k| k.name.as_str())
                .collect(),
        }
    }

    pub fn existing_vm(&self, sub: &str, rg: &str, name: &str) -> Option<&'a ExistingVm> {
        self.vms
            .get(&(sub, rg.to_ascii_lowercase(), name.to_ascii_lowercase()))
            .copied()
    }
}
