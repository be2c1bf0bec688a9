//! The authorization endpoint's use cases (RFC 6749 §4.1, OIDC Core §3.1.2,
//! RFC 7636 PKCE, RFC 9126 PAR, RFC 9207 `iss`): validating a request,
//! parking it while the person signs in or consents, and issuing the code.
//!
//! Until the client and its redirect URI are known to be good, errors are
//! shown on our own page ([`AuthorizeError::Page`]); after that they go back
//! to the client ([`AuthorizeError::Redirect`]), never to an unregistered URI.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use idplane_core::audit::AuditEvent;
use idplane_core::directory::Principal;
use idplane_core::{Ctx, Timestamp};
use idplane_store::grants::{self, StoredCode, StoredRequest};
use idplane_store::sessions::StoredSession;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::clients::{Client, GrantType};
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::grant::{AuthFacts, CodeGrant, Grant, parse_scope};
use super::tokens::{new_secret, token_hash};
use crate::{App, AppError, Result};

/// Authorization codes live this long (single use).
pub const CODE_LIFETIME: SignedDuration = SignedDuration::from_secs(60);
/// A parked request waits this long for the person.
pub const PARKED_LIFETIME: SignedDuration = SignedDuration::from_mins(10);
/// A pushed request (PAR) may be used within this long (RFC 9126 §2.2).
pub const PUSHED_LIFETIME: SignedDuration = SignedDuration::from_secs(90);
/// `request_uri` values of pushed requests start with this.
pub const PAR_URN_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// Authorization codes start with this.
pub const CODE_PREFIX: &str = "idp_ac_";
/// Longest accepted value of any one parameter.
const MAX_PARAM_LEN: usize = 4096;

/// A validated authorization request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub acr_values: Vec<String>,
    pub resources: Vec<String>,
    pub dpop_jkt: Option<String>,
}

impl AuthorizationRequest {
    pub fn prompts(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }

    /// The strongest ACR asked for (we honour the first we know).
    pub fn wanted_acr(&self) -> Option<&str> {
        self.acr_values.first().map(String::as_str)
    }

    pub fn max_age(&self) -> Option<SignedDuration> {
        self.max_age.map(SignedDuration::from_secs)
    }
}

/// Why an authorization request failed, and where the error goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show our own page.
    Page(String),
    /// Send the error back to the client's (validated) redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

impl From<AppError> for AuthorizeError {
    fn from(err: AppError) -> Self {
        let err = OAuthError::from(err);
        Self::Page(err.description)
    }
}

/// The parameters of a request, as sent (query or form). Repeated
/// parameters are refused (RFC 6749 §3.1) except `resource` (RFC 8707).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params {
    single: HashMap<String, String>,
    resources: Vec<String>,
    repeated: Option<String>,
}

impl Params {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut params = Self::default();
        for (name, value) in pairs {
            if name == "resource" {
                params.resources.push(value);
                continue;
            }
            match params.single.entry(name) {
                Entry::Occupied(seen) => {
                    params.repeated.get_or_insert_with(|| seen.key().clone());
                }
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
            }
        }
        params
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.single
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// Refuses repeated and oversized parameters.
    pub fn check(&self) -> OAuthResult<()> {
        if let Some(name) = &self.repeated {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{name}` is repeated"
            )));
        }
        let too_long = self
            .single
            .iter()
            .find(|(_, v)| v.len() > MAX_PARAM_LEN)
            .map(|(name, _)| name.as_str())
            .or_else(|| {
                self.resources
                    .iter()
                    .any(|r| r.len() > MAX_PARAM_LEN)
                    .then_some("resource")
            });
        if let Some(name) = too_long {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{name}` is too long"
            )));
        }
        Ok(())
    }
}

