//! One step: its operation handed to the cloud (creates and actions), with
//! retries, keyed by the plan's step so a retry never makes a thing twice.

use bytes::Bytes;

use super::retry::{Stop, retry};
use super::*;
use crate::plan::{Operation, Step};

impl Run<'_> {
    pub(super) async fn retry_cloud<T, F, Fut>(
        &self,
        key: &str,
        step: &str,
        f: F,
    ) -> std::result::Result<T, StepFailure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = CallResult<T>>,
    {
        let r = retry(&self.ex.opts.retry, key, Some(&self.stop), f, |a| {
            if !step.is_empty() {
                self.emit(Event::StepRetried {
                    step: step.to_string(),
                    attempt: a.attempt,
                    error: a.error.clone(),
                    wait_ms: a.wait_ms,
                });
            }
        })
        .await;
        let record = |history: &[Attempt]| {
            if !history.is_empty() && !step.is_empty() {
                lock(&self.attempts)
                    .entry(step.to_string())
                    .or_default()
                    .extend(history.iter().cloned());
            }
        };
        match r {
            Ok((v, history)) => {
                record(&history);
                Ok(v)
            }
            Err(Stop::Failed(e, history)) => {
                record(&history);
                let message = if e.is_transient() {
                    format!("{e} (gave up after {} attempts)", history.len())
                } else {
                    e.to_string()
                };
                Err(StepFailure {
                    code: "E_CLOUD",
                    message,
                    attempts: history,
                    cancelled: false,
                })
            }
            Err(Stop::Cancelled) => Err(StepFailure::cancelled()),
        }
    }

    /// The idempotency key of a step: the plan's fingerprint and the step ID.
    pub(super) fn key(&self, step: &str) -> String {
        let fp = &self.plan.fingerprint.combined;
        format!("{}:{step}", &fp[..16.min(fp.len())])
    }

    pub(super) async fn create(
        &self,
        step: &Step,
        spec: ResourceSpec,
    ) -> std::result::Result<(), StepFailure> {
        let key = self.key(&step.id);
        let r = self
            .retry_cloud(&key, &step.id, || self.ex.cloud.create(&key, &spec))
            .await?;
        let new = lock(&self.resources)
            .insert(step.id.to_string(), r.clone())
            .is_none();
        if new && !r.existed {
            lock(&self.created).push(r.clone());
            if let Some(j) = &self.journal {
                j.created(&r).map_err(StepFailure::from_error)?;
            }
        }
        Ok(())
    }

    pub(super) async fn act(
        &self,
        step: &Step,
        action: CloudAction,
    ) -> std::result::Result<(), StepFailure> {
        let key = self.key(&step.id);
        self.retry_cloud(&key, &step.id, || self.ex.cloud.act(&key, &action))
            .await
    }

    pub(super) async fn step(&self, s: &Step) -> std::result::Result<(), StepFailure> {
        // Where the disks' bytes go is one choice per run: with a sink they
        // go there, and the cloud's disks would get none. So no cloud step
        // runs (no empty disk, no VM on blank disks): the run exports the
        // verified disks and the template that creates the VM from them.
        if self.ex.sink.is_some() && !s.operation.runs_with_sink() {
            lock(&self.skipped).insert(s.id.to_string());
            return Ok(());
        }
        match &s.operation {
            Operation::VerifyRestorePoint { disks, deep } => self.verify(disks, *deep).await,
            Operation::Create { spec } => self.create(s, spec.clone()).await,
            Operation::Act { action } => self.act(s, self.bind(action)).await,
            Operation::WriteDisk { disk, size_bytes } => {
                self.write_disk(s, disk, *size_bytes).await
            }
            Operation::FinalizeDisk { disk, size_bytes } => {
                self.finalize_disk(s, disk, *size_bytes).await
            }
            Operation::WriteTemplate {
                artifact,
                resources,
            } => {
                if let Some(sink) = &self.ex.sink {
                    let body = template(resources)
                        .map_err(|e| StepFailure::from_error(Error::Cloud(e)))?;
                    self.retry_cloud(&s.id, &s.id, || {
                        sink.write_artifact(artifact, Bytes::from(body.clone()))
                    })
                    .await?;
                }
                Ok(())
            }
        }
    }

    /// Binds what a plan does not carry because the host provides it: the
    /// service principal a key vault grants access to.
    pub(super) fn bind(&self, action: &CloudAction) -> CloudAction {
        match action {
            CloudAction::GrantKeyVaultAccess { vault, .. } => CloudAction::GrantKeyVaultAccess {
                vault: vault.clone(),
                principal: self.ex.opts.service_principal.clone(),
            },
            other => other.clone(),
        }
    }
}
