//! Semantic validation of parsed input: sizes, names, IDs and cross-field
//! consistency. Every error names the JSON path of the bad field.

use std::collections::HashSet;

use super::names::{NameKind, check_name_or_id, clip, is_guid, parse_resource_id};
use super::*;
use crate::error::{Error, Result};

/// Largest disk size accepted anywhere (Azure's largest disk is 64 TiB).
pub const MAX_DISK_BYTES: u64 = 64 * TIB;

/// Types that can check themselves after parsing.
pub trait Validate {
    /// Checks the value; the error names the JSON path of the first bad field.
    fn validate(&self) -> Result<()> {
        self.validate_at("$")
    }
    /// Checks the value, which sits at `path` in its document.
    fn validate_at(&self, path: &str) -> Result<()>;
}

fn err<T>(path: String, msg: impl Into<String>) -> Result<T> {
    Err(Error::invalid(path, msg))
}

fn guid(path: impl FnOnce() -> String, s: &str) -> Result<()> {
    if is_guid(s) {
        Ok(())
    } else {
        err(path(), format!("'{}' is not a GUID", clip(s)))
    }
}

/// Azure resource names: 1..=max characters of letters, digits, `-`, `_`, `.`,
/// starting with a letter or digit and not ending with `.` or `-`.
pub(crate) fn is_valid_resource_name(s: &str, max: usize) -> bool {
    s.len() <= max && NameKind::Disk.is_valid(s)
}

/// A name of `kind` (Azure's naming rules, `names.rs`).
fn name(path: impl FnOnce() -> String, s: &str, kind: NameKind) -> Result<()> {
    kind.check(s).or_else(|m| err(path(), m))
}

/// A name of `kind`, or a resource ID of its type.
fn name_or_id(path: impl FnOnce() -> String, s: &str, kind: NameKind) -> Result<()> {
    check_name_or_id(kind, s).or_else(|m| err(path(), m))
}

/// An ARM resource ID of type `ty`, every segment checked.
fn resource_id(path: impl FnOnce() -> String, s: &str, ty: &str) -> Result<()> {
    parse_resource_id(s, Some(ty))
        .map(drop)
        .or_else(|m| err(path(), m))
}

fn region(path: impl FnOnce() -> String, s: &str) -> Result<()> {
    if !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        Ok(())
    } else {
        err(
            path(),
            format!(
                "'{}' is not a region name (lowercase letters and digits, e.g. 'westeurope')",
                clip(s)
            ),
        )
    }
}

fn zone(path: impl FnOnce() -> String, z: u8) -> Result<()> {
    if (1..=3).contains(&z) {
        Ok(())
    } else {
        err(
            path(),
            format!("zone {z} does not exist: Azure zones are 1, 2 and 3"),
        )
    }
}

/// RFC 3339 date-time, checked for shape and field ranges.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(99);
    if !(digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't' | b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19))
    {
        return false;
    }
    if !((1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10))
        && num(11..13) < 24
        && num(14..16) < 60
        && num(17..19) < 61)
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

