//! Azure Resource Manager's request limits, on both sides of the wire.
//!
//! ARM throttles each subscription with token buckets (2024 and later):
//! writes and deletes each have a bucket of 200 tokens refilled at 10 a
//! second; a request that finds its bucket empty gets 429 with Retry-After.
//! [`TokenBucket`] is that bucket. [`SimCloud`](super::SimCloud) enforces
//! one (`SimConfig::arm_limits`), and [`WriteLimitedCloud`] paces a client:
//! wrapped around the cloud that all of a subscription's restores share, it
//! takes a token before each write, so that a thousand concurrent restores
//! queue for the subscription's write budget instead of being throttled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::*;
use crate::model::Catalog;

/// A token bucket: `capacity` tokens, refilled at `per_second`, full at
/// first. It keeps time with tokio's clock (so a paused clock simulates it).
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    /// Tokens left (negative: reserved by waiters) as of `at`.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket. `per_second` must be positive.
    pub fn new(capacity: u32, per_second: f64) -> Self {
        TokenBucket {
            capacity: f64::from(capacity.max(1)),
            per_second: if per_second > 0.0 { per_second } else { 1.0 },
            state: Mutex::new((f64::from(capacity.max(1)), Instant::now())),
        }
    }

    /// ARM's bucket for a subscription's writes (or deletes): 200 tokens, 10 a second.
    pub fn arm_writes() -> Self {
        TokenBucket::new(200, 10.0)
    }

    fn refill(&self, s: &mut (f64, Instant)) {
        let now = Instant::now();
        let add = now.saturating_duration_since(s.1).as_secs_f64() * self.per_second;
        s.0 = (s.0 + add).min(self.capacity);
        s.1 = now;
    }

    /// Takes a token if there is one; otherwise says how long until there
    /// is (the Retry-After a server sends).
    pub fn try_take(&self) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut s);
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - s.0) / self.per_second))
        }
    }

    /// Takes a token, waiting for it if need be. Waiters reserve tokens as
    /// they arrive, so they are served first come, first served.
    pub async fn take(&self) {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            self.refill(&mut s);
            s.0 -= 1.0;
            if s.0 >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.0 / self.per_second)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Limits for a simulated subscription: ARM's write and delete buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmLimits {
    /// Writes (PUT, POST, PATCH): bucket size and refill per second.
    pub writes: (u32, f64),
    /// Deletes: bucket size and refill per second.
    pub deletes: (u32, f64),
}

impl Default for ArmLimits {
    /// ARM's published subscription limits: 200 tokens, 10 a second, each.
    fn default() -> Self {
        ArmLimits {
            writes: (200, 10.0),
            deletes: (200, 10.0),
        }
    }
}

/// A cloud whose control-plane writes (create, actions, disk upload
/// access) and deletes each wait for a token from a shared bucket: give
/// every restore of a subscription the same `WriteLimitedCloud` (it is
/// cheap to clone) and they pace themselves to its ARM limits. Reads and
/// page writes (the blob data plane, outside ARM) are not limited.
#[derive(Clone)]
pub struct WriteLimitedCloud {
    inner: Arc<dyn Cloud>,
    writes: Arc<TokenBucket>,
    deletes: Arc<TokenBucket>,
}

impl std::fmt::Debug for WriteLimitedCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteLimitedCloud")
            .field("writes", &self.writes)
            .field("deletes", &self.deletes)
            .finish_non_exhaustive()
    }
}

impl WriteLimitedCloud {
    /// Paces `inner` to `limits`.
    pub fn new(inner: Arc<dyn Cloud>, limits: ArmLimits) -> Self {
        WriteLimitedCloud {
            inner,
            writes: Arc::new(TokenBucket::new(limits.writes.0, limits.writes.1)),
            deletes: Arc::new(TokenBucket::new(limits.deletes.0, limits.deletes.1)),
        }
    }
}

#[async_trait]
impl Cloud for WriteLimitedCloud {
    async fn catalog(&self) -> CallResult<Catalog> {
        self.inner.catalog().await
    }
    async fn create(&self, key: &str, spec: &ResourceSpec) -> CallResult<Resource> {
        self.writes.take().await;
        self.inner.create(key, spec).await
    }
    async fn delete(&self, resource: &Resource) -> CallResult<()> {
        self.deletes.take().await;
        self.inner.delete(resource).await
    }
    async fn act(&self, key: &str, action: &CloudAction) -> CallResult<()> {
        self.writes.take().await;
        self.inner.act(key, action).await
    }
    async fn open_disk(&self, disk: &Resource) -> CallResult<Box<dyn DiskWriter>> {
        self.writes.take().await;
        self.inner.open_disk(disk).await
    }
    async fn close_disk(&self, disk: &Resource) -> CallResult<()> {
        self.writes.take().await;
        self.inner.close_disk(disk).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_bursts_to_its_capacity_then_refills_at_its_rate() {
        let b = TokenBucket::new(3, 2.0);
        for _ in 0..3 {
            assert!(b.try_take().is_ok());
        }
        let wait = b.try_take().unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(b.try_take().is_ok());
        // Waiters queue: 4 more tokens at 2 a second take 2 seconds.
        let t0 = Instant::now();
        for _ in 0..4 {
            b.take().await;
        }
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        // It never holds more than its capacity.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(b.try_take().is_ok());
        }
        assert!(b.try_take().is_err());
    }
}
