//! Azure's naming rules for the resources a restore reads or creates, and
//! ARM resource IDs parsed into checked segments.
//!
//! Every name that becomes part of an ARM path is checked here: at the model
//! boundary (`validate.rs`, with the JSON path of the field), and again for
//! every name the plan generates (the planner shortens generated names with
//! [`NameKind::fit`], and blocks the plan under rule VMR-06 when a name of
//! the target is still invalid). The rules are those of Microsoft's "Naming
//! rules and restrictions for Azure resources":
//!
//! | kind | length | characters |
//! |---|---|---|
//! | resource group | 1-90 | letters, digits, `_`, `(`, `)`, `-`, `.`; not ending with `.` |
//! | VM, disk, snapshot, NIC, NSG, public IP, subnet, availability set, disk encryption set, dedicated host | 1-64 (VM), 1-80 | letters, digits, `_`, `-`, `.`; starting with a letter or digit, ending with a letter, digit or `_` |
//! | virtual network | 2-64 | as above |
//! | key vault | 3-24 | letters, digits, `-`; starting with a letter, ending with a letter or digit, no `--` |
//! | storage account | 3-24 | lowercase letters and digits |
//! | subscription | GUID | |
//!
//! (A Windows VM's computer name has its own limit of 15 characters; it is
//! not the resource name checked here.)

use sha2::{Digest, Sha256};

/// The kinds of Azure names a restore deals with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    /// `Microsoft.Resources/resourceGroups`.
    ResourceGroup,
    /// `Microsoft.Compute/virtualMachines` (the resource name).
    VirtualMachine,
    /// `Microsoft.Compute/disks`.
    Disk,
    /// `Microsoft.Compute/snapshots`.
    Snapshot,
    /// `Microsoft.Compute/availabilitySets`.
    AvailabilitySet,
    /// `Microsoft.Compute/diskEncryptionSets`.
    DiskEncryptionSet,
    /// `Microsoft.Compute/hostGroups/hosts`.
    DedicatedHost,
    /// `Microsoft.Network/networkInterfaces`.
    NetworkInterface,
    /// `Microsoft.Network/networkSecurityGroups`.
    NetworkSecurityGroup,
    /// `Microsoft.Network/publicIPAddresses`.
    PublicIp,
    /// `Microsoft.Network/virtualNetworks`.
    VirtualNetwork,
    /// `Microsoft.Network/virtualNetworks/subnets`.
    Subnet,
    /// `Microsoft.KeyVault/vaults`.
    KeyVault,
    /// `Microsoft.Storage/storageAccounts`.
    StorageAccount,
}

impl NameKind {
    /// Every kind, in the order of the enum.
    #[rustfmt::skip]
    pub const ALL: [NameKind; 14] = {
        use NameKind::*;
        [
            ResourceGroup, VirtualMachine, Disk, Snapshot, AvailabilitySet, DiskEncryptionSet,
            DedicatedHost, NetworkInterface, NetworkSecurityGroup, PublicIp, VirtualNetwork,
            Subnet, KeyVault, StorageAccount,
        ]
    };
}

/// The shape of a kind's rule.
enum Shape {
    /// Letters, digits, `_`, `-`, `.`, starting with a letter or digit and
    /// ending with a letter, digit or `_`.
    Resource,
    ResourceGroup,
    KeyVault,
    StorageAccount,
}

