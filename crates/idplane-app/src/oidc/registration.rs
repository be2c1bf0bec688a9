//! Dynamic client registration (RFC 7591) and its management protocol
//! (RFC 7592).
//!
//! Registration is protected: the caller presents an initial access token
//! (an admin token, checked by the HTTP edge). The client metadata it sends
//! goes through the same rules as an administrator's registration (see
//! [`super::clients`]); a registered client is always third-party, so the
//! people it signs in are asked for consent, and the settings only an
//! administrator chooses (first party, token format, PAR, lifetimes) take
//! their defaults and are kept as the administrator leaves them.
//!
//! Each registration issues a registration access token: 256 random bits,
//! shown once, stored only as a keyed hash (HMAC under a key derived from
//! the root key, with its own context) and compared in constant time. It
//! lets the client read, replace (PUT, which rotates the token) and delete
//! its own registration. A wrong or missing token fails the same way
//! whether or not the client exists. A replacement may narrow the client's
//! scopes and grant types but never widen them: the registration access
//! token is the client's credential, not an administrator's.

use idplane_core::audit::AuditEvent;
use idplane_core::{Actor, Ctx};
use idplane_store::clients::{self, StoredClient};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::clients::{
    AuthMethod, Client, ClientType, CreateClient, GrantType, SigningAlg, new_client, target,
};
use super::error::{ErrorCode, OAuthError, OAuthResult};
use crate::keyring::random_bytes;
use crate::{App, AppError};

/// Every registration access token starts with this, so leaked tokens are
/// easy to find with secret scanners.
pub const REGISTRATION_TOKEN_PREFIX: &str = "idp_rat_";
/// The keyring context of registration access token hashes.
const REGISTRATION_MAC_CONTEXT: &str = "oauth-registration-access-token";
/// Longest registration access token looked at.
const MAX_TOKEN_LEN: usize = 256;
/// The only response type: the authorization code flow.
const CODE: &str = "code";

/// The client metadata of a registration or update request (RFC 7591 §2,
/// OpenID Connect Dynamic Client Registration §2), read leniently: unknown
/// members and the informational ones (`client_uri`, `logo_uri`,
/// `contacts`, `tos_uri`, `policy_uri`, `software_id`, `software_version`)
/// are accepted and ignored, and `null` is the same as absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<String>,
    /// Default `client_secret_basic`; `none` registers a public client.
    pub token_endpoint_auth_method: Option<AuthMethod>,
    /// Default `authorization_code`.
    pub grant_types: Option<Vec<GrantType>>,
    /// Only `code`; default `code` when the grant types include
    /// `authorization_code`, else none.
    pub response_types: Option<Vec<String>>,
    pub client_name: Option<String>,
    /// Space-separated; default `openid`.
    pub scope: Option<String>,
    pub jwks: Option<Value>,
    pub jwks_uri: Option<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub id_token_signed_response_alg: Option<SigningAlg>,
    pub dpop_bound_access_tokens: bool,
    /// Required in an update (RFC 7592 §2.2), ignored in a registration.
    pub client_id: Option<String>,
    /// Optional in an update, where it must be the current secret.
    pub client_secret: Option<String>,
}

