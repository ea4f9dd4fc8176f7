//! Policies: vendor profiles made of rules, and custom rules written in CEL.
//!
//! A [`Rule`] is data (ID, outcome kinds, summary, source) plus a condition.
//! Built-in conditions are Rust functions in one module per product
//! (`commvault.rs`, `veeam.rs`, `azure_backup.rs`) because many of them walk the
//! disks, look things up in the catalog and apply transformations that need
//! code; custom conditions are CEL expressions ([`custom`]) over the same
//! input. Both produce their outcomes through one accumulator, which holds the
//! fixed vocabulary of transformations and step changes.

mod azure_backup;
pub(crate) mod cel_budget;
mod commvault;
mod context;
mod core_rules;
pub mod custom;
mod decisions;
mod veeam;

pub use crate::units::{HumanBytes, human_bytes};
pub(crate) use context::Ctx;
pub use context::{Facts, RuleInput};
pub(crate) use core_rules::{check_names, unsupported_steps};
pub(crate) use decisions::{Decisions, NsgPlan};

use crate::error::{Error, Result};
use crate::plan::{OutcomeKind, StepKind};

/// The names of the built-in profiles.
pub const BUILTIN_PROFILES: [&str; 4] = ["commvault", "veeam", "azure-backup@2016", "azure-backup"];

/// A rule: identity and provenance as data, plus the condition that decides
/// when it fires.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable ID, e.g. `CV-02`.
    pub id: String,
    /// The outcome kinds it can produce.
    pub kinds: Vec<OutcomeKind>,
    /// One-line summary of what the rule says.
    pub summary: String,
    /// Where it comes from.
    pub source: String,
    pub(crate) eval: Eval,
}

#[derive(Clone)]
pub(crate) enum Eval {
    Builtin(fn(&Rule, &Ctx, &mut Decisions)),
    Custom(std::sync::Arc<custom::CustomCondition>),
}

impl std::fmt::Debug for Eval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Eval::Builtin(_) => f.write_str("Builtin"),
            Eval::Custom(c) => write!(f, "Custom({:?})", c.expression),
        }
    }
}

impl Rule {
    pub(crate) fn builtin(
        id: &str,
        kinds: &[OutcomeKind],
        summary: &str,
        source: &str,
        f: fn(&Rule, &Ctx, &mut Decisions),
    ) -> Rule {
        Rule {
            id: id.into(),
            kinds: kinds.to_vec(),
            summary: summary.into(),
            source: source.into(),
            eval: Eval::Builtin(f),
        }
    }

    /// Whether the rule's condition is a CEL expression.
    pub fn is_custom(&self) -> bool {
        matches!(self.eval, Eval::Custom(_))
    }
}

/// A named stage of a product's restore process, with the steps it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Stage name as the product documents it.
    pub name: std::sync::Arc<str>,
    /// Step kinds that belong to this stage.
    pub steps: Vec<StepKind>,
}

/// A profile: a product's rules and its restore stages, in order.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Profile name, e.g. `commvault` or `azure-backup@2016`.
    pub name: String,
    /// Human-readable product and version.
    pub description: String,
    /// Restore stages in order; empty for a custom rule set.
    pub stages: Vec<Stage>,
    /// Rules, in evaluation order.
    pub rules: Vec<Rule>,
    /// For a custom rule set, the text it was loaded from: plans record it
    /// so that the executor can plan them again.
    pub source: Option<String>,
}

impl Profile {
    /// A built-in profile by name: `commvault`, `veeam`, `azure-backup@2016`
    /// or `azure-backup`.
    pub fn builtin(name: &str) -> Result<Profile> {
        let mut p = match name {
            "commvault" => commvault::profile(),
            "veeam" => veeam::profile(),
            "azure-backup@2016" => azure_backup::profile_2016(),
            "azure-backup" => azure_backup::profile_current(),
            other => return Err(Error::UnknownProfile(other.chars().take(64).collect())),
        };
        // The library's own checks (VMR-) run under every built-in profile.
        p.rules.extend(core_rules::rules());
        Ok(p)
    }

    /// A rule of this profile by ID.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// A profile made of custom rules only (see [`custom::load`]).
    pub fn custom(name: &str, rules: Vec<Rule>) -> Profile {
        Profile {
            name: name.into(),
            description: format!("custom rules '{name}'"),
            stages: Vec::new(),
            rules,
            source: None,
        }
    }
}

/// The stage order used when no built-in profile gives one.
pub(crate) fn default_stages() -> &'static [Stage] {
    use StepKind::*;
    static DEFAULT: std::sync::OnceLock<Vec<Stage>> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| {
        stages(&[
            ("verify restore point", &[VerifyRestorePoint]),
            (
                "prepare destination",
                &[
                    ResourceGroup,
                    KeyVault,
                    KeyVaultAccess,
                    StagingAccount,
                    HelperAppliance,
                    SnapshotExistingDisks,
                ],
            ),
            ("create disks", &[CreateDisk]),
            (
                "write data",
                &[WriteDisk, FinalizeDisk, BootFix, ConvertToManaged],
            ),
            // The point of no return: only after every disk is verified.
            ("replace existing VM", &[DeleteExistingVm]),
            (
                "network",
                &[NetworkSecurityGroup, PublicIp, NetworkInterface],
            ),
            ("create VM", &[VirtualMachine, Template, SwapDisks]),
            ("finish", &[PowerOn, DeleteExistingDisks]),
        ])
    })
}

pub(crate) fn stages(list: &[(&str, &[StepKind])]) -> Vec<Stage> {
    list.iter()
        .map(|(n, s)| Stage {
            name: std::sync::Arc::from(*n),
            steps: s.to_vec(),
        })
        .collect()
}