impl NameKind {
    /// What the name is, for messages: `disk name`.
    pub fn label(self) -> &'static str {
        match self {
            NameKind::ResourceGroup => "resource group name",
            NameKind::VirtualMachine => "VM name",
            NameKind::Disk => "disk name",
            NameKind::Snapshot => "snapshot name",
            NameKind::AvailabilitySet => "availability set name",
            NameKind::DiskEncryptionSet => "disk encryption set name",
            NameKind::DedicatedHost => "dedicated host name",
            NameKind::NetworkInterface => "NIC name",
            NameKind::NetworkSecurityGroup => "network security group name",
            NameKind::PublicIp => "public IP name",
            NameKind::VirtualNetwork => "virtual network name",
            NameKind::Subnet => "subnet name",
            NameKind::KeyVault => "key vault name",
            NameKind::StorageAccount => "storage account name",
        }
    }

    /// Shortest name allowed.
    pub fn min_len(self) -> usize {
        match self {
            NameKind::VirtualNetwork => 2,
            NameKind::KeyVault | NameKind::StorageAccount => 3,
            _ => 1,
        }
    }

    /// Longest name allowed (characters; all allowed characters but a
    /// resource group's are ASCII).
    pub fn max_len(self) -> usize {
        match self {
            NameKind::ResourceGroup => 90,
            NameKind::VirtualMachine | NameKind::VirtualNetwork => 64,
            NameKind::KeyVault | NameKind::StorageAccount => 24,
            _ => 80,
        }
    }

    /// The ARM resource type (`namespace/type[/type]`) names of this kind
    /// belong to.
    pub fn resource_type(self) -> &'static str {
        match self {
            NameKind::ResourceGroup => "Microsoft.Resources/resourceGroups",
            NameKind::VirtualMachine => "Microsoft.Compute/virtualMachines",
            NameKind::Disk => "Microsoft.Compute/disks",
            NameKind::Snapshot => "Microsoft.Compute/snapshots",
            NameKind::AvailabilitySet => "Microsoft.Compute/availabilitySets",
            NameKind::DiskEncryptionSet => "Microsoft.Compute/diskEncryptionSets",
            NameKind::DedicatedHost => "Microsoft.Compute/hostGroups/hosts",
            NameKind::NetworkInterface => "Microsoft.Network/networkInterfaces",
            NameKind::NetworkSecurityGroup => "Microsoft.Network/networkSecurityGroups",
            NameKind::PublicIp => "Microsoft.Network/publicIPAddresses",
            NameKind::VirtualNetwork => "Microsoft.Network/virtualNetworks",
            NameKind::Subnet => "Microsoft.Network/virtualNetworks/subnets",
            NameKind::KeyVault => "Microsoft.KeyVault/vaults",
            NameKind::StorageAccount => "Microsoft.Storage/storageAccounts",
        }
    }

    fn shape(self) -> Shape {
        match self {
            NameKind::ResourceGroup => Shape::ResourceGroup,
            NameKind::KeyVault => Shape::KeyVault,
            NameKind::StorageAccount => Shape::StorageAccount,
            _ => Shape::Resource,
        }
    }

    /// The rule in words, for messages.
    pub fn rule(self) -> String {
        let (min, max) = (self.min_len(), self.max_len());
        match self.shape() {
            Shape::Resource => format!(
                "{min}-{max} letters, digits, '_', '-' or '.', starting with a letter or digit, \
                 ending with a letter, digit or '_'"
            ),
            Shape::ResourceGroup => format!(
                "{min}-{max} letters, digits, '_', '(', ')', '-' or '.', not ending with '.'"
            ),
            Shape::KeyVault => format!(
                "{min}-{max} letters, digits and '-', starting with a letter, ending with a letter \
                 or digit, without '--'"
            ),
            Shape::StorageAccount => format!("{min}-{max} lowercase letters and digits"),
        }
    }

    /// Whether `s` is a valid name of this kind.
    pub fn is_valid(self, s: &str) -> bool {
        let n = s.chars().count();
        if n < self.min_len() || n > self.max_len() {
            return false;
        }
        let b = s.as_bytes();
        let (first, last) = (b[0], b[b.len() - 1]);
        match self.shape() {
            Shape::Resource => {
                first.is_ascii_alphanumeric()
                    && (last.is_ascii_alphanumeric() || last == b'_')
                    && b.iter()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            }
            // Azure takes Unicode letters and digits in resource group names
            // (Char.IsLetterOrDigit); the ARM path builder percent-encodes them.
            Shape::ResourceGroup => {
                last != b'.'
                    && s.chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '(' | ')' | '-' | '.'))
            }
            Shape::KeyVault => {
                first.is_ascii_alphabetic()
                    && last.is_ascii_alphanumeric()
                    && !s.contains("--")
                    && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            }
            Shape::StorageAccount => b
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        }
    }

    /// Checks `s`; the error says what is wrong, quoting the name (shortened).
    pub fn check(self, s: &str) -> Result<(), String> {
        if self.is_valid(s) {
            Ok(())
        } else {
            Err(format!(
                "'{}' is not a valid {}: {}",
                clip(s),
                self.label(),
                self.rule()
            ))
        }
    }

    /// A valid name of this kind made from `candidate`, deterministically:
    /// `candidate` itself when it is valid; otherwise its allowed characters,
    /// cut to fit, and a hyphen and 12 hex digits of the SHA-256 of the whole
    /// candidate (so that two long names with a common head stay distinct).
    /// Storage accounts get the digits without a hyphen.
    pub fn fit(self, candidate: &str) -> String {
        if self.is_valid(candidate) {
            return candidate.to_string();
        }
        let digest = hex::encode(Sha256::digest(candidate.as_bytes()));
        let digest = &digest[..12];
        let allowed = |c: char| match self.shape() {
            Shape::Resource => c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'),
            Shape::ResourceGroup => c.is_alphanumeric() || matches!(c, '_' | '(' | ')' | '-' | '.'),
            Shape::KeyVault => c.is_ascii_alphanumeric() || c == '-',
            Shape::StorageAccount => c.is_ascii_lowercase() || c.is_ascii_digit(),
        };
        let cleaned: String = match self.shape() {
            Shape::StorageAccount => candidate.to_ascii_lowercase(),
            _ => candidate.to_string(),
        }
        .chars()
        .filter(|c| allowed(*c))
        .collect();
        let sep = if matches!(self.shape(), Shape::StorageAccount) {
            ""
        } else {
            "-"
        };
        let room = self.max_len() - digest.len() - sep.len();
        let mut head: String = cleaned.chars().take(room).collect();
        if matches!(self.shape(), Shape::KeyVault) {
            while head.contains("--") {
                head = head.replace("--", "-");
            }
        }
        // The head is followed by the separator, so it must not end with
        // one, nor with a character a name may not end with.
        let head = head.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        let head = match self.shape() {
            Shape::KeyVault => head.trim_start_matches(|c: char| !c.is_ascii_alphabetic()),
            Shape::ResourceGroup => head,
            _ => head.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()),
        };
        let name = if head.is_empty() {
            match self.shape() {
                // A key vault starts with a letter.
                Shape::KeyVault => format!("kv{sep}{digest}"),
                _ => digest.to_string(),
            }
        } else {
            format!("{head}{sep}{digest}")
        };
        debug_assert!(self.is_valid(&name), "{self:?} fit gave {name}");
        name
    }
}

