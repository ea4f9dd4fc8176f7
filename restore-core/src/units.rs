//! Units and names as messages and resources show them: sizes in binary
//! units, LUNs, whole-MiB rounding and restored disks' names. Pure helpers
//! with no dependency above the model, used by the policy, the planner and
//! the renderers alike.

use sha2::{Digest, Sha256};

use crate::model::Disk;

/// Smallest managed disk Azure takes for direct upload (AZURE.md: 20 MiB;
/// a page blob takes any whole number of MiB).
pub(crate) const MIN_UPLOAD_DISK: u64 = 20 << 20;

/// Rounds a size up to a whole MiB, as Azure requires of disk sizes.
pub(crate) fn round_up_mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20).saturating_mul(1 << 20)
}

/// Name of a restored disk: `<vm>-<disk>` when that is a valid disk name,
/// else shortened to one deterministically (at most 80 characters, ending
/// with a hash of the full name: see `NameKind::fit`).
pub(crate) fn disk_name(vm: &str, disk: &str) -> String {
    crate::model::names::NameKind::Disk.fit(&format!("{vm}-{disk}"))
}

/// A data disk's LUN as messages show it (` (lun 2)`), empty without one.
pub(crate) fn lun_text(d: &Disk) -> String {
    d.lun.map(|l| format!(" (lun {l})")).unwrap_or_default()
}

/// Binary sizes as people read them: `9.0 TiB`, `512 GiB`. Formats lazily,
/// so it can be used inside `format!` without an intermediate `String`.
pub fn human_bytes(b: u64) -> HumanBytes {
    HumanBytes(b)
}

/// A byte count displayed in binary units (see [`human_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanBytes(pub u64);

impl std::fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let b = self.0;
        let mut u = 0;
        let mut whole = b;
        while whole >= 1024 && u < UNITS.len() - 1 {
            whole /= 1024;
            u += 1;
        }
        let unit = 1u64 << (10 * u);
        if b.is_multiple_of(unit) {
            write!(f, "{} {}", b / unit, UNITS[u])
        } else {
            // One decimal, rounded half up, in integer arithmetic.
            let tenths = (u128::from(b) * 10 + u128::from(unit) / 2) / u128::from(unit);
            write!(f, "{}.{} {}", tenths / 10, tenths % 10, UNITS[u])
        }
    }
}

/// The first 12 hex digits of the SHA-256 of `bytes`: for deterministic names.
pub(crate) fn short_digest(bytes: &[u8]) -> String {
    let mut h = hex::encode(Sha256::digest(bytes));
    h.truncate(12);
    h
}
