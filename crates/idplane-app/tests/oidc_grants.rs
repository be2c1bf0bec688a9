//! OAuth grants against the injected clock: codes expire after 60 s,
//! refresh families keep their absolute end, access tokens never outlive a
//! time-bound role they reflect, deprovisioning revokes what a person's
//! relying parties hold, and a remembered JWT verification expires with its
//! token.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_app::Field;
use idplane_app::authn::Amr;
use idplane_app::directory::Expiry;
use idplane_app::directory::principals::{CreateUser, UpdateUser};
use idplane_app::directory::roles::{AssignRole, CreateRole};
use idplane_app::oidc::ErrorCode;
use idplane_app::oidc::authorize::{AuthorizationRequest, Params};
use idplane_app::oidc::clients::{Client, CreateClient};
use idplane_app::oidc::token::TokenResponse;
use idplane_core::directory::{Principal, Status};
use idplane_store::sessions::StoredSession;
use jiff::SignedDuration;
use sha2::{Digest, Sha256};
use support::Harness;

const REDIRECT: &str = "https://app.example.com/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

impl Harness {
    async fn person(&self) -> (Principal, StoredSession) {
        let ctx = self.ctx().await;
        let user = self
            .app
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
        let session = self
            .app
            .create_session(&ctx, &user, &[Amr::Pwd], None)
            .await
            .unwrap()
            .session;
        (user, session)
    }

