//! Passwords, TOTP, recovery codes and the throttle, on a temporary SQLite
//! store with a manual clock (TOTP windows and back-off are tested by moving
//! the clock, never by sleeping).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use idplane_app::authn::password::Hasher;
use idplane_app::directory::principals::{CreateUser, UpdateUser};
use idplane_app::{AppError, Field};
use idplane_core::audit::{AuditRecord, Outcome};
use idplane_core::directory::{Principal, Status, UserType};
use idplane_core::{Actor, Ctx, PrincipalId, RequestMeta, Timestamp};
use idplane_store::audit::AuditFilter;
use idplane_store::credentials::{self, PasswordCredential};
use jiff::SignedDuration;
use support::Harness;
use totp_rs::{Algorithm, Builder, Secret};

/// Strong enough for the single-factor rule (15+ characters, zxcvbn 3+).
const GOOD: &str = "copper kettles hum at dawn";
const OTHER_GOOD: &str = "seven herons nap by the weir";

impl Harness {
    /// An anonymous sign-in context from `ip`, now.
    async fn visitor(&self, ip: &str) -> Ctx {
        self.ctx_as(
            Actor::Anonymous,
            RequestMeta {
                source_ip: Some(ip.into()),
                ..RequestMeta::default()
            },
        )
        .await
    }

    fn now(&self) -> Timestamp {
        use idplane_core::Clock;
        self.clock.now()
    }

    async fn user(&self, name: &str) -> Principal {
        let ctx = self.ctx().await;
        self.app.create_user(&ctx, new_user(name)).await.unwrap()
    }

    /// A user with the password [`GOOD`].
    async fn user_with_password(&self, name: &str) -> Principal {
        let p = self.user(name).await;
        let ctx = self.ctx().await;
        self.app
            .set_password(&ctx, p.id, GOOD, false)
            .await
            .unwrap();
        p
    }

    async fn events(&self, action: &str) -> Vec<AuditRecord> {
        let ctx = self.ctx().await;
        self.app
            .audit_events(
                &ctx,
                &AuditFilter {
                    action: Some(action.into()),
                    limit: 1000,
                    ..AuditFilter::default()
                },
            )
            .await
            .unwrap()
    }

    async fn last_event(&self, action: &str) -> AuditRecord {
        self.events(action).await.pop().unwrap()
    }

    /// Begins and confirms a TOTP for `user`; returns its secret.
    async fn enroll_totp(&self, user: PrincipalId) -> Vec<u8> {
        let ctx = self.ctx().await;
        let enrollment = self.app.begin_totp(&ctx, user).await.unwrap();
        let secret = secret_of(&enrollment.secret_base32);
        self.app
            .confirm_totp(&ctx, user, &code_at(&secret, self.now(), 0))
            .await
            .unwrap();
        secret
    }
}

fn new_user(name: &str) -> CreateUser {
    CreateUser {
        username: name.into(),
        display_name: None,
        email: Some(format!("{name}@example.com")),
        external_id: None,
        user_type: None,
        start_date: None,
        end_date: None,
        sponsor: None,
        status: None,
        attributes: None,
    }
}

fn secret_of(base32: &str) -> Vec<u8> {
    Secret::try_from_base32(base32).unwrap().to_vec()
}

/// The 6-digit code of `secret` for the step `offset` steps from `at`.
fn code_at(secret: &[u8], at: Timestamp, offset: i64) -> String {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_secret(secret.to_vec())
        .build()
        .unwrap();
    let t = at.as_second() + offset * 30;
    totp.generate(u64::try_from(t).unwrap()).to_string()
}

fn unauthenticated<T: std::fmt::Debug>(r: Result<T, AppError>) {
    assert!(
        matches!(r, Err(AppError::Unauthenticated)),
        "expected Unauthenticated, got {r:?}"
    );
}

