//! The executor: `RestoreExecutor` over a `SimCloud` (or an `ArmCloud`) and a
//! `Repository` (`repository.rs`), its `Report`, and progress (callbacks or `ProgressStream`).

use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration};
use pyo3::prelude::*;
use restore_core::exec::{self, Event, Executor, LocalVhdSink, ProgressFn, SimConfig};
use restore_core::facade::{self, Naming};
use restore_core::model::{Catalog, from_json};
use restore_core::plan as core_plan;
use tokio_util::sync::CancellationToken;

use crate::azure::{ArmCloud, ObjectStoreRepository, PageBlobSink};
use crate::convert::{capabilities_of, input_json, to_py};
use crate::errors::to_py_err;
use crate::plan::Plan;
use crate::report::Report;
use crate::repository::Repository;
use crate::runtime::{MODULE_PID, blocking, runtime};
use crate::{aio, logs};

/// The simulated Azure.
#[pyclass(module = "vmrestore._native", frozen)]
pub(crate) struct SimCloud {
    pub(crate) inner: exec::SimCloud,
}

#[pymethods]
impl SimCloud {
    /// A simulated Azure. Faults are transient (429 with Retry-After, 503,
    /// timeouts) with the given probabilities, deterministic for a seed.
    #[new]
    #[pyo3(signature = (seed=0, latency_ms=0, lro_ms=0, write_latency_ms=0, fault_probability=0.0, data_fault_probability=0.0, retry_after_ms=0, write_rate=None, always_fail=None, catalog=None, capabilities=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        seed: u64,
        latency_ms: u64,
        lro_ms: u64,
        write_latency_ms: u64,
        fault_probability: f64,
        data_fault_probability: f64,
        retry_after_ms: u64,
        write_rate: Option<u64>,
        always_fail: Option<Vec<String>>,
        catalog: Option<&Bound<'_, PyAny>>,
        capabilities: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let ms = std::time::Duration::from_millis;
        let catalog = match catalog {
            Some(c) => from_json(&input_json(c)?).map_err(to_py_err)?,
            None => Catalog::builtin(),
        };
        let faults = facade::faults(
            facade::FaultSettings {
                fault_probability: Some(fault_probability),
                data_fault_probability: Some(data_fault_probability),
                seed,
                retry_after_ms,
                always_fail: always_fail.unwrap_or_default(),
            },
            Naming::Snake,
        )
        .map_err(to_py_err)?;
        Ok(SimCloud {
            inner: exec::SimCloud::new(SimConfig {
                catalog,
                latency: ms(latency_ms),
                lro: ms(lro_ms),
                write_latency: ms(write_latency_ms),
                write_rate,
                faults,
                capabilities: match capabilities {
                    Some(c) => capabilities_of(c)?,
                    None => core_plan::Capabilities::all("sim"),
                },
                ..Default::default()
            }),
        })
    }
    /// What it declares it can perform.
    fn capabilities(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &exec::Cloud::capabilities(&self.inner))
    }
    /// The state: resources, disks, actions, counters.
    fn dump(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.inner.dump())
    }
    /// A disk's bytes as written, or None.
    fn disk_bytes<'py>(
        &self,
        py: Python<'py>,
        name: &str,
    ) -> Option<Bound<'py, pyo3::types::PyBytes>> {
        self.inner
            .disk_bytes(name)
            .map(|b| pyo3::types::PyBytes::new(py, &b))
    }
    /// Faults injected so far.
    fn faults_injected(&self) -> u64 {
        self.inner.faults_injected()
    }
}

/// Progress events as an async iterator: pass it as `progress=` and iterate
/// with `async for`. It ends when the run ends.
#[pyclass(module = "vmrestore._native", frozen)]
pub(crate) struct ProgressStream {
    pub(crate) tx: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Event>>>,
    pub(crate) rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Event>>>,
}

#[pymethods]
impl ProgressStream {
    #[new]
    fn new() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        ProgressStream {
            tx: Mutex::new(Some(tx)),
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        logs::refresh(py);
        let rx = self.rx.clone();
        aio::future_into_py(
            py,
            async move { rx.lock().await.recv().await },
            |py, e| match e {
                Some(e) => to_py(py, &e),
                None => Err(PyStopAsyncIteration::new_err(())),
            },
        )
    }
}

pub(crate) fn progress_fn(
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<(Option<ProgressFn>, Option<Py<ProgressStream>>)> {
    let Some(p) = progress else {
        return Ok((None, None));
    };
    if let Ok(stream) = p.cast::<ProgressStream>() {
        let tx = stream
            .get()
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let f: ProgressFn = Arc::new(move |e: &Event| {
            if let Some(tx) = &tx {
                let _ = tx.send(e.clone());
            }
        });
        return Ok((Some(f), Some(stream.clone().unbind())));
    }
    if !p.is_callable() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "progress must be a callable or a ProgressStream",
        ));
    }
    let cb = p.unbind();
    let f: ProgressFn = Arc::new(move |e: &Event| {
        aio::with_python(|py| {
            if let Ok(d) = to_py(py, e) {
                // A failing callback must not break the restore.
                if let Err(err) = cb.call1(py, (d,)) {
                    err.print(py);
                }
            }
        });
    });
    Ok((Some(f), None))
}

