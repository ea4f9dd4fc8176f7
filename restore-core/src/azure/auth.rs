//! Credentials: a token-provider interface that a host product can
//! implement (or that wraps `azure_identity`'s credentials), and tokens that
//! never show themselves in `Debug`, logs or errors.

use std::fmt;
use std::time::SystemTime;

pub use async_trait::async_trait;

/// An access token (a secret): `Debug` and `Display` redact it.
#[derive(Clone)]
pub struct AccessToken {
    secret: String,
    /// When it expires (`None`: unknown).
    pub expires_on: Option<SystemTime>,
}

impl AccessToken {
    /// A token.
    pub fn new(secret: impl Into<String>, expires_on: Option<SystemTime>) -> Self {
        AccessToken {
            secret: secret.into(),
            expires_on,
        }
    }

    /// The token itself, for an `Authorization` header.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// Why a token could not be had (never contains the token).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot get an access token: {0}")]
pub struct TokenError(pub String);

/// Gives access tokens for scopes such as
/// `https://management.azure.com/.default`. Implementations cache and
/// refresh as they see fit; the clients ask before every request.
#[async_trait]
pub trait TokenProvider: Send + Sync {
    /// A token valid for `scopes`.
    async fn token(&self, scopes: &[&str]) -> Result<AccessToken, TokenError>;
}

/// A fixed token (tests, or a host that refreshes by replacing the client).
#[derive(Clone)]
pub struct StaticToken(pub AccessToken);

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self, _scopes: &[&str]) -> Result<AccessToken, TokenError> {
        Ok(self.0.clone())
    }
}
