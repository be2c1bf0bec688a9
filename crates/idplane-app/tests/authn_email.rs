//! Email one-time codes, on a temporary SQLite store with a manual clock
//! (expiry and the resend throttle are tested by moving the clock, never by
//! sleeping) and the outbox mailer (nothing reaches the network).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use idplane_app::AppError;
use idplane_app::authn::email::{Mailer, SUBJECT, SmtpSettings};
use idplane_app::directory::principals::CreateUser;
use idplane_app::directory::tenants::CreateTenant;
use idplane_core::audit::{AuditRecord, Outcome};
use idplane_core::directory::Principal;
use idplane_core::{Actor, Ctx, RequestMeta};
use idplane_store::audit::AuditFilter;
use idplane_store::credentials;
use jiff::SignedDuration;
use sha2::{Digest, Sha256};
use support::Harness;

impl Harness {
    /// An anonymous sign-in context, now.
    async fn visitor(&self) -> Ctx {
        self.ctx_as(
            Actor::Anonymous,
            RequestMeta {
                source_ip: Some("192.0.2.7".into()),
                ..RequestMeta::default()
            },
        )
        .await
    }

    async fn user(&self, name: &str, email: Option<&str>) -> Principal {
        let ctx = self.ctx().await;
        self.app
            .create_user(
                &ctx,
                CreateUser {
                    username: name.into(),
                    display_name: None,
                    email: email.map(Into::into),
                    external_id: None,
                    user_type: None,
                    start_date: None,
                    end_date: None,
                    sponsor: None,
                    status: None,
                    attributes: None,
                },
            )
            .await
            .unwrap()
    }

    /// Sends a code to `p` through the outbox; returns it, read from the mail.
    async fn send(&self, p: &Principal) -> String {
        let ctx = self.visitor().await;
        self.app
            .send_email_code(&ctx, &Mailer::Outbox, p.id)
            .await
            .unwrap();
        let mail = self.app.outbox(&ctx, 1).await.unwrap().pop().unwrap();
        code_in(&mail.body)
    }

    async fn verify(&self, p: &Principal, code: &str) -> Result<(), AppError> {
        let ctx = self.visitor().await;
        self.app.verify_email_code(&ctx, p.id, code).await
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

    async fn stored_hash(&self, p: &Principal) -> Option<String> {
        let mut conn = self.app.store().read().await.unwrap();
        credentials::email_code(&mut conn, p.id)
            .await
            .unwrap()
            .map(|c| c.code_hash)
    }
}

/// The first run of six digits in a mail body.
fn code_in(body: &str) -> String {
    let digits: Vec<char> = body.chars().collect();
    digits
        .windows(6)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
        .unwrap_or_else(|| panic!("no code in {body:?}"))
}

/// A six-digit code that is not `code`.
fn other_than(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

fn reason(record: &AuditRecord) -> &str {
    record.event.details["reason"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_code_goes_to_the_outbox_and_works_once() {
    let h = Harness::new().await;
    let alice = h.user("alice", Some("alice@example.com")).await;
    let code = h.send(&alice).await;

    let ctx = h.ctx().await;
    let mails = h.app.outbox(&ctx, 10).await.unwrap();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].recipient, "alice@example.com");
    assert_eq!(mails[0].subject, SUBJECT);
    assert!(mails[0].body.contains(&code));
    assert_eq!(code.len(), 6);
    assert!(h.app.has_email_code(&ctx, alice.id).await.unwrap());

    // Spaces are forgiven.
    h.verify(&alice, &format!(" {} {} ", &code[..3], &code[3..]))
        .await
        .unwrap();
    assert!(!h.app.has_email_code(&ctx, alice.id).await.unwrap());
    assert!(matches!(
        h.verify(&alice, &code).await,
        Err(AppError::Unauthenticated)
    ));

    let ok = h.events("auth.email_code").await;
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].event.outcome, Outcome::Success);
    assert_eq!(ok[1].event.outcome, Outcome::Failure);
    assert_eq!(reason(&ok[1]), "no_code");
    let sent = h.events("auth.email_code.sent").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].event.outcome, Outcome::Success);
    assert_eq!(sent[0].event.details["via"], "outbox");
    // No event holds the code.
    for record in ok.iter().chain(&sent) {
        assert!(!record.event.details.to_string().contains(&code));
    }
}

