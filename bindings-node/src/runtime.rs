//! Futures on the tokio runtime as JavaScript promises.

use std::future::Future;

use napi::bindgen_prelude::*;

use crate::errors::*;

/// Runs `fut` on the runtime; the promise rejects with a coded `Error`.
pub(crate) fn promise<'env, T, V, F, M>(
    env: &'env Env,
    fut: F,
    map: M,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = restore_core::Result<T>> + Send + 'static,
    M: FnOnce(T) -> Result<V> + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, move |env, r| match r {
        Ok(v) => map(v),
        Err(e) => Err(js_error(env, e)),
    })
}
