//! The bodies of the Azure resources a restore creates, as pure functions
//! of their [`ResourceSpec`], and the api-version of every resource type.
//! Both writers of Azure resources build on them: the ARM cloud
//! (`azure::ArmCloud`, feature `azure`) PUTs these bodies, and the local
//! "restore disks" template ([`crate::exec::arm_template`]) declares them.
//! No I/O here; how a body names another resource (a real ARM ID, or a
//! template's `[resourceId(...)]`) is the caller's, through a [`Ref`].

use serde_json::{Map, Value, json};

use crate::error::{CallError, CallErrorKind, CallResult};
use crate::model::{DiskSku, Generation, OsFamily, SecurityType};
use crate::plan::ResourceSpec;

/// The resource types the restore creates or names, each with its ARM type
/// and api-version (the table: [`ResourceType::api_version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    /// `Microsoft.Resources/resourceGroups`.
    ResourceGroup,
    /// `Microsoft.KeyVault/vaults`.
    KeyVault,
    /// `Microsoft.Storage/storageAccounts`.
    StorageAccount,
    /// `Microsoft.Compute/disks`.
    Disk,
    /// `Microsoft.Compute/availabilitySets` (named, never created).
    AvailabilitySet,
    /// `Microsoft.Compute/virtualMachines` (and their extensions).
    VirtualMachine,
    /// `Microsoft.Network/networkSecurityGroups`.
    NetworkSecurityGroup,
    /// `Microsoft.Network/publicIPAddresses`.
    PublicIp,
    /// `Microsoft.Network/networkInterfaces`.
    NetworkInterface,
    /// `Microsoft.Network/virtualNetworks` (named, never created).
    VirtualNetwork,
    /// `Microsoft.Network/virtualNetworks/subnets` (named, never created).
    Subnet,
}

/// api-version of the subscription's locations (the catalog's regions).
pub const LOCATIONS_API: &str = "2022-12-01";
/// api-version of `Microsoft.Compute/skus` (the catalog's VM sizes).
pub const SKUS_API: &str = "2021-07-01";

impl ResourceType {
    /// The api-version ArmCloud and the template use for this type
    /// (`../shared/spec/AZURE.md`).
    pub const fn api_version(self) -> &'static str {
        use ResourceType::*;
        match self {
            ResourceGroup => "2021-04-01",
            KeyVault => "2024-11-01",
            StorageAccount => "2023-05-01",
            Disk => "2025-01-02",
            AvailabilitySet | VirtualMachine => "2025-04-01",
            NetworkSecurityGroup | PublicIp | NetworkInterface | VirtualNetwork | Subnet => {
                "2024-10-01"
            }
        }
    }

    /// `Namespace/type`, as in ARM IDs and templates.
    pub const fn arm_type(self) -> &'static str {
        use ResourceType::*;
        match self {
            ResourceGroup => "Microsoft.Resources/resourceGroups",
            KeyVault => "Microsoft.KeyVault/vaults",
            StorageAccount => "Microsoft.Storage/storageAccounts",
            Disk => "Microsoft.Compute/disks",
            AvailabilitySet => "Microsoft.Compute/availabilitySets",
            VirtualMachine => "Microsoft.Compute/virtualMachines",
            NetworkSecurityGroup => "Microsoft.Network/networkSecurityGroups",
            PublicIp => "Microsoft.Network/publicIPAddresses",
            NetworkInterface => "Microsoft.Network/networkInterfaces",
            VirtualNetwork => "Microsoft.Network/virtualNetworks",
            Subnet => "Microsoft.Network/virtualNetworks/subnets",
        }
    }

    /// The type of a created resource by its kind ([`ResourceSpec::kind`],
    /// `Resource::kind`); `None` for what no ARM body describes.
    pub fn of_kind(kind: &str) -> Option<ResourceType> {
        Some(match kind {
            "resource_group" => ResourceType::ResourceGroup,
            "key_vault" => ResourceType::KeyVault,
            "storage_account" => ResourceType::StorageAccount,
            "disk" => ResourceType::Disk,
            "network_security_group" => ResourceType::NetworkSecurityGroup,
            "public_ip" => ResourceType::PublicIp,
            "network_interface" => ResourceType::NetworkInterface,
            "virtual_machine" => ResourceType::VirtualMachine,
            _ => return None,
        })
    }
}

