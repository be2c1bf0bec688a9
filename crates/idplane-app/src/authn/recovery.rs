//! Recovery codes: ten single-use codes for when the authenticator is lost,
//! and the administrator's reset of every second factor.
//!
//! A code is 10 characters from an alphabet without look-alikes (no 0/o,
//! 1/l/i), about 49 bits, shown as `xxxxx-xxxxx`. Input is forgiving: case,
//! spaces and dashes are ignored. Only SHA-256 of the normalised code,
//! prefixed with the user's id (so one precomputation cannot attack every
//! user at once), is stored; the lookup is by that hash, so its timing says
//! nothing about the code. Wrong codes are audited and throttled like TOTP.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind};
use idplane_core::{Ctx, PrincipalId};
use idplane_store::{WriteTx, credentials, principals};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::throttle::Keys;
use crate::directory::principals::{load, target};
use crate::keyring::random_bytes;
use crate::{App, AppError, Result};

/// Codes per set.
pub const CODES: usize = 10;
/// Characters per code.
const CODE_LEN: usize = 10;
/// Lowercase letters and digits without 0, 1, i, l, o.
const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// A new random code, grouped for reading (`xxxxx-xxxxx`).
fn new_code() -> Result<String> {
    let mut chars = Vec::with_capacity(CODE_LEN);
    // Rejection sampling: only bytes below the largest multiple of the
    // alphabet's size, so every character is equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    while chars.len() < CODE_LEN {
        for byte in random_bytes::<32>()? {
            if usize::from(byte) < limit && chars.len() < CODE_LEN {
                chars.push(ALPHABET[usize::from(byte) % ALPHABET.len()]);
            }
        }
    }
    let (a, b) = chars.split_at(CODE_LEN / 2);
    Ok(format!(
        "{}-{}",
        String::from_utf8_lossy(a),
        String::from_utf8_lossy(b)
    ))
}

/// The canonical form of a typed code: no spaces or dashes, lowercase.
/// `None` when it cannot be a code.
fn normalize(code: &str) -> Option<String> {
    let code: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The stored form of a normalised code of `principal`.
fn code_hash(principal: PrincipalId, normalized: &str) -> String {
    hex::encode(Sha256::digest(
        format!("{principal}:{normalized}").as_bytes(),
    ))
}

/// Replaces the recovery codes of `p` inside `tx`; returns the codes to
/// show once and the audit event to commit.
pub(crate) async fn stage_codes(
    tx: &mut WriteTx,
    ctx: &Ctx,
    p: &Principal,
) -> Result<(Vec<String>, AuditEvent)> {
    let codes = (0..CODES).map(|_| new_code()).collect::<Result<Vec<_>>>()?;
    let hashes: Vec<String> = codes
        .iter()
        .filter_map(|c| normalize(c))
        .map(|c| code_hash(p.id, &c))
        .collect();
    if hashes.len() != CODES {
        return Err(AppError::Internal("recovery code generation".into()));
    }
    credentials::replace_recovery_codes(tx, p.id, &hashes, ctx.now).await?;
    let event = AuditEvent::new(ctx, "recovery.regenerate", Some(target(p)))
        .with_details(json!({ "count": CODES }));
    Ok((codes, event))
}

impl App {
    /// Replaces the user's recovery codes with ten new ones, returned to be
    /// shown once.
    pub async fn regenerate_recovery_codes(
        &self,
        ctx: &Ctx,
        user: PrincipalId,
    ) -> Result<Vec<String>> {
        let mut tx = self.store().write().await?;
        let p = load(&mut tx, ctx, PrincipalKind::User, user).await?;
        let (codes, event) = stage_codes(&mut tx, ctx, &p).await?;
        tx.commit(event).await?;
        Ok(codes)
    }

    /// Spends one recovery code as a second factor. Any failure (unknown,
    /// used or malformed code, user not active) is
    /// [`AppError::Unauthenticated`], audited as `auth.recovery` and
    /// counted by the throttle.
    pub async fn use_recovery_code(&self, ctx: &Ctx, user: PrincipalId, code: &str) -> Result<()> {
        let mut conn = self.store().read().await?;
        let p = principals::by_id(&mut conn, ctx.tenant, user)
            .await?
            .filter(|p| p.kind == PrincipalKind::User);
        let Some(p) = p else {
            drop(conn);
            return self
                .second_factor_failed(ctx, "auth.recovery", None, "unknown_user")
                .await;
        };
        let keys = Keys::second_factor(ctx, &p);
        self.throttle_gate(&mut conn, ctx, &keys, "recovery_code", Some(&p))
            .await?;
        drop(conn);
        let failed =
            |reason| self.second_factor_failed(ctx, "auth.recovery", Some((&p, &keys)), reason);
        let Some(code) = normalize(code) else {
            return failed("wrong_code").await;
        };
        if !p.is_active_at(ctx.now) {
            return failed("inactive").await;
        }
        let mut tx = self.store().write().await?;
        if !credentials::use_recovery_code(&mut tx, user, &code_hash(user, &code), ctx.now).await? {
            drop(tx);
            return failed("wrong_code").await;
        }
        let left = credentials::recovery_codes_left(&mut tx, user).await?;
        super::throttle::record_success(&mut tx, &keys).await?;
        tx.commit(
            AuditEvent::new(ctx, "auth.recovery", Some(target(&p)))
                .with_details(json!({ "left": left })),
        )
        .await?;
        Ok(())
    }

    /// How many unused recovery codes the user has.
    pub async fn recovery_codes_left(&self, ctx: &Ctx, user: PrincipalId) -> Result<usize> {
        let mut conn = self.store().read().await?;
        load(&mut conn, ctx, PrincipalKind::User, user).await?;
        let left = credentials::recovery_codes_left(&mut conn, user).await?;
        Ok(usize::try_from(left).unwrap_or(0))
    }

    /// An administrator's reset of every second factor of a user: TOTP,
    /// recovery codes, an outstanding email code and passkeys. The password
    /// stays. The user can then sign in with the password alone and enroll
    /// again.
    pub async fn reset_factors(&self, ctx: &Ctx, user: PrincipalId) -> Result<()> {
        let mut tx = self.store().write().await?;
        let p = load(&mut tx, ctx, PrincipalKind::User, user).await?;
        let totp = credentials::delete_totp(&mut tx, user).await?;
        let recovery_codes = credentials::delete_recovery_codes(&mut tx, user).await?;
        let email_code = credentials::delete_email_code(&mut tx, user).await?;
        let passkeys = credentials::delete_passkeys(&mut tx, user).await?;
        tx.commit(
            AuditEvent::new(ctx, "auth.factors.reset", Some(target(&p))).with_details(json!({
                "totp": totp,
                "recovery_codes": recovery_codes,
                "email_code": email_code,
                "passkeys": passkeys,
            })),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_grouped_unambiguous_and_normalise() {
        let code = new_code().unwrap();
        assert_eq!(code.len(), CODE_LEN + 1);
        assert_eq!(code.as_bytes()[5], b'-');
        let plain = normalize(&code).unwrap();
        assert_eq!(normalize(&code.to_uppercase()), Some(plain.clone()));
        assert_eq!(normalize(&format!(" {} ", plain)), Some(plain.clone()));
        assert!(normalize("0000000000").is_none());
        assert!(normalize("abc").is_none());
        assert_ne!(new_code().unwrap(), code);
    }

    #[test]
    fn hashes_differ_per_user() {
        let a = PrincipalId::generate();
        let b = PrincipalId::generate();
        assert_ne!(code_hash(a, "abcdefghjk"), code_hash(b, "abcdefghjk"));
    }
}
