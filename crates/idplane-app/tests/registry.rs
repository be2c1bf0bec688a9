//! The registrations request paths read from memory (`pdp` tokens, OAuth
//! clients, resource servers, signing keys), changed on another node: each change
//! applies here once this node reads the registry generation again, within
//! `REGISTRY_POLL`; until then the cache keeps answering without a round
//! trip. Two nodes share one database and a manual clock.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use idplane_app::oidc::client_auth::ClientCredentials;
use idplane_app::oidc::clients::CreateClient;
use idplane_app::oidc::keys::SigningAlgorithm;
use idplane_app::registry::REGISTRY_POLL;
use idplane_app::tokens::{Caller, CreateToken};
use idplane_app::{App, AppError};
use idplane_core::{Actor, Ctx, RequestMeta};
use jiff::SignedDuration;
use serde_json::json;
use support::Harness;

const TOKEN_ENDPOINT: &str = "http://localhost:8080/oauth2/token";
const API: &str = "https://api.example.com";

/// A second node over the same database, and the root's context there.
async fn other_node(h: &Harness) -> (App, Ctx) {
    // This node's queued audit events go first: two writers on one SQLite
    // file would otherwise race for it.
    h.app.audit_writer().flush().await;
    let other = h.second_node().await;
    let tenant = other.default_tenant_id().await.unwrap();
    let ctx = other.ctx(tenant, Actor::Root, RequestMeta::default());
    (other, ctx)
}

/// Moves the clock to just before the next read of the generation, checks
/// that `stale` still holds, then to that read, and checks that `fresh`
/// holds.
async fn within_a_poll(h: &Harness, stale: impl AsyncFn() -> bool, fresh: impl AsyncFn() -> bool) {
    h.advance(REGISTRY_POLL - SignedDuration::from_millis(1));
    assert!(
        stale().await,
        "this node has not read the generation again yet"
    );
    h.advance(SignedDuration::from_millis(1));
    assert!(fresh().await, "the change was not seen within a poll");
}

#[tokio::test]
async fn a_pdp_token_revoked_on_another_node_stops_working_within_a_poll() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let cmd: CreateToken = serde_json::from_value(json!({"name": "pep", "scope": "pdp"})).unwrap();
    let issued = h.app.issue_token(&ctx, &Caller::root(), cmd).await.unwrap();
    let meta = RequestMeta::default();
    let accepted = async || {
        h.app
            .authenticate(&issued.secret, ctx.tenant, &meta)
            .await
            .is_ok()
    };
    assert!(accepted().await);

    let (other, other_ctx) = other_node(&h).await;
    other
        .revoke_token(&other_ctx, issued.token.stored.id)
        .await
        .unwrap();
    within_a_poll(&h, accepted, async || !accepted().await).await;
    let refused = h.app.authenticate(&issued.secret, ctx.tenant, &meta).await;
    assert!(
        matches!(refused, Err(AppError::Unauthenticated)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_client_secret_rotated_on_another_node_stops_working_within_a_poll() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let web = CreateClient {
        client_id: Some("portal".into()),
        name: "Web app".into(),
        redirect_uris: vec!["https://app.example.com/callback".into()],
        ..CreateClient::default()
    };
    let old = h
        .app
        .create_client(&ctx, web)
        .await
        .unwrap()
        .secret
        .unwrap();
    let accepts = async |secret: &str| {
        let basic = ClientCredentials::Basic {
            client_id: "portal".into(),
            secret: secret.to_owned(),
        };
        h.app
            .authenticate_client(&ctx, &basic, TOKEN_ENDPOINT)
            .await
            .is_ok()
    };
    assert!(accepts(&old).await);

    let (other, other_ctx) = other_node(&h).await;
    let rotated = other
        .rotate_client_secret(&other_ctx, "portal", None)
        .await
        .unwrap();
    let new = rotated.secret.unwrap();
    within_a_poll(
        &h,
        async || accepts(&old).await,
        async || !accepts(&old).await,
    )
    .await;
    assert!(accepts(&new).await, "the new secret is refused");

    // Deleted there: unknown here within a poll too.
    h.app.audit_writer().flush().await;
    other
        .delete_client(&other_ctx, "portal", None)
        .await
        .unwrap();
    within_a_poll(
        &h,
        async || accepts(&new).await,
        async || !accepts(&new).await,
    )
    .await;
}

#[tokio::test]
async fn a_resource_server_removed_on_another_node_is_refused_within_a_poll() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    h.app
        .put_resource(&ctx, API, "API", vec!["read".into()])
        .await
        .unwrap();
    let named = async || {
        h.app
            .check_resources(&h.ctx().await, &[API.to_owned()], &[])
            .await
            .is_ok()
    };
    assert!(named().await);

    let (other, other_ctx) = other_node(&h).await;
    other.delete_resource(&other_ctx, API).await.unwrap();
    within_a_poll(&h, named, async || !named().await).await;
}

#[tokio::test]
async fn a_signing_key_rotated_on_another_node_signs_and_is_published_here_within_a_poll() {
    let h = Harness::new().await;
    let es256 = || {
        h.app
            .active_signing_key(SigningAlgorithm::Es256)
            .unwrap()
            .kid
            .clone()
    };
    let published = |kid: &str| {
        h.app.jwks(h.app.clock().now())["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid)
    };
    let before = es256();
    h.app.watch_registry().await;

    let (other, other_ctx) = other_node(&h).await;
    let rotated = other
        .rotate_signing_key(&other_ctx, SigningAlgorithm::Es256)
        .await
        .unwrap();
    // The server's watch runs every poll; nothing else here reads the
    // registry.
    let watched = async || {
        h.app.watch_registry().await;
        es256() == rotated.kid && published(&rotated.kid)
    };
    within_a_poll(&h, async || !watched().await, watched).await;
    assert!(published(&before), "the retired key left the JWKS early");
}

#[tokio::test]
async fn an_access_token_revoked_on_another_node_is_refused_here_within_a_poll() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let service = CreateClient {
        client_id: Some("svc".into()),
        name: "Service".into(),
        grant_types: Some(vec!["client_credentials".into()]),
        ..CreateClient::default()
    };
    h.app.create_client(&ctx, service).await.unwrap();
    let client = h
        .app
        .cached_client(ctx.tenant, "svc")
        .await
        .unwrap()
        .unwrap();
    let issued = h
        .app
        .client_credentials(&ctx, &client, None, &[], None)
        .await
        .unwrap();
    let valid = async || {
        h.app.watch_revocations().await;
        h.app
            .validate_access_token(ctx.tenant, &issued.access_token)
            .await
            .unwrap()
            .is_some()
    };
    assert!(valid().await);

    let (other, other_ctx) = other_node(&h).await;
    let there = other
        .cached_client(other_ctx.tenant, "svc")
        .await
        .unwrap()
        .unwrap();
    other
        .revoke_oauth_token(&other_ctx, &there, &issued.access_token)
        .await
        .unwrap();
    within_a_poll(&h, valid, async || !valid().await).await;
}