    async fn client(&self) -> (Arc<Client>, String) {
        let ctx = self.ctx().await;
        let created = self
            .app
            .create_client(
                &ctx,
                serde_json::from_value::<CreateClient>(serde_json::json!({
                    "client_id": "app",
                    "name": "App",
                    "redirect_uris": [REDIRECT],
                    "scopes": ["openid"],
                    "first_party": true,
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        let client = self
            .app
            .cached_client(ctx.tenant, "app")
            .await
            .unwrap()
            .unwrap();
        (client, created.secret.unwrap())
    }

    async fn request(&self) -> AuthorizationRequest {
        let ctx = self.ctx().await;
        let challenge = B64.encode(Sha256::digest(VERIFIER.as_bytes()));
        let params = Params::from_pairs(
            [
                ("client_id", "app"),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
                ("scope", "openid"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        self.app
            .authorization_request(&ctx, &params)
            .await
            .unwrap()
            .1
    }

    async fn code(&self, person: &Principal, session: &StoredSession) -> String {
        let ctx = self.ctx().await;
        let request = self.request().await;
        self.app
            .issue_code(&ctx, &request, session, person)
            .await
            .unwrap()
    }

    /// The code exchanged with the right redirect URI and verifier.
    async fn exchange(&self, client: &Client, code: &str) -> TokenResponse {
        let ctx = self.ctx().await;
        self.app
            .exchange_code(&ctx, client, code, Some(REDIRECT), Some(VERIFIER), None)
            .await
            .unwrap()
    }
}

fn claims(jwt: &str) -> serde_json::Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn codes_expire_after_sixty_seconds() {
    let h = Harness::new().await;
    let (person, session) = h.person().await;
    let (client, _) = h.client().await;
    let code = h.code(&person, &session).await;
    h.clock.advance(SignedDuration::from_secs(61));
    let ctx = h.ctx().await;
    let err = h
        .app
        .exchange_code(&ctx, &client, &code, Some(REDIRECT), Some(VERIFIER), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidGrant);
    assert!(err.description.contains("expired"), "{err}");

    // Within the minute it works once.
    let code = h.code(&person, &session).await;
    h.clock.advance(SignedDuration::from_secs(59));
    let tokens = h.exchange(&client, &code).await;
    assert!(tokens.id_token.is_some());
    // The redirect URI and the verifier must match.
    let code = h.code(&person, &session).await;
    let ctx = h.ctx().await;
    for (redirect, verifier) in [
        (Some("https://app.example.com/other"), Some(VERIFIER)),
        (None, Some(VERIFIER)),
        (Some(REDIRECT), Some("x".repeat(43)).as_deref()),
    ] {
        let err = h
            .app
            .exchange_code(&ctx, &client, &code, redirect, verifier, None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidGrant);
    }
}

#[tokio::test]
async fn access_tokens_never_outlive_a_time_bound_role() {
    let h = Harness::new().await;
    let (person, session) = h.person().await;
    let (client, _) = h.client().await;
    let ctx = h.ctx().await;
    h.app
        .create_role(
            &ctx,
            CreateRole {
                name: "oncall".into(),
                description: None,
                entitlements: vec![],
            },
        )
        .await
        .unwrap();
    h.app
        .assign_role(
            &ctx,
            AssignRole {
                role: "oncall".into(),
                principal: "alice".into(),
                expiry: Expiry {
                    expires_at: None,
                    expires_in: Some("2m".into()),
                },
            },
        )
        .await
        .unwrap();
    let code = h.code(&person, &session).await;
    let tokens = h.exchange(&client, &code).await;
    let access = claims(&tokens.access_token);
    assert_eq!(access["roles"], serde_json::json!(["oncall"]));
    assert_eq!(
        access["exp"].as_i64().unwrap(),
        (ctx.now + SignedDuration::from_mins(2)).as_second()
    );
    assert_eq!(tokens.expires_in, 120);
    // Refreshed after the role ended, the token no longer carries it.
    h.clock.advance(SignedDuration::from_mins(3));
    let ctx = h.ctx().await;
    let refreshed = h
        .app
        .refresh(
            &ctx,
            &client,
            tokens.refresh_token.as_deref().unwrap(),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        claims(&refreshed.access_token)["roles"],
        serde_json::json!([])
    );
    assert_eq!(refreshed.expires_in, 600);
}

#[tokio::test]
async fn refresh_families_keep_their_end_and_die_with_the_account() {
    let h = Harness::new().await;
    let (person, session) = h.person().await;
    let (client, _) = h.client().await;
    let code = h.code(&person, &session).await;
    let tokens = h.exchange(&client, &code).await;
    // Rotation 29 days in does not extend the 30-day family.
    h.clock.advance(SignedDuration::from_hours(29 * 24));
    let ctx = h.ctx().await;
    let rotated = h
        .app
        .refresh(
            &ctx,
            &client,
            tokens.refresh_token.as_deref().unwrap(),
            None,
            None,
        )
        .await
        .unwrap();
    h.clock.advance(SignedDuration::from_hours(24));
    let ctx = h.ctx().await;
    let err = h
        .app
        .refresh(
            &ctx,
            &client,
            rotated.refresh_token.as_deref().unwrap(),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(err.description.contains("expired"), "{err}");

    // Deprovisioning revokes the refresh tokens and the access token.
    let code = h.code(&person, &session).await;
    let ctx = h.ctx().await;
    let tokens = h.exchange(&client, &code).await;
    assert!(
        h.app
            .validate_access_token(ctx.tenant, &tokens.access_token)
            .await
            .unwrap()
            .is_some()
    );
    h.app
        .update_user(
            &ctx,
            person.id,
            UpdateUser {
                status: Field::Set(Status::Deprovisioned),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let err = h
        .app
        .refresh(
            &ctx,
            &client,
            tokens.refresh_token.as_deref().unwrap(),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(err.description.contains("revoked"), "{err}");
    assert!(
        h.app
            .validate_access_token(ctx.tenant, &tokens.access_token)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_remembered_verification_still_expires_and_never_covers_other_bytes() {
    let h = Harness::new().await;
    let (person, session) = h.person().await;
    let (client, _) = h.client().await;
    let code = h.code(&person, &session).await;
    let ctx = h.ctx().await;
    let tokens = h.exchange(&client, &code).await;
    let valid = async |token: &str| {
        h.app
            .validate_access_token(ctx.tenant, token)
            .await
            .unwrap()
            .is_some()
    };
    // The second check is answered from the remembered verification.
    assert!(valid(&tokens.access_token).await);
    assert!(valid(&tokens.access_token).await);
    // One character of the signature changed: verified afresh, and refused.
    let mut tampered = tokens.access_token.clone().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    assert!(!valid(std::str::from_utf8(&tampered).unwrap()).await);
    h.clock
        .advance(SignedDuration::from_secs(tokens.expires_in));
    assert!(!valid(&tokens.access_token).await);
}
