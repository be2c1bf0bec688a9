//! Store conformance for OAuth clients: every body runs on SQLite, and on
//! PostgreSQL when `IDPLANE_TEST_DATABASE_URL` is set (see `conformance.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

#[allow(
    dead_code,
    reason = "the harness is shared with conformance.rs, which uses all of it"
)]
#[macro_use]
mod support;

use idplane_core::directory::PrincipalKind;
use idplane_core::{TenantId, TokenId};
use idplane_store::clients::{self, StoredClient};
use idplane_store::grants;
use idplane_store::keys::{self, StoredKey};
use idplane_store::resources::{self, StoredResource};
use idplane_store::tokens::{self, StoredToken};
use idplane_store::{Page, Store, StoreError, generations};
use serde_json::json;

use support::{TestDb, at, commit, create_principals, create_tenant, principal, read, t0};

conformance! {
    clients_round_trip_every_field
        => sqlite_clients_round_trip_every_field, postgres_clients_round_trip_every_field;
    client_ids_are_unique_per_tenant_and_case_sensitive
        => sqlite_client_ids_are_unique_per_tenant_and_case_sensitive,
           postgres_client_ids_are_unique_per_tenant_and_case_sensitive;
    updates_and_secrets_check_the_version
        => sqlite_updates_and_secrets_check_the_version, postgres_updates_and_secrets_check_the_version;
    clients_list_in_client_id_order_and_delete
        => sqlite_clients_list_in_client_id_order_and_delete,
           postgres_clients_list_in_client_id_order_and_delete;
    every_registry_change_moves_its_generation_in_its_transaction
        => sqlite_every_registry_change_moves_its_generation_in_its_transaction,
           postgres_every_registry_change_moves_its_generation_in_its_transaction;
}