impl ClientMetadata {
    /// Reads a request body: a JSON object. Anything else is
    /// `invalid_client_metadata`.
    pub fn from_json(body: &[u8]) -> OAuthResult<Self> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| metadata_error(format!("the body is not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Reads a JSON value: an object of client metadata members.
    pub fn from_value(value: Value) -> OAuthResult<Self> {
        let Value::Object(map) = value else {
            return Err(metadata_error("the body must be a JSON object"));
        };
        let grant_types = strings(&map, "grant_types")?
            .map(|list| {
                let mut out: Vec<GrantType> = Vec::new();
                for g in list {
                    let g = GrantType::parse(&g)
                        .map_err(|e| metadata_error(format!("grant_types: {e}")))?;
                    if !out.contains(&g) {
                        out.push(g);
                    }
                }
                Ok::<_, OAuthError>(out)
            })
            .transpose()?;
        let token_endpoint_auth_method = string(&map, "token_endpoint_auth_method")?
            .map(|m| {
                AuthMethod::parse(&m).ok_or_else(|| {
                    metadata_error(format!(
                        "token_endpoint_auth_method `{m}` is not supported; supported: \
                         client_secret_basic, client_secret_post, private_key_jwt, none"
                    ))
                })
            })
            .transpose()?;
        let id_token_signed_response_alg = string(&map, "id_token_signed_response_alg")?
            .map(|a| {
                SigningAlg::parse(&a).ok_or_else(|| {
                    metadata_error(format!(
                        "id_token_signed_response_alg `{a}` is not supported; supported: {}",
                        SigningAlg::ALL.map(SigningAlg::as_str).join(", ")
                    ))
                })
            })
            .transpose()?;
        let jwks = match map.get("jwks") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => return Err(metadata_error("jwks must be a JWK Set (a JSON object)")),
        };
        Ok(Self {
            redirect_uris: strings(&map, "redirect_uris")?.unwrap_or_default(),
            token_endpoint_auth_method,
            grant_types,
            response_types: strings(&map, "response_types")?,
            client_name: string(&map, "client_name")?.filter(|n| !n.trim().is_empty()),
            scope: string(&map, "scope")?.filter(|s| !s.trim().is_empty()),
            jwks,
            jwks_uri: string(&map, "jwks_uri")?.filter(|s| !s.is_empty()),
            post_logout_redirect_uris: strings(&map, "post_logout_redirect_uris")?
                .unwrap_or_default(),
            backchannel_logout_uri: string(&map, "backchannel_logout_uri")?
                .filter(|s| !s.is_empty()),
            id_token_signed_response_alg,
            dpop_bound_access_tokens: boolean(&map, "dpop_bound_access_tokens")?.unwrap_or(false),
            client_id: string(&map, "client_id")?,
            client_secret: string(&map, "client_secret")?,
        })
    }

    /// The registration command for the client called `client_id`: a
    /// third-party client with the administrator-only settings at their
    /// defaults.
    fn to_create(&self, client_id: &str) -> OAuthResult<CreateClient> {
        let method = self
            .token_endpoint_auth_method
            .unwrap_or(AuthMethod::ClientSecretBasic);
        let grant_types = self
            .grant_types
            .clone()
            .unwrap_or_else(|| vec![GrantType::AuthorizationCode]);
        let code_grant = grant_types.contains(&GrantType::AuthorizationCode);
        let response_types = self.response_types.clone().unwrap_or_else(|| {
            if code_grant {
                vec![CODE.into()]
            } else {
                vec![]
            }
        });
        if let Some(other) = response_types.iter().find(|r| r.as_str() != CODE) {
            return Err(metadata_error(format!(
                "response_types: `{other}` is not supported; only `code` (the authorization \
                 code flow with PKCE; RFC 9700 §2.1.2 retires the implicit and hybrid flows)"
            )));
        }
        match (code_grant, response_types.is_empty()) {
            (true, true) => {
                return Err(metadata_error(
                    "response_types: the authorization_code grant needs the `code` response type",
                ));
            }
            (false, false) => {
                return Err(metadata_error(
                    "grant_types: the `code` response type needs the authorization_code grant",
                ));
            }
            _ => {}
        }
        Ok(CreateClient {
            client_id: Some(client_id.to_owned()),
            name: self
                .client_name
                .clone()
                .unwrap_or_else(|| client_id.to_owned()),
            client_type: if method == AuthMethod::None {
                ClientType::Public
            } else {
                ClientType::Confidential
            },
            redirect_uris: self.redirect_uris.clone(),
            post_logout_redirect_uris: self.post_logout_redirect_uris.clone(),
            grant_types: Some(grant_types.iter().map(|g| g.as_str().to_owned()).collect()),
            scopes: self.scope.as_deref().map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            token_endpoint_auth_method: Some(method),
            jwks: self.jwks.clone(),
            jwks_uri: self.jwks_uri.clone(),
            first_party: false,
            access_token_format: None,
            id_token_signed_response_alg: self.id_token_signed_response_alg,
            require_pushed_authorization_requests: false,
            access_token_lifetime_secs: None,
            refresh_token_lifetime_secs: None,
            backchannel_logout_uri: self.backchannel_logout_uri.clone(),
            dpop_bound_access_tokens: self.dpop_bound_access_tokens,
        })
    }
}

/// A dynamically registered client with its registration access token
/// (and its secret when one was just issued): the client information
/// response of RFC 7591 §3.2.1 and RFC 7592 §3.
#[derive(Clone, Debug)]
pub struct DynamicClient {
    pub client: Client,
    /// Set on registration of a client that uses a secret, and on an update
    /// that makes a client need one. Never on reads.
    pub client_secret: Option<String>,
    /// New on registration and on every update; on reads, the one presented.
    pub registration_access_token: String,
}

impl DynamicClient {
    /// The JSON response body; `registration_client_uri` is where the client
    /// manages its registration.
    pub fn to_json(&self, registration_client_uri: &str) -> Value {
        let mut map = client_metadata(&self.client);
        if let Some(secret) = &self.client_secret {
            map.insert("client_secret".into(), secret.clone().into());
        }
        map.insert(
            "registration_access_token".into(),
            self.registration_access_token.clone().into(),
        );
        map.insert(
            "registration_client_uri".into(),
            registration_client_uri.into(),
        );
        Value::Object(map)
    }
}

/// A client's registered metadata as RFC 7591 names it (never a secret or
/// token): `client_id`, `client_id_issued_at`, `client_secret_expires_at`
/// (0: never) for clients with a secret, and the metadata as stored.
pub fn client_metadata(c: &Client) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("client_id".into(), c.client_id.clone().into());
    map.insert(
        "client_id_issued_at".into(),
        c.created_at.as_second().into(),
    );
    if c.uses_secret() {
        map.insert("client_secret_expires_at".into(), 0.into());
    }
    map.insert("client_name".into(), c.name.clone().into());
    map.insert("redirect_uris".into(), json!(c.redirect_uris));
    map.insert(
        "post_logout_redirect_uris".into(),
        json!(c.post_logout_redirect_uris),
    );
    map.insert(
        "grant_types".into(),
        json!(c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>()),
    );
    let response_types: &[&str] = if c.allows(GrantType::AuthorizationCode) {
        &[CODE]
    } else {
        &[]
    };
    map.insert("response_types".into(), json!(response_types));
    map.insert(
        "token_endpoint_auth_method".into(),
        c.token_endpoint_auth_method.as_str().into(),
    );
    map.insert("scope".into(), c.scopes.join(" ").into());
    if let Some(jwks) = &c.jwks {
        map.insert("jwks".into(), jwks.clone());
    }
    if let Some(uri) = &c.jwks_uri {
        map.insert("jwks_uri".into(), uri.clone().into());
    }
    if let Some(uri) = &c.backchannel_logout_uri {
        map.insert("backchannel_logout_uri".into(), uri.clone().into());
    }
    map.insert(
        "id_token_signed_response_alg".into(),
        c.id_token_signed_response_alg.as_str().into(),
    );
    map.insert(
        "dpop_bound_access_tokens".into(),
        c.dpop_bound_access_tokens.into(),
    );
    map
}

