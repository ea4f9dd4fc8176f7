//! The library's own checks (`VMR-`), run after every built-in profile's
//! rules. They cover what any restore into Azure must respect, where a
//! product's documents are silent.

use super::*;
use crate::model::*;
use crate::plan::OutcomeKind::*;

const SOURCE: &str = "vmrestore (Azure platform constraint)";

pub(super) fn rules() -> Vec<Rule> {
    vec![
        Rule::builtin(
            "VMR-01",
            &[Transform, Block],
            "zones: keep the source's where the region has it, else drop it; a requested zone must exist",
            SOURCE,
            vmr01,
        ),
        Rule::builtin(
            "VMR-02",
            &[Block],
            "the VM size must support the number of data disks",
            SOURCE,
            vmr02,
        ),
        Rule::builtin(
            "VMR-03",
            &[Warn],
            "a VM size the catalog does not know cannot be checked",
            SOURCE,
            vmr03,
        ),
        Rule::builtin(
            "VMR-04",
            &[Warn],
            "access-restricted destination regions need an enabled subscription",
            SOURCE,
            vmr04,
        ),
    ]
}

fn vmr01(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if d.zone_decided {
        return;
    }
    let region = c
        .cat
        .regions
        .get(d.target.region.as_str())
        .copied()
        .unwrap_or(c.dst_region);
    match c.dest.zone {
        ZoneChoice::Zone(z) if !region.zones.contains(&z) => {
            d.block(
                r,
                "$.request.destination.zone",
                format!("zone {z} does not exist in {}", region.name),
            );
        }
        ZoneChoice::Zone(z) => {
            d.set_zone(r, c.vm.zone, z, format!("the VM is restored in zone {z}"))
        }
        ZoneChoice::None => {
            // The target is seeded without a zone already: put the source's
            // back so that dropping it is recorded.
            d.target.zone = d.target.zone.or(c.vm.zone);
            d.drop_zone(r, "no zone requested");
        }
        ZoneChoice::Auto => {
            if let Some(z) = d.target.zone
                && !region.zones.contains(&z)
            {
                d.drop_zone(
                    r,
                    format!("zone {z} is dropped: {} has no zone {z}", region.name),
                );
            }
        }
    }
}

fn vmr02(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if d.rules_applied.contains("VE-22")
        || c.dest.vm_size.is_none() && !c.cat.sizes.contains_key(d.target.vm_size.as_str())
    {
        return;
    }
    d.block_if_size_too_small(r, c);
}

fn vmr03(r: &Rule, c: &Ctx, d: &mut Decisions) {
    if !c.cat.sizes.is_empty() && !c.cat.sizes.contains_key(d.target.vm_size.as_str()) {
        let hint = crate::model::suggest(&d.target.vm_size, c.cat.sizes.keys().copied())
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        d.warn(r, "$.request.destination.vm_size", format!("VM size '{}' is not in the catalog: its disk count and generation cannot be checked{hint}", d.target.vm_size));
    }
}

fn vmr04(r: &Rule, c: &Ctx, d: &mut Decisions) {
    let region = c
        .cat
        .regions
        .get(d.target.region.as_str())
        .copied()
        .unwrap_or(c.dst_region);
    if region.access_restricted {
        d.warn(
            r,
            "$.request.destination.region",
            format!(
                "{} is access-restricted: the destination subscription must be enabled for it",
                region.name
            ),
        );
    }
}