fn client(tenant: TenantId, client_id: &str) -> StoredClient {
    StoredClient {
        tenant_id: tenant,
        client_id: client_id.into(),
        name: format!("{client_id} app"),
        client_type: "confidential".into(),
        redirect_uris: vec![
            "https://app.example.com/cb".into(),
            "https://app.example.com/other?x=1".into(),
        ],
        post_logout_redirect_uris: vec!["https://app.example.com/bye".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: vec!["email".into(), "openid".into()],
        token_endpoint_auth_method: "client_secret_basic".into(),
        jwks: None,
        jwks_uri: None,
        first_party: true,
        access_token_format: "jwt".into(),
        id_token_signed_response_alg: "ES256".into(),
        require_pushed_authorization_requests: false,
        access_token_lifetime_secs: 600,
        refresh_token_lifetime_secs: 86400,
        backchannel_logout_uri: Some("https://app.example.com/backchannel".into()),
        dpop_bound_access_tokens: false,
        registration_token_hash: None,
        secret_rotated_at: Some(t0()),
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

async fn insert(store: &Store, c: &StoredClient, hash: Option<&str>) -> Result<(), StoreError> {
    let mut tx = store.write().await.unwrap();
    clients::insert(&mut tx, c, hash).await?;
    commit(tx, c.tenant_id, "client.create").await;
    Ok(())
}

async fn clients_round_trip_every_field(store: Store, _db: &TestDb) {
    let tenant = create_tenant(&store, "acme").await;
    let a = client(tenant.id, "portal");
    insert(&store, &a, Some("hash-a")).await.unwrap();
    let mut b = client(tenant.id, "cli");
    b.client_type = "public".into();
    b.token_endpoint_auth_method = "private_key_jwt".into();
    b.jwks = Some(json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc"}]}));
    b.jwks_uri = Some("https://cli.example/jwks".into());
    b.first_party = false;
    b.require_pushed_authorization_requests = true;
    b.secret_rotated_at = None;
    b.redirect_uris = vec![];
    b.backchannel_logout_uri = None;
    b.dpop_bound_access_tokens = true;
    b.registration_token_hash = Some("registration-hash".into());
    insert(&store, &b, None).await.unwrap();

    let mut conn = read(&store).await;
    assert_eq!(
        clients::by_id(&mut conn, tenant.id, "portal")
            .await
            .unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        clients::by_id(&mut conn, tenant.id, "cli").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        clients::with_secret(&mut conn, tenant.id, "portal")
            .await
            .unwrap(),
        Some((a, Some("hash-a".to_owned())))
    );
    assert_eq!(
        clients::with_secret(&mut conn, tenant.id, "cli")
            .await
            .unwrap(),
        Some((b, None))
    );
    assert!(
        clients::by_id(&mut conn, tenant.id, "nobody")
            .await
            .unwrap()
            .is_none()
    );
}

async fn client_ids_are_unique_per_tenant_and_case_sensitive(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;
    insert(&store, &client(acme.id, "portal"), None)
        .await
        .unwrap();
    let dup = insert(&store, &client(acme.id, "portal"), None).await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");
    insert(&store, &client(other.id, "portal"), None)
        .await
        .unwrap();
    insert(&store, &client(acme.id, "Portal"), None)
        .await
        .unwrap();
    let mut conn = read(&store).await;
    // Another tenant's client is invisible.
    let theirs = clients::by_id(&mut conn, other.id, "portal")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(theirs.tenant_id, other.id);
}

async fn updates_and_secrets_check_the_version(store: Store, _db: &TestDb) {
    let tenant = create_tenant(&store, "acme").await;
    let c = client(tenant.id, "portal");
    insert(&store, &c, Some("old")).await.unwrap();

    let mut next = c.clone();
    next.name = "Renamed".into();
    next.scopes = vec!["openid".into()];
    next.jwks_uri = Some("https://x.example/jwks".into());
    next.backchannel_logout_uri = None;
    next.dpop_bound_access_tokens = true;
    next.registration_token_hash = Some("rat".into());
    next.updated_at = at(60);
    next.version = 2;
    let mut tx = store.write().await.unwrap();
    assert!(!clients::update(&mut tx, &next, 7).await.unwrap());
    assert!(clients::update(&mut tx, &next, 1).await.unwrap());
    commit(tx, tenant.id, "client.update").await;

    let mut tx = store.write().await.unwrap();
    assert!(
        !clients::set_secret(&mut tx, tenant.id, "portal", Some("new"), at(120), 1)
            .await
            .unwrap()
    );
    assert!(
        clients::set_secret(&mut tx, tenant.id, "portal", Some("new"), at(120), 2)
            .await
            .unwrap()
    );
    commit(tx, tenant.id, "client.secret.rotate").await;

    let mut conn = read(&store).await;
    let (stored, hash) = clients::with_secret(&mut conn, tenant.id, "portal")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash.as_deref(), Some("new"));
    assert_eq!(stored.version, 3);
    assert_eq!(stored.secret_rotated_at, Some(at(120)));
    assert_eq!(stored.updated_at, at(120));
    assert_eq!(stored.name, "Renamed");
    assert_eq!(stored.jwks_uri.as_deref(), Some("https://x.example/jwks"));
    assert_eq!(stored.backchannel_logout_uri, None);
    assert!(stored.dpop_bound_access_tokens);
    // Replacing the secret leaves the registration token alone.
    assert_eq!(stored.registration_token_hash.as_deref(), Some("rat"));
    drop(conn);

    // The registration token hash is replaced (rotated) and cleared by
    // updates.
    let mut next = stored.clone();
    next.registration_token_hash = None;
    next.version = 4;
    let mut tx = store.write().await.unwrap();
    assert!(clients::update(&mut tx, &next, 3).await.unwrap());
    commit(tx, tenant.id, "client.update").await;
    let mut conn = read(&store).await;
    let stored = clients::by_id(&mut conn, tenant.id, "portal")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, next);
    drop(conn);

    // Removing the secret clears its time too.
    let mut tx = store.write().await.unwrap();
    assert!(
        clients::set_secret(&mut tx, tenant.id, "portal", None, at(180), 4)
            .await
            .unwrap()
    );
    commit(tx, tenant.id, "client.update").await;
    let mut conn = read(&store).await;
    let (stored, hash) = clients::with_secret(&mut conn, tenant.id, "portal")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (hash, stored.secret_rotated_at, stored.version),
        (None, None, 5)
    );
}

async fn clients_list_in_client_id_order_and_delete(store: Store, _db: &TestDb) {
    let tenant = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;
    for id in ["m", "a", "z", "b-2", "b"] {
        insert(&store, &client(tenant.id, id), None).await.unwrap();
    }
    insert(&store, &client(other.id, "c"), None).await.unwrap();
    let mut conn = read(&store).await;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = clients::list(&mut conn, tenant.id, &Page { after, limit: 2 })
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|c| c.client_id.clone()));
        if !page.more {
            break;
        }
        after = page.items.last().map(|c| c.client_id.clone());
    }
    assert_eq!(seen, ["a", "b", "b-2", "m", "z"]);
    drop(conn);

    let mut tx = store.write().await.unwrap();
    assert!(clients::delete(&mut tx, tenant.id, "m").await.unwrap());
    assert!(!clients::delete(&mut tx, tenant.id, "m").await.unwrap());
    assert!(!clients::delete(&mut tx, tenant.id, "c").await.unwrap());
    commit(tx, tenant.id, "client.delete").await;
    let mut conn = read(&store).await;
    assert!(
        clients::by_id(&mut conn, tenant.id, "m")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        clients::by_id(&mut conn, other.id, "c")
            .await
            .unwrap()
            .is_some()
    );
}