impl Validate for RestorePoint {
    fn validate_at(&self, p: &str) -> Result<()> {
        let id = &self.id;
        if id.is_empty()
            || id.len() > 128
            || id == "."
            || id == ".."
            || !id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        {
            return err(
                format!("{p}.id"),
                format!(
                    "'{}' is not a restore point ID: 1-128 letters, digits, '-', '_' or '.'",
                    clip(id)
                ),
            );
        }
        if !is_rfc3339(&self.time) {
            return err(
                format!("{p}.time"),
                format!("'{}' is not an RFC 3339 date-time", clip(&self.time)),
            );
        }
        if self.backup.kind == BackupKind::VeeamAgent && self.backup.agent_level.is_none() {
            return err(
                format!("{p}.backup.agent_level"),
                "a Veeam Agent backup needs its level (entire_computer, volume or file)",
            );
        }
        if let Some(v) = &self.vault {
            region(|| format!("{p}.vault.region"), &v.region)?;
        }
        self.vm.validate_at(&format!("{p}.vm"))?;
        for (i, kv) in self.key_vaults.iter().enumerate() {
            kv.validate_at(&format!("{p}.key_vaults[{i}]"))?;
        }
        for (i, des) in self.disk_encryption_sets.iter().enumerate() {
            des.validate_at(&format!("{p}.disk_encryption_sets[{i}]"))?;
        }
        for (i, d) in self.vm.disks.iter().enumerate() {
            if let Some(kv) = &d.encryption.ade_key_vault
                && !self.key_vaults.iter().any(|k| &k.name == kv)
            {
                return err(
                    format!("{p}.vm.disks[{i}].encryption.ade_key_vault"),
                    format!("key vault '{}' is not described in key_vaults", clip(kv)),
                );
            }
        }
        Ok(())
    }
}

impl Validate for KeyVault {
    fn validate_at(&self, p: &str) -> Result<()> {
        name(|| format!("{p}.name"), &self.name, NameKind::KeyVault)?;
        region(|| format!("{p}.region"), &self.region)?;
        guid(|| format!("{p}.subscription_id"), &self.subscription_id)
    }
}

impl Validate for DiskEncryptionSet {
    fn validate_at(&self, p: &str) -> Result<()> {
        name(
            || format!("{p}.name"),
            &self.name,
            NameKind::DiskEncryptionSet,
        )?;
        region(|| format!("{p}.region"), &self.region)?;
        guid(|| format!("{p}.subscription_id"), &self.subscription_id)?;
        name_or_id(
            || format!("{p}.key_vault"),
            &self.key_vault,
            NameKind::KeyVault,
        )
    }
}

impl Validate for VirtualMachine {
    fn validate_at(&self, p: &str) -> Result<()> {
        name(|| format!("{p}.name"), &self.name, NameKind::VirtualMachine)?;
        if let Some(id) = &self.resource_id {
            resource_id(
                || format!("{p}.resource_id"),
                id,
                NameKind::VirtualMachine.resource_type(),
            )?;
        }
        guid(|| format!("{p}.subscription_id"), &self.subscription_id)?;
        if let Some(t) = &self.tenant_id {
            guid(|| format!("{p}.tenant_id"), t)?;
        }
        region(|| format!("{p}.region"), &self.region)?;
        // In-place restores work in the source's resource group: its name
        // goes into ARM paths (and a DELETE of the VM).
        if let Some(rg) = &self.resource_group {
            name(
                || format!("{p}.resource_group"),
                rg,
                NameKind::ResourceGroup,
            )?;
        }
        if let Some(a) = &self.availability_set {
            name_or_id(
                || format!("{p}.availability_set"),
                a,
                NameKind::AvailabilitySet,
            )?;
        }
        if let Some(n) = &self.network_security_group {
            name(
                || format!("{p}.network_security_group"),
                n,
                NameKind::NetworkSecurityGroup,
            )?;
        }
        if let Some(h) = &self.dedicated_host {
            name_or_id(|| format!("{p}.dedicated_host"), h, NameKind::DedicatedHost)?;
        }
        if let Some(z) = self.zone {
            zone(|| format!("{p}.zone"), z)?;
        }
        if self.size.is_empty() || self.size.len() > 64 {
            return err(
                format!("{p}.size"),
                "VM size must be 1-64 characters, e.g. 'Standard_D4s_v5'",
            );
        }
        if self.disks.is_empty() {
            return err(format!("{p}.disks"), "a VM needs at least its OS disk");
        }
        if self.disks.len() > 256 {
            return err(
                format!("{p}.disks"),
                format!(
                    "{} disks is more than any Azure VM can have",
                    self.disks.len()
                ),
            );
        }
        let os = self.disks.iter().filter(|d| d.role == DiskRole::Os).count();
        if os != 1 {
            return err(
                format!("{p}.disks"),
                format!("exactly one disk must have role 'os' (found {os})"),
            );
        }
        // Paths are formatted only on failure: this runs for every disk of
        // every plan.
        let mut luns: u64 = 0;
        for (i, d) in self.disks.iter().enumerate() {
            if d.validate_at("").is_err() {
                d.validate_at(&format!("{p}.disks[{i}]"))?;
            }
            if self.disks[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&d.name))
            {
                return err(
                    format!("{p}.disks[{i}].name"),
                    format!("disk name '{}' is used twice", d.name),
                );
            }
            if let Some(l) = d.lun {
                // validate_at has checked l <= 63.
                if luns & (1 << l) != 0 {
                    return err(
                        format!("{p}.disks[{i}].lun"),
                        format!("LUN {l} is used by two disks"),
                    );
                }
                luns |= 1 << l;
            }
        }
        for (i, n) in self.nics.iter().enumerate() {
            let q = format!("{p}.nics[{i}]");
            name(|| format!("{q}.name"), &n.name, NameKind::NetworkInterface)?;
            name_or_id(
                || format!("{q}.virtual_network"),
                &n.virtual_network,
                NameKind::VirtualNetwork,
            )?;
            name(|| format!("{q}.subnet"), &n.subnet, NameKind::Subnet)?;
            if let Some(pip) = &n.public_ip {
                name(|| format!("{q}.public_ip"), pip, NameKind::PublicIp)?;
            }
            if let IpAllocation::Static { address } = &n.private_ip
                && address.parse::<std::net::IpAddr>().is_err()
            {
                return err(
                    format!("{q}.private_ip.address"),
                    format!("'{}' is not an IP address", clip(address)),
                );
            }
        }
        Ok(())
    }
}