/// Shortens user text quoted in an error so a huge field cannot flood a log.
pub(crate) fn clip(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 64 {
        let head: String = s.chars().take(61).collect();
        format!("{head}...")
    } else {
        s
    }
}

/// Whether `s` is a GUID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex).
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// An ARM resource ID, parsed:
/// `/subscriptions/{guid}[/resourceGroups/{rg}[/providers/{namespace}/{type}/{name}[/{type}/{name}]...]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId<'a> {
    /// The subscription (a GUID).
    pub subscription: &'a str,
    /// The resource group, if the ID names one.
    pub resource_group: Option<&'a str>,
    /// The provider namespace, e.g. `Microsoft.Compute`.
    pub namespace: Option<&'a str>,
    /// Type and name pairs: `[("virtualNetworks", "vnet1"), ("subnets", "default")]`.
    pub types: Vec<(&'a str, &'a str)>,
}

impl ResourceId<'_> {
    /// The full resource type, `namespace/type[/type]`, if the ID names a
    /// resource below a resource group.
    pub fn resource_type(&self) -> Option<String> {
        let ns = self.namespace?;
        let mut t = ns.to_string();
        for (ty, _) in &self.types {
            t.push('/');
            t.push_str(ty);
        }
        Some(t)
    }

    /// The name of the resource the ID points at (its last segment).
    pub fn name(&self) -> Option<&str> {
        self.types.last().map(|(_, n)| *n)
    }
}

/// The name kind of a resource type, where this module knows its rule.
fn kind_of_type(t: &str) -> Option<NameKind> {
    NameKind::ALL
        .into_iter()
        .find(|k| k.resource_type().eq_ignore_ascii_case(t))
}

