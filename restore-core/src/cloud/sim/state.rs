//! SimCloud's state, and how a persistent cloud keeps it on disk.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SimDisk {
    pub(super) size: u64,
    pub(super) open: bool,
    pub(super) closed_once: bool,
    /// The writer's finish ran (for a page blob: its footer is written).
    #[serde(default)]
    pub(super) finished: bool,
    /// Written pages by offset (each a multiple of 512 bytes); in a
    /// persistent cloud they are in the disk's image file instead.
    #[serde(skip)]
    pub(super) pages: BTreeMap<u64, Bytes>,
    #[serde(skip)]
    pub(super) bytes_written: u64,
    #[serde(skip)]
    pub(super) writes: u64,
}

/// What a persistent cloud saves in `state.json`.
#[derive(Serialize, Deserialize)]
pub(super) struct Saved {
    pub(super) resources: BTreeMap<String, SimResource>,
    pub(super) by_key: HashMap<String, String>,
    pub(super) disks: HashMap<String, SimDisk>,
    pub(super) actions: Vec<(String, CloudAction)>,
    pub(super) existing: Vec<ExistingVm>,
    #[serde(default)]
    pub(super) deleted_existing: Vec<ExistingVm>,
    pub(super) powered_on: Vec<String>,
    pub(super) creates: u64,
    #[serde(default)]
    pub(super) vm_disks: BTreeMap<String, Vec<ExistingDisk>>,
    #[serde(default)]
    pub(super) replaced: BTreeMap<String, Vec<ExistingDisk>>,
    #[serde(default)]
    pub(super) deallocated: Vec<String>,
}

/// A line of `writes.log`.
#[derive(Serialize, Deserialize)]
pub(super) struct WriteLine {
    pub(super) disk: String,
    pub(super) offset: u64,
    pub(super) len: u64,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) resources: BTreeMap<String, SimResource>,
    pub(super) by_key: HashMap<String, String>,
    pub(super) disks: HashMap<String, SimDisk>,
    pub(super) actions: Vec<(String, CloudAction)>,
    pub(super) existing: Vec<ExistingVm>,
    /// Existing VMs deleted in place (their disks kept), so that they can be
    /// put back (`RestoreExistingVm`).
    pub(super) deleted_existing: Vec<ExistingVm>,
    pub(super) powered_on: Vec<String>,
    /// Disks of existing VMs by VM name (lowercase): seeded from the
    /// configuration, replaced by swaps.
    pub(super) vm_disks: BTreeMap<String, Vec<ExistingDisk>>,
    /// Disks a swap replaced, by VM name (lowercase), until deleted.
    pub(super) replaced: BTreeMap<String, Vec<ExistingDisk>>,
    /// VMs (lowercase names) that are stop-deallocated.
    pub(super) deallocated: Vec<String>,
    pub(super) attempts: HashMap<String, u64>,
    pub(super) calls: u64,
    pub(super) faults_injected: u64,
    pub(super) creates: u64,
    /// ARM writes and deletes admitted, and those throttled (429).
    pub(super) arm_requests: u64,
    pub(super) throttled: u64,
    /// Token bucket for the write rate limit: when the bucket is next empty.
    pub(super) write_free_at: Option<tokio::time::Instant>,
}

impl State {
    /// A new cloud's state: the existing VMs of the configuration, their
    /// disks and power states.
    pub(super) fn seeded(cfg: &SimConfig) -> State {
        State {
            existing: cfg.existing_vms.clone(),
            vm_disks: cfg
                .existing_vm_disks
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            deallocated: cfg
                .deallocated_vms
                .iter()
                .map(|v| v.to_ascii_lowercase())
                .collect(),
            ..Default::default()
        }
    }
}

impl State {
    /// The resource of `kind` named `name` in resource group `rg` (ARM
    /// names and IDs are case-insensitive).
    /// The ID of the disk named `name` (in any resource group).
    pub(super) fn disk_id(&self, name: &str) -> Option<String> {
        self.resources
            .values()
            .find(|r| r.resource.kind == "disk" && r.resource.name == name)
            .map(|r| r.resource.id.clone())
    }

    pub(super) fn find(&self, kind: &str, rg: &str, name: &str) -> Option<&SimResource> {
        let id = format!("/resourceGroups/{rg}/{kind}/{name}");
        self.resources
            .values()
            .find(|r| r.resource.id.eq_ignore_ascii_case(&id))
    }

    /// A disk this cloud made, by name in any resource group.
    pub(super) fn disk_named(&self, name: &str) -> Option<&SimResource> {
        self.resources
            .values()
            .find(|r| r.resource.kind == "disk" && r.resource.name.eq_ignore_ascii_case(name))
    }

    /// An existing VM (one there before the run and not deleted).
    pub(super) fn existing_vm(&self, rg: &str, name: &str) -> Option<&ExistingVm> {
        self.existing.iter().find(|v| {
            v.name.eq_ignore_ascii_case(name) && v.resource_group.eq_ignore_ascii_case(rg)
        })
    }
}

impl SimCloud {
    /// The image file of a disk (by resource ID) in a persistent cloud.
    pub(super) fn image_path(dir: &Path, id: &str) -> PathBuf {
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
    pub(super) fn save(&self, st: &State) -> Result<(), String> {
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
            "vm_disks": st.vm_disks,
            "replaced": st.replaced,
            "deallocated": st.deallocated,
            "creates": st.creates,
        });
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, saved.to_string())
            .and_then(|_| std::fs::rename(&tmp, dir.join("state.json")))
            .map_err(|e| format!("saving the simulated cloud's state: {e}"))
    }

    pub(super) fn saved(&self, op: &str, st: &State) -> CallResult<()> {
        self.save(st)
            .map_err(|e| CallError::new(CallErrorKind::Fatal, op, e))
    }

    pub(super) fn append_log(&self, file: &str, line: &impl Serialize) -> CallResult<()> {
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed
        // in a way later calls rely on, so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
