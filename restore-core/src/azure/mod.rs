//! Azure adapters (cargo feature `azure`): the page-blob disk writer over a
//! small Blob-service client of our own, the ARM cloud, and credentials.
//! Facts they rely on: `../shared/spec/AZURE.md` (VHD footer, page blobs,
//! managed-disk upload, ARM long-running operations).

pub mod arm;
pub mod auth;
#[cfg(feature = "azure-identity")]
pub mod identity;
pub mod pageblob;
pub mod storage;

pub use arm::{ArmCloud, ArmConfig, ArmStats, VmCredential, VmCredentials};
pub use auth::{AccessToken, StaticToken, TokenError, TokenProvider};
#[cfg(feature = "azure-identity")]
pub use identity::AzureIdentity;
pub use pageblob::{PageBlobSink, PageBlobWriter, WriteStats};
pub use storage::{BlobClient, StorageAuth};

/// The wait a service asks for in a `Retry-After` header, in whole seconds
/// (what ARM and the Blob service send), surrounding whitespace allowed.
/// The one parser of it for every Azure client here.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use std::time::Duration;

    #[test]
    fn retry_after_is_whole_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(super::retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(super::retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(super::retry_after(&h), None);
    }
}
