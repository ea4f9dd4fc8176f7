//! Which steps of a plan a cloud's [`Capabilities`] cannot run.

use super::capabilities::{CONFIDENTIAL_VM, Capabilities, Unsupported};
use super::types::{Plan, Step, StepKind, Target};
use crate::model::SecurityType;

impl Capabilities {
    /// Why this cloud cannot run `step` of a plan for `target`, if it
    /// cannot.
    pub fn refuses(&self, target: &Target, step: &Step) -> Option<String> {
        if !self.step_kinds.contains(&step.kind) {
            return Some(self.missing.get(&step.kind).cloned().unwrap_or_else(|| {
                format!("the {} cloud does not run this step kind", self.cloud)
            }));
        }
        options(target, step)
            .into_iter()
            .find_map(|o| self.refused_options.get(o).cloned())
    }

    /// Every step of `plan` this cloud cannot run, in plan order; `run`
    /// picks the steps that will run at all (a run to a disk sink runs only
    /// the data steps).
    pub fn unsupported(&self, plan: &Plan, run: impl Fn(&Step) -> bool) -> Vec<Unsupported> {
        plan.steps
            .iter()
            .filter(|s| run(s))
            .filter_map(|s| {
                self.refuses(&plan.target, s).map(|reason| Unsupported {
                    step: s.id.to_string(),
                    kind: s.kind,
                    reason,
                })
            })
            .collect()
    }
}

/// The options `step` uses, for [`Capabilities::refused_options`].
fn options(target: &Target, step: &Step) -> Vec<&'static str> {
    let mut o = Vec::new();
    if matches!(step.kind, StepKind::VirtualMachine | StepKind::CreateDisk)
        && target.security_type == SecurityType::Confidential
    {
        o.push(CONFIDENTIAL_VM);
    }
    o
}
