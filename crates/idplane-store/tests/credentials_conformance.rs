//! Store conformance for credentials (passwords, TOTP, recovery codes,
//! email codes, passkey counts) and sign-in throttling: every body runs on
//! SQLite, and on PostgreSQL when `IDPLANE_TEST_DATABASE_URL` is set (see
//! `conformance.rs`).

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

use idplane_core::PrincipalId;
use idplane_core::directory::{Principal, PrincipalKind};
use idplane_store::credentials::{self, EmailCode, PasswordCredential, TotpCredential};
use idplane_store::{Store, principals};
use sqlx::Executor;

use support::{TestDb, at, commit, create_principal, create_tenant, principal, read};

conformance! {
    passwords_upsert_rehash_and_delete
        => sqlite_passwords_upsert_rehash_and_delete, postgres_passwords_upsert_rehash_and_delete;
    totp_enrollments_replace_confirm_and_refuse_old_steps
        => sqlite_totp_enrollments_replace_confirm_and_refuse_old_steps,
           postgres_totp_enrollments_replace_confirm_and_refuse_old_steps;
    recovery_codes_are_replaced_and_spent_once
        => sqlite_recovery_codes_are_replaced_and_spent_once, postgres_recovery_codes_are_replaced_and_spent_once;
    email_codes_upsert_count_attempts_and_delete
        => sqlite_email_codes_upsert_count_attempts_and_delete,
           postgres_email_codes_upsert_count_attempts_and_delete;
    passkeys_are_counted_and_deleted_per_principal
        => sqlite_passkeys_are_counted_and_deleted_per_principal,
           postgres_passkeys_are_counted_and_deleted_per_principal;
    throttle_counts_forgets_blocks_and_clears
        => sqlite_throttle_counts_forgets_blocks_and_clears, postgres_throttle_counts_forgets_blocks_and_clears;
    concurrent_failures_are_all_counted
        => sqlite_concurrent_failures_are_all_counted, postgres_concurrent_failures_are_all_counted;
    deleting_a_user_deletes_their_credentials
        => sqlite_deleting_a_user_deletes_their_credentials,
           postgres_deleting_a_user_deletes_their_credentials;
}

async fn user(store: &Store, name: &str) -> Principal {
    let tenant = create_tenant(store, &format!("t-{name}")).await;
    let p = principal(tenant.id, PrincipalKind::User, name);
    create_principal(store, &p).await;
    p
}

fn password_of(p: &Principal, hash: &str, must_change: bool, secs: i64) -> PasswordCredential {
    PasswordCredential {
        principal_id: p.id,
        tenant_id: p.tenant_id,
        hash: hash.into(),
        must_change,
        created_at: at(secs),
        updated_at: at(secs),
    }
}

fn totp_of(p: &Principal, id: &str) -> TotpCredential {
    TotpCredential {
        principal_id: p.id,
        tenant_id: p.tenant_id,
        id: id.into(),
        sealed_secret: format!("sealed-{id}"),
        confirmed_at: None,
        last_used_step: None,
        created_at: at(0),
    }
}

