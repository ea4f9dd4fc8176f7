//! The local backup repository: a documented on-disk format.
//!
//! ```text
//! <root>/
//!   restore-points/<id>/manifest.json   the restore point's metadata and, per
//!                                       disk, its allocated chunks with SHA-256
//!   chunks/<first two hex digits>/<sha256 hex>   content-addressed chunk bytes
//! ```
//!
//! Chunks are fixed-size slices of a disk (the last may be shorter); chunks
//! that are all zeros are left out. A disk's digest is the SHA-256 over, for
//! each stored chunk in offset order, the offset (u64 big-endian) followed by
//! the chunk's 32-byte SHA-256, so it covers where the data sits as well as
//! what it is.
//!
//! The [`Repository`] trait is how the executor reads a backup;
//! [`LocalRepository`] and (with the `object-store` feature)
//! [`ObjectStoreRepository`] implement it.

use async_trait::async_trait;
use bytes::Bytes;

pub(crate) mod beneath;
mod local;
mod manifest;
#[cfg(feature = "object-store")]
pub mod object;

pub use local::LocalRepository;
pub use manifest::{
    ChunkRef, DEFAULT_CHUNK_SIZE, DiskManifest, MANIFEST_FORMAT, MAX_CHUNK_SIZE, Manifest,
    disk_digest, parse_manifest,
};
#[cfg(feature = "object-store")]
pub(crate) use manifest::{
    MAX_MANIFEST, check_chunk_ref, chunk_error, is_hex64, valid_id, verify_chunk,
};
#[cfg(feature = "object-store")]
pub use object::ObjectStoreRepository;

/// A backup repository, as the executor reads it.
#[async_trait]
pub trait Repository: Send + Sync {
    /// Restore point IDs.
    async fn list(&self) -> crate::Result<Vec<String>>;
    /// A restore point's manifest (its metadata, and each disk's allocated
    /// chunks with their SHA-256).
    async fn manifest(&self, id: &str) -> crate::Result<Manifest>;
    /// Whether a chunk is present with the right length (without reading it).
    async fn has_chunk(&self, chunk: &ChunkRef) -> crate::Result<bool>;
    /// A chunk's bytes, verified against its SHA-256; a mismatch is
    /// [`crate::Error::Integrity`] naming the disk and offset.
    async fn read_chunk(&self, disk: &str, chunk: &ChunkRef) -> crate::Result<Bytes>;
}
