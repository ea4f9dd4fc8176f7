//! After a run stops: clean-up of what the run made, and rolling forward
//! after the point of no return of an in-place restore.

use super::retry::{Stop, retry};
use super::*;
use crate::plan::{Operation, Step};

impl Run<'_> {
    /// After the point of no return, nothing the restore needs is deleted.
    /// If the new VM exists, it is kept (roll forward). If it does not, the
    /// existing VM is put back on its kept disks. Either way, the notes say
    /// exactly what exists and what to do; the journal is kept so a rerun
    /// resumes (unless the old VM was put back, which a rerun redoes).
    pub(super) async fn roll_forward(
        &self,
        steps: &[Step],
        status: &[StepStatus],
        vm_done: bool,
        failure: &Option<(usize, StepFailure)>,
        notes: &mut Vec<String>,
    ) -> VmReport {
        // The put-back undoes the plan's own delete: the same VM, in the
        // same subscription and resource group.
        let Some((subscription_id, resource_group, vm_name)) =
            steps.iter().find_map(|s| match &s.operation {
                Operation::Act {
                    action:
                        CloudAction::DeleteExistingVm {
                            subscription_id,
                            resource_group,
                            vm,
                        },
                } => Some((subscription_id.clone(), resource_group.clone(), vm.clone())),
                _ => None,
            })
        else {
            return VmReport {
                name: self.plan.target.vm_name.clone(),
                state: VmState::Restored,
            };
        };
        let why = match failure {
            Some((i, f)) => format!("step '{}' failed: {}", steps[*i].id, f.message),
            None => "the run was cancelled".to_string(),
        };
        notes.push(format!(
            "after the point of no return (the existing VM '{}' was deleted; its disks were kept), {why}",
            vm_name
        ));
        let disks: Vec<String> = steps
            .iter()
            .filter_map(|s| match &s.operation {
                Operation::WriteDisk { disk, .. } => Some(disk.disk.clone()),
                _ => None,
            })
            .collect();
        notes.push(format!(
            "the new disks are written, verified and kept: {}",
            disks.join(", ")
        ));
        let pending: Vec<String> = steps
            .iter()
            .zip(status)
            .filter(|(_, st)| !matches!(st, StepStatus::Done | StepStatus::Resumed))
            .map(|(s, _)| s.id.to_string())
            .collect();
        if vm_done {
            notes.push(format!(
                "the restored VM '{}' exists and is kept; not finished: {}; run the plan again with the same journal to finish them",
                vm_name,
                pending.join(", ")
            ));
            return VmReport {
                name: vm_name.clone(),
                state: VmState::Restored,
            };
        }
        let key = self.key("restore-existing-vm");
        let action = CloudAction::RestoreExistingVm {
            subscription_id,
            resource_group,
            vm: vm_name.clone(),
        };
        // The put-back runs even after a cancellation: leaving no VM is
        // worse than finishing one more call.
        let r = retry(
            &self.ex.opts.retry,
            &key,
            None,
            || self.ex.cloud.act(&key, &action),
            |_| {},
        )
        .await;
        let last = match r {
            Ok(((), _)) => {
                notes.push(format!(
                    "the existing VM '{}' was put back on its kept disks; the new disks are kept for a rerun of the plan (it deletes the VM again only once they are ready)",
                    vm_name
                ));
                if let Some(j) = &self.journal {
                    let _ = j.reset();
                }
                return VmReport {
                    name: vm_name.clone(),
                    state: VmState::OriginalRecreated,
                };
            }
            Err(Stop::Failed(e, _)) => e.to_string(),
            Err(Stop::Cancelled) => "cancelled".to_string(),
        };
        notes.push(format!(
            "no VM '{}' exists: the existing VM could not be put back ({last}); create it from the new disks (run the plan again with the same journal) or from the kept disks of the old VM",
            vm_name
        ));
        VmReport {
            name: vm_name.clone(),
            state: VmState::Missing,
        }
    }

    /// Deletes, in reverse order, what the run (and the runs it resumed)
    /// created. Only resources whose key is one of this plan's steps are
    /// offered, and the cloud deletes only what it shows as made under that
    /// key (ARM: the `vmrestore-key` tag): a resource that existed, a
    /// forged journal line or another restore's resource is left, and
    /// said so in `notes`. Returns the IDs deleted.
    pub(super) async fn cleanup(&self, notes: &mut Vec<String>) -> Vec<String> {
        let created: Vec<Resource> = lock(&self.created).clone();
        let prefix = self.key("");
        let mut deleted = Vec::new();
        for r in created.iter().rev() {
            if r.existed || !r.key.starts_with(&prefix) {
                notes.push(format!(
                    "left {}: it is not a resource of this plan's steps",
                    r.id
                ));
                continue;
            }
            let res = self
                .retry_cloud(&format!("cleanup:{}", r.key), "", || {
                    self.ex.cloud.delete(r)
                })
                .await;
            match res {
                Ok(()) => {
                    self.emit(Event::CleanedUp {
                        resource: r.id.clone(),
                    });
                    deleted.push(r.id.clone());
                }
                Err(f) => notes.push(format!("clean-up left {}: {}", r.id, f.message)),
            }
        }
        lock(&self.created).clear();
        deleted
    }
}
