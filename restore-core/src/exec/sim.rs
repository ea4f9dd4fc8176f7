//! `SimCloud`: an in-memory Azure for tests, dry runs and policy authors.
//!
//! It enforces what Azure enforces on the restore path: naming rules and
//! uniqueness, disk size limits, page writes 512-byte aligned and at most
//! 4 MiB, write access open before writes, quotas. It can add latency per
//! operation, long-running-operation durations, a write rate limit, and
//! faults (429 with Retry-After, 5xx, timeouts) with a probability. Faults
//! are decided by a hash of (seed, operation, key, attempt), so a run is
//! deterministic for a seed whatever the interleaving of concurrent calls.
//! [`SimCloud::dump`] gives the state for tests to assert on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use super::cloud::*;
use crate::model::{Catalog, ExistingVm};

/// Largest Put Page Azure accepts.
pub const MAX_PAGE_WRITE: usize = 4 << 20;

/// Fault injection settings.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Probability (0..1) that a control-plane call fails transiently.
    pub control: f64,
    /// Probability (0..1) that a page write fails transiently.
    pub data: f64,
    /// Seed.
    pub seed: u64,
    /// Retry-After sent with throttling errors.
    pub retry_after: Duration,
    /// Operations (by name: `create`, `act`, `delete`, `write`, `open_disk`,
    /// `close_disk`) that always fail, to test runs that cannot complete.
    pub always_fail: Vec<String>,
}

/// Configuration of a [`SimCloud`].
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The catalog it serves (and checks regions against).
    pub catalog: Catalog,
    /// Latency of every control-plane call.
    pub latency: Duration,
    /// Latency per operation (`catalog`, `create`, `delete`, `act`,
    /// `open_disk`, `close_disk`), overriding `latency`.
    pub op_latency: std::collections::HashMap<String, Duration>,
    /// Extra duration of long-running operations (VM, disk creates).
    pub lro: Duration,
    /// Latency of each page write.
    pub write_latency: Duration,
    /// Write rate limit in bytes per second (None: unlimited).
    pub write_rate: Option<u64>,
    /// Faults.
    pub faults: Faults,
    /// Most VMs that can exist.
    pub max_vms: usize,
    /// Most disks that can exist.
    pub max_disks: usize,
    /// VMs that exist before the run (for in-place restores).
    pub existing_vms: Vec<ExistingVm>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            catalog: Catalog::builtin(),
            latency: Duration::ZERO,
            op_latency: Default::default(),
            lro: Duration::ZERO,
            write_latency: Duration::ZERO,
            write_rate: None,
            faults: Faults::default(),
            max_vms: 1000,
            max_disks: 10_000,
            existing_vms: Vec::new(),
        }
    }
}

/// A resource as SimCloud holds it.
#[derive(Debug, Clone, Serialize)]
pub struct SimResource {
    /// The resource.
    pub resource: Resource,
    /// The spec it was created from.
    pub spec: ResourceSpec,
}

#[derive(Debug, Default)]
struct SimDisk {
    size: u64,
    open: bool,
    closed_once: bool,
    /// Written pages by offset (each a multiple of 512 bytes).
    pages: BTreeMap<u64, Bytes>,
    bytes_written: u64,
    writes: u64,
}

#[derive(Debug, Default)]
struct State {
    resources: BTreeMap<String, SimResource>,
    by_key: HashMap<String, String>,
    disks: HashMap<String, SimDisk>,
    actions: Vec<(String, Action)>,
    existing: Vec<ExistingVm>,
    powered_on: Vec<String>,
    attempts: HashMap<String, u64>,
    calls: u64,
    faults_injected: u64,
    creates: u64,
    /// Token bucket for the write rate limit: when the bucket is next empty.
    write_free_at: Option<tokio::time::Instant>,
}

/// The simulated cloud. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SimCloud {
    cfg: Arc<SimConfig>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCloud").finish_non_exhaustive()
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn hash_str(seed: u64, s: &str) -> u64 {
    s.bytes().fold(mix(seed), |h, b| mix(h ^ u64::from(b)))
}