impl App {
    /// Registers a client from its metadata (RFC 7591 §3.1); the caller has
    /// presented an initial access token. Audited as `client.register`.
    pub async fn register_client(
        &self,
        ctx: &Ctx,
        metadata: &ClientMetadata,
    ) -> OAuthResult<DynamicClient> {
        let client_id = hex::encode(random_bytes::<16>()?);
        let mut client = new_client(ctx, metadata.to_create(&client_id)?).map_err(invalid)?;
        let token = new_registration_token()?;
        client.registration_token_hash = Some(self.registration_token_hash(&token));
        let registered = self
            .insert_client(ctx, client, "client.register")
            .await
            .map_err(invalid)?;
        Ok(DynamicClient {
            client: registered.client,
            client_secret: registered.secret,
            registration_access_token: token,
        })
    }

    /// Reads a registration (RFC 7592 §2.1) with its registration access
    /// token.
    pub async fn read_registration(
        &self,
        ctx: &Ctx,
        client_id: &str,
        token: &str,
    ) -> OAuthResult<DynamicClient> {
        let found = {
            let mut conn = self.store().read().await?;
            clients::by_id(&mut conn, ctx.tenant, client_id).await?
        };
        let client = match self.check_registration_token(found, token)? {
            Ok(client) => client,
            Err(reason) => return Err(self.registration_denied(ctx, client_id, reason).await),
        };
        Ok(DynamicClient {
            client,
            client_secret: None,
            registration_access_token: token.to_owned(),
        })
    }

