//! Authentication: passwords the NIST way, TOTP and recovery codes,
//! passkeys, sessions, brute-force protection, and the sign-in flow that
//! combines them.

pub mod ceremony;
pub mod email;
mod hash_workers;
pub mod login;
pub mod passkeys;
pub mod password;
pub mod policy;
pub mod recovery;
pub mod sessions;
pub mod throttle;
pub mod totp;

use serde::{Deserialize, Serialize};

/// Authentication method references (RFC 8176) recorded in a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Amr {
    /// A password.
    Pwd,
    /// A one-time code (TOTP, email code, recovery code).
    Otp,
    /// A hardware-bound key (a device-bound passkey or security key).
    Hwk,
    /// A software-bound key (a synced passkey).
    Swk,
    /// Biometric or PIN user verification on the authenticator.
    User,
    /// More than one factor.
    Mfa,
}

impl Amr {
    /// The RFC 8176 value.
    pub fn as_str(self) -> &'static str {
        match self {
            Amr::Pwd => "pwd",
            Amr::Otp => "otp",
            Amr::Hwk => "hwk",
            Amr::Swk => "swk",
            Amr::User => "user",
            Amr::Mfa => "mfa",
        }
    }
}

impl crate::App {
    /// Housekeeping: drops expired ceremonies, sign-in counters idle for a
    /// day and expired OAuth grant state, and reloads revoked token ids. Correctness never depends on it (both expire on read); it only
    /// keeps the tables small. Returns how many rows went.
    pub async fn purge_expired(&self) -> crate::Result<u64> {
        let now = self.clock().now();
        let ceremonies = idplane_store::ceremonies::purge_expired(self.store(), now).await?
            + idplane_store::seen_jtis::purge_expired(self.store(), now).await?;
        let tenant = self.default_tenant_id().await?;
        let ctx = self.ctx(tenant, idplane_core::Actor::System, Default::default());
        let mut tx = self.store().write().await?;
        let counters = idplane_store::credentials::purge_throttles(
            &mut tx,
            now - jiff::SignedDuration::from_hours(24),
        )
        .await?;
        let grants = idplane_store::grants::purge_expired(&mut tx, now).await?;
        if counters + grants > 0 {
            let event = idplane_core::audit::AuditEvent::new(&ctx, "housekeeping.purge", None)
                .with_details(
                    serde_json::json!({"throttle_counters": counters, "oauth_grants": grants}),
                );
            tx.commit(event).await?;
        }
        // Revocations made on other nodes reach this one's memory.
        self.reload_revoked_tokens().await?;
        Ok(ceremonies + counters + grants)
    }
}
