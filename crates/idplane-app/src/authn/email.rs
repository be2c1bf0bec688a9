//! Email one-time codes: a second factor for tenants that enable them.
//!
//! - A code is 6 digits from the CSPRNG (uniform: rejection sampling), valid
//!   for 10 minutes. Only SHA-256 of `{principal}:{code}` is stored, so the
//!   table reveals no code and one precomputation cannot serve every user.
//! - One live code per user: a new send replaces the old one. Sends are
//!   throttled to one per 30 s per user ([`AppError::TooManyAttempts`]).
//! - A code works once (deleted on success) and dies after 5 wrong guesses;
//!   every failure is audited as `auth.email_code` with its reason and
//!   counted by the sign-in throttle like TOTP.
//! - Mail goes through a [`Mailer`]: [`Mailer::Outbox`] (dev mode, tests)
//!   writes it to the `mail_outbox` table, in the transaction that stores
//!   the code and commits `auth.email_code.sent`, never to the network;
//!   [`Mailer::Smtp`] sends it over TLS after that commit, and withdraws the
//!   code again (audited as a failed `auth.email_code.sent`) when delivery
//!   fails. No audit event ever holds a code.

use std::time::Duration;

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind};
use idplane_core::{Ctx, PrincipalId, Timestamp, ValidationError};
use idplane_store::credentials::{self, EmailCode};
use idplane_store::{WriteTx, mail, principals};
use jiff::SignedDuration;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub use idplane_store::mail::OutboxMail;

use super::throttle::{self, Keys};
use crate::directory::principals::{load, target};
use crate::keyring::random_bytes;
use crate::{App, AppError, Result};

/// Digits per code.
pub const DIGITS: usize = 6;
/// How long a code is valid.
pub const CODE_TTL: SignedDuration = SignedDuration::from_mins(10);
/// The shortest time between two sends to one user.
pub const RESEND_AFTER: SignedDuration = SignedDuration::from_secs(30);
/// Wrong guesses after which a code is void.
pub const MAX_ATTEMPTS: i64 = 5;
/// The subject of the mail.
pub const SUBJECT: &str = "Your idplane sign-in code";
/// The most mails [`App::outbox`] returns.
pub const OUTBOX_MAX: u32 = 1000;
/// How long an SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// How mail leaves idplane. Chosen once per process (from the server's
/// configuration) and passed to each call that sends mail.
#[derive(Clone, Debug)]
pub enum Mailer {
    /// Dev mode and tests: mail is written to the outbox table, readable
    /// with [`App::outbox`], and never sent.
    Outbox,
    /// Mail is sent to an SMTP relay.
    Smtp(SmtpSettings),
}

/// An SMTP relay. The connection is always encrypted (rustls, the system's
/// root certificates): STARTTLS (usually port 587) or TLS from the first
/// byte (usually port 465).
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// Authenticate with `username` and `password` (both needed).
    pub username: Option<String>,
    /// Never printed: `Debug` shows `<redacted>`.
    pub password: Option<String>,
    /// The sender, e.g. `idplane <no-reply@example.com>`.
    pub from: String,
    /// `true`: plain connection upgraded with STARTTLS (required, never
    /// skipped); `false`: implicit TLS (SMTPS).
    pub starttls: bool,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("starttls", &self.starttls)
            .finish()
    }
}

impl SmtpSettings {
    /// Sends one plain-text mail. Failures are logged here and returned as
    /// [`AppError::Internal`] (whose message the server logs, never shows).
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<()> {
        self.try_send(to, subject, body).await.map_err(|reason| {
            tracing::warn!(
                host = %self.host,
                port = self.port,
                error = %reason,
                "sending mail over SMTP failed"
            );
            AppError::Internal(format!(
                "sending mail over SMTP to {}:{} failed: {reason}",
                self.host, self.port
            ))
        })
    }

    async fn try_send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        use lettre::message::header::ContentType;
        use lettre::message::{Mailbox, Message};
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| format!("the sender address `{}` is invalid: {e}", self.from))?;
        let to: Mailbox = to
            .parse()
            .map_err(|e| format!("the recipient address is invalid: {e}"))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| format!("cannot build the message: {e}"))?;
        let builder = if self.starttls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.host)
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&self.host)
        }
        .map_err(|e| format!("cannot set up TLS for `{}`: {e}", self.host))?
        .port(self.port)
        .timeout(Some(SMTP_TIMEOUT));
        let builder = match (&self.username, &self.password) {
            (Some(user), Some(password)) => {
                builder.credentials(Credentials::new(user.clone(), password.clone()))
            }
            (None, None) => builder,
            _ => return Err("set both the SMTP username and password, or neither".into()),
        };
        builder
            .build()
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// A new code: `DIGITS` uniformly random decimal digits.
fn new_code() -> Result<Zeroizing<String>> {
    const SPACE: u32 = 1_000_000;
    // The largest multiple of SPACE that fits in a u32; values at or above
    // it are drawn again, so every code is equally likely.
    const LIMIT: u32 = u32::MAX - u32::MAX % SPACE;
    loop {
        let n = u32::from_le_bytes(random_bytes::<4>()?);
        if n < LIMIT {
            return Ok(Zeroizing::new(format!("{:06}", n % SPACE)));
        }
    }
}

