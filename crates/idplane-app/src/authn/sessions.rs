//! Server-side sessions: created at every sign-in (a fresh id, so a cookie
//! planted before sign-in is worthless), ended on sign-out, by the person,
//! by an administrator, or by deprovisioning; idle and absolute timeouts
//! evaluated on read. Ending a session also revokes the refresh tokens
//! issued under it and signs its relying parties out (back-channel).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::audit::AuditEvent;
use idplane_core::directory::Principal;
use idplane_core::{Ctx, PrincipalId};
use idplane_store::grants::FamilyFilter;
use idplane_store::principals;
use idplane_store::sessions::{self, StoredSession};
use jiff::SignedDuration;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Amr;
use crate::keyring::random_bytes;
use crate::{App, AppError, Result};

/// By default a session ends after this long without activity (the tenant
/// policy can change it).
pub const DEFAULT_IDLE_TIMEOUT: SignedDuration = SignedDuration::from_mins(30);
/// By default a session ends this long after sign-in, whatever the activity.
pub const DEFAULT_ABSOLUTE_TIMEOUT: SignedDuration = SignedDuration::from_hours(12);
/// Activity is recorded at most this often (it costs a write).
const TOUCH_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// Authentication context class references, weakest first.
pub mod acr {
    /// One factor.
    pub const SINGLE_FACTOR: &str = "urn:idplane:acr:1fa";
    /// Two factors.
    pub const MULTI_FACTOR: &str = "urn:idplane:acr:mfa";
    /// A phishing-resistant factor (a passkey with user verification).
    pub const PHISHING_RESISTANT: &str = "urn:idplane:acr:phr";
}

/// A session just created, with the secret for the cookie (shown once).
#[derive(Clone, Debug)]
pub struct NewSession {
    pub session: StoredSession,
    pub secret: String,
}

/// The ACR level that a set of methods reaches.
pub fn acr_for(amr: &[Amr]) -> &'static str {
    let key = amr.iter().any(|a| matches!(a, Amr::Hwk | Amr::Swk));
    if key && amr.contains(&Amr::User) {
        acr::PHISHING_RESISTANT
    } else if amr.contains(&Amr::Mfa) {
        acr::MULTI_FACTOR
    } else {
        acr::SINGLE_FACTOR
    }
}

impl App {
    /// Starts a session for `principal`, authenticated by `amr`. A session
    /// being replaced (`replaces`, e.g. at step-up) is ended in the same
    /// transaction, so every sign-in or privilege change gets a new id.
    pub async fn create_session(
        &self,
        ctx: &Ctx,
        principal: &Principal,
        amr: &[Amr],
        replaces: Option<&str>,
    ) -> Result<NewSession> {
        let secret = B64.encode(random_bytes::<32>()?);
        let mut amr: Vec<Amr> = amr.to_vec();
        amr.sort_unstable();
        amr.dedup();
        let session = StoredSession {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: ctx.tenant,
            principal_id: principal.id,
            amr: amr.iter().map(|a| a.as_str().to_owned()).collect(),
            acr: acr_for(&amr).to_owned(),
            auth_time: ctx.now,
            created_at: ctx.now,
            last_seen_at: ctx.now,
            expires_at: ctx.now + self.auth_policy(ctx).await?.absolute_timeout(),
            ended_at: None,
            source_ip: ctx.request.source_ip.clone(),
            user_agent: ctx.request.user_agent.clone(),
        };
        let mut tx = self.store().write().await?;
        let mut events = Vec::new();
        if let Some(old) = replaces
            && let Some(previous) = sessions::by_hash(&mut tx, &secret_hash(old)).await?
            && sessions::end(&mut tx, &previous.id, ctx.now).await?
        {
            events.push(
                AuditEvent::new(ctx, "session.end", Some(format!("session:{}", previous.id)))
                    .with_details(json!({"reason": "replaced"})),
            );
        }
        sessions::insert(&mut tx, &session, &secret_hash(&secret)).await?;
        events.push(
            AuditEvent::new(
                ctx,
                "session.create",
                Some(format!("session:{}", session.id)),
            )
            .with_details(json!({
                "principal": format!("user:{}", principal.id),
                "amr": session.amr,
                "acr": session.acr,
            })),
        );
        tx.commit_all(events).await?;
        Ok(NewSession { session, secret })
    }

