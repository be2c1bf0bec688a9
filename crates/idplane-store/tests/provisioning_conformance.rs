//! Store conformance for provisioning targets and links: every body runs on
//! SQLite, and on PostgreSQL when `IDPLANE_TEST_DATABASE_URL` is set.

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

use std::time::Duration;

use idplane_core::directory::PrincipalKind;
use idplane_core::{PrincipalId, TenantId};
use idplane_store::jobs::{self, JobState, NewJob};
use idplane_store::provisioning::{self, Link, Target};
use idplane_store::{Store, StoreError};
use serde_json::json;

use support::{TestDb, at, commit, create_principal, create_tenant, principal, read, t0};

conformance! {
    targets_round_trip_and_names_are_unique
        => sqlite_targets_round_trip_and_names_are_unique,
           postgres_targets_round_trip_and_names_are_unique;
    links_upsert_and_go_with_their_target
        => sqlite_links_upsert_and_go_with_their_target,
           postgres_links_upsert_and_go_with_their_target;
    bury_dead_letters_at_once_under_the_lease
        => sqlite_bury_dead_letters_at_once_under_the_lease,
           postgres_bury_dead_letters_at_once_under_the_lease;
}

fn target(tenant: TenantId, name: &str, group: Option<PrincipalId>) -> Target {
    Target {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant,
        name: name.into(),
        base_url: "https://app.example/scim/v2".into(),
        token_sealed: "sealed".into(),
        scope_group: group,
        push_groups: true,
        mapping: json!({"userName": "userName"}),
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

async fn insert(store: &Store, t: &Target) -> Result<(), StoreError> {
    let mut tx = store.write().await.unwrap();
    provisioning::insert(&mut tx, t, &t.name.to_lowercase()).await?;
    commit(tx, t.tenant_id, "provisioning.target.create").await;
    Ok(())
}

async fn targets_round_trip_and_names_are_unique(store: Store, _db: &TestDb) {
    let t = create_tenant(&store, "acme").await;
    let group = principal(t.id, PrincipalKind::Group, "eng");
    create_principal(&store, &group).await;
    let first = target(t.id, "Payroll", Some(group.id));
    insert(&store, &first).await.unwrap();
    let mut conn = read(&store).await;
    assert_eq!(
        provisioning::by_id(&mut conn, t.id, &first.id)
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        provisioning::by_name(&mut conn, t.id, "payroll")
            .await
            .unwrap(),
        Some(first.clone())
    );
    drop(conn);

    // Names are unique per tenant, case-insensitively; other tenants are apart.
    let clash = insert(&store, &target(t.id, "PAYROLL", None)).await;
    assert!(matches!(clash, Err(StoreError::Duplicate(_))), "{clash:?}");
    let other = create_tenant(&store, "other").await;
    insert(&store, &target(other.id, "Payroll", None))
        .await
        .unwrap();
    let mut conn = read(&store).await;
    assert!(
        provisioning::by_id(&mut conn, other.id, &first.id)
            .await
            .unwrap()
            .is_none()
    );
    drop(conn);

    // Updates are optimistic.
    let next = Target {
        name: "Payroll EU".into(),
        push_groups: false,
        scope_group: None,
        mapping: json!({"userName": "email"}),
        updated_at: at(5),
        version: 2,
        ..first.clone()
    };
    let mut tx = store.write().await.unwrap();
    assert!(
        provisioning::update(&mut tx, &next, "payroll eu", 1)
            .await
            .unwrap()
    );
    assert!(
        !provisioning::update(&mut tx, &next, "payroll eu", 1)
            .await
            .unwrap()
    );
    commit(tx, t.id, "provisioning.target.update").await;
    let listed = provisioning::list(&mut read(&store).await, t.id)
        .await
        .unwrap();
    assert_eq!(listed, vec![next.clone()]);

    let mut tx = store.write().await.unwrap();
    assert!(provisioning::delete(&mut tx, t.id, &next.id).await.unwrap());
    assert!(!provisioning::delete(&mut tx, t.id, &next.id).await.unwrap());
    commit(tx, t.id, "provisioning.target.delete").await;
    assert!(
        provisioning::list(&mut read(&store).await, t.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn links_upsert_and_go_with_their_target(store: Store, _db: &TestDb) {
    let t = create_tenant(&store, "acme").await;
    let app = target(t.id, "crm", None);
    insert(&store, &app).await.unwrap();
    // A link outlives its principal (no such principal is stored here):
    // a remote deletion needs it after the local one.
    let who = PrincipalId::generate();
    let mut link = Link {
        target_id: app.id.clone(),
        principal_id: who,
        remote_id: "r-1".into(),
        last_pushed_version: 1,
        pushed_at: at(1),
    };
    let mut tx = store.write().await.unwrap();
    provisioning::upsert_link(&mut tx, &link).await.unwrap();
    link.remote_id = "r-2".into();
    link.last_pushed_version = 3;
    link.pushed_at = at(2);
    provisioning::upsert_link(&mut tx, &link).await.unwrap();
    commit(tx, t.id, "provisioning.push").await;
    assert_eq!(
        provisioning::link(&mut read(&store).await, &app.id, who)
            .await
            .unwrap(),
        Some(link.clone())
    );

    let mut tx = store.write().await.unwrap();
    assert!(
        provisioning::delete_link(&mut tx, &app.id, who)
            .await
            .unwrap()
    );
    assert!(
        !provisioning::delete_link(&mut tx, &app.id, who)
            .await
            .unwrap()
    );
    provisioning::upsert_link(&mut tx, &link).await.unwrap();
    commit(tx, t.id, "provisioning.push").await;

    // Deleting the target deletes its links.
    let mut tx = store.write().await.unwrap();
    provisioning::delete(&mut tx, t.id, &app.id).await.unwrap();
    commit(tx, t.id, "provisioning.target.delete").await;
    assert!(
        provisioning::link(&mut read(&store).await, &app.id, who)
            .await
            .unwrap()
            .is_none()
    );
}

async fn bury_dead_letters_at_once_under_the_lease(store: Store, _db: &TestDb) {
    let t = create_tenant(&store, "acme").await;
    let mut tx = store.write().await.unwrap();
    jobs::schedule(
        &mut tx,
        &NewJob {
            tenant_id: t.id,
            kind: "scim.push".into(),
            key: "target:user".into(),
            payload: json!({}),
            run_at: at(0),
            now: at(0),
        },
    )
    .await
    .unwrap();
    commit(tx, t.id, "job.schedule").await;
    let lease = Duration::from_secs(60);
    let claimed = jobs::claim(&store, "r1", at(1), lease, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);

    // Another runner cannot bury a job it does not hold.
    let mut tx = store.write().await.unwrap();
    let lost = jobs::bury(&mut tx, &claimed[0], "r2", "nope", at(2)).await;
    assert!(matches!(lost, Err(StoreError::LeaseLost(_))), "{lost:?}");
    jobs::bury(&mut tx, &claimed[0], "r1", "400 invalidValue", at(2))
        .await
        .unwrap();
    commit(tx, t.id, "provisioning.push").await;
    let job = jobs::by_key(&mut read(&store).await, t.id, "scim.push", "target:user")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.last_error.as_deref(), Some("400 invalidValue"));
    assert!(job.lease_owner.is_none());
    // Dead jobs are not claimed again.
    assert!(
        jobs::claim(&store, "r1", at(500), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
