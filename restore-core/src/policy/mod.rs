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
pub(crate) use core_rules::{check_names, grow_small_disks, unsupported_steps};
pub(crate) use decisions::{Decisions, NsgPlan};

use crate::error::{Error, Result};
use crate::plan::types::{OutcomeKind, StepKind};

/// A built-in profile as registered in [`BUILTIN`]: the one place that names
/// a vendor profile. Every list of profiles (names, rule-ID prefixes reserved
/// for built-in rules, the known profiles of [`Error::UnknownProfile`]) is
/// derived from the registry.
#[derive(Debug)]
pub struct BuiltinProfile {
    /// Profile name, e.g. `commvault` or `azure-backup@2016`.
    pub name: &'static str,
    /// Human-readable product and version.
    pub description: &'static str,
    /// The prefix of its rule IDs, e.g. `CV-`; custom rules cannot use it.
    pub rule_prefix: &'static str,
    stages: fn() -> Vec<Stage>,
    rules: fn() -> Vec<Rule>,
}

/// The registry of built-in profiles, in the order they are listed.
///
/// Adding a profile is adding an entry here (and its module).
pub const BUILTIN: &[BuiltinProfile] = &[
    BuiltinProfile {
        name: "commvault",
        description: "Commvault Virtual Server Agent, Azure Resource Manager restores",
        rule_prefix: "CV-",
        stages: commvault::restore_stages,
        rules: commvault::rules,
    },
    BuiltinProfile {
        name: "veeam",
        description: "Veeam Backup & Replication 13, restore to Microsoft Azure",
        rule_prefix: "VE-",
        stages: veeam::restore_stages,
        rules: veeam::rules,
    },
    BuiltinProfile {
        name: "azure-backup@2016",
        description: "Azure Backup as in seed 004 (2016)",
        rule_prefix: "AB16-",
        stages: azure_backup::restore_stages,
        rules: azure_backup::rules_2016,
    },
    BuiltinProfile {
        name: "azure-backup",
        description: "Azure Backup, as documented from 2023 on",
        rule_prefix: "AB-",
        stages: azure_backup::restore_stages,
        rules: azure_backup::rules_current,
    },
];

/// The names of the built-in profiles, in registry order.
pub const BUILTIN_PROFILES: [&str; BUILTIN.len()] = {
    let mut names = [""; BUILTIN.len()];
    let mut i = 0;
    while i < BUILTIN.len() {
        names[i] = BUILTIN[i].name;
        i += 1;
    }
    names
};

/// The prefix of the library's own checks, which run under every built-in
/// profile.
pub const CORE_RULE_PREFIX: &str = "VMR-";

/// The rule-ID prefixes reserved for built-in rules: each profile's and
/// [`CORE_RULE_PREFIX`].
pub fn reserved_rule_prefixes() -> impl Iterator<Item = &'static str> {
    BUILTIN
        .iter()
        .map(|b| b.rule_prefix)
        .chain([CORE_RULE_PREFIX])
}

/// The built-in profiles' names, comma-separated (for messages).
pub(crate) fn known_profiles() -> String {
    BUILTIN_PROFILES.join(", ")
}