fn invalid<T: std::fmt::Debug>(r: Result<T, AppError>) -> String {
    match r {
        Err(AppError::Invalid(e)) => e.message,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn throttled<T: std::fmt::Debug>(r: Result<T, AppError>) -> u64 {
    match r {
        Err(AppError::TooManyAttempts { retry_after_secs }) => retry_after_secs,
        other => panic!("expected TooManyAttempts, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// TOTP

#[test]
fn rfc_6238_sha1_vectors() {
    // RFC 6238 appendix B, SHA-1, seed "12345678901234567890".
    let seed = b"12345678901234567890".to_vec();
    let eight = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(8)
        .with_secret(seed.clone())
        .build()
        .unwrap();
    let six = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_secret(seed)
        .build()
        .unwrap();
    for (t, expected) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(eight.generate(t).to_string(), expected, "T = {t}");
        // Six digits are the same value modulo 10^6 (RFC 4226 §5.3).
        assert_eq!(six.generate(t).to_string(), expected[2..], "T = {t}");
    }
}

#[tokio::test]
async fn totp_enrollment_gives_a_uri_a_qr_code_and_recovery_codes() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let ctx = h.ctx().await;
    let enrollment = h.app.begin_totp(&ctx, alice.id).await.unwrap();
    assert!(
        enrollment
            .otpauth_uri
            .starts_with("otpauth://totp/idplane:alice?"),
        "{}",
        enrollment.otpauth_uri
    );
    assert!(enrollment.otpauth_uri.contains("issuer=idplane"));
    assert!(
        enrollment
            .otpauth_uri
            .contains(&format!("secret={}", enrollment.secret_base32))
    );
    assert_eq!(secret_of(&enrollment.secret_base32).len(), 20);
    assert!(enrollment.qr_svg.starts_with("<svg ") && enrollment.qr_svg.contains("<path d=\"M"));
    assert!(!h.app.has_totp(&ctx, alice.id).await.unwrap());

    // Not confirmed yet: not a factor.
    let secret = secret_of(&enrollment.secret_base32);
    unauthenticated(
        h.app
            .verify_totp(&ctx, alice.id, &code_at(&secret, h.now(), 0))
            .await,
    );
    assert_eq!(
        h.last_event("auth.totp").await.event.details["reason"],
        "no_totp"
    );

    // A wrong code does not confirm.
    let wrong = format!(
        "{:06}",
        (code_at(&secret, h.now(), 0).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    invalid(h.app.confirm_totp(&ctx, alice.id, &wrong).await);

    let codes = h
        .app
        .confirm_totp(&ctx, alice.id, &code_at(&secret, h.now(), 0))
        .await
        .unwrap()
        .expect("first factor set-up comes with recovery codes");
    assert_eq!(codes.len(), 10);
    assert!(h.app.has_totp(&ctx, alice.id).await.unwrap());
    assert_eq!(h.app.recovery_codes_left(&ctx, alice.id).await.unwrap(), 10);
    assert_eq!(h.events("totp.confirm").await.len(), 1);
    assert_eq!(h.events("recovery.regenerate").await.len(), 1);

    // A confirmed TOTP is not replaced behind the user's back.
    assert!(matches!(
        h.app.begin_totp(&ctx, alice.id).await,
        Err(AppError::Conflict(_))
    ));
}

#[tokio::test]
async fn a_totp_code_is_accepted_once() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let secret = h.enroll_totp(alice.id).await;
    let ctx = h.ctx().await;
    // The code that confirmed the enrollment is spent.
    unauthenticated(
        h.app
            .verify_totp(&ctx, alice.id, &code_at(&secret, h.now(), 0))
            .await,
    );
    assert_eq!(
        h.last_event("auth.totp").await.event.details["reason"],
        "replayed_code"
    );

    h.advance(SignedDuration::from_secs(30));
    let ctx = h.ctx().await;
    let code = code_at(&secret, h.now(), 0);
    h.app.verify_totp(&ctx, alice.id, &code).await.unwrap();
    let ok = h.last_event("auth.totp").await;
    assert_eq!(ok.event.outcome, Outcome::Success);
    assert_eq!(ok.event.target, Some(format!("user:{}", alice.id)));
    unauthenticated(h.app.verify_totp(&ctx, alice.id, &code).await);
    assert_eq!(
        h.last_event("auth.totp").await.event.details["reason"],
        "replayed_code"
    );
}

#[tokio::test]
async fn one_step_of_skew_is_accepted_two_are_not() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let secret = h.enroll_totp(alice.id).await;
    h.advance(SignedDuration::from_mins(10));
    let ctx = h.ctx().await;
    let now = h.now();
    unauthenticated(
        h.app
            .verify_totp(&ctx, alice.id, &code_at(&secret, now, 2))
            .await,
    );
    unauthenticated(
        h.app
            .verify_totp(&ctx, alice.id, &code_at(&secret, now, -2))
            .await,
    );
    assert_eq!(
        h.last_event("auth.totp").await.event.details["reason"],
        "wrong_code"
    );
    h.app
        .verify_totp(&ctx, alice.id, &code_at(&secret, now, -1))
        .await
        .unwrap();
    h.app
        .verify_totp(&ctx, alice.id, &code_at(&secret, now, 1))
        .await
        .unwrap();
    // A step up to the newest accepted one is never accepted again.
    unauthenticated(
        h.app
            .verify_totp(&ctx, alice.id, &code_at(&secret, now, 0))
            .await,
    );
    // Whitespace typed inside the code is ignored; letters are not codes.
    h.advance(SignedDuration::from_secs(60));
    let ctx = h.ctx().await;
    let code = code_at(&secret, h.now(), 0);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    h.app.verify_totp(&ctx, alice.id, &spaced).await.unwrap();
    unauthenticated(h.app.verify_totp(&ctx, alice.id, "abcdef").await);
}

#[tokio::test]
async fn codes_of_an_earlier_enrollment_never_verify() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let ctx = h.ctx().await;

    // An unconfirmed enrollment replaced by another.
    let first = h.app.begin_totp(&ctx, alice.id).await.unwrap();
    let second = h.app.begin_totp(&ctx, alice.id).await.unwrap();
    assert_ne!(first.secret_base32, second.secret_base32);
    let first_secret = secret_of(&first.secret_base32);
    let second_secret = secret_of(&second.secret_base32);
    invalid(
        h.app
            .confirm_totp(&ctx, alice.id, &code_at(&first_secret, h.now(), 0))
            .await,
    );
    h.app
        .confirm_totp(&ctx, alice.id, &code_at(&second_secret, h.now(), 0))
        .await
        .unwrap();

    // A confirmed enrollment removed and set up again.
    h.app.remove_totp(&ctx, alice.id).await.unwrap();
    assert!(!h.app.has_totp(&ctx, alice.id).await.unwrap());
    h.advance(SignedDuration::from_secs(30));
    let ctx = h.ctx().await;
    let third = h.app.begin_totp(&ctx, alice.id).await.unwrap();
    let third_secret = secret_of(&third.secret_base32);
    let again = h
        .app
        .confirm_totp(&ctx, alice.id, &code_at(&third_secret, h.now(), 0))
        .await
        .unwrap();
    assert!(
        again.is_none(),
        "recovery codes are kept: they were not used"
    );

    h.advance(SignedDuration::from_secs(30));
    let ctx = h.ctx().await;
    unauthenticated(
        h.app
            .verify_totp(&ctx, alice.id, &code_at(&second_secret, h.now(), 0))
            .await,
    );
    unauthenticated(
        h.app
            .verify_totp(&ctx, alice.id, &code_at(&first_secret, h.now(), 0))
            .await,
    );
    h.app
        .verify_totp(&ctx, alice.id, &code_at(&third_secret, h.now(), 0))
        .await
        .unwrap();
    assert!(matches!(
        h.app.remove_totp(&ctx, PrincipalId::generate()).await,
        Err(AppError::NotFound(_))
    ));
}

// ---------------------------------------------------------------------------
// Password policy

#[tokio::test]
async fn password_policy_follows_nist() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let ctx = h.ctx().await;
    let set = |pw: String| {
        let app = h.app.clone();
        let ctx = ctx.clone();
        async move { app.set_password(&ctx, alice.id, &pw, false).await }
    };

    let msg = invalid(set("short".into()).await);
    assert!(msg.contains("at least 15 characters"), "{msg}");
    let msg = invalid(set("password123456789".into()).await);
    assert!(msg.contains("too easy to guess"), "{msg}");
    // Built from the user's own name and email.
    let msg = invalid(set("alice@example.com2026".into()).await);
    assert!(msg.contains("too easy to guess"), "{msg}");
    let msg = invalid(set("aaaaaaaaaaaaaaaaaaaa".into()).await);
    assert!(msg.contains("too easy to guess"), "{msg}");

    // Oversized input is refused before hashing, by its size in bytes.
    let msg = invalid(set("é".repeat(600)).await);
    assert!(msg.contains("1024 bytes"), "{msg}");
    let msg = invalid(set("x".repeat(2000)).await);
    assert!(msg.contains("1024 bytes"), "{msg}");
    // Within 1024 bytes but over 256 characters.
    let msg = invalid(set("lantern ".repeat(40)).await);
    assert!(msg.contains("at most 256 characters"), "{msg}");
    assert!(!h.app.has_password(&ctx, alice.id).await.unwrap());

    // No composition rules: a long passphrase of lowercase words is fine.
    let passphrase = "quiet lanterns drift over the harbour while seven herons sleep";
    assert_eq!(passphrase.chars().count(), 62);
    let sixty_four = format!("{passphrase}!!");
    assert_eq!(sixty_four.chars().count(), 64);
    set(sixty_four.clone()).await.unwrap();
    assert!(h.app.has_password(&ctx, alice.id).await.unwrap());
    let event = h.last_event("password.set").await;
    assert_eq!(event.event.details["temporary"], false);
    assert!(!event.event.details.to_string().contains("herons"));
    let check = h
        .app
        .check_password(&ctx, "alice", &sixty_four)
        .await
        .unwrap();
    assert_eq!(check.principal.id, alice.id);
    assert!(!check.must_change);

    // Characters, not bytes: 15 multi-byte characters are 15.
    set("ünïcödé-ßträßé!".into()).await.unwrap();
}

#[tokio::test]
async fn eight_characters_are_enough_with_a_second_factor() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let ctx = h.ctx().await;
    let msg = invalid(
        h.app
            .set_password(&ctx, alice.id, "Vx7#kq2!Lm", false)
            .await,
    );
    assert!(msg.contains("at least 15 characters"), "{msg}");
    assert!(msg.contains("8 with a second factor"), "{msg}");
    h.enroll_totp(alice.id).await;
    h.app
        .set_password(&ctx, alice.id, "Vx7#kq2!Lm", false)
        .await
        .unwrap();
    let msg = invalid(h.app.set_password(&ctx, alice.id, "Vx7#kq2", false).await);
    assert!(msg.contains("at least 8 characters"), "{msg}");
}

