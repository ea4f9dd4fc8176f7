//! Input fingerprints: SHA-256 over a canonical encoding of each input.

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

/// SHA-256 (hex) of a value's postcard encoding (compact binary serde:
/// several times faster to produce than JSON and half its size). The
/// encoding goes into a reused per-thread buffer and is hashed in one call.
pub(crate) fn digest_json<T: Serialize + ?Sized>(v: &T) -> String {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let taken = std::mem::take(&mut *buf);
            match postcard::to_extend(v, taken) {
                Ok(out) => {
                    let d = hex::encode(Sha256::digest(&out[..]));
                    if out.capacity() <= 1 << 20 {
                        *buf = out;
                    }
                    d
                }
                Err(_) => json_digest(v),
            }
        }
        Err(_) => json_digest(v),
    })
}

/// Fallback: SHA-256 of the compact JSON, streamed into the hash.
fn json_digest<T: Serialize + ?Sized>(v: &T) -> String {
    let mut w = HashWriter(Sha256::new());
    // Serialising our own model types cannot fail.
    let _ = serde_json::to_writer(&mut w, v);
    hex::encode(w.0.finalize())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_encode_with_postcard_not_the_json_fallback() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/vectors/bases.json")).unwrap();
        for base in ["windows", "linux_agent", "ade_linux"] {
            let rp: RestorePoint =
                serde_json::from_value(v[base]["restore_point"].clone()).unwrap();
            let req: RestoreRequest = serde_json::from_value(v[base]["request"].clone()).unwrap();
            assert!(postcard::to_allocvec(&rp).is_ok(), "{base}");
            assert!(postcard::to_allocvec(&req).is_ok(), "{base}");
            assert_ne!(digest_json(&rp), json_digest(&rp), "postcard is used");
            assert_eq!(digest_json(&rp), digest_json(&rp.clone()));
        }
        assert!(postcard::to_allocvec(&crate::model::Catalog::builtin()).is_ok());
    }
}