impl BuiltinProfile {
    /// The registered profile by name.
    pub fn get(name: &str) -> Option<&'static BuiltinProfile> {
        BUILTIN.iter().find(|b| b.name == name)
    }

    /// The registered profile whose rule-ID prefix `id` starts with.
    pub fn of_rule(id: &str) -> Option<&'static BuiltinProfile> {
        BUILTIN.iter().find(|b| id.starts_with(b.rule_prefix))
    }

    /// The profile's own rules (without the library's `VMR-` checks), in
    /// evaluation order.
    pub fn own_rules(&self) -> Vec<Rule> {
        (self.rules)()
    }

    /// The profile, with the library's own checks after its rules.
    pub fn profile(&self) -> Profile {
        let mut rules = (self.rules)();
        rules.extend(core_rules::rules());
        Profile {
            name: self.name.into(),
            description: self.description.into(),
            stages: (self.stages)(),
            rules,
            source: None,
        }
    }
}

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
    /// A built-in profile by name (see [`BUILTIN_PROFILES`]).
    pub fn builtin(name: &str) -> Result<Profile> {
        match BuiltinProfile::get(name) {
            Some(b) => Ok(b.profile()),
            None => Err(Error::UnknownProfile {
                name: name.chars().take(64).collect(),
                known: known_profiles(),
            }),
        }
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
                StepKind::through(ResourceGroup, SnapshotExistingDisks),
            ),
            ("create disks", &[CreateDisk]),
            ("write data", StepKind::through(WriteDisk, ConvertToManaged)),
            // The point of no return: only after every disk is verified.
            ("replace existing VM", &[DeleteExistingVm]),
            (
                "network",
                StepKind::through(NetworkSecurityGroup, NetworkInterface),
            ),
            ("create VM", StepKind::through(VirtualMachine, SwapDisks)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_names_each_profile_once_and_each_prefix_once() {
        let names: std::collections::BTreeSet<_> = BUILTIN.iter().map(|b| b.name).collect();
        assert_eq!(names.len(), BUILTIN.len());
        assert_eq!(BUILTIN_PROFILES.len(), BUILTIN.len());
        let prefixes: Vec<&str> = reserved_rule_prefixes().collect();
        for (i, p) in prefixes.iter().enumerate() {
            assert!(p.ends_with('-'), "{p}");
            for (j, q) in prefixes.iter().enumerate() {
                // No prefix may start another: a rule ID has one owner.
                assert!(i == j || !q.starts_with(p), "{p} is a prefix of {q}");
            }
        }
    }

    #[test]
    fn every_registered_profile_builds_with_its_own_prefix() {
        for b in BUILTIN {
            let p = Profile::builtin(b.name).unwrap();
            assert_eq!(p.name, b.name);
            assert_eq!(p.description, b.description);
            assert!(!p.stages.is_empty(), "{}", b.name);
            let own = b.own_rules();
            assert!(!own.is_empty(), "{}", b.name);
            for r in &own {
                assert!(r.id.starts_with(b.rule_prefix), "{} in {}", r.id, b.name);
                assert_eq!(BuiltinProfile::of_rule(&r.id).map(|o| o.name), Some(b.name));
            }
            // Its own rules first, then the library's checks.
            let ids: Vec<&str> = p.rules.iter().map(|r| r.id.as_str()).collect();
            assert!(ids[..own.len()].iter().zip(&own).all(|(a, r)| *a == r.id));
            assert!(
                ids[own.len()..]
                    .iter()
                    .all(|i| i.starts_with(CORE_RULE_PREFIX))
            );
        }
    }

    #[test]
    fn an_unknown_profile_lists_every_registered_one() {
        let e = Profile::builtin("netbackup").unwrap_err();
        assert!(matches!(e, Error::UnknownProfile { ref name, .. } if name == "netbackup"));
        let text = e.to_string();
        assert!(
            text.starts_with("unknown profile 'netbackup' (known: "),
            "{text}"
        );
        for b in BUILTIN {
            assert!(text.contains(b.name), "{text}");
        }
        assert!(text.ends_with(&format!("{})", BUILTIN_PROFILES.join(", "))));
    }

    #[test]
    fn custom_rules_cannot_take_a_reserved_prefix() {
        for p in reserved_rule_prefixes() {
            for id in [format!("{p}99"), format!("{}99", p.to_ascii_lowercase())] {
                let text = format!(
                    "name = \"x\"\n[[rules]]\nid = \"{id}\"\nwhen = \"true\"\noutcome = \"warn\"\nmessage = \"m\"\n"
                );
                let e = custom::load(&text, "x").unwrap_err().to_string();
                assert!(e.contains("reserved for built-in rules"), "{id}: {e}");
            }
        }
        assert!(custom::load("name = \"x\"\n[[rules]]\nid = \"ACME-01\"\nwhen = \"true\"\noutcome = \"warn\"\nmessage = \"m\"\n", "x").is_ok());
    }
}
