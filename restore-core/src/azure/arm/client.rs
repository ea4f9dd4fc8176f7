//! The HTTP side: requests with the bearer token (only to the ARM
//! endpoint), ARM errors as `CallError`s, long-running operations.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::ArmCloud;
use super::path;
use crate::azure::storage::{self, transport_error};
use crate::exec::{CallError, CallErrorKind, CallResult};

impl ArmCloud {
    pub(super) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        op: &str,
    ) -> CallResult<reqwest::Response> {
        self.same_origin(url, op)?;
        let scope = format!("{}/.default", self.cfg.endpoint);
        let token = self
            .token
            .token(&[scope.as_str()])
            .await
            .map_err(|e| CallError::new(CallErrorKind::Fatal, op, e.to_string()))?;
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token.secret())
            .header("accept", "application/json");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).unwrap_or_default());
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await.map_err(|e| transport_error(op, &e))?;
        if let Some(v) = resp
            .headers()
            .get("x-ms-ratelimit-remaining-subscription-writes")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            self.stats.remaining_writes.store(v, Ordering::Relaxed);
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(arm_error(op, resp).await)
    }

    /// Deletes `id` only if ARM shows it as made under `key` (its
    /// `vmrestore-key` tag): clean-up never deletes what the run did not
    /// create, whatever a journal or a caller claims. Gone already is
    /// success; someone else's resource is a `Conflict`, left in place.
    pub(super) async fn delete_if_ours(
        &self,
        id: &str,
        api_version: &str,
        key: &str,
        op: &str,
    ) -> CallResult<()> {
        let Some(v) = self.call_found(Method::GET, id, api_version, op).await? else {
            return Ok(());
        };
        let tag = v.pointer("/tags/vmrestore-key").and_then(Value::as_str);
        if key.is_empty() || tag != Some(key) {
            return Err(CallError::new(
                CallErrorKind::Conflict,
                op,
                format!(
                    "{id} was not created by this restore (its vmrestore-key tag is {}): it is left in place",
                    if tag.is_some() {
                        "another step's"
                    } else {
                        "missing"
                    }
                ),
            ));
        }
        self.call_found(Method::DELETE, id, api_version, op)
            .await
            .map(drop)
    }

    /// The bearer token goes only to the ARM endpoint: a URL that ARM
    /// handed back (an `Azure-AsyncOperation` or `Location` header, a
    /// `nextLink`) is followed only on the endpoint's own scheme, host and
    /// port, so a hostile or broken server cannot send the token elsewhere
    /// (or over plain http when the endpoint is https).
    pub(super) fn same_origin(&self, url: &str, op: &str) -> CallResult<()> {
        let origin = |u: &str| {
            reqwest::Url::parse(u).ok().map(|u| {
                (
                    u.scheme().to_string(),
                    u.host_str().map(str::to_string),
                    u.port_or_known_default(),
                )
            })
        };
        let ours = origin(&self.cfg.endpoint);
        let theirs = origin(url);
        if ours.is_some() && ours == theirs {
            return Ok(());
        }
        Err(CallError::new(
            CallErrorKind::Fatal,
            op,
            format!(
                "refusing to follow {} with the ARM token: only {} is trusted",
                storage::redact_url(url),
                storage::redact_url(&self.cfg.endpoint)
            ),
        ))
    }

    pub(super) fn url(&self, id: &str, api_version: &str) -> CallResult<String> {
        path::url(&self.cfg.endpoint, id, api_version)
    }

    /// GET a resource (or a collection) as JSON.
    pub(super) async fn get(&self, id: &str, api_version: &str, op: &str) -> CallResult<Value> {
        let resp = self
            .send(Method::GET, &self.url(id, api_version)?, None, op)
            .await?;
        let text = resp.text().await.map_err(|e| transport_error(op, &e))?;
        serde_json::from_str(&text).map_err(|e| {
            CallError::new(
                CallErrorKind::Unavailable,
                op,
                format!("ARM answered with malformed JSON: {e}"),
            )
        })
    }

    /// `call`, where a 404 is an answer, not an error: `None` (a GET of
    /// what does not exist, a DELETE of what is gone already).
    pub(super) async fn call_found(
        &self,
        method: Method,
        id: &str,
        api_version: &str,
        op: &str,
    ) -> CallResult<Option<Value>> {
        match self.call(method, id, api_version, None, op).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind == CallErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A request whose answer may be a long-running operation; returns the
    /// final body (for PUT, the resource).
    pub(super) async fn call(
        &self,
        method: Method,
        id: &str,
        api_version: &str,
        body: Option<&Value>,
        op: &str,
    ) -> CallResult<Value> {
        let resp = self
            .send(method.clone(), &self.url(id, api_version)?, body, op)
            .await?;
        let status = resp.status().as_u16();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let async_op = header("azure-asyncoperation");
        let location = header("location");
        let retry = crate::azure::retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| transport_error(op, &e))?;
        let first: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                CallError::new(
                    CallErrorKind::Fatal,
                    op,
                    format!("ARM answered with malformed JSON: {e}"),
                )
            })?
        };
        let put = matches!(method, Method::PUT | Method::PATCH);
        if let Some(url) = async_op {
            self.poll(Poll::AsyncOperation(&url), retry, op).await?;
            return if put {
                self.get(id, api_version, op).await
            } else {
                Ok(first)
            };
        }
        if status == 202
            && let Some(url) = location
        {
            return self.poll(Poll::Location(&url), retry, op).await;
        }
        // A PUT answered at once may still be provisioning.
        if put {
            let state = first
                .pointer("/properties/provisioningState")
                .and_then(Value::as_str)
                .unwrap_or("Succeeded");
            if !matches!(state, "Succeeded" | "Failed" | "Canceled") {
                let url = self.url(id, api_version)?;
                return self.poll(Poll::Provisioning(&url), None, op).await;
            }
            if state != "Succeeded" {
                return Err(provisioning_failure(op, state));
            }
        }
        Ok(first)
    }

    /// How long to wait before the next poll: ARM's `Retry-After` (at most
    /// a minute), else the configured interval.
    fn wait_for(&self, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or(self.cfg.poll_interval)
            .min(Duration::from_secs(60))
    }

    /// Polls a long-running operation until it ends or `lro_timeout`
    /// passes; returns the final body ([`Poll`] says what that is). Every
    /// poll goes through [`ArmCloud::send`], so the token goes only to the
    /// ARM endpoint: a poll URL on another origin is refused. A throttled or
    /// failed poll (429, 5xx) is tried again after its `Retry-After`: the
    /// operation itself is still running.
    async fn poll(
        &self,
        what: Poll<'_>,
        mut retry: Option<Duration>,
        op: &str,
    ) -> CallResult<Value> {
        let deadline = Instant::now() + self.cfg.lro_timeout;
        loop {
            if Instant::now() > deadline {
                return Err(CallError::new(CallErrorKind::Timeout, op, what.too_long()));
            }
            tokio::time::sleep(self.wait_for(retry)).await;
            self.stats.polls.fetch_add(1, Ordering::Relaxed);
            let resp = match self.send(Method::GET, what.url(), None, op).await {
                Ok(r) => r,
                Err(e) if e.is_transient() => {
                    retry = e
                        .retry_after_ms
                        .map(|ms| Duration::from_secs(ms.div_ceil(1000)));
                    continue;
                }
                Err(e) => return Err(e),
            };
            retry = match what {
                // The resource's own GET: ARM's Retry-After is for the
                // operation's status, so the interval applies.
                Poll::Provisioning(_) => None,
                _ => crate::azure::retry_after(resp.headers()),
            };
            if matches!(what, Poll::Location(_)) && resp.status().as_u16() == 202 {
                continue;
            }
            let text = resp.text().await.map_err(|e| transport_error(op, &e))?;
            let v = match what {
                Poll::Location(_) => return Ok(serde_json::from_str(&text).unwrap_or(Value::Null)),
                _ => serde_json::from_str::<Value>(&text).map_err(|e| {
                    CallError::new(CallErrorKind::Unavailable, op, what.malformed(e))
                })?,
            };
            match what {
                Poll::AsyncOperation(_) => {
                    match v.get("status").and_then(Value::as_str).unwrap_or("") {
                        "Succeeded" => return Ok(v),
                        "Failed" | "Canceled" => return Err(lro_failure(op, &v)),
                        _ => {}
                    }
                }
                _ => match v
                    .pointer("/properties/provisioningState")
                    .and_then(Value::as_str)
                {
                    Some("Succeeded") | None => return Ok(v),
                    Some(s @ ("Failed" | "Canceled")) => return Err(provisioning_failure(op, s)),
                    _ => {}
                },
            }
        }
    }
}

