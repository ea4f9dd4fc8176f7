//! Latency, ARM throttling and injected faults.

use std::time::Duration;

use super::*;

pub(super) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

pub(super) fn hash_str(seed: u64, s: &str) -> u64 {
    s.bytes().fold(mix(seed), |h, b| mix(h ^ u64::from(b)))
}

impl SimCloud {
    pub(super) fn with_buckets(mut self) -> Self {
        self.buckets = self.cfg.arm_limits.map(|l| {
            Arc::new((
                super::TokenBucket::new(l.writes.0, l.writes.1),
                super::TokenBucket::new(l.deletes.0, l.deletes.1),
            ))
        });
        self
    }

    /// ARM's throttling: a write (or delete) takes a token from its bucket
    /// or is refused with 429 and the Retry-After of the next token.
    pub(super) fn throttle(&self, op: &str, key: &str, delete: bool) -> CallResult<()> {
        let Some(b) = &self.buckets else {
            return Ok(());
        };
        let bucket = if delete { &b.1 } else { &b.0 };
        let r = bucket.try_take();
        let mut st = self.lock();
        match r {
            Ok(()) => {
                st.arm_requests += 1;
                Ok(())
            }
            Err(wait) => {
                st.throttled += 1;
                Err(CallError::new(
                    CallErrorKind::Throttled,
                    format!("{op} {key}"),
                    "429 Too Many Requests (subscription write limit)",
                )
                .retry_after(wait))
            }
        }
    }

    /// Decides, deterministically, whether this attempt of `op` on `key` fails.
    pub(super) fn fault(&self, op: &str, key: &str, p: f64) -> Option<CallError> {
        let name = format!("{op} {key}");
        let mut st = self.lock();
        st.calls += 1;
        let step = key.split_once(':').map(|(_, s)| s);
        if self.cfg.faults.always_fail.iter().any(|o| {
            o == op || (o.strip_prefix("step:").is_some() && o.strip_prefix("step:") == step)
        }) {
            st.faults_injected += 1;
            return Some(CallError::new(
                CallErrorKind::Unavailable,
                name,
                "injected persistent failure (503)",
            ));
        }
        if p <= 0.0 {
            return None;
        }
        let attempt = {
            let a = st.attempts.entry(name.clone()).or_insert(0);
            *a += 1;
            *a
        };
        let h = mix(hash_str(self.cfg.faults.seed, &name) ^ attempt);
        if (h as f64 / u64::MAX as f64) >= p {
            return None;
        }
        st.faults_injected += 1;
        Some(match h % 4 {
            0 => CallError::new(
                CallErrorKind::Throttled,
                name,
                "injected 429 Too Many Requests",
            )
            .retry_after(self.cfg.faults.retry_after),
            1 => CallError::new(
                CallErrorKind::Unavailable,
                name,
                "injected 503 Service Unavailable",
            ),
            2 => CallError::new(CallErrorKind::Timeout, name, "injected timeout"),
            _ => CallError::new(
                CallErrorKind::Unavailable,
                name,
                "injected connection reset (the connection dropped)",
            ),
        })
    }

    pub(super) fn latency(&self, op: &str) -> Duration {
        self.cfg
            .op_latency
            .get(op)
            .copied()
            .unwrap_or(self.cfg.latency)
    }

    pub(super) async fn delay(&self, d: Duration) {
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}
