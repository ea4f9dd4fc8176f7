//! Input fingerprints: SHA-256 over the canonical JSON of each input.

use std::io::Write;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Fingerprint;
use crate::model::{RestorePoint, RestoreRequest};
use crate::policy::{Eval, Profile};

struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SHA-256 (hex) of a value's JSON, streamed into the hash without a buffer.
pub(crate) fn digest_json<T: Serialize + ?Sized>(v: &T) -> String {
    let mut w = HashWriter(Sha256::new());
    // Serialising our own model types into a hash cannot fail.
    let _ = serde_json::to_writer(&mut w, v);
    hex::encode(w.0.finalize())
}

/// The first 12 hex digits of the SHA-256 of `bytes`: for deterministic names.
pub(crate) fn short_digest(bytes: &[u8]) -> String {
    let mut h = hex::encode(Sha256::digest(bytes));
    h.truncate(12);
    h
}

/// Digest of the policy: every profile's name and rules, and the text of
/// custom conditions.
pub(crate) fn policy_digest(profiles: &[Profile]) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    for p in profiles {
        h.update([0]);
        h.update(&p.name);
        for r in &p.rules {
            h.update([1]);
            h.update(&r.id);
            if let Eval::Custom(c) = &r.eval {
                h.update([2]);
                h.update(&c.expression);
                h.update(&r.summary);
            }
        }
    }
    hex::encode(h.finalize())
}

impl Fingerprint {
    pub(crate) fn compute(
        rp: &RestorePoint,
        req: &RestoreRequest,
        catalog: &str,
        profiles: &[Profile],
    ) -> Fingerprint {
        let restore_point = digest_json(rp);
        let request = digest_json(req);
        let policy = policy_digest(profiles);
        let combined = hex::encode(Sha256::digest(format!(
            "{restore_point}:{request}:{catalog}:{policy}"
        )));
        Fingerprint {
            combined,
            restore_point,
            request,
            catalog: catalog.to_string(),
            policy,
        }
    }
}

/// Digest of a restore point as [`Fingerprint::restore_point`] records it;
/// the executor compares it with the repository's current metadata.
pub fn restore_point_digest(rp: &RestorePoint) -> String {
    digest_json(rp)
}

/// Digest of a catalog as [`Fingerprint::catalog`] records it.
pub fn catalog_digest(c: &crate::model::Catalog) -> String {
    digest_json(c)
}
