//! The tokio runtime of the process (remade after fork()) and blocking
//! calls with the GIL released. The asyncio glue is in `aio.rs`.

use std::sync::{Arc, Mutex, OnceLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::logs;

/// The process that made the runtime: after fork() the runtime's threads
/// are gone in the child, so a new one is made there.
pub(crate) struct OwnRuntime {
    pid: u32,
    rt: Arc<tokio::runtime::Runtime>,
}

pub(crate) static RUNTIME: Mutex<Option<OwnRuntime>> = Mutex::new(None);
pub(crate) static MODULE_PID: OnceLock<u32> = OnceLock::new();

/// The tokio runtime of this process (a new one after fork()).
pub(crate) fn runtime() -> PyResult<Arc<tokio::runtime::Runtime>> {
    let mut g = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    if let Some(r) = g.as_ref().filter(|r| r.pid == pid) {
        return Ok(r.rt.clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the runtime: {e}")))?;
    let rt = Arc::new(rt);
    // The parent's runtime cannot be dropped safely in a forked child: forget it.
    if let Some(old) = g.take() {
        std::mem::forget(old);
    }
    *g = Some(OwnRuntime {
        pid,
        rt: rt.clone(),
    });
    Ok(rt)
}

/// Runs `f` with the GIL released, Rust logs forwarded to `logging` at the
/// level set when the call starts and flushed before it returns.
pub(crate) fn blocking<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    logs::refresh(py);
    let r = py.detach(f);
    logs::flush(py);
    r
}
