//! Tests of [`super`]: the template and the shared bodies.

use super::*;

/// A trusted-launch VM with two data disks and a NIC with a public IP,
/// and the NSG made after it (attached to the NIC).
pub(crate) fn specs() -> Vec<ResourceSpec> {
    let sub = "00000000-0000-0000-0000-000000000001".to_string();
    let rg = "rg-restore".to_string();
    let region = "westeurope".to_string();
    vec![
        ResourceSpec::Disk {
            subscription_id: sub.clone(),
            resource_group: rg.clone(),
            name: "vm1-os".into(),
            region: region.clone(),
            size_bytes: 1 << 30,
            sku: DiskSku::Premium,
            zone: Some(2),
            os: Some((OsFamily::Linux, Generation::Gen2)),
            security_type: SecurityType::TrustedLaunch,
            staging_account: None,
            disk_encryption_set: None,
        },
        ResourceSpec::PublicIp {
            resource_group: rg.clone(),
            name: "vm1-pip".into(),
            region: region.clone(),
        },
        ResourceSpec::NetworkInterface {
            resource_group: rg.clone(),
            name: "vm1-nic".into(),
            region: region.clone(),
            virtual_network: "vnet1".into(),
            subnet: "default".into(),
            static_ip: None,
            public_ip: Some("vm1-pip".into()),
            network_security_group: None,
        },
        ResourceSpec::VirtualMachine {
            subscription_id: sub,
            resource_group: rg.clone(),
            name: "vm1".into(),
            region: region.clone(),
            size: "Standard_D2s_v5".into(),
            zone: Some(2),
            availability_set: None,
            os: OsFamily::Linux,
            generation: Generation::Gen2,
            security_type: SecurityType::TrustedLaunch,
            os_disk: "vm1-os".into(),
            data_disks: vec![(0, "vm1-data0".into()), (1, "vm1-data1".into())],
            nics: vec!["vm1-nic".into()],
        },
        ResourceSpec::NetworkSecurityGroup {
            resource_group: rg,
            name: "vm1-nsg".into(),
            region,
            open_ports: vec![22],
            attach_to: vec!["vm1-nic".into()],
        },
    ]
}

fn find(t: &Value, ty: ResourceType) -> &Value {
    t["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == ty.arm_type())
        .unwrap_or_else(|| panic!("no {ty:?} in {t:#}"))
}

#[test]
fn the_template_carries_trusted_launch_and_the_tables_api_versions() {
    let t = template(&specs()).unwrap();
    let vm = &t["resources"][0];
    assert_eq!(vm["type"], "Microsoft.Compute/virtualMachines");
    assert_eq!(
        vm["properties"]["securityProfile"],
        json!({
            "securityType": "TrustedLaunch",
            "uefiSettings": { "secureBootEnabled": true, "vTpmEnabled": true }
        })
    );
    for ty in [
        ResourceType::VirtualMachine,
        ResourceType::NetworkInterface,
        ResourceType::PublicIp,
        ResourceType::NetworkSecurityGroup,
    ] {
        assert_eq!(find(&t, ty)["apiVersion"], ty.api_version(), "{ty:?}");
    }
    // The disks are the uploaded VHDs: named, not declared.
    assert!(
        t["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["type"] != "Microsoft.Compute/disks")
    );
    assert_eq!(
        vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"],
        "[resourceId('Microsoft.Compute/disks', 'vm1-os')]"
    );
    assert_eq!(
        vm["dependsOn"],
        json!(["[resourceId('Microsoft.Network/networkInterfaces', 'vm1-nic')]"])
    );
    // The NIC depends on its public IP, its subnet is named in its
    // network, and the NSG made after the VM is declared on it.
    let nic = find(&t, ResourceType::NetworkInterface);
    let ipc = &nic["properties"]["ipConfigurations"][0]["properties"];
    assert_eq!(
        ipc["subnet"]["id"],
        "[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet1', 'default')]"
    );
    assert_eq!(
        nic["properties"]["networkSecurityGroup"]["id"],
        "[resourceId('Microsoft.Network/networkSecurityGroups', 'vm1-nsg')]"
    );
    assert_eq!(nic["dependsOn"].as_array().unwrap().len(), 2);
}

#[test]
fn the_template_declares_the_shared_bodies() {
    let specs = specs();
    let t = template(&specs).unwrap();
    let vm = specs
        .iter()
        .find(|s| s.kind() == "virtual_machine")
        .unwrap();
    let body = resource_body(vm, "", "test", &mut |r| Ok(template_ref(r))).unwrap();
    let declared = &t["resources"][0];
    assert_eq!(declared["properties"], body["properties"]);
    assert_eq!(declared["zones"], body["zones"]);
    assert_eq!(declared["location"], body["location"]);
}

#[test]
fn a_confidential_vm_has_no_template() {
    let mut specs = specs();
    for s in &mut specs {
        if let ResourceSpec::VirtualMachine { security_type, .. } = s {
            *security_type = SecurityType::Confidential;
        }
    }
    let e = template(&specs).unwrap_err();
    assert_eq!(e.kind, CallErrorKind::Invalid);
}

#[test]
fn types_are_read_from_ids_by_the_table() {
    let rg = "/subscriptions/s/resourceGroups/rg";
    assert_eq!(ResourceType::of_id(rg), Some(ResourceType::ResourceGroup));
    assert_eq!(
        ResourceType::of_id(&format!("{rg}/providers/Microsoft.Compute/disks/d")),
        Some(ResourceType::Disk)
    );
    assert_eq!(
        ResourceType::of_id(&format!(
            "{rg}/providers/microsoft.network/virtualNetworks/v/subnets/s"
        )),
        Some(ResourceType::Subnet)
    );
    assert_eq!(
        ResourceType::of_id(&format!("{rg}/providers/Microsoft.Web/sites/w")),
        None
    );
}