    /// The running session behind a cookie value, with its principal, or
    /// `None` when unknown, ended, timed out, or its principal may no longer
    /// act. Records activity at most once a minute.
    pub async fn session(
        &self,
        ctx: &Ctx,
        secret: &str,
    ) -> Result<Option<(StoredSession, Principal)>> {
        // Before taking a connection: holding one while the policy waits
        // for another starves the reader pool under concurrency.
        let idle = self.auth_policy(ctx).await?.idle_timeout();
        let mut conn = self.store().read().await?;
        let Some(session) = sessions::by_hash(&mut conn, &secret_hash(secret)).await? else {
            return Ok(None);
        };
        let running = session.tenant_id == ctx.tenant
            && session.ended_at.is_none()
            && ctx.now < session.expires_at
            && ctx.now < session.last_seen_at + idle;
        if !running {
            return Ok(None);
        }
        let Some(principal) = principals::by_id(&mut conn, ctx.tenant, session.principal_id)
            .await?
            .filter(|p| p.is_active_at(ctx.now))
        else {
            return Ok(None);
        };
        drop(conn);
        if ctx.now >= session.last_seen_at + TOUCH_EVERY {
            sessions::touch(self.store(), &session.id, ctx.now).await?;
        }
        Ok(Some((session, principal)))
    }

    /// The running sessions of a user, newest first.
    pub async fn sessions_of(&self, ctx: &Ctx, user: PrincipalId) -> Result<Vec<StoredSession>> {
        let idle = self.auth_policy(ctx).await?.idle_timeout();
        let mut conn = self.store().read().await?;
        let all = sessions::of_principal(&mut conn, user).await?;
        Ok(all
            .into_iter()
            .filter(|s| {
                s.tenant_id == ctx.tenant
                    && ctx.now < s.expires_at
                    && ctx.now < s.last_seen_at + idle
            })
            .collect())
    }

    /// Ends a session. With `owner`, only a session of that user (people
    /// ending their own); without, any session of the tenant (admins).
    pub async fn end_session(&self, ctx: &Ctx, id: &str, owner: Option<PrincipalId>) -> Result<()> {
        let mut tx = self.store().write().await?;
        let session = sessions::by_id(&mut tx, ctx.tenant, id)
            .await?
            .filter(|s| owner.is_none_or(|o| o == s.principal_id))
            .ok_or_else(|| AppError::NotFound(format!("session `{id}`")))?;
        if !sessions::end(&mut tx, &session.id, ctx.now).await? {
            return Err(AppError::NotFound(format!("session `{id}`")));
        }
        let notices = self
            .revoke_for_logout(&mut tx, ctx, FamilyFilter::Session(&session.id))
            .await?;
        let event = AuditEvent::new(ctx, "session.end", Some(format!("session:{}", session.id)))
            .with_details(json!({
                "principal": format!("user:{}", session.principal_id),
                "clients_signed_out": notices.len(),
            }));
        tx.commit(event).await?;
        self.notify_logout(ctx, notices);
        Ok(())
    }

    /// Ends the session behind a cookie value (sign-out). Unknown or ended
    /// sessions are ignored: signing out twice is not an error.
    pub async fn sign_out(&self, ctx: &Ctx, secret: &str) -> Result<()> {
        let mut tx = self.store().write().await?;
        let Some(session) = sessions::by_hash(&mut tx, &secret_hash(secret)).await? else {
            return Ok(());
        };
        if sessions::end(&mut tx, &session.id, ctx.now).await? {
            let notices = self
                .revoke_for_logout(&mut tx, ctx, FamilyFilter::Session(&session.id))
                .await?;
            let event =
                AuditEvent::new(ctx, "session.end", Some(format!("session:{}", session.id)))
                    .with_details(json!({
                        "reason": "signed out",
                        // The cookie is the only credential here: name its owner.
                        "user": format!("user:{}", session.principal_id),
                        "clients_signed_out": notices.len(),
                    }));
            tx.commit(event).await?;
            self.notify_logout(ctx, notices);
        }
        Ok(())
    }

