//! Secrets left out of what is shown: URLs in errors, logs and `Debug`.

/// A URL with its secrets left out, for errors, logs and `Debug`: the
/// query (where SAS signatures live) and the fragment are cut, and any
/// userinfo (`https://user:password@host`) is replaced by `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let (base, cut) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], true),
        None => (url, false),
    };
    // The authority is what follows `scheme://` up to the next `/`.
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            match authority.rfind('@') {
                Some(at) => format!("{scheme}://<redacted>@{}{path}", &authority[at + 1..]),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if cut {
        format!("{base}?<redacted>")
    } else {
        base
    }
}
