//! The planner's last decision: each step's whole [`Operation`], from the
//! target the rules decided.

use super::ops::{CloudAction, DiskSource, Operation, ResourceSpec};
use super::types::{StepKind, Target, TargetDisk};
use crate::model::{DiskRole, Generation, SecurityType};

/// The security type the restored VM gets: trusted launch and confidential
/// VMs need generation 2, so a VM restored as generation 1 is standard.
pub fn effective_security(t: &Target) -> SecurityType {
    if t.generation == Generation::Gen2 {
        t.security_type
    } else {
        SecurityType::Standard
    }
}

fn disk_source(d: &TargetDisk) -> DiskSource {
    DiskSource {
        disk: d.name.clone(),
        source: match &d.volume_group {
            Some(vg) => format!("{}/{vg}", d.source_disk),
            None => d.source_disk.clone(),
        },
    }
}

/// The operation of a step of `kind` on `resource` (and `disk`), from the
/// target the planner decided. `None` for a disk step whose disk is not in
/// the target (the planner never makes one).
pub(super) fn operation(
    t: &Target,
    kind: StepKind,
    resource: &str,
    disk: Option<&str>,
) -> Option<Operation> {
    use StepKind::*;
    let create = |spec| Some(Operation::Create { spec });
    match kind {
        VerifyRestorePoint => Some(Operation::VerifyRestorePoint {
            disks: t.disks.iter().map(disk_source).collect(),
            deep: false,
        }),
        ResourceGroup | KeyVault | StagingAccount | HelperAppliance | SnapshotExistingDisks => {
            create(resource_spec(t, kind, resource)?)
        }
        CreateDisk | WriteDisk | FinalizeDisk => {
            let d = disk.and_then(|n| t.disks.iter().find(|d| d.name == n))?;
            Some(disk_operation(t, kind, d))
        }
        NetworkSecurityGroup | PublicIp | NetworkInterface => {
            create(network_spec(t, kind, resource)?)
        }
        VirtualMachine => create(vm_spec(t)),
        Template => Some(Operation::WriteTemplate {
            artifact: format!("{}.template.json", t.vm_name),
            resources: template_resources(t),
        }),
        KeyVaultAccess | DeleteExistingVm | BootFix | ConvertToManaged | SwapDisks | PowerOn
        | DeleteExistingDisks => Some(Operation::Act {
            action: cloud_action(t, kind, resource)?,
        }),
    }
}

/// The resources a restore needs around the VM: its resource group, key
/// vault, staging account, helper appliance and the snapshot of the disks
/// it replaces.
fn resource_spec(t: &Target, kind: StepKind, resource: &str) -> Option<ResourceSpec> {
    use StepKind::*;
    let sub = t.subscription_id.clone();
    let rg = t.resource_group.clone();
    let region = t.region.clone();
    let name = resource.to_string();
    Some(match kind {
        ResourceGroup => ResourceSpec::ResourceGroup {
            subscription_id: sub,
            name,
            region,
        },
        KeyVault => ResourceSpec::KeyVault {
            subscription_id: sub,
            resource_group: rg,
            name,
            region,
        },
        StagingAccount => ResourceSpec::StorageAccount {
            subscription_id: sub,
            resource_group: rg,
            name,
            region,
        },
        HelperAppliance => ResourceSpec::HelperAppliance {
            resource_group: rg,
            name,
            region,
        },
        SnapshotExistingDisks => ResourceSpec::Snapshot {
            resource_group: rg,
            vm: t.vm_name.clone(),
        },
        _ => return None,
    })
}

/// A disk's create, write or finalize.
fn disk_operation(t: &Target, kind: StepKind, d: &TargetDisk) -> Operation {
    match kind {
        StepKind::WriteDisk => Operation::WriteDisk {
            disk: disk_source(d),
            size_bytes: d.size_bytes,
        },
        StepKind::FinalizeDisk => Operation::FinalizeDisk {
            disk: disk_source(d),
            size_bytes: d.size_bytes,
        },
        _ => {
            let os = d.role == DiskRole::Os;
            Operation::Create {
                spec: ResourceSpec::Disk {
                    subscription_id: t.subscription_id.clone(),
                    resource_group: t.resource_group.clone(),
                    name: d.name.clone(),
                    region: t.region.clone(),
                    size_bytes: d.size_bytes,
                    sku: d.sku,
                    zone: t.zone,
                    os: os.then_some((t.os_family, t.generation)),
                    security_type: if os {
                        effective_security(t)
                    } else {
                        SecurityType::Standard
                    },
                    staging_account: if t.disks_staged {
                        t.staging_account.clone()
                    } else {
                        None
                    },
                    disk_encryption_set: d.disk_encryption_set.clone(),
                },
            }
        }
    }
}

