//! The sign-in flow: a password, then a second factor when one is enrolled,
//! then a password change when the password is temporary; or a passkey
//! alone. Each step's state is a single-use ceremony, so a step cannot be
//! skipped or replayed, and a session exists only at the end.

use idplane_core::Ctx;
use idplane_core::audit::AuditEvent;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use super::Amr;
use super::policy::Level;
use super::sessions::NewSession;
use crate::{App, AppError, Result};

/// How long a person has for the next step.
const STEP_TTL: SignedDuration = SignedDuration::from_mins(5);
const SECOND_FACTOR: &str = "sign-in-second-factor";
const CHANGE_PASSWORD: &str = "sign-in-change-password";

/// Where the sign-in stands.
#[derive(Debug)]
pub enum SignInStep {
    /// Signed in.
    Done(Box<NewSession>),
    /// A second factor is needed; present `handle` with it. `factor` says
    /// which (an authenticator app, or a code just sent by email); `failed`
    /// says the previous code was wrong.
    SecondFactor {
        handle: String,
        factor: SecondFactor,
        failed: bool,
    },
    /// The password is temporary and must be changed; present `handle`.
    /// `refused` says why the previous new password was not accepted.
    ChangePassword {
        handle: String,
        refused: Option<String>,
    },
}

/// A second factor given at sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecondFactor {
    Totp,
    RecoveryCode,
    Email,
}

/// What the previous steps established.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    amr: Vec<Amr>,
    must_change: bool,
}

impl App {
    /// First step: username and password. `replaces` is the cookie of a
    /// session to end once the new one starts (step-up, re-login).
    pub async fn sign_in_with_password(
        &self,
        ctx: &Ctx,
        username: &str,
        password: &str,
        replaces: Option<&str>,
    ) -> Result<SignInStep> {
        let check = self.check_password(ctx, username, password).await?;
        let pending = Pending {
            amr: vec![Amr::Pwd],
            must_change: check.must_change,
        };
        let has_totp = self.has_totp(ctx, check.principal.id).await?;
        let refusal = match self.required_level(ctx, &check.principal).await? {
            Level::PhishingResistant => {
                Some("your role requires a passkey: sign in with your passkey")
            }
            Level::MultiFactor
                if !has_totp && self.passkey_count(ctx, check.principal.id).await? > 0 =>
            {
                Some("a second factor is required: sign in with your passkey")
            }
            // With no factor enrolled yet, the person signs in to enroll
            // one; the session's class shows it does not meet the policy.
            _ => None,
        };
        if let Some(reason) = refusal {
            let event = AuditEvent::new(
                ctx,
                "auth.policy",
                Some(format!("user:{}", check.principal.id)),
            )
            .failed()
            .with_details(serde_json::json!({"reason": reason}));
            self.record(event).await?;
            return Err(AppError::Forbidden(reason.to_owned()));
        }
        let factor = if has_totp {
            Some(SecondFactor::Totp)
        } else if check.principal.email.is_some() && self.auth_policy(ctx).await?.email_codes {
            self.send_email_code(ctx, &self.settings().mailer, check.principal.id)
                .await?;
            Some(SecondFactor::Email)
        } else {
            None
        };
        if let Some(factor) = factor {
            let handle = self
                .start_ceremony(
                    ctx,
                    SECOND_FACTOR,
                    Some(check.principal.id),
                    &pending,
                    STEP_TTL,
                )
                .await?;
            return Ok(SignInStep::SecondFactor {
                handle,
                factor,
                failed: false,
            });
        }
        self.after_factors(ctx, check.principal, pending, replaces)
            .await
    }

