//! The one retry loop of the executor, for cloud calls and repository
//! reads alike: exponential backoff with jitter, at least the server's
//! Retry-After, and (when given a token) cancellation during the wait.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Attempt, CallError, CallErrorKind};

/// Retry policy for transient failures.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Delay after the first failure; doubles each time.
    pub base_delay: Duration,
    /// Largest delay (before Retry-After, which may be longer).
    pub max_delay: Duration,
    /// Seed of the jitter.
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            seed: 0x5eed,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): exponential with
    /// "equal jitter" (half fixed, half random), at least the Retry-After.
    pub fn delay(&self, key: &str, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.max_delay);
        let h = key.bytes().fold(
            self.seed ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3),
        );
        let frac = (h >> 11) as f64 / (1u64 << 53) as f64;
        let d = exp.mul_f64(0.5 + 0.5 * frac);
        retry_after.map_or(d, |r| d.max(r))
    }
}

/// An error the loop can judge: transient ones are retried.
pub(super) trait Retryable: std::fmt::Display {
    /// The cloud error inside, if any (only those can be transient).
    fn cloud(&self) -> Option<&CallError>;
}

impl Retryable for CallError {
    fn cloud(&self) -> Option<&CallError> {
        Some(self)
    }
}

impl Retryable for crate::Error {
    fn cloud(&self) -> Option<&CallError> {
        match self {
            crate::Error::Cloud(e) => Some(e),
            _ => None,
        }
    }
}

/// Why the loop stopped without a result.
pub(super) enum Stop<E> {
    /// The last error (final, or the attempts ran out), with every attempt.
    Failed(E, Vec<Attempt>),
    /// Cancelled while waiting to retry.
    Cancelled,
}

/// Calls `f` until it succeeds, fails for good or the attempts of `policy`
/// run out; `on_retry` hears of each retry before its wait. With `cancel`,
/// a cancellation ends the wait at once. Returns the value and the failed
/// attempts before it.
pub(super) async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    key: &str,
    cancel: Option<&CancellationToken>,
    mut f: F,
    mut on_retry: impl FnMut(&Attempt),
) -> Result<(T, Vec<Attempt>), Stop<E>>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let attempts = policy.max_attempts.max(1);
    let mut history = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let e = match f().await {
            Ok(v) => return Ok((v, history)),
            Err(e) => e,
        };
        let transient = e.cloud().is_some_and(CallError::is_transient);
        let last = attempt == attempts || !transient;
        let wait = if last {
            Duration::ZERO
        } else {
            policy.delay(
                key,
                attempt,
                e.cloud()
                    .and_then(|c| c.retry_after_ms)
                    .map(Duration::from_millis),
            )
        };
        history.push(Attempt {
            attempt,
            kind: e.cloud().map_or(CallErrorKind::Fatal, |c| c.kind.clone()),
            error: e.to_string(),
            wait_ms: wait.as_millis() as u64,
        });
        if last {
            return Err(Stop::Failed(e, history));
        }
        if let Some(a) = history.last() {
            on_retry(a);
        }
        match cancel {
            Some(c) => tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = c.cancelled() => return Err(Stop::Cancelled),
            },
            None => tokio::time::sleep(wait).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            ..Default::default()
        }
    }

    fn throttled(after: Duration) -> CallError {
        CallError::new(CallErrorKind::Throttled, "read", "slow down").retry_after(after)
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_recorded_final_ones_are_not() {
        let calls = AtomicU32::new(0);
        let r: Result<((), Vec<Attempt>), Stop<CallError>> = retry(
            &policy(),
            "k",
            None,
            || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(throttled(Duration::from_millis(2)))
            },
            |_| {},
        )
        .await;
        let Err(Stop::Failed(_, history)) = r else {
            panic!("expected a failure")
        };
        assert_eq!(calls.load(Ordering::Relaxed), 4);
        assert_eq!(history.len(), 4);
        assert!(history[..3].iter().all(|a| a.wait_ms >= 2));
        assert_eq!(history[3].wait_ms, 0);

        let calls = AtomicU32::new(0);
        let r: Result<((), Vec<Attempt>), Stop<crate::Error>> = retry(
            &policy(),
            "k",
            None,
            || async {
                calls.fetch_add(1, Ordering::Relaxed);
                Err(crate::Error::Repository("gone".into()))
            },
            |_| {},
        )
        .await;
        assert!(matches!(r, Err(Stop::Failed(_, ref h)) if h.len() == 1));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    /// The wait for a ten-minute Retry-After ends when the run is cancelled.
    #[tokio::test]
    async fn a_cancellation_ends_the_wait_at_once() {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.cancel();
        });
        let t0 = Instant::now();
        let r: Result<((), Vec<Attempt>), Stop<crate::Error>> = tokio::time::timeout(
            Duration::from_secs(60),
            retry(
                &policy(),
                "k",
                Some(&cancel),
                || async { Err(crate::Error::Cloud(throttled(Duration::from_secs(600)))) },
                |_| {},
            ),
        )
        .await
        .expect("the wait was cut short");
        assert!(matches!(r, Err(Stop::Cancelled)));
        assert!(t0.elapsed() < Duration::from_secs(60));
    }
}
