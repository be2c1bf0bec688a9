//! The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6; RFC 7636):
//! authorization code with PKCE, refresh with rotation and reuse detection,
//! and client credentials. Device and token-exchange grants live in their
//! own modules.
//!
//! A code is single use: presenting it again revokes what its first use
//! produced. A refresh token is single use too: presenting a spent one
//! revokes its whole family (it was probably stolen) and is audited.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::audit::AuditEvent;
use idplane_core::directory::Principal;
use idplane_core::{Ctx, Timestamp};
use idplane_store::grants::{self, FamilyFilter, StoredRefreshToken};
use idplane_store::{WriteTx, principals};
use jiff::SignedDuration;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::clients::{Client, ClientType, GrantType};
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::grant::{CodeGrant, Grant};
use super::tokens::{AccessToken, REFRESH_PREFIX, new_jti, new_secret, token_hash};
use crate::{App, AppError};

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer`, or `DPoP` for sender-constrained tokens.
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// RFC 8693 token exchange only.
    pub issued_token_type: Option<&'static str>,
}

impl TokenResponse {
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert("access_token".into(), self.access_token.clone().into());
        map.insert("token_type".into(), self.token_type.into());
        map.insert("expires_in".into(), self.expires_in.into());
        if !self.scope.is_empty() {
            map.insert("scope".into(), self.scope.clone().into());
        }
        if let Some(rt) = &self.refresh_token {
            map.insert("refresh_token".into(), rt.clone().into());
        }
        if let Some(id) = &self.id_token {
            map.insert("id_token".into(), id.clone().into());
        }
        if let Some(t) = self.issued_token_type {
            map.insert("issued_token_type".into(), t.into());
        }
        Value::Object(map)
    }

    pub(crate) fn new(access: &AccessToken, grant: &Grant, now: Timestamp) -> Self {
        Self {
            access_token: access.token.clone(),
            token_type: if grant.dpop_jkt.is_some() {
                "DPoP"
            } else {
                "Bearer"
            },
            expires_in: (access.expires_at.as_second() - now.as_second()).max(0),
            scope: grant.scope(),
            refresh_token: None,
            id_token: None,
            issued_token_type: None,
        }
    }
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn s256(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

fn grant_json<T: serde::Serialize>(value: &T) -> Result<Value, AppError> {
    serde_json::to_value(value).map_err(|e| AppError::Internal(e.to_string()))
}

impl App {
    /// Exchanges an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.6).
    pub async fn exchange_code(
        &self,
        ctx: &Ctx,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        dpop_jkt: Option<&str>,
    ) -> OAuthResult<TokenResponse> {
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(unauthorized_client());
        }
        let hash = token_hash(code);
        let mut tx = self.store().write().await?;
        let stored = grants::code(&mut tx, &hash)
            .await?
            .filter(|c| c.tenant_id == ctx.tenant && c.client_id == client.client_id)
            .ok_or_else(|| OAuthError::invalid_grant("the code is unknown"))?;
        if stored.used_at.is_some() {
            let family = stored.family_id.clone().unwrap_or_default();
            let revoked = self.revoke_family(&mut tx, ctx, &family).await?;
            tx.commit(
                AuditEvent::new(
                    ctx,
                    "oauth.code_replay",
                    Some(format!("client:{}", client.client_id)),
                )
                .failed()
                .with_details(json!({"family": family, "revoked": revoked})),
            )
            .await?;
            return Err(OAuthError::invalid_grant(
                "the code was already used; what it produced is revoked",
            ));
        }
        if ctx.now >= stored.expires_at {
            return Err(OAuthError::invalid_grant("the code has expired"));
        }
        let code_grant: CodeGrant = serde_json::from_value(stored.grant)
            .map_err(|e| AppError::Internal(format!("corrupt code grant: {e}")))?;
        if redirect_uri != Some(code_grant.redirect_uri.as_str()) {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        let verifier = code_verifier
            .filter(|v| valid_verifier(v))
            .ok_or_else(|| OAuthError::invalid_grant("a valid code_verifier is required"))?;
        if !bool::from(
            s256(verifier)
                .as_bytes()
                .ct_eq(code_grant.code_challenge.as_bytes()),
        ) {
            return Err(OAuthError::invalid_grant(
                "the code_verifier does not match",
            ));
        }
        let mut grant = code_grant.grant;
        bind_dpop(&mut grant, dpop_jkt)?;
        let person = self.grant_subject(&mut tx, ctx, &grant).await?;
        let family = new_jti();
        if !grants::use_code(&mut tx, &hash, ctx.now, &family).await? {
            return Err(OAuthError::invalid_grant("the code was already used"));
        }
        let access = self
            .mint_access_token(ctx, client, &grant, person.as_ref(), Some(&mut tx))
            .await?;
        let mut response = TokenResponse::new(&access, &grant, ctx.now);
        if client.allows(GrantType::RefreshToken) {
            let expires_at =
                ctx.now + SignedDuration::from_secs(client.refresh_token_lifetime_secs);
            response.refresh_token =
                Some(issue_refresh(&mut tx, ctx, &grant, &family, &access, expires_at).await?);
        }
        if grant.has_scope("openid")
            && let Some(person) = &person
        {
            response.id_token = Some(self.mint_id_token(
                ctx,
                client,
                &grant,
                person,
                grant.nonce.as_deref(),
                &access.token,
            )?);
        }
        self.store_access_token(&mut tx, &access).await?;
        tx.commit(issued_event(
            ctx,
            "authorization_code",
            client,
            &grant,
            &access,
            &family,
        ))
        .await?;
        Ok(response)
    }

    /// Rotates a refresh token (RFC 6749 §6, RFC 9700 §4.14.2).
    pub async fn refresh(
        &self,
        ctx: &Ctx,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
        dpop_jkt: Option<&str>,
    ) -> OAuthResult<TokenResponse> {
        if !client.allows(GrantType::RefreshToken) {
            return Err(unauthorized_client());
        }
        let hash = token_hash(refresh_token);
        let mut tx = self.store().write().await?;
        let stored = grants::refresh_token(&mut tx, &hash)
            .await?
            .filter(|t| t.tenant_id == ctx.tenant && t.client_id == client.client_id)
            .ok_or_else(|| OAuthError::invalid_grant("the refresh token is unknown"))?;
        if stored.revoked_at.is_some() {
            return Err(OAuthError::invalid_grant("the refresh token was revoked"));
        }
        if stored.used_at.is_some() || !grants::spend_refresh_token(&mut tx, &hash, ctx.now).await?
        {
            let revoked = self.revoke_family(&mut tx, ctx, &stored.family_id).await?;
            tx.commit(
                AuditEvent::new(
                    ctx,
                    "oauth.refresh_reuse",
                    Some(format!("client:{}", client.client_id)),
                )
                .failed()
                .with_details(json!({
                    "family": stored.family_id,
                    "revoked": revoked,
                    "suspected": "refresh token theft",
                })),
            )
            .await?;
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used; its grant is revoked",
            ));
        }
        if ctx.now >= stored.expires_at {
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        let mut grant: Grant = serde_json::from_value(stored.grant.clone())
            .map_err(|e| AppError::Internal(format!("corrupt refresh grant: {e}")))?;
        if let Some(jkt) = &grant.dpop_jkt
            && dpop_jkt != Some(jkt.as_str())
        {
            return Err(OAuthError::invalid_grant(
                "the refresh token is bound to another DPoP key",
            ));
        }
        bind_dpop(&mut grant, dpop_jkt)?;
        if let Some(scope) = scope {
            let narrowed = super::grant::parse_scope(Some(scope));
            if let Some(extra) = narrowed.iter().find(|s| !grant.has_scope(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope `{extra}` was not granted"
                )));
            }
            grant.scopes = narrowed;
        }
        let person = self.grant_subject(&mut tx, ctx, &grant).await?;
        let access = self
            .mint_access_token(ctx, client, &grant, person.as_ref(), Some(&mut tx))
            .await?;
        let mut response = TokenResponse::new(&access, &grant, ctx.now);
        // The family keeps its absolute end: rotation never extends a grant.
        response.refresh_token = Some(
            issue_refresh(
                &mut tx,
                ctx,
                &grant,
                &stored.family_id,
                &access,
                stored.expires_at,
            )
            .await?,
        );
        self.store_access_token(&mut tx, &access).await?;
        tx.commit(issued_event(
            ctx,
            "refresh_token",
            client,
            &grant,
            &access,
            &stored.family_id,
        ))
        .await?;
        Ok(response)
    }

    /// Client credentials (RFC 6749 §4.4): the client acts for itself.
    /// No write besides the group-committed audit event.
    pub async fn client_credentials(
        &self,
        ctx: &Ctx,
        client: &Client,
        scope: Option<&str>,
        resources: &[String],
        dpop_jkt: Option<&str>,
    ) -> OAuthResult<TokenResponse> {
        if !client.allows(GrantType::ClientCredentials)
            || client.client_type != ClientType::Confidential
        {
            return Err(unauthorized_client());
        }
        let scopes = self.check_scopes(client, scope)?;
        let grant = Grant {
            client_id: client.client_id.clone(),
            subject: None,
            session_id: None,
            resources: self.check_resources(ctx, resources, &scopes).await?,
            scopes,
            auth: None,
            nonce: None,
            dpop_jkt: dpop_jkt.map(str::to_owned),
            actor: None,
        };
        let access = self
            .mint_access_token(ctx, client, &grant, None, None)
            .await?;
        self.record_issued(
            &access,
            issued_event(ctx, "client_credentials", client, &grant, &access, ""),
        )
        .await?;
        Ok(TokenResponse::new(&access, &grant, ctx.now))
    }

    /// Records the issuance of a token minted outside a transaction: a JWT
    /// through the group-commit writer (nothing else to write), an opaque
    /// token in one transaction with its record.
    pub(crate) async fn record_issued(
        &self,
        access: &AccessToken,
        event: AuditEvent,
    ) -> Result<(), AppError> {
        if access.needs_storing() {
            let mut tx = self.store().write().await?;
            self.store_access_token(&mut tx, access).await?;
            tx.commit(event).await?;
        } else {
            self.record(event).await?;
        }
        Ok(())
    }

    /// The principal a grant acts for, refused when it may no longer act.
    pub(crate) async fn grant_subject(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        grant: &Grant,
    ) -> OAuthResult<Option<Principal>> {
        let Some(id) = grant.subject else {
            return Ok(None);
        };
        let person = principals::by_id(tx, ctx.tenant, id)
            .await?
            .filter(|p| p.is_active_at(ctx.now))
            .ok_or_else(|| OAuthError::invalid_grant("the subject may no longer sign in"))?;
        Ok(Some(person))
    }

    /// Revokes a refresh family and the access tokens issued with it;
    /// returns how many refresh tokens were revoked.
    pub(crate) async fn revoke_family(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        family: &str,
    ) -> Result<usize, AppError> {
        Ok(self
            .revoke_refresh_tokens(tx, ctx, FamilyFilter::Family(family))
            .await?
            .len())
    }

    /// Revokes refresh tokens matching `filter` and their access tokens;
    /// returns the tokens revoked.
    pub(crate) async fn revoke_refresh_tokens(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        filter: FamilyFilter<'_>,
    ) -> Result<Vec<StoredRefreshToken>, AppError> {
        let revoked = grants::revoke_refresh_tokens(tx, ctx.tenant, filter, ctx.now).await?;
        for token in &revoked {
            if let (Some(jti), Some(exp)) = (&token.access_jti, token.access_expires_at)
                && ctx.now < exp
            {
                self.revoke_access_jti(tx, ctx.tenant, jti, exp, ctx.now)
                    .await?;
            }
        }
        Ok(revoked)
    }
}

/// Stores a new refresh token of `family` and returns it.
pub(crate) async fn issue_refresh(
    tx: &mut WriteTx,
    ctx: &Ctx,
    grant: &Grant,
    family: &str,
    access: &AccessToken,
    expires_at: Timestamp,
) -> OAuthResult<String> {
    let (token, hash) = new_secret(REFRESH_PREFIX)?;
    grants::insert_refresh_token(
        tx,
        &hash,
        &StoredRefreshToken {
            family_id: family.to_owned(),
            tenant_id: ctx.tenant,
            client_id: grant.client_id.clone(),
            principal_id: grant.subject,
            session_id: grant.session_id.clone(),
            grant: grant_json(&Grant {
                nonce: None,
                ..grant.clone()
            })?,
            access_jti: Some(access.jti.clone()),
            access_expires_at: Some(access.expires_at),
            created_at: ctx.now,
            expires_at,
            used_at: None,
            revoked_at: None,
        },
    )
    .await?;
    Ok(token)
}

/// Binds a grant to the DPoP key of this request; a grant already bound
/// (`dpop_jkt` at authorization) must be used with that key.
pub(crate) fn bind_dpop(grant: &mut Grant, dpop_jkt: Option<&str>) -> OAuthResult<()> {
    match (&grant.dpop_jkt, dpop_jkt) {
        (Some(bound), Some(presented)) if bound != presented => Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "the DPoP key differs from the one the grant is bound to",
        )),
        (Some(_), None) => Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this grant is bound to a DPoP key: send a DPoP proof",
        )),
        (_, presented) => {
            grant.dpop_jkt = presented.map(str::to_owned).or(grant.dpop_jkt.take());
            Ok(())
        }
    }
}

pub(crate) fn unauthorized_client() -> OAuthError {
    OAuthError::new(
        ErrorCode::UnauthorizedClient,
        "this client may not use this grant type",
    )
}

pub(crate) fn issued_event(
    ctx: &Ctx,
    grant_type: &str,
    client: &Client,
    grant: &Grant,
    access: &AccessToken,
    family: &str,
) -> AuditEvent {
    let mut details = json!({
        "grant_type": grant_type,
        "jti": access.jti,
        "scope": grant.scope(),
        "expires_at": access.expires_at,
    });
    if let Some(map) = details.as_object_mut() {
        if let Some(subject) = grant.subject {
            map.insert("subject".into(), format!("user:{subject}").into());
        }
        if !family.is_empty() {
            map.insert("family".into(), family.into());
        }
        if !grant.resources.is_empty() {
            map.insert("audience".into(), json!(grant.resources));
        }
        if grant.dpop_jkt.is_some() {
            map.insert("dpop_bound".into(), true.into());
        }
    }
    AuditEvent::new(
        ctx,
        "oauth.token",
        Some(format!("client:{}", client.client_id)),
    )
    .with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(valid_verifier(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a b".repeat(20)));
    }

    #[test]
    fn dpop_binding_cannot_be_dropped_or_swapped() {
        let mut grant = Grant {
            client_id: "c".into(),
            subject: None,
            session_id: None,
            scopes: vec![],
            resources: vec![],
            auth: None,
            nonce: None,
            dpop_jkt: Some("k1".into()),
            actor: None,
        };
        assert!(bind_dpop(&mut grant.clone(), None).is_err());
        assert!(bind_dpop(&mut grant.clone(), Some("k2")).is_err());
        assert!(bind_dpop(&mut grant, Some("k1")).is_ok());
        let mut unbound = Grant {
            dpop_jkt: None,
            ..grant
        };
        bind_dpop(&mut unbound, Some("k3")).unwrap();
        assert_eq!(unbound.dpop_jkt.as_deref(), Some("k3"));
    }
}