    /// Second step: a TOTP, email or recovery code. A wrong code gives a fresh
    /// handle to try again (the throttle bounds how often).
    pub async fn sign_in_second_factor(
        &self,
        ctx: &Ctx,
        handle: &str,
        factor: SecondFactor,
        code: &str,
        replaces: Option<&str>,
    ) -> Result<SignInStep> {
        let (principal, mut pending): (_, Pending) =
            self.finish_ceremony(ctx, SECOND_FACTOR, handle).await?;
        let principal = principal.ok_or(AppError::Unauthenticated)?;
        let verified = match factor {
            SecondFactor::Totp => self.verify_totp(ctx, principal, code).await,
            SecondFactor::RecoveryCode => self.use_recovery_code(ctx, principal, code).await,
            SecondFactor::Email => self.verify_email_code(ctx, principal, code).await,
        };
        match verified {
            Ok(()) => {}
            Err(AppError::Unauthenticated) => {
                let handle = self
                    .start_ceremony(ctx, SECOND_FACTOR, Some(principal), &pending, STEP_TTL)
                    .await?;
                return Ok(SignInStep::SecondFactor {
                    handle,
                    factor,
                    failed: true,
                });
            }
            Err(e) => return Err(e),
        }
        pending.amr.extend([Amr::Otp, Amr::Mfa]);
        let principal = self.active_user(ctx, principal).await?;
        self.after_factors(ctx, principal, pending, replaces).await
    }

    /// Last step when the password was temporary: set a new one.
    pub async fn sign_in_change_password(
        &self,
        ctx: &Ctx,
        handle: &str,
        new_password: &str,
        replaces: Option<&str>,
    ) -> Result<SignInStep> {
        let (principal, pending): (_, Pending) =
            self.finish_ceremony(ctx, CHANGE_PASSWORD, handle).await?;
        let principal = principal.ok_or(AppError::Unauthenticated)?;
        let as_user = Ctx {
            actor: idplane_core::Actor::User {
                principal_id: principal,
            },
            ..ctx.clone()
        };
        match self
            .set_password(&as_user, principal, new_password, false)
            .await
        {
            Ok(()) => {}
            // Let the person try another password without starting over.
            Err(AppError::Invalid(why)) => {
                let handle = self
                    .start_ceremony(ctx, CHANGE_PASSWORD, Some(principal), &pending, STEP_TTL)
                    .await?;
                return Ok(SignInStep::ChangePassword {
                    handle,
                    refused: Some(why.message),
                });
            }
            Err(e) => return Err(e),
        }
        let principal = self.active_user(ctx, principal).await?;
        let session = self
            .create_session(ctx, &principal, &pending.amr, replaces)
            .await?;
        Ok(SignInStep::Done(Box::new(session)))
    }

    /// Sign-in with a passkey alone (discoverable credential, user
    /// verification required): phishing-resistant.
    pub async fn sign_in_with_passkey(
        &self,
        ctx: &Ctx,
        handle: &str,
        response: serde_json::Value,
        replaces: Option<&str>,
    ) -> Result<SignInStep> {
        let signed_in = self.finish_passkey_sign_in(ctx, handle, response).await?;
        let session = self
            .create_session(ctx, &signed_in.principal, &signed_in.amr, replaces)
            .await?;
        Ok(SignInStep::Done(Box::new(session)))
    }

    async fn after_factors(
        &self,
        ctx: &Ctx,
        principal: idplane_core::directory::Principal,
        pending: Pending,
        replaces: Option<&str>,
    ) -> Result<SignInStep> {
        if pending.must_change {
            let handle = self
                .start_ceremony(ctx, CHANGE_PASSWORD, Some(principal.id), &pending, STEP_TTL)
                .await?;
            return Ok(SignInStep::ChangePassword {
                handle,
                refused: None,
            });
        }
        let session = self
            .create_session(ctx, &principal, &pending.amr, replaces)
            .await?;
        Ok(SignInStep::Done(Box::new(session)))
    }

    /// The user, if still active (between steps they may have been suspended).
    async fn active_user(
        &self,
        ctx: &Ctx,
        id: idplane_core::PrincipalId,
    ) -> Result<idplane_core::directory::Principal> {
        let mut conn = self.store().read().await?;
        idplane_store::principals::by_id(&mut conn, ctx.tenant, id)
            .await?
            .filter(|p| p.is_active_at(ctx.now))
            .ok_or(AppError::Unauthenticated)
    }
}
