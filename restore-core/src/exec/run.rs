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

/// What the scheduler leaves: each step's status and timing, the first
/// failure, whether the run was cancelled.
struct Schedule {
    status: Vec<StepStatus>,
    started: Vec<Option<u64>>,
    elapsed: Vec<Option<u64>>,
    done: HashSet<usize>,
    failure: Option<(usize, StepFailure)>,
    cancelled: bool,
}

impl Run<'_> {
    pub(super) fn emit(&self, e: Event) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }

    pub(super) fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Runs the plan: schedules its steps, decides the outcome, cleans up
    /// or rolls forward, and returns (and writes to the sink) the report.
    pub(super) async fn execute(
        &self,
        cancel: &CancellationToken,
        resumed_done: &HashSet<String>,
    ) -> Report {
        let sched = self.schedule(cancel, resumed_done).await;
        let report = self.finish(sched).await;
        self.write_artifacts(&report).await;
        report
    }

    /// Launches every step whose dependencies are done (control-plane steps
    /// and disk streams under their own limits) until all are done, one
    /// fails or the run is cancelled; then waits for the running ones.
    async fn schedule(
        &self,
        cancel: &CancellationToken,
        resumed_done: &HashSet<String>,
    ) -> Schedule {
        let steps = &self.plan.steps;
        let mut s = Schedule {
            status: vec![StepStatus::NotRun; steps.len()],
            started: vec![None; steps.len()],
            elapsed: vec![None; steps.len()],
            done: HashSet::new(),
            failure: None,
            cancelled: false,
        };
        let index: HashMap<&str, usize> =
            steps.iter().enumerate().map(|(i, s)| (&*s.id, i)).collect();
        for (i, step) in steps.iter().enumerate() {
            if resumed_done.contains(&*step.id) {
                s.done.insert(i);
                s.status[i] = StepStatus::Resumed;
                self.emit(Event::StepSkipped {
                    step: step.id.to_string(),
                });
            }
        }
        let control = Arc::new(Semaphore::new(self.ex.opts.control_concurrency.max(1)));
        let data = Arc::new(Semaphore::new(self.ex.opts.data_concurrency.max(1)));
        let mut running = FuturesUnordered::new();
        let mut launched: HashSet<usize> = s.done.clone();
        loop {
            if s.failure.is_none() && !s.cancelled {
                for (i, step) in steps.iter().enumerate() {
                    let ready = step
                        .depends_on
                        .iter()
                        .all(|d| index.get(&**d).is_some_and(|j| s.done.contains(j)));
                    if launched.contains(&i) || !ready {
                        continue;
                    }
                    launched.insert(i);
                    let sem = if step.kind == StepKind::WriteDisk {
                        data.clone()
                    } else {
                        control.clone()
                    };
                    running.push(async move {
                        let _permit = sem.acquire_owned().await;
                        let t0 = self.ms();
                        self.emit(Event::StepStarted {
                            step: step.id.to_string(),
                        });
                        let r = tokio::select! {
                            r = self.step(step) => r,
                            _ = self.stop.cancelled() => Err(StepFailure::cancelled()),
                        };
                        (i, t0, r)
                    });
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some((i, t0, r)) = running.next() => self.settle(&mut s, i, t0, r),
                _ = cancel.cancelled(), if !s.cancelled => {
                    s.cancelled = true;
                    self.stop.cancel();
                }
            }
        }
        if cancel.is_cancelled() && s.failure.is_none() {
            s.cancelled = true;
        }
        s
    }

    /// Records a step's end: done (journaled), cancelled, or failed (the
    /// first failure stops the steps still running).
    fn settle(&self, s: &mut Schedule, i: usize, t0: u64, r: Result<(), StepFailure>) {
        let step = &self.plan.steps[i];
        s.started[i] = Some(t0);
        let elapsed = self.ms() - t0;
        s.elapsed[i] = Some(elapsed);
        match r {
            Ok(()) => {
                s.done.insert(i);
                s.status[i] = StepStatus::Done;
                if let Some(j) = &self.journal {
                    let _ = j.done(&step.id);
                }
                self.emit(Event::StepFinished {
                    step: step.id.to_string(),
                    elapsed_ms: elapsed,
                });
            }
            Err(f) if f.cancelled => s.status[i] = StepStatus::Cancelled,
            Err(f) => {
                s.status[i] = StepStatus::Failed;
                self.emit(Event::StepFailed {
                    step: step.id.to_string(),
                    error: f.message.clone(),
                });
                if s.failure.is_none() {
                    s.failure = Some((i, f));
                }
                self.stop.cancel();
            }
        }
    }

    /// Whether the in-place delete of the existing VM has run (or started:
    /// a failed or interrupted delete may have happened on the cloud's
    /// side): past that point the run rolls forward instead of cleaning up.
    fn past_point_of_no_return(&self, s: &Schedule) -> bool {
        let steps = &self.plan.steps;
        let Some(i) = steps
            .iter()
            .position(|s| s.kind == StepKind::DeleteExistingVm)
        else {
            return false;
        };
        !lock(&self.skipped).contains(&*steps[i].id)
            && (matches!(
                s.status[i],
                StepStatus::Done | StepStatus::Resumed | StepStatus::Failed
            ) || (s.status[i] == StepStatus::Cancelled && s.started[i].is_some()))
    }

    fn outcome(&self, s: &Schedule) -> Outcome {
        let all_done = s.done.len() == self.plan.steps.len();
        let stopped = s.failure.is_some() || (s.cancelled && !all_done);
        if stopped && self.past_point_of_no_return(s) {
            Outcome::NeedsAttention
        } else if s.failure.is_some() {
            Outcome::Failed
        } else if s.cancelled && !all_done {
            Outcome::Cancelled
        } else {
            Outcome::Succeeded
        }
    }

    /// The VM's state after the run (rolled forward when the run stopped
    /// past the point of no return).
    async fn vm_after(
        &self,
        s: &Schedule,
        outcome: Outcome,
        notes: &mut Vec<String>,
    ) -> Option<VmReport> {
        let steps = &self.plan.steps;
        let vm_index = steps
            .iter()
            .position(|s| s.kind == StepKind::VirtualMachine);
        let vm_done = vm_index
            .is_some_and(|i| s.done.contains(&i) && !lock(&self.skipped).contains(&*steps[i].id));
        if outcome == Outcome::NeedsAttention {
            return Some(
                self.roll_forward(steps, &s.status, vm_done, &s.failure, notes)
                    .await,
            );
        }
        let in_place = steps.iter().any(|s| s.kind == StepKind::DeleteExistingVm);
        vm_index.map(|_| VmReport {
            name: self.plan.target.vm_name.clone(),
            state: if vm_done {
                VmState::Restored
            } else if in_place {
                VmState::Original
            } else {
                VmState::NotCreated
            },
        })
    }

    /// What the report notes beyond the steps: resumption, chunks written
    /// again, steps skipped because the disks went to a sink.
    fn run_notes(&self, notes: &mut Vec<String>) {
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
        let skipped = lock(&self.skipped).len();
        if skipped > 0 {
            notes.push(format!(
                "the disks were written to the sink, so the cloud's disks would get no data: no cloud step ran ({skipped} skipped) and no VM was created; {}.template.json creates the VM from the disks once they are uploaded",
                self.plan.target.vm_name
            ));
        }
    }

    /// Decides the outcome, cleans up (failed, or cancelled unless kept) or
    /// rolls forward, and builds the report.
    async fn finish(&self, s: Schedule) -> Report {
        let steps = &self.plan.steps;
        let outcome = self.outcome(&s);
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
        let vm = self.vm_after(&s, outcome, &mut notes).await;
        self.run_notes(&mut notes);
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
        let step_report = |(i, st): (usize, &crate::plan::Step)| StepReport {
            id: st.id.to_string(),
            kind: st.kind,
            status: if s.status[i] == StepStatus::Done && skipped.contains(&*st.id) {
                StepStatus::Skipped
            } else {
                s.status[i]
            },
            started_ms: s.started[i],
            elapsed_ms: s.elapsed[i],
            attempts: attempts.get(&*st.id).cloned().unwrap_or_default(),
            resource: resources.get(&*st.id).map(|r| r.id.clone()),
        };
        Report {
            format_version: REPORT_FORMAT_VERSION.into(),
            plan: self.plan.fingerprint.combined.clone(),
            outcome,
            error: s.failure.as_ref().map(|(i, f)| ReportError {
                code: f.code.into(),
                step: steps[*i].id.to_string(),
                message: f.message.clone(),
                attempts: f.attempts.clone(),
            }),
            elapsed_ms: self.ms(),
            steps: steps.iter().enumerate().map(step_report).collect(),
            disks,
            findings: self.plan.findings.clone(),
            post_actions: self.plan.post_actions.clone(),
            created,
            cleaned_up,
            notes,
            vm,
        }
    }

    /// The local destination gets the report and, after a success, a
    /// template that creates the VM from the restored disks ("restore
    /// disks" plans write their own; a VM no template can declare, a
    /// confidential VM, gets none).
    async fn write_artifacts(&self, report: &Report) {
        let Some(sink) = &self.ex.sink else {
            return;
        };
        let name = &self.plan.target.vm_name;
        if report.outcome == Outcome::Succeeded
            && !self.plan.steps.iter().any(|s| s.kind == StepKind::Template)
            && let Ok(body) = template(&crate::plan::template_resources(&self.plan.target))
        {
            let _ = sink
                .write_artifact(&format!("{name}.template.json"), Bytes::from(body))
                .await;
        }
        let _ = sink
            .write_artifact(
                &format!("{name}.report.json"),
                Bytes::from(report.to_json()),
            )
            .await;
    }
}
