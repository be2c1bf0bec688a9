//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30 s
//! steps, one step of clock skew either way), from any authenticator app.
//!
//! - The 160-bit secret is sealed under the root key, bound to the
//!   enrollment id (`totp:{id}`); every enrollment has a new id and a new
//!   secret, so codes of an earlier enrollment never verify.
//! - A code is accepted once: the newest accepted time step is stored and no
//!   step up to it is accepted again (RFC 6238 §5.2).
//! - Enrollment takes two steps: [`App::begin_totp`] shows the secret,
//!   [`App::confirm_totp`] proves the app has it. Beginning again replaces
//!   an enrollment still waiting for confirmation, but a confirmed TOTP is
//!   never replaced behind the user's back: it must be removed first
//!   ([`App::remove_totp`]), a deliberate step the caller can guard with
//!   re-authentication.
//! - Wrong codes at sign-in are audited and throttled (see `throttle`).

use std::fmt::Write as _;

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind};
use idplane_core::{Ctx, PrincipalId, ValidationError};
use idplane_store::credentials::{self, TotpCredential};
use idplane_store::principals;
use qrcodegen::{QrCode, QrCodeEcc};
use serde_json::json;
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

use super::recovery;
use super::throttle::{self, Keys};
use crate::directory::principals::{load, target};
use crate::keyring::random_bytes;
use crate::{App, AppError, Result};

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "idplane";
/// Seconds per time step.
pub const STEP_SECS: i64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Steps of clock skew accepted either way.
pub const SKEW_STEPS: i64 = 1;
/// Bytes of secret (160 bits, as RFC 4226 recommends).
const SECRET_LEN: usize = 20;

/// What the user needs to add the account to an authenticator app. Shown
/// once; the secret is never shown again.
#[derive(Clone)]
pub struct TotpEnrollment {
    /// `otpauth://totp/idplane:alice?secret=...&issuer=idplane`
    pub otpauth_uri: String,
    /// The secret, for typing in by hand.
    pub secret_base32: String,
    /// The URI as a QR code, a standalone SVG document.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrollment { .. }")
    }
}

/// A TOTP generator for `secret`, labelled for `account`.
fn generator(secret: &[u8], account: &str) -> Result<Totp> {
    // The label separator may not appear in the account name.
    let account = account.replace(':', "_");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECS.unsigned_abs())
        // Skew is applied here, one step at a time, to know which step matched.
        .with_skew(0)
        .with_secret(secret.to_vec())
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|e| AppError::Internal(format!("totp: {e}")))
}

/// The time step of `ctx.now`.
fn current_step(ctx: &Ctx) -> i64 {
    ctx.now.as_second().div_euclid(STEP_SECS)
}

/// The steps within the skew window whose code is `code`.
fn matching_steps(totp: &Totp, code: &str, now_step: i64) -> Vec<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (now_step - SKEW_STEPS..=now_step + SKEW_STEPS)
        .filter(|step| {
            // Every candidate is compared (in constant time, by totp-rs).
            u64::try_from(step * STEP_SECS).is_ok_and(|t| totp.check(&code, t).is_some())
        })
        .collect()
}

/// Renders `text` as a QR code (error correction M, quiet zone of 4
/// modules) in an SVG document: one path of unit squares.
pub fn qr_svg(text: &str) -> Result<String> {
    const BORDER: i32 = 4;
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|e| AppError::Internal(format!("QR code: {e}")))?;
    let size = qr.size();
    let dim = size + 2 * BORDER;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + BORDER, y + BORDER);
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 {dim} {dim}\" \
         stroke=\"none\" shape-rendering=\"crispEdges\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\
         <path d=\"{path}\" fill=\"#000000\"/></svg>"
    ))
}

fn seal_context(enrollment: &str) -> String {
    format!("totp:{enrollment}")
}