impl ResourceType {
    const ALL: [ResourceType; 11] = [
        ResourceType::ResourceGroup,
        ResourceType::KeyVault,
        ResourceType::StorageAccount,
        ResourceType::Disk,
        ResourceType::AvailabilitySet,
        ResourceType::VirtualMachine,
        ResourceType::NetworkSecurityGroup,
        ResourceType::PublicIp,
        ResourceType::NetworkInterface,
        ResourceType::VirtualNetwork,
        ResourceType::Subnet,
    ];

    /// The type of the resource an ARM ID names (its last
    /// `providers/<namespace>/<type>[/<name>/<type>...]`, or a resource
    /// group), when it is one of the table's.
    pub fn of_id(id: &str) -> Option<ResourceType> {
        let segs: Vec<&str> = id.trim_matches('/').split('/').collect();
        let Some(p) = segs
            .iter()
            .rposition(|s| s.eq_ignore_ascii_case("providers"))
        else {
            let rg = segs.len() == 4 && segs[2].eq_ignore_ascii_case("resourceGroups");
            return rg.then_some(ResourceType::ResourceGroup);
        };
        let mut ty = segs.get(p + 1)?.to_string();
        for t in segs.iter().skip(p + 2).step_by(2) {
            ty.push('/');
            ty.push_str(t);
        }
        Self::ALL
            .into_iter()
            .find(|r| r.arm_type().eq_ignore_ascii_case(&ty))
    }
}

/// A resource named by a spec: the resource itself ([`own_ref`]) or one
/// its body refers to. The caller renders it (an ARM ID for ArmCloud, a
/// `[resourceId(...)]` expression in a template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ref<'a> {
    /// Type.
    pub ty: ResourceType,
    /// The subscription the spec names; `None`: the default one (ArmCloud's
    /// configured subscription, a template's deployment).
    pub subscription_id: Option<&'a str>,
    /// Resource group (for a resource group: its own name).
    pub resource_group: &'a str,
    /// Name; for a subnet, its virtual network's name or ARM ID.
    pub name: &'a str,
    /// For a subnet: the subnet's name.
    pub child: Option<&'a str>,
}

/// Renders a [`Ref`] as the string a body holds.
pub type Render<'r> = dyn FnMut(&Ref<'_>) -> CallResult<String> + 'r;

fn bad(op: &str, m: impl Into<String>) -> CallError {
    CallError::new(CallErrorKind::Invalid, op, m)
}

/// Confidential VMs need their disks' security state (VMGS) restored with
/// them, which an upload of the disk images cannot carry.
pub(crate) fn confidential(op: &str) -> CallError {
    bad(
        op,
        "confidential VMs are not supported by the ARM cloud: their disks need the VM guest state, which a disk upload cannot carry",
    )
}

fn not_arm(op: &str, spec: &ResourceSpec) -> CallError {
    bad(
        op,
        format!(
            "{} is deployed by the backup product's own tooling, not by the ARM cloud",
            spec.kind()
        ),
    )
}

/// The resource a spec creates.
pub fn own_ref<'a>(spec: &'a ResourceSpec, op: &str) -> CallResult<Ref<'a>> {
    let r = |ty, sub: Option<&'a String>, rg: &'a String, name: &'a String| Ref {
        ty,
        subscription_id: sub.map(String::as_str),
        resource_group: rg,
        name,
        child: None,
    };
    Ok(match spec {
        ResourceSpec::ResourceGroup {
            subscription_id,
            name,
            ..
        } => r(
            ResourceType::ResourceGroup,
            Some(subscription_id),
            name,
            name,
        ),
        ResourceSpec::KeyVault {
            subscription_id,
            resource_group,
            name,
            ..
        } => r(
            ResourceType::KeyVault,
            Some(subscription_id),
            resource_group,
            name,
        ),
        ResourceSpec::StorageAccount {
            subscription_id,
            resource_group,
            name,
            ..
        } => r(
            ResourceType::StorageAccount,
            Some(subscription_id),
            resource_group,
            name,
        ),
        ResourceSpec::Disk {
            subscription_id,
            resource_group,
            name,
            ..
        } => r(
            ResourceType::Disk,
            Some(subscription_id),
            resource_group,
            name,
        ),
        ResourceSpec::NetworkSecurityGroup {
            resource_group,
            name,
            ..
        } => r(
            ResourceType::NetworkSecurityGroup,
            None,
            resource_group,
            name,
        ),
        ResourceSpec::PublicIp {
            resource_group,
            name,
            ..
        } => r(ResourceType::PublicIp, None, resource_group, name),
        ResourceSpec::NetworkInterface {
            resource_group,
            name,
            ..
        } => r(ResourceType::NetworkInterface, None, resource_group, name),
        ResourceSpec::VirtualMachine {
            subscription_id,
            resource_group,
            name,
            ..
        } => r(
            ResourceType::VirtualMachine,
            Some(subscription_id),
            resource_group,
            name,
        ),
        ResourceSpec::HelperAppliance { .. } | ResourceSpec::Snapshot { .. } => {
            return Err(not_arm(op, spec));
        }
    })
}