#[tokio::test]
async fn five_wrong_codes_void_the_code() {
    let h = Harness::new().await;
    let bob = h.user("bob", Some("bob@example.com")).await;
    let code = h.send(&bob).await;
    let wrong = other_than(&code);
    for _ in 0..5 {
        assert!(matches!(
            h.verify(&bob, &wrong).await,
            Err(AppError::Unauthenticated)
        ));
    }
    // Past the throttle's back-off, the right code no longer works.
    h.advance(SignedDuration::from_secs(60));
    assert!(matches!(
        h.verify(&bob, &code).await,
        Err(AppError::Unauthenticated)
    ));
    let ctx = h.ctx().await;
    assert!(!h.app.has_email_code(&ctx, bob.id).await.unwrap());

    let failures = h.events("auth.email_code").await;
    assert_eq!(failures.len(), 6);
    assert!(failures.iter().all(|r| r.event.outcome == Outcome::Failure));
    assert!(failures[..5].iter().all(|r| reason(r) == "wrong_code"));
    assert_eq!(failures[4].event.details["attempts"], 5);
    assert_eq!(failures[4].event.details["void"], true);
    assert_eq!(reason(&failures[5]), "void_code");

    // A new code works again.
    let fresh = h.send(&bob).await;
    h.advance(SignedDuration::from_secs(60));
    h.verify(&bob, &fresh).await.unwrap();
}

#[tokio::test]
async fn wrong_guesses_are_throttled_like_other_second_factors() {
    let h = Harness::new().await;
    let carol = h.user("carol", Some("carol@example.com")).await;
    let code = h.send(&carol).await;
    let wrong = other_than(&code);
    for _ in 0..5 {
        let _ = h.verify(&carol, &wrong).await;
    }
    assert!(matches!(
        h.verify(&carol, &code).await,
        Err(AppError::TooManyAttempts { .. })
    ));
}

#[tokio::test]
async fn codes_expire_after_ten_minutes() {
    let h = Harness::new().await;
    let dave = h.user("dave", Some("dave@example.com")).await;
    let code = h.send(&dave).await;
    h.advance(SignedDuration::from_secs(9 * 60 + 59));
    let ctx = h.ctx().await;
    assert!(h.app.has_email_code(&ctx, dave.id).await.unwrap());

    h.advance(SignedDuration::from_secs(1));
    let ctx = h.ctx().await;
    assert!(!h.app.has_email_code(&ctx, dave.id).await.unwrap());
    assert!(matches!(
        h.verify(&dave, &code).await,
        Err(AppError::Unauthenticated)
    ));
    let failure = h.events("auth.email_code").await.pop().unwrap();
    assert_eq!(reason(&failure), "expired_code");

    // A fresh code is good until just before its ten minutes are up.
    let code2 = h.send(&dave).await;
    h.advance(SignedDuration::from_secs(9 * 60 + 59));
    h.verify(&dave, &code2).await.unwrap();
}

