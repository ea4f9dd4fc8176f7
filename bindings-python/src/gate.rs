//! The gate every call into Python from a thread Python did not start goes
//! through, so that the exit can close it and wait until no such call is
//! inside the interpreter (see `aio.rs` for why). A leaf: it imports no
//! other module of the binding.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use pyo3::prelude::*;

/// Calls into Python from Rust threads, and whether they may still start.
struct Gate {
    closing: bool,
    inside: usize,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    closing: false,
    inside: 0,
});
static GATE_LEFT: Condvar = Condvar::new();

fn gate() -> MutexGuard<'static, Gate> {
    GATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` attached to the interpreter, unless the interpreter is exiting
/// (then `None`: the call is skipped). Every call into Python from a thread
/// Python did not start goes through here.
pub fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    {
        let mut g = gate();
        if g.closing {
            return None;
        }
        g.inside += 1;
    }
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            gate().inside -= 1;
            GATE_LEFT.notify_all();
        }
    }
    let _leave = Leave;
    Python::try_attach(f)
}

/// No call may start any more.
pub(crate) fn close() {
    gate().closing = true;
}

/// Waits until no call is inside Python, or until `deadline`.
pub(crate) fn wait_calls(deadline: Instant) {
    let mut g = gate();
    while g.inside > 0 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            break;
        };
        g = GATE_LEFT
            .wait_timeout(g, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}
