//! Client authentication at the token, introspection, revocation, PAR and
//! device endpoints (RFC 6749 §2.3, OIDC Core §9): `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt` and `none` for public clients.
//! A client must use the method it registered, and only one.
//!
//! Clients are read from an in-memory cache: the token endpoint's hot path
//! does no database read. A change on this node drops the entry at once;
//! other nodes see it within [`crate::registry::REGISTRY_POLL`].

use std::sync::Arc;

use idplane_core::audit::AuditEvent;
use idplane_core::{Ctx, TenantId};
use idplane_store::clients;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::clients::{AuthMethod, Client};
use super::error::{OAuthError, OAuthResult};
use crate::registry::RegistryCache;
use crate::{App, Result};

/// The `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a request presented to authenticate its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCredentials {
    /// HTTP Basic (`client_secret_basic`).
    Basic { client_id: String, secret: String },
    /// Form fields (`client_secret_post`).
    Post { client_id: String, secret: String },
    /// A signed JWT (`private_key_jwt`).
    Assertion {
        client_id: Option<String>,
        assertion_type: String,
        assertion: String,
    },
    /// Only a `client_id` (public clients).
    None { client_id: String },
}

impl ClientCredentials {
    fn client_id(&self) -> Option<&str> {
        match self {
            Self::Basic { client_id, .. }
            | Self::Post { client_id, .. }
            | Self::None { client_id } => Some(client_id),
            Self::Assertion { client_id, .. } => client_id.as_deref(),
        }
    }

    fn method(&self) -> AuthMethod {
        match self {
            Self::Basic { .. } => AuthMethod::ClientSecretBasic,
            Self::Post { .. } => AuthMethod::ClientSecretPost,
            Self::Assertion { .. } => AuthMethod::PrivateKeyJwt,
            Self::None { .. } => AuthMethod::None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Cached {
    client: Arc<Client>,
    secret_hash: Option<String>,
}

/// Clients by tenant and id, with their secret hashes.
pub(crate) type ClientCache = RegistryCache<(TenantId, String), Arc<Cached>>;

impl App {
    /// A client from the cache (or the store), `None` when unknown.
    pub async fn cached_client(
        &self,
        tenant: TenantId,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>> {
        Ok(self
            .cached_client_entry(tenant, client_id)
            .await?
            .map(|c| c.client.clone()))
    }

    async fn cached_client_entry(
        &self,
        tenant: TenantId,
        client_id: &str,
    ) -> Result<Option<Arc<Cached>>> {
        let epoch = self.registry_epoch(self.clock().now()).await;
        let key = (tenant, client_id.to_owned());
        if let Some(hit) = self.inner.clients.get(&key, epoch) {
            return Ok(Some(hit));
        }
        let found = {
            let mut conn = self.store().read().await?;
            clients::with_secret(&mut conn, tenant, client_id).await?
        };
        let Some((stored, secret_hash)) = found else {
            self.forget_client(tenant, client_id);
            return Ok(None);
        };
        let cached = Arc::new(Cached {
            client: Arc::new(Client::try_from(stored)?),
            secret_hash,
        });
        self.inner.clients.insert(key, epoch, cached.clone());
        Ok(Some(cached))
    }

    /// Drops a client from the cache after it changed on this node.
    pub(crate) fn forget_client(&self, tenant: TenantId, client_id: &str) {
        self.inner.clients.remove(&(tenant, client_id.to_owned()));
    }

    /// Authenticates the client of a request at `endpoint` (the absolute
    /// URL, an acceptable `aud` of client assertions). Failures are audited
    /// and answered with `invalid_client`, saying no more than needed.
    pub async fn authenticate_client(
        &self,
        ctx: &Ctx,
        credentials: &ClientCredentials,
        endpoint: &str,
    ) -> OAuthResult<Arc<Client>> {
        let client_id = match credentials {
            ClientCredentials::Assertion { assertion, .. } => credentials
                .client_id()
                .map(str::to_owned)
                .or_else(|| assertion_subject(assertion)),
            _ => credentials.client_id().map(str::to_owned),
        };
        let Some(client_id) = client_id else {
            return Err(self
                .client_auth_failed(ctx, None, "no client identified", Disclose::Reason)
                .await);
        };
        let Some(cached) = self.cached_client_entry(ctx.tenant, &client_id).await? else {
            return Err(self
                .client_auth_failed(ctx, Some(&client_id), "unknown client", Disclose::Nothing)
                .await);
        };
        let client = &cached.client;
        if credentials.method() != client.token_endpoint_auth_method {
            return Err(self
                .client_auth_failed(
                    ctx,
                    Some(&client_id),
                    &format!(
                        "the client must authenticate with {}",
                        client.token_endpoint_auth_method.as_str()
                    ),
                    Disclose::Reason,
                )
                .await);
        }
        match credentials {
            ClientCredentials::Basic { secret, .. } | ClientCredentials::Post { secret, .. } => {
                let presented = self.client_secret_hash(secret);
                let ok = cached
                    .secret_hash
                    .as_deref()
                    .is_some_and(|h| bool::from(h.as_bytes().ct_eq(presented.as_bytes())));
                if !ok {
                    return Err(self
                        .client_auth_failed(
                            ctx,
                            Some(&client_id),
                            "wrong secret",
                            Disclose::Nothing,
                        )
                        .await);
                }
            }
            ClientCredentials::Assertion {
                assertion_type,
                assertion,
                ..
            } => {
                let checked = if assertion_type == JWT_BEARER_ASSERTION {
                    self.verify_client_assertion(client, assertion, endpoint)
                        .await
                } else {
                    Err(OAuthError::invalid_client(
                        "unsupported client_assertion_type",
                    ))
                };
                if let Err(err) = checked {
                    return Err(self
                        .client_auth_failed(
                            ctx,
                            Some(&client_id),
                            &err.description,
                            Disclose::Reason,
                        )
                        .await);
                }
            }
            ClientCredentials::None { .. } => {}
        }
        Ok(client.clone())
    }

    /// Audits a failed client authentication and builds its error.
    async fn client_auth_failed(
        &self,
        ctx: &Ctx,
        client_id: Option<&str>,
        reason: &str,
        disclose: Disclose,
    ) -> OAuthError {
        let shown: Option<String> = client_id.map(|c| c.chars().take(128).collect());
        let event = AuditEvent::new(
            ctx,
            "client.auth",
            shown.as_ref().map(|c| format!("client:{c}")),
        )
        .failed()
        .with_details(json!({ "reason": reason }));
        if let Err(e) = self.record(event).await {
            tracing::error!(error = %e, "could not audit a failed client authentication");
        }
        match disclose {
            Disclose::Reason => {
                OAuthError::invalid_client(format!("client authentication failed: {reason}"))
            }
            Disclose::Nothing => OAuthError::invalid_client("client authentication failed"),
        }
    }
}

/// Whether the caller learns why its authentication failed. An unknown
/// client and a wrong secret look alike, so the answer does not tell which
/// client ids exist; the audit event has the reason either way.
#[derive(Clone, Copy, Debug)]
enum Disclose {
    Reason,
    Nothing,
}

/// The `sub` of an unverified client assertion: only to find the client
/// whose keys then verify it.
fn assertion_subject(assertion: &str) -> Option<String> {
    use base64::Engine;
    let payload = assertion.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}
