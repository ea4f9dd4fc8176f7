//! The tracing bridge: the `tracing` events of the library (and of the
//! crates under it: hyper-util's connections, object_store's retries) go
//! to the host's logger (`setLogger`), or, when none is set and `RUST_LOG`
//! is, to stderr (tracing-subscriber's `EnvFilter` and `fmt`).
//!
//! One global subscriber is installed when the addon loads. Each output has
//! its own `EnvFilter` behind a reload handle: the one not in use is `off`,
//! so without a logger and without `RUST_LOG` no callsite is even enabled.

use std::fmt::Write as _;
use std::sync::{OnceLock, RwLock};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

type LogArgs = FnArgs<(String, String, String)>;
type LogFn = ThreadsafeFunction<LogArgs, Unknown<'static>, LogArgs, Status, false, true>;
type Handle = reload::Handle<EnvFilter, Registry>;

/// The host's logger (a weak threadsafe function: it never keeps the
/// process alive).
static LOGGER: RwLock<Option<LogFn>> = RwLock::new(None);

struct Handles {
    /// The filter of the logger's output (`off` without a logger).
    logger: Handle,
    /// The filter of stderr (`RUST_LOG`, or `off` while a logger is set).
    stderr: Handle,
}

static HANDLES: OnceLock<Option<Handles>> = OnceLock::new();

fn off() -> EnvFilter {
    EnvFilter::new("off")
}

/// `RUST_LOG`'s filter, or `off` when it is unset.
fn rust_log() -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => EnvFilter::builder().parse_lossy(s),
        _ => off(),
    }
}

/// Installs the global subscriber (once); `None` when the process already
/// had one.
fn handles() -> Option<&'static Handles> {
    HANDLES
        .get_or_init(|| {
            let (logger_filter, logger) = reload::Layer::new(off());
            let (stderr_filter, stderr) = reload::Layer::new(rust_log());
            let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![
                Box::new(LoggerLayer.with_filter(logger_filter)),
                Box::new(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(std::io::stderr)
                        .with_filter(stderr_filter),
                ),
            ];
            let subscriber = Registry::default().with(layers);
            tracing::subscriber::set_global_default(subscriber).ok()?;
            Some(Handles { logger, stderr })
        })
        .as_ref()
}

/// Installs the bridge when the addon loads, so that `RUST_LOG` works
/// without any call.
#[napi_derive::module_init]
fn init() {
    handles();
}

/// An event's message followed by its other fields (`key=value`).
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

struct LoggerLayer;

impl<S: tracing::Subscriber> Layer<S> for LoggerLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let logger = LOGGER.read().unwrap_or_else(|e| e.into_inner());
        let Some(f) = logger.as_ref() else {
            return;
        };
        let meta = event.metadata();
        let mut text = Text::default();
        event.record(&mut text);
        let level = meta.level().as_str().to_ascii_lowercase();
        let message = format!("{}{}", text.message, text.fields);
        f.call_with_return_value(
            FnArgs::from((level, meta.target().to_string(), message)),
            ThreadsafeFunctionCallMode::NonBlocking,
            |r, _| {
                if let Err(err) = r {
                    // A failing logger must not break the library; it is
                    // not logged again (that could loop).
                    eprintln!("vmrestore: the logger threw: {}", err.reason);
                }
                Ok(())
            },
        );
    }
}

type LoggerCallback<'a> = Function<'a, LogArgs, Unknown<'static>>;

/// Sends the library's log events to `logger(level, target, message)`
/// (`level` is `error`, `warn`, `info`, `debug` or `trace`); `null`
/// removes it. `filter` takes `RUST_LOG` directives (`debug`,
/// `restore_core=trace,hyper_util=debug`; default: `RUST_LOG`, else
/// `info`). The logger never keeps the process alive and is called on the
/// event loop, after the event. Without a logger, events go to stderr when
/// `RUST_LOG` is set.
#[napi(
    ts_args_type = "logger: ((level: 'error' | 'warn' | 'info' | 'debug' | 'trace', target: string, message: string) => void) | null, filter?: string"
)]
pub fn set_logger(
    logger: Option<LoggerCallback<'_>>,
    filter: Option<String>,
) -> napi::Result<(), crate::Code> {
    let Some(h) = handles() else {
        return Err(crate::errors::coded(crate::errors::invalid(
            "logger",
            "this process already has a global tracing subscriber",
        )));
    };
    let reload_err =
        |e: reload::Error| crate::errors::coded(crate::errors::invalid("filter", e.to_string()));
    match logger {
        Some(f) => {
            let directives = filter
                .or_else(|| {
                    std::env::var("RUST_LOG")
                        .ok()
                        .filter(|s| !s.trim().is_empty())
                })
                .unwrap_or_else(|| "info".into());
            let env_filter = EnvFilter::builder().parse(&directives).map_err(|e| {
                crate::errors::coded(crate::errors::invalid("filter", e.to_string()))
            })?;
            let tsfn: LogFn = f
                .build_threadsafe_function()
                .weak::<true>()
                .build()
                .map_err(|e| {
                    crate::errors::coded(crate::errors::invalid("logger", e.reason.clone()))
                })?;
            let old = LOGGER
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .replace(tsfn);
            drop(old);
            h.stderr.reload(off()).map_err(reload_err)?;
            h.logger.reload(env_filter).map_err(reload_err)?;
        }
        None => {
            h.logger.reload(off()).map_err(reload_err)?;
            let old = LOGGER.write().unwrap_or_else(|e| e.into_inner()).take();
            drop(old);
            h.stderr.reload(rust_log()).map_err(reload_err)?;
        }
    }
    Ok(())
}
