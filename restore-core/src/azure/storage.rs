//! A small client of the Blob service: just what a restore needs of page
//! blobs (create, resize, Put Page update/clear, Get Page Ranges, ranged
//! reads) and of small block blobs (the writer's state file).
//!
//! Why our own and not `azure_storage_blob`: the SDK authenticates with an
//! Entra ID token (HTTPS only) or a SAS, not with an account's shared key,
//! and Azurite, the official emulator the tests run against, speaks plain
//! HTTP with shared key or SAS. Ten REST calls are less code to keep than
//! the adaptations; see ARCHITECTURE.md.
//!
//! Azure's limits are enforced here, because Azurite does not enforce them:
//! pages are 512-byte aligned and an update carries at most 4 MiB.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode, header::HeaderMap};
use sha2::Sha256;

use super::auth::TokenProvider;
use crate::exec::{CallError, CallErrorKind, CallResult};

/// Page alignment of page blobs.
pub const PAGE: u64 = 512;
/// The most one Put Page (update) may carry.
pub const MAX_PUT_PAGE: u64 = 4 << 20;
/// The storage service version the client speaks.
pub const API_VERSION: &str = "2023-11-03";

/// The well-known account of Azurite and the storage emulator.
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key (published in Azurite's README; not a secret).
pub const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How requests to storage are authorised. `Debug` never shows the secret.
#[derive(Clone)]
pub enum StorageAuth {
    /// The account's shared key (base64, as the portal shows it).
    SharedKey {
        /// Storage account name.
        account: String,
        /// The key (a secret).
        key: String,
    },
    /// A SAS token (the query string, with or without `?`), or none when the
    /// URLs given carry it already (a managed disk's upload URL).
    Sas(String),
    /// An Entra ID token for `https://storage.azure.com/.default`.
    Token(Arc<dyn TokenProvider>),
}

impl fmt::Debug for StorageAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageAuth::SharedKey { account, .. } => f
                .debug_struct("SharedKey")
                .field("account", account)
                .field("key", &"<redacted>")
                .finish(),
            StorageAuth::Sas(_) => f.write_str("Sas(<redacted>)"),
            StorageAuth::Token(_) => f.write_str("Token(<provider>)"),
        }
    }
}

pub use crate::redact::redact_url;

/// One blob: a URL (`https://account.blob.core.windows.net/container/blob`
/// or, for Azurite, `http://127.0.0.1:PORT/devstoreaccount1/container/blob`,
/// optionally with a SAS query) and how to authorise.
#[derive(Clone)]
pub struct BlobClient {
    http: reqwest::Client,
    /// URL without the query.
    base: String,
    /// SAS query (without `?`), from the URL or the auth.
    sas: Option<String>,
    auth: StorageAuth,
    /// Path part used in the shared-key canonical resource.
    path: String,
}

impl fmt::Debug for BlobClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobClient")
            .field("url", &self.base)
            .field("auth", &self.auth)
            .finish()
    }
}

/// A blob's properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProperties {
    /// Length in bytes.
    pub length: u64,
    /// ETag (changes with every write).
    pub etag: String,
    /// `PageBlob`, `BlockBlob`, ...
    pub blob_type: String,
}

/// The shared HTTP client: connection pool, timeouts.
pub fn http_client() -> CallResult<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(32)
        .build()
        .map_err(|e| CallError::new(CallErrorKind::Fatal, "start the HTTP client", e.to_string()))
}

