//! The device authorization grant (RFC 8628): a device without a usable
//! browser (a TV, a CLI on a server) asks for a device code and a short
//! user code; a person signs in on another screen, types the user code,
//! checks who is asking and from where, and approves or denies; meanwhile
//! the device polls the token endpoint with the device code.
//!
//! - The device code is 256 random bits, stored only as its hash.
//! - The user code is 8 characters of the RFC 8628 §6.1 base-20 alphabet
//!   (no vowels, so no words; no look-alike digits), about 34 bits: guessing
//!   one is what the wrong-code throttle below makes impractical. It is
//!   shown as `XXXX-XXXX` and compared case-insensitively without the dash.
//! - A request lives [`DEVICE_CODE_LIFETIME`]; the device polls at most
//!   every [`POLL_INTERVAL_SECS`] seconds, and each poll that comes too soon
//!   answers `slow_down` and raises the interval by [`SLOW_DOWN_SECS`]
//!   (RFC 8628 §3.5).
//! - Approval, denial and issuance are each a conditional update: a request
//!   is decided once and yields tokens once; a second poll after success is
//!   `invalid_grant`.
//! - Wrong user codes count against the person's session and the source
//!   address: after [`MAX_WRONG_CODES`] within [`WRONG_CODE_WINDOW`],
//!   entering codes is refused for that window (counted in the sign-in
//!   throttle table, so every node sees it). A correct code clears nothing,
//!   so one's own valid code cannot be interleaved to keep guessing.
//!
//! Polls are not audited (a device polls every few seconds); the request,
//! each wrong code, the decision and the issuance are.

use std::sync::Arc;

use idplane_core::audit::AuditEvent;
use idplane_core::directory::Principal;
use idplane_core::{Ctx, Timestamp};
use idplane_store::StoreError;
use idplane_store::credentials;
use idplane_store::device_codes::{self, DeviceCodeStatus, StoredDeviceCode};
use idplane_store::sessions::StoredSession;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::authorize::Params;
use super::clients::{Client, GrantType};
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::grant::{AuthFacts, Grant};
use super::token::{TokenResponse, bind_dpop, issue_refresh, issued_event, unauthorized_client};
use super::tokens::{new_jti, new_secret, token_hash};
use crate::keyring::random_bytes;
use crate::{App, AppError, Result};

/// How long a device authorization request waits for the person.
pub const DEVICE_CODE_LIFETIME: SignedDuration = SignedDuration::from_mins(10);
/// The least number of seconds between two polls at first.
pub const POLL_INTERVAL_SECS: i64 = 5;
/// How much each `slow_down` raises the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_SECS: i64 = 5;
/// Device codes start with this (secret scanners find them).
pub const DEVICE_CODE_PREFIX: &str = "idp_dc_";
/// RFC 8628 §6.1: consonants only, no look-alikes.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code.
pub const USER_CODE_LEN: usize = 8;
/// Wrong user codes allowed per session and per source address...
pub const MAX_WRONG_CODES: i64 = 5;
/// ...within this long; entering codes is then refused for as long.
pub const WRONG_CODE_WINDOW: SignedDuration = SignedDuration::from_mins(10);
/// Fresh user codes drawn when one is (improbably) taken.
const USER_CODE_DRAWS: usize = 3;

/// What the device authorization endpoint returns (RFC 8628 §3.2); the
/// server adds the verification URIs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub device_code: String,
    /// As shown to people: `XXXX-XXXX`.
    pub user_code: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// What the client asked for, kept with the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct DeviceRequest {
    scopes: Vec<String>,
    resources: Vec<String>,
}

/// A pending request as the person deciding on it sees it.
#[derive(Clone, Debug)]
pub struct PendingDeviceRequest {
    /// As shown to people: `XXXX-XXXX`.
    pub user_code: String,
    pub client: Arc<Client>,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    /// Where the device's request came from.
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
}

/// The person's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceDecision {
    Approve,
    Deny,
}