/// The NSG (attached to the NICs when it comes after the VM), a public IP
/// or a NIC (with the NSG when it comes first).
fn network_spec(t: &Target, kind: StepKind, resource: &str) -> Option<ResourceSpec> {
    let rg = t.resource_group.clone();
    let region = t.region.clone();
    Some(match kind {
        StepKind::NetworkSecurityGroup => ResourceSpec::NetworkSecurityGroup {
            resource_group: rg,
            name: resource.to_string(),
            region,
            open_ports: t.nsg_open_ports.clone(),
            attach_to: if t.nsg_after_vm {
                t.nics.iter().map(|n| n.name.clone()).collect()
            } else {
                Vec::new()
            },
        },
        StepKind::PublicIp => ResourceSpec::PublicIp {
            resource_group: rg,
            name: resource.to_string(),
            region,
        },
        StepKind::NetworkInterface => {
            let nic = t.nics.iter().find(|n| n.name == resource)?;
            ResourceSpec::NetworkInterface {
                resource_group: rg,
                name: nic.name.clone(),
                region,
                virtual_network: nic.virtual_network.clone(),
                subnet: nic.subnet.clone(),
                static_ip: nic.static_ip.clone(),
                public_ip: nic.public_ip.clone(),
                network_security_group: if t.nsg_after_vm {
                    None
                } else {
                    t.network_security_group.clone()
                },
            }
        }
        _ => return None,
    })
}

/// The VM, with its disks by role and LUN and its NICs.
fn vm_spec(t: &Target) -> ResourceSpec {
    ResourceSpec::VirtualMachine {
        subscription_id: t.subscription_id.clone(),
        resource_group: t.resource_group.clone(),
        name: t.vm_name.clone(),
        region: t.region.clone(),
        size: t.vm_size.clone(),
        zone: t.zone,
        availability_set: t.availability_set.clone(),
        os: t.os_family,
        generation: t.generation,
        security_type: effective_security(t),
        os_disk: t
            .disks
            .iter()
            .find(|d| d.role == DiskRole::Os)
            .map(|d| d.name.clone())
            .unwrap_or_default(),
        data_disks: t
            .disks
            .iter()
            .filter(|d| d.role == DiskRole::Data)
            .map(|d| (d.lun.unwrap_or(0), d.name.clone()))
            .collect(),
        nics: t.nics.iter().map(|n| n.name.clone()).collect(),
    }
}

/// What the cloud does to resources that exist: key-vault access, deleting
/// the existing VM, the boot fix, the conversion to managed disks, the
/// swap, power on and deleting the replaced disks.
fn cloud_action(t: &Target, kind: StepKind, resource: &str) -> Option<CloudAction> {
    use StepKind::*;
    let rg = || t.resource_group.clone();
    let vm = || t.vm_name.clone();
    let disk_names = || t.disks.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    Some(match kind {
        KeyVaultAccess => CloudAction::GrantKeyVaultAccess {
            vault: resource.to_string(),
            principal: String::new(),
        },
        DeleteExistingVm => CloudAction::DeleteExistingVm {
            subscription_id: t.subscription_id.clone(),
            resource_group: rg(),
            vm: vm(),
        },
        BootFix => CloudAction::BootFix {
            vm: vm(),
            disks: disk_names(),
        },
        ConvertToManaged => CloudAction::ConvertToManaged {
            resource_group: rg(),
            disks: disk_names(),
        },
        SwapDisks => CloudAction::SwapDisks {
            resource_group: rg(),
            vm: vm(),
            disks: disk_names(),
        },
        PowerOn => CloudAction::PowerOn {
            resource_group: rg(),
            vm: vm(),
        },
        DeleteExistingDisks => CloudAction::DeleteReplacedDisks {
            resource_group: rg(),
            vm: vm(),
        },
        _ => return None,
    })
}

/// What a template that creates the target's VM from its restored disks
/// declares, in order: the disks (as the managed disks they are uploaded
/// as: a template has no staging account), the NSG, the public IPs, the
/// NICs and the VM; each spec as the plan's own create step has it.
pub fn template_resources(t: &Target) -> Vec<ResourceSpec> {
    use StepKind::*;
    let mut specs = Vec::new();
    let mut push = |kind, name: &str, disk: Option<&str>| {
        if let Some(Operation::Create { spec }) = operation(t, kind, name, disk) {
            specs.push(spec);
        }
    };
    for d in &t.disks {
        push(CreateDisk, &d.name, Some(&d.name));
    }
    if let Some(nsg) = &t.network_security_group {
        push(NetworkSecurityGroup, nsg, None);
    }
    let mut ips: Vec<&String> = t.nics.iter().filter_map(|n| n.public_ip.as_ref()).collect();
    ips.dedup();
    for ip in ips {
        push(PublicIp, ip, None);
    }
    for nic in &t.nics {
        push(NetworkInterface, &nic.name, None);
    }
    push(VirtualMachine, &t.vm_name, None);
    for s in &mut specs {
        if let ResourceSpec::Disk {
            staging_account, ..
        } = s
        {
            *staging_account = None;
        }
    }
    specs
}