/// Whether `s` can be a segment of an ARM path at all: not empty, not `.`
/// or `..`, and without `/`, `\`, `?`, `#`, `%`, whitespace or control
/// characters. (The ARM path builder applies the same test.)
pub fn is_safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 1024
        && !s.chars().any(|c| {
            matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control() || c.is_whitespace()
        })
}

/// Parses an ARM resource ID and checks every segment: the subscription is
/// a GUID, the resource group and names follow their kind's rule (names of
/// types this module does not know must at least be safe path segments),
/// namespaces and types are letters, digits and `.`. With `expected`
/// (`Microsoft.Network/virtualNetworks`), the ID must be of that type.
pub fn parse_resource_id<'a>(
    id: &'a str,
    expected: Option<&str>,
) -> Result<ResourceId<'a>, String> {
    let why = |m: String| format!("'{}' is not a resource ID: {m}", clip(id));
    let bad = |m: String| Err(why(m));
    let Some(rest) = id.strip_prefix('/') else {
        return bad("it must start with '/subscriptions/'".into());
    };
    let seg: Vec<&str> = rest.split('/').collect();
    if seg.len() < 2 || !seg[0].eq_ignore_ascii_case("subscriptions") {
        return bad("it must start with '/subscriptions/'".into());
    }
    if !is_guid(seg[1]) {
        return bad(format!("subscription '{}' is not a GUID", clip(seg[1])));
    }
    let mut out = ResourceId {
        subscription: seg[1],
        resource_group: None,
        namespace: None,
        types: Vec::new(),
    };
    let mut i = 2;
    if i < seg.len() {
        if !seg[i].eq_ignore_ascii_case("resourceGroups") || i + 1 >= seg.len() {
            return bad("expected 'resourceGroups/<name>' after the subscription".into());
        }
        NameKind::ResourceGroup.check(seg[i + 1]).map_err(why)?;
        out.resource_group = Some(seg[i + 1]);
        i += 2;
    }
    if i < seg.len() {
        let word =
            |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.');
        if !seg[i].eq_ignore_ascii_case("providers") || i + 1 >= seg.len() || !word(seg[i + 1]) {
            return bad("expected 'providers/<namespace>' after the resource group".into());
        }
        out.namespace = Some(seg[i + 1]);
        i += 2;
        if i >= seg.len() {
            return bad("no resource type and name after the namespace".into());
        }
        while i < seg.len() {
            if i + 1 >= seg.len() || !word(seg[i]) {
                return bad("a resource type without a name".into());
            }
            out.types.push((seg[i], seg[i + 1]));
            let ty = out.resource_type().unwrap_or_default();
            let name = seg[i + 1];
            match kind_of_type(&ty) {
                Some(k) => k.check(name).map_err(why)?,
                None if is_safe_segment(name) => {}
                None => return bad(format!("'{}' cannot be part of an ARM path", clip(name))),
            }
            i += 2;
        }
    }
    if let Some(want) = expected {
        let got = out.resource_type().unwrap_or_default();
        if !got.eq_ignore_ascii_case(want) {
            return bad(format!("it is not of type {want}"));
        }
    }
    Ok(out)
}

/// Checks a reference that may be a name of `kind` or a full resource ID of
/// its type (IDs start with `/`).
pub fn check_name_or_id(kind: NameKind, s: &str) -> Result<(), String> {
    if s.starts_with('/') {
        parse_resource_id(s, Some(kind.resource_type())).map(drop)
    } else {
        kind.check(s)
    }
}

#[cfg(test)]
mod tests {
    use super::NameKind::*;
    use super::*;