/// A user code as typed, normalised for comparison: upper case, without
/// dashes and spaces; `None` unless 8 characters of the alphabet.
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 4 * USER_CODE_LEN {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid =
        code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// A normalised user code as shown: `XXXX-XXXX`.
pub fn display_user_code(code: &str) -> String {
    match (code.get(..USER_CODE_LEN / 2), code.get(USER_CODE_LEN / 2..)) {
        (Some(head), Some(tail)) => format!("{head}-{tail}"),
        _ => code.to_owned(),
    }
}

/// A fresh user code, uniformly drawn: bytes of 240 and above are
/// dropped so that every character is equally likely (240 = 12 × 20).
fn new_user_code() -> Result<String> {
    let mut code = String::with_capacity(USER_CODE_LEN);
    while code.len() < USER_CODE_LEN {
        for b in random_bytes::<16>()? {
            if b < 240 && code.len() < USER_CODE_LEN {
                code.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
            }
        }
    }
    Ok(code)
}

/// A short, non-secret reference to a request for the audit log: the
/// start of the device code's hash.
fn request_ref(device_code_hash: &str) -> &str {
    device_code_hash.get(..16).unwrap_or(device_code_hash)
}

fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| AppError::Internal(e.to_string()))
}

/// The throttle keys of wrong user codes entered in `session`.
fn wrong_code_keys(ctx: &Ctx, session: &StoredSession) -> Vec<String> {
    let mut keys = vec![format!("device:session:{}", session.id)];
    if let Some(ip) = &ctx.request.source_ip {
        keys.push(format!("device:source:{ip}"));
    }
    keys
}