impl App {
    /// Starts a TOTP enrollment: a new secret, shown once. Replaces an
    /// enrollment still waiting for confirmation; refused while a confirmed
    /// one exists (remove it first).
    pub async fn begin_totp(&self, ctx: &Ctx, user: PrincipalId) -> Result<TotpEnrollment> {
        let mut tx = self.store().write().await?;
        let p = load(&mut tx, ctx, PrincipalKind::User, user).await?;
        if credentials::totp(&mut tx, user)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some())
        {
            return Err(AppError::Conflict(
                "an authenticator app is already set up; remove it before setting up another"
                    .into(),
            ));
        }
        let secret = Zeroizing::new(random_bytes::<SECRET_LEN>()?);
        let enrollment = uuid::Uuid::now_v7().to_string();
        let sealed_secret = self
            .keyring()
            .seal(&seal_context(&enrollment), secret.as_slice())?;
        let totp = generator(secret.as_slice(), &p.name)?;
        let otpauth_uri = totp
            .to_url()
            .map_err(|e| AppError::Internal(format!("totp: {e}")))?;
        let shown = TotpEnrollment {
            qr_svg: qr_svg(&otpauth_uri)?,
            secret_base32: totp.secret().to_base32(),
            otpauth_uri,
        };
        credentials::put_totp(
            &mut tx,
            &TotpCredential {
                principal_id: user,
                tenant_id: ctx.tenant,
                id: enrollment.clone(),
                sealed_secret,
                confirmed_at: None,
                last_used_step: None,
                created_at: ctx.now,
            },
        )
        .await?;
        tx.commit(
            AuditEvent::new(ctx, "totp.begin", Some(target(&p)))
                .with_details(json!({ "enrollment": enrollment })),
        )
        .await?;
        Ok(shown)
    }

    /// Confirms the enrollment with a current code. Returns fresh recovery
    /// codes (to show once) when the user had no unused ones.
    pub async fn confirm_totp(
        &self,
        ctx: &Ctx,
        user: PrincipalId,
        code: &str,
    ) -> Result<Option<Vec<String>>> {
        let mut tx = self.store().write().await?;
        let p = load(&mut tx, ctx, PrincipalKind::User, user).await?;
        let pending = credentials::totp(&mut tx, user)
            .await?
            .filter(|t| t.confirmed_at.is_none())
            .ok_or_else(|| {
                AppError::Conflict("no authenticator app set-up is waiting for a code".into())
            })?;
        let totp = self.open_totp(&pending, &p)?;
        let Some(&step) = matching_steps(&totp, code, current_step(ctx)).last() else {
            return Err(ValidationError::new(
                "code",
                "does not match; check that the device's clock is right and enter the current code",
            )
            .into());
        };
        if !credentials::confirm_totp(&mut tx, user, &pending.id, ctx.now, step).await? {
            return Err(AppError::Conflict(
                "the set-up changed meanwhile; start again".into(),
            ));
        }
        let mut events = vec![
            AuditEvent::new(ctx, "totp.confirm", Some(target(&p)))
                .with_details(json!({ "enrollment": pending.id })),
        ];
        let codes = if credentials::recovery_codes_left(&mut tx, user).await? == 0 {
            let (codes, event) = recovery::stage_codes(&mut tx, ctx, &p).await?;
            events.push(event);
            Some(codes)
        } else {
            None
        };
        tx.commit_all(events).await?;
        Ok(codes)
    }

    /// Verifies a TOTP code of the user's confirmed enrollment (a second
    /// factor). Any failure (no TOTP, wrong or replayed code, user not
    /// active) is [`AppError::Unauthenticated`], audited as `auth.totp` and
    /// counted by the throttle.
    pub async fn verify_totp(&self, ctx: &Ctx, user: PrincipalId, code: &str) -> Result<()> {
        let mut conn = self.store().read().await?;
        let p = principals::by_id(&mut conn, ctx.tenant, user)
            .await?
            .filter(|p| p.kind == PrincipalKind::User);
        let Some(p) = p else {
            drop(conn);
            return self
                .second_factor_failed(ctx, "auth.totp", None, "unknown_user")
                .await;
        };
        let keys = Keys::second_factor(ctx, &p);
        self.throttle_gate(&mut conn, ctx, &keys, "totp", Some(&p))
            .await?;
        let stored = credentials::totp(&mut conn, user)
            .await?
            .filter(|t| t.confirmed_at.is_some());
        drop(conn);
        let Some(stored) = stored else {
            return self
                .second_factor_failed(ctx, "auth.totp", Some((&p, &keys)), "no_totp")
                .await;
        };
        let totp = self.open_totp(&stored, &p)?;
        let steps = matching_steps(&totp, code, current_step(ctx));
        let last_used = stored.last_used_step.unwrap_or(i64::MIN);
        let fresh = steps.iter().copied().filter(|s| *s > last_used).max();
        let reason = match fresh {
            None if steps.is_empty() => Some("wrong_code"),
            None => Some("replayed_code"),
            Some(_) if !p.is_active_at(ctx.now) => Some("inactive"),
            Some(_) => None,
        };
        if let (Some(step), None) = (fresh, reason) {
            let mut tx = self.store().write().await?;
            // Of two concurrent uses of one code, only one passes here.
            if credentials::use_totp_step(&mut tx, user, &stored.id, step).await? {
                throttle::record_success(&mut tx, &keys).await?;
                tx.commit(AuditEvent::new(ctx, "auth.totp", Some(target(&p))))
                    .await?;
                return Ok(());
            }
            drop(tx);
            return self
                .second_factor_failed(ctx, "auth.totp", Some((&p, &keys)), "replayed_code")
                .await;
        }
        self.second_factor_failed(
            ctx,
            "auth.totp",
            Some((&p, &keys)),
            reason.unwrap_or("wrong_code"),
        )
        .await
    }

    /// Removes the user's TOTP (confirmed or waiting for confirmation).
    pub async fn remove_totp(&self, ctx: &Ctx, user: PrincipalId) -> Result<()> {
        let mut tx = self.store().write().await?;
        let p = load(&mut tx, ctx, PrincipalKind::User, user).await?;
        if !credentials::delete_totp(&mut tx, user).await? {
            return Err(AppError::NotFound(format!(
                "authenticator app of user `{}`",
                p.name
            )));
        }
        tx.commit(AuditEvent::new(ctx, "totp.remove", Some(target(&p))))
            .await?;
        Ok(())
    }

    /// Whether the user has a confirmed TOTP.
    pub async fn has_totp(&self, ctx: &Ctx, user: PrincipalId) -> Result<bool> {
        let mut conn = self.store().read().await?;
        load(&mut conn, ctx, PrincipalKind::User, user).await?;
        Ok(credentials::totp(&mut conn, user)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some()))
    }

    fn open_totp(&self, stored: &TotpCredential, p: &Principal) -> Result<Totp> {
        let secret = Zeroizing::new(
            self.keyring()
                .open(&seal_context(&stored.id), &stored.sealed_secret)?,
        );
        generator(&secret, &p.name)
    }

    /// Audits and counts a failed second factor; always
    /// [`AppError::Unauthenticated`].
    pub(crate) async fn second_factor_failed(
        &self,
        ctx: &Ctx,
        action: &str,
        user: Option<(&Principal, &Keys)>,
        reason: &str,
    ) -> Result<()> {
        let source_only = Keys::source_only(ctx);
        let keys = user.map_or(&source_only, |(_, keys)| keys);
        let mut tx = self.store().write().await?;
        throttle::record_failure(&mut tx, ctx, keys).await?;
        tx.commit(
            AuditEvent::new(ctx, action, user.map(|(p, _)| target(p)))
                .with_details(json!({ "reason": reason }))
                .failed(),
        )
        .await?;
        Err(AppError::Unauthenticated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_have_a_quiet_zone() {
        let svg =
            qr_svg("otpauth://totp/idplane:alice?secret=JBSWY3DPEHPK3PXP&issuer=idplane").unwrap();
        assert!(svg.starts_with("<svg "));
        assert!(svg.ends_with("</svg>"));
        // Version 4 or so: a size of 33 modules plus 2 × 4.
        let qr = QrCode::encode_text(
            "otpauth://totp/idplane:alice?secret=JBSWY3DPEHPK3PXP&issuer=idplane",
            QrCodeEcc::Medium,
        )
        .unwrap();
        let dim = qr.size() + 8;
        assert!(svg.contains(&format!("viewBox=\"0 0 {dim} {dim}\"")));
        // The top-left finder pattern starts at the quiet zone's edge.
        assert!(svg.contains("M4,4h1v1h-1z"));
        assert!(!svg.contains("M3,"));
    }

    #[test]
    fn our_generator_gives_the_rfc_6238_codes_in_six_digits() {
        // RFC 6238 appendix B (SHA-1): 94287082 at T = 59, 07081804 at
        // T = 1111111109; six digits are the last six.
        let totp = generator(b"12345678901234567890", "rfc").unwrap();
        assert_eq!(totp.generate(59).to_string(), "287082");
        assert_eq!(totp.generate(1_111_111_109).to_string(), "081804");
        assert_eq!(matching_steps(&totp, "287082", 1), vec![1]);
        assert_eq!(matching_steps(&totp, "287082", 2), vec![1]);
        assert!(matching_steps(&totp, "287082", 3).is_empty());
        assert!(matching_steps(&totp, "28708", 1).is_empty());
    }

    #[test]
    fn colons_in_names_do_not_break_the_label() {
        let totp = generator(&[7; SECRET_LEN], "a:b").unwrap();
        let url = totp.to_url().unwrap();
        assert!(url.starts_with("otpauth://totp/idplane:a_b?"), "{url}");
        assert!(url.contains("issuer=idplane"));
    }
}