/// Tokens, clients, resource servers and signing keys are what the request
/// paths cache in memory; each change to them moves the registry generation in its own
/// transaction, and nothing else does.
async fn every_registry_change_moves_its_generation_in_its_transaction(store: Store, _db: &TestDb) {
    async fn generation(store: &Store) -> i64 {
        generations::registry(&mut read(store).await).await.unwrap()
    }
    /// The generation now, which must have moved past `seen`.
    async fn moved(store: &Store, seen: i64, what: &str) -> i64 {
        let now = generation(store).await;
        assert!(now > seen, "{what} did not move it ({seen} -> {now})");
        now
    }
    let acme = create_tenant(&store, "acme").await;
    let portal = client(acme.id, "portal");
    let api = StoredResource {
        tenant_id: acme.id,
        identifier: "https://api.example.com".into(),
        name: "API".into(),
        scopes: vec!["read".into()],
        created_at: t0(),
        updated_at: t0(),
    };
    let pdp = StoredToken {
        id: TokenId::generate(),
        tenant_id: Some(acme.id),
        name: "gateway".into(),
        scope: "pdp".into(),
        principal_id: None,
        created_by: "root".into(),
        created_at: t0(),
        expires_at: None,
        revoked_at: None,
    };
    let seen = generation(&store).await;
    let mut tx = store.write().await.unwrap();
    tokens::insert(&mut tx, &pdp, "token-hash").await.unwrap();
    commit(tx, acme.id, "token.create").await;
    let seen = moved(&store, seen, "issuing a token").await;
    let mut tx = store.write().await.unwrap();
    assert!(tokens::revoke(&mut tx, pdp.id, at(60)).await.unwrap());
    commit(tx, acme.id, "token.revoke").await;
    let seen = moved(&store, seen, "revoking a token").await;

    insert(&store, &portal, Some("hash-a")).await.unwrap();
    let seen = moved(&store, seen, "registering a client").await;
    let mut tx = store.write().await.unwrap();
    let rotated = clients::set_secret(&mut tx, acme.id, "portal", Some("hash-b"), at(60), 1);
    assert!(rotated.await.unwrap());
    commit(tx, acme.id, "client.rotate_secret").await;
    let seen = moved(&store, seen, "rotating a client secret").await;
    let mut tx = store.write().await.unwrap();
    assert!(clients::delete(&mut tx, acme.id, "portal").await.unwrap());
    commit(tx, acme.id, "client.delete").await;
    let seen = moved(&store, seen, "deleting a client").await;

    let mut tx = store.write().await.unwrap();
    resources::put(&mut tx, &api).await.unwrap();
    commit(tx, acme.id, "resource.put").await;
    let seen = moved(&store, seen, "registering a resource server").await;
    let mut tx = store.write().await.unwrap();
    let deleted = resources::delete(&mut tx, acme.id, "https://api.example.com");
    assert!(deleted.await.unwrap());
    commit(tx, acme.id, "resource.delete").await;
    let seen = moved(&store, seen, "deleting a resource server").await;

    let key = StoredKey {
        id: "k1".into(),
        purpose: "token-signing".into(),
        algorithm: "ES256".into(),
        public_key: "{}".into(),
        sealed_private_key: "sealed".into(),
        created_at: t0(),
        retired_at: None,
    };
    let mut tx = store.write().await.unwrap();
    keys::insert(&mut tx, &key).await.unwrap();
    commit(tx, acme.id, "key.create").await;
    let seen = moved(&store, seen, "adding a signing key").await;

    // A revoked access token id moves the revocations' own counter only.
    let revocations = async || {
        generations::revocations(&mut read(&store).await)
            .await
            .unwrap()
    };
    let before = revocations().await;
    let mut tx = store.write().await.unwrap();
    grants::revoke_jti(&mut tx, acme.id, "jti-1", at(600), t0())
        .await
        .unwrap();
    commit(tx, acme.id, "oauth.revoke").await;
    assert!(revocations().await > before, "a revocation did not move it");
    assert_eq!(
        generation(&store).await,
        seen,
        "a revocation moved the registry's"
    );

    // A write that does not commit moves nothing.
    let before = generation(&store).await;
    let mut tx = store.write().await.unwrap();
    clients::insert(&mut tx, &portal, None).await.unwrap();
    drop(tx);
    assert_eq!(generation(&store).await, before, "a dropped write moved it");

    // Directory writes move the directory's generation, not this one.
    let directory = generations::directory(&mut read(&store).await)
        .await
        .unwrap();
    create_principals(&store, &[principal(acme.id, PrincipalKind::User, "alice")]).await;
    assert_eq!(
        generation(&store).await,
        before,
        "a directory write moved it"
    );
    assert!(
        generations::directory(&mut read(&store).await)
            .await
            .unwrap()
            > directory
    );
}
