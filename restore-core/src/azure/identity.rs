//! `azure_identity`'s credentials as a [`TokenProvider`] (cargo feature
//! `azure-identity`): the Azure CLI, managed identity, a service principal's
//! client secret, the developer tools chain, or any other
//! `azure_core::credentials::TokenCredential`.
//!
//! Tokens are cached per scope until five minutes before they expire, so a
//! credential that spawns a process (the Azure CLI) or calls an endpoint runs
//! once per token, not once per ARM request. Tokens never appear in `Debug`
//! or errors.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use azure_core::credentials::{Secret, TokenCredential};
pub use azure_identity;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientSecretCredential,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

use super::auth::{AccessToken, TokenError, TokenProvider};

/// How long before its expiry a cached token is renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// A [`TokenProvider`] over an `azure_identity` credential.
pub struct AzureIdentity {
    credential: Arc<dyn TokenCredential>,
    cache: Mutex<HashMap<String, AccessToken>>,
}

impl fmt::Debug for AzureIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureIdentity")
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

fn token_error(what: &str, e: azure_core::Error) -> TokenError {
    TokenError(format!("{what}: {e}"))
}

impl AzureIdentity {
    /// Any credential (for example one the host product built itself).
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        AzureIdentity {
            credential,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The Azure CLI's signed-in account (`az account get-access-token`),
    /// optionally in a given tenant.
    pub fn azure_cli(tenant_id: Option<String>) -> Result<Self, TokenError> {
        Self::azure_cli_with(AzureCliCredentialOptions {
            tenant_id,
            ..Default::default()
        })
    }

    /// The Azure CLI with options (tenant, subscription, the process
    /// executor).
    pub fn azure_cli_with(options: AzureCliCredentialOptions) -> Result<Self, TokenError> {
        AzureCliCredential::new(Some(options))
            .map(|c| Self::new(c))
            .map_err(|e| token_error("Azure CLI credential", e))
    }

    /// The managed identity of the machine this runs on: system-assigned, or
    /// the user-assigned identity with this client ID.
    pub fn managed_identity(client_id: Option<String>) -> Result<Self, TokenError> {
        ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(UserAssignedId::ClientId),
            ..Default::default()
        }))
        .map(|c| Self::new(c))
        .map_err(|e| token_error("managed identity credential", e))
    }

    /// A service principal with a client secret.
    pub fn client_secret(
        tenant_id: &str,
        client_id: &str,
        secret: &str,
    ) -> Result<Self, TokenError> {
        ClientSecretCredential::new(
            tenant_id,
            client_id.to_string(),
            Secret::new(secret.to_string()),
            None,
        )
        .map(|c| Self::new(c))
        .map_err(|e| token_error("client secret credential", e))
    }

    /// The developer tools in turn (Azure CLI, then Azure Developer CLI).
    pub fn developer_tools() -> Result<Self, TokenError> {
        DeveloperToolsCredential::new(None)
            .map(|c| Self::new(c))
            .map_err(|e| token_error("developer tools credential", e))
    }
}

#[async_trait]
impl TokenProvider for AzureIdentity {
    async fn token(&self, scopes: &[&str]) -> Result<AccessToken, TokenError> {
        let key = scopes.join(" ");
        let now = SystemTime::now();
        if let Some(t) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && t.expires_on.is_some_and(|e| e > now + RENEW_BEFORE)
        {
            return Ok(t.clone());
        }
        let t = self
            .credential
            .get_token(scopes, None)
            .await
            .map_err(|e| token_error("cannot get a token", e))?;
        let secs = t.expires_on.unix_timestamp();
        let expires_on = (secs > 0).then(|| UNIX_EPOCH + Duration::from_secs(secs as u64));
        let token = AccessToken::new(t.token.secret().to_string(), expires_on);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, token.clone());
        Ok(token)
    }
}

/// The credential names [`token_source`] knows.
pub const CREDENTIAL_NAMES: [&str; 3] = ["azure-cli", "managed-identity", "developer-tools"];

/// The token provider of a configuration that gives either a fixed `token`
/// or a `credential` by name (`azure-cli`, `managed-identity`,
/// `developer-tools`), as the bindings and configuration files do.
/// `client_id` picks a user-assigned managed identity; `tenant_id` the
/// Azure CLI's tenant.
pub fn token_source(
    token: Option<String>,
    credential: Option<&str>,
    tenant_id: Option<String>,
    client_id: Option<String>,
) -> Result<Arc<dyn TokenProvider>, TokenError> {
    match (token, credential) {
        (Some(_), Some(_)) => Err(TokenError(
            "give either a token or a credential, not both".into(),
        )),
        (Some(t), None) if !t.is_empty() => Ok(Arc::new(super::auth::StaticToken(
            AccessToken::new(t, None),
        ))),
        (Some(_), None) => Err(TokenError("the token is empty".into())),
        (None, Some("azure-cli")) => Ok(Arc::new(AzureIdentity::azure_cli(
            tenant_id.filter(|t| !t.is_empty()),
        )?)),
        (None, Some("managed-identity")) => {
            Ok(Arc::new(AzureIdentity::managed_identity(client_id)?))
        }
        (None, Some("developer-tools")) => Ok(Arc::new(AzureIdentity::developer_tools()?)),
        (None, Some(other)) => Err(TokenError(format!(
            "unknown credential '{other}': expected one of {}",
            CREDENTIAL_NAMES.join(", ")
        ))),
        (None, None) => Err(TokenError(format!(
            "give a token or a credential ({})",
            CREDENTIAL_NAMES.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_source_takes_exactly_one_known_source() {
        assert!(token_source(Some("t".into()), None, None, None).is_ok());
        assert!(token_source(None, Some("azure-cli"), None, None).is_ok());
        assert!(token_source(None, Some("developer-tools"), None, None).is_ok());
        let e = token_source(Some("secret-token".into()), Some("azure-cli"), None, None)
            .err()
            .unwrap();
        assert!(
            e.0.contains("not both") && !e.0.contains("secret-token"),
            "{e}"
        );
        let e = token_source(None, Some("az"), None, None).err().unwrap();
        assert!(e.0.contains("unknown credential 'az'"), "{e}");
        assert!(token_source(None, None, None, None).is_err());
        assert!(token_source(Some(String::new()), None, None, None).is_err());
    }
}
