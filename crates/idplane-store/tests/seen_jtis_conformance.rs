//! Store conformance for one-time JWT ids (client assertions, DPoP proofs):
//! every body runs on SQLite, and on PostgreSQL when
//! `IDPLANE_TEST_DATABASE_URL` is set (see `conformance.rs`).

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

use idplane_store::Store;
use idplane_store::seen_jtis;

use support::{TestDb, at};

conformance! {
    a_jti_is_new_once_per_issuer
        => sqlite_a_jti_is_new_once_per_issuer, postgres_a_jti_is_new_once_per_issuer;
    purge_removes_only_expired_ids
        => sqlite_purge_removes_only_expired_ids, postgres_purge_removes_only_expired_ids;
    concurrent_remembers_of_one_jti_have_one_winner
        => sqlite_concurrent_remembers_of_one_jti_have_one_winner,
           postgres_concurrent_remembers_of_one_jti_have_one_winner;
    concurrent_remembers_of_distinct_jtis_all_win
        => sqlite_concurrent_remembers_of_distinct_jtis_all_win,
           postgres_concurrent_remembers_of_distinct_jtis_all_win;
}

async fn remember(store: &Store, issuer: &str, jti: &str, expires_secs: i64) -> bool {
    seen_jtis::remember(store, issuer, jti, at(expires_secs))
        .await
        .expect("remember")
}

async fn rows(db: &TestDb) -> i64 {
    let mut conn = db.raw().await;
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM oauth_seen_jtis")
        .fetch_one(&mut conn)
        .await
        .expect("count")
}

async fn a_jti_is_new_once_per_issuer(store: Store, db: &TestDb) {
    assert!(remember(&store, "assertion:t:app", "j1", 60).await);
    // A replay is `false`, not an error, whatever expiry it claims.
    assert!(!remember(&store, "assertion:t:app", "j1", 60).await);
    assert!(!remember(&store, "assertion:t:app", "j1", 600).await);
    // Ids are per issuer, and case-sensitive.
    assert!(remember(&store, "assertion:t:other", "j1", 60).await);
    assert!(remember(&store, "dpop:jkt", "j1", 60).await);
    assert!(remember(&store, "assertion:t:app", "J1", 60).await);
    assert!(remember(&store, "assertion:t:app", "j2", 60).await);
    assert!(!remember(&store, "dpop:jkt", "j1", 60).await);
    assert_eq!(rows(db).await, 5);
    // Long ids and issuers (a DPoP issuer holds a 43-character thumbprint).
    let long = "x".repeat(512);
    assert!(remember(&store, &format!("dpop:{long}"), &long, 60).await);
    assert!(!remember(&store, &format!("dpop:{long}"), &long, 60).await);
}

async fn purge_removes_only_expired_ids(store: Store, db: &TestDb) {
    assert!(remember(&store, "i", "a", 10).await);
    assert!(remember(&store, "i", "b", 20).await);
    assert!(remember(&store, "i", "c", 30).await);
    assert_eq!(
        seen_jtis::purge_expired(&store, at(5)).await.unwrap(),
        0,
        "nothing expired yet"
    );
    // Expiry is inclusive: an id whose JWT expires at `now` goes.
    assert_eq!(seen_jtis::purge_expired(&store, at(20)).await.unwrap(), 2);
    assert_eq!(rows(db).await, 1);
    assert!(!remember(&store, "i", "c", 30).await, "c is still seen");
    // A purged id is new again (its JWT expired long ago).
    assert!(remember(&store, "i", "a", 40).await);
    assert_eq!(seen_jtis::purge_expired(&store, at(20)).await.unwrap(), 0);
    // Millisecond precision.
    let just_before = at(30) - jiff::SignedDuration::from_millis(1);
    assert_eq!(
        seen_jtis::purge_expired(&store, just_before).await.unwrap(),
        0
    );
    assert_eq!(seen_jtis::purge_expired(&store, at(30)).await.unwrap(), 1);
    assert_eq!(seen_jtis::purge_expired(&store, at(100)).await.unwrap(), 1);
    assert_eq!(rows(db).await, 0);
}

async fn concurrent_remembers_of_one_jti_have_one_winner(store: Store, db: &TestDb) {
    for round in 0..5 {
        let jti = format!("race-{round}");
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let store = store.clone();
                let jti = jti.clone();
                tokio::spawn(async move {
                    seen_jtis::remember(&store, "dpop:k", &jti, at(120))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            if task.await.unwrap() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one remember is new");
    }
    assert_eq!(rows(db).await, 5);
}

async fn concurrent_remembers_of_distinct_jtis_all_win(store: Store, db: &TestDb) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                seen_jtis::remember(&store, "assertion:t:app", &format!("j{i}"), at(120))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(rows(db).await, 16);
}