#[tokio::test]
async fn nfkc_variants_of_a_password_are_the_same_password() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let ctx = h.ctx().await;
    // Full-width letters (an East Asian keyboard) and the "ﬁ" ligature.
    let wide = "ｓｔａｒｌｉｇｈｔ ｏｖｅｒ ｔｈｅ ｆｊｏｒｄ ﬁelds";
    let plain = "starlight over the fjord fields";
    h.app
        .set_password(&ctx, alice.id, wide, false)
        .await
        .unwrap();
    h.app.check_password(&ctx, "alice", plain).await.unwrap();
    h.app.check_password(&ctx, "alice", wide).await.unwrap();
    h.app
        .set_password(&ctx, alice.id, plain, false)
        .await
        .unwrap();
    h.app.check_password(&ctx, "alice", wide).await.unwrap();
    // Case still matters.
    unauthenticated(
        h.app
            .check_password(&ctx, "alice", "Starlight over the fjord fields")
            .await,
    );
}

// ---------------------------------------------------------------------------
// Sign-in with a password

#[tokio::test]
async fn every_failure_looks_the_same_but_is_audited_with_its_reason() {
    let h = Harness::new().await;
    let alice = h.user_with_password("alice").await;
    let bob = h.user("bob").await;
    let ctx = h.visitor("192.0.2.1").await;

    let check = h.app.check_password(&ctx, "ALICE", GOOD).await.unwrap();
    assert_eq!(check.principal.id, alice.id);
    let ok = h.last_event("auth.password").await;
    assert_eq!(ok.event.outcome, Outcome::Success);
    assert_eq!(ok.event.source_ip.as_deref(), Some("192.0.2.1"));

    unauthenticated(h.app.check_password(&ctx, "alice", OTHER_GOOD).await);
    unauthenticated(h.app.check_password(&ctx, "mallory", GOOD).await);
    unauthenticated(h.app.check_password(&ctx, "bob", GOOD).await);
    unauthenticated(h.app.check_password(&ctx, "alice", &"x".repeat(5000)).await);
    let failures: Vec<_> = h
        .events("auth.password")
        .await
        .into_iter()
        .filter(|r| r.event.outcome == Outcome::Failure)
        .map(|r| {
            (
                r.event.target.clone(),
                r.event.details["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        failures,
        vec![
            (Some(format!("user:{}", alice.id)), "wrong_password".into()),
            (None, "unknown_user".into()),
            (Some(format!("user:{}", bob.id)), "no_password".into()),
            (Some(format!("user:{}", alice.id)), "wrong_password".into()),
        ]
    );
    // Nothing secret in the log.
    for r in h.events("auth.password").await {
        let text = serde_json::to_string(&r.event).unwrap();
        assert!(!text.contains("kettles") && !text.contains("herons"));
    }
    // Service accounts and the like have no password.
    assert!(matches!(
        h.app
            .has_password(&h.ctx().await, PrincipalId::generate())
            .await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn suspended_deprovisioned_and_ended_users_cannot_sign_in() {
    let h = Harness::new().await;
    let admin = h.ctx().await;
    for (name, status) in [("sue", Status::Suspended), ("dee", Status::Deprovisioned)] {
        let p = h.user_with_password(name).await;
        h.app
            .update_user(
                &admin,
                p.id,
                UpdateUser {
                    status: Field::Set(status),
                    ..UpdateUser::default()
                },
                None,
            )
            .await
            .unwrap();
        unauthenticated(h.app.check_password(&admin, name, GOOD).await);
        assert_eq!(
            h.last_event("auth.password").await.event.details["reason"],
            "inactive"
        );
    }

    // A contractor after the end date.
    let sponsor = h.user("sponsor").await;
    let mut cmd = new_user("connie");
    cmd.user_type = Some(UserType::Contractor);
    cmd.sponsor = Some(sponsor.name.clone());
    cmd.end_date = Some(h.now() + SignedDuration::from_hours(1));
    let connie = h.app.create_user(&admin, cmd).await.unwrap();
    h.app
        .set_password(&admin, connie.id, GOOD, false)
        .await
        .unwrap();
    h.app.check_password(&admin, "connie", GOOD).await.unwrap();
    h.advance(SignedDuration::from_hours(1));
    let later = h.ctx().await;
    unauthenticated(h.app.check_password(&later, "connie", GOOD).await);
    assert_eq!(
        h.last_event("auth.password").await.event.details["reason"],
        "inactive"
    );
}

#[tokio::test]
async fn a_temporary_password_must_be_changed() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let admin = h.ctx().await;
    h.app
        .set_password(&admin, alice.id, GOOD, true)
        .await
        .unwrap();
    assert_eq!(
        h.last_event("password.set").await.event.details["temporary"],
        true
    );
    let check = h.app.check_password(&admin, "alice", GOOD).await.unwrap();
    assert!(check.must_change);

    // The user changes it: proving the current one.
    let me = Ctx {
        actor: Actor::User {
            principal_id: alice.id,
        },
        ..h.visitor("192.0.2.5").await
    };
    unauthenticated(
        h.app
            .change_password(&me, alice.id, OTHER_GOOD, OTHER_GOOD)
            .await,
    );
    let failed = h.last_event("password.change").await;
    assert_eq!(failed.event.outcome, Outcome::Failure);
    assert_eq!(failed.event.details["reason"], "wrong_password");
    let msg = invalid(h.app.change_password(&me, alice.id, GOOD, "short").await);
    assert!(msg.contains("at least 15"), "{msg}");
    h.app
        .change_password(&me, alice.id, GOOD, OTHER_GOOD)
        .await
        .unwrap();
    assert_eq!(
        h.last_event("password.change").await.event.outcome,
        Outcome::Success
    );
    let check = h
        .app
        .check_password(&me, "alice", OTHER_GOOD)
        .await
        .unwrap();
    assert!(!check.must_change);
    unauthenticated(h.app.check_password(&me, "alice", GOOD).await);
}

#[tokio::test]
async fn hashes_with_old_parameters_are_upgraded_at_sign_in() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let old = Hasher::new(64, 1, 1, 1).unwrap().hash(GOOD).await.unwrap();
    let mut tx = h.app.store().write().await.unwrap();
    credentials::put_password(
        &mut tx,
        &PasswordCredential {
            principal_id: alice.id,
            tenant_id: alice.tenant_id,
            hash: old.clone(),
            must_change: false,
            created_at: h.now(),
            updated_at: h.now(),
        },
    )
    .await
    .unwrap();
    tx.commit(idplane_core::audit::AuditEvent::new(
        &h.ctx().await,
        "test.setup",
        None,
    ))
    .await
    .unwrap();

    let ctx = h.ctx().await;
    h.app.check_password(&ctx, "alice", GOOD).await.unwrap();
    assert_eq!(
        h.last_event("auth.password").await.event.details["rehashed"],
        true
    );
    let mut conn = h.app.store().read().await.unwrap();
    let stored = credentials::password(&mut conn, alice.id)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert!(
        stored.hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        stored.hash
    );
    h.app.check_password(&ctx, "alice", GOOD).await.unwrap();
    assert_eq!(
        h.last_event("auth.password").await.event.details["rehashed"],
        false
    );
}

// ---------------------------------------------------------------------------
// Throttle

#[tokio::test]
async fn five_failures_are_free_then_back_off_doubles_and_success_resets() {
    let h = Harness::new().await;
    let alice = h.user_with_password("alice").await;
    let ctx = h.visitor("192.0.2.10").await;
    for _ in 0..5 {
        unauthenticated(h.app.check_password(&ctx, "alice", OTHER_GOOD).await);
    }
    // Blocked even with the right password, before any hashing.
    assert_eq!(
        throttled(h.app.check_password(&ctx, "alice", GOOD).await),
        1
    );
    let event = h.last_event("auth.throttled").await;
    assert_eq!(event.event.target, Some(format!("user:{}", alice.id)));
    assert_eq!(event.event.details["method"], "password");
    assert_eq!(event.event.outcome, Outcome::Failure);
    // A blocked attempt is not a failure: the count is still five.
    assert_eq!(h.events("auth.password").await.len(), 5);

    h.advance(SignedDuration::from_secs(1));
    let ctx = h.visitor("192.0.2.10").await;
    unauthenticated(h.app.check_password(&ctx, "alice", OTHER_GOOD).await);
    assert_eq!(
        throttled(h.app.check_password(&ctx, "alice", GOOD).await),
        2
    );
    h.advance(SignedDuration::from_millis(1500));
    let ctx = h.visitor("192.0.2.10").await;
    // Rounded up to whole seconds.
    assert_eq!(
        throttled(h.app.check_password(&ctx, "alice", GOOD).await),
        1
    );
    h.advance(SignedDuration::from_millis(500));
    let ctx = h.visitor("192.0.2.10").await;
    h.app.check_password(&ctx, "alice", GOOD).await.unwrap();

    // The success cleared the account: five free failures again.
    for _ in 0..5 {
        unauthenticated(h.app.check_password(&ctx, "alice", OTHER_GOOD).await);
    }
    throttled(h.app.check_password(&ctx, "alice", GOOD).await);

    // The same account from elsewhere is blocked too (the key is the account).
    let elsewhere = h.visitor("198.51.100.20").await;
    throttled(h.app.check_password(&elsewhere, "alice", GOOD).await);

    // The wait is capped at 15 minutes: never a permanent lockout.
    for _ in 0..30 {
        h.advance(SignedDuration::from_mins(15));
        let ctx = h.visitor("192.0.2.10").await;
        unauthenticated(h.app.check_password(&ctx, "alice", OTHER_GOOD).await);
    }
    let ctx = h.visitor("192.0.2.10").await;
    assert_eq!(
        throttled(h.app.check_password(&ctx, "alice", GOOD).await),
        900
    );
    h.advance(SignedDuration::from_mins(15));
    let ctx = h.visitor("192.0.2.10").await;
    h.app.check_password(&ctx, "alice", GOOD).await.unwrap();
}

#[tokio::test]
async fn unknown_usernames_are_throttled_like_real_ones() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    for _ in 0..5 {
        unauthenticated(h.app.check_password(&ctx, "nobody", GOOD).await);
    }
    assert_eq!(
        throttled(h.app.check_password(&ctx, "NoBody", GOOD).await),
        1
    );
}

#[tokio::test]
async fn an_administrator_can_unlock_an_account() {
    let h = Harness::new().await;
    let alice = h.user_with_password("alice").await;
    let ctx = h.ctx().await;
    for _ in 0..8 {
        let _ = h.app.check_password(&ctx, "alice", OTHER_GOOD).await;
    }
    throttled(h.app.check_password(&ctx, "alice", GOOD).await);
    h.app.unlock(&ctx, alice.id).await.unwrap();
    assert_eq!(
        h.last_event("auth.unlock").await.event.details["cleared"],
        true
    );
    h.app.check_password(&ctx, "alice", GOOD).await.unwrap();
}

#[tokio::test]
async fn password_spraying_from_one_address_is_blocked() {
    let h = Harness::new().await;
    h.user_with_password("victim").await;
    let sprayer = h.visitor("203.0.113.66").await;
    // One guess per account: no account key is anywhere near its limit.
    for i in 0..20 {
        unauthenticated(
            h.app
                .check_password(&sprayer, &format!("user{i}"), "Summer2026!Summer2026!")
                .await,
        );
    }
    assert_eq!(
        throttled(
            h.app
                .check_password(&sprayer, "victim", "Summer2026!Summer2026!")
                .await
        ),
        1
    );
    // Even the right password from there waits.
    throttled(h.app.check_password(&sprayer, "victim", GOOD).await);
    // Other addresses are not affected, nor is the account.
    let other = h.visitor("192.0.2.77").await;
    h.app.check_password(&other, "victim", GOOD).await.unwrap();
    // A success does not clear the source.
    h.advance(SignedDuration::from_secs(1));
    let sprayer = h.visitor("203.0.113.66").await;
    unauthenticated(h.app.check_password(&sprayer, "user99", GOOD).await);
    assert_eq!(
        throttled(h.app.check_password(&sprayer, "victim", GOOD).await),
        2
    );
}

#[tokio::test]
async fn knowing_the_password_gives_no_extra_guesses_at_the_second_factor() {
    let h = Harness::new().await;
    let alice = h.user_with_password("alice").await;
    let secret = h.enroll_totp(alice.id).await;
    h.advance(SignedDuration::from_mins(5));
    let ctx = h.visitor("192.0.2.10").await;
    for _ in 0..5 {
        h.app.check_password(&ctx, "alice", GOOD).await.unwrap();
        unauthenticated(h.app.verify_totp(&ctx, alice.id, "000000").await);
    }
    // Five wrong codes: the second factor waits, even for the right code.
    let code = code_at(&secret, h.now(), 0);
    assert_eq!(throttled(h.app.verify_totp(&ctx, alice.id, &code).await), 1);
    h.advance(SignedDuration::from_secs(1));
    let ctx = h.visitor("192.0.2.10").await;
    h.app.check_password(&ctx, "alice", GOOD).await.unwrap();
    // The password cleared the account key but not the second-factor key.
    unauthenticated(h.app.verify_totp(&ctx, alice.id, "000000").await);
    throttled(h.app.verify_totp(&ctx, alice.id, &code).await);
    h.advance(SignedDuration::from_secs(2));
    let ctx = h.visitor("192.0.2.10").await;
    let code = code_at(&secret, h.now(), 0);
    h.app.verify_totp(&ctx, alice.id, &code).await.unwrap();
    // A second factor success clears it.
    unauthenticated(h.app.verify_totp(&ctx, alice.id, "000000").await);
}

// ---------------------------------------------------------------------------
// Recovery codes and administrator resets

#[tokio::test]
async fn recovery_codes_work_once_each() {
    let h = Harness::new().await;
    let alice = h.user("alice").await;
    let ctx = h.ctx().await;
    assert_eq!(h.app.recovery_codes_left(&ctx, alice.id).await.unwrap(), 0);
    let codes = h
        .app
        .regenerate_recovery_codes(&ctx, alice.id)
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    for code in &codes {
        assert_eq!(code.len(), 11);
        assert_eq!(code.as_bytes()[5], b'-');
        assert!(
            code.chars()
                .all(|c| c == '-' || "23456789abcdefghjkmnpqrstuvwxyz".contains(c))
        );
    }

    h.app
        .use_recovery_code(&ctx, alice.id, &codes[0])
        .await
        .unwrap();
    assert_eq!(h.app.recovery_codes_left(&ctx, alice.id).await.unwrap(), 9);
    assert_eq!(h.last_event("auth.recovery").await.event.details["left"], 9);
    unauthenticated(h.app.use_recovery_code(&ctx, alice.id, &codes[0]).await);
    assert_eq!(
        h.last_event("auth.recovery").await.event.details["reason"],
        "wrong_code"
    );
    // Typed loosely: upper case, spaces instead of the dash.
    let loose = codes[1].to_uppercase().replace('-', " ");
    h.app
        .use_recovery_code(&ctx, alice.id, &loose)
        .await
        .unwrap();
    unauthenticated(h.app.use_recovery_code(&ctx, alice.id, "nonsense").await);
    // Another user's code is not this user's.
    let bob = h.user("bob").await;
    unauthenticated(h.app.use_recovery_code(&ctx, bob.id, &codes[2]).await);

    // Regenerating replaces every old code.
    let fresh = h
        .app
        .regenerate_recovery_codes(&ctx, alice.id)
        .await
        .unwrap();
    assert_eq!(h.app.recovery_codes_left(&ctx, alice.id).await.unwrap(), 10);
    unauthenticated(h.app.use_recovery_code(&ctx, alice.id, &codes[3]).await);
    h.app
        .use_recovery_code(&ctx, alice.id, &fresh[3])
        .await
        .unwrap();
}

#[tokio::test]
async fn an_administrator_can_reset_every_second_factor() {
    let h = Harness::new().await;
    let alice = h.user_with_password("alice").await;
    h.enroll_totp(alice.id).await;
    let ctx = h.ctx().await;
    assert_eq!(h.app.recovery_codes_left(&ctx, alice.id).await.unwrap(), 10);
    h.app.reset_factors(&ctx, alice.id).await.unwrap();
    assert!(!h.app.has_totp(&ctx, alice.id).await.unwrap());
    assert_eq!(h.app.recovery_codes_left(&ctx, alice.id).await.unwrap(), 0);
    assert!(h.app.has_password(&ctx, alice.id).await.unwrap());
    let event = h.last_event("auth.factors.reset").await;
    assert_eq!(event.event.details["totp"], true);
    assert_eq!(event.event.details["recovery_codes"], 10);
    assert_eq!(event.event.details["passkeys"], 0);
    // A fresh set-up is possible again.
    h.app.begin_totp(&ctx, alice.id).await.unwrap();
}

#[tokio::test]
async fn the_tenant_policy_sets_password_lengths_and_session_timeouts() {
    use idplane_app::authn::policy::AuthPolicy;
    let h = Harness::new().await;
    let admin = h.ctx().await;
    let policy = AuthPolicy {
        password_min_length: Some(20),
        session_idle_minutes: Some(5),
        session_absolute_hours: Some(1),
        ..Default::default()
    };
    h.app.set_auth_policy(&admin, policy).await.unwrap();
    let out_of_range = AuthPolicy {
        password_min_length: Some(4),
        ..Default::default()
    };
    assert!(matches!(
        h.app.set_auth_policy(&admin, out_of_range).await,
        Err(AppError::Invalid(e)) if e.field == "password_min_length"
    ));

    let user = h.user("policy-user").await;
    // 17 characters: enough by default, too short under this policy.
    let refused = h
        .app
        .set_password(&admin, user.id, "violet kettle dune", false)
        .await;
    assert!(matches!(refused, Err(AppError::Invalid(_))), "{refused:?}");
    h.app
        .set_password(&admin, user.id, "violet kettle dune harbour", false)
        .await
        .unwrap();

    let visitor = h.visitor("198.51.100.9").await;
    let session = h
        .app
        .create_session(&visitor, &user, &[idplane_app::authn::Amr::Pwd], None)
        .await
        .unwrap();
    assert!(
        h.app
            .session(&visitor, &session.secret)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        session.session.expires_at.as_second() - visitor.now.as_second(),
        3600,
        "absolute timeout from the policy"
    );
    h.advance(SignedDuration::from_mins(5));
    let later = h.visitor("198.51.100.9").await;
    assert!(
        h.app
            .session(&later, &session.secret)
            .await
            .unwrap()
            .is_none(),
        "idle for 5 minutes"
    );
}
