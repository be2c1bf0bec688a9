//! Minting and checking the tokens the provider issues: access tokens
//! (RFC 9068 JWTs, or opaque per client), ID tokens (OIDC Core §2) and
//! refresh tokens (opaque, hashed at rest), the in-memory list of revoked
//! JWT ids that introspection and userinfo consult, and the JWTs already
//! verified.
//!
//! A user's access token carries the roles, groups and entitlements held at
//! issuance, and expires no later than the earliest time-bound role
//! assignment it reflects.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::directory::Principal;
use idplane_core::{Ctx, TenantId, Timestamp};
use idplane_store::grants::{self, StoredAccessToken};
use idplane_store::{Conn, WriteTx, generations};
use jiff::SignedDuration;
use jsonwebtoken::Validation;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

use super::clients::{AccessTokenFormat, Client, SigningAlg};
use super::grant::Grant;
use crate::directory::access::{Access, access_with};
use crate::keyring::random_bytes;
use crate::{App, AppError, Result};

/// Opaque access tokens start with this (secret scanners find them).
pub const OPAQUE_PREFIX: &str = "idp_at_";
/// Refresh tokens start with this.
pub const REFRESH_PREFIX: &str = "idp_rt_";
/// ID tokens live this long (they prove a sign-in; they are not used for
/// access).
pub const ID_TOKEN_LIFETIME: SignedDuration = SignedDuration::from_mins(10);
/// How long an access token revoked on another node may still pass here.
pub const REVOCATION_POLL: SignedDuration = SignedDuration::from_secs(1);

/// A minted access token. An opaque one must still be stored, in the
/// transaction that records its issuance ([`App::store_access_token`]).
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub token: String,
    pub jti: String,
    pub expires_at: Timestamp,
    pub claims: Map<String, Value>,
    /// The record of an opaque token, under its hash.
    to_store: Option<(String, StoredAccessToken)>,
}

impl AccessToken {
    /// Whether issuing it writes to the store (opaque tokens).
    pub fn needs_storing(&self) -> bool {
        self.to_store.is_some()
    }
}

/// The claims behind a valid access token.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidToken {
    pub claims: Map<String, Value>,
    pub jti: String,
    pub expires_at: Timestamp,
}

impl ValidToken {
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn client_id(&self) -> Option<&str> {
        self.claim_str("client_id")
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.claim_str("scope").unwrap_or_default().split(' ')
    }

    /// The DPoP key thumbprint the token is bound to.
    pub fn jkt(&self) -> Option<&str> {
        self.claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
    }
}

/// Revoked JWT ids and when they would have expired: JWTs cannot be
/// recalled, so checks consult this list. Reloaded from the store when the
/// store's revocation generation moved (see [`App::watch_revocations`]), so
/// revocations on other nodes arrive within [`REVOCATION_POLL`].
#[derive(Debug, Default)]
pub(crate) struct RevokedJtis(RwLock<HashMap<String, Timestamp>>);

impl RevokedJtis {
    fn contains(&self, jti: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(jti)
    }

    pub(crate) fn insert(&self, jti: String, expires_at: Timestamp) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(jti, expires_at);
    }

    fn replace(&self, all: HashMap<String, Timestamp>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = all;
    }
}

/// JWTs this server has verified, by the SHA-256 of their exact bytes. A
/// resource server introspects the same access token on every call it
/// serves, and checking the ECDSA signature is about 40 % of an
/// introspection's CPU: it is paid once per token instead. A remembered
/// verification is used only while the token is unexpired and the key
/// that signed it still verifies; revocation is checked on every use.
#[derive(Debug)]
pub(crate) struct VerifiedJwts(quick_cache::sync::Cache<[u8; 32], Arc<VerifiedJwt>>);

/// How many verifications are remembered (about 1 KiB each).
const VERIFIED_JWTS: usize = 4096;

#[derive(Debug)]
pub(crate) struct VerifiedJwt {
    typ: String,
    kid: String,
    exp: i64,
    claims: Map<String, Value>,
}

impl Default for VerifiedJwts {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(VERIFIED_JWTS))
    }
}

