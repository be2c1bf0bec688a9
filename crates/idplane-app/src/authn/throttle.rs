//! Brute-force protection: exponential back-off, never a permanent lockout.
//!
//! Failures are counted in the store (so every node of a cluster sees them)
//! under several keys at once:
//!
//! - `account:{tenant}:{name_key}`: the account, by the name as typed, so
//!   unknown usernames are throttled exactly like real ones;
//! - `mfa:{tenant}:{principal}`: second factors (TOTP, recovery codes). A
//!   correct password clears the account key but not this one, so knowing
//!   the password does not buy unlimited guesses at the second factor;
//! - `source:{ip}`: the client address across every account (password
//!   spraying), with a larger allowance since many people may share one
//!   address.
//!
//! Under each key the first failures are free (5 per account, 5 per second
//! factor, 20 per source). From then on, after `f` failures every attempt
//! waits `2^(f - free)` seconds after the last failure, at most 15 minutes.
//! A success clears the account keys (never the source key). Counters
//! forget failures after 24 hours without one. A blocked attempt is refused
//! before any password hashing, audited as `auth.throttled`, and not
//! counted as a failure.
//!
//! Metrics: the server counts 401 and 429 responses per route; this module
//! records audit events only.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind, name_key};
use idplane_core::{Ctx, PrincipalId, TenantId, Timestamp};
use idplane_store::credentials;
use idplane_store::{Conn, WriteTx};
use jiff::SignedDuration;
use serde_json::json;

use crate::directory::principals::{load, target};
use crate::{App, AppError, Result};

/// Free failures per account before back-off starts.
pub const ACCOUNT_FREE_FAILURES: i64 = 5;
/// Free failures from one source address, across accounts.
pub const SOURCE_FREE_FAILURES: i64 = 20;
/// The longest wait.
pub const MAX_BLOCK: SignedDuration = SignedDuration::from_mins(15);
/// A counter without failures for this long starts again.
pub const FORGET_AFTER: SignedDuration = SignedDuration::from_hours(24);

/// The throttle key of the account named `name_key` in `tenant`.
pub fn account_key(tenant: TenantId, name_key: &str) -> String {
    format!("account:{tenant}:{name_key}")
}

/// The throttle key of second factors of `principal`.
pub fn second_factor_key(tenant: TenantId, principal: PrincipalId) -> String {
    format!("mfa:{tenant}:{principal}")
}

/// The throttle key of a client address.
pub fn source_key(ip: &str) -> String {
    format!("source:{ip}")
}

#[derive(Clone, Debug)]
struct Key {
    name: String,
    free: i64,
    /// Cleared by a success.
    account: bool,
}

/// The keys one kind of attempt counts under.
#[derive(Clone, Debug)]
pub(crate) struct Keys(Vec<Key>);

impl Keys {
    /// A password for the account named `name_key` (as typed).
    pub(crate) fn password(ctx: &Ctx, name_key: &str) -> Self {
        let mut keys = vec![Key {
            name: account_key(ctx.tenant, name_key),
            free: ACCOUNT_FREE_FAILURES,
            account: true,
        }];
        keys.extend(Self::source(ctx));
        Self(keys)
    }

    /// A second factor of `p`: counts against the account, the second
    /// factor and the source.
    pub(crate) fn second_factor(ctx: &Ctx, p: &Principal) -> Self {
        let mut keys = vec![
            Key {
                name: account_key(ctx.tenant, &name_key(&p.name)),
                free: ACCOUNT_FREE_FAILURES,
                account: true,
            },
            Key {
                name: second_factor_key(ctx.tenant, p.id),
                free: ACCOUNT_FREE_FAILURES,
                account: true,
            },
        ];
        keys.extend(Self::source(ctx));
        Self(keys)
    }

    /// Only the source address (an attempt naming no known account).
    pub(crate) fn source_only(ctx: &Ctx) -> Self {
        Self(Self::source(ctx).into_iter().collect())
    }

    fn source(ctx: &Ctx) -> Option<Key> {
        ctx.request.source_ip.as_deref().map(|ip| Key {
            name: source_key(ip),
            free: SOURCE_FREE_FAILURES,
            account: false,
        })
    }

    fn names(&self) -> Vec<&str> {
        self.0.iter().map(|k| k.name.as_str()).collect()
    }

    fn account_names(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|k| k.account)
            .map(|k| k.name.as_str())
            .collect()
    }
}

