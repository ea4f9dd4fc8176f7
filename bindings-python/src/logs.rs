//! Rust log events to Python `logging`.
//!
//! `tracing` events (and `log` records, which some dependencies use) of the
//! native module go to the logger `vmrestore` and its children: the core's
//! module path under `vmrestore.` (`restore_core::azure::pageblob` ->
//! `vmrestore.azure.pageblob`), a dependency's under `vmrestore.<crate>`
//! (`hyper_util::client` -> `vmrestore.hyper_util.client`). Levels: ERROR
//! -> `logging.ERROR`, WARN -> `WARNING`, INFO -> `INFO`, DEBUG and TRACE
//! -> `DEBUG`. The records carry the Rust file and line.
//!
//! Which levels are built at all follows the effective level of the
//! `vmrestore` logger, read when a vmrestore call starts (so set it before
//! the call; records below it cost nothing).
//!
//! Never a deadlock: the thread that emits an event only queues it (it may
//! hold locks that a thread holding the GIL waits for, so it must never wait
//! for the GIL). The queue reaches `logging` from a forwarding thread, and
//! synchronously at the end of each blocking call, from the calling thread,
//! which then holds the GIL and no other lock. Events emitted while a
//! thread forwards (by a logging handler calling into vmrestore) are
//! dropped rather than fed back.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::gate::with_python;

/// At most this many records wait; beyond, they are counted and dropped.
const QUEUE_LIMIT: usize = 10_000;

const DEBUG: i32 = 10;
const INFO: i32 = 20;
const WARNING: i32 = 30;
const ERROR: i32 = 40;

struct Record {
    level: i32,
    logger: String,
    message: String,
    file: Option<String>,
    line: u32,
}

struct Queue {
    records: VecDeque<Record>,
    dropped: u64,
    forwarder_pid: Option<u32>,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    records: VecDeque::new(),
    dropped: 0,
    forwarder_pid: None,
});
static QUEUED: Condvar = Condvar::new();

/// The Python level below which nothing is built (the effective level of
/// the `vmrestore` logger when last read).
static THRESHOLD: AtomicI32 = AtomicI32::new(WARNING);

thread_local! {
    /// This thread is forwarding records to Python right now.
    static FORWARDING: Cell<bool> = const { Cell::new(false) };
}

fn queue() -> MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(|e| e.into_inner())
}

fn py_level(l: Level) -> i32 {
    match l {
        Level::ERROR => ERROR,
        Level::WARN => WARNING,
        Level::INFO => INFO,
        Level::DEBUG | Level::TRACE => DEBUG,
    }
}

fn py_level_of_log(l: log::Level) -> i32 {
    match l {
        log::Level::Error => ERROR,
        log::Level::Warn => WARNING,
        log::Level::Info => INFO,
        log::Level::Debug | log::Level::Trace => DEBUG,
    }
}

/// Whether a record of Python level `level` is wanted on this thread.
fn wanted(level: i32) -> bool {
    level >= THRESHOLD.load(Ordering::Relaxed) && !FORWARDING.with(Cell::get)
}

/// `restore_core::azure::arm` -> `vmrestore.azure.arm`; `h2::codec` ->
/// `vmrestore.h2.codec`.
fn logger_name(target: &str) -> String {
    let rest = ["restore_core", "vmrestore_python", "_native", "vmrestore"]
        .iter()
        .find_map(|c| {
            target
                .strip_prefix(c)
                .filter(|r| r.is_empty() || r.starts_with("::"))
        });
    let path = match rest {
        Some(r) => r.trim_start_matches("::").to_string(),
        None => target.to_string(),
    };
    if path.is_empty() {
        "vmrestore".into()
    } else {
        format!("vmrestore.{}", path.replace("::", "."))
    }
}

fn push(r: Record) {
    let mut q = queue();
    if q.records.len() >= QUEUE_LIMIT {
        q.dropped += 1;
        return;
    }
    q.records.push_back(r);
    let pid = std::process::id();
    // After fork() the parent's forwarder does not exist in the child.
    if q.forwarder_pid != Some(pid) {
        q.forwarder_pid = Some(pid);
        let started = std::thread::Builder::new()
            .name("vmrestore-log".into())
            .spawn(forward_loop);
        if started.is_err() {
            q.forwarder_pid = None;
        }
    }
    drop(q);
    QUEUED.notify_one();
}

