//! What a cloud can perform (issue 13): the step kinds it runs and the
//! options it refuses. A [`crate::exec::Cloud`] declares its
//! [`Capabilities`]; the executor refuses a plan with any step the cloud
//! cannot run before the first change (`E_UNSUPPORTED`, listing every such
//! step), and a [`super::Planner`] given them blocks the plan instead
//! (VMR-07), so that `ready` means "runs on the cloud it is for".

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::step_kind::StepKind;

/// An option of a step that a cloud may refuse while running the step kind.
pub const CONFIDENTIAL_VM: &str = "confidential_vm";

/// What a cloud can perform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Capabilities {
    /// Which cloud (`arm`, `sim`, or a host's own name).
    pub cloud: String,
    /// Step kinds it runs.
    pub step_kinds: BTreeSet<StepKind>,
    /// Why each other step kind cannot run (shown in findings and errors).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing: BTreeMap<StepKind, String>,
    /// Options of supported step kinds it refuses (e.g. `confidential_vm`),
    /// with why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused_options: BTreeMap<String, String>,
}

/// A step a cloud cannot run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Unsupported {
    /// The step's ID.
    pub step: String,
    /// Its kind.
    pub kind: StepKind,
    /// Why the cloud cannot run it.
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.step,
            kind_name(self.kind),
            self.reason
        )
    }
}

/// The snake_case name of a step kind, as in the plan's JSON.
pub fn kind_name(k: StepKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{k:?}"))
}

/// Every step kind.
pub const ALL_STEP_KINDS: [StepKind; 21] = [
    StepKind::VerifyRestorePoint,
    StepKind::ResourceGroup,
    StepKind::KeyVault,
    StepKind::KeyVaultAccess,
    StepKind::StagingAccount,
    StepKind::HelperAppliance,
    StepKind::SnapshotExistingDisks,
    StepKind::DeleteExistingVm,
    StepKind::CreateDisk,
    StepKind::WriteDisk,
    StepKind::FinalizeDisk,
    StepKind::BootFix,
    StepKind::ConvertToManaged,
    StepKind::NetworkSecurityGroup,
    StepKind::PublicIp,
    StepKind::NetworkInterface,
    StepKind::VirtualMachine,
    StepKind::Template,
    StepKind::SwapDisks,
    StepKind::PowerOn,
    StepKind::DeleteExistingDisks,
];

impl Capabilities {
    /// A cloud that runs every step kind with every option.
    pub fn all(cloud: &str) -> Capabilities {
        Capabilities {
            cloud: cloud.to_string(),
            step_kinds: ALL_STEP_KINDS.into_iter().collect(),
            missing: BTreeMap::new(),
            refused_options: BTreeMap::new(),
        }
    }

    /// Takes `kind` away, saying why.
    pub fn without(mut self, kind: StepKind, why: &str) -> Capabilities {
        self.step_kinds.remove(&kind);
        self.missing.insert(kind, why.to_string());
        self
    }

    /// Refuses `option` of otherwise supported steps, saying why.
    pub fn refusing(mut self, option: &str, why: &str) -> Capabilities {
        self.refused_options
            .insert(option.to_string(), why.to_string());
        self
    }
}