impl App {
    /// RFC 8628 §3.1: a device authorization request from an authenticated
    /// (or public) client. Stores the request with where it came from, for
    /// the person who will approve it. Audited.
    pub async fn authorize_device(
        &self,
        ctx: &Ctx,
        client: &Client,
        params: &Params,
    ) -> OAuthResult<DeviceAuthorization> {
        params.check()?;
        if params
            .get("client_id")
            .is_some_and(|c| c != client.client_id)
        {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client",
            ));
        }
        if !client.allows(GrantType::DeviceCode) {
            return Err(unauthorized_client());
        }
        let scopes = self.check_scopes(client, params.get("scope"))?;
        let resources = self
            .check_resources(ctx, params.resources(), &scopes)
            .await?;
        let request = to_json(&DeviceRequest {
            scopes: scopes.clone(),
            resources: resources.clone(),
        })?;
        let (device_code, hash) = new_secret(DEVICE_CODE_PREFIX)?;
        let expires_at = ctx.now + DEVICE_CODE_LIFETIME;
        for _ in 0..USER_CODE_DRAWS {
            let stored = StoredDeviceCode {
                device_code_hash: hash.clone(),
                user_code: new_user_code()?,
                tenant_id: ctx.tenant,
                client_id: client.client_id.clone(),
                request: request.clone(),
                status: DeviceCodeStatus::Pending,
                grant: None,
                created_at: ctx.now,
                expires_at,
                interval_secs: POLL_INTERVAL_SECS,
                last_polled_at: None,
                source_ip: ctx.request.source_ip.clone(),
                user_agent: ctx.request.user_agent.clone(),
            };
            let mut tx = self.store().write().await?;
            match device_codes::insert(&mut tx, &stored).await {
                // Taken: the transaction is spoilt; draw again in a new one.
                Err(StoreError::Duplicate(_)) => continue,
                other => other?,
            }
            tx.commit(
                AuditEvent::new(
                    ctx,
                    "oauth.device_authorization",
                    Some(format!("client:{}", client.client_id)),
                )
                .with_details(json!({
                    "device_request": request_ref(&hash),
                    "scope": scopes.join(" "),
                    "audience": resources,
                    "expires_at": expires_at,
                })),
            )
            .await?;
            return Ok(DeviceAuthorization {
                device_code,
                user_code: display_user_code(&stored.user_code),
                expires_in: DEVICE_CODE_LIFETIME.as_secs(),
                interval: POLL_INTERVAL_SECS,
            });
        }
        Err(AppError::Internal("no free user code after several draws".into()).into())
    }

    /// RFC 8628 §3.4–3.5: the device polls with its device code. Pending
    /// requests answer `authorization_pending` (or `slow_down`), denied ones
    /// `access_denied`, expired ones `expired_token`; an approved request
    /// yields its tokens once, audited as `oauth.token`.
    pub async fn poll_device_code(
        &self,
        ctx: &Ctx,
        client: &Client,
        device_code: &str,
        dpop_jkt: Option<&str>,
    ) -> OAuthResult<TokenResponse> {
        if !client.allows(GrantType::DeviceCode) {
            return Err(unauthorized_client());
        }
        let stored = {
            let mut conn = self.store().read().await?;
            device_codes::by_hash(&mut conn, &token_hash(device_code)).await?
        }
        .filter(|d| d.tenant_id == ctx.tenant && d.client_id == client.client_id)
        .ok_or_else(|| OAuthError::invalid_grant("the device code is unknown"))?;
        match stored.status {
            DeviceCodeStatus::Issued => Err(OAuthError::invalid_grant(
                "the device code was already used",
            )),
            _ if ctx.now >= stored.expires_at => Err(OAuthError::new(
                ErrorCode::ExpiredToken,
                "the device code has expired; start again",
            )),
            DeviceCodeStatus::Denied => Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "the person denied the request",
            )),
            DeviceCodeStatus::Pending => Err(self.record_poll(ctx, &stored).await?),
            DeviceCodeStatus::Approved => {
                self.issue_device_tokens(ctx, client, &stored, dpop_jkt)
                    .await
            }
        }
    }

    /// Records a poll of a pending request and builds its answer:
    /// `authorization_pending`, or `slow_down` (raising the interval) when
    /// it came sooner than the interval after the previous one.
    async fn record_poll(&self, ctx: &Ctx, stored: &StoredDeviceCode) -> OAuthResult<OAuthError> {
        let too_fast = stored
            .last_polled_at
            .is_some_and(|last| ctx.now < last + SignedDuration::from_secs(stored.interval_secs));
        let interval = if too_fast {
            stored.interval_secs.saturating_add(SLOW_DOWN_SECS)
        } else {
            stored.interval_secs
        };
        let mut tx = self.store().write().await?;
        let recorded = device_codes::record_poll(
            &mut tx,
            &stored.device_code_hash,
            stored.last_polled_at,
            ctx.now,
            interval,
        )
        .await?;
        // Bookkeeping of the protocol, not a change anyone audits.
        tx.commit_all(Vec::new()).await?;
        // A poll that lost a race with another one came too soon as well.
        Ok(if too_fast || !recorded {
            OAuthError::new(
                ErrorCode::SlowDown,
                format!("polling too fast: wait {interval} seconds between requests"),
            )
        } else {
            OAuthError::new(
                ErrorCode::AuthorizationPending,
                "the person has not answered yet",
            )
        })
    }

    /// Issues the tokens of an approved request, once: access token,
    /// refresh token when the client may refresh, ID token with `openid`.
    async fn issue_device_tokens(
        &self,
        ctx: &Ctx,
        client: &Client,
        stored: &StoredDeviceCode,
        dpop_jkt: Option<&str>,
    ) -> OAuthResult<TokenResponse> {
        let grant = stored
            .grant
            .clone()
            .ok_or_else(|| AppError::Internal("an approved device request has no grant".into()))?;
        let mut grant: Grant = serde_json::from_value(grant)
            .map_err(|e| AppError::Internal(format!("corrupt device grant: {e}")))?;
        bind_dpop(&mut grant, dpop_jkt)?;
        let mut tx = self.store().write().await?;
        let person = self.grant_subject(&mut tx, ctx, &grant).await?;
        if !device_codes::mark_issued(&mut tx, &stored.device_code_hash, ctx.now).await? {
            return Err(OAuthError::invalid_grant(
                "the device code was already used",
            ));
        }
        let access = self
            .mint_access_token(ctx, client, &grant, person.as_ref(), Some(&mut tx))
            .await?;
        let mut response = TokenResponse::new(&access, &grant, ctx.now);
        let mut family = String::new();
        if client.allows(GrantType::RefreshToken) {
            family = new_jti();
            let expires_at =
                ctx.now + SignedDuration::from_secs(client.refresh_token_lifetime_secs);
            response.refresh_token =
                Some(issue_refresh(&mut tx, ctx, &grant, &family, &access, expires_at).await?);
        }
        if grant.has_scope("openid")
            && let Some(person) = &person
        {
            response.id_token =
                Some(self.mint_id_token(ctx, client, &grant, person, None, &access.token)?);
        }
        self.store_access_token(&mut tx, &access).await?;
        let mut event = issued_event(
            ctx,
            GrantType::DeviceCode.as_str(),
            client,
            &grant,
            &access,
            &family,
        );
        if let Some(details) = event.details.as_object_mut() {
            details.insert(
                "device_request".into(),
                request_ref(&stored.device_code_hash).into(),
            );
        }
        tx.commit(event).await?;
        Ok(response)
    }

    /// The pending request behind a user code the signed-in person typed,
    /// for the confirmation page; `None` for a wrong, used or expired code
    /// (counted and audited). Refused with [`AppError::TooManyAttempts`]
    /// after too many wrong codes.
    pub async fn pending_device_request(
        &self,
        ctx: &Ctx,
        session: &StoredSession,
        user_code: &str,
    ) -> Result<Option<PendingDeviceRequest>> {
        let keys = wrong_code_keys(ctx, session);
        self.device_code_gate(ctx, &keys).await?;
        let Some(code) = normalize_user_code(user_code) else {
            self.wrong_device_code(ctx, &keys, "malformed").await?;
            return Ok(None);
        };
        let found = {
            let mut conn = self.store().read().await?;
            device_codes::by_user_code(&mut conn, ctx.tenant, &code).await?
        }
        .filter(|d| d.status == DeviceCodeStatus::Pending && ctx.now < d.expires_at);
        let Some(stored) = found else {
            self.wrong_device_code(ctx, &keys, "unknown, used or expired")
                .await?;
            return Ok(None);
        };
        self.pending_view(ctx, &stored).await
    }

    /// The person's answer to the request behind `user_code`: approval
    /// stores the grant (the person, the session, how they signed in, the
    /// scopes asked for) for the device's next poll; denial ends it.
    /// Audited. `None` when the code is no longer pending (wrong codes are
    /// counted as on the code page).
    pub async fn decide_device_request(
        &self,
        ctx: &Ctx,
        session: &StoredSession,
        person: &Principal,
        user_code: &str,
        decision: DeviceDecision,
    ) -> Result<Option<PendingDeviceRequest>> {
        let keys = wrong_code_keys(ctx, session);
        self.device_code_gate(ctx, &keys).await?;
        let Some(code) = normalize_user_code(user_code) else {
            self.wrong_device_code(ctx, &keys, "malformed").await?;
            return Ok(None);
        };
        let mut tx = self.store().write().await?;
        let found = device_codes::by_user_code(&mut tx, ctx.tenant, &code)
            .await?
            .filter(|d| d.status == DeviceCodeStatus::Pending && ctx.now < d.expires_at);
        let Some(stored) = found else {
            drop(tx);
            self.wrong_device_code(ctx, &keys, "unknown, used or expired")
                .await?;
            return Ok(None);
        };
        let Some(view) = self.pending_view(ctx, &stored).await? else {
            return Ok(None);
        };
        let hash = &stored.device_code_hash;
        let (decided, action) = match decision {
            DeviceDecision::Approve => {
                let grant = Grant {
                    client_id: stored.client_id.clone(),
                    subject: Some(person.id),
                    session_id: Some(session.id.clone()),
                    scopes: view.scopes.clone(),
                    resources: view.resources.clone(),
                    auth: Some(AuthFacts {
                        auth_time: session.auth_time,
                        acr: session.acr.clone(),
                        amr: session.amr.clone(),
                    }),
                    nonce: None,
                    dpop_jkt: None,
                    actor: None,
                };
                let grant = to_json(&grant)?;
                (
                    device_codes::approve(&mut tx, hash, &grant, ctx.now).await?,
                    "oauth.device_approve",
                )
            }
            DeviceDecision::Deny => (
                device_codes::deny(&mut tx, hash, ctx.now).await?,
                "oauth.device_deny",
            ),
        };
        if !decided {
            // Answered or expired in the meantime (another tab).
            return Ok(None);
        }
        tx.commit(
            AuditEvent::new(ctx, action, Some(format!("client:{}", stored.client_id)))
                .with_details(json!({
                    "principal": format!("user:{}", person.id),
                    "session": session.id,
                    "device_request": request_ref(hash),
                    "scope": view.scopes.join(" "),
                    "device_source_ip": view.source_ip,
                })),
        )
        .await?;
        Ok(Some(view))
    }

    /// What the person sees of a pending request; `None` when its client
    /// is gone.
    async fn pending_view(
        &self,
        ctx: &Ctx,
        stored: &StoredDeviceCode,
    ) -> Result<Option<PendingDeviceRequest>> {
        let request: DeviceRequest = serde_json::from_value(stored.request.clone())
            .map_err(|e| AppError::Internal(format!("corrupt device request: {e}")))?;
        let Some(client) = self.cached_client(ctx.tenant, &stored.client_id).await? else {
            return Ok(None);
        };
        Ok(Some(PendingDeviceRequest {
            user_code: display_user_code(&stored.user_code),
            client,
            scopes: request.scopes,
            resources: request.resources,
            source_ip: stored.source_ip.clone(),
            user_agent: stored.user_agent.clone(),
            requested_at: stored.created_at,
            expires_at: stored.expires_at,
        }))
    }

    /// Refuses entering user codes while a key is blocked; the refusal is
    /// audited.
    async fn device_code_gate(&self, ctx: &Ctx, keys: &[String]) -> Result<()> {
        let names: Vec<&str> = keys.iter().map(String::as_str).collect();
        let blocked_until = {
            let mut conn = self.store().read().await?;
            credentials::throttles(&mut conn, &names).await?
        }
        .into_iter()
        .map(|t| t.blocked_until)
        .max()
        .filter(|until| *until > ctx.now);
        let Some(until) = blocked_until else {
            return Ok(());
        };
        let ms = until
            .as_millisecond()
            .saturating_sub(ctx.now.as_millisecond());
        let retry_after_secs = u64::try_from(ms.saturating_add(999) / 1000)
            .unwrap_or(1)
            .max(1);
        self.record(
            AuditEvent::new(ctx, "oauth.device_code_throttled", None)
                .failed()
                .with_details(json!({ "retry_after_secs": retry_after_secs })),
        )
        .await?;
        Err(AppError::TooManyAttempts { retry_after_secs })
    }

    /// Counts a wrong user code under every key, blocking a key that
    /// reached [`MAX_WRONG_CODES`], in the transaction of its audit event.
    async fn wrong_device_code(&self, ctx: &Ctx, keys: &[String], reason: &str) -> Result<()> {
        let mut tx = self.store().write().await?;
        let forget_before = ctx.now - WRONG_CODE_WINDOW;
        let mut most = 0;
        for key in keys {
            let failures = credentials::count_failure(&mut tx, key, ctx.now, forget_before).await?;
            if failures >= MAX_WRONG_CODES {
                credentials::block(&mut tx, key, ctx.now + WRONG_CODE_WINDOW).await?;
            }
            most = most.max(failures);
        }
        tx.commit(
            AuditEvent::new(ctx, "oauth.device_code_rejected", None)
                .failed()
                .with_details(json!({ "reason": reason, "wrong_codes": most })),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_consonants_shown_with_a_dash() {
        for _ in 0..200 {
            let code = new_user_code().unwrap();
            assert_eq!(code.len(), USER_CODE_LEN);
            assert!(
                code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)),
                "{code}"
            );
            assert_eq!(normalize_user_code(&display_user_code(&code)), Some(code));
        }
        assert_eq!(display_user_code("BCDFGHJK"), "BCDF-GHJK");
    }

    #[test]
    fn user_codes_compare_case_insensitively_without_the_dash() {
        assert_eq!(normalize_user_code("bcdf-ghjk"), Some("BCDFGHJK".into()));
        assert_eq!(normalize_user_code(" BCDF GHJK "), Some("BCDFGHJK".into()));
        assert_eq!(normalize_user_code("BCDFGHJK"), Some("BCDFGHJK".into()));
        // Vowels, digits, wrong lengths and oversized input are not codes.
        for bad in [
            "BCDF-GHJA",
            "BCDF-GHJ1",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "",
            &"B".repeat(100),
        ] {
            assert_eq!(normalize_user_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn audit_references_are_a_short_prefix_of_the_hash() {
        let hash = token_hash("idp_dc_x");
        assert_eq!(request_ref(&hash).len(), 16);
        assert!(hash.starts_with(request_ref(&hash)));
    }
}
