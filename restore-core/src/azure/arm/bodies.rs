//! Bodies of the resources ArmCloud PUTs.

use serde_json::{Value, json};

use super::{ArmCloud, api, bad, confidential, path};
use crate::exec::{CallResult, ResourceSpec};
use crate::model::{DiskSku, Generation, OsFamily, SecurityType};

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

impl ArmCloud {
    /// The body of a resource to create.
    pub(super) fn body(
        &self,
        key: &str,
        spec: &ResourceSpec,
        op: &str,
        staged_import: bool,
    ) -> CallResult<(String, &'static str, Value)> {
        let tags = json!({ "vmrestore-key": key });
        Ok(match spec {
            ResourceSpec::ResourceGroup {
                subscription_id,
                name,
                region,
            } => (
                self.rg_id(Some(subscription_id), name)?,
                api::RESOURCES,
                json!({ "location": region, "tags": tags }),
            ),
            ResourceSpec::KeyVault {
                subscription_id,
                resource_group,
                name,
                region,
            } => (
                self.id(
                    Some(subscription_id),
                    resource_group,
                    "Microsoft.KeyVault/vaults",
                    name,
                )?,
                api::KEY_VAULT,
                json!({
                    "location": region,
                    "tags": tags,
                    "properties": {
                        "tenantId": self.cfg.tenant_id,
                        "sku": { "family": "A", "name": "standard" },
                        "enabledForDiskEncryption": true,
                        "enableRbacAuthorization": false,
                        "accessPolicies": []
                    }
                }),
            ),
            ResourceSpec::StorageAccount {
                subscription_id,
                resource_group,
                name,
                region,
            } => (
                self.id(
                    Some(subscription_id),
                    resource_group,
                    "Microsoft.Storage/storageAccounts",
                    name,
                )?,
                api::STORAGE,
                json!({
                    "location": region,
                    "tags": tags,
                    "sku": { "name": "Standard_LRS" },
                    "kind": "StorageV2",
                    "properties": { "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": false }
                }),
            ),
            ResourceSpec::Disk {
                subscription_id,
                resource_group,
                name,
                region,
                size_bytes,
                sku,
                zone,
                os,
                security_type,
                staging_account,
                disk_encryption_set,
            } => {
                if staging_account.is_some() && !staged_import {
                    return Err(bad(op, "a staged disk is a page blob, not a managed disk"));
                }
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
                    props["encryption"] = json!({ "type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": des });
                }
                let mut body = json!({ "location": region, "tags": tags, "sku": { "name": sku_name(*sku) }, "properties": props });
                if let Some(z) = zone {
                    body["zones"] = json!([z.to_string()]);
                }
                (
                    self.id(
                        Some(subscription_id),
                        resource_group,
                        "Microsoft.Compute/disks",
                        name,
                    )?,
                    api::DISK,
                    body,
                )
            }
            ResourceSpec::NetworkSecurityGroup {
                resource_group,
                name,
                region,
                open_ports,
                ..
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
                (
                    self.id(
                        None,
                        resource_group,
                        "Microsoft.Network/networkSecurityGroups",
                        name,
                    )?,
                    api::NETWORK,
                    json!({ "location": region, "tags": tags, "properties": { "securityRules": rules } }),
                )
            }
            ResourceSpec::PublicIp {
                resource_group,
                name,
                region,
            } => (
                self.id(
                    None,
                    resource_group,
                    "Microsoft.Network/publicIPAddresses",
                    name,
                )?,
                api::NETWORK,
                json!({
                    "location": region,
                    "tags": tags,
                    "sku": { "name": "Standard" },
                    "properties": { "publicIPAllocationMethod": "Static" }
                }),
            ),
            ResourceSpec::NetworkInterface {
                resource_group,
                name,
                region,
                virtual_network,
                subnet,
                static_ip,
                public_ip,
                network_security_group,
            } => {
                let vnet_id = if virtual_network.starts_with("/subscriptions/") {
                    virtual_network.clone()
                } else {
                    self.id(
                        None,
                        resource_group,
                        "Microsoft.Network/virtualNetworks",
                        virtual_network,
                    )?
                };
                let subnet_id = path::child(&vnet_id, &["subnets", subnet])?;
                let mut ipc = json!({
                    "subnet": { "id": subnet_id },
                    "privateIPAllocationMethod": if static_ip.is_some() { "Static" } else { "Dynamic" }
                });
                if let Some(ip) = static_ip {
                    ipc["privateIPAddress"] = json!(ip);
                }
                if let Some(p) = public_ip {
                    ipc["publicIPAddress"] = json!({ "id": self.id(None, resource_group, "Microsoft.Network/publicIPAddresses", p)? });
                }
                let mut props =
                    json!({ "ipConfigurations": [ { "name": "ipconfig1", "properties": ipc } ] });
                if let Some(n) = network_security_group {
                    props["networkSecurityGroup"] = json!({ "id": self.id(None, resource_group, "Microsoft.Network/networkSecurityGroups", n)? });
                }
                (
                    self.id(
                        None,
                        resource_group,
                        "Microsoft.Network/networkInterfaces",
                        name,
                    )?,
                    api::NETWORK,
                    json!({ "location": region, "tags": tags, "properties": props }),
                )
            }
            ResourceSpec::VirtualMachine {
                subscription_id,
                resource_group,
                name,
                region,
                size,
                zone,
                availability_set,
                os,
                generation: _,
                security_type,
                os_disk,
                data_disks,
                nics,
            } => {
                let sub = Some(subscription_id.as_str());
                let disk_id = |d: &str| self.id(sub, resource_group, "Microsoft.Compute/disks", d);
                let data: Vec<Value> = data_disks
                    .iter()
                    .map(|(lun, d)| Ok(json!({ "lun": lun, "createOption": "Attach", "managedDisk": { "id": disk_id(d)? } })))
                    .collect::<CallResult<_>>()?;
                let nic_refs: Vec<Value> = nics
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Ok(json!({
                        "id": self.id(None, resource_group, "Microsoft.Network/networkInterfaces", n)?,
                        "properties": { "primary": i == 0 }
                    })))
                    .collect::<CallResult<_>>()?;
                let mut props = json!({
                    "hardwareProfile": { "vmSize": size },
                    "storageProfile": {
                        "osDisk": { "createOption": "Attach", "osType": os_type(*os), "managedDisk": { "id": disk_id(os_disk)? } },
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
                    props["availabilitySet"] = json!({ "id": self.id(sub, resource_group, "Microsoft.Compute/availabilitySets", a)? });
                }
                let mut body = json!({ "location": region, "tags": tags, "properties": props });
                if let Some(z) = zone {
                    body["zones"] = json!([z.to_string()]);
                }
                (
                    self.id(
                        sub,
                        resource_group,
                        "Microsoft.Compute/virtualMachines",
                        name,
                    )?,
                    api::VM,
                    body,
                )
            }
            ResourceSpec::HelperAppliance { .. } | ResourceSpec::Snapshot { .. } => {
                return Err(bad(
                    op,
                    format!(
                        "{} is deployed by the backup product's own tooling, not by the ARM cloud",
                        spec.kind()
                    ),
                ));
            }
        })
    }
}

