//! ARM paths are built here and nowhere else. A path is a list of segments;
//! each is refused when it is empty, `.` or `..`, or holds `/`, `\`, `?`,
//! `#`, `%`, whitespace or a control character, so that no name can end a
//! path early, climb out of it, add a query or a fragment, or smuggle in an
//! encoded separator; then it is percent-encoded into the URL. Resource IDs
//! travel as plain `/`-joined segments (as ARM writes them) and are split
//! and checked again whenever one becomes a URL, so an ID from anywhere (a
//! plan, ARM's own answer) gets the same test. The names were validated
//! with Azure's naming rules at the model boundary already; this is the
//! defence in depth for plans that did not come from the planner.

use crate::exec::{CallError, CallErrorKind, CallResult};

fn refuse(segment: &str, why: &str) -> CallError {
    let shown: String = segment
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    CallError::new(
        CallErrorKind::Invalid,
        "build an ARM path",
        format!("'{shown}' cannot be part of an ARM path: {why}"),
    )
}

/// Checks one segment.
pub(super) fn segment(s: &str) -> CallResult<&str> {
    if s.is_empty() {
        return Err(refuse(s, "it is empty"));
    }
    if s == "." || s == ".." {
        return Err(refuse(s, "it is a relative path"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control() || c.is_whitespace())
    {
        return Err(refuse(s, &format!("it holds {c:?}")));
    }
    Ok(s)
}

/// `/a/b/c` from checked segments; a segment given as `Microsoft.Compute/disks`
/// (a provider and type) is taken as its parts.
pub(super) fn join(segments: &[&str]) -> CallResult<String> {
    let mut out = String::new();
    for s in segments {
        for part in s.split('/') {
            out.push('/');
            out.push_str(segment(part)?);
        }
    }
    Ok(out)
}

/// `id` followed by more segments.
pub(super) fn child(id: &str, segments: &[&str]) -> CallResult<String> {
    split(id)?;
    let mut out = id.to_string();
    for s in segments {
        out.push('/');
        out.push_str(segment(s)?);
    }
    Ok(out)
}

/// The segments of an ID, each checked.
pub(super) fn split(id: &str) -> CallResult<Vec<&str>> {
    let Some(rest) = id.strip_prefix('/') else {
        return Err(refuse(id, "an ARM path starts with '/'"));
    };
    rest.split('/').map(segment).collect()
}

/// The URL of `id` at `endpoint`, every segment percent-encoded.
pub(super) fn url(endpoint: &str, id: &str, api_version: &str) -> CallResult<String> {
    let mut out = String::from(endpoint);
    for s in split(id)? {
        out.push('/');
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'(' | b')') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out.push_str("?api-version=");
    out.push_str(segment(api_version)?);
    Ok(out)
}