async fn passwords_upsert_rehash_and_delete(store: Store, _db: &TestDb) {
    let alice = user(&store, "alice").await;
    let mut conn = read(&store).await;
    assert!(
        credentials::password(&mut conn, alice.id)
            .await
            .unwrap()
            .is_none()
    );
    drop(conn);

    let mut tx = store.write().await.unwrap();
    credentials::put_password(&mut tx, &password_of(&alice, "h1", true, 0))
        .await
        .unwrap();
    commit(tx, alice.tenant_id, "password.set").await;
    let mut tx = store.write().await.unwrap();
    credentials::put_password(&mut tx, &password_of(&alice, "h2", false, 60))
        .await
        .unwrap();
    commit(tx, alice.tenant_id, "password.set").await;

    let mut conn = read(&store).await;
    let stored = credentials::password(&mut conn, alice.id)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert_eq!(stored.hash, "h2");
    assert!(!stored.must_change);
    assert_eq!(stored.created_at, at(0), "the first setting's time is kept");
    assert_eq!(stored.updated_at, at(60));
    assert!(
        !format!("{stored:?}").contains("h2"),
        "Debug hides the hash"
    );

    // A rehash applies only over the hash it replaces.
    let mut tx = store.write().await.unwrap();
    assert!(
        !credentials::rehash_password(&mut tx, alice.id, "h1", "h3")
            .await
            .unwrap()
    );
    assert!(
        credentials::rehash_password(&mut tx, alice.id, "h2", "h3")
            .await
            .unwrap()
    );
    commit(tx, alice.tenant_id, "auth.password").await;
    let mut conn = read(&store).await;
    assert_eq!(
        credentials::password(&mut conn, alice.id)
            .await
            .unwrap()
            .unwrap()
            .hash,
        "h3"
    );
    drop(conn);

    let mut tx = store.write().await.unwrap();
    assert!(
        credentials::delete_password(&mut tx, alice.id)
            .await
            .unwrap()
    );
    assert!(
        !credentials::delete_password(&mut tx, alice.id)
            .await
            .unwrap()
    );
    commit(tx, alice.tenant_id, "password.delete").await;
    let mut conn = read(&store).await;
    assert!(
        credentials::password(&mut conn, alice.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn totp_enrollments_replace_confirm_and_refuse_old_steps(store: Store, _db: &TestDb) {
    let alice = user(&store, "alice").await;
    let mut tx = store.write().await.unwrap();
    credentials::put_totp(&mut tx, &totp_of(&alice, "e1"))
        .await
        .unwrap();
    credentials::put_totp(&mut tx, &totp_of(&alice, "e2"))
        .await
        .unwrap();
    // Confirming an enrollment that was replaced does nothing.
    assert!(
        !credentials::confirm_totp(&mut tx, alice.id, "e1", at(10), 100)
            .await
            .unwrap()
    );
    // Steps are not accepted before confirmation.
    assert!(
        !credentials::use_totp_step(&mut tx, alice.id, "e2", 100)
            .await
            .unwrap()
    );
    assert!(
        credentials::confirm_totp(&mut tx, alice.id, "e2", at(10), 100)
            .await
            .unwrap()
    );
    assert!(
        !credentials::confirm_totp(&mut tx, alice.id, "e2", at(11), 101)
            .await
            .unwrap()
    );
    commit(tx, alice.tenant_id, "totp.confirm").await;

    let mut conn = read(&store).await;
    let stored = credentials::totp(&mut conn, alice.id)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert_eq!(stored.id, "e2");
    assert_eq!(stored.sealed_secret, "sealed-e2");
    assert_eq!(stored.confirmed_at, Some(at(10)));
    assert_eq!(stored.last_used_step, Some(100));

    let mut tx = store.write().await.unwrap();
    assert!(
        !credentials::use_totp_step(&mut tx, alice.id, "e2", 100)
            .await
            .unwrap()
    );
    assert!(
        !credentials::use_totp_step(&mut tx, alice.id, "e2", 99)
            .await
            .unwrap()
    );
    assert!(
        credentials::use_totp_step(&mut tx, alice.id, "e2", 102)
            .await
            .unwrap()
    );
    assert!(
        !credentials::use_totp_step(&mut tx, alice.id, "e2", 101)
            .await
            .unwrap()
    );
    assert!(
        !credentials::use_totp_step(&mut tx, alice.id, "e1", 103)
            .await
            .unwrap()
    );
    commit(tx, alice.tenant_id, "auth.totp").await;
    let mut conn = read(&store).await;
    assert_eq!(
        credentials::totp(&mut conn, alice.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_step,
        Some(102)
    );
    drop(conn);

    // Replacing resets everything.
    let mut tx = store.write().await.unwrap();
    credentials::put_totp(&mut tx, &totp_of(&alice, "e3"))
        .await
        .unwrap();
    commit(tx, alice.tenant_id, "totp.begin").await;
    let mut conn = read(&store).await;
    let stored = credentials::totp(&mut conn, alice.id)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert_eq!((stored.confirmed_at, stored.last_used_step), (None, None));

    let mut tx = store.write().await.unwrap();
    assert!(credentials::delete_totp(&mut tx, alice.id).await.unwrap());
    assert!(!credentials::delete_totp(&mut tx, alice.id).await.unwrap());
    commit(tx, alice.tenant_id, "totp.remove").await;
}

async fn recovery_codes_are_replaced_and_spent_once(store: Store, _db: &TestDb) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let first: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
    let mut tx = store.write().await.unwrap();
    credentials::replace_recovery_codes(&mut tx, alice.id, &first, at(0))
        .await
        .unwrap();
    // The same hash for another user is another row.
    credentials::replace_recovery_codes(&mut tx, bob.id, &first[..1], at(0))
        .await
        .unwrap();
    commit(tx, alice.tenant_id, "recovery.regenerate").await;
    let mut conn = read(&store).await;
    assert_eq!(
        credentials::recovery_codes_left(&mut conn, alice.id)
            .await
            .unwrap(),
        10
    );
    drop(conn);

    let mut tx = store.write().await.unwrap();
    assert!(
        credentials::use_recovery_code(&mut tx, alice.id, "a0", at(5))
            .await
            .unwrap()
    );
    assert!(
        !credentials::use_recovery_code(&mut tx, alice.id, "a0", at(6))
            .await
            .unwrap()
    );
    assert!(
        !credentials::use_recovery_code(&mut tx, alice.id, "zz", at(6))
            .await
            .unwrap()
    );
    assert!(
        credentials::use_recovery_code(&mut tx, bob.id, "a0", at(6))
            .await
            .unwrap()
    );
    commit(tx, alice.tenant_id, "auth.recovery").await;
    let mut conn = read(&store).await;
    assert_eq!(
        credentials::recovery_codes_left(&mut conn, alice.id)
            .await
            .unwrap(),
        9
    );
    assert_eq!(
        credentials::recovery_codes_left(&mut conn, bob.id)
            .await
            .unwrap(),
        0
    );
    drop(conn);

    let second: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    let mut tx = store.write().await.unwrap();
    credentials::replace_recovery_codes(&mut tx, alice.id, &second, at(7))
        .await
        .unwrap();
    assert!(
        !credentials::use_recovery_code(&mut tx, alice.id, "a1", at(8))
            .await
            .unwrap()
    );
    assert!(
        credentials::use_recovery_code(&mut tx, alice.id, "b1", at(8))
            .await
            .unwrap()
    );
    assert_eq!(
        credentials::delete_recovery_codes(&mut tx, alice.id)
            .await
            .unwrap(),
        10
    );
    commit(tx, alice.tenant_id, "recovery.regenerate").await;
    let mut conn = read(&store).await;
    assert_eq!(
        credentials::recovery_codes_left(&mut conn, alice.id)
            .await
            .unwrap(),
        0
    );
}

async fn email_codes_upsert_count_attempts_and_delete(store: Store, _db: &TestDb) {
    let alice = user(&store, "alice").await;
    let code = |hash: &str| EmailCode {
        principal_id: alice.id,
        code_hash: hash.into(),
        expires_at: at(600),
        attempts: 0,
    };
    let mut tx = store.write().await.unwrap();
    assert_eq!(
        credentials::count_email_code_attempt(&mut tx, alice.id)
            .await
            .unwrap(),
        None
    );
    credentials::put_email_code(&mut tx, &code("c1"))
        .await
        .unwrap();
    assert_eq!(
        credentials::count_email_code_attempt(&mut tx, alice.id)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        credentials::count_email_code_attempt(&mut tx, alice.id)
            .await
            .unwrap(),
        Some(2)
    );
    commit(tx, alice.tenant_id, "email_code.send").await;
    let mut conn = read(&store).await;
    let stored = credentials::email_code(&mut conn, alice.id)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert_eq!((stored.code_hash.as_str(), stored.attempts), ("c1", 2));
    assert_eq!(stored.expires_at, at(600));

    // A new code replaces the old one and its attempts.
    let mut tx = store.write().await.unwrap();
    credentials::put_email_code(&mut tx, &code("c2"))
        .await
        .unwrap();
    commit(tx, alice.tenant_id, "email_code.send").await;
    let mut conn = read(&store).await;
    let stored = credentials::email_code(&mut conn, alice.id)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert_eq!((stored.code_hash.as_str(), stored.attempts), ("c2", 0));

    let mut tx = store.write().await.unwrap();
    assert!(
        credentials::delete_email_code(&mut tx, alice.id)
            .await
            .unwrap()
    );
    assert!(
        !credentials::delete_email_code(&mut tx, alice.id)
            .await
            .unwrap()
    );
    commit(tx, alice.tenant_id, "email_code.use").await;
    let mut conn = read(&store).await;
    assert!(
        credentials::email_code(&mut conn, alice.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn insert_passkey(db: &TestDb, p: &Principal, id: &str) {
    let mut raw = db.raw().await;
    raw.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO passkeys (id, principal_id, tenant_id, name, passkey, counter, \
         backup_eligible, created_at) VALUES ('{id}', '{}', '{}', 'key', '{{}}', 0, 0, 0)",
        p.id, p.tenant_id
    )))
    .await
    .unwrap();
}

async fn passkeys_are_counted_and_deleted_per_principal(store: Store, db: &TestDb) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    insert_passkey(db, &alice, "k1").await;
    insert_passkey(db, &alice, "k2").await;
    insert_passkey(db, &bob, "k3").await;
    let mut conn = read(&store).await;
    assert_eq!(
        credentials::passkey_count(&mut conn, alice.id)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        credentials::passkey_count(&mut conn, PrincipalId::generate())
            .await
            .unwrap(),
        0
    );
    drop(conn);
    let mut tx = store.write().await.unwrap();
    assert_eq!(
        credentials::delete_passkeys(&mut tx, alice.id)
            .await
            .unwrap(),
        2
    );
    commit(tx, alice.tenant_id, "auth.factors.reset").await;
    let mut conn = read(&store).await;
    assert_eq!(
        credentials::passkey_count(&mut conn, alice.id)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        credentials::passkey_count(&mut conn, bob.id).await.unwrap(),
        1
    );
}

async fn throttle_counts_forgets_blocks_and_clears(store: Store, _db: &TestDb) {
    let tenant = create_tenant(&store, "t").await;
    let key = "account:t:alice";
    let mut tx = store.write().await.unwrap();
    for expected in 1..=3 {
        let n = credentials::count_failure(&mut tx, key, at(expected), at(-86_400))
            .await
            .unwrap();
        assert_eq!(n, expected);
    }
    credentials::block(&mut tx, key, at(100)).await.unwrap();
    // A shorter block never shortens a longer one.
    credentials::block(&mut tx, key, at(50)).await.unwrap();
    commit(tx, tenant.id, "auth.password").await;

    let mut conn = read(&store).await;
    let found = credentials::throttles(&mut conn, &[key, "source:192.0.2.1"])
        .await
        .unwrap();
    drop(conn);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, key);
    assert_eq!(found[0].failures, 3);
    assert_eq!(found[0].last_failure_at, at(3));
    assert_eq!(found[0].blocked_until, at(100));

    // After a quiet period the count starts again at one.
    let mut tx = store.write().await.unwrap();
    let n = credentials::count_failure(&mut tx, key, at(200_000), at(200_000 - 86_400))
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Other keys are independent.
    let n = credentials::count_failure(&mut tx, "source:192.0.2.1", at(200_000), at(0))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(credentials::clear_throttle(&mut tx, key).await.unwrap());
    assert!(!credentials::clear_throttle(&mut tx, key).await.unwrap());
    commit(tx, tenant.id, "auth.password").await;
    let mut conn = read(&store).await;
    assert_eq!(
        credentials::throttles(&mut conn, &[key]).await.unwrap(),
        vec![]
    );
    drop(conn);

    // Clean-up removes only quiet, unblocked counters.
    let mut tx = store.write().await.unwrap();
    credentials::count_failure(&mut tx, "source:old", at(10), at(0))
        .await
        .unwrap();
    credentials::count_failure(&mut tx, "source:blocked", at(10), at(0))
        .await
        .unwrap();
    credentials::block(&mut tx, "source:blocked", at(300_000))
        .await
        .unwrap();
    assert_eq!(
        credentials::purge_throttles(&mut tx, at(100_000))
            .await
            .unwrap(),
        1
    );
    commit(tx, tenant.id, "auth.throttle.purge").await;
    let mut conn = read(&store).await;
    let left = credentials::throttles(
        &mut conn,
        &["source:old", "source:blocked", "source:192.0.2.1"],
    )
    .await
    .unwrap();
    let keys: Vec<_> = left.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, vec!["source:blocked", "source:192.0.2.1"]);
}