/// The body of the resource `spec` creates: `location`, `sku`, `kind`,
/// `properties`, `zones` as ARM takes them (no tags: the caller adds its
/// own). `tenant_id` is the key vault's tenant. A disk with a staging
/// account gets the managed-disk body (what `ConvertToManaged` imports the
/// blob into). Fails for a confidential VM or disk, and for what ARM does
/// not create (helper appliances, snapshots).
pub fn resource_body(
    spec: &ResourceSpec,
    tenant_id: &str,
    op: &str,
    render: &mut Render<'_>,
) -> CallResult<Value> {
    Ok(match spec {
        ResourceSpec::ResourceGroup { region, .. } => json!({ "location": region }),
        ResourceSpec::KeyVault { region, .. } => json!({
            "location": region,
            "properties": {
                "tenantId": tenant_id,
                "sku": { "family": "A", "name": "standard" },
                "enabledForDiskEncryption": true,
                "enableRbacAuthorization": false,
                "accessPolicies": []
            }
        }),
        ResourceSpec::StorageAccount { region, .. } => json!({
            "location": region,
            "sku": { "name": "Standard_LRS" },
            "kind": "StorageV2",
            "properties": { "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": false }
        }),
        ResourceSpec::Disk { .. } => disk_body(spec, op)?,
        ResourceSpec::NetworkSecurityGroup {
            region, open_ports, ..
        } => {
            let rules: Vec<Value> = open_ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    json!({
                        "name": format!("allow-tcp-{p}"),
                        "properties": {
                            "protocol": "Tcp",
                            "sourcePortRange": "*",
                            "destinationPortRange": p.to_string(),
                            "sourceAddressPrefix": "*",
                            "destinationAddressPrefix": "*",
                            "access": "Allow",
                            "priority": 300 + i,
                            "direction": "Inbound"
                        }
                    })
                })
                .collect();
            json!({ "location": region, "properties": { "securityRules": rules } })
        }
        ResourceSpec::PublicIp { region, .. } => json!({
            "location": region,
            "sku": { "name": "Standard" },
            "properties": { "publicIPAllocationMethod": "Static" }
        }),
        ResourceSpec::NetworkInterface { .. } => nic_body(spec, render)?,
        ResourceSpec::VirtualMachine { .. } => vm_body(spec, op, render)?,
        ResourceSpec::HelperAppliance { .. } | ResourceSpec::Snapshot { .. } => {
            return Err(not_arm(op, spec));
        }
    })
}

fn sku_name(s: DiskSku) -> &'static str {
    match s {
        DiskSku::StandardHdd => "Standard_LRS",
        DiskSku::StandardSsd => "StandardSSD_LRS",
        DiskSku::Premium => "Premium_LRS",
        DiskSku::PremiumV2 => "PremiumV2_LRS",
        DiskSku::Ultra => "UltraSSD_LRS",
    }
}

fn os_type(o: OsFamily) -> &'static str {
    match o {
        OsFamily::Windows => "Windows",
        OsFamily::Linux => "Linux",
    }
}

fn hyperv(g: Generation) -> &'static str {
    match g {
        Generation::Gen1 => "V1",
        Generation::Gen2 => "V2",
    }
}

/// A managed disk created for upload (`uploadSizeBytes` = size + footer).
fn disk_body(spec: &ResourceSpec, op: &str) -> CallResult<Value> {
    let ResourceSpec::Disk {
        region,
        size_bytes,
        sku,
        zone,
        os,
        security_type,
        disk_encryption_set,
        ..
    } = spec
    else {
        return Err(bad(op, "not a disk"));
    };
    let mut props = json!({
        "creationData": { "createOption": "Upload", "uploadSizeBytes": size_bytes + 512 }
    });
    if let Some((family, generation)) = os {
        props["osType"] = json!(os_type(*family));
        props["hyperVGeneration"] = json!(hyperv(*generation));
    }
    match security_type {
        SecurityType::Standard => {}
        SecurityType::TrustedLaunch => {
            props["securityProfile"] = json!({ "securityType": "TrustedLaunch" });
        }
        SecurityType::Confidential => return Err(confidential(op)),
    }
    if let Some(des) = disk_encryption_set {
        props["encryption"] =
            json!({ "type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": des });
    }
    let mut body =
        json!({ "location": region, "sku": { "name": sku_name(*sku) }, "properties": props });
    if let Some(z) = zone {
        body["zones"] = json!([z.to_string()]);
    }
    Ok(body)
}

