//! The exception classes and the one conversion from core errors to them.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    VmrestoreError,
    PyException,
    "Base class of every vmrestore error; `.code` is the core's stable error code."
);
create_exception!(
    _native,
    ParseError,
    VmrestoreError,
    "Malformed input (E_PARSE)."
);
create_exception!(
    _native,
    InvalidInputError,
    VmrestoreError,
    "Input that breaks a rule of the model (E_INVALID)."
);
create_exception!(
    _native,
    UnknownProfileError,
    VmrestoreError,
    "Unknown profile name (E_UNKNOWN_PROFILE)."
);
create_exception!(
    _native,
    RuleError,
    VmrestoreError,
    "A custom rule that cannot be loaded (E_RULE)."
);
create_exception!(
    _native,
    RuleEvaluationError,
    VmrestoreError,
    "A custom rule that failed to evaluate (E_RULE_EVAL)."
);
create_exception!(
    _native,
    RepositoryError,
    VmrestoreError,
    "A repository that cannot be read (E_REPOSITORY)."
);
create_exception!(
    _native,
    IntegrityError,
    VmrestoreError,
    "Data that does not match its digest (E_INTEGRITY)."
);
create_exception!(
    _native,
    PlanBlockedError,
    VmrestoreError,
    "The plan is blocked (E_PLAN_BLOCKED)."
);
create_exception!(
    _native,
    StalePlanError,
    VmrestoreError,
    "The plan's inputs changed (E_STALE_PLAN)."
);
create_exception!(
    _native,
    JournalError,
    VmrestoreError,
    "The journal cannot be used (E_JOURNAL)."
);
create_exception!(
    _native,
    CloudError,
    VmrestoreError,
    "A cloud call failed (E_CLOUD)."
);
create_exception!(
    _native,
    PlanMismatchError,
    VmrestoreError,
    "The plan differs from what the planner makes of its inputs: it was edited (E_PLAN_MISMATCH)."
);
create_exception!(
    _native,
    PlanSealError,
    VmrestoreError,
    "A required plan seal is missing or does not match (E_PLAN_SEAL)."
);
create_exception!(
    _native,
    UnsupportedError,
    VmrestoreError,
    "The cloud cannot run some steps of the plan; nothing was changed (E_UNSUPPORTED)."
);
create_exception!(
    _native,
    JournalLockedError,
    JournalError,
    "Another run holds the journal (E_JOURNAL_LOCKED)."
);

/// The one conversion from core errors to Python exceptions: a match on the
/// core's variants (the core's `Error` is `#[non_exhaustive]`, so a variant
/// added later lands on `VmrestoreError` until it is named here).
pub(crate) fn to_py_err(e: restore_core::Error) -> PyErr {
    use restore_core::Error as E;
    let msg = e.to_string();
    let err = match &e {
        E::Parse { .. } => ParseError::new_err(msg),
        E::Invalid { .. } => InvalidInputError::new_err(msg),
        E::UnknownProfile { .. } => UnknownProfileError::new_err(msg),
        E::Rule { .. } => RuleError::new_err(msg),
        E::RuleEvaluation { .. } => RuleEvaluationError::new_err(msg),
        E::Repository(_) => RepositoryError::new_err(msg),
        E::Integrity { .. } => IntegrityError::new_err(msg),
        E::PlanBlocked(_) => PlanBlockedError::new_err(msg),
        E::StalePlan(_) => StalePlanError::new_err(msg),
        E::PlanMismatch { .. } => PlanMismatchError::new_err(msg),
        E::PlanSeal(_) => PlanSealError::new_err(msg),
        E::Unsupported { .. } => UnsupportedError::new_err(msg),
        E::Journal(_) => JournalError::new_err(msg),
        E::JournalLocked(_) => JournalLockedError::new_err(msg),
        E::Cloud(_) => CloudError::new_err(msg),
        _ => VmrestoreError::new_err(msg),
    };
    Python::attach(|py| {
        let _ = err.value(py).setattr("code", e.code());
    });
    err
}

/// Adds the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("VmrestoreError", py.get_type::<VmrestoreError>())?;
    m.add("ParseError", py.get_type::<ParseError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("UnknownProfileError", py.get_type::<UnknownProfileError>())?;
    m.add("RuleError", py.get_type::<RuleError>())?;
    m.add("RuleEvaluationError", py.get_type::<RuleEvaluationError>())?;
    m.add("RepositoryError", py.get_type::<RepositoryError>())?;
    m.add("IntegrityError", py.get_type::<IntegrityError>())?;
    m.add("PlanBlockedError", py.get_type::<PlanBlockedError>())?;
    m.add("StalePlanError", py.get_type::<StalePlanError>())?;
    m.add("JournalError", py.get_type::<JournalError>())?;
    m.add("CloudError", py.get_type::<CloudError>())?;
    m.add("PlanMismatchError", py.get_type::<PlanMismatchError>())?;
    m.add("PlanSealError", py.get_type::<PlanSealError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("JournalLockedError", py.get_type::<JournalLockedError>())?;
    Ok(())
}
