//! The executor: `RestoreExecutor` over a `SimCloud` (or an `ArmCloud`) and a
//! `Repository`, progress (callbacks or `ProgressStream`) and cancellation.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use restore_core::exec::{self, Event, Executor, LocalVhdSink, ProgressFn, SimConfig};
use restore_core::facade::{self, Naming};
use restore_core::plan as core_plan;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::azure::*;
use crate::convert::*;
use crate::errors::*;
use crate::json::{self, Json};
use crate::plan::*;
use crate::repository::Repository;
use crate::runtime::*;

/// Options of the simulated Azure.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct SimCloudOptions {
    /// Seed of the fault decisions (the same seed gives the same faults).
    pub seed: Option<f64>,
    /// Latency of every control-plane call, in ms.
    pub latency_ms: Option<f64>,
    /// Duration of long-running operations, in ms.
    pub lro_ms: Option<f64>,
    /// Latency of every page write, in ms.
    pub write_latency_ms: Option<f64>,
    /// Probability of a transient fault (429, 503, timeout) per control call.
    pub fault_probability: Option<f64>,
    /// Probability of a transient fault per data call.
    pub data_fault_probability: Option<f64>,
    /// Retry-After of injected 429s, in ms.
    pub retry_after_ms: Option<f64>,
    /// Control-plane writes per second (a token bucket), unlimited if unset.
    pub write_rate: Option<f64>,
    /// Operations (`create:<kind>`, `act:<action>`, ...) that always fail.
    pub always_fail: Option<Vec<String>>,
    /// The catalog of the simulated destination (default: built-in).
    #[napi(ts_type = "Catalog | string")]
    pub catalog: Option<Json>,
    /// What it declares it can perform (default: everything); e.g. an
    /// `ArmCloud`'s `capabilities()`, to try a plan as ARM would take it.
    #[napi(ts_type = "Capabilities | string")]
    pub capabilities: Option<Json>,
}

/// The simulated Azure: in memory, with Azure's naming rules, limits,
/// latencies and injected faults.
#[napi]
pub struct SimCloud {
    pub(crate) inner: exec::SimCloud,
}

#[napi]
impl SimCloud {
    #[napi(constructor)]
    pub fn new(options: Option<SimCloudOptions>) -> napi::Result<Self, Code> {
        let o = options.unwrap_or_default();
        let max = u64::from(u32::MAX);
        let ms = |name: &str, v: Option<f64>| {
            json::whole(name, v, max)
                .map(|v| std::time::Duration::from_millis(v.unwrap_or(0)))
                .map_err(coded)
        };
        let seed = match o.seed {
            Some(f) if !f.is_finite() || f.fract() != 0.0 || f.abs() > 9_007_199_254_740_992.0 => {
                return Err(coded(invalid(
                    "seed",
                    format!("{f} is not a whole number (a safe integer)"),
                )));
            }
            Some(f) => f as i64 as u64,
            None => 0,
        };
        let faults = facade::faults(
            facade::FaultSettings {
                fault_probability: o.fault_probability,
                data_fault_probability: o.data_fault_probability,
                seed,
                retry_after_ms: json::whole("retryAfterMs", o.retry_after_ms, max)
                    .map_err(coded)?
                    .unwrap_or(0),
                always_fail: o.always_fail.unwrap_or_default(),
            },
            Naming::Camel,
        )
        .map_err(coded)?;
        let catalog = catalog_of(o.catalog).map_err(coded)?;
        Ok(SimCloud {
            inner: exec::SimCloud::new(SimConfig {
                catalog,
                latency: ms("latencyMs", o.latency_ms)?,
                lro: ms("lroMs", o.lro_ms)?,
                write_latency: ms("writeLatencyMs", o.write_latency_ms)?,
                write_rate: json::whole("writeRate", o.write_rate, max).map_err(coded)?,
                faults,
                capabilities: match o.capabilities {
                    Some(c) => capabilities_of(c).map_err(coded)?,
                    None => core_plan::Capabilities::all("sim"),
                },
                ..Default::default()
            }),
        })
    }

    /// The state: resources, disks, actions, counters.
    #[napi(ts_return_type = "Record<string, any>")]
    pub fn dump(&self) -> napi::Result<Value, Code> {
        to_js(&self.inner.dump())
    }

