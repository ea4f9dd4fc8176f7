//! Python bindings of vmrestore: thin conversions around `restore-core`.
//! No rule, plan or data-path logic lives here.

mod aio;
mod azure;
mod convert;
mod errors;
mod executor;
mod gate;
mod logs;
mod plan;
mod report;
mod repository;
mod runtime;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let _ = runtime::MODULE_PID.set(std::process::id());
    let py = m.py();
    // `logging` first: atexit hooks run last-registered first, so ours
    // forwards the last records before logging shuts down.
    logs::install(py);
    py.import("atexit")?
        .call_method1("register", (wrap_pyfunction!(aio::_at_exit, m)?,))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(plan::plan, m)?)?;
    m.add_function(wrap_pyfunction!(plan::plan_many, m)?)?;
    m.add_function(wrap_pyfunction!(plan::check_rules, m)?)?;
    m.add_function(wrap_pyfunction!(plan::builtin_catalog, m)?)?;
    m.add_function(wrap_pyfunction!(plan::builtin_profiles, m)?)?;
    m.add_function(wrap_pyfunction!(plan::schema, m)?)?;
    m.add_function(wrap_pyfunction!(plan::build_demo, m)?)?;
    m.add_class::<plan::Plan>()?;
    m.add_class::<plan::Finding>()?;
    m.add_class::<plan::Transformation>()?;
    m.add_class::<plan::Step>()?;
    m.add_class::<plan::PostAction>()?;
    m.add_class::<plan::Estimates>()?;
    m.add_class::<repository::Repository>()?;
    m.add_class::<executor::SimCloud>()?;
    m.add_class::<azure::ArmCloud>()?;
    m.add_class::<azure::ObjectStoreRepository>()?;
    m.add_class::<azure::PageBlobSink>()?;
    m.add_class::<report::Report>()?;
    m.add_class::<report::StepReport>()?;
    m.add_class::<report::DiskReport>()?;
    m.add_class::<report::ReportError>()?;
    m.add_class::<report::Attempt>()?;
    m.add_class::<report::CreatedResource>()?;
    m.add_class::<report::VmReport>()?;
    m.add_class::<executor::ProgressStream>()?;
    m.add_class::<executor::RestoreExecutor>()?;
    errors::register(m)?;
    Ok(())
}
