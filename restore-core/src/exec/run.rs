//! Scheduling: the step graph run with bounded concurrency (control-plane
//! steps and disk data streams apart), then the outcome and the report.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::plan::StepKind;

impl Run<'_> {
    pub(super) fn emit(&self, e: Event) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }

    pub(super) fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub(super) async fn execute(
        &self,
        cancel: &CancellationToken,
        resumed_done: &HashSet<String>,
    ) -> Report {
        let steps = &self.plan.steps;
        let mut status: Vec<StepStatus> = vec![StepStatus::NotRun; steps.len()];
        let mut started: Vec<Option<u64>> = vec![None; steps.len()];
        let mut elapsed: Vec<Option<u64>> = vec![None; steps.len()];
        let index: HashMap<&str, usize> =
            steps.iter().enumerate().map(|(i, s)| (&*s.id, i)).collect();
        let mut done: HashSet<usize> = HashSet::new();
        for (i, s) in steps.iter().enumerate() {
            if resumed_done.contains(&*s.id) {
                done.insert(i);
                status[i] = StepStatus::Resumed;
                self.emit(Event::StepSkipped {
                    step: s.id.to_string(),
                });
            }
        }
        let control = Arc::new(Semaphore::new(self.ex.opts.control_concurrency.max(1)));
        let data = Arc::new(Semaphore::new(self.ex.opts.data_concurrency.max(1)));
        let mut running = FuturesUnordered::new();
        let mut launched: HashSet<usize> = done.clone();
        let mut failure: Option<(usize, StepFailure)> = None;
        let mut cancelled = false;
        loop {
            if failure.is_none() && !cancelled {
                for (i, s) in steps.iter().enumerate() {
                    if launched.contains(&i)
                        || !s
                            .depends_on
                            .iter()
                            .all(|d| index.get(&**d).is_some_and(|j| done.contains(j)))
                    {
                        continue;
                    }
                    launched.insert(i);
                    let sem = if s.kind == StepKind::WriteDisk {
                        data.clone()
                    } else {
                        control.clone()
                    };
                    let fut = async move {
                        let _permit = sem.acquire_owned().await;
                        let t0 = self.ms();
                        self.emit(Event::StepStarted {
                            step: s.id.to_string(),
                        });
                        let r = tokio::select! {
                            r = self.step(s) => r,
                            _ = self.stop.cancelled() => Err(StepFailure::cancelled()),
                        };
                        (i, t0, r)
                    };
                    running.push(fut);
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some((i, t0, r)) = running.next() => {
                    started[i] = Some(t0);
                    elapsed[i] = Some(self.ms() - t0);
                    match r {
                        Ok(()) => {
                            done.insert(i);
                            status[i] = StepStatus::Done;
                            if let Some(j) = &self.journal {
                                let _ = j.done(&steps[i].id);
                            }
                            self.emit(Event::StepFinished { step: steps[i].id.to_string(), elapsed_ms: elapsed[i].unwrap_or(0) });
                        }
                        Err(f) if f.cancelled => status[i] = StepStatus::Cancelled,
                        Err(f) => {
                            status[i] = StepStatus::Failed;
                            self.emit(Event::StepFailed { step: steps[i].id.to_string(), error: f.message.clone() });
                            if failure.is_none() {
                                failure = Some((i, f));
                            }
                            // Stop the steps still running: the run has failed.
                            self.stop.cancel();
                        }
                    }
                }
                _ = cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    self.stop.cancel();
                }
            }
        }
        if cancel.is_cancelled() && failure.is_none() {
            cancelled = true;
        }
        // The point of no return: the in-place delete of the existing VM
        // has run (or started: a failed or interrupted delete may have
        // happened on the cloud's side).
        let ponr = steps
            .iter()
            .position(|s| s.kind == StepKind::DeleteExistingVm);
        let past_ponr = ponr.is_some_and(|i| !lock(&self.skipped).contains(&*steps[i].id))
            && ponr.is_some_and(|i| {
                matches!(
                    status[i],
                    StepStatus::Done | StepStatus::Resumed | StepStatus::Failed
                ) || (status[i] == StepStatus::Cancelled && started[i].is_some())
            });
        let stopped = failure.is_some() || (cancelled && done.len() < steps.len());
        let outcome = if stopped && past_ponr {
            Outcome::NeedsAttention
        } else if failure.is_some() {
            Outcome::Failed
        } else if cancelled && done.len() < steps.len() {
            Outcome::Cancelled
        } else {
            Outcome::Succeeded
        };
        let mut cleaned_up = Vec::new();
        let mut notes = Vec::new();
        if outcome == Outcome::Failed
            || (outcome == Outcome::Cancelled && !self.ex.opts.keep_on_cancel)
        {
            cleaned_up = self.cleanup(&mut notes).await;
            if let Some(j) = &self.journal {
                let _ = j.reset();
            }
        }
        let vm_index = steps
            .iter()
            .position(|s| s.kind == StepKind::VirtualMachine);
        let vm_done = vm_index
            .is_some_and(|i| done.contains(&i) && !lock(&self.skipped).contains(&*steps[i].id));
        let mut vm = vm_index.map(|_| VmReport {
            name: self.plan.target.vm_name.clone(),
            state: if vm_done {
                VmState::Restored
            } else if ponr.is_some() {
                VmState::Original
            } else {
                VmState::NotCreated
            },
        });
        if outcome == Outcome::NeedsAttention {
            vm = Some(
                self.roll_forward(&steps[..], &status, vm_done, &failure, &mut notes)
                    .await,
            );
        }
        if self.resumed {
            notes.push("resumed from the journal".into());
        }
        let mut rewritten: Vec<(String, u64)> = lock(&self.rewritten)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        rewritten.sort();
        for (disk, n) in rewritten {
            notes.push(format!(
                "disk '{disk}': {n} chunks the journal recorded were not at the destination and were written again"
            ));
        }
        let attempts = lock(&self.attempts).clone();
        let created = if cleaned_up.is_empty() {
            lock(&self.created).clone()
        } else {
            Vec::new()
        };
        let mut disks: Vec<DiskReport> = lock(&self.disks).values().cloned().collect();
        disks.sort_by(|a, b| a.name.cmp(&b.name));
        let resources = lock(&self.resources).clone();
        let skipped = lock(&self.skipped).clone();
        if !skipped.is_empty() {
            notes.push(format!(
                "the disks were written to the sink, so the cloud's disks would get no data: no cloud step ran ({} skipped) and no VM was created; {}.template.json creates the VM from the disks once they are uploaded",
                skipped.len(),
                self.plan.target.vm_name
            ));
        }
        let report = Report {
            format_version: REPORT_FORMAT_VERSION.into(),
            plan: self.plan.fingerprint.combined.clone(),
            outcome,
            error: failure.as_ref().map(|(i, f)| ReportError {
                code: f.code.into(),
                step: steps[*i].id.to_string(),
                message: f.message.clone(),
                attempts: f.attempts.clone(),
            }),
            elapsed_ms: self.ms(),
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, s)| StepReport {
                    id: s.id.to_string(),
                    kind: s.kind,
                    status: if status[i] == StepStatus::Done && skipped.contains(&*s.id) {
                        StepStatus::Skipped
                    } else {
                        status[i]
                    },
                    started_ms: started[i],
                    elapsed_ms: elapsed[i],
                    attempts: attempts.get(&*s.id).cloned().unwrap_or_default(),
                    resource: resources.get(&*s.id).map(|r| r.id.clone()),
                })
                .collect(),
            disks,
            findings: self.plan.findings.clone(),
            post_actions: self.plan.post_actions.clone(),
            created,
            cleaned_up,
            notes,
            vm,
        };
        if let Some(sink) = &self.ex.sink {
            // The local destination always gets a template that creates the
            // VM from the restored disks ("restore disks" gives one).
            // A VM no template can declare (a confidential VM) gets none.
            if outcome == Outcome::Succeeded
                && !steps.iter().any(|s| s.kind == StepKind::Template)
                && let Ok(body) = template(&crate::plan::template_resources(&self.plan.target))
            {
                let _ = sink
                    .write_artifact(
                        &format!("{}.template.json", self.plan.target.vm_name),
                        Bytes::from(body),
                    )
                    .await;
            }
            let _ = sink
                .write_artifact(
                    &format!("{}.report.json", self.plan.target.vm_name),
                    Bytes::from(report.to_json()),
                )
                .await;
        }
        report
    }
}
