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
//!
//! [`SimCloud::persistent`] keeps the state in a directory instead, so that
//! it outlives the process: a restore killed mid-run (SIGKILL) and resumed
//! by another process meets the cloud it left. The directory holds
//! `state.json` (resources, upload states, actions; replaced atomically
//! after every change), one sparse image per disk under `disks/`, and two
//! append-only logs: `creates.log` (a line per resource made, with its step
//! key) and `writes.log` (a line per page write: disk, offset, length),
//! from which tests count what was done twice.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::*;
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
    /// `close_disk`) that always fail, to test runs that cannot complete;
    /// `step:<step id>` fails every create or action of that plan step.
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
    /// Time between a page landing and the caller hearing of it (the
    /// response in transit): a crash within it leaves pages written that
    /// the caller never knew of, as on a real network.
    pub write_ack_latency: Duration,
    /// Write rate limit in bytes per second (None: unlimited).
    pub write_rate: Option<u64>,
    /// ARM's request limits for the subscription (None: unlimited): a write
    /// (create, action, disk upload access) or delete that finds its bucket
    /// empty gets 429 with the Retry-After of the next token.
    pub arm_limits: Option<super::ArmLimits>,
    /// Keep the bytes of page writes (default). Off, writes are checked and
    /// counted but their bytes dropped: for fleet-scale runs.
    pub keep_pages: bool,
    /// Faults.
    pub faults: Faults,
    /// What it declares it can perform (default: every step kind). Give it
    /// [`crate::azure::ArmCloud::declared_capabilities`] to try a plan as
    /// ArmCloud would take it.
    pub capabilities: crate::plan::Capabilities,
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
            write_ack_latency: Duration::ZERO,
            write_rate: None,
            arm_limits: None,
            keep_pages: true,
            faults: Faults::default(),
            capabilities: crate::plan::Capabilities::all("sim"),
            max_vms: 1000,
            max_disks: 10_000,
            existing_vms: Vec::new(),
        }
    }
}

/// A resource as SimCloud holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimResource {
    /// The resource.
    pub resource: Resource,
    /// The spec it was created from.
    pub spec: ResourceSpec,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SimDisk {
    size: u64,
    open: bool,
    closed_once: bool,
    /// Written pages by offset (each a multiple of 512 bytes); in a
    /// persistent cloud they are in the disk's image file instead.
    #[serde(skip)]
    pages: BTreeMap<u64, Bytes>,
    #[serde(skip)]
    bytes_written: u64,
    #[serde(skip)]
    writes: u64,
}

/// What a persistent cloud saves in `state.json`.
#[derive(Serialize, Deserialize)]
struct Saved {
    resources: BTreeMap<String, SimResource>,
    by_key: HashMap<String, String>,
    disks: HashMap<String, SimDisk>,
    actions: Vec<(String, CloudAction)>,
    existing: Vec<ExistingVm>,
    #[serde(default)]
    deleted_existing: Vec<ExistingVm>,
    powered_on: Vec<String>,
    creates: u64,
}

/// A line of `writes.log`.
#[derive(Serialize, Deserialize)]
struct WriteLine {
    disk: String,
    offset: u64,
    len: u64,
}

#[derive(Debug, Default)]
struct State {
    resources: BTreeMap<String, SimResource>,
    by_key: HashMap<String, String>,
    disks: HashMap<String, SimDisk>,
    actions: Vec<(String, CloudAction)>,
    existing: Vec<ExistingVm>,
    /// Existing VMs deleted in place (their disks kept), so that they can be
    /// put back (`RestoreExistingVm`).
    deleted_existing: Vec<ExistingVm>,
    powered_on: Vec<String>,
    attempts: HashMap<String, u64>,
    calls: u64,
    faults_injected: u64,
    creates: u64,
    /// ARM writes and deletes admitted, and those throttled (429).
    arm_requests: u64,
    throttled: u64,
    /// Token bucket for the write rate limit: when the bucket is next empty.
    write_free_at: Option<tokio::time::Instant>,
}