/// A new random token with `prefix` and the hash it is stored under.
pub(crate) fn new_secret(prefix: &str) -> Result<(String, String)> {
    let token = format!("{prefix}{}", B64.encode(random_bytes::<32>()?));
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// How bearer secrets are stored and looked up.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh token id.
pub(crate) fn new_jti() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// OIDC Core §3.1.3.6 `at_hash`/`c_hash`: the left half of the hash of
/// `value` with the hash function of the signing algorithm (SHA-512 for
/// Ed25519).
pub fn left_half_hash(alg: SigningAlg, value: &str) -> String {
    let digest: Vec<u8> = match alg {
        SigningAlg::EdDsa => Sha512::digest(value.as_bytes()).to_vec(),
        _ => Sha256::digest(value.as_bytes()).to_vec(),
    };
    B64.encode(&digest[..digest.len() / 2])
}

fn unix(t: Timestamp) -> i64 {
    t.as_second()
}

impl App {
    /// The issuer identifier of the default tenant.
    pub fn issuer(&self) -> &str {
        self.settings().issuer.trim_end_matches('/')
    }

    /// Mints the access token for `grant`: a JWT signed with the client's
    /// algorithm, or an opaque token whose claims the caller stores with
    /// [`App::store_access_token`]. `subject` is the principal the grant
    /// acts for, with its effective access, read through `tx` when the
    /// caller holds the writer (waiting for a reader while holding it
    /// would stall every other request).
    pub async fn mint_access_token(
        &self,
        ctx: &Ctx,
        client: &Client,
        grant: &Grant,
        subject: Option<&Principal>,
        tx: Option<&mut WriteTx>,
    ) -> Result<AccessToken> {
        let jti = new_jti();
        let mut expires_at = ctx.now + SignedDuration::from_secs(client.access_token_lifetime_secs);
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer().into());
        claims.insert("client_id".into(), client.client_id.clone().into());
        claims.insert("jti".into(), jti.clone().into());
        claims.insert("iat".into(), unix(ctx.now).into());
        if !grant.scopes.is_empty() {
            claims.insert("scope".into(), grant.scope().into());
        }
        let audience: Value = match grant.resources.as_slice() {
            [] => client.client_id.clone().into(),
            [one] => one.clone().into(),
            many => many.to_vec().into(),
        };
        claims.insert("aud".into(), audience);
        match subject {
            Some(principal) => {
                claims.insert("sub".into(), principal.id.to_string().into());
                let (access, groups) = match tx {
                    Some(tx) => subject_facts(tx, ctx, principal.id).await?,
                    None => {
                        subject_facts(&mut self.store().read().await?, ctx, principal.id).await?
                    }
                };
                if !access.active {
                    return Err(AppError::Forbidden("the subject may no longer act".into()));
                }
                // Never outlive a time-bound role the token reflects.
                if let Some(first) = access.roles.iter().filter_map(|r| r.expires_at).min() {
                    expires_at = expires_at.min(first);
                }
                let mut roles: Vec<&str> =
                    access.roles.iter().map(|r| r.role_name.as_str()).collect();
                roles.sort_unstable();
                roles.dedup();
                claims.insert("roles".into(), json!(roles));
                claims.insert("groups".into(), json!(groups));
                let entitlements: Vec<String> = access
                    .entitlements
                    .iter()
                    .map(|e| format!("{}:{}", e.resource, e.permission))
                    .collect();
                claims.insert("entitlements".into(), json!(entitlements));
            }
            // The client acts for itself; after a token exchange the
            // grant's client is the one the subject token was about.
            None => {
                claims.insert("sub".into(), grant.client_id.clone().into());
            }
        }
        if let Some(auth) = &grant.auth {
            claims.insert("auth_time".into(), unix(auth.auth_time).into());
            claims.insert("acr".into(), auth.acr.clone().into());
            claims.insert("amr".into(), json!(auth.amr));
        }
        if let Some(sid) = &grant.session_id {
            claims.insert("sid".into(), sid.clone().into());
        }
        if let Some(jkt) = &grant.dpop_jkt {
            claims.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        if let Some(actor) = &grant.actor {
            claims.insert("act".into(), actor.clone());
        }
        claims.insert("exp".into(), unix(expires_at).into());
        let (token, to_store) = match client.access_token_format {
            AccessTokenFormat::Jwt => (
                self.active_signing_key(client.id_token_signed_response_alg)?
                    .sign("at+jwt", &claims)?,
                None,
            ),
            AccessTokenFormat::Opaque => {
                let (token, hash) = new_secret(OPAQUE_PREFIX)?;
                let record = StoredAccessToken {
                    jti: jti.clone(),
                    tenant_id: ctx.tenant,
                    client_id: client.client_id.clone(),
                    claims: Value::Object(claims.clone()),
                    expires_at,
                    revoked_at: None,
                };
                (token, Some((hash, record)))
            }
        };
        Ok(AccessToken {
            token,
            jti,
            expires_at,
            claims,
            to_store,
        })
    }

    /// Stores an opaque access token in the issuing transaction (JWTs
    /// need nothing stored).
    pub(crate) async fn store_access_token(
        &self,
        tx: &mut idplane_store::WriteTx,
        access: &AccessToken,
    ) -> Result<()> {
        if let Some((hash, record)) = &access.to_store {
            grants::insert_access_token(tx, hash, record).await?;
        }
        Ok(())
    }

    /// Signs the ID token of a grant for `person`, with the profile claims
    /// its scopes allow, `nonce` when given, and `at_hash` of `access_token`.
    pub fn mint_id_token(
        &self,
        ctx: &Ctx,
        client: &Client,
        grant: &Grant,
        person: &Principal,
        nonce: Option<&str>,
        access_token: &str,
    ) -> Result<String> {
        let alg = client.id_token_signed_response_alg;
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer().into());
        claims.insert("sub".into(), person.id.to_string().into());
        claims.insert("aud".into(), client.client_id.clone().into());
        claims.insert("azp".into(), client.client_id.clone().into());
        claims.insert("iat".into(), unix(ctx.now).into());
        claims.insert("exp".into(), unix(ctx.now + ID_TOKEN_LIFETIME).into());
        claims.insert("at_hash".into(), left_half_hash(alg, access_token).into());
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        if let Some(auth) = &grant.auth {
            claims.insert("auth_time".into(), unix(auth.auth_time).into());
            claims.insert("acr".into(), auth.acr.clone().into());
            claims.insert("amr".into(), json!(auth.amr));
        }
        if let Some(sid) = &grant.session_id {
            claims.insert("sid".into(), sid.clone().into());
        }
        claims.extend(profile_claims(grant, person));
        self.active_signing_key(alg)?.sign("JWT", &claims)
    }

    /// Checks an access token presented to us (userinfo, introspection):
    /// signature by one of our published keys, `typ`, issuer, expiry by the
    /// injected clock, and revocation; or, for opaque tokens, the stored
    /// record. `None` when it is not a valid token of `tenant`.
    pub async fn validate_access_token(
        &self,
        tenant: TenantId,
        token: &str,
    ) -> Result<Option<ValidToken>> {
        let now = self.clock().now();
        if token.starts_with(OPAQUE_PREFIX) {
            let mut conn = self.store().read().await?;
            let Some(stored) = grants::access_token(&mut conn, &token_hash(token)).await? else {
                return Ok(None);
            };
            let live = stored.tenant_id == tenant
                && stored.revoked_at.is_none()
                && now < stored.expires_at;
            let Value::Object(claims) = stored.claims else {
                return Ok(None);
            };
            return Ok(live.then_some(ValidToken {
                claims,
                jti: stored.jti,
                expires_at: stored.expires_at,
            }));
        }
        let Some(claims) = self.verify_own_jwt(token, "at+jwt", now) else {
            return Ok(None);
        };
        let (Some(jti), Some(exp)) = (
            claims.get("jti").and_then(Value::as_str),
            claims.get("exp").and_then(Value::as_i64),
        ) else {
            return Ok(None);
        };
        if self.inner.revoked_jtis.contains(jti) {
            return Ok(None);
        }
        let Ok(expires_at) = Timestamp::from_second(exp) else {
            return Ok(None);
        };
        Ok(Some(ValidToken {
            jti: jti.to_owned(),
            expires_at,
            claims,
        }))
    }

    /// The claims of a JWT we signed, of type `typ`, unexpired at `now`.
    /// The algorithm is taken from our key, never from the token header
    /// (no `alg: none`, no HMAC keyed with a public key).
    pub(crate) fn verify_own_jwt(
        &self,
        token: &str,
        typ: &str,
        now: Timestamp,
    ) -> Option<Map<String, Value>> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.inner.verified_jwts.0.get(&digest) {
            let usable = known.typ == typ
                && now.as_second() < known.exp
                && self.is_verification_key(&known.kid, now);
            return usable.then(|| known.claims.clone());
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(typ) {
            return None;
        }
        let kid = header.kid?;
        let (alg, key) = self.verification_key(&kid, now)?;
        if header.alg != alg {
            return None;
        }
        let mut validation = Validation::new(alg);
        // Expiry is checked below with the injected clock.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[self.issuer()]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).ok()?;
        let exp = data.claims.get("exp")?.as_i64()?;
        if now.as_second() >= exp {
            return None;
        }
        let verified = VerifiedJwt {
            typ: typ.to_owned(),
            kid,
            exp,
            claims: data.claims,
        };
        let claims = verified.claims.clone();
        self.inner
            .verified_jwts
            .0
            .insert(digest, Arc::new(verified));
        Some(claims)
    }

    /// Revokes an access token by id until it would have expired, here and
    /// (through the store) on every node.
    pub(crate) async fn revoke_access_jti(
        &self,
        tx: &mut idplane_store::WriteTx,
        tenant: TenantId,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        grants::revoke_jti(tx, tenant, jti, expires_at, now).await?;
        self.inner.revoked_jtis.insert(jti.to_owned(), expires_at);
        Ok(())
    }

    /// Reloads the revoked token ids if another node may have revoked one
    /// since the last reload: the server calls this every
    /// [`REVOCATION_POLL`]. If the generation cannot be read, it reloads
    /// anyway.
    pub async fn watch_revocations(&self) {
        let read = async {
            let mut conn = self.store().read().await?;
            generations::revocations(&mut conn).await
        };
        let watch = &self.inner.revocations;
        if watch
            .moved(self.clock().now(), REVOCATION_POLL, "revocation", read)
            .await
            && let Err(e) = self.reload_revoked_tokens().await
        {
            tracing::warn!(error = %e, "reloading the revoked token ids failed");
        }
    }

    /// Reloads the revoked token ids from the store.
    pub async fn reload_revoked_tokens(&self) -> Result<()> {
        let mut conn = self.store().read().await?;
        let all = grants::revoked_jtis(&mut conn, self.clock().now()).await?;
        self.inner.revoked_jtis.replace(all.into_iter().collect());
        Ok(())
    }
}