    /// Replaces a registration's metadata (RFC 7592 §2.2): absent members
    /// take their defaults, except `scope` and `grant_types`, which are kept
    /// and may only narrow (widening them takes an administrator).
    /// `client_id` must be the client's, and `client_secret`, if sent, its
    /// current secret. The registration access token is rotated: the old
    /// one stops working at once. Audited as `client.update`.
    pub async fn update_registration(
        &self,
        ctx: &Ctx,
        client_id: &str,
        token: &str,
        metadata: &ClientMetadata,
    ) -> OAuthResult<DynamicClient> {
        let mut tx = self.store().write().await?;
        let found = clients::with_secret(&mut tx, ctx.tenant, client_id).await?;
        let (stored, secret_hash) = match found {
            Some((stored, hash)) => (Some(stored), hash),
            None => (None, None),
        };
        let current = match self.check_registration_token(stored, token)? {
            Ok(client) => client,
            Err(reason) => {
                drop(tx);
                return Err(self.registration_denied(ctx, client_id, reason).await);
            }
        };
        let ctx = &client_ctx(ctx, client_id);
        if metadata.client_id.as_deref() != Some(current.client_id.as_str()) {
            return Err(metadata_error(
                "client_id: give the client's own client_id (RFC 7592 §2.2)",
            ));
        }
        if let Some(secret) = &metadata.client_secret {
            let presented = self.client_secret_hash(secret);
            let matches = secret_hash
                .as_deref()
                .is_some_and(|h| bool::from(h.as_bytes().ct_eq(presented.as_bytes())));
            if !matches {
                return Err(metadata_error(
                    "client_secret: not the client's current secret (it cannot be chosen)",
                ));
            }
        }
        // Absent scope and grant types keep the current ones (RFC 7592 §2.2
        // lets the server ignore null values); named ones may narrow them,
        // never widen: a registration access token is not an admin token.
        let mut metadata = metadata.clone();
        if metadata.scope.is_none() {
            metadata.scope = Some(current.scopes.join(" "));
        }
        if metadata.grant_types.is_none() {
            metadata.grant_types = Some(current.grant_types.clone());
        }
        let mut next = new_client(ctx, metadata.to_create(&current.client_id)?).map_err(invalid)?;
        if let Some(wider) = next.scopes.iter().find(|s| !current.scopes.contains(s)) {
            return Err(metadata_error(format!(
                "scope: `{wider}` is not registered for this client; the client may narrow \
                 its scopes, only an administrator can add one"
            )));
        }
        if let Some(wider) = next.grant_types.iter().find(|g| !current.allows(**g)) {
            return Err(metadata_error(format!(
                "grant_types: `{}` is not registered for this client; the client may narrow \
                 its grant types, only an administrator can add one",
                wider.as_str()
            )));
        }
        // What only administrators choose stays as it is.
        next.first_party = current.first_party;
        next.access_token_format = current.access_token_format;
        next.require_pushed_authorization_requests = current.require_pushed_authorization_requests;
        next.access_token_lifetime_secs = current.access_token_lifetime_secs;
        next.refresh_token_lifetime_secs = current.refresh_token_lifetime_secs;
        next.secret_rotated_at = current.secret_rotated_at;
        next.created_at = current.created_at;
        next.version = current.version + 1;
        let new_token = new_registration_token()?;
        next.registration_token_hash = Some(self.registration_token_hash(&new_token));
        let mut extra = Map::new();
        extra.insert("via".into(), "registration".into());
        extra.insert("registration_token_rotated".into(), true.into());
        let updated = self
            .replace_client(tx, ctx, &current, next, extra)
            .await
            .map_err(invalid)?;
        Ok(DynamicClient {
            client: updated.client,
            client_secret: updated.secret,
            registration_access_token: new_token,
        })
    }

