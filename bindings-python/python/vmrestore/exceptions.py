"""The exception hierarchy: every error is a ``VmrestoreError`` whose
``code`` attribute is the core's stable error code (``E_PARSE``,
``E_INVALID``, ``E_INTEGRITY``, ...)."""

from ._native import (
    CloudError,
    IntegrityError,
    InvalidInputError,
    JournalError,
    JournalLockedError,
    ParseError,
    PlanBlockedError,
    PlanMismatchError,
    PlanSealError,
    RepositoryError,
    RuleError,
    RuleEvaluationError,
    StalePlanError,
    UnknownProfileError,
    UnsupportedError,
    VmrestoreError,
)

__all__ = [
    "CloudError",
    "IntegrityError",
    "InvalidInputError",
    "JournalError",
    "JournalLockedError",
    "ParseError",
    "PlanBlockedError",
    "PlanMismatchError",
    "PlanSealError",
    "RepositoryError",
    "RuleError",
    "RuleEvaluationError",
    "StalePlanError",
    "UnknownProfileError",
    "UnsupportedError",
    "VmrestoreError",
]