/// The simulated cloud. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SimCloud {
    cfg: Arc<SimConfig>,
    state: Arc<Mutex<State>>,
    /// ARM's write and delete buckets, when limited.
    buckets: Option<Arc<(super::TokenBucket, super::TokenBucket)>>,
    /// The directory of a persistent cloud.
    dir: Option<Arc<PathBuf>>,
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
            dir: None,
            buckets: None,
        }
        .with_buckets()
    }

    fn with_buckets(mut self) -> Self {
        self.buckets = self.cfg.arm_limits.map(|l| {
            Arc::new((
                super::TokenBucket::new(l.writes.0, l.writes.1),
                super::TokenBucket::new(l.deletes.0, l.deletes.1),
            ))
        });
        self
    }

    /// ARM's throttling: a write (or delete) takes a token from its bucket
    /// or is refused with 429 and the Retry-After of the next token.
    fn throttle(&self, op: &str, key: &str, delete: bool) -> CallResult<()> {
        let Some(b) = &self.buckets else {
            return Ok(());
        };
        let bucket = if delete { &b.1 } else { &b.0 };
        let r = bucket.try_take();
        let mut st = self.lock();
        match r {
            Ok(()) => {
                st.arm_requests += 1;
                Ok(())
            }
            Err(wait) => {
                st.throttled += 1;
                Err(CallError::new(
                    CallErrorKind::Throttled,
                    format!("{op} {key}"),
                    "429 Too Many Requests (subscription write limit)",
                )
                .retry_after(wait))
            }
        }
    }

    /// ARM writes and deletes admitted, and requests throttled with 429.
    pub fn arm_requests(&self) -> (u64, u64) {
        let st = self.lock();
        (st.arm_requests, st.throttled)
    }

    /// A simulated cloud whose state lives in `dir` (created if missing):
    /// opening a directory an earlier process used gives the cloud it left,
    /// so a killed run can be resumed against it. `cfg.existing_vms` seeds
    /// a new directory only. An unreadable or foreign `state.json` is an
    /// error; nothing in the directory is changed then.
    pub fn persistent(cfg: SimConfig, dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join("disks"))?;
        let mut st = State {
            existing: cfg.existing_vms.clone(),
            ..Default::default()
        };
        let state_path = dir.join("state.json");
        if state_path.exists() {
            let text = std::fs::read_to_string(&state_path)?;
            let saved: Saved = serde_json::from_str(&text).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", state_path.display()),
                )
            })?;
            st.resources = saved.resources;
            st.by_key = saved.by_key;
            st.disks = saved.disks;
            st.actions = saved.actions;
            st.existing = saved.existing;
            st.deleted_existing = saved.deleted_existing;
            st.powered_on = saved.powered_on;
            st.creates = saved.creates;
            // Counters come from the write log (a torn last line is ignored).
            if let Ok(log) = std::fs::read_to_string(dir.join("writes.log")) {
                for line in log.lines() {
                    let Ok(w) = serde_json::from_str::<WriteLine>(line) else {
                        break;
                    };
                    if let Some(d) = st.disks.get_mut(&w.disk) {
                        d.bytes_written += w.len;
                        d.writes += 1;
                    }
                }
            }
        }
        let cloud = SimCloud {
            cfg: Arc::new(cfg),
            state: Arc::new(Mutex::new(st)),
            dir: Some(Arc::new(dir)),
            buckets: None,
        }
        .with_buckets();
        if !state_path.exists() {
            cloud.save(&cloud.lock()).map_err(std::io::Error::other)?;
        }
        Ok(cloud)
    }

    /// The image file of a disk (by resource ID) in a persistent cloud.
    fn image_path(dir: &Path, id: &str) -> PathBuf {
        let name: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        dir.join("disks").join(format!("{name}.img"))
    }

    /// Saves the state of a persistent cloud (a no-op for an in-memory one):
    /// written to a temporary file and renamed, so a kill leaves either the
    /// old state or the new one.
    fn save(&self, st: &State) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let saved = serde_json::json!({
            "resources": st.resources,
            "by_key": st.by_key,
            "disks": st.disks,
            "actions": st.actions,
            "existing": st.existing,
            "deleted_existing": st.deleted_existing,
            "powered_on": st.powered_on,
            "creates": st.creates,
        });
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, saved.to_string())
            .and_then(|_| std::fs::rename(&tmp, dir.join("state.json")))
            .map_err(|e| format!("saving the simulated cloud's state: {e}"))
    }

    fn saved(&self, op: &str, st: &State) -> CallResult<()> {
        self.save(st)
            .map_err(|e| CallError::new(CallErrorKind::Fatal, op, e))
    }

    fn append_log(&self, file: &str, line: &impl Serialize) -> CallResult<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let text = format!("{}\n", serde_json::to_string(line).unwrap_or_default());
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(file))
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| {
                CallError::new(
                    CallErrorKind::Fatal,
                    format!("append to {file}"),
                    e.to_string(),
                )
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed
        // in a way later calls rely on, so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides, deterministically, whether this attempt of `op` on `key` fails.
    fn fault(&self, op: &str, key: &str, p: f64) -> Option<CallError> {
        let name = format!("{op} {key}");
        let mut st = self.lock();
        st.calls += 1;
        let step = key.split_once(':').map(|(_, s)| s);
        if self.cfg.faults.always_fail.iter().any(|o| {
            o == op || (o.strip_prefix("step:").is_some() && o.strip_prefix("step:") == step)
        }) {
            st.faults_injected += 1;
            return Some(CallError::new(
                CallErrorKind::Unavailable,
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
            0 => CallError::new(
                CallErrorKind::Throttled,
                name,
                "injected 429 Too Many Requests",
            )
            .retry_after(self.cfg.faults.retry_after),
            1 => CallError::new(
                CallErrorKind::Unavailable,
                name,
                "injected 503 Service Unavailable",
            ),
            2 => CallError::new(CallErrorKind::Timeout, name, "injected timeout"),
            _ => CallError::new(
                CallErrorKind::Unavailable,
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
        if let Some(dir) = &self.dir {
            let mut f = match std::fs::File::open(Self::image_path(dir, &id)) {
                Ok(f) => f,
                // Nothing written yet.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(out),
                Err(_) => return None,
            };
            let len = f.metadata().ok()?.len().min(d.size) as usize;
            f.read_exact(&mut out[..len]).ok()?;
            return Some(out);
        }
        for (off, data) in &d.pages {
            let end = (*off as usize + data.len()).min(out.len());
            out[*off as usize..end].copy_from_slice(&data[..end - *off as usize]);
        }
        Some(out)
    }

    /// `len` bytes at `offset` of disk `id` as written (None when the
    /// bytes are not kept).
    fn read_disk(&self, id: &str, offset: u64, len: usize) -> Option<Vec<u8>> {
        if !self.cfg.keep_pages {
            return None;
        }
        let st = self.lock();
        let d = st.disks.get(id)?;
        let end = offset.checked_add(len as u64).filter(|e| *e <= d.size)?;
        let mut out = vec![0u8; len];
        if let Some(dir) = &self.dir {
            use std::os::unix::fs::FileExt;
            let f = match std::fs::File::open(Self::image_path(dir, id)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(out),
                Err(_) => return None,
            };
            let mut done = 0;
            while done < len {
                match f.read_at(&mut out[done..], offset + done as u64).ok()? {
                    0 => break,
                    n => done += n,
                }
            }
            return Some(out);
        }
        for (off, data) in d.pages.range(..end) {
            let (p0, p1) = (*off, *off + data.len() as u64);
            if p1 <= offset {
                continue;
            }
            let (a, b) = (p0.max(offset), p1.min(end));
            out[(a - offset) as usize..(b - offset) as usize]
                .copy_from_slice(&data[(a - p0) as usize..(b - p0) as usize]);
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
            "arm_requests": st.arm_requests,
            "throttled": st.throttled,
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

    fn check_name(spec: &ResourceSpec) -> CallResult<()> {
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
            Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("'{name}' is not a valid {} name", spec.kind()),
            ))
        }
    }

    fn region_ok(&self, op: &str, region: &str) -> CallResult<()> {
        if self.cfg.catalog.region(region).is_some() {
            Ok(())
        } else {
            Err(CallError::new(
                CallErrorKind::Invalid,
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
    ) -> CallResult<(Resource, bool)> {
        let op = op.to_string();
        {
            let mut st = self.lock();
            if let Some(id) = st.by_key.get(key)
                && let Some(r) = st.resources.get(id)
            {
                if r.spec == *spec {
                    return Ok((r.resource.clone(), false));
                }
                return Err(CallError::new(
                    CallErrorKind::Conflict,
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
            // Resource groups and the region's helper appliance are shared:
            // a restore that finds one uses it (and leaves it at clean-up).
            if taken
                && matches!(
                    spec,
                    ResourceSpec::ResourceGroup { .. } | ResourceSpec::HelperAppliance { .. }
                )
            {
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
                return Err(CallError::new(
                    CallErrorKind::Conflict,
                    op,
                    format!("the name '{}' is already in use", spec.name()),
                ));
            }
            match spec {
                ResourceSpec::Disk { size_bytes, .. } => {
                    if *size_bytes == 0 || *size_bytes % (1 << 20) != 0 || *size_bytes > 32 << 40 {
                        return Err(CallError::new(
                            CallErrorKind::Invalid,
                            op,
                            format!(
                                "disk size {size_bytes} must be a whole number of MiB up to 32 TiB"
                            ),
                        ));
                    }
                    if st.disks.len() >= self.cfg.max_disks {
                        return Err(CallError::new(
                            CallErrorKind::QuotaExceeded,
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
                        return Err(CallError::new(
                            CallErrorKind::QuotaExceeded,
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
                                return Err(CallError::new(
                                    CallErrorKind::NotFound,
                                    op,
                                    format!("disk '{d}' does not exist"),
                                ));
                            }
                            Some(sd) if sd.open || !sd.closed_once => {
                                return Err(CallError::new(
                                    CallErrorKind::Conflict,
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
            self.saved(&op, &st)?;
            self.append_log(
                "creates.log",
                &serde_json::json!({"key": key, "id": resource.id}),
            )?;
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
    fn capabilities(&self) -> crate::plan::Capabilities {
        self.cfg.capabilities.clone()
    }

    async fn catalog(&self) -> CallResult<Catalog> {
        self.delay(self.latency("catalog")).await;
        Ok(self.cfg.catalog.clone())
    }

    async fn create(&self, key: &str, spec: &ResourceSpec) -> CallResult<Resource> {
        self.throttle("create", key, false)?;
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

    async fn delete(&self, resource: &Resource) -> CallResult<()> {
        self.throttle("delete", &resource.key, true)?;
        self.delay(self.latency("delete")).await;
        if let Some(e) = self.fault("delete", &resource.key, self.cfg.faults.control) {
            return Err(e);
        }
        let mut st = self.lock();
        // Only what the cloud shows as made under this key (as ARM's
        // `vmrestore-key` tag does): a resource that existed, was made by
        // another restore, or is claimed by a forged journal line is left.
        match st.resources.get(&resource.id) {
            None => return Ok(()),
            Some(r) if r.resource.key != resource.key || resource.key.is_empty() => {
                return Err(CallError::new(
                    CallErrorKind::Conflict,
                    format!("delete {} '{}'", resource.kind, resource.name),
                    format!(
                        "{} was not created by this restore: it is left in place",
                        resource.id
                    ),
                ));
            }
            Some(_) => {}
        }
        st.resources.remove(&resource.id);
        st.disks.remove(&resource.id);
        st.by_key.retain(|_, v| v != &resource.id);
        st.powered_on
            .retain(|v| v != &resource.name || resource.kind != "virtual_machine");
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_file(Self::image_path(dir, &resource.id));
        }
        self.saved(&format!("delete '{}'", resource.name), &st)
    }

    async fn act(&self, key: &str, action: &CloudAction) -> CallResult<()> {
        self.throttle("act", key, false)?;
        self.delay(self.latency("act")).await;
        if let Some(e) = self.fault("act", key, self.cfg.faults.control) {
            return Err(e);
        }
        let mut st = self.lock();
        if st.actions.iter().any(|(k, a)| k == key && a == action) {
            return Ok(());
        }
        match action {
            CloudAction::DeleteExistingVm { vm, .. } => {
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut st.existing)
                    .into_iter()
                    .partition(|v| v.name.eq_ignore_ascii_case(vm));
                st.existing = kept;
                st.deleted_existing.extend(gone);
            }
            CloudAction::RestoreExistingVm { vm, .. } => {
                let op = format!("put back VM '{vm}'");
                if st.existing.iter().any(|v| v.name.eq_ignore_ascii_case(vm)) {
                    return Ok(());
                }
                if st.resources.values().any(|r| {
                    r.resource.kind == "virtual_machine" && r.resource.name.eq_ignore_ascii_case(vm)
                }) {
                    return Err(CallError::new(
                        CallErrorKind::Conflict,
                        op,
                        "a VM of that name exists (the restored one)",
                    ));
                }
                let Some(i) = st
                    .deleted_existing
                    .iter()
                    .position(|v| v.name.eq_ignore_ascii_case(vm))
                else {
                    return Err(CallError::new(
                        CallErrorKind::NotFound,
                        op,
                        "no deleted VM of that name to put back",
                    ));
                };
                let v = st.deleted_existing.remove(i);
                st.existing.push(v);
            }
            CloudAction::PowerOn { vm, .. } => {
                if !st
                    .resources
                    .values()
                    .any(|r| r.resource.kind == "virtual_machine" && &r.resource.name == vm)
                {
                    return Err(CallError::new(
                        CallErrorKind::NotFound,
                        format!("power on '{vm}'"),
                        "the VM does not exist",
                    ));
                }
                st.powered_on.push(vm.clone());
            }
            _ => {}
        }
        st.actions.push((key.into(), action.clone()));
        self.saved(&format!("act '{key}'"), &st)
    }

    async fn open_disk(&self, disk: &Resource) -> CallResult<Box<dyn DiskWriter>> {
        self.with_disk("open_disk", disk, |d| d.open = true).await?;
        Ok(Box::new(SimDiskWriter {
            cloud: self.clone(),
            id: disk.id.clone(),
            name: disk.name.clone(),
        }))
    }

    async fn close_disk(&self, disk: &Resource) -> CallResult<()> {
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
    ) -> CallResult<()> {
        self.throttle(op, &disk.key, false)?;
        self.delay(self.latency(op)).await;
        if let Some(e) = self.fault(op, &disk.key, self.cfg.faults.control) {
            return Err(e);
        }
        let mut st = self.lock();
        let d = st.disks.get_mut(&disk.id).ok_or_else(|| {
            CallError::new(
                CallErrorKind::NotFound,
                format!("{op} '{}'", disk.name),
                "no such disk",
            )
        })?;
        f(d);
        self.saved(&format!("{op} '{}'", disk.name), &st)
    }
}

struct SimDiskWriter {
    cloud: SimCloud,
    id: String,
    name: String,
}

#[async_trait]
impl DiskWriter for SimDiskWriter {
    async fn verify_held(&self, offset: u64, length: u64, sha256: &str) -> bool {
        usize::try_from(length)
            .ok()
            .and_then(|len| self.cloud.read_disk(&self.id, offset, len))
            .is_some_and(|data| digest_matches(&data, sha256))
    }

    async fn write_at(&self, offset: u64, data: Bytes) -> CallResult<()> {
        let op = format!("put page '{}' at {offset}", self.name);
        if !offset.is_multiple_of(512) || !data.len().is_multiple_of(512) {
            return Err(CallError::new(
                CallErrorKind::Invalid,
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
                CallError::new(CallErrorKind::NotFound, op.clone(), "the disk was deleted")
            })?;
            if !d.open {
                return Err(CallError::new(
                    CallErrorKind::Conflict,
                    op.clone(),
                    "write access is not open (beginGetAccess first)",
                ));
            }
            if at + len as u64 > d.size {
                return Err(CallError::new(
                    CallErrorKind::Invalid,
                    op.clone(),
                    format!("write past the end of the {}-byte disk", d.size),
                ));
            }
            d.bytes_written += len as u64;
            d.writes += 1;
            match &self.cloud.dir {
                Some(dir) => {
                    let path = SimCloud::image_path(dir, &self.id);
                    std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                        .and_then(|mut f| {
                            f.seek(SeekFrom::Start(at))?;
                            f.write_all(&piece)
                        })
                        .map_err(|e| {
                            CallError::new(CallErrorKind::Fatal, op.clone(), e.to_string())
                        })?;
                    drop(st);
                    self.cloud.append_log(
                        "writes.log",
                        &WriteLine {
                            disk: self.id.clone(),
                            offset: at,
                            len: len as u64,
                        },
                    )?;
                }
                None if self.cloud.cfg.keep_pages => {
                    d.pages.insert(at, piece);
                }
                None => {}
            }
            pos += len;
        }
        self.cloud.delay(self.cloud.cfg.write_ack_latency).await;
        Ok(())
    }

    async fn finish(&self, _digest: &str) -> CallResult<()> {
        Ok(())
    }
}