impl SimCloud {
    /// A simulated cloud.
    pub fn new(cfg: SimConfig) -> Self {
        let existing = cfg.existing_vms.clone();
        SimCloud {
            cfg: Arc::new(cfg),
            state: Arc::new(Mutex::new(State {
                existing,
                ..Default::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed
        // in a way later calls rely on, so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides, deterministically, whether this attempt of `op` on `key` fails.
    fn fault(&self, op: &str, key: &str, p: f64) -> Option<CloudError> {
        let name = format!("{op} {key}");
        let mut st = self.lock();
        st.calls += 1;
        if self.cfg.faults.always_fail.iter().any(|o| o == op) {
            st.faults_injected += 1;
            return Some(CloudError::new(
                CloudErrorKind::Unavailable,
                name,
                "injected persistent failure (503)",
            ));
        }
        if p <= 0.0 {
            return None;
        }
        let attempt = {
            let a = st.attempts.entry(name.clone()).or_insert(0);
            *a += 1;
            *a
        };
        let h = mix(hash_str(self.cfg.faults.seed, &name) ^ attempt);
        if (h as f64 / u64::MAX as f64) >= p {
            return None;
        }
        st.faults_injected += 1;
        Some(match h % 4 {
            0 => CloudError::new(
                CloudErrorKind::Throttled,
                name,
                "injected 429 Too Many Requests",
            )
            .retry_after(self.cfg.faults.retry_after),
            1 => CloudError::new(
                CloudErrorKind::Unavailable,
                name,
                "injected 503 Service Unavailable",
            ),
            2 => CloudError::new(CloudErrorKind::Timeout, name, "injected timeout"),
            _ => CloudError::new(
                CloudErrorKind::Unavailable,
                name,
                "injected connection reset (the connection dropped)",
            ),
        })
    }

    fn latency(&self, op: &str) -> Duration {
        self.cfg
            .op_latency
            .get(op)
            .copied()
            .unwrap_or(self.cfg.latency)
    }

    async fn delay(&self, d: Duration) {
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    /// Faults injected so far.
    pub fn faults_injected(&self) -> u64 {
        self.lock().faults_injected
    }

    /// Creates that made a new resource (not those that found one by key).
    pub fn creates(&self) -> u64 {
        self.lock().creates
    }

    /// A disk's bytes as written (zeros where nothing was), `size` long.
    pub fn disk_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let st = self.lock();
        let id = st
            .resources
            .values()
            .find(|r| r.resource.kind == "disk" && r.resource.name == name)?
            .resource
            .id
            .clone();
        let d = st.disks.get(&id)?;
        let mut out = vec![0u8; d.size as usize];
        for (off, data) in &d.pages {
            let end = (*off as usize + data.len()).min(out.len());
            out[*off as usize..end].copy_from_slice(&data[..end - *off as usize]);
        }
        Some(out)
    }

    /// Bytes and write calls a disk received.
    pub fn disk_writes(&self, name: &str) -> Option<(u64, u64)> {
        let st = self.lock();
        let id = st
            .resources
            .values()
            .find(|r| r.resource.kind == "disk" && r.resource.name == name)?
            .resource
            .id
            .clone();
        st.disks.get(&id).map(|d| (d.bytes_written, d.writes))
    }

    /// The state: resources (sorted by ID), actions in order, existing VMs,
    /// VMs powered on, counters. Tests assert on it.
    pub fn dump(&self) -> serde_json::Value {
        let st = self.lock();
        let mut disks: Vec<serde_json::Value> = st
            .disks
            .iter()
            .map(|(id, d)| serde_json::json!({"id": id, "size": d.size, "open": d.open, "closed": d.closed_once, "bytes_written": d.bytes_written, "writes": d.writes}))
            .collect();
        disks.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        serde_json::json!({
            "resources": st.resources.values().map(|r| serde_json::to_value(r).unwrap_or_default()).collect::<Vec<_>>(),
            "disks": disks,
            "actions": st.actions.iter().map(|(k, a)| serde_json::json!({"key": k, "action": a})).collect::<Vec<_>>(),
            "existing_vms": st.existing.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
            "powered_on": st.powered_on.clone(),
            "calls": st.calls,
            "faults_injected": st.faults_injected,
        })
    }

    /// Resources of a kind, by name.
    pub fn names(&self, kind: &str) -> Vec<String> {
        self.lock()
            .resources
            .values()
            .filter(|r| r.resource.kind == kind)
            .map(|r| r.resource.name.clone())
            .collect()
    }

    fn check_name(spec: &ResourceSpec) -> CloudResult<()> {
        let name = spec.name();
        let op = format!("create {} '{name}'", spec.kind());
        let ok = match spec {
            ResourceSpec::StorageAccount { .. } => {
                (3..=24).contains(&name.len())
                    && name
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            }
            ResourceSpec::KeyVault { .. } => {
                (3..=24).contains(&name.len())
                    && name.as_bytes()[0].is_ascii_alphabetic()
                    && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                    && !name.contains("--")
            }
            ResourceSpec::VirtualMachine { .. } => crate::model::is_resource_name(name, 64),
            ResourceSpec::ResourceGroup { .. } => {
                !name.is_empty() && name.len() <= 90 && !name.ends_with('.')
            }
            _ => crate::model::is_resource_name(name, 80),
        };
        if ok {
            Ok(())
        } else {
            Err(CloudError::new(
                CloudErrorKind::Invalid,
                op,
                format!("'{name}' is not a valid {} name", spec.kind()),
            ))
        }
    }

    fn region_ok(&self, op: &str, region: &str) -> CloudResult<()> {
        if self.cfg.catalog.region(region).is_some() {
            Ok(())
        } else {
            Err(CloudError::new(
                CloudErrorKind::Invalid,
                op,
                format!("location '{region}' is not available"),
            ))
        }
    }
    fn create_locked(
        &self,
        key: &str,
        spec: &ResourceSpec,
        op: &str,
    ) -> CloudResult<(Resource, bool)> {
        let op = op.to_string();
        {
            let mut st = self.lock();
            if let Some(id) = st.by_key.get(key)
                && let Some(r) = st.resources.get(id)
            {
                if r.spec == *spec {
                    return Ok((r.resource.clone(), false));
                }
                return Err(CloudError::new(
                    CloudErrorKind::Conflict,
                    op,
                    format!(
                        "step '{key}' already created a different {}",
                        r.resource.kind
                    ),
                ));
            }
            let id = resource_id(spec);
            // Globally unique names (storage accounts, key vaults) and names
            // unique within a resource group.
            let global = matches!(
                spec,
                ResourceSpec::StorageAccount { .. } | ResourceSpec::KeyVault { .. }
            );
            let taken = st.resources.values().any(|r| {
                if global {
                    r.resource.kind == spec.kind() && r.resource.name == spec.name()
                } else {
                    r.resource.id.eq_ignore_ascii_case(&id)
                }
            });
            let existing_vm = matches!(spec, ResourceSpec::VirtualMachine { .. })
                && st
                    .existing
                    .iter()
                    .any(|v| v.name.eq_ignore_ascii_case(spec.name()));
            if taken && matches!(spec, ResourceSpec::ResourceGroup { .. }) {
                let r = st.resources.get(&id).map(|r| Resource {
                    existed: true,
                    key: key.into(),
                    ..r.resource.clone()
                });
                if let Some(r) = r {
                    return Ok((r, false));
                }
            }
            if taken || existing_vm {
                return Err(CloudError::new(
                    CloudErrorKind::Conflict,
                    op,
                    format!("the name '{}' is already in use", spec.name()),
                ));
            }
            match spec {
                ResourceSpec::Disk { size_bytes, .. } => {
                    if *size_bytes == 0 || *size_bytes % (1 << 20) != 0 || *size_bytes > 32 << 40 {
                        return Err(CloudError::new(
                            CloudErrorKind::Invalid,
                            op,
                            format!(
                                "disk size {size_bytes} must be a whole number of MiB up to 32 TiB"
                            ),
                        ));
                    }
                    if st.disks.len() >= self.cfg.max_disks {
                        return Err(CloudError::new(
                            CloudErrorKind::QuotaExceeded,
                            op,
                            format!("quota of {} disks reached", self.cfg.max_disks),
                        ));
                    }
                    st.disks.insert(
                        id.clone(),
                        SimDisk {
                            size: *size_bytes,
                            ..Default::default()
                        },
                    );
                }
                ResourceSpec::VirtualMachine {
                    os_disk,
                    data_disks,
                    ..
                } => {
                    let vms = st
                        .resources
                        .values()
                        .filter(|r| r.resource.kind == "virtual_machine")
                        .count();
                    if vms >= self.cfg.max_vms {
                        return Err(CloudError::new(
                            CloudErrorKind::QuotaExceeded,
                            op,
                            format!("quota of {} VMs reached", self.cfg.max_vms),
                        ));
                    }
                    for d in std::iter::once(os_disk).chain(data_disks.iter().map(|(_, d)| d)) {
                        let disk = st
                            .resources
                            .values()
                            .find(|r| r.resource.kind == "disk" && &r.resource.name == d)
                            .map(|r| r.resource.id.clone());
                        match disk.and_then(|id| st.disks.get(&id)) {
                            None => {
                                return Err(CloudError::new(
                                    CloudErrorKind::NotFound,
                                    op,
                                    format!("disk '{d}' does not exist"),
                                ));
                            }
                            Some(sd) if sd.open || !sd.closed_once => {
                                return Err(CloudError::new(
                                    CloudErrorKind::Conflict,
                                    op,
                                    format!(
                                        "disk '{d}' is still open for upload (endGetAccess first)"
                                    ),
                                ));
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => {}
            }
            let resource = Resource {
                id: id.clone(),
                kind: spec.kind().into(),
                name: spec.name().into(),
                key: key.into(),
                existed: false,
            };
            st.by_key.insert(key.into(), id.clone());
            st.resources.insert(
                id,
                SimResource {
                    resource: resource.clone(),
                    spec: spec.clone(),
                },
            );
            st.creates += 1;
            Ok((resource, true))
        }
    }
}

fn resource_id(spec: &ResourceSpec) -> String {
    let rg = match spec {
        ResourceSpec::ResourceGroup { name, .. } => return format!("/resourceGroups/{name}"),
        ResourceSpec::KeyVault { resource_group, .. }
        | ResourceSpec::StorageAccount { resource_group, .. }
        | ResourceSpec::HelperAppliance { resource_group, .. }
        | ResourceSpec::Snapshot { resource_group, .. }
        | ResourceSpec::Disk { resource_group, .. }
        | ResourceSpec::NetworkSecurityGroup { resource_group, .. }
        | ResourceSpec::PublicIp { resource_group, .. }
        | ResourceSpec::NetworkInterface { resource_group, .. }
        | ResourceSpec::VirtualMachine { resource_group, .. } => resource_group,
    };
    format!("/resourceGroups/{rg}/{}/{}", spec.kind(), spec.name())
}

#[async_trait]
impl Cloud for SimCloud {
    async fn catalog(&self) -> CloudResult<Catalog> {
        self.delay(self.latency("catalog")).await;
        Ok(self.cfg.catalog.clone())
    }

    async fn create(&self, key: &str, spec: &ResourceSpec) -> CloudResult<Resource> {
        self.delay(self.latency("create")).await;
        if let Some(e) = self.fault("create", key, self.cfg.faults.control) {
            return Err(e);
        }
        let op = format!("create {} '{}'", spec.kind(), spec.name());
        Self::check_name(spec)?;
        match spec {
            ResourceSpec::ResourceGroup { region, .. }
            | ResourceSpec::KeyVault { region, .. }
            | ResourceSpec::StorageAccount { region, .. }
            | ResourceSpec::Disk { region, .. }
            | ResourceSpec::VirtualMachine { region, .. } => self.region_ok(&op, region)?,
            _ => {}
        }
        let lro = matches!(
            spec,
            ResourceSpec::VirtualMachine { .. }
                | ResourceSpec::Disk { .. }
                | ResourceSpec::StorageAccount { .. }
        );
        let (resource, new) = self.create_locked(key, spec, &op)?;
        if lro && new {
            self.delay(self.cfg.lro).await;
        }
        Ok(resource)
    }

    async fn delete(&self, resource: &Resource) -> CloudResult<()> {
        self.delay(self.latency("delete")).await;
        if let Some(e) = self.fault("delete", &resource.key, self.cfg.faults.control) {
            return Err(e);
        }
        let mut st = self.lock();
        st.resources.remove(&resource.id);
        st.disks.remove(&resource.id);
        st.by_key.retain(|_, v| v != &resource.id);
        st.powered_on
            .retain(|v| v != &resource.name || resource.kind != "virtual_machine");
        Ok(())
    }

    async fn act(&self, key: &str, action: &Action) -> CloudResult<()> {
        self.delay(self.latency("act")).await;
        if let Some(e) = self.fault("act", key, self.cfg.faults.control) {
            return Err(e);
        }
        let mut st = self.lock();
        if st.actions.iter().any(|(k, a)| k == key && a == action) {
            return Ok(());
        }
        match action {
            Action::DeleteExistingVm { vm, .. } => {
                st.existing.retain(|v| !v.name.eq_ignore_ascii_case(vm));
            }
            Action::PowerOn { vm, .. } => {
                if !st
                    .resources
                    .values()
                    .any(|r| r.resource.kind == "virtual_machine" && &r.resource.name == vm)
                {
                    return Err(CloudError::new(
                        CloudErrorKind::NotFound,
                        format!("power on '{vm}'"),
                        "the VM does not exist",
                    ));
                }
                st.powered_on.push(vm.clone());
            }
            _ => {}
        }
        st.actions.push((key.into(), action.clone()));
        Ok(())
    }

    async fn open_disk(&self, disk: &Resource) -> CloudResult<Box<dyn DiskWriter>> {
        self.with_disk("open_disk", disk, |d| d.open = true).await?;
        Ok(Box::new(SimDiskWriter {
            cloud: self.clone(),
            id: disk.id.clone(),
            name: disk.name.clone(),
        }))
    }

    async fn close_disk(&self, disk: &Resource) -> CloudResult<()> {
        self.with_disk("close_disk", disk, |d| {
            d.open = false;
            d.closed_once = true;
        })
        .await
    }
}

impl SimCloud {
    /// A control-plane call on a disk's upload state: latency, faults,
    /// then `f` on the disk.
    async fn with_disk(
        &self,
        op: &str,
        disk: &Resource,
        f: impl FnOnce(&mut SimDisk),
    ) -> CloudResult<()> {
        self.delay(self.latency(op)).await;
        if let Some(e) = self.fault(op, &disk.key, self.cfg.faults.control) {
            return Err(e);
        }
        let mut st = self.lock();
        let d = st.disks.get_mut(&disk.id).ok_or_else(|| {
            CloudError::new(
                CloudErrorKind::NotFound,
                format!("{op} '{}'", disk.name),
                "no such disk",
            )
        })?;
        f(d);
        Ok(())
    }
}

struct SimDiskWriter {
    cloud: SimCloud,
    id: String,
    name: String,
}

#[async_trait]
impl DiskWriter for SimDiskWriter {
    async fn write_at(&self, offset: u64, data: Bytes) -> CloudResult<()> {
        let op = format!("put page '{}' at {offset}", self.name);
        if !offset.is_multiple_of(512) || !data.len().is_multiple_of(512) {
            return Err(CloudError::new(
                CloudErrorKind::Invalid,
                op,
                "pages must be 512-byte aligned",
            ));
        }
        let mut pos = 0usize;
        // Azure takes at most 4 MiB per Put Page.
        while pos < data.len() {
            let len = (data.len() - pos).min(MAX_PAGE_WRITE);
            let piece = data.slice(pos..pos + len);
            let at = offset + pos as u64;
            self.cloud.delay(self.cloud.cfg.write_latency).await;
            if let Some(rate) = self.cloud.cfg.write_rate {
                let wait = {
                    let mut st = self.cloud.lock();
                    let now = tokio::time::Instant::now();
                    let free = st.write_free_at.map_or(now, |t| t.max(now));
                    let next = free + Duration::from_secs_f64(len as f64 / rate as f64);
                    st.write_free_at = Some(next);
                    free.saturating_duration_since(now)
                };
                self.cloud.delay(wait).await;
            }
            if let Some(e) = self.cloud.fault(
                "write",
                &format!("{}@{at}", self.id),
                self.cloud.cfg.faults.data,
            ) {
                return Err(e);
            }
            let mut st = self.cloud.lock();
            let d = st.disks.get_mut(&self.id).ok_or_else(|| {
                CloudError::new(CloudErrorKind::NotFound, op.clone(), "the disk was deleted")
            })?;
            if !d.open {
                return Err(CloudError::new(
                    CloudErrorKind::Conflict,
                    op.clone(),
                    "write access is not open (beginGetAccess first)",
                ));
            }
            if at + len as u64 > d.size {
                return Err(CloudError::new(
                    CloudErrorKind::Invalid,
                    op.clone(),
                    format!("write past the end of the {}-byte disk", d.size),
                ));
            }
            d.pages.insert(at, piece);
            d.bytes_written += len as u64;
            d.writes += 1;
            pos += len;
        }
        Ok(())
    }

    async fn finish(&self, _digest: &str) -> CloudResult<()> {
        Ok(())
    }
}