/// The body that re-creates a deleted VM on its kept disks: the disks are
/// attached (not created from an image), the OS profile (set only at
/// creation) and read-only properties are left out.
pub(super) fn reattach_body(mut v: Value) -> Value {
    strip_read_only(&mut v);
    if let Some(p) = v.get_mut("properties").and_then(Value::as_object_mut) {
        for k in ["osProfile", "vmId", "instanceView", "timeCreated"] {
            p.remove(k);
        }
        if let Some(sp) = p.get_mut("storageProfile").and_then(Value::as_object_mut) {
            sp.remove("imageReference");
            if let Some(os) = sp.get_mut("osDisk").and_then(Value::as_object_mut) {
                os.insert("createOption".into(), json!("Attach"));
            }
            if let Some(dd) = sp.get_mut("dataDisks").and_then(Value::as_array_mut) {
                for d in dd {
                    d["createOption"] = json!("Attach");
                }
            }
        }
    }
    v
}

/// Drops what ARM returns but does not take back in a PUT.
pub(super) fn strip_read_only(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        for k in ["id", "etag", "type", "name"] {
            o.remove(k);
        }
        if let Some(p) = o.get_mut("properties").and_then(Value::as_object_mut) {
            for k in [
                "provisioningState",
                "resourceGuid",
                "macAddress",
                "virtualMachine",
            ] {
                p.remove(k);
            }
        }
    }
}