/// The canonical form of a typed code (spaces and dashes ignored); `None`
/// when it cannot be a code.
fn normalize(code: &str) -> Option<String> {
    let code: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// The stored form of `code` of `principal`.
fn code_hash(principal: PrincipalId, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{principal}:{code}").as_bytes()))
}

fn body(code: &str) -> String {
    format!(
        "Your idplane sign-in code is {code}\n\n\
         It expires in {} minutes and works once. If you did not just try to \
         sign in, someone else knows your password: change it.\n",
        CODE_TTL.as_mins()
    )
}

/// When the code was sent (its expiry less its lifetime).
fn sent_at(code: &EmailCode) -> Timestamp {
    code.expires_at - CODE_TTL
}

fn retry_after_secs(now: Timestamp, at: Timestamp) -> u64 {
    let ms = at.as_millisecond().saturating_sub(now.as_millisecond());
    u64::try_from(ms.saturating_add(999) / 1000)
        .unwrap_or(0)
        .max(1)
}

impl App {
    /// Sends the user a new sign-in code by email, replacing any earlier
    /// one. The caller checks that the tenant enables email codes.
    ///
    /// Errors: [`AppError::NotFound`] (no such user),
    /// [`AppError::Forbidden`] (the user is not active),
    /// [`AppError::Invalid`] on `email` (the user has no email address),
    /// [`AppError::TooManyAttempts`] (a code was sent less than 30 s ago),
    /// [`AppError::Internal`] (SMTP delivery failed; the code is withdrawn).
    pub async fn send_email_code(
        &self,
        ctx: &Ctx,
        mailer: &Mailer,
        user: PrincipalId,
    ) -> Result<()> {
        let mut tx = self.store().write().await?;
        let p = load(&mut tx, ctx, PrincipalKind::User, user).await?;
        if !p.is_active_at(ctx.now) {
            return Err(AppError::Forbidden("the account is not active".into()));
        }
        let Some(recipient) = p.email.clone() else {
            return Err(ValidationError::new(
                "email",
                "the user has no email address to send a code to",
            )
            .into());
        };
        if let Some(earlier) = credentials::email_code(&mut tx, user).await? {
            let next = sent_at(&earlier) + RESEND_AFTER;
            if ctx.now < next {
                return Err(AppError::TooManyAttempts {
                    retry_after_secs: retry_after_secs(ctx.now, next),
                });
            }
        }
        let code = new_code()?;
        let hash = code_hash(user, &code);
        credentials::put_email_code(
            &mut tx,
            &EmailCode {
                principal_id: user,
                code_hash: hash.clone(),
                expires_at: ctx.now + CODE_TTL,
                attempts: 0,
            },
        )
        .await?;
        let body = Zeroizing::new(body(&code));
        let via = match mailer {
            Mailer::Outbox => {
                mail::put_outbox(
                    &mut tx,
                    &OutboxMail {
                        id: uuid::Uuid::now_v7().to_string(),
                        tenant_id: ctx.tenant,
                        recipient: recipient.clone(),
                        subject: SUBJECT.to_owned(),
                        body: body.to_string(),
                        created_at: ctx.now,
                    },
                )
                .await?;
                "outbox"
            }
            Mailer::Smtp(_) => "smtp",
        };
        let sent = |tx: WriteTx| {
            tx.commit(
                AuditEvent::new(ctx, "auth.email_code.sent", Some(target(&p)))
                    .with_details(json!({ "via": via })),
            )
        };
        sent(tx).await?;
        let Mailer::Smtp(smtp) = mailer else {
            return Ok(());
        };
        // Sent after the commit: the writer is not held during network I/O.
        let Err(err) = smtp.send(&recipient, SUBJECT, &body).await else {
            return Ok(());
        };
        self.withdraw_email_code(ctx, &p, &hash).await?;
        Err(err)
    }

    /// Removes a code whose mail could not be delivered (unless a newer
    /// code replaced it meanwhile), so the user can ask again at once.
    async fn withdraw_email_code(&self, ctx: &Ctx, p: &Principal, hash: &str) -> Result<()> {
        let mut tx = self.store().write().await?;
        let withdrawn = mail::delete_email_code_if(&mut tx, p.id, hash).await?;
        tx.commit(
            AuditEvent::new(ctx, "auth.email_code.sent", Some(target(p)))
                .with_details(json!({
                    "via": "smtp",
                    "reason": "delivery_failed",
                    "withdrawn": withdrawn,
                }))
                .failed(),
        )
        .await?;
        Ok(())
    }

    /// Verifies the user's email code (a second factor). Any failure (no
    /// code, wrong, expired or void code, user not active) is
    /// [`AppError::Unauthenticated`], audited as `auth.email_code` with its
    /// reason and counted by the throttle; a blocked user gets
    /// [`AppError::TooManyAttempts`]. A code works once.
    pub async fn verify_email_code(&self, ctx: &Ctx, user: PrincipalId, code: &str) -> Result<()> {
        let mut conn = self.store().read().await?;
        let p = principals::by_id(&mut conn, ctx.tenant, user)
            .await?
            .filter(|p| p.kind == PrincipalKind::User);
        let Some(p) = p else {
            drop(conn);
            return self
                .second_factor_failed(ctx, "auth.email_code", None, "unknown_user")
                .await;
        };
        let keys = Keys::second_factor(ctx, &p);
        self.throttle_gate(&mut conn, ctx, &keys, "email_code", Some(&p))
            .await?;
        drop(conn);

        // One transaction from the lookup to the verdict: concurrent
        // guesses are counted one by one and a code is used only once.
        let mut tx = self.store().write().await?;
        let stored = credentials::email_code(&mut tx, user).await?;
        let mut details = json!({});
        let reason = match &stored {
            None => "no_code",
            Some(c) if c.attempts >= MAX_ATTEMPTS => "void_code",
            Some(c) if c.expires_at <= ctx.now => {
                credentials::delete_email_code(&mut tx, user).await?;
                "expired_code"
            }
            Some(c) => {
                let matches = normalize(code).is_some_and(|code| {
                    bool::from(
                        code_hash(user, &code)
                            .as_bytes()
                            .ct_eq(c.code_hash.as_bytes()),
                    )
                });
                if !matches {
                    let attempts = credentials::count_email_code_attempt(&mut tx, user)
                        .await?
                        .unwrap_or(MAX_ATTEMPTS);
                    details["attempts"] = json!(attempts);
                    details["void"] = json!(attempts >= MAX_ATTEMPTS);
                    "wrong_code"
                } else if !p.is_active_at(ctx.now) {
                    "inactive"
                } else {
                    credentials::delete_email_code(&mut tx, user).await?;
                    throttle::record_success(&mut tx, &keys).await?;
                    tx.commit(AuditEvent::new(ctx, "auth.email_code", Some(target(&p))))
                        .await?;
                    return Ok(());
                }
            }
        };
        details["reason"] = json!(reason);
        throttle::record_failure(&mut tx, ctx, &keys).await?;
        tx.commit(
            AuditEvent::new(ctx, "auth.email_code", Some(target(&p)))
                .with_details(details)
                .failed(),
        )
        .await?;
        Err(AppError::Unauthenticated)
    }

    /// Whether the user has a code that can still be used (sent, not
    /// expired, not void).
    pub async fn has_email_code(&self, ctx: &Ctx, user: PrincipalId) -> Result<bool> {
        let mut conn = self.store().read().await?;
        load(&mut conn, ctx, PrincipalKind::User, user).await?;
        Ok(credentials::email_code(&mut conn, user)
            .await?
            .is_some_and(|c| c.expires_at > ctx.now && c.attempts < MAX_ATTEMPTS))
    }

    /// The tenant's newest mails in the outbox (dev mode), newest first; at
    /// most `limit` (capped at [`OUTBOX_MAX`]). For the operator: the mails
    /// hold codes in the clear.
    pub async fn outbox(&self, ctx: &Ctx, limit: u32) -> Result<Vec<OutboxMail>> {
        let mut conn = self.store().read().await?;
        Ok(mail::outbox(&mut conn, ctx.tenant, limit.min(OUTBOX_MAX)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_normalise() {
        let code = new_code().unwrap();
        assert_eq!(code.len(), DIGITS);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(normalize(" 123-456 ").as_deref(), Some("123456"));
        assert!(normalize("12345").is_none());
        assert!(normalize("1234567").is_none());
        assert!(normalize("12345a").is_none());
        assert!(normalize("１２３４５６").is_none());
    }

    #[test]
    fn hashes_are_bound_to_the_user() {
        let a = PrincipalId::generate();
        let b = PrincipalId::generate();
        assert_ne!(code_hash(a, "123456"), code_hash(b, "123456"));
        assert_eq!(code_hash(a, "123456").len(), 64);
    }

    #[test]
    fn the_password_is_never_debug_printed() {
        let s = SmtpSettings {
            host: "smtp.example.com".into(),
            port: 587,
            username: Some("idplane".into()),
            password: Some("hunter2-secret".into()),
            from: "idplane <no-reply@example.com>".into(),
            starttls: true,
        };
        let shown = format!("{:?}", Mailer::Smtp(s));
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