/// How long to wait after the `failures`-th failure when `free` are free.
fn back_off(failures: i64, free: i64) -> Option<SignedDuration> {
    let over = failures.checked_sub(free)?;
    if over < 0 {
        return None;
    }
    // 2^10 s is already past the cap.
    let secs = 1_i64 << over.min(10);
    Some(SignedDuration::from_secs(secs).min(MAX_BLOCK))
}

/// Refuses an attempt while any of `keys` is blocked, with the longest wait.
pub(crate) async fn check(conn: &mut impl Conn, ctx: &Ctx, keys: &Keys) -> Result<()> {
    let blocked_until = credentials::throttles(conn, &keys.names())
        .await?
        .into_iter()
        .map(|t| t.blocked_until)
        .max();
    match blocked_until {
        Some(until) if until > ctx.now => Err(AppError::TooManyAttempts {
            retry_after_secs: retry_after(ctx.now, until),
        }),
        _ => Ok(()),
    }
}

fn retry_after(now: Timestamp, until: Timestamp) -> u64 {
    let ms = until.as_millisecond().saturating_sub(now.as_millisecond());
    u64::try_from(ms.saturating_add(999) / 1000)
        .unwrap_or(0)
        .max(1)
}

/// Counts a failure under every key, inside the transaction that commits
/// the failure's audit event.
pub(crate) async fn record_failure(tx: &mut WriteTx, ctx: &Ctx, keys: &Keys) -> Result<()> {
    let forget_before = ctx.now - FORGET_AFTER;
    for key in &keys.0 {
        let failures = credentials::count_failure(tx, &key.name, ctx.now, forget_before).await?;
        if let Some(wait) = back_off(failures, key.free) {
            credentials::block(tx, &key.name, ctx.now + wait).await?;
        }
    }
    Ok(())
}

/// Clears the account keys after a success (the source key stays).
/// Whether a success has anything to clear (an account key has failures).
pub(crate) async fn has_failures(conn: &mut impl Conn, keys: &Keys) -> Result<bool> {
    Ok(!credentials::throttles(conn, &keys.account_names())
        .await?
        .is_empty())
}

pub(crate) async fn record_success(tx: &mut WriteTx, keys: &Keys) -> Result<()> {
    for key in keys.0.iter().filter(|k| k.account) {
        credentials::clear_throttle(tx, &key.name).await?;
    }
    Ok(())
}

impl App {
    /// [`check`], auditing a refusal as `auth.throttled`.
    pub(crate) async fn throttle_gate(
        &self,
        conn: &mut impl Conn,
        ctx: &Ctx,
        keys: &Keys,
        method: &str,
        user: Option<&Principal>,
    ) -> Result<()> {
        let refused = check(conn, ctx, keys).await;
        if let Err(AppError::TooManyAttempts { retry_after_secs }) = &refused {
            self.record(
                AuditEvent::new(ctx, "auth.throttled", user.map(target))
                    .with_details(json!({
                        "method": method,
                        "retry_after_secs": retry_after_secs,
                    }))
                    .failed(),
            )
            .await?;
        }
        refused
    }

    /// Forgets the failed attempts against a user's account (the source
    /// addresses stay throttled).
    pub async fn unlock(&self, ctx: &Ctx, user: PrincipalId) -> Result<()> {
        let mut tx = self.store().write().await?;
        let p = load(&mut tx, ctx, PrincipalKind::User, user).await?;
        let mut cleared = false;
        for key in [
            account_key(ctx.tenant, &name_key(&p.name)),
            second_factor_key(ctx.tenant, p.id),
        ] {
            cleared |= credentials::clear_throttle(&mut tx, &key).await?;
        }
        tx.commit(
            AuditEvent::new(ctx, "auth.unlock", Some(target(&p)))
                .with_details(json!({ "cleared": cleared })),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_the_first_non_free_failure_and_is_capped() {
        assert_eq!(back_off(4, 5), None);
        assert_eq!(back_off(5, 5), Some(SignedDuration::from_secs(1)));
        assert_eq!(back_off(6, 5), Some(SignedDuration::from_secs(2)));
        assert_eq!(back_off(13, 5), Some(SignedDuration::from_secs(256)));
        assert_eq!(back_off(15, 5), Some(MAX_BLOCK));
        assert_eq!(back_off(i64::MAX, 5), Some(MAX_BLOCK));
        assert_eq!(back_off(20, 20), Some(SignedDuration::from_secs(1)));
    }

    #[test]
    fn retry_after_rounds_up() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(retry_after(now, now + SignedDuration::from_millis(1)), 1);
        assert_eq!(retry_after(now, now + SignedDuration::from_millis(2001)), 3);
        assert_eq!(retry_after(now, now), 1);
    }
}
