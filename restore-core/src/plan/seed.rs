//! Seeding the target from the request, before any rule runs.

use super::*;
use crate::model::names::NameKind;
use crate::units::{disk_name, round_up_mib};

/// The target as requested, before any rule runs.
pub(super) fn initial_target(
    rp: &RestorePoint,
    req: &RestoreRequest,
    idx: &CatalogIndex,
) -> Target {
    let vm = &rp.vm;
    let dest = &req.destination;
    let in_place = req.placement == Placement::InPlace;
    let (subscription_id, region, resource_group, vm_name) = if in_place {
        (
            vm.subscription_id.clone(),
            vm.region.clone(),
            vm.resource_group
                .clone()
                .unwrap_or_else(|| dest.resource_group.clone()),
            vm.name.clone(),
        )
    } else {
        (
            dest.subscription_id.clone(),
            dest.region.clone(),
            dest.resource_group.clone(),
            dest.vm_name.clone().unwrap_or_else(|| vm.name.clone()),
        )
    };
    let managed = match dest.disk_storage {
        Some(DiskStorageChoice::Managed) => true,
        Some(DiskStorageChoice::Unmanaged) => false,
        None => vm.disks.iter().all(Disk::is_managed),
    };
    let zone = match dest.zone {
        ZoneChoice::Auto => vm.zone,
        ZoneChoice::None => None,
        ZoneChoice::Zone(z) => Some(z),
    };
    let disks = vm
        .disks
        .iter()
        .map(|d| TargetDisk {
            name: disk_name(&vm_name, &d.name),
            source_disk: d.name.clone(),
            volume_group: None,
            role: d.role,
            lun: if d.role == DiskRole::Data {
                d.lun
            } else {
                None
            },
            size_bytes: round_up_mib(d.size_bytes),
            bytes_to_write: d.allocated(),
            sku: dest.disk_sku.unwrap_or(d.sku),
            disk_encryption_set: dest
                .disk_encryption_set
                .clone()
                .or_else(|| d.encryption.disk_encryption_set.clone()),
        })
        .collect();
    let nics = target_nics(vm, dest, &vm_name, in_place);
    let staging = dest
        .staging_storage_account
        .as_ref()
        .map(|s| s.name.clone());
    let vm_size = dest.vm_size.clone().unwrap_or_else(|| vm.size.clone());
    let _ = idx;
    Target {
        restore_point_id: rp.id.clone(),
        source_vm: vm.name.clone(),
        tenant_id: dest.tenant_id.clone().or_else(|| vm.tenant_id.clone()),
        subscription_id,
        region,
        resource_group,
        vm_name,
        vm_size,
        zone,
        availability_set: dest.availability_set.clone(),
        os_family: vm.os.family,
        generation: vm.generation,
        firmware: vm.firmware,
        security_type: vm.security_type,
        managed,
        create_vm: req.restore_type == RestoreType::FullVm,
        power_on: req.restore_type == RestoreType::FullVm && dest.power_on,
        staging_account: staging,
        key_vault: None,
        network_security_group: None,
        nsg_open_ports: Vec::new(),
        nsg_after_vm: false,
        disks_staged: false,
        nics,
        disks,
    }
}

/// The target's NICs: the source's (a destination network replaces the
/// primary NIC's), or one new NIC when the source recorded none.
fn target_nics(
    vm: &crate::model::VirtualMachine,
    dest: &crate::model::Destination,
    vm_name: &str,
    in_place: bool,
) -> Vec<TargetNic> {
    if vm.nics.is_empty() {
        vec![TargetNic {
            name: NameKind::NetworkInterface.fit(&format!("{vm_name}-nic0")),
            virtual_network: dest.virtual_network.as_ref().map_or_else(
                || NameKind::VirtualNetwork.fit(&format!("{vm_name}-vnet")),
                |v| v.name.clone(),
            ),
            subnet: dest.subnet.clone().unwrap_or_else(|| "default".into()),
            static_ip: None,
            public_ip: dest
                .public_ip
                .then(|| NameKind::PublicIp.fit(&format!("{vm_name}-pip0"))),
        }]
    } else {
        vm.nics
            .iter()
            .enumerate()
            .map(|(i, n)| TargetNic {
                name: NameKind::NetworkInterface.fit(&format!("{vm_name}-nic{i}")),
                // A destination network replaces the source's for the primary NIC.
                virtual_network: match (&dest.virtual_network, i) {
                    (Some(v), 0) if !in_place => v.name.clone(),
                    _ => n.virtual_network.clone(),
                },
                subnet: match (&dest.subnet, i) {
                    (Some(s), 0) if !in_place => s.clone(),
                    _ => n.subnet.clone(),
                },
                static_ip: match &n.private_ip {
                    IpAllocation::Static { address } => Some(address.clone()),
                    IpAllocation::Dynamic => None,
                },
                public_ip: (n.public_ip.is_some() || (i == 0 && dest.public_ip))
                    .then(|| NameKind::PublicIp.fit(&format!("{vm_name}-pip{i}"))),
            })
            .collect()
    }
}
