//! The planner: a pure, deterministic function from a restore point, a
//! request, profiles and a catalog to a [`Plan`].
//!
//! Flow: inputs are validated; facts are derived once ([`crate::policy::Facts`]);
//! the target is seeded from the request; every rule of every profile runs in
//! order and records its findings, transformations, post-actions and step
//! changes through one accumulator; the step graph is then built in the first
//! built-in profile's stage order. A blocked plan keeps every blocking finding
//! and has no steps.

mod build;
pub(crate) mod capabilities;
mod check;
mod fingerprint;
mod operate;
mod ops;
mod render;
mod seed;
mod step_kind;
mod support;
pub(crate) mod types;

pub use capabilities::{ALL_STEP_KINDS, CONFIDENTIAL_VM, Capabilities, Unsupported, kind_name};
pub use check::{check_replan, recorded_profiles, seal, verify_seal};
pub use operate::{effective_security, template_resources};
pub use ops::{CloudAction, DiskSource, Operation, ResourceSpec};
pub use render::{render_text, to_dot, to_json, to_mermaid};
pub use types::*;

pub(crate) use crate::units::short_digest;
pub use fingerprint::{catalog_digest, restore_point_digest};

use crate::error::{Error, Result};
use crate::model::*;
use crate::policy::custom::{CelInput, evaluate};
use crate::policy::{Ctx, Decisions, Eval, NsgPlan, Profile};

/// A planner bound to one destination catalog. Build it once and plan many
/// restores with it: the catalog's indexes and digest are computed here.
pub struct Planner<'c> {
    index: CatalogIndex<'c>,
    catalog_digest: String,
    capabilities: Option<Capabilities>,
}

impl<'c> Planner<'c> {
    /// Validates the catalog and prepares its indexes.
    pub fn new(catalog: &'c Catalog) -> Result<Self> {
        catalog.validate_at("$.catalog")?;
        Ok(Planner {
            index: CatalogIndex::new(catalog),
            catalog_digest: fingerprint::digest_json(catalog),
            capabilities: None,
        })
    }

    /// Plans for a cloud that can perform only `capabilities` (see
    /// [`crate::exec::Cloud::capabilities`]): a plan with a step the cloud
    /// cannot run is blocked (VMR-07, one finding per step) instead of
    /// `ready`. The capabilities are recorded in `plan.inputs`.
    pub fn for_cloud(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = Some(capabilities);
        self
    }

    /// Plans one restore. `profiles` run in order; the first with stages
    /// gives the stage order. Errors are for input that cannot be planned at
    /// all (invalid fields, an unknown destination region, a custom rule that
    /// fails to evaluate); anything a rule objects to is a blocking finding.
    pub fn plan(
        &self,
        rp: &RestorePoint,
        req: &RestoreRequest,
        profiles: &[Profile],
    ) -> Result<Plan> {
        rp.validate_at("$.restore_point")?;
        req.validate_at("$.request")?;
        if profiles.is_empty() {
            return Err(Error::invalid(
                "$.profiles",
                "at least one profile or custom rule set is needed",
            ));
        }
        let in_place = req.placement == Placement::InPlace;
        let region_name = if in_place {
            rp.vm.region.as_str()
        } else {
            req.destination.region.as_str()
        };
        let region = self
            .index
            .regions
            .get(region_name)
            .copied()
            .ok_or_else(|| {
                let hint = suggest(region_name, self.index.regions.keys().copied())
                    .map(|s| format!("; did you mean '{s}'?"))
                    .unwrap_or_default();
                let path = if in_place {
                    "$.restore_point.vm.region"
                } else {
                    "$.request.destination.region"
                };
                Error::invalid(
                    path,
                    format!(
                        "unknown region '{}': not in the destination catalog{hint}",
                        region_name.chars().take(64).collect::<String>()
                    ),
                )
            })?;

        let target = seed::initial_target(rp, req, &self.index);
        let exists = self
            .index
            .existing_vm(
                &target.subscription_id,
                &target.resource_group,
                &target.vm_name,
            )
            .is_some();
        let ctx = Ctx::new(rp, req, &self.index, region, exists);
        let nsg = match &req.destination.network_security_group {
            Some(n) => NsgPlan::Existing(n.clone()),
            None => NsgPlan::None,
        };
        let mut d = Decisions::new(target, nsg);

        let mut cel_input = None;
        for profile in profiles {
            for rule in &profile.rules {
                match &rule.eval {
                    Eval::Builtin(f) => f(rule, &ctx, &mut d),
                    Eval::Custom(cond) => {
                        if cel_input.is_none() {
                            cel_input = Some(CelInput::new(&ctx)?);
                        }
                        if let Some(input) = &cel_input {
                            evaluate(rule, cond, input, &ctx, &mut d)?;
                        }
                    }
                }
            }
        }

        let stages: &[crate::policy::Stage] = match profiles.iter().find(|p| !p.stages.is_empty()) {
            Some(p) => &p.stages,
            None => crate::policy::default_stages(),
        };
        let fingerprint = Fingerprint::compute(rp, req, &self.catalog_digest, profiles);
        Ok(build::finish(
            &ctx,
            d,
            stages,
            profiles,
            fingerprint,
            self.capabilities.as_ref(),
        ))
    }
}

/// Plans one restore against `catalog` (see [`Planner::plan`]). To plan many
/// restores against one catalog, build a [`Planner`] once instead.
pub fn plan(
    rp: &RestorePoint,
    req: &RestoreRequest,
    profiles: &[Profile],
    catalog: &Catalog,
) -> Result<Plan> {
    Planner::new(catalog)?.plan(rp, req, profiles)
}