impl Validate for Disk {
    fn validate_at(&self, p: &str) -> Result<()> {
        name(|| format!("{p}.name"), &self.name, NameKind::Disk)?;
        if let Some(des) = &self.encryption.disk_encryption_set {
            name_or_id(
                || format!("{p}.encryption.disk_encryption_set"),
                des,
                NameKind::DiskEncryptionSet,
            )?;
        }
        if self.size_bytes == 0 {
            return err(
                format!("{p}.size_bytes"),
                format!("disk '{}' has size 0", self.name),
            );
        }
        if self.size_bytes > MAX_DISK_BYTES {
            return err(
                format!("{p}.size_bytes"),
                format!(
                    "disk '{}': {} bytes is larger than any Azure disk (64 TiB)",
                    self.name, self.size_bytes
                ),
            );
        }
        if !self.size_bytes.is_multiple_of(512) {
            return err(
                format!("{p}.size_bytes"),
                format!(
                    "disk '{}': {} bytes is not a whole number of 512-byte sectors",
                    self.name, self.size_bytes
                ),
            );
        }
        if let Some(a) = self.allocated_bytes
            && a > self.size_bytes
        {
            return err(
                format!("{p}.allocated_bytes"),
                format!(
                    "disk '{}': {a} allocated bytes exceed its size of {} bytes",
                    self.name, self.size_bytes
                ),
            );
        }
        if !matches!(self.logical_sector_size, 512 | 4096) {
            return err(
                format!("{p}.logical_sector_size"),
                format!(
                    "{} is not a sector size (512 or 4096)",
                    self.logical_sector_size
                ),
            );
        }
        match (self.role, self.lun) {
            (DiskRole::Data, None) => {
                return err(
                    format!("{p}.lun"),
                    format!("data disk '{}' needs a LUN", self.name),
                );
            }
            (_, Some(l)) if l > 63 => {
                return err(format!("{p}.lun"), format!("LUN {l} is out of range 0-63"));
            }
            _ => {}
        }
        if let DiskStorage::Unmanaged {
            storage_account,
            blob,
            ..
        } = &self.storage
        {
            storage_account_name(|| format!("{p}.storage.storage_account"), storage_account)?;
            if blob.is_empty()
                || blob.split('/').any(|s| s == ".." || s == ".")
                || blob.starts_with('/')
            {
                return err(
                    format!("{p}.storage.blob"),
                    format!("'{}' is not a blob path (container/name.vhd)", clip(blob)),
                );
            }
        }
        if self.partition_count > 128 {
            return err(
                format!("{p}.partition_count"),
                format!(
                    "{} partitions is more than a GPT disk holds",
                    self.partition_count
                ),
            );
        }
        for (i, vg) in self.lvm_volume_groups.iter().enumerate() {
            let q = format!("{p}.lvm_volume_groups[{i}]");
            // An LVM name, not an Azure one; it becomes part of a disk name.
            if !is_valid_resource_name(&vg.name, 64) {
                return err(
                    format!("{q}.name"),
                    format!(
                        "'{}' is not a volume group name: 1-64 letters, digits, '_', '-' or '.', \
                         starting with a letter or digit, ending with a letter, digit or '_'",
                        clip(&vg.name)
                    ),
                );
            }
            if vg.size_bytes == 0 || vg.size_bytes > self.size_bytes {
                return err(
                    format!("{q}.size_bytes"),
                    format!(
                        "volume group '{}' of {} bytes does not fit disk '{}' of {} bytes",
                        vg.name, vg.size_bytes, self.name, self.size_bytes
                    ),
                );
            }
        }
        Ok(())
    }
}

