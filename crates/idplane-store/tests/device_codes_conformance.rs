//! Store conformance for device authorization requests (RFC 8628): every
//! body runs on SQLite, and on PostgreSQL when `IDPLANE_TEST_DATABASE_URL`
//! is set (see `conformance.rs`).

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

use idplane_core::TenantId;
use idplane_store::device_codes::{self, DeviceCodeStatus, StoredDeviceCode};
use idplane_store::{Store, StoreError};
use serde_json::json;

use support::{TestDb, at, commit, create_tenant, read, t0};

conformance! {
    device_codes_round_trip_and_user_codes_are_unique
        => sqlite_device_codes_round_trip_and_user_codes_are_unique,
           postgres_device_codes_round_trip_and_user_codes_are_unique;
    decisions_and_issuance_happen_once_and_never_after_expiry
        => sqlite_decisions_and_issuance_happen_once_and_never_after_expiry,
           postgres_decisions_and_issuance_happen_once_and_never_after_expiry;
    polls_are_recorded_by_compare_and_set
        => sqlite_polls_are_recorded_by_compare_and_set,
           postgres_polls_are_recorded_by_compare_and_set;
    expired_requests_are_purged
        => sqlite_expired_requests_are_purged, postgres_expired_requests_are_purged;
}

fn device_code(tenant: TenantId, hash: &str, user_code: &str) -> StoredDeviceCode {
    StoredDeviceCode {
        device_code_hash: hash.into(),
        user_code: user_code.into(),
        tenant_id: tenant,
        client_id: "tv-app".into(),
        request: json!({"scopes": ["openid", "profile"], "resources": []}),
        status: DeviceCodeStatus::Pending,
        grant: None,
        created_at: t0(),
        expires_at: at(600),
        interval_secs: 5,
        last_polled_at: None,
        source_ip: Some("192.0.2.7".into()),
        user_agent: Some("SmartTV/1.0".into()),
    }
}

async fn insert(store: &Store, d: &StoredDeviceCode) -> Result<(), StoreError> {
    let mut tx = store.write().await.unwrap();
    device_codes::insert(&mut tx, d).await?;
    commit(tx, d.tenant_id, "oauth.device_authorization").await;
    Ok(())
}

async fn get(store: &Store, hash: &str) -> StoredDeviceCode {
    let mut conn = read(store).await;
    device_codes::by_hash(&mut conn, hash)
        .await
        .unwrap()
        .unwrap()
}