impl App {
    /// Validates an authorization request from the front channel: either
    /// its parameters, or a `request_uri` naming a pushed request.
    pub async fn authorization_request(
        &self,
        ctx: &Ctx,
        params: &Params,
    ) -> Result<(Arc<Client>, AuthorizationRequest), AuthorizeError> {
        if let Err(e) = params.check() {
            return Err(AuthorizeError::Page(e.description));
        }
        let client_id = params
            .get("client_id")
            .ok_or_else(|| AuthorizeError::Page("the request names no client_id".into()))?;
        let client = self
            .cached_client(ctx.tenant, client_id)
            .await?
            .ok_or_else(|| AuthorizeError::Page("unknown client".into()))?;
        if let Some(request_uri) = params.get("request_uri") {
            let request = self.take_pushed_request(ctx, &client, request_uri).await?;
            return Ok((client, request));
        }
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or_else(|| AuthorizeError::Page("the request names no redirect_uri".into()))?;
        if !client.redirect_uri_allowed(redirect_uri) {
            return Err(AuthorizeError::Page(
                "the redirect_uri is not registered for this client".into(),
            ));
        }
        if client.require_pushed_authorization_requests
            || self
                .auth_policy(ctx)
                .await?
                .require_pushed_authorization_requests
        {
            return Err(AuthorizeError::Redirect {
                redirect_uri: redirect_uri.to_owned(),
                state: params.get("state").map(str::to_owned),
                error: OAuthError::invalid_request(
                    "this client must push its authorization requests (PAR)",
                ),
            });
        }
        let request = self
            .check_authorization_params(ctx, &client, params)
            .await
            .map_err(|error| AuthorizeError::Redirect {
                redirect_uri: redirect_uri.to_owned(),
                state: params.get("state").map(str::to_owned),
                error,
            })?;
        Ok((client, request))
    }

