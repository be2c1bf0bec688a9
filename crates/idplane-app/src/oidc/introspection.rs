//! Token introspection (RFC 7662), revocation (RFC 7009) and userinfo
//! (OIDC Core §5.3).
//!
//! Introspection answers only authenticated clients, and only about tokens
//! issued to them or meant for them (they are in its audience): anything
//! else is `{"active": false}`, audited, so one client cannot probe
//! another's tokens.

use idplane_core::Ctx;
use idplane_core::audit::AuditEvent;
use idplane_store::grants::{self, FamilyFilter};
use idplane_store::principals;
use serde_json::{Map, Value, json};

use super::clients::Client;
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::grant::Grant;
use super::tokens::{REFRESH_PREFIX, ValidToken, profile_claims, token_hash};
use crate::{App, AppError};

impl ValidToken {
    /// Whether `client_id` issued this token or is one of its audiences.
    fn concerns(&self, client_id: &str) -> bool {
        self.client_id() == Some(client_id)
            || match self.claims.get("aud") {
                Some(Value::String(aud)) => aud == client_id,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
                _ => false,
            }
    }
}

impl App {
    /// RFC 7662 for `caller`: the token's claims with `active: true`, or
    /// `active: false` (audited) when it is not a live token the caller
    /// may see.
    pub async fn introspect(&self, ctx: &Ctx, caller: &Client, token: &str) -> OAuthResult<Value> {
        let found = if token.starts_with(REFRESH_PREFIX) {
            self.introspect_refresh(ctx, caller, token).await?
        } else {
            self.validate_access_token(ctx.tenant, token)
                .await?
                .filter(|t| t.concerns(&caller.client_id))
                .map(|t| {
                    let mut claims = t.claims;
                    claims.insert("token_type".into(), token_type(&claims).into());
                    claims
                })
        };
        let Some(mut claims) = found else {
            self.record(
                AuditEvent::new(
                    ctx,
                    "oauth.introspect",
                    Some(format!("client:{}", caller.client_id)),
                )
                .with_details(json!({"active": false})),
            )
            .await?;
            return Ok(json!({"active": false}));
        };
        claims.insert("active".into(), true.into());
        Ok(Value::Object(claims))
    }

    async fn introspect_refresh(
        &self,
        ctx: &Ctx,
        caller: &Client,
        token: &str,
    ) -> OAuthResult<Option<Map<String, Value>>> {
        let mut conn = self.store().read().await?;
        let Some(stored) = grants::refresh_token(&mut conn, &token_hash(token)).await? else {
            return Ok(None);
        };
        let live = stored.tenant_id == ctx.tenant
            && stored.client_id == caller.client_id
            && stored.used_at.is_none()
            && stored.revoked_at.is_none()
            && ctx.now < stored.expires_at;
        if !live {
            return Ok(None);
        }
        let grant: Grant = serde_json::from_value(stored.grant)
            .map_err(|e| AppError::Internal(format!("corrupt refresh grant: {e}")))?;
        let mut claims = Map::new();
        claims.insert("client_id".into(), stored.client_id.into());
        claims.insert("scope".into(), grant.scope().into());
        claims.insert("token_type".into(), "refresh_token".into());
        claims.insert("iss".into(), self.issuer().into());
        claims.insert("exp".into(), stored.expires_at.as_second().into());
        claims.insert("iat".into(), stored.created_at.as_second().into());
        if let Some(sub) = grant.subject {
            claims.insert("sub".into(), sub.to_string().into());
        }
        if let Some(jkt) = grant.dpop_jkt {
            claims.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        Ok(Some(claims))
    }

    /// RFC 7009: revokes a refresh token (and its whole family) or an
    /// access token issued to `caller`. Unknown tokens and tokens of other
    /// clients are ignored, as the RFC asks (the response is the same).
    pub async fn revoke_oauth_token(
        &self,
        ctx: &Ctx,
        caller: &Client,
        token: &str,
    ) -> OAuthResult<()> {
        let mut tx = self.store().write().await?;
        let what = if token.starts_with(REFRESH_PREFIX) {
            match grants::refresh_token(&mut tx, &token_hash(token)).await? {
                Some(stored)
                    if stored.tenant_id == ctx.tenant && stored.client_id == caller.client_id =>
                {
                    let revoked = self
                        .revoke_refresh_tokens(
                            &mut tx,
                            ctx,
                            FamilyFilter::Family(&stored.family_id),
                        )
                        .await?
                        .len();
                    Some(
                        json!({"token_type": "refresh_token", "family": stored.family_id, "revoked": revoked}),
                    )
                }
                _ => None,
            }
        } else {
            match self.validate_access_token(ctx.tenant, token).await? {
                Some(valid) if valid.client_id() == Some(caller.client_id.as_str()) => {
                    self.revoke_access_jti(
                        &mut tx,
                        ctx.tenant,
                        &valid.jti,
                        valid.expires_at,
                        ctx.now,
                    )
                    .await?;
                    Some(json!({"token_type": "access_token", "jti": valid.jti}))
                }
                _ => None,
            }
        };
        if let Some(details) = what {
            tx.commit(
                AuditEvent::new(
                    ctx,
                    "oauth.revoke",
                    Some(format!("client:{}", caller.client_id)),
                )
                .with_details(details),
            )
            .await?;
        }
        Ok(())
    }

    /// OIDC userinfo for a validated access token with the `openid` scope.
    pub async fn userinfo(&self, ctx: &Ctx, token: &ValidToken) -> OAuthResult<Value> {
        if !token.scopes().any(|s| s == "openid") {
            return Err(OAuthError::new(
                ErrorCode::InsufficientScope,
                "the access token lacks the openid scope",
            ));
        }
        let subject = token
            .claim_str("sub")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidToken, "the token has no user"))?;
        let mut conn = self.store().read().await?;
        let person = principals::by_id(&mut conn, ctx.tenant, subject)
            .await?
            .filter(|p| p.is_active_at(ctx.now))
            .ok_or_else(|| {
                OAuthError::new(ErrorCode::InvalidToken, "the user may no longer sign in")
            })?;
        let grant = Grant {
            client_id: token.client_id().unwrap_or_default().to_owned(),
            subject: Some(person.id),
            session_id: None,
            scopes: token.scopes().map(str::to_owned).collect(),
            resources: Vec::new(),
            auth: None,
            nonce: None,
            dpop_jkt: None,
            actor: None,
        };
        let mut claims = profile_claims(&grant, &person);
        claims.insert("sub".into(), person.id.to_string().into());
        Ok(Value::Object(claims))
    }
}

fn token_type(claims: &Map<String, Value>) -> &'static str {
    if claims.contains_key("cnf") {
        "DPoP"
    } else {
        "Bearer"
    }
}
