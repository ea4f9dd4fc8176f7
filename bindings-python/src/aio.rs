//! Where Rust threads meet the Python interpreter: asyncio futures completed
//! from tokio tasks, calls into Python from worker threads, and the exit.
//!
//! Why not `pyo3_async_runtimes::future_into_py`: its tokio task completes
//! the asyncio future with `loop.call_soon_threadsafe`, which releases the
//! GIL while it writes to the loop's self-pipe. The main thread can then
//! see the result, return from `asyncio.run` and reach `Py_FinalizeEx`
//! while that worker is still inside Python; when the worker takes the GIL
//! back, the finalizing interpreter kills it (SIGSEGV, SIGABRT) or pyo3
//! panics with "The Python interpreter is not initialized". Here every
//! entry of a non-Python thread into the interpreter goes through
//! [`with_python`] (`gate.rs`), which an `atexit` hook closes and then waits on: no
//! worker is inside Python, or will enter it, once finalization starts.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use std::time::{Duration, Instant};

use pyo3::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::gate;
pub use crate::gate::with_python;

/// Runs that have not ended, so that the exit can cancel them and wait for
/// their clean-up.
static LIVE: Mutex<Option<HashMap<u64, CancellationToken>>> = Mutex::new(None);
static LIVE_ENDED: Condvar = Condvar::new();
static NEXT_RUN: AtomicU64 = AtomicU64::new(0);

fn live() -> MutexGuard<'static, Option<HashMap<u64, CancellationToken>>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run in progress: registered until dropped (when the run has ended).
pub struct LiveRun(u64);

impl LiveRun {
    pub fn register(token: &CancellationToken) -> LiveRun {
        let id = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        live()
            .get_or_insert_with(HashMap::new)
            .insert(id, token.clone());
        LiveRun(id)
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        if let Some(m) = live().as_mut() {
            m.remove(&self.0);
        }
        LIVE_ENDED.notify_all();
    }
}

/// How long the exit waits for cancelled runs to clean up.
const CLEANUP_AT_EXIT: Duration = Duration::from_secs(60);
/// How long the exit waits for calls into Python to return.
const CALLS_AT_EXIT: Duration = Duration::from_secs(10);

/// The `atexit` hook: forwards the last log records, closes the gate,
/// cancels the runs still going (they clean up as on any cancel) and waits
/// for them and for every call into Python to end, with the GIL released.
#[pyfunction]
pub fn _at_exit(py: Python<'_>) {
    crate::logs::flush(py);
    gate::close();
    py.detach(|| {
        let deadline = Instant::now() + CLEANUP_AT_EXIT;
        let mut g = live();
        if let Some(m) = g.as_ref() {
            for t in m.values() {
                t.cancel();
            }
        }
        while g.as_ref().is_some_and(|m| !m.is_empty()) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                let n = g.as_ref().map_or(0, |m| m.len());
                eprintln!(
                    "vmrestore: {n} cancelled restore(s) still cleaning up at exit; \
                     what they created may remain"
                );
                break;
            };
            g = LIVE_ENDED
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(g);
        gate::wait_calls(Instant::now() + CALLS_AT_EXIT);
    });
}

/// Completes an asyncio future on its loop's thread (unless it was
/// cancelled meanwhile).
#[pyclass(module = "vmrestore._native", frozen)]
struct Complete;

#[pymethods]
impl Complete {
    fn __call__(&self, fut: &Bound<'_, PyAny>, ok: bool, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("done")?.is_truthy()? {
            return Ok(());
        }
        if ok {
            fut.call_method1("set_result", (value,))?;
        } else {
            fut.call_method1("set_exception", (value,))?;
        }
        Ok(())
    }
}

/// A done callback: a cancelled asyncio future aborts the tokio task
/// that would have completed it.
#[pyclass(module = "vmrestore._native", frozen)]
struct AbortOnCancel(tokio::task::AbortHandle);

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("cancelled")?.is_truthy()? {
            self.0.abort();
        }
        Ok(())
    }
}

/// Cancels a run when called.
#[pyclass(module = "vmrestore._native", frozen)]
pub struct CancelRun(pub CancellationToken);

#[pymethods]
impl CancelRun {
    fn __call__(&self) {
        self.0.cancel();
    }
}

/// An asyncio future of the running loop, completed with the output of
/// `fut` (which runs on the tokio runtime) as `convert` makes it a Python
/// object. The output reaches the loop through [`with_python`]: Python
/// objects are made there, never on a bare worker thread; a loop closed
/// meanwhile has nobody waiting.
pub fn future_into_py<'py, F, C>(py: Python<'py>, fut: F, convert: C) -> PyResult<Bound<'py, PyAny>>
where
    F: Future + Send + 'static,
    F::Output: Send,
    C: for<'a> FnOnce(Python<'a>, F::Output) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let py_fut = event_loop.call_method0("create_future")?;
    let (lp, pf) = (event_loop.unbind(), py_fut.clone().unbind());
    let task = crate::runtime::runtime()?.spawn(async move {
        let out = fut.await;
        with_python(move |py| {
            let (ok, value) = match convert(py, out) {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            // Fails only when the loop is closed: then nobody awaits it.
            let _ = lp.call_method1(py, "call_soon_threadsafe", (Complete, pf, ok, value));
        });
    });
    py_fut.call_method1("add_done_callback", (AbortOnCancel(task.abort_handle()),))?;
    Ok(py_fut)
}