    /// A disk's bytes as written, or null.
    #[napi]
    pub fn disk_bytes(&self, name: String) -> Option<Buffer> {
        self.inner.disk_bytes(&name).map(Buffer::from)
    }

    /// Faults injected so far.
    #[napi]
    pub fn faults_injected(&self) -> f64 {
        self.inner.faults_injected() as f64
    }

    /// What it declares it can perform.
    #[napi(ts_return_type = "Capabilities")]
    pub fn capabilities(&self) -> napi::Result<Value, Code> {
        to_js(&exec::Cloud::capabilities(&self.inner))
    }
}

/// Options of the executor.
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct ExecutorOptions {
    /// Write disks as fixed VHD files in this directory (with an ARM
    /// template and the report) instead of the cloud's disks.
    pub out_dir: Option<String>,
    /// A journal file: a rerun with the same journal resumes.
    pub journal: Option<String>,
    /// Control-plane calls at once (default 8).
    pub control_concurrency: Option<f64>,
    /// Disks written at once (default 4).
    pub data_concurrency: Option<f64>,
    /// Attempts per call before the step fails (default 8).
    pub max_attempts: Option<f64>,
    /// First retry delay in ms, doubled per attempt (default 200).
    pub base_delay_ms: Option<f64>,
    /// On cancel, keep what was created (for a resume) instead of cleaning up.
    pub keep_on_cancel: Option<bool>,
}

/// Progress events as an async iterator: pass it as `options.progress` to
/// `run()` and read it with `for await`. It ends when the run ends.
#[napi(async_iterator)]
pub struct ProgressStream {
    tx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Event>>>,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Event>>>,
}

#[napi]
impl AsyncGenerator for ProgressStream {
    type Yield = Value;
    type Next = ();
    type Return = ();

    fn next(
        &mut self,
        _value: Option<Self::Next>,
    ) -> impl Future<Output = Result<Option<Self::Yield>>> + Send + 'static {
        let rx = self.rx.clone();
        async move {
            let e = rx.lock().await.recv().await;
            Ok(e.and_then(|e| serde_json::to_value(&e).ok()))
        }
    }
}

#[napi]
impl ProgressStream {
    #[napi(constructor)]
    pub fn new() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        ProgressStream {
            tx: std::sync::Mutex::new(Some(tx)),
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }
}

impl Default for ProgressStream {
    fn default() -> Self {
        Self::new()
    }
}

/// `EventTarget.addEventListener(type, listener)`.
pub(crate) type AddEventListener<'a> =
    Function<'a, FnArgs<(String, Function<'a, (), ()>)>, Unknown<'a>>;

pub(crate) type ProgressCallback =
    ThreadsafeFunction<Value, Unknown<'static>, Value, Status, false, true>;

/// Runs plans over a cloud and a repository.
#[napi]
pub struct RestoreExecutor {
    pub(crate) inner: Arc<Executor>,
}

#[napi]
impl RestoreExecutor {
    /// `cloud` is a `SimCloud` or an `ArmCloud`; `repository` a `Repository`
    /// or an `ObjectStoreRepository`; `blobSink` sends the disks to page
    /// blobs instead of the cloud's disks (or `options.outDir` to VHD files).
    #[napi(constructor)]
    pub fn new(
        cloud: Either<&SimCloud, &ArmCloud>,
        repository: Either<&Repository, &ObjectStoreRepository>,
        options: Option<ExecutorOptions>,
        blob_sink: Option<&PageBlobSink>,
    ) -> napi::Result<Self, Code> {
        let o = options.unwrap_or_default();
        let max = u64::from(u32::MAX);
        let whole = |name: &str, v: Option<f64>| json::whole(name, v, max).map_err(coded);
        let opts = facade::exec_options(
            facade::ExecSettings {
                control_concurrency: whole("controlConcurrency", o.control_concurrency)?,
                data_concurrency: whole("dataConcurrency", o.data_concurrency)?,
                max_attempts: whole("maxAttempts", o.max_attempts)?,
                base_delay_ms: whole("baseDelayMs", o.base_delay_ms)?,
                journal: o.journal.map(PathBuf::from),
                keep_on_cancel: o.keep_on_cancel.unwrap_or(false),
            },
            Naming::Camel,
        )
        .map_err(coded)?;
        let cloud: Arc<dyn exec::Cloud> = match cloud {
            Either::A(c) => Arc::new(c.inner.clone()),
            Either::B(c) => c.inner.clone(),
        };
        let repo: Arc<dyn exec::Repository> = match repository {
            Either::A(r) => Arc::new(r.inner.clone()),
            Either::B(r) => Arc::new(r.inner.clone()),
        };
        let mut ex = Executor::new(cloud, repo).with_options(opts);
        if let Some(dir) = o.out_dir {
            let sink = LocalVhdSink::new(std::path::Path::new(&dir))
                .map_err(|e| coded(invalid("outDir", e.to_string())))?;
            ex = ex.with_sink(Arc::new(sink));
        } else if let Some(b) = blob_sink {
            ex = ex.with_sink(b.inner.clone());
        }
        Ok(RestoreExecutor {
            inner: Arc::new(ex),
        })
    }