pub(crate) fn close_stream(stream: &Option<Py<ProgressStream>>) {
    if let Some(s) = stream {
        s.get().tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Runs plans over a cloud and a repository.
#[pyclass(module = "vmrestore._native", frozen)]
pub(crate) struct RestoreExecutor {
    pub(crate) inner: Arc<Executor>,
}

/// Cancels the run when dropped (the asyncio task was cancelled).
pub(crate) struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[pymethods]
impl RestoreExecutor {
    /// `out_dir` sends disks to fixed VHD files there (with a template and
    /// the report); without it the disks go to the cloud's own disks.
    #[new]
    #[pyo3(signature = (cloud, repository, out_dir=None, journal=None, control_concurrency=8, data_concurrency=4, max_attempts=8, base_delay_ms=200, keep_on_cancel=false, blob_sink=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        cloud: &Bound<'_, PyAny>,
        repository: &Bound<'_, PyAny>,
        out_dir: Option<std::path::PathBuf>,
        journal: Option<std::path::PathBuf>,
        control_concurrency: usize,
        data_concurrency: usize,
        max_attempts: u32,
        base_delay_ms: u64,
        keep_on_cancel: bool,
        blob_sink: Option<&PageBlobSink>,
    ) -> PyResult<Self> {
        let opts = facade::exec_options(
            facade::ExecSettings {
                control_concurrency: Some(control_concurrency as u64),
                data_concurrency: Some(data_concurrency as u64),
                max_attempts: Some(u64::from(max_attempts)),
                base_delay_ms: Some(base_delay_ms),
                journal,
                keep_on_cancel,
            },
            Naming::Snake,
        )
        .map_err(to_py_err)?;
        let cloud: Arc<dyn exec::Cloud> = if let Ok(c) = cloud.cast::<SimCloud>() {
            Arc::new(c.get().inner.clone())
        } else if let Ok(c) = cloud.cast::<ArmCloud>() {
            c.get().inner.clone()
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "cloud must be a SimCloud or an ArmCloud",
            ));
        };
        let repo: Arc<dyn exec::Repository> = if let Ok(r) = repository.cast::<Repository>() {
            Arc::new(r.get().inner.clone())
        } else if let Ok(r) = repository.cast::<ObjectStoreRepository>() {
            Arc::new(r.get().inner.clone())
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "repository must be a Repository or an ObjectStoreRepository",
            ));
        };
        let mut ex = Executor::new(cloud, repo).with_options(opts);
        if let Some(dir) = out_dir {
            let sink = LocalVhdSink::new(&dir).map_err(|e| {
                to_py_err(restore_core::Error::Invalid {
                    path: "out_dir".into(),
                    message: e.to_string(),
                })
            })?;
            ex = ex.with_sink(Arc::new(sink));
        } else if let Some(b) = blob_sink {
            ex = ex.with_sink(b.inner.clone());
        }
        Ok(RestoreExecutor {
            inner: Arc::new(ex),
        })
    }

    /// Runs `plan` under asyncio: returns a coroutine whose result is the
    /// `Report`. `progress` is a callable receiving event dicts, or a
    /// `ProgressStream`. Cancelling the task that awaits it cancels the
    /// restore, waits for its clean-up and returns the report (outcome
    /// `"cancelled"`) instead of raising `CancelledError`.
    #[pyo3(signature = (plan, progress=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        plan: &Plan,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if MODULE_PID.get().is_some_and(|p| *p != std::process::id()) {
            return Err(PyRuntimeError::new_err(
                "vmrestore: the asyncio runtime does not survive fork(); in a forked child use run_sync(), or start processes with the 'spawn' method",
            ));
        }
        logs::refresh(py);
        let (progress, stream) = progress_fn(progress)?;
        let ex = self.inner.clone();
        let plan = plan.inner.clone();
        let token = CancellationToken::new();
        let guard = CancelOnDrop(token.clone());
        let live = aio::LiveRun::register(&token);
        let run_token = token.clone();
        // The run is its own task: it finishes its clean-up whatever
        // happens to the future that reports it.
        let handle = runtime()?.spawn(async move {
            let _live = live;
            let r = ex.run(&plan, run_token, progress).await;
            close_stream(&stream);
            r
        });
        let fut = aio::future_into_py(
            py,
            async move {
                let _guard = guard;
                handle.await
            },
            |py, r| match r {
                Ok(Ok(inner)) => Ok(Py::new(py, Report { inner })?.into_any()),
                Ok(Err(e)) => Err(to_py_err(e)),
                Err(e) => Err(PyRuntimeError::new_err(format!(
                    "the restore task failed: {e}"
                ))),
            },
        )?;
        py.import("vmrestore._aio")?
            .call_method1("run_to_report", (fut, aio::CancelRun(token)))
    }

    /// Runs `plan` to the end, releasing the GIL; returns a `Report`.
    #[pyo3(signature = (plan, progress=None))]
    fn run_sync(
        &self,
        py: Python<'_>,
        plan: &Plan,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Report> {
        let (progress, stream) = progress_fn(progress)?;
        let rt = runtime()?;
        let ex = self.inner.clone();
        let plan = plan.inner.clone();
        let r = blocking(py, move || {
            let token = CancellationToken::new();
            let _live = aio::LiveRun::register(&token);
            rt.block_on(async move { ex.run(&plan, token, progress).await })
        });
        close_stream(&stream);
        r.map(|inner| Report { inner }).map_err(to_py_err)
    }
}