    /// Ends every session of a user (admin action, password reset).
    pub async fn end_all_sessions(&self, ctx: &Ctx, user: PrincipalId) -> Result<u64> {
        let mut tx = self.store().write().await?;
        let ended = sessions::end_all(&mut tx, user, ctx.now).await?;
        let notices = self
            .revoke_for_logout(&mut tx, ctx, FamilyFilter::Principal(user))
            .await?;
        let event = AuditEvent::new(ctx, "session.end_all", Some(format!("user:{user}")))
            .with_details(json!({"ended": ended, "clients_signed_out": notices.len()}));
        tx.commit(event).await?;
        self.notify_logout(ctx, notices);
        Ok(ended)
    }
}

/// The stored form of a session secret.
pub(crate) fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acr_reflects_the_strongest_combination() {
        assert_eq!(acr_for(&[Amr::Pwd]), acr::SINGLE_FACTOR);
        assert_eq!(acr_for(&[Amr::Pwd, Amr::Otp, Amr::Mfa]), acr::MULTI_FACTOR);
        assert_eq!(
            acr_for(&[Amr::Hwk, Amr::User, Amr::Mfa]),
            acr::PHISHING_RESISTANT
        );
        assert_eq!(acr_for(&[Amr::Swk]), acr::SINGLE_FACTOR);
    }
}

/// Whether a session is strong and fresh enough for a request that asks for
/// class `wanted_acr` and authentication no older than `max_age` (step-up:
/// when it is not, the person signs in again).
pub fn meets(
    session: &StoredSession,
    wanted_acr: Option<&str>,
    max_age: Option<SignedDuration>,
    now: idplane_core::Timestamp,
) -> bool {
    let level = |acr: &str| match acr {
        acr::PHISHING_RESISTANT => 2,
        acr::MULTI_FACTOR => 1,
        _ => 0,
    };
    let strong = wanted_acr.is_none_or(|wanted| level(&session.acr) >= level(wanted));
    let fresh = max_age.is_none_or(|age| now < session.auth_time + age);
    strong && fresh
}

#[cfg(test)]
mod step_up_tests {
    use super::*;

    fn session(acr: &str, auth_time: idplane_core::Timestamp) -> StoredSession {
        StoredSession {
            id: "s".into(),
            tenant_id: idplane_core::TenantId::generate(),
            principal_id: idplane_core::PrincipalId::generate(),
            amr: vec![],
            acr: acr.into(),
            auth_time,
            created_at: auth_time,
            last_seen_at: auth_time,
            expires_at: auth_time + DEFAULT_ABSOLUTE_TIMEOUT,
            ended_at: None,
            source_ip: None,
            user_agent: None,
        }
    }

    #[test]
    fn step_up_is_needed_for_a_stronger_class_or_an_older_sign_in() {
        let t: idplane_core::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let one_factor = session(acr::SINGLE_FACTOR, t);
        assert!(meets(&one_factor, None, None, t));
        assert!(!meets(&one_factor, Some(acr::MULTI_FACTOR), None, t));
        let phr = session(acr::PHISHING_RESISTANT, t);
        assert!(meets(&phr, Some(acr::MULTI_FACTOR), None, t));
        let later = t + SignedDuration::from_mins(10);
        assert!(!meets(
            &phr,
            None,
            Some(SignedDuration::from_mins(5)),
            later
        ));
        assert!(meets(
            &phr,
            None,
            Some(SignedDuration::from_mins(15)),
            later
        ));
    }
}