/// A NIC with one IP configuration in a subnet of an existing network.
fn nic_body(spec: &ResourceSpec, render: &mut Render<'_>) -> CallResult<Value> {
    let ResourceSpec::NetworkInterface {
        resource_group,
        region,
        virtual_network,
        subnet,
        static_ip,
        public_ip,
        network_security_group,
        ..
    } = spec
    else {
        return Err(bad("build a NIC", "not a NIC"));
    };
    let mut to = |ty, name: &str, child: Option<&str>| {
        render(&Ref {
            ty,
            subscription_id: None,
            resource_group,
            name,
            child,
        })
    };
    let mut ipc = json!({
        "subnet": { "id": to(ResourceType::Subnet, virtual_network, Some(subnet))? },
        "privateIPAllocationMethod": if static_ip.is_some() { "Static" } else { "Dynamic" }
    });
    if let Some(ip) = static_ip {
        ipc["privateIPAddress"] = json!(ip);
    }
    if let Some(p) = public_ip {
        ipc["publicIPAddress"] = json!({ "id": to(ResourceType::PublicIp, p, None)? });
    }
    let mut props = json!({ "ipConfigurations": [ { "name": "ipconfig1", "properties": ipc } ] });
    if let Some(n) = network_security_group {
        props["networkSecurityGroup"] =
            json!({ "id": to(ResourceType::NetworkSecurityGroup, n, None)? });
    }
    Ok(json!({ "location": region, "properties": props }))
}

/// A VM from attached disks (OS disk, data disks by LUN), its NICs
/// (primary first), trusted launch when the spec says so.
fn vm_body(spec: &ResourceSpec, op: &str, render: &mut Render<'_>) -> CallResult<Value> {
    let ResourceSpec::VirtualMachine {
        subscription_id,
        resource_group,
        region,
        size,
        zone,
        availability_set,
        os,
        security_type,
        os_disk,
        data_disks,
        nics,
        ..
    } = spec
    else {
        return Err(bad(op, "not a VM"));
    };
    let sub = Some(subscription_id.as_str());
    let mut to = |ty, subscription_id, name: &str| {
        render(&Ref {
            ty,
            subscription_id,
            resource_group,
            name,
            child: None,
        })
    };
    let data: Vec<Value> = data_disks
        .iter()
        .map(|(lun, d)| Ok(json!({ "lun": lun, "createOption": "Attach", "managedDisk": { "id": to(ResourceType::Disk, sub, d)? } })))
        .collect::<CallResult<_>>()?;
    let nic_refs: Vec<Value> = nics
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Ok(json!({
                "id": to(ResourceType::NetworkInterface, None, n)?,
                "properties": { "primary": i == 0 }
            }))
        })
        .collect::<CallResult<_>>()?;
    let mut props = json!({
        "hardwareProfile": { "vmSize": size },
        "storageProfile": {
            "osDisk": { "createOption": "Attach", "osType": os_type(*os), "managedDisk": { "id": to(ResourceType::Disk, sub, os_disk)? } },
            "dataDisks": data
        },
        "networkProfile": { "networkInterfaces": nic_refs }
    });
    match security_type {
        SecurityType::Standard => {}
        SecurityType::TrustedLaunch => {
            props["securityProfile"] = json!({
                "securityType": "TrustedLaunch",
                "uefiSettings": { "secureBootEnabled": true, "vTpmEnabled": true }
            });
        }
        SecurityType::Confidential => return Err(confidential(op)),
    }
    if let Some(a) = availability_set {
        props["availabilitySet"] = json!({ "id": to(ResourceType::AvailabilitySet, sub, a)? });
    }
    let mut body = json!({ "location": region, "properties": props });
    if let Some(z) = zone {
        body["zones"] = json!([z.to_string()]);
    }
    Ok(body)
}

