//! `Repository`: a local backup repository (list, manifests, importing raw
//! images). Below `executor.rs` and `azure.rs`, which both take it.

use pyo3::prelude::*;
use restore_core::model::{RestorePoint, from_json};
use restore_core::repo::LocalRepository;

use crate::convert::{input_json, to_py};
use crate::errors::to_py_err;

/// A local backup repository.
#[pyclass(module = "vmrestore._native", frozen)]
pub(crate) struct Repository {
    pub(crate) inner: LocalRepository,
}

#[pymethods]
impl Repository {
    /// Opens a repository; `create=True` makes the directories.
    #[new]
    #[pyo3(signature = (path, create=false))]
    fn new(path: std::path::PathBuf, create: bool) -> PyResult<Self> {
        let inner = if create {
            LocalRepository::create(path)
        } else {
            LocalRepository::open(path)
        }
        .map_err(to_py_err)?;
        Ok(Repository { inner })
    }
    /// Restore point IDs.
    fn list(&self) -> PyResult<Vec<String>> {
        self.inner.list().map_err(to_py_err)
    }
    /// A restore point's manifest as a dict.
    fn manifest(&self, py: Python<'_>, id: &str) -> PyResult<Py<PyAny>> {
        let m = self.inner.manifest(id).map_err(to_py_err)?;
        to_py(py, &m)
    }
    /// Imports raw disk images as a restore point: `images` maps disk names
    /// (or `disk/volume_group`) to image paths.
    #[pyo3(signature = (restore_point, images, chunk_size=4194304))]
    fn import_raw(
        &self,
        py: Python<'_>,
        restore_point: &Bound<'_, PyAny>,
        images: std::collections::HashMap<String, std::path::PathBuf>,
        chunk_size: u64,
    ) -> PyResult<Py<PyAny>> {
        let rp: RestorePoint = from_json(&input_json(restore_point)?).map_err(to_py_err)?;
        let repo = self.inner.clone();
        let m = py
            .detach(move || {
                let mut list: Vec<(&String, &std::path::PathBuf)> = images.iter().collect();
                list.sort();
                let refs: Vec<(&str, &std::path::Path)> = list
                    .iter()
                    .map(|(n, p)| (n.as_str(), p.as_path()))
                    .collect();
                repo.import_raw(&rp, &refs, chunk_size)
            })
            .map_err(to_py_err)?;
        to_py(py, &m)
    }
}