    #[test]
    fn rules_of_each_kind() {
        assert!(ResourceGroup.is_valid("rg-finance_(prod).1"));
        assert!(ResourceGroup.is_valid("rg-späť"));
        assert!(!ResourceGroup.is_valid("rg."));
        assert!(!ResourceGroup.is_valid("rg-finance?api-version=2021-04-01#"));
        assert!(!ResourceGroup.is_valid("../../../subscriptions/x/resourceGroups/y"));
        assert!(!ResourceGroup.is_valid(&"r".repeat(91)));
        assert!(ResourceGroup.is_valid(&"r".repeat(90)));
        assert!(Disk.is_valid("web01-osdisk_"));
        assert!(!Disk.is_valid("web01-osdisk."));
        assert!(!Disk.is_valid("web01-osdisk-"));
        assert!(!Disk.is_valid("_web01"));
        assert!(!Disk.is_valid(&"d".repeat(81)));
        assert!(VirtualMachine.is_valid(&"v".repeat(64)));
        assert!(!VirtualMachine.is_valid(&"v".repeat(65)));
        assert!(!VirtualNetwork.is_valid("v"));
        assert!(KeyVault.is_valid("kv-web01-1a2b"));
        assert!(!KeyVault.is_valid("1kv"));
        assert!(!KeyVault.is_valid("kv--x"));
        assert!(!KeyVault.is_valid("kv-"));
        assert!(!KeyVault.is_valid("kv_x"));
        assert!(StorageAccount.is_valid("vmrstage0123456789ab"));
        assert!(!StorageAccount.is_valid("Stage01"));
        assert!(!StorageAccount.is_valid("st"));
        assert!(
            Disk.check("a/b")
                .unwrap_err()
                .contains("not a valid disk name")
        );
    }

    #[test]
    fn fit_keeps_valid_names_and_shortens_the_rest_deterministically() {
        assert_eq!(Disk.fit("web01-osdisk"), "web01-osdisk");
        let long = format!("{}-{}", "v".repeat(64), "d".repeat(80));
        let a = Disk.fit(&long);
        assert_eq!(a.len(), 80);
        assert!(Disk.is_valid(&a));
        assert_eq!(a, Disk.fit(&long), "deterministic");
        let other = format!("{}-{}", "v".repeat(64), "d".repeat(79));
        assert_ne!(a, Disk.fit(&other), "same head, different names");
        // A cut that lands on a '.' or '-' still ends validly.
        let dotted = format!("{}.{}", "a".repeat(66), "b".repeat(30));
        assert!(Disk.is_valid(&Disk.fit(&dotted)));
        assert!(Disk.is_valid(&Disk.fit("disk.")));
        assert!(Disk.is_valid(&Disk.fit("_")));
        assert!(VirtualNetwork.is_valid(&VirtualNetwork.fit(&format!("{}-vnet", "v".repeat(64)))));
        assert!(KeyVault.is_valid(&KeyVault.fit("9--weird__vault-name-that-is-long")));
        assert!(KeyVault.is_valid(&KeyVault.fit("---")));
        assert!(StorageAccount.is_valid(&StorageAccount.fit("Staging-Account-For-Web01-Long")));
        assert!(ResourceGroup.is_valid(&ResourceGroup.fit(&"r.".repeat(60))));
    }

    #[test]
    fn resource_ids_are_parsed_and_every_segment_checked() {
        let sub = "11111111-1111-1111-1111-111111111111";
        let id = format!(
            "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/default"
        );
        let p = parse_resource_id(&id, Some("Microsoft.Network/virtualNetworks/subnets")).unwrap();
        assert_eq!(p.subscription, sub);
        assert_eq!(p.resource_group, Some("rg1"));
        assert_eq!(p.name(), Some("default"));
        assert!(parse_resource_id(&id, Some("Microsoft.Network/virtualNetworks")).is_err());
        for bad in [
            "subscriptions/x".to_string(),
            "/subscriptions/not-a-guid/resourceGroups/rg".to_string(),
            format!("/subscriptions/{sub}/resourceGroups/rg?x=1"),
            format!(
                "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/disks/../x"
            ),
            format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/disks"),
            format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Foo/things/a%2Fb"),
            format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/disks/d#"),
            format!("/subscriptions/{sub}/resourceGroups//providers/Microsoft.Compute/disks/d"),
            format!("/subscriptions/{sub}/resourceGroups/rg/"),
        ] {
            assert!(parse_resource_id(&bad, None).is_err(), "{bad}");
        }
        assert!(check_name_or_id(DiskEncryptionSet, "des-web01").is_ok());
        assert!(check_name_or_id(DiskEncryptionSet, &format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/des1")).is_ok());
        assert!(
            check_name_or_id(
                DiskEncryptionSet,
                &format!(
                    "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/disks/des1"
                )
            )
            .is_err()
        );
    }
}
