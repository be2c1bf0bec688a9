//! The device grant (RFC 8628) against the injected clock: requests expire
//! after 10 minutes whatever their state, polling too soon raises the
//! interval by 5 s each time, and the wrong-code pause ends after its
//! window.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use std::sync::Arc;

use idplane_app::AppError;
use idplane_app::authn::Amr;
use idplane_app::directory::principals::CreateUser;
use idplane_app::oidc::ErrorCode;
use idplane_app::oidc::authorize::Params;
use idplane_app::oidc::clients::{Client, CreateClient};
use idplane_app::oidc::device::{DeviceAuthorization, DeviceDecision};
use idplane_core::directory::Principal;
use idplane_core::{Actor, Ctx, RequestMeta};
use idplane_store::sessions::StoredSession;
use jiff::SignedDuration;

/// The shared harness with a device client and a signed-in person.
struct Harness {
    base: support::Harness,
    client: Arc<Client>,
    person: Principal,
    session: StoredSession,
}

impl Harness {
    async fn new() -> Self {
        let base = support::Harness::new().await;
        let app = &base.app;
        let ctx = base.ctx().await;
        app.create_client(
            &ctx,
            serde_json::from_value::<CreateClient>(serde_json::json!({
                "client_id": "tv",
                "name": "TV",
                "type": "public",
                "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
                "scopes": ["openid"],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
        let client = app.cached_client(ctx.tenant, "tv").await.unwrap().unwrap();
        let person = app
            .create_user(
                &ctx,
                CreateUser {
                    username: "alice".into(),
                    display_name: None,
                    email: None,
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
            .unwrap();
        let session = app
            .create_session(&ctx, &person, &[Amr::Pwd], None)
            .await
            .unwrap()
            .session;
        Self {
            base,
            client,
            person,
            session,
        }
    }

    /// A context at the clock's time, from the person's browser.
    fn ctx(&self) -> Ctx {
        self.base.app.ctx(
            self.session.tenant_id,
            Actor::User {
                principal_id: self.person.id,
            },
            RequestMeta {
                source_ip: Some("198.51.100.4".into()),
                ..RequestMeta::default()
            },
        )
    }

    async fn authorize(&self) -> DeviceAuthorization {
        let params = Params::from_pairs([("scope".to_owned(), "openid".to_owned())]);
        self.base
            .app
            .authorize_device(&self.ctx(), &self.client, &params)
            .await
            .unwrap()
    }

    async fn poll(&self, device_code: &str) -> ErrorCode {
        self.base
            .app
            .poll_device_code(&self.ctx(), &self.client, device_code, None)
            .await
            .unwrap_err()
            .code
    }

    async fn decide(&self, user_code: &str, decision: DeviceDecision) -> bool {
        self.base
            .app
            .decide_device_request(
                &self.ctx(),
                &self.session,
                &self.person,
                user_code,
                decision,
            )
            .await
            .unwrap()
            .is_some()
    }
}

#[tokio::test]
async fn requests_expire_after_ten_minutes_pending_or_approved() {
    let h = Harness::new().await;
    let pending = h.authorize().await;
    let approved = h.authorize().await;
    assert_eq!(pending.expires_in, 600);
    assert_ne!(pending.user_code, approved.user_code);
    assert!(h.decide(&approved.user_code, DeviceDecision::Approve).await);

    h.base.advance(SignedDuration::from_secs(599));
    assert_eq!(
        h.poll(&pending.device_code).await,
        ErrorCode::AuthorizationPending
    );
    h.base.advance(SignedDuration::from_secs(1));
    assert_eq!(h.poll(&pending.device_code).await, ErrorCode::ExpiredToken);
    assert_eq!(h.poll(&approved.device_code).await, ErrorCode::ExpiredToken);
    // The person can no longer find or answer the expired request.
    let found = h
        .base
        .app
        .pending_device_request(&h.ctx(), &h.session, &pending.user_code)
        .await
        .unwrap();
    assert!(found.is_none());
    assert!(!h.decide(&pending.user_code, DeviceDecision::Approve).await);
}

#[tokio::test]
async fn polling_too_soon_raises_the_interval_by_five_seconds_each_time() {
    let h = Harness::new().await;
    let issued = h.authorize().await;
    assert_eq!(issued.interval, 5);
    assert_eq!(
        h.poll(&issued.device_code).await,
        ErrorCode::AuthorizationPending
    );
    h.base.advance(SignedDuration::from_secs(5));
    assert_eq!(
        h.poll(&issued.device_code).await,
        ErrorCode::AuthorizationPending
    );
    h.base.advance(SignedDuration::from_secs(4));
    assert_eq!(h.poll(&issued.device_code).await, ErrorCode::SlowDown);
    // Now 10 s: 9 s is still too soon, and raises it to 15 s.
    h.base.advance(SignedDuration::from_secs(9));
    assert_eq!(h.poll(&issued.device_code).await, ErrorCode::SlowDown);
    h.base.advance(SignedDuration::from_secs(14));
    assert_eq!(h.poll(&issued.device_code).await, ErrorCode::SlowDown);
    h.base.advance(SignedDuration::from_secs(20));
    assert_eq!(
        h.poll(&issued.device_code).await,
        ErrorCode::AuthorizationPending
    );

    // Once approved, the tokens come at once, then never again.
    assert!(h.decide(&issued.user_code, DeviceDecision::Approve).await);
    let tokens = h
        .base
        .app
        .poll_device_code(&h.ctx(), &h.client, &issued.device_code, None)
        .await
        .unwrap();
    assert!(tokens.id_token.is_some());
    assert!(tokens.refresh_token.is_none(), "the client may not refresh");
    assert_eq!(h.poll(&issued.device_code).await, ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn the_wrong_code_pause_ends_after_its_window() {
    let h = Harness::new().await;
    let issued = h.authorize().await;
    for _ in 0..5 {
        let found = h
            .base
            .app
            .pending_device_request(&h.ctx(), &h.session, "BBBB-BBBB")
            .await
            .unwrap();
        assert!(found.is_none());
    }
    let refused = h
        .base
        .app
        .pending_device_request(&h.ctx(), &h.session, &issued.user_code)
        .await;
    assert!(
        matches!(
            refused,
            Err(AppError::TooManyAttempts {
                retry_after_secs: 600
            })
        ),
        "{refused:?}"
    );
    // Ten minutes on, codes may be entered again (the first request has
    // expired meanwhile: its device starts again).
    h.base.advance(SignedDuration::from_mins(10));
    let issued = h.authorize().await;
    let found = h
        .base
        .app
        .pending_device_request(&h.ctx(), &h.session, &issued.user_code)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.client.client_id, "tv");
    assert_eq!(found.source_ip.as_deref(), Some("198.51.100.4"));
    assert_eq!(found.user_code, issued.user_code);
}
