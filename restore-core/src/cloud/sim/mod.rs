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

mod act;
mod create;
mod disk;
mod faults;
mod state;
mod steps;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use crate::model::{Catalog, ExistingVm};
use state::{Saved, State, WriteLine};

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
    /// The disks of existing VMs, by VM name: what a snapshot copies and
    /// a disk swap replaces. A VM without an entry has no disks (so it
    /// cannot be snapshotted).
    pub existing_vm_disks: BTreeMap<String, Vec<ExistingDisk>>,
    /// Existing VMs that are stop-deallocated at the start (the others are
    /// running, as Azure's VMs are unless stopped): disks can only be
    /// swapped on a deallocated VM.
    pub deallocated_vms: Vec<String>,
}

/// A disk of an existing VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingDisk {
    /// Name.
    pub name: String,
    /// LUN of a data disk; `None` for the OS disk.
    pub lun: Option<u32>,
    /// Size in bytes.
    pub size_bytes: u64,
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
            existing_vm_disks: BTreeMap::new(),
            deallocated_vms: Vec::new(),
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

impl SimCloud {
    /// A simulated cloud.
    pub fn new(cfg: SimConfig) -> Self {
        SimCloud {
            state: Arc::new(Mutex::new(State::seeded(&cfg))),
            cfg: Arc::new(cfg),
            dir: None,
            buckets: None,
        }
        .with_buckets()
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
        let mut st = State::seeded(&cfg);
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
            st.vm_disks = saved.vm_disks;
            st.replaced = saved.replaced;
            st.deallocated = saved.deallocated;
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

    /// Faults injected so far.
    pub fn faults_injected(&self) -> u64 {
        self.lock().faults_injected
    }

    /// Creates that made a new resource (not those that found one by key).
    pub fn creates(&self) -> u64 {
        self.lock().creates
    }

    /// Bytes and write calls a disk received.
    pub fn disk_writes(&self, name: &str) -> Option<(u64, u64)> {
        let st = self.lock();
        let id = st.disk_id(name)?;
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
            "deallocated": st.deallocated.clone(),
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
}
