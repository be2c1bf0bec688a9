//! Store conformance for policy versions: every body runs on SQLite, and on
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

use idplane_store::{Store, policies};

use support::{TestDb, at, commit, create_tenant, read};

conformance! {
    versions_number_up_per_tenant_and_the_pointer_moves
        => sqlite_versions_number_up_per_tenant_and_the_pointer_moves,
           postgres_versions_number_up_per_tenant_and_the_pointer_moves;
    a_refused_change_leaves_no_version
        => sqlite_a_refused_change_leaves_no_version, postgres_a_refused_change_leaves_no_version;
}

async fn versions_number_up_per_tenant_and_the_pointer_moves(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;
    let mut conn = read(&store).await;
    assert_eq!(policies::active(&mut conn, acme.id).await.unwrap(), None);
    drop(conn);

    for (n, tenant) in [(1, acme.id), (2, acme.id), (1, other.id)] {
        let mut tx = store.write().await.unwrap();
        let v = policies::append(
            &mut tx,
            tenant,
            &format!("{{\"n\":{n}}}"),
            "root",
            "msg",
            at(n),
        )
        .await
        .unwrap();
        assert_eq!(v, n);
        policies::activate(&mut tx, tenant, v, at(n)).await.unwrap();
        commit(tx, tenant, "policy.version").await;
    }

    let mut conn = read(&store).await;
    let active = policies::active(&mut conn, acme.id).await.unwrap().unwrap();
    assert_eq!((active.version, active.bundle.as_str()), (2, "{\"n\":2}"));
    assert_eq!(active.created_at, at(2));
    let listed = policies::list(&mut conn, acme.id, 10).await.unwrap();
    assert_eq!(listed.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
    drop(conn);

    // Rolling back moves the pointer; version 2 stays as it was.
    let mut tx = store.write().await.unwrap();
    policies::activate(&mut tx, acme.id, 1, at(9))
        .await
        .unwrap();
    commit(tx, acme.id, "policy.rollback").await;
    let mut conn = read(&store).await;
    assert_eq!(
        policies::active_number(&mut conn, acme.id).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        policies::get(&mut conn, acme.id, 2)
            .await
            .unwrap()
            .unwrap()
            .bundle,
        "{\"n\":2}"
    );
    assert_eq!(
        policies::active_number(&mut conn, other.id).await.unwrap(),
        Some(1)
    );
    assert_eq!(policies::get(&mut conn, other.id, 2).await.unwrap(), None);
}

async fn a_refused_change_leaves_no_version(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let mut tx = store.write().await.unwrap();
    policies::append(&mut tx, acme.id, "{}", "root", "never committed", at(1))
        .await
        .unwrap();
    // A version that does not exist cannot be activated.
    assert!(
        policies::activate(&mut tx, acme.id, 7, at(1))
            .await
            .is_err()
    );
    drop(tx);
    let mut conn = read(&store).await;
    assert!(
        policies::list(&mut conn, acme.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