async fn concurrent_failures_are_all_counted(store: Store, _db: &TestDb) {
    let tenant = create_tenant(&store, "t").await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.write().await.unwrap();
                credentials::count_failure(&mut tx, "source:203.0.113.1", at(i), at(-86_400))
                    .await
                    .unwrap();
                commit(tx, tenant.id, "auth.password").await;
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut conn = read(&store).await;
    let found = credentials::throttles(&mut conn, &["source:203.0.113.1"])
        .await
        .unwrap();
    assert_eq!(found[0].failures, 12);
}

async fn deleting_a_user_deletes_their_credentials(store: Store, db: &TestDb) {
    let alice = user(&store, "alice").await;
    let mut tx = store.write().await.unwrap();
    credentials::put_password(&mut tx, &password_of(&alice, "h", false, 0))
        .await
        .unwrap();
    credentials::put_totp(&mut tx, &totp_of(&alice, "e"))
        .await
        .unwrap();
    credentials::replace_recovery_codes(&mut tx, alice.id, &["r".into()], at(0))
        .await
        .unwrap();
    credentials::put_email_code(
        &mut tx,
        &EmailCode {
            principal_id: alice.id,
            code_hash: "c".into(),
            expires_at: at(60),
            attempts: 0,
        },
    )
    .await
    .unwrap();
    commit(tx, alice.tenant_id, "setup").await;
    insert_passkey(db, &alice, "k").await;

    let mut tx = store.write().await.unwrap();
    assert!(
        principals::delete(&mut tx, alice.tenant_id, alice.id)
            .await
            .unwrap()
    );
    commit(tx, alice.tenant_id, "user.delete").await;
    let mut conn = read(&store).await;
    assert!(
        credentials::password(&mut conn, alice.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        credentials::totp(&mut conn, alice.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        credentials::recovery_codes_left(&mut conn, alice.id)
            .await
            .unwrap(),
        0
    );
    assert!(
        credentials::email_code(&mut conn, alice.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        credentials::passkey_count(&mut conn, alice.id)
            .await
            .unwrap(),
        0
    );
}