fn storage_account_name(path: impl FnOnce() -> String, s: &str) -> Result<()> {
    name(path, s, NameKind::StorageAccount)
}

impl Validate for RestoreRequest {
    fn validate_at(&self, p: &str) -> Result<()> {
        let d = &self.destination;
        let q = format!("{p}.destination");
        if let Some(t) = &d.tenant_id {
            guid(|| format!("{q}.tenant_id"), t)?;
        }
        guid(|| format!("{q}.subscription_id"), &d.subscription_id)?;
        region(|| format!("{q}.region"), &d.region)?;
        name(
            || format!("{q}.resource_group"),
            &d.resource_group,
            NameKind::ResourceGroup,
        )?;
        if let Some(n) = &d.vm_name {
            name(|| format!("{q}.vm_name"), n, NameKind::VirtualMachine)?;
        }
        if let Some(s) = &d.vm_size
            && (s.is_empty() || s.len() > 64)
        {
            return err(format!("{q}.vm_size"), "VM size must be 1-64 characters");
        }
        if let Some(sa) = &d.staging_storage_account {
            storage_account_name(|| format!("{q}.staging_storage_account.name"), &sa.name)?;
            if let Some(r) = &sa.region {
                region(|| format!("{q}.staging_storage_account.region"), r)?;
            }
        }
        if let Some(v) = &d.virtual_network {
            name_or_id(
                || format!("{q}.virtual_network.name"),
                &v.name,
                NameKind::VirtualNetwork,
            )?;
            if let Some(s) = &v.subscription_id {
                guid(|| format!("{q}.virtual_network.subscription_id"), s)?;
            }
            if let Some(r) = &v.region {
                region(|| format!("{q}.virtual_network.region"), r)?;
            }
        }
        if let Some(s) = &d.subnet {
            name(|| format!("{q}.subnet"), s, NameKind::Subnet)?;
        }
        if let Some(n) = &d.network_security_group {
            name(
                || format!("{q}.network_security_group"),
                n,
                NameKind::NetworkSecurityGroup,
            )?;
        }
        if let ZoneChoice::Zone(z) = d.zone {
            zone(|| format!("{q}.zone"), z)?;
        }
        if let Some(a) = &d.availability_set {
            name_or_id(
                || format!("{q}.availability_set"),
                a,
                NameKind::AvailabilitySet,
            )?;
        }
        if let Some(des) = &d.disk_encryption_set {
            name_or_id(
                || format!("{q}.disk_encryption_set"),
                des,
                NameKind::DiskEncryptionSet,
            )?;
        }
        Ok(())
    }
}