    /// Deletes a registration (RFC 7592 §2.3): the client is gone, and its
    /// registration access token with it. Audited as `client.delete`.
    pub async fn delete_registration(
        &self,
        ctx: &Ctx,
        client_id: &str,
        token: &str,
    ) -> OAuthResult<()> {
        let mut tx = self.store().write().await?;
        let found = clients::by_id(&mut tx, ctx.tenant, client_id).await?;
        let client = match self.check_registration_token(found, token)? {
            Ok(client) => client,
            Err(reason) => {
                drop(tx);
                return Err(self.registration_denied(ctx, client_id, reason).await);
            }
        };
        let ctx = &client_ctx(ctx, client_id);
        clients::delete(&mut tx, ctx.tenant, client_id).await?;
        tx.commit(
            AuditEvent::new(ctx, "client.delete", Some(target(client_id))).with_details(json!({
                "client_id": client_id,
                "name": client.name,
                "via": "registration",
            })),
        )
        .await?;
        self.forget_client(ctx.tenant, client_id);
        Ok(())
    }

    /// The client if `token` is its registration access token, else why
    /// not. The presented token is hashed whether or not the client exists,
    /// and compared in constant time.
    fn check_registration_token(
        &self,
        found: Option<StoredClient>,
        token: &str,
    ) -> OAuthResult<Result<Client, &'static str>> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(Err("malformed token"));
        }
        let presented = self.registration_token_hash(token);
        let Some(stored) = found else {
            return Ok(Err("unknown client"));
        };
        let Some(hash) = stored.registration_token_hash.clone() else {
            return Ok(Err("client not registered dynamically"));
        };
        if !bool::from(hash.as_bytes().ct_eq(presented.as_bytes())) {
            return Ok(Err("wrong registration access token"));
        }
        Ok(Ok(Client::try_from(stored)?))
    }

    /// Audits a refused registration access token (as `client.registration`,
    /// failed) and returns the one answer every refusal gets.
    async fn registration_denied(&self, ctx: &Ctx, client_id: &str, reason: &str) -> OAuthError {
        let shown: String = client_id.chars().take(128).collect();
        let event = AuditEvent::new(ctx, "client.registration", Some(target(&shown)))
            .failed()
            .with_details(json!({"reason": reason, "client_id": shown}));
        if let Err(e) = self.record(event).await {
            return OAuthError::from(e);
        }
        invalid_token()
    }

    /// The stored form of a registration access token.
    fn registration_token_hash(&self, token: &str) -> String {
        self.keyring()
            .mac(REGISTRATION_MAC_CONTEXT, token.as_bytes())
    }
}

/// The refusal of a missing or wrong registration access token, the same
/// whether or not the client exists (RFC 7592 §2).
pub fn invalid_token() -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidToken,
        "the registration access token is not valid for this client",
    )
}

/// The context of a request made by a client with its registration access
/// token.
fn client_ctx(ctx: &Ctx, client_id: &str) -> Ctx {
    Ctx {
        actor: Actor::Client {
            client_id: client_id.to_owned(),
        },
        ..ctx.clone()
    }
}

/// A new registration access token: the prefix and 256 random bits,
/// base64url.
fn new_registration_token() -> crate::Result<String> {
    use base64::Engine;
    let bytes = random_bytes::<32>()?;
    Ok(format!(
        "{REGISTRATION_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

/// A refused registration in RFC 7591 §3.2.2 terms: `invalid_redirect_uri`
/// for the redirect URIs, `invalid_client_metadata` for the rest, named as
/// RFC 7591 names the members.
fn invalid(err: AppError) -> OAuthError {
    match err {
        AppError::Invalid(e) => {
            let code = if e.field == "redirect_uris" {
                ErrorCode::InvalidRedirectUri
            } else {
                ErrorCode::InvalidClientMetadata
            };
            let field = match e.field {
                "scopes" => "scope",
                "name" => "client_name",
                f => f,
            };
            OAuthError::new(code, format!("{field}: {}", e.message))
        }
        other => other.into(),
    }
}

/// A string member; `null` is absent.
fn string(map: &Map<String, Value>, key: &str) -> OAuthResult<Option<String>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(metadata_error(format!("{key} must be a string"))),
    }
}

/// An array of strings; `null` is absent.
fn strings(map: &Map<String, Value>, key: &str) -> OAuthResult<Option<Vec<String>>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| metadata_error(format!("{key} must be an array of strings")))
            })
            .collect::<OAuthResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(metadata_error(format!("{key} must be an array of strings"))),
    }
}

