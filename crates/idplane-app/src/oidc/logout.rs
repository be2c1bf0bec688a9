//! Ending sign-ins for relying parties: when a session ends (sign-out,
//! RP-initiated logout, an administrator, deprovisioning) the refresh
//! tokens issued under it are revoked in the same transaction, and the
//! clients that registered a back-channel logout URI are sent a logout
//! token (OIDC Back-Channel Logout 1.0) once that transaction committed.

use std::collections::BTreeSet;

use idplane_core::audit::AuditEvent;
use idplane_core::{Ctx, PrincipalId, TenantId, Timestamp};
use idplane_store::WriteTx;
use idplane_store::grants::FamilyFilter;
use jiff::SignedDuration;
use serde_json::{Map, Value, json};

use super::tokens::new_jti;
use crate::{App, Result};

/// The `events` member of a logout token.
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// Logout tokens live this long.
const LOGOUT_TOKEN_LIFETIME: SignedDuration = SignedDuration::from_mins(2);

/// A relying party to tell that a person's session at idplane ended.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogoutNotice {
    pub tenant: TenantId,
    pub client_id: String,
    pub subject: PrincipalId,
    pub session_id: Option<String>,
}

impl App {
    /// Revokes the refresh tokens matching `filter` (a session, or every
    /// grant of a person) inside the caller's transaction, and returns who
    /// to notify after it commits.
    pub(crate) async fn revoke_for_logout(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        filter: FamilyFilter<'_>,
    ) -> Result<Vec<LogoutNotice>> {
        let revoked = self.revoke_refresh_tokens(tx, ctx, filter).await?;
        let notices: BTreeSet<LogoutNotice> = revoked
            .into_iter()
            .filter_map(|t| {
                Some(LogoutNotice {
                    tenant: t.tenant_id,
                    client_id: t.client_id,
                    subject: t.principal_id?,
                    session_id: t.session_id,
                })
            })
            .collect();
        Ok(notices.into_iter().collect())
    }

    /// Sends logout tokens to the clients of `notices` that registered a
    /// back-channel logout URI, in the background. Each delivery is audited.
    pub(crate) fn notify_logout(&self, ctx: &Ctx, notices: Vec<LogoutNotice>) {
        if notices.is_empty() {
            return;
        }
        let app = self.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            for notice in notices {
                if let Err(e) = app.deliver_logout(&ctx, &notice).await {
                    tracing::warn!(client = %notice.client_id, error = %e, "back-channel logout failed");
                }
            }
        });
    }

    async fn deliver_logout(&self, ctx: &Ctx, notice: &LogoutNotice) -> Result<()> {
        let Some(client) = self.cached_client(notice.tenant, &notice.client_id).await? else {
            return Ok(());
        };
        let Some(uri) = client.backchannel_logout_uri.clone() else {
            return Ok(());
        };
        let token = self.logout_token(
            &client.client_id,
            client.id_token_signed_response_alg,
            notice,
            ctx.now,
        )?;
        let outcome = crate::outbound::client()
            .map_err(|e| crate::AppError::Internal(e.to_string()))?
            .post(&uri)
            .form(&[("logout_token", token.as_str())])
            .send()
            .await;
        let (delivered, detail) = match outcome {
            Ok(r) if r.status().is_success() => (true, r.status().as_u16().to_string()),
            Ok(r) => (false, r.status().as_u16().to_string()),
            Err(e) => (false, e.to_string()),
        };
        let mut event = AuditEvent::new(
            ctx,
            "oauth.backchannel_logout",
            Some(format!("client:{}", client.client_id)),
        )
        .with_details(json!({
            "subject": format!("user:{}", notice.subject),
            "session": notice.session_id,
            "status": detail,
        }));
        if !delivered {
            event = event.failed();
        }
        self.record(event).await?;
        Ok(())
    }

    /// A logout token (OIDC Back-Channel Logout 1.0 §2.4).
    fn logout_token(
        &self,
        client_id: &str,
        alg: super::clients::SigningAlg,
        notice: &LogoutNotice,
        now: Timestamp,
    ) -> Result<String> {
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer().into());
        claims.insert("aud".into(), client_id.into());
        claims.insert("iat".into(), now.as_second().into());
        claims.insert(
            "exp".into(),
            (now + LOGOUT_TOKEN_LIFETIME).as_second().into(),
        );
        claims.insert("jti".into(), new_jti().into());
        claims.insert("sub".into(), notice.subject.to_string().into());
        if let Some(sid) = &notice.session_id {
            claims.insert("sid".into(), sid.clone().into());
        }
        claims.insert("events".into(), json!({ BACKCHANNEL_EVENT: {} }));
        self.active_signing_key(alg)?
            .sign("logout+jwt", &Value::Object(claims))
    }

    /// The claims of an ID token we issued, whatever its age (a hint at
    /// logout may have expired): `None` when not ours or tampered with.
    pub fn id_token_hint(&self, token: &str) -> Option<Map<String, Value>> {
        // Published keys only; expiry deliberately not enforced.
        self.verify_own_jwt(token, "JWT", Timestamp::MIN)
    }
}