impl Validate for Catalog {
    fn validate_at(&self, p: &str) -> Result<()> {
        let mut seen = HashSet::new();
        for (i, r) in self.regions.iter().enumerate() {
            region(|| format!("{p}.regions[{i}].name"), &r.name)?;
            if !seen.insert(r.name.as_str()) {
                return err(
                    format!("{p}.regions[{i}].name"),
                    format!("region '{}' is listed twice", r.name),
                );
            }
            for (j, z) in r.zones.iter().enumerate() {
                zone(|| format!("{p}.regions[{i}].zones[{j}]"), *z)?;
            }
        }
        for (i, r) in self.regions.iter().enumerate() {
            if let Some(pair) = &r.paired_region
                && !seen.contains(pair.as_str())
            {
                return err(
                    format!("{p}.regions[{i}].paired_region"),
                    format!("paired region '{}' is not in the catalog", clip(pair)),
                );
            }
        }
        let mut sizes = HashSet::new();
        for (i, s) in self.vm_sizes.iter().enumerate() {
            if s.name.is_empty() || !sizes.insert(s.name.as_str()) {
                return err(
                    format!("{p}.vm_sizes[{i}].name"),
                    format!("VM size '{}' is empty or listed twice", clip(&s.name)),
                );
            }
            if !s.gen1 && !s.gen2 {
                return err(
                    format!("{p}.vm_sizes[{i}]"),
                    format!("VM size '{}' supports neither generation", s.name),
                );
            }
        }
        for (i, v) in self.existing.vms.iter().enumerate() {
            guid(
                || format!("{p}.existing.vms[{i}].subscription_id"),
                &v.subscription_id,
            )?;
            name(
                || format!("{p}.existing.vms[{i}].resource_group"),
                &v.resource_group,
                NameKind::ResourceGroup,
            )?;
            name(
                || format!("{p}.existing.vms[{i}].name"),
                &v.name,
                NameKind::VirtualMachine,
            )?;
        }
        for (i, kv) in self.existing.key_vaults.iter().enumerate() {
            kv.validate_at(&format!("{p}.existing.key_vaults[{i}]"))?;
        }
        for (i, des) in self.existing.disk_encryption_sets.iter().enumerate() {
            des.validate_at(&format!("{p}.existing.disk_encryption_sets[{i}]"))?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a
/// plausible typo (for "did you mean" hints).
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = levenshtein(word, c);
        if d <= 2.max(word.len() / 4) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert!(is_rfc3339("2026-11-20T22:00:00Z"));
        assert!(is_rfc3339("2026-11-20T22:00:00.123+01:00"));
        assert!(!is_rfc3339("2026-13-20T22:00:00Z"));
        assert!(!is_rfc3339("yesterday"));
        assert!(!is_rfc3339("2026-11-20T22:00:00"));
    }

    #[test]
    fn names_and_suggestions() {
        assert!(is_valid_resource_name("web-01", 64));
        assert!(!is_valid_resource_name("-web", 64));
        assert!(!is_valid_resource_name("a/../b", 64));
        assert_eq!(
            suggest("westeuropa", ["westeurope", "eastus"].into_iter()),
            Some("westeurope")
        );
        assert_eq!(suggest("mars", ["westeurope", "eastus"].into_iter()), None);
    }

    #[test]
    fn builtin_catalog_is_valid() {
        let c = Catalog::builtin();
        assert!(c.regions.len() > 40, "catalog file did not load");
        c.validate().unwrap();
        assert!(c.region("westeurope").unwrap().zones.contains(&1));
        assert!(c.region("westus").unwrap().zones.is_empty());
    }
}