    /// RFC 9126: validates a pushed request from an authenticated client and
    /// stores it; returns the `request_uri` and its lifetime in seconds.
    pub async fn push_authorization_request(
        &self,
        ctx: &Ctx,
        client: &Client,
        params: &Params,
    ) -> OAuthResult<(String, i64)> {
        params.check()?;
        if params.get("request_uri").is_some() {
            return Err(OAuthError::invalid_request(
                "a pushed request cannot carry request_uri",
            ));
        }
        if params
            .get("client_id")
            .is_some_and(|c| c != client.client_id)
        {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client",
            ));
        }
        let redirect_uri = params
            .get("redirect_uri")
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
        if !client.redirect_uri_allowed(redirect_uri) {
            return Err(OAuthError::invalid_request(
                "the redirect_uri is not registered for this client",
            ));
        }
        let request = self.check_authorization_params(ctx, client, params).await?;
        let (handle, hash) = new_secret("")?;
        let stored = StoredRequest {
            tenant_id: ctx.tenant,
            client_id: client.client_id.clone(),
            params: serde_json::to_value(&request)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            pushed: true,
            created_at: ctx.now,
            expires_at: ctx.now + PUSHED_LIFETIME,
        };
        grants::insert_request(self.store(), &hash, &stored).await?;
        Ok((
            format!("{PAR_URN_PREFIX}{handle}"),
            PUSHED_LIFETIME.as_secs(),
        ))
    }

    async fn take_pushed_request(
        &self,
        ctx: &Ctx,
        client: &Client,
        request_uri: &str,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let invalid = || AuthorizeError::Page("the request_uri is unknown, used or expired".into());
        let handle = request_uri
            .strip_prefix(PAR_URN_PREFIX)
            .ok_or_else(invalid)?;
        let hash = token_hash(handle);
        let stored = self.take_request(ctx, &hash).await?.ok_or_else(invalid)?;
        if !stored.pushed || stored.client_id != client.client_id {
            return Err(invalid());
        }
        serde_json::from_value(stored.params).map_err(|_| invalid())
    }

    /// Consumes a stored request (pushed or parked): single use.
    async fn take_request(&self, ctx: &Ctx, hash: &str) -> Result<Option<StoredRequest>> {
        let stored = grants::take_request(self.store(), hash).await?;
        Ok(stored.filter(|s| s.tenant_id == ctx.tenant && ctx.now < s.expires_at))
    }

    /// The checks after the client and redirect URI are trusted.
    async fn check_authorization_params(
        &self,
        ctx: &Ctx,
        client: &Client,
        params: &Params,
    ) -> OAuthResult<AuthorizationRequest> {
        match params.get("response_type") {
            Some("code") => {}
            None => return Err(OAuthError::invalid_request("response_type is required")),
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
        }
        if params.get("response_mode").is_some_and(|m| m != "query") {
            return Err(OAuthError::invalid_request(
                "only response_mode=query is supported",
            ));
        }
        if params.get("request").is_some() {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequestObject,
                "request objects are not supported; push the request (PAR) instead",
            ));
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use the authorization code grant",
            ));
        }
        let code_challenge = match (
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        ) {
            (None, _) => {
                return Err(OAuthError::invalid_request(
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                ));
            }
            (Some(_), method) if method != Some("S256") => {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method must be S256",
                ));
            }
            (Some(challenge), _) => {
                if !is_s256_value(challenge) {
                    return Err(OAuthError::invalid_request(
                        "code_challenge must be 43 base64url characters",
                    ));
                }
                challenge.to_owned()
            }
        };
        let scopes = self.check_scopes(client, params.get("scope"))?;
        let prompt = parse_scope(params.get("prompt"));
        for p in &prompt {
            if !matches!(p.as_str(), "none" | "login" | "consent") {
                return Err(OAuthError::invalid_request(format!(
                    "unsupported prompt `{p}`"
                )));
            }
        }
        if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
        let max_age = params
            .get("max_age")
            .map(|m| {
                m.parse::<i64>().ok().filter(|m| *m >= 0).ok_or_else(|| {
                    OAuthError::invalid_request("max_age must be a number of seconds")
                })
            })
            .transpose()?;
        let resources = self
            .check_resources(ctx, params.resources(), &scopes)
            .await?;
        let dpop_jkt = params
            .get("dpop_jkt")
            .map(|jkt| {
                is_s256_value(jkt)
                    .then(|| jkt.to_owned())
                    .ok_or_else(|| OAuthError::invalid_request("dpop_jkt must be a JWK thumbprint"))
            })
            .transpose()?;
        Ok(AuthorizationRequest {
            client_id: client.client_id.clone(),
            redirect_uri: params.get("redirect_uri").unwrap_or_default().to_owned(),
            scopes,
            state: params.get("state").map(str::to_owned),
            nonce: params.get("nonce").map(str::to_owned),
            code_challenge,
            prompt,
            max_age,
            login_hint: params.get("login_hint").map(str::to_owned),
            acr_values: parse_scope(params.get("acr_values")),
            resources,
            dpop_jkt,
        })
    }

    /// The requested scopes, each of which the client must be registered for.
    pub fn check_scopes(&self, client: &Client, scope: Option<&str>) -> OAuthResult<Vec<String>> {
        let scopes = parse_scope(scope);
        if let Some(unknown) = scopes.iter().find(|s| !client.scopes.contains(s)) {
            return Err(OAuthError::invalid_scope(format!(
                "the client may not request scope `{unknown}`"
            )));
        }
        Ok(scopes)
    }

    /// Parks a validated request while the person signs in or consents;
    /// returns the handle to resume it with.
    pub async fn park_authorization_request(
        &self,
        ctx: &Ctx,
        request: &AuthorizationRequest,
    ) -> Result<String> {
        let (handle, hash) = new_secret("")?;
        let stored = StoredRequest {
            tenant_id: ctx.tenant,
            client_id: request.client_id.clone(),
            params: serde_json::to_value(request).map_err(|e| AppError::Internal(e.to_string()))?,
            pushed: false,
            created_at: ctx.now,
            expires_at: ctx.now + PARKED_LIFETIME,
        };
        grants::insert_request(self.store(), &hash, &stored).await?;
        Ok(handle)
    }

    /// A parked request and when it was made (not consumed: the person may
    /// reload the page).
    pub async fn parked_authorization_request(
        &self,
        ctx: &Ctx,
        handle: &str,
    ) -> Result<Option<(Arc<Client>, AuthorizationRequest, Timestamp)>> {
        let mut conn = self.store().read().await?;
        let Some(stored) = grants::request(&mut conn, &token_hash(handle)).await? else {
            return Ok(None);
        };
        drop(conn);
        if stored.pushed || stored.tenant_id != ctx.tenant || ctx.now >= stored.expires_at {
            return Ok(None);
        }
        let Ok(request) = serde_json::from_value::<AuthorizationRequest>(stored.params) else {
            return Ok(None);
        };
        let Some(client) = self.cached_client(ctx.tenant, &request.client_id).await? else {
            return Ok(None);
        };
        Ok(Some((client, request, stored.created_at)))
    }

    /// Drops a parked request once answered.
    pub async fn finish_parked_request(&self, ctx: &Ctx, handle: &str) -> Result<()> {
        self.take_request(ctx, &token_hash(handle)).await?;
        Ok(())
    }

    /// Issues the authorization code for a person's session: single use,
    /// [`CODE_LIFETIME`], bound to the client, redirect URI and PKCE
    /// challenge. Audited.
    pub async fn issue_code(
        &self,
        ctx: &Ctx,
        request: &AuthorizationRequest,
        session: &StoredSession,
        person: &Principal,
    ) -> Result<String> {
        let grant = CodeGrant {
            grant: Grant {
                client_id: request.client_id.clone(),
                subject: Some(person.id),
                session_id: Some(session.id.clone()),
                scopes: request.scopes.clone(),
                resources: request.resources.clone(),
                auth: Some(AuthFacts {
                    auth_time: session.auth_time,
                    acr: session.acr.clone(),
                    amr: session.amr.clone(),
                }),
                nonce: request.nonce.clone(),
                dpop_jkt: request.dpop_jkt.clone(),
                actor: None,
            },
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
        };
        let (code, hash) = new_secret(CODE_PREFIX)?;
        let mut tx = self.store().write().await?;
        grants::insert_code(
            &mut tx,
            &hash,
            &StoredCode {
                tenant_id: ctx.tenant,
                client_id: request.client_id.clone(),
                grant: serde_json::to_value(&grant)
                    .map_err(|e| AppError::Internal(e.to_string()))?,
                created_at: ctx.now,
                expires_at: ctx.now + CODE_LIFETIME,
                used_at: None,
                family_id: None,
            },
        )
        .await?;
        tx.commit(
            AuditEvent::new(
                ctx,
                "oauth.authorize",
                Some(format!("client:{}", request.client_id)),
            )
            .with_details(json!({
                "principal": format!("user:{}", person.id),
                "scope": request.scopes.join(" "),
                "session": session.id,
            })),
        )
        .await?;
        Ok(code)
    }
}

/// 43 base64url characters: an S256 PKCE challenge or a JWK thumbprint.
fn is_s256_value(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn repeated_parameters_are_refused_except_resource() {
        assert!(params(&[("scope", "a"), ("scope", "b")]).check().is_err());
        let p = params(&[("resource", "https://a"), ("resource", "https://b")]);
        assert!(p.check().is_ok());
        assert_eq!(p.resources(), ["https://a", "https://b"]);
        assert!(params(&[("state", &"x".repeat(5000))]).check().is_err());
    }

    #[test]
    fn empty_parameters_count_as_absent() {
        assert_eq!(params(&[("state", "")]).get("state"), None);
    }

    #[test]
    fn s256_values_are_43_base64url_characters() {
        assert!(is_s256_value(&"a".repeat(43)));
        assert!(!is_s256_value(&"a".repeat(42)));
        assert!(!is_s256_value(&format!("{}=", "a".repeat(42))));
    }
}