#[tokio::test]
async fn a_new_send_replaces_the_old_code_and_is_throttled() {
    let h = Harness::new().await;
    let erin = h.user("erin", Some("erin@example.com")).await;
    let first = h.send(&erin).await;

    let ctx = h.visitor().await;
    h.advance(SignedDuration::from_secs(29));
    let ctx2 = h.visitor().await;
    match h.app.send_email_code(&ctx2, &Mailer::Outbox, erin.id).await {
        Err(AppError::TooManyAttempts { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
        other => panic!("expected the resend throttle, got {other:?}"),
    }
    assert_eq!(h.app.outbox(&ctx, 10).await.unwrap().len(), 1);

    h.advance(SignedDuration::from_secs(1));
    let second = h.send(&erin).await;
    let mails = h.app.outbox(&ctx, 10).await.unwrap();
    assert_eq!(mails.len(), 2);
    // Newest first.
    assert!(mails[0].body.contains(&second));
    assert!(mails[1].body.contains(&first));
    if first != second {
        assert!(matches!(
            h.verify(&erin, &first).await,
            Err(AppError::Unauthenticated)
        ));
    }
    h.verify(&erin, &second).await.unwrap();
}

#[tokio::test]
async fn users_without_email_are_refused() {
    let h = Harness::new().await;
    let frank = h.user("frank", None).await;
    let ctx = h.visitor().await;
    match h.app.send_email_code(&ctx, &Mailer::Outbox, frank.id).await {
        Err(AppError::Invalid(e)) => assert_eq!(e.field, "email"),
        other => panic!("expected a validation error on email, got {other:?}"),
    }
    assert!(h.app.outbox(&ctx, 10).await.unwrap().is_empty());
    assert!(h.stored_hash(&frank).await.is_none());
    assert!(h.events("auth.email_code.sent").await.is_empty());
}

#[tokio::test]
async fn only_a_hash_bound_to_the_user_is_stored() {
    let h = Harness::new().await;
    let grace = h.user("grace", Some("grace@example.com")).await;
    let code = h.send(&grace).await;
    let stored = h.stored_hash(&grace).await.unwrap();
    assert!(!stored.contains(&code));
    assert_eq!(stored.len(), 64);
    assert_eq!(
        stored,
        hex::encode(Sha256::digest(format!("{}:{code}", grace.id).as_bytes()))
    );
}

#[tokio::test]
async fn the_outbox_is_per_tenant_and_limited() {
    let h = Harness::new().await;
    let hank = h.user("hank", Some("hank@example.com")).await;
    let ivy = h.user("ivy", Some("ivy@example.com")).await;
    h.send(&hank).await;
    h.send(&ivy).await;
    let ctx = h.ctx().await;
    let one = h.app.outbox(&ctx, 1).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].tenant_id, ctx.tenant);
    assert_eq!(h.app.outbox(&ctx, 10).await.unwrap().len(), 2);

    let other = h
        .app
        .create_tenant(
            &ctx,
            CreateTenant {
                name: "other".into(),
                display_name: None,
            },
        )
        .await
        .unwrap();
    let other_ctx = h.app.ctx(other.id, Actor::Root, RequestMeta::default());
    assert!(h.app.outbox(&other_ctx, 10).await.unwrap().is_empty());
    // A user of another tenant is not found from this one.
    assert!(matches!(
        h.app
            .send_email_code(&other_ctx, &Mailer::Outbox, hank.id)
            .await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_failed_smtp_delivery_withdraws_the_code() {
    let h = Harness::new().await;
    let jo = h.user("jo", Some("jo@example.com")).await;
    // A port nothing listens on: the connection is refused at once.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mailer = Mailer::Smtp(SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        username: Some("idplane".into()),
        password: Some("not-a-real-password".into()),
        from: "idplane <no-reply@example.com>".into(),
        starttls: true,
    });
    let ctx = h.visitor().await;
    match h.app.send_email_code(&ctx, &mailer, jo.id).await {
        Err(AppError::Internal(message)) => {
            assert!(message.contains("SMTP"), "{message}");
            assert!(!message.contains("not-a-real-password"), "{message}");
        }
        other => panic!("expected an internal error, got {other:?}"),
    }
    assert!(h.stored_hash(&jo).await.is_none());
    assert!(h.app.outbox(&ctx, 10).await.unwrap().is_empty());
    let sent = h.events("auth.email_code.sent").await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].event.details["via"], "smtp");
    assert_eq!(sent[1].event.outcome, Outcome::Failure);
    assert_eq!(reason(&sent[1]), "delivery_failed");
    assert_eq!(sent[1].event.details["withdrawn"], true);
    // The user may ask again at once.
    h.send(&jo).await;
}