async fn device_codes_round_trip_and_user_codes_are_unique(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;
    let a = device_code(acme.id, "hash-a", "BCDFGHJK");
    insert(&store, &a).await.unwrap();
    let mut b = device_code(acme.id, "hash-b", "LMNPQRST");
    b.source_ip = None;
    b.user_agent = None;
    b.last_polled_at = Some(at(3));
    b.status = DeviceCodeStatus::Denied;
    b.grant = Some(json!({"subject": "x"}));
    insert(&store, &b).await.unwrap();

    let mut conn = read(&store).await;
    assert_eq!(
        device_codes::by_hash(&mut conn, "hash-a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        device_codes::by_hash(&mut conn, "hash-b").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        device_codes::by_user_code(&mut conn, acme.id, "BCDFGHJK")
            .await
            .unwrap(),
        Some(a.clone())
    );
    // User codes are looked up within the tenant, exactly.
    assert_eq!(
        device_codes::by_user_code(&mut conn, other.id, "BCDFGHJK")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        device_codes::by_user_code(&mut conn, acme.id, "bcdfghjk")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        device_codes::by_hash(&mut conn, "nope").await.unwrap(),
        None
    );
    drop(conn);

    // A user code is unique across tenants; so is a device code.
    let clash = device_code(other.id, "hash-c", "BCDFGHJK");
    assert!(matches!(
        insert(&store, &clash).await,
        Err(StoreError::Duplicate(_))
    ));
    let clash = device_code(other.id, "hash-a", "VWXZBCDF");
    assert!(matches!(
        insert(&store, &clash).await,
        Err(StoreError::Duplicate(_))
    ));
}

async fn decisions_and_issuance_happen_once_and_never_after_expiry(store: Store, _db: &TestDb) {
    let tenant = create_tenant(&store, "acme").await;
    for (hash, user_code) in [("h1", "BBBBBBBB"), ("h2", "CCCCCCCC"), ("h3", "DDDDDDDD")] {
        insert(&store, &device_code(tenant.id, hash, user_code))
            .await
            .unwrap();
    }
    let grant = json!({"client_id": "tv-app", "scopes": ["openid"]});

    // Approve once; no second decision either way.
    let mut tx = store.write().await.unwrap();
    assert!(
        !device_codes::mark_issued(&mut tx, "h1", at(10))
            .await
            .unwrap()
    );
    assert!(
        device_codes::approve(&mut tx, "h1", &grant, at(10))
            .await
            .unwrap()
    );
    assert!(
        !device_codes::approve(&mut tx, "h1", &grant, at(11))
            .await
            .unwrap()
    );
    assert!(!device_codes::deny(&mut tx, "h1", at(11)).await.unwrap());
    commit(tx, tenant.id, "oauth.device_approve").await;
    let approved = get(&store, "h1").await;
    assert_eq!(approved.status, DeviceCodeStatus::Approved);
    assert_eq!(approved.grant, Some(grant.clone()));

    // Issued once; the grant is dropped.
    let mut tx = store.write().await.unwrap();
    assert!(
        device_codes::mark_issued(&mut tx, "h1", at(20))
            .await
            .unwrap()
    );
    assert!(
        !device_codes::mark_issued(&mut tx, "h1", at(21))
            .await
            .unwrap()
    );
    commit(tx, tenant.id, "oauth.token").await;
    let issued = get(&store, "h1").await;
    assert_eq!(issued.status, DeviceCodeStatus::Issued);
    assert_eq!(issued.grant, None);

    // Denied once; never approved or issued afterwards.
    let mut tx = store.write().await.unwrap();
    assert!(device_codes::deny(&mut tx, "h2", at(10)).await.unwrap());
    assert!(!device_codes::deny(&mut tx, "h2", at(10)).await.unwrap());
    assert!(
        !device_codes::approve(&mut tx, "h2", &grant, at(10))
            .await
            .unwrap()
    );
    assert!(
        !device_codes::mark_issued(&mut tx, "h2", at(10))
            .await
            .unwrap()
    );
    commit(tx, tenant.id, "oauth.device_deny").await;
    assert_eq!(get(&store, "h2").await.status, DeviceCodeStatus::Denied);

    // At the expiry instant nothing moves any more.
    let mut tx = store.write().await.unwrap();
    assert!(
        !device_codes::approve(&mut tx, "h3", &grant, at(600))
            .await
            .unwrap()
    );
    assert!(!device_codes::deny(&mut tx, "h3", at(600)).await.unwrap());
    assert!(
        device_codes::approve(&mut tx, "h3", &grant, at(599))
            .await
            .unwrap()
    );
    assert!(
        !device_codes::mark_issued(&mut tx, "h3", at(600))
            .await
            .unwrap()
    );
    commit(tx, tenant.id, "oauth.device_approve").await;
    assert_eq!(get(&store, "h3").await.status, DeviceCodeStatus::Approved);
}

async fn polls_are_recorded_by_compare_and_set(store: Store, _db: &TestDb) {
    let tenant = create_tenant(&store, "acme").await;
    insert(&store, &device_code(tenant.id, "h", "BCDFBCDF"))
        .await
        .unwrap();
    let mut tx = store.write().await.unwrap();
    assert!(
        device_codes::record_poll(&mut tx, "h", None, at(1), 5)
            .await
            .unwrap()
    );
    // A caller that saw "never polled" lost the race.
    assert!(
        !device_codes::record_poll(&mut tx, "h", None, at(2), 10)
            .await
            .unwrap()
    );
    assert!(
        device_codes::record_poll(&mut tx, "h", Some(at(1)), at(2), 10)
            .await
            .unwrap()
    );
    assert!(
        !device_codes::record_poll(&mut tx, "unknown", None, at(2), 10)
            .await
            .unwrap()
    );
    tx.commit_all(Vec::new()).await.unwrap();
    let polled = get(&store, "h").await;
    assert_eq!(polled.last_polled_at, Some(at(2)));
    assert_eq!(polled.interval_secs, 10);
    assert_eq!(polled.created_at, t0());
}

async fn expired_requests_are_purged(store: Store, _db: &TestDb) {
    let tenant = create_tenant(&store, "acme").await;
    let mut old = device_code(tenant.id, "old", "GGGGGGGG");
    old.expires_at = at(100);
    insert(&store, &old).await.unwrap();
    insert(&store, &device_code(tenant.id, "new", "HHHHHHHH"))
        .await
        .unwrap();
    let mut tx = store.write().await.unwrap();
    assert_eq!(
        device_codes::purge_expired(&mut tx, at(100)).await.unwrap(),
        1
    );
    assert_eq!(
        device_codes::purge_expired(&mut tx, at(100)).await.unwrap(),
        0
    );
    commit(tx, tenant.id, "housekeeping.purge").await;
    let mut conn = read(&store).await;
    assert_eq!(device_codes::by_hash(&mut conn, "old").await.unwrap(), None);
    assert!(
        device_codes::by_hash(&mut conn, "new")
            .await
            .unwrap()
            .is_some()
    );
    // The purged request's user code may be drawn again.
    drop(conn);
    insert(&store, &device_code(tenant.id, "again", "GGGGGGGG"))
        .await
        .unwrap();
}