impl BlobClient {
    /// A client of the blob at `url`.
    pub fn new(http: reqwest::Client, url: &str, auth: StorageAuth) -> CallResult<Self> {
        let op = "open blob";
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b.to_string(), Some(q.to_string())),
            None => (url.to_string(), None),
        };
        let parsed = reqwest::Url::parse(&base).map_err(|e| {
            CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("{}: {e}", redact_url(url)),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("{}: not an http(s) URL", redact_url(url)),
            ));
        }
        let sas = match &auth {
            StorageAuth::Sas(s) if !s.is_empty() => Some(s.trim_start_matches('?').to_string()),
            _ => query,
        };
        Ok(BlobClient {
            http,
            path: parsed.path().to_string(),
            base,
            sas,
            auth,
        })
    }

    /// A client of another blob in the same container (for shared key and
    /// token auth; a SAS is reused as it is).
    pub fn sibling(&self, name: &str) -> CallResult<BlobClient> {
        let dir = self.base.rsplit_once('/').map_or("", |(d, _)| d);
        let mut url = format!("{dir}/{name}");
        if let Some(s) = &self.sas {
            url = format!("{url}?{s}");
        }
        BlobClient::new(self.http.clone(), &url, self.auth.clone())
    }

    /// The URL without its query.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn send(
        &self,
        method: Method,
        query: &[(&str, &str)],
        mut headers: Vec<(&'static str, String)>,
        body: Option<Bytes>,
        op: &str,
    ) -> CallResult<reqwest::Response> {
        let mut url = self.base.clone();
        let mut q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if let Some(s) = &self.sas {
            q.push(s.clone());
        }
        if !q.is_empty() {
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let len = body.as_ref().map_or(0, |b| b.len());
        headers.push(("x-ms-version", API_VERSION.to_string()));
        headers.push(("x-ms-date", httpdate::fmt_http_date(SystemTime::now())));
        if method == Method::PUT {
            headers.push(("content-length", len.to_string()));
        }
        match &self.auth {
            StorageAuth::SharedKey { account, key } => {
                let sig = sign(account, key, &method, &self.path, query, &headers, len, op)?;
                headers.push(("authorization", format!("SharedKey {account}:{sig}")));
            }
            StorageAuth::Token(p) => {
                let t = p
                    .token(&["https://storage.azure.com/.default"])
                    .await
                    .map_err(|e| CallError::new(CallErrorKind::Fatal, op, e.to_string()))?;
                headers.push(("authorization", format!("Bearer {}", t.secret())));
            }
            StorageAuth::Sas(_) => {}
        }
        let mut req = self.http.request(method, &url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| transport_error(op, &e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(status_error(op, resp).await)
    }

    /// The blob's properties, or `None` when it does not exist.
    pub async fn properties(&self) -> CallResult<Option<BlobProperties>> {
        let op = format!("get properties of {}", self.base);
        match self.send(Method::HEAD, &[], vec![], None, &op).await {
            Ok(r) => {
                let h = r.headers();
                Ok(Some(BlobProperties {
                    length: header(h, "content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    etag: header(h, "etag").unwrap_or_default(),
                    blob_type: header(h, "x-ms-blob-type").unwrap_or_default(),
                }))
            }
            Err(e) if e.kind == CallErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates (or replaces) an empty page blob of `length` bytes.
    pub async fn create_page_blob(&self, length: u64) -> CallResult<()> {
        let op = format!("create page blob {}", self.base);
        check_aligned(&op, 0, length)?;
        self.send(
            Method::PUT,
            &[],
            vec![
                ("x-ms-blob-type", "PageBlob".into()),
                ("x-ms-blob-content-length", length.to_string()),
            ],
            None,
            &op,
        )
        .await
        .map(drop)
    }

    /// Sets a page blob's length (a shorter blob loses its tail).
    pub async fn resize(&self, length: u64) -> CallResult<()> {
        let op = format!("resize page blob {}", self.base);
        check_aligned(&op, 0, length)?;
        self.send(
            Method::PUT,
            &[("comp", "properties")],
            vec![("x-ms-blob-content-length", length.to_string())],
            None,
            &op,
        )
        .await
        .map(drop)
    }

    /// Writes `data` at `offset` (Put Page, update): 512-aligned, at most
    /// 4 MiB. Returns the blob's new ETag.
    pub async fn put_page(&self, offset: u64, data: Bytes) -> CallResult<String> {
        let len = data.len() as u64;
        let op = format!("put page at {offset} of {}", self.base);
        check_aligned(&op, offset, len)?;
        if len == 0 || len > MAX_PUT_PAGE {
            return Err(CallError::new(
                CallErrorKind::Invalid,
                op,
                format!("{len} bytes: a Put Page carries 512 bytes to 4 MiB"),
            ));
        }
        let r = self
            .send(
                Method::PUT,
                &[("comp", "page")],
                vec![
                    ("x-ms-page-write", "update".into()),
                    (
                        "x-ms-range",
                        format!("bytes={}-{}", offset, offset + len - 1),
                    ),
                ],
                Some(data),
                &op,
            )
            .await?;
        Ok(header(r.headers(), "etag").unwrap_or_default())
    }

    /// Clears `[offset, offset + len)` (Put Page, clear): 512-aligned.
    pub async fn clear_pages(&self, offset: u64, len: u64) -> CallResult<()> {
        let op = format!("clear pages at {offset} of {}", self.base);
        check_aligned(&op, offset, len)?;
        if len == 0 {
            return Ok(());
        }
        self.send(
            Method::PUT,
            &[("comp", "page")],
            vec![
                ("x-ms-page-write", "clear".into()),
                (
                    "x-ms-range",
                    format!("bytes={}-{}", offset, offset + len - 1),
                ),
            ],
            None,
            &op,
        )
        .await
        .map(drop)
    }

    /// The written ranges `[start, end)` of a page blob, in order.
    pub async fn page_ranges(&self) -> CallResult<Vec<(u64, u64)>> {
        let op = format!("get page ranges of {}", self.base);
        let r = self
            .send(Method::GET, &[("comp", "pagelist")], vec![], None, &op)
            .await?;
        let text = r.text().await.map_err(|e| transport_error(&op, &e))?;
        parse_page_list(&text).map_err(|m| CallError::new(CallErrorKind::Fatal, op, m))
    }

    /// Reads `[offset, offset + len)`.
    pub async fn read_range(&self, offset: u64, len: u64) -> CallResult<Bytes> {
        let op = format!("read {len} bytes at {offset} of {}", self.base);
        let r = self
            .send(
                Method::GET,
                &[],
                vec![(
                    "x-ms-range",
                    format!("bytes={}-{}", offset, offset + len - 1),
                )],
                None,
                &op,
            )
            .await?;
        let b = r.bytes().await.map_err(|e| transport_error(&op, &e))?;
        if b.len() as u64 != len {
            return Err(CallError::new(
                CallErrorKind::Unavailable,
                op,
                format!("got {} bytes", b.len()),
            ));
        }
        Ok(b)
    }

    /// Reads a whole (small) blob, or `None` when it does not exist.
    pub async fn get(&self) -> CallResult<Option<Bytes>> {
        let op = format!("read {}", self.base);
        match self.send(Method::GET, &[], vec![], None, &op).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| transport_error(&op, &e))?)),
            Err(e) if e.kind == CallErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a (small) block blob in one request.
    pub async fn put_block_blob(&self, data: Bytes) -> CallResult<()> {
        let op = format!("write {}", self.base);
        self.send(
            Method::PUT,
            &[],
            vec![("x-ms-blob-type", "BlockBlob".into())],
            Some(data),
            &op,
        )
        .await
        .map(drop)
    }

    /// Creates the container of this blob if it does not exist.
    pub async fn create_container(&self) -> CallResult<()> {
        let dir = self
            .base
            .rsplit_once('/')
            .map_or("", |(d, _)| d)
            .to_string();
        let c = BlobClient {
            path: reqwest::Url::parse(&dir)
                .map(|u| u.path().to_string())
                .unwrap_or_default(),
            base: dir,
            ..self.clone()
        };
        let op = format!("create container {}", c.base);
        match c
            .send(Method::PUT, &[("restype", "container")], vec![], None, &op)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind == CallErrorKind::Conflict => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes the blob (a missing blob is not an error).
    pub async fn delete(&self) -> CallResult<()> {
        let op = format!("delete {}", self.base);
        match self.send(Method::DELETE, &[], vec![], None, &op).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == CallErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn check_aligned(op: &str, offset: u64, len: u64) -> CallResult<()> {
    if !offset.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
        return Err(CallError::new(
            CallErrorKind::Invalid,
            op,
            format!("offset {offset} and length {len} must be multiples of 512"),
        ));
    }
    Ok(())
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// A transport failure (connection refused or dropped, timeout): transient.
pub(crate) fn transport_error(op: &str, e: &reqwest::Error) -> CallError {
    CallError::new(CallErrorKind::Timeout, op, describe(e))
}

/// What went wrong, without the URL (reqwest's Display includes it, and a
/// URL can carry a SAS token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the connection dropped"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !t.contains('?') && !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}

/// The category of an HTTP status, and the service's error code and message.
pub(crate) async fn status_error(op: &str, resp: reqwest::Response) -> CallError {
    let status = resp.status();
    let retry_after = super::retry_after(resp.headers());
    let code = header(resp.headers(), "x-ms-error-code");
    let body = resp.text().await.unwrap_or_default();
    let detail = code
        .or_else(|| xml_text(&body, "Code"))
        .map(|c| match xml_text(&body, "Message") {
            Some(m) => format!("{c}: {}", m.lines().next().unwrap_or("")),
            None => c,
        })
        .unwrap_or_default();
    let kind = kind_of(status);
    let mut e = CallError::new(kind, op, format!("HTTP {} {detail}", status.as_u16()));
    if let Some(d) = retry_after {
        e = e.retry_after(d);
    }
    e
}

/// The error category of an HTTP status.
pub(crate) fn kind_of(status: StatusCode) -> CallErrorKind {
    match status.as_u16() {
        429 => CallErrorKind::Throttled,
        408 => CallErrorKind::Timeout,
        404 => CallErrorKind::NotFound,
        409 | 412 => CallErrorKind::Conflict,
        500..=599 => CallErrorKind::Unavailable,
        400 | 411 | 413 | 416 => CallErrorKind::Invalid,
        _ => CallErrorKind::Fatal,
    }
}

fn xml_text(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    Some(body[start..end].trim().to_string())
}

/// Parses a `PageList` document: the `PageRange`s as `[start, end)`.
pub fn parse_page_list(xml: &str) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<PageRange>") {
        rest = &rest[i + "<PageRange>".len()..];
        let end = rest
            .find("</PageRange>")
            .ok_or("unterminated PageRange in the page list")?;
        let item = &rest[..end];
        let num = |tag: &str| -> Result<u64, String> {
            xml_text(item, tag)
                .and_then(|v| v.parse().ok())
                .ok_or(format!("PageRange without a numeric {tag}"))
        };
        let (s, e) = (num("Start")?, num("End")?);
        if e < s {
            return Err(format!("PageRange {s}-{e} ends before it starts"));
        }
        out.push((s, e + 1));
        rest = &rest[end..];
    }
    out.sort_unstable();
    Ok(out)
}

/// The shared-key signature of a request (Blob service, version 2015-02-21
/// and later: an empty Content-Length for bodies of zero bytes).
#[allow(clippy::too_many_arguments)]
fn sign(
    account: &str,
    key: &str,
    method: &Method,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&'static str, String)],
    len: usize,
    op: &str,
) -> CallResult<String> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let mut ms: Vec<(String, &str)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    ms.sort();
    let canon_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let mut q: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    q.sort();
    let mut resource = format!("/{account}{path}");
    for (k, v) in q {
        resource.push_str(&format!("\n{k}:{v}"));
    }
    let content_length = if len == 0 {
        String::new()
    } else {
        len.to_string()
    };
    let to_sign = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}{}",
        method.as_str(),
        get("content-encoding"),
        get("content-language"),
        content_length,
        get("content-md5"),
        get("content-type"),
        "", // Date: x-ms-date is used
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
        canon_headers,
        resource
    );
    let key = B64.decode(key).map_err(|_| {
        CallError::new(
            CallErrorKind::Fatal,
            op,
            "the storage account key is not valid base64",
        )
    })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| CallError::new(CallErrorKind::Fatal, op, "unusable account key"))?;
    mac.update(to_sign.as_bytes());
    Ok(B64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lists_parse_and_bad_ones_are_errors() {
        let xml = "<?xml version=\"1.0\"?><PageList><PageRange><Start>4194304</Start><End>8388607</End></PageRange><PageRange><Start>0</Start><End>511</End></PageRange></PageList>";
        assert_eq!(
            parse_page_list(xml).unwrap(),
            vec![(0, 512), (4194304, 8388608)]
        );
        assert_eq!(parse_page_list("<PageList/>").unwrap(), vec![]);
        assert!(parse_page_list("<PageList><PageRange><Start>9</Start>").is_err());
        assert!(parse_page_list("<PageRange><Start>9</Start><End>1</End></PageRange>").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_and_urls() {
        let a = StorageAuth::SharedKey {
            account: "acct".into(),
            key: "c2VjcmV0LWtleQ==".into(),
        };
        assert!(!format!("{a:?}").contains("c2VjcmV0"));
        let s = StorageAuth::Sas("sv=2023&sig=SECRETSIG".into());
        assert!(!format!("{s:?}").contains("SECRETSIG"));
        assert_eq!(
            redact_url("https://a.blob.core.windows.net/c/b?sv=1&sig=X"),
            "https://a.blob.core.windows.net/c/b?<redacted>"
        );
        assert_eq!(
            redact_url("http://user:s3cret@127.0.0.1:8080/path?x=1"),
            "http://<redacted>@127.0.0.1:8080/path?<redacted>"
        );
        assert_eq!(
            redact_url("https://tok@management.azure.com"),
            "https://<redacted>@management.azure.com"
        );
        assert_eq!(redact_url("https://h/p#frag"), "https://h/p?<redacted>");
        assert_eq!(redact_url("https://h/a@b"), "https://h/a@b");
        let c = BlobClient::new(
            reqwest::Client::new(),
            "https://a.blob.core.windows.net/c/b?sv=1&sig=SECRETSIG",
            StorageAuth::Sas(String::new()),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("SECRETSIG"));
    }

    #[test]
    fn alignment_and_size_limits_are_ours_to_enforce() {
        let c = BlobClient::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9/devstoreaccount1/c/b",
            StorageAuth::Sas(String::new()),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt
            .block_on(c.put_page(0, Bytes::from(vec![1u8; (4 << 20) + 512])))
            .unwrap_err();
        assert_eq!(e.kind, CallErrorKind::Invalid);
        let e = rt
            .block_on(c.put_page(100, Bytes::from(vec![1u8; 512])))
            .unwrap_err();
        assert!(e.message.contains("multiples of 512"), "{e:?}");
    }
}