/// What a long-running operation is polled by, and what ends it.
#[derive(Clone, Copy)]
enum Poll<'a> {
    /// `Azure-AsyncOperation`: a status document, polled until its
    /// `status` is `Succeeded`, `Failed` or `Canceled`.
    AsyncOperation(&'a str),
    /// `Location` (with 202): 202 while running, then the result.
    Location(&'a str),
    /// The resource itself (a PUT answered while still provisioning):
    /// until its `provisioningState` is terminal.
    Provisioning(&'a str),
}

impl Poll<'_> {
    fn url(&self) -> &str {
        match self {
            Poll::AsyncOperation(u) | Poll::Location(u) | Poll::Provisioning(u) => u,
        }
    }

    fn malformed(&self, e: serde_json::Error) -> String {
        match self {
            Poll::Provisioning(_) => format!("ARM answered with malformed JSON: {e}"),
            _ => format!("malformed operation status: {e}"),
        }
    }

    fn too_long(&self) -> &'static str {
        match self {
            Poll::Provisioning(_) => "provisioning did not finish in time",
            _ => "the operation did not finish in time",
        }
    }
}

fn provisioning_failure(op: &str, state: &str) -> CallError {
    CallError::new(CallErrorKind::Fatal, op, format!("provisioning {state}"))
}

/// ARM's `error.code` and `error.message` (empty where missing).
fn error_code_message(v: &Value) -> (&str, &str) {
    let field = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("");
    (field("/error/code"), field("/error/message"))
}

/// An ARM error answer as a `CallError` with ARM's code and message.
async fn arm_error(op: &str, resp: reqwest::Response) -> CallError {
    let status = resp.status();
    let retry_after = crate::azure::retry_after(resp.headers());
    let text = resp.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let (code, msg) = error_code_message(&v);
    let mut e = CallError::new(
        storage::kind_of(status),
        op,
        format!("HTTP {} {code}: {msg}", status.as_u16()),
    );
    if let Some(d) = retry_after {
        e = e.retry_after(d);
    }
    e
}

fn lro_failure(op: &str, v: &Value) -> CallError {
    let status = v.get("status").and_then(Value::as_str).unwrap_or("Failed");
    let (code, msg) = error_code_message(v);
    CallError::new(
        CallErrorKind::Fatal,
        op,
        format!("the operation ended {status}: {code}: {msg}"),
    )
}
