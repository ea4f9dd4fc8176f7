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