/// A boolean member; `null` is absent.
fn boolean(map: &Map<String, Value>, key: &str) -> OAuthResult<Option<bool>> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(metadata_error(format!("{key} must be true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: Value) -> OAuthResult<ClientMetadata> {
        ClientMetadata::from_value(v)
    }

    #[test]
    fn metadata_is_read_leniently_but_typed() {
        let m = read(json!({
            "redirect_uris": ["https://rp.example/cb"],
            "client_name": "RP",
            "scope": "openid  email",
            "logo_uri": "https://rp.example/logo.png",
            "contacts": ["ops@rp.example"],
            "software_id": "4NRB1-0XZABZI9E6-5SM3R",
            "jwks_uri": null,
            "dpop_bound_access_tokens": true,
            "grant_types": ["authorization_code", "refresh_token", "authorization_code"],
        }))
        .unwrap();
        assert_eq!(m.client_name.as_deref(), Some("RP"));
        assert_eq!(m.jwks_uri, None);
        assert!(m.dpop_bound_access_tokens);
        assert_eq!(
            m.grant_types,
            Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken])
        );
        let create = m.to_create("abc").unwrap();
        assert_eq!(create.scopes, Some(vec!["openid".into(), "email".into()]));
        assert!(!create.first_party);
        assert_eq!(create.client_type, ClientType::Confidential);

        for (bad, needle) in [
            (json!([]), "JSON object"),
            (
                json!({"redirect_uris": "https://rp.example/cb"}),
                "array of strings",
            ),
            (json!({"redirect_uris": [1]}), "array of strings"),
            (json!({"client_name": 7}), "must be a string"),
            (json!({"dpop_bound_access_tokens": "yes"}), "true or false"),
            (json!({"jwks": "keys"}), "JWK Set"),
            (
                json!({"token_endpoint_auth_method": "tls_client_auth"}),
                "not supported",
            ),
            (
                json!({"id_token_signed_response_alg": "none"}),
                "not supported",
            ),
            (json!({"grant_types": ["implicit"]}), "implicit"),
        ] {
            let err = read(bad.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidClientMetadata, "{bad}");
            assert!(err.description.contains(needle), "{bad}: {err}");
        }
        assert!(ClientMetadata::from_json(b"{not json").is_err());
    }

    #[test]
    fn only_the_code_response_type_is_accepted_with_its_grant() {
        let create = |v: Value| read(v).unwrap().to_create("abc");
        assert!(create(json!({"response_types": ["code"]})).is_ok());
        assert!(create(json!({"grant_types": ["client_credentials"]})).is_ok());
        for (bad, needle) in [
            (
                json!({"response_types": ["token"]}),
                "`token` is not supported",
            ),
            (
                json!({"response_types": ["code id_token"]}),
                "not supported",
            ),
            (
                json!({"response_types": []}),
                "needs the `code` response type",
            ),
            (
                json!({"grant_types": ["client_credentials"], "response_types": ["code"]}),
                "needs the authorization_code grant",
            ),
        ] {
            let err = create(bad.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidClientMetadata, "{bad}");
            assert!(err.description.contains(needle), "{bad}: {err}");
        }
        let public = create(json!({"token_endpoint_auth_method": "none"})).unwrap();
        assert_eq!(public.client_type, ClientType::Public);
    }

    #[test]
    fn validation_errors_use_rfc_7591_codes_and_names() {
        let e = invalid(AppError::Invalid(idplane_core::ValidationError::new(
            "redirect_uris",
            "bad",
        )));
        assert_eq!(e.code, ErrorCode::InvalidRedirectUri);
        let e = invalid(AppError::Invalid(idplane_core::ValidationError::new(
            "scopes", "bad",
        )));
        assert_eq!(e.code, ErrorCode::InvalidClientMetadata);
        assert_eq!(e.description, "scope: bad");
    }
}