/// `body` with `tags` right after `location` (where ARM shows them).
pub fn with_tags(body: Value, tags: Value) -> Value {
    let Value::Object(m) = body else {
        return body;
    };
    let mut out = Map::new();
    let mut tags = Some(tags);
    for (k, v) in m {
        let loc = k == "location";
        out.insert(k, v);
        if loc && let Some(t) = tags.take() {
            out.insert("tags".into(), t);
        }
    }
    if let Some(t) = tags {
        out.insert("tags".into(), t);
    }
    Value::Object(out)
}

/// A template string literal: `'` doubled.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A reference in a template: `[resourceId('<type>', '<name>'[, '<child>'])]`
/// in the deployment's resource group; a virtual network given as an ARM
/// ID is taken as it stands.
pub fn template_ref(r: &Ref<'_>) -> String {
    if r.ty == ResourceType::Subnet && r.name.starts_with("/subscriptions/") {
        return format!("{}/subnets/{}", r.name, r.child.unwrap_or_default());
    }
    let mut args = vec![quote(r.ty.arm_type()), quote(r.name)];
    if let Some(c) = r.child {
        args.push(quote(c));
    }
    format!("[resourceId({})]", args.join(", "))
}

/// An ARM deployment template for the network and the VM of a restore whose
/// disks were exported (Azure Backup's "restore disks"): of `specs` (the
/// plan's creates, in plan order) it declares the NSGs, public IPs, NICs and
/// VMs, with the same bodies ArmCloud PUTs, the table's api-versions, and a
/// `dependsOn` on each declared resource a body names. The disks are not
/// declared: they are the VHDs the operator uploads as managed disks before
/// deploying, and the VM attaches them by name. The VM comes first (the
/// template's subject), then the rest in plan order.
pub fn template(specs: &[ResourceSpec]) -> CallResult<Value> {
    let op = "write the ARM template";
    let declared: Vec<(ResourceType, &str)> = specs
        .iter()
        .filter(|s| in_template(s))
        .filter_map(|s| own_ref(s, op).ok().map(|r| (r.ty, r.name)))
        .collect();
    // An NSG made after the VM (attached to its NICs then) is declared on
    // those NICs in a template: one deployment makes them together.
    let attached: Vec<(&str, &str)> = specs
        .iter()
        .filter_map(|s| match s {
            ResourceSpec::NetworkSecurityGroup {
                name, attach_to, ..
            } => Some(attach_to.iter().map(move |n| (n.as_str(), name.as_str()))),
            _ => None,
        })
        .flatten()
        .collect();
    let mut resources = Vec::new();
    for spec in specs.iter().filter(|s| in_template(s)) {
        let spec = &with_attached_nsg(spec, &attached);
        let me = own_ref(spec, op)?;
        let mut depends: Vec<String> = Vec::new();
        let body = resource_body(spec, "", op, &mut |r: &Ref<'_>| {
            let s = template_ref(r);
            if declared.contains(&(r.ty, r.name)) && !depends.contains(&s) {
                depends.push(s.clone());
            }
            Ok(s)
        })?;
        let mut res = Map::new();
        res.insert("type".into(), json!(me.ty.arm_type()));
        res.insert("apiVersion".into(), json!(me.ty.api_version()));
        res.insert("name".into(), json!(me.name));
        if let Value::Object(b) = body {
            res.extend(b);
        }
        if !depends.is_empty() {
            res.insert("dependsOn".into(), json!(depends));
        }
        let vm = me.ty == ResourceType::VirtualMachine;
        resources.push((!vm, Value::Object(res)));
    }
    // Stable: the VM first, the others in plan order.
    resources.sort_by_key(|(rest, _)| *rest);
    Ok(json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": resources.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
    }))
}

fn in_template(spec: &ResourceSpec) -> bool {
    matches!(
        spec,
        ResourceSpec::NetworkSecurityGroup { .. }
            | ResourceSpec::PublicIp { .. }
            | ResourceSpec::NetworkInterface { .. }
            | ResourceSpec::VirtualMachine { .. }
    )
}

/// A NIC spec with the NSG that `attached` (NIC, NSG) attaches to it.
fn with_attached_nsg(spec: &ResourceSpec, attached: &[(&str, &str)]) -> ResourceSpec {
    let mut spec = spec.clone();
    if let ResourceSpec::NetworkInterface {
        name,
        network_security_group: nsg @ None,
        ..
    } = &mut spec
        && let Some((_, n)) = attached.iter().find(|(nic, _)| nic == name)
    {
        *nsg = Some(n.to_string());
    }
    spec
}

#[cfg(test)]
#[path = "arm_bodies_tests.rs"]
pub(crate) mod tests;