/// Standard claims (OIDC Core §5.4) that the granted scopes release.
pub fn profile_claims(grant: &Grant, person: &Principal) -> Map<String, Value> {
    let mut claims = Map::new();
    if grant.has_scope("profile") {
        claims.insert("preferred_username".into(), person.name.clone().into());
        if let Some(name) = &person.display_name {
            claims.insert("name".into(), name.clone().into());
        }
        claims.insert("updated_at".into(), unix(person.updated_at).into());
    }
    if grant.has_scope("email")
        && let Some(email) = &person.email
    {
        claims.insert("email".into(), email.clone().into());
        // Addresses come from the administrator or the HR feed, not from
        // the person, and are not proven by a mail round trip here.
        claims.insert("email_verified".into(), false.into());
    }
    claims
}

/// A subject's effective access and the names of its groups (sorted, for
/// the `groups` claim), read on `conn`.
async fn subject_facts(
    conn: &mut impl Conn,
    ctx: &Ctx,
    id: idplane_core::PrincipalId,
) -> Result<(Access, Vec<String>)> {
    let access = access_with(conn, ctx, id).await?;
    let mut names = Vec::with_capacity(access.groups.len());
    for group in &access.groups {
        if let Some(group) = idplane_store::principals::by_id(conn, ctx.tenant, *group).await? {
            names.push(group.name);
        }
    }
    names.sort_unstable();
    Ok((access, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_half_hash_follows_oidc_core() {
        // OIDC Core §3.1.3.6: base64url of the left-most half of the hash.
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        let full = Sha256::digest(token.as_bytes());
        assert_eq!(
            left_half_hash(SigningAlg::Es256, token),
            B64.encode(&full[..16])
        );
        assert_eq!(left_half_hash(SigningAlg::Rs256, token).len(), 22);
        assert_eq!(left_half_hash(SigningAlg::EdDsa, token).len(), 43);
    }

    #[test]
    fn secrets_are_prefixed_random_and_stored_as_hashes() {
        let (a, hash) = new_secret(REFRESH_PREFIX).unwrap();
        let (b, _) = new_secret(REFRESH_PREFIX).unwrap();
        assert!(a.starts_with(REFRESH_PREFIX));
        assert_ne!(a, b);
        assert_eq!(hash, token_hash(&a));
        assert_eq!(hash.len(), 64);
    }
}