fn forward_loop() {
    loop {
        {
            let mut q = queue();
            while q.records.is_empty() && q.dropped == 0 {
                q = QUEUED.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        }
        if with_python(flush).is_none() {
            // The interpreter is exiting: nothing can be forwarded any more.
            return;
        }
    }
}

/// Forwards the queued records to `logging` from this thread (which holds
/// the GIL and, being in a vmrestore call or the forwarder, no other lock).
pub fn flush(py: Python<'_>) {
    if FORWARDING.with(Cell::get) {
        return;
    }
    FORWARDING.with(|f| f.set(true));
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            FORWARDING.with(|f| f.set(false));
        }
    }
    let _done = Done;
    let Ok(logging) = py.import("logging") else {
        return;
    };
    loop {
        let (records, dropped) = {
            let mut q = queue();
            (
                std::mem::take(&mut q.records),
                std::mem::take(&mut q.dropped),
            )
        };
        if records.is_empty() && dropped == 0 {
            return;
        }
        for r in records {
            if let Err(e) = forward(&logging, r) {
                e.print(py);
            }
        }
        if dropped > 0 {
            let _ = forward(
                &logging,
                Record {
                    level: WARNING,
                    logger: "vmrestore".into(),
                    message: format!(
                        "{dropped} log records dropped (more than {QUEUE_LIMIT} waiting)"
                    ),
                    file: None,
                    line: 0,
                },
            );
        }
    }
}

fn forward(logging: &Bound<'_, PyModule>, r: Record) -> PyResult<()> {
    let logger = logging.call_method1("getLogger", (&r.logger,))?;
    if !logger
        .call_method1("isEnabledFor", (r.level,))?
        .is_truthy()?
    {
        return Ok(());
    }
    let record = logger.call_method1(
        "makeRecord",
        (
            &r.logger,
            r.level,
            r.file.as_deref().unwrap_or("(rust)"),
            r.line,
            r.message,
            (),
            logging.py().None(),
        ),
    )?;
    logger.call_method1("handle", (record,))?;
    Ok(())
}

/// Reads the effective level of the `vmrestore` logger, so that events
/// below it are not even built.
pub fn refresh(py: Python<'_>) {
    let level = py
        .import("logging")
        .and_then(|l| l.call_method1("getLogger", ("vmrestore",)))
        .and_then(|l| l.call_method0("getEffectiveLevel"))
        .and_then(|l| l.extract::<i32>());
    let Ok(level) = level else { return };
    if THRESHOLD.swap(level, Ordering::Relaxed) != level {
        log::set_max_level(log_filter(level));
        // The callsites cached their interest under the old level.
        tracing::callsite::rebuild_interest_cache();
    }
}

fn tracing_filter(threshold: i32) -> LevelFilter {
    match threshold {
        t if t <= DEBUG => LevelFilter::TRACE,
        t if t <= INFO => LevelFilter::INFO,
        t if t <= WARNING => LevelFilter::WARN,
        t if t <= ERROR => LevelFilter::ERROR,
        _ => LevelFilter::OFF,
    }
}

fn log_filter(threshold: i32) -> log::LevelFilter {
    match threshold {
        t if t <= DEBUG => log::LevelFilter::Trace,
        t if t <= INFO => log::LevelFilter::Info,
        t if t <= WARNING => log::LevelFilter::Warn,
        t if t <= ERROR => log::LevelFilter::Error,
        _ => log::LevelFilter::Off,
    }
}

/// The message and the fields of an event, as `fmt` shows them.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }
}

/// The `tracing` layer that queues events for Python.
struct PythonLogging;

impl<S: tracing::Subscriber> Layer<S> for PythonLogging {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Decided per event: the Python level changes at run time.
        Interest::sometimes()
    }
    fn enabled(&self, m: &Metadata<'_>, _: Context<'_, S>) -> bool {
        wanted(py_level(*m.level()))
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(tracing_filter(THRESHOLD.load(Ordering::Relaxed)))
    }
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let m = event.metadata();
        let level = py_level(*m.level());
        if !wanted(level) {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        push(Record {
            level,
            logger: logger_name(m.target()),
            message: text.0.trim_start().to_string(),
            file: m.file().map(str::to_string),
            line: m.line().unwrap_or(0),
        });
    }
}

/// The `log` facade's records, queued the same way.
struct LogBridge;

impl log::Log for LogBridge {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        wanted(py_level_of_log(m.level()))
    }
    fn log(&self, r: &log::Record<'_>) {
        let level = py_level_of_log(r.level());
        if !wanted(level) {
            return;
        }
        push(Record {
            level,
            logger: logger_name(r.target()),
            message: r.args().to_string(),
            file: r.file().map(str::to_string),
            line: r.line().unwrap_or(0),
        });
    }
    fn flush(&self) {}
}

static LOG_BRIDGE: LogBridge = LogBridge;

/// Installs the bridge as the process's `tracing` subscriber and `log`
/// logger (unless the host already installed its own), at the level of the
/// `vmrestore` logger.
pub fn install(py: Python<'_>) {
    let _ = tracing_subscriber::registry()
        .with(PythonLogging)
        .try_init();
    let _ = log::set_logger(&LOG_BRIDGE);
    THRESHOLD.store(i32::MAX, Ordering::Relaxed);
    refresh(py);
}