    /// Runs `plan`; resolves to the report. `options.onProgress` receives
    /// each event (it never keeps the process alive); `options.progress`
    /// takes a `ProgressStream`; `options.signal` (an `AbortSignal`)
    /// cancels the run, which then cleans up and resolves with outcome
    /// `cancelled`. Rejects (with `code`) when the run cannot start: a
    /// blocked or stale plan, an unreadable repository or journal.
    #[napi(
        ts_args_type = "plan: Plan | string, options?: RunOptions",
        ts_return_type = "Promise<Report>"
    )]
    pub fn run<'env>(
        &self,
        env: &'env Env,
        plan: Json,
        options: Option<Object<'env>>,
    ) -> Result<PromiseRaw<'env, Value>> {
        let token = CancellationToken::new();
        let mut callbacks: Vec<ProgressFn> = Vec::new();
        if let Some(o) = &options {
            if let Some(f) = o.get::<Function<'_, Value, Unknown<'_>>>("onProgress")? {
                let tsfn: ProgressCallback =
                    f.build_threadsafe_function().weak::<true>().build()?;
                callbacks.push(Arc::new(move |e: &Event| {
                    if let Ok(v) = serde_json::to_value(e) {
                        tsfn.call_with_return_value(
                            v,
                            ThreadsafeFunctionCallMode::NonBlocking,
                            |r, _| {
                                if let Err(err) = r {
                                    // A failing callback must not break the restore.
                                    eprintln!(
                                        "vmrestore: the onProgress callback threw: {}",
                                        err.reason
                                    );
                                }
                                Ok(())
                            },
                        );
                    }
                }));
            }
            if o.has_named_property("progress")? {
                let v: Unknown = o.get_named_property("progress")?;
                if v.get_type()? != ValueType::Undefined {
                    let stream: ClassInstance<'_, ProgressStream> =
                        o.get_named_property("progress").map_err(|_| {
                            js_error(env, invalid("options.progress", "must be a ProgressStream"))
                        })?;
                    let tx = stream.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let Some(tx) = tx else {
                        return Err(js_error(
                            env,
                            invalid(
                                "options.progress",
                                "this ProgressStream was already used by a run",
                            ),
                        ));
                    };
                    callbacks.push(Arc::new(move |e: &Event| {
                        let _ = tx.send(e.clone());
                    }));
                }
            }
            if let Some(signal) = o.get::<Object>("signal")? {
                if signal.get::<bool>("aborted")?.unwrap_or(false) {
                    token.cancel();
                } else {
                    let add: AddEventListener<'_> =
                        signal.get_named_property("addEventListener").map_err(|_| {
                            js_error(env, invalid("options.signal", "must be an AbortSignal"))
                        })?;
                    let t = token.clone();
                    let on_abort =
                        env.create_function_from_closure::<(), (), _>("onAbort", move |_| {
                            t.cancel();
                            Ok(())
                        })?;
                    add.apply(signal, FnArgs::from(("abort".to_string(), on_abort)))?;
                }
            }
        }
        let progress: Option<ProgressFn> = match callbacks.len() {
            0 => None,
            1 => callbacks.pop(),
            _ => Some(Arc::new(move |e: &Event| {
                for c in &callbacks {
                    c(e);
                }
            })),
        };
        let ex = self.inner.clone();
        promise(
            env,
            async move {
                let plan = plan_of(plan)?;
                ex.run(&plan, token, progress).await
            },
            |report| serde_json::to_value(&report).map_err(|e| Error::from_reason(e.to_string())),
        )
    }
}
