//! The local "restore disks" destination: each disk as a fixed VHD file
//! (sparse, footer last), an ARM template that creates the VM from them, and
//! the report.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};

use super::cloud::*;
use crate::model::DiskRole;
use crate::plan::Target;
use crate::vhd::{FOOTER_SIZE, SIZE_ALIGNMENT, VhdFile};

/// Writes disks as fixed VHDs and artifacts as files into a directory.
#[derive(Debug, Clone)]
pub struct LocalVhdSink {
    dir: PathBuf,
}

impl LocalVhdSink {
    /// A sink writing into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(LocalVhdSink { dir })
    }

    /// Path of the VHD of `disk`.
    pub fn vhd_path(&self, disk: &str) -> PathBuf {
        self.dir.join(format!("{disk}.vhd"))
    }

    fn safe(&self, op: &str, name: &str) -> CloudResult<PathBuf> {
        let ok = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        if ok {
            Ok(self.dir.join(name))
        } else {
            Err(CloudError::new(
                CloudErrorKind::Invalid,
                op,
                format!("'{name}' is not a safe file name"),
            ))
        }
    }
}

fn io(op: &str, e: impl std::fmt::Display) -> CloudError {
    CloudError::new(CloudErrorKind::Fatal, op, e.to_string())
}

#[async_trait]
impl DiskSink for LocalVhdSink {
    async fn open(
        &self,
        disk: &str,
        size_bytes: u64,
        resume: bool,
    ) -> CloudResult<Box<dyn DiskWriter>> {
        let op = format!("open VHD '{disk}'");
        let path = self.safe(&op, &format!("{disk}.vhd"))?;
        if size_bytes == 0 || !size_bytes.is_multiple_of(SIZE_ALIGNMENT) {
            return Err(CloudError::new(
                CloudErrorKind::Invalid,
                op,
                format!("size {size_bytes} is not a whole number of MiB"),
            ));
        }
        let (p, opc) = (path.clone(), op.clone());
        let file = tokio::task::spawn_blocking(move || {
            if resume && p.exists() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| io(&opc, e))?;
                f.set_len(size_bytes + FOOTER_SIZE)
                    .map_err(|e| io(&opc, e))?;
                Ok(VhdFile::from_file(f, size_bytes))
            } else {
                VhdFile::create(&p, size_bytes).map_err(|e| io(&opc, e))
            }
        })
        .await
        .map_err(|e| io(&op, e))??;
        Ok(Box::new(VhdWriter {
            file: Arc::new(std::sync::Mutex::new(Some(file))),
            name: disk.to_string(),
            path,
        }))
    }

    async fn write_artifact(&self, name: &str, bytes: Bytes) -> CloudResult<()> {
        let op = format!("write '{name}'");
        let path = self.safe(&op, name)?;
        tokio::task::spawn_blocking(move || {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &bytes).and_then(|_| std::fs::rename(&tmp, &path))
        })
        .await
        .map_err(|e| io(&op, e))?
        .map_err(|e| io(&op, e))
    }
}

struct VhdWriter {
    file: Arc<std::sync::Mutex<Option<VhdFile>>>,
    name: String,
    path: PathBuf,
}

#[async_trait]
impl DiskWriter for VhdWriter {
    async fn write_at(&self, offset: u64, data: Bytes) -> CloudResult<()> {
        let op = format!("write VHD '{}' at {offset}", self.name);
        let f = self.file.clone();
        let opc = op.clone();
        tokio::task::spawn_blocking(move || {
            let guard = f.lock().unwrap_or_else(|e| e.into_inner());
            let v = guard.as_ref().ok_or_else(|| {
                CloudError::new(
                    CloudErrorKind::Conflict,
                    &opc,
                    "the VHD is already finished",
                )
            })?;
            // Zeros need not be written: the file is sparse.
            if data.iter().all(|b| *b == 0) {
                return Ok(());
            }
            v.write_at(offset, &data).map_err(|e| io(&opc, e))
        })
        .await
        .map_err(|e| io(&op, e))?
    }

    async fn finish(&self, digest: &str) -> CloudResult<()> {
        let op = format!("finish VHD '{}'", self.path.display());
        let f = self.file.clone();
        let mut id = [0u8; 16];
        if let Ok(raw) = hex::decode(digest.get(..32).unwrap_or_default()) {
            id.copy_from_slice(&raw);
        }
        let opc = op.clone();
        tokio::task::spawn_blocking(move || {
            let v = f.lock().unwrap_or_else(|e| e.into_inner()).take();
            match v {
                Some(v) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    v.finish(now, id).map_err(|e| io(&opc, e))
                }
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| io(&op, e))?
    }
}

/// An ARM template that creates the VM from the restored disks (uploaded
/// as managed disks), as Azure Backup's "restore disks" gives one.
pub fn arm_template(t: &Target) -> Value {
    let disk_id = |n: &str| format!("[resourceId('Microsoft.Compute/disks', '{n}')]");
    let os = t.disks.iter().find(|d| d.role == DiskRole::Os);
    let data: Vec<Value> = t
        .disks
        .iter()
        .filter(|d| d.role == DiskRole::Data)
        .map(|d| json!({"lun": d.lun.unwrap_or(0), "createOption": "Attach", "managedDisk": {"id": disk_id(&d.name)}}))
        .collect();
    let nics: Vec<Value> = t
        .nics
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"id": format!("[resourceId('Microsoft.Network/networkInterfaces', '{}')]", n.name), "properties": {"primary": i == 0}}))
        .collect();
    let mut vm = json!({
        "type": "Microsoft.Compute/virtualMachines",
        "apiVersion": "2025-04-01",
        "name": t.vm_name,
        "location": t.region,
        "properties": {
            "hardwareProfile": {"vmSize": t.vm_size},
            "storageProfile": {
                "osDisk": {
                    "osType": match t.os_family { crate::model::OsFamily::Windows => "Windows", crate::model::OsFamily::Linux => "Linux" },
                    "createOption": "Attach",
                    "managedDisk": {"id": os.map(|d| disk_id(&d.name)).unwrap_or_default()},
                },
                "dataDisks": data,
            },
            "networkProfile": {"networkInterfaces": nics},
        },
    });
    if let Some(z) = t.zone {
        vm["zones"] = json!([z.to_string()]);
    }
    if let Some(a) = &t.availability_set {
        vm["properties"]["availabilitySet"] =
            json!({"id": format!("[resourceId('Microsoft.Compute/availabilitySets', '{a}')]")});
    }
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": [vm],
    })
}
