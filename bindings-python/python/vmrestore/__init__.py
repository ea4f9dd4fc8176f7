"""vmrestore: plan and run restores of backed-up VMs into Microsoft Azure.

Thin bindings over the Rust core (``restore-core``): every rule, plan and
data-path decision is made there.
"""

from ._native import (
    ArmCloud,
    Attempt,
    CreatedResource,
    DiskReport,
    Estimates,
    Finding,
    ObjectStoreRepository,
    PageBlobSink,
    Plan,
    PostAction,
    ProgressStream,
    Report,
    ReportError,
    Repository,
    RestoreExecutor,
    SimCloud,
    Step,
    StepReport,
    Transformation,
    VmReport,
    __version__,
    build_demo,
    builtin_catalog,
    builtin_profiles,
    check_rules,
    plan,
    plan_many,
    schema,
)
from . import exceptions
from .exceptions import *  # noqa: F403 (the exception classes, listed in exceptions.__all__)

__all__ = [
    "ArmCloud",
    "Attempt",
    "CreatedResource",
    "DiskReport",
    "Estimates",
    "Finding",
    "ObjectStoreRepository",
    "PageBlobSink",
    "Plan",
    "PostAction",
    "ProgressStream",
    "Report",
    "ReportError",
    "Repository",
    "RestoreExecutor",
    "SimCloud",
    "Step",
    "StepReport",
    "Transformation",
    "VmReport",
    "__version__",
    "build_demo",
    "builtin_catalog",
    "builtin_profiles",
    "check_rules",
    "plan",
    "plan_many",
    "schema",
]
__all__ += exceptions.__all__
