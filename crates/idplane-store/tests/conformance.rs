//! Store conformance: every test body runs against both backends.
//!
//! `sqlite_<name>` runs on a temporary SQLite file and always runs;
//! `postgres_<name>` runs on its own schema of the PostgreSQL server named by
//! `IDPLANE_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`)
//! and is skipped, with a note on stderr, when that variable is not set.

// clippy.toml allows these inside `#[test]` functions only; here the test
// bodies and their helpers are ordinary (async) functions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use idplane_core::audit::{
    AuditEvent, AuditRecord, ChainError, ChainVerifier, Checkpoint, DECISION_ACTION, GENESIS_HASH,
    Outcome,
};
use idplane_core::directory::{
    Entitlement, Membership, Principal, PrincipalKind, Role, RoleAssignment, Status, UserType,
    name_key,
};
use idplane_core::{Actor, AssignmentId, PrincipalId, RoleId, TenantId, TokenId};
use idplane_store::audit::{self, AuditFilter};
use idplane_store::keys::{self, StoredKey};
use idplane_store::principals::{self, PrincipalFilter};
use idplane_store::roles::{self, AssignmentFilter};
use idplane_store::tokens::{self, StoredToken};
use idplane_store::{Page, Store, StoreError, generations, tenants};
use serde_json::json;

use support::{
    TestDb, all_records, at, commit, create_principal, create_principals, create_tenant, ctx_as,
    event, principal, read, t0, tenant, verify,
};

conformance! {
    migrations_apply_and_reopening_is_idempotent
        => sqlite_migrations_apply_and_reopening_is_idempotent, postgres_migrations_apply_and_reopening_is_idempotent;
    a_database_migrated_by_a_newer_binary_is_refused
        => sqlite_a_database_migrated_by_a_newer_binary_is_refused, postgres_a_database_migrated_by_a_newer_binary_is_refused;
    tenants_insert_lookup_list_update_delete
        => sqlite_tenants_insert_lookup_list_update_delete, postgres_tenants_insert_lookup_list_update_delete;
    duplicate_tenant_names_are_refused
        => sqlite_duplicate_tenant_names_are_refused, postgres_duplicate_tenant_names_are_refused;
    deleting_a_tenant_cascades_its_directory_but_keeps_its_audit_chain
        => sqlite_deleting_a_tenant_cascades_its_directory_but_keeps_its_audit_chain,
           postgres_deleting_a_tenant_cascades_its_directory_but_keeps_its_audit_chain;
    principals_round_trip_and_are_found_by_id_and_name
        => sqlite_principals_round_trip_and_are_found_by_id_and_name,
           postgres_principals_round_trip_and_are_found_by_id_and_name;
    principal_names_are_unique_case_insensitively_per_tenant_and_kind
        => sqlite_principal_names_are_unique_case_insensitively_per_tenant_and_kind,
           postgres_principal_names_are_unique_case_insensitively_per_tenant_and_kind;
    duplicate_external_ids_are_refused
        => sqlite_duplicate_external_ids_are_refused, postgres_duplicate_external_ids_are_refused;
    principals_list_filters
        => sqlite_principals_list_filters, postgres_principals_list_filters;
    principals_list_paginates_with_a_cursor
        => sqlite_principals_list_paginates_with_a_cursor, postgres_principals_list_paginates_with_a_cursor;
    principal_update_checks_the_expected_version
        => sqlite_principal_update_checks_the_expected_version, postgres_principal_update_checks_the_expected_version;
    memberships_upsert_list_and_delete
        => sqlite_memberships_upsert_list_and_delete, postgres_memberships_upsert_list_and_delete;
    batched_writes_span_several_statements_and_upsert
        => sqlite_batched_writes_span_several_statements_and_upsert,
           postgres_batched_writes_span_several_statements_and_upsert;
    transitive_groups_follow_nesting_and_expiry
        => sqlite_transitive_groups_follow_nesting_and_expiry, postgres_transitive_groups_follow_nesting_and_expiry;
    roles_insert_lookup_list_update_delete
        => sqlite_roles_insert_lookup_list_update_delete, postgres_roles_insert_lookup_list_update_delete;
    role_assignments_upsert_filter_count_delete
        => sqlite_role_assignments_upsert_filter_count_delete, postgres_role_assignments_upsert_filter_count_delete;
    deleting_a_principal_cascades_memberships_and_assignments
        => sqlite_deleting_a_principal_cascades_memberships_and_assignments,
           postgres_deleting_a_principal_cascades_memberships_and_assignments;
    every_directory_change_moves_the_generation_in_its_transaction
        => sqlite_every_directory_change_moves_the_generation_in_its_transaction,
           postgres_every_directory_change_moves_the_generation_in_its_transaction;
    tokens_insert_lookup_revoke_and_scope
        => sqlite_tokens_insert_lookup_revoke_and_scope, postgres_tokens_insert_lookup_revoke_and_scope;
    keys_insert_current_and_by_id
        => sqlite_keys_insert_current_and_by_id, postgres_keys_insert_current_and_by_id;
    commit_writes_the_change_and_its_event_atomically
        => sqlite_commit_writes_the_change_and_its_event_atomically,
           postgres_commit_writes_the_change_and_its_event_atomically;
    a_dropped_write_leaves_neither_change_nor_event
        => sqlite_a_dropped_write_leaves_neither_change_nor_event, postgres_a_dropped_write_leaves_neither_change_nor_event;
    commit_all_keeps_each_tenants_chain_contiguous
        => sqlite_commit_all_keeps_each_tenants_chain_contiguous, postgres_commit_all_keeps_each_tenants_chain_contiguous;
    concurrent_writers_commit_alone_whatever_their_neighbours_do
        => sqlite_concurrent_writers_commit_alone_whatever_their_neighbours_do,
           postgres_concurrent_writers_commit_alone_whatever_their_neighbours_do;
    appended_events_commit_beside_concurrent_changes
        => sqlite_appended_events_commit_beside_concurrent_changes,
           postgres_appended_events_commit_beside_concurrent_changes;
    a_failed_append_leaves_nothing_of_its_events
        => sqlite_a_failed_append_leaves_nothing_of_its_events,
           postgres_a_failed_append_leaves_nothing_of_its_events;
    appends_go_on_from_a_chain_another_writer_moved
        => sqlite_appends_go_on_from_a_chain_another_writer_moved,
           postgres_appends_go_on_from_a_chain_another_writer_moved;
    tampering_with_a_stored_record_fails_verification
        => sqlite_tampering_with_a_stored_record_fails_verification,
           postgres_tampering_with_a_stored_record_fails_verification;
    audit_query_filters
        => sqlite_audit_query_filters, postgres_audit_query_filters;
    audit_heads_track_each_chain
        => sqlite_audit_heads_track_each_chain, postgres_audit_heads_track_each_chain;
    checkpoints_insert_once_and_latest
        => sqlite_checkpoints_insert_once_and_latest, postgres_checkpoints_insert_once_and_latest;
    concurrent_commits_form_a_gap_free_chain
        => sqlite_concurrent_commits_form_a_gap_free_chain, postgres_concurrent_commits_form_a_gap_free_chain;
    concurrent_multi_tenant_commits_do_not_deadlock
        => sqlite_concurrent_multi_tenant_commits_do_not_deadlock,
           postgres_concurrent_multi_tenant_commits_do_not_deadlock;
}

// ---------------------------------------------------------------------------
// Helpers local to the tests

/// Which of the test's values a filter should return.
type Wanted<'a, T> = Box<dyn Fn(&T) -> bool + Send + Sync + 'a>;

fn page(after: Option<String>, limit: u32) -> Page {
    Page { after, limit }
}

fn sorted_by_id(mut ps: Vec<Principal>) -> Vec<Principal> {
    ps.sort_by_key(|p| p.id.to_string());
    ps
}

fn assert_duplicate<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Duplicate(_))),
        "expected Duplicate, got {result:?}"
    );
}

fn membership(
    group: PrincipalId,
    member: PrincipalId,
    expires_at: Option<idplane_core::Timestamp>,
) -> Membership {
    Membership {
        group_id: group,
        member_id: member,
        expires_at,
        created_at: t0(),
    }
}

async fn add_member(store: &Store, tenant: TenantId, m: &Membership) {
    let mut tx = store.write().await.unwrap();
    principals::upsert_membership(&mut tx, tenant, m)
        .await
        .unwrap();
    commit(tx, tenant, "group.add_member").await;
}

fn role(tenant: TenantId, name: &str) -> Role {
    Role {
        id: RoleId::generate(),
        tenant_id: tenant,
        name: name.into(),
        description: Some(format!("the {name} role")),
        entitlements: vec![
            Entitlement {
                resource: "payroll".into(),
                permission: "read".into(),
            },
            Entitlement {
                resource: "payroll".into(),
                permission: "write".into(),
            },
        ],
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

async fn create_role(store: &Store, r: &Role) {
    let mut tx = store.write().await.unwrap();
    roles::insert(&mut tx, r, &name_key(&r.name)).await.unwrap();
    commit(tx, r.tenant_id, "role.create").await;
}

fn assignment(
    role: &Role,
    principal: PrincipalId,
    expires_at: Option<idplane_core::Timestamp>,
) -> RoleAssignment {
    RoleAssignment {
        id: AssignmentId::generate(),
        tenant_id: role.tenant_id,
        role_id: role.id,
        principal_id: principal,
        expires_at,
        created_at: t0(),
    }
}

async fn assign(store: &Store, a: &RoleAssignment) -> RoleAssignment {
    let mut tx = store.write().await.unwrap();
    let stored = roles::upsert_assignment(&mut tx, a).await.unwrap();
    commit(tx, a.tenant_id, "role.assign").await;
    stored
}

fn token(name: &str, scope: &str, tenant: Option<TenantId>) -> StoredToken {
    StoredToken {
        id: TokenId::generate(),
        tenant_id: tenant,
        name: name.into(),
        scope: scope.into(),
        principal_id: None,
        created_by: "root".into(),
        created_at: t0(),
        expires_at: None,
        revoked_at: None,
    }
}

async fn count_rows(db: &TestDb, sql: &'static str) -> i64 {
    use sqlx::Row;
    let mut conn = db.raw().await;
    let row = sqlx::query(sql).fetch_one(&mut conn).await.unwrap();
    row.try_get::<i64, _>(0).unwrap()
}

// ---------------------------------------------------------------------------
// Migrations

async fn migrations_apply_and_reopening_is_idempotent(store: Store, db: &TestDb) {
    store.ping().await.unwrap();
    let acme = create_tenant(&store, "acme").await;
    let migrations = count_rows(db, "SELECT COUNT(*) FROM _sqlx_migrations").await;
    assert!(migrations >= 1, "no migration recorded");
    assert_eq!(
        count_rows(
            db,
            "SELECT COUNT(*) FROM _sqlx_migrations WHERE success = FALSE"
        )
        .await,
        0
    );

    // Opening the same database again, twice, while the first store is
    // still open, applies nothing and loses nothing.
    for _ in 0..2 {
        let again = db.open().await.unwrap();
        again.ping().await.unwrap();
        let found = tenants::by_name(&mut read(&again).await, "acme")
            .await
            .unwrap();
        assert_eq!(found.as_ref(), Some(&acme));
        again.close().await;
        assert_eq!(
            count_rows(db, "SELECT COUNT(*) FROM _sqlx_migrations").await,
            migrations
        );
    }
    let listed = tenants::list(&mut read(&store).await, &page(None, 10))
        .await
        .unwrap();
    assert_eq!(listed.items, vec![acme]);
}

/// SQLite only: the linked SQLite keeps a savepoint's sub-journal in
/// memory up to 31 pages (`.cargo/config.toml`), so an audit batch's page
/// copies are not spilled to a new file in the temporary directory.
#[tokio::test]
async fn sqlite_keeps_savepoint_journals_of_31_pages_in_memory() {
    use sqlx::Row;
    let db = TestDb::sqlite();
    let mut conn = db.raw().await;
    let options: Vec<String> = sqlx::query("PRAGMA compile_options")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get(0).unwrap())
        .collect();
    assert!(
        options.iter().any(|o| o == "STMTJRNL_SPILL=127100"),
        "{options:?}"
    );
}

/// The decision log is left out of the index by target (the migration
/// spells the action out), and a search by target still uses that index
/// for everything else.
#[tokio::test]
async fn sqlite_searches_by_target_use_the_index_that_leaves_decisions_out() {
    use sqlx::Row;
    let db = TestDb::sqlite();
    let store = db.open().await.unwrap();
    let mut conn = db.raw().await;
    let index: String =
        sqlx::query("SELECT sql FROM sqlite_master WHERE name = 'audit_events_target'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
    assert!(
        index.contains(&format!("WHERE action <> '{DECISION_ACTION}'")),
        "{index}"
    );
    // The planner may take the partial index only when the query states
    // its condition, as `audit::query` does, literally.
    let plan = |condition: &str| {
        format!(
            "EXPLAIN QUERY PLAN SELECT seq FROM audit_events INDEXED BY audit_events_target \
             WHERE tenant_id = 'a' AND target = 'user:1'{condition}"
        )
    };
    let stated = format!(" AND action <> '{DECISION_ACTION}'");
    sqlx::query(sqlx::AssertSqlSafe(plan(&stated)))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let unstated = sqlx::query(sqlx::AssertSqlSafe(plan("")))
        .fetch_all(&mut conn)
        .await;
    assert!(unstated.is_err(), "the index covers decisions");
    store.close().await;
}

async fn a_database_migrated_by_a_newer_binary_is_refused(store: Store, db: &TestDb) {
    const FUTURE: i64 = 99_990_101_000_000;
    create_tenant(&store, "acme").await;
    store.close().await;

    let mut raw = db.raw().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(FUTURE)
    .bind("from a newer idplane")
    .bind(true)
    .bind(vec![0_u8; 48])
    .bind(0_i64)
    .execute(&mut raw)
    .await
    .unwrap();

    match db.open().await {
        Err(StoreError::SchemaTooNew(version)) => assert_eq!(version, FUTURE),
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a database migrated by a newer binary was opened"),
    }

    // Refusing changed nothing: without the foreign row the store opens and
    // the data is still there. (On PostgreSQL this also shows the refused
    // open did not leave the migration lock held.)
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(FUTURE)
        .execute(&mut raw)
        .await
        .unwrap();
    let reopened = tokio::time::timeout(Duration::from_secs(30), db.open())
        .await
        .expect("re-opening after a refused open hung (migration lock left held?)")
        .unwrap();
    let acme = tenants::by_name(&mut read(&reopened).await, "acme")
        .await
        .unwrap();
    assert!(acme.is_some());
    reopened.close().await;
}

// ---------------------------------------------------------------------------
// Tenants

async fn tenants_insert_lookup_list_update_delete(store: Store, _db: &TestDb) {
    let globex = create_tenant(&store, "globex").await;
    let acme = create_tenant(&store, "acme").await;
    let initech = create_tenant(&store, "initech").await;
    let mut conn = read(&store).await;

    assert_eq!(
        tenants::by_name(&mut conn, "acme").await.unwrap().as_ref(),
        Some(&acme)
    );
    assert_eq!(
        tenants::by_id(&mut conn, globex.id).await.unwrap().as_ref(),
        Some(&globex)
    );
    assert_eq!(
        tenants::by_name(&mut conn, "ACME").await.unwrap(),
        None,
        "tenant names are stored lowercase"
    );
    assert_eq!(tenants::by_name(&mut conn, "nobody").await.unwrap(), None);
    assert_eq!(
        tenants::by_id(&mut conn, TenantId::generate())
            .await
            .unwrap(),
        None
    );

    // Name order, with a name cursor.
    let all = tenants::list(&mut conn, &page(None, 10)).await.unwrap();
    assert_eq!(
        all.items,
        vec![acme.clone(), globex.clone(), initech.clone()]
    );
    assert!(!all.more);
    let first = tenants::list(&mut conn, &page(None, 2)).await.unwrap();
    assert_eq!(first.items, vec![acme.clone(), globex.clone()]);
    assert!(first.more);
    let second = tenants::list(&mut conn, &page(Some("globex".into()), 2))
        .await
        .unwrap();
    assert_eq!(second.items, vec![initech.clone()]);
    assert!(!second.more);
    let exact = tenants::list(&mut conn, &page(None, 3)).await.unwrap();
    assert_eq!(exact.items.len(), 3);
    assert!(
        !exact.more,
        "a page that ends exactly at the last row has no more"
    );
    drop(conn);

    // Update with the version check.
    let mut renamed = acme.clone();
    renamed.display_name = Some("ACME Corporation".into());
    renamed.updated_at = at(60);
    renamed.version = 2;
    let mut tx = store.write().await.unwrap();
    assert!(
        !tenants::update(&mut tx, &renamed, 2).await.unwrap(),
        "stale version accepted"
    );
    assert!(tenants::update(&mut tx, &renamed, 1).await.unwrap());
    commit(tx, acme.id, "tenant.update").await;
    let mut conn = read(&store).await;
    assert_eq!(
        tenants::by_id(&mut conn, acme.id).await.unwrap().as_ref(),
        Some(&renamed)
    );
    drop(conn);
    let mut tx = store.write().await.unwrap();
    assert!(
        !tenants::update(&mut tx, &renamed, 1).await.unwrap(),
        "update applied twice"
    );
    drop(tx);

    // Delete.
    let mut tx = store.write().await.unwrap();
    assert!(tenants::delete(&mut tx, globex.id).await.unwrap());
    assert!(!tenants::delete(&mut tx, globex.id).await.unwrap());
    commit(tx, globex.id, "tenant.delete").await;
    let mut conn = read(&store).await;
    assert_eq!(tenants::by_id(&mut conn, globex.id).await.unwrap(), None);
    assert_eq!(tenants::by_name(&mut conn, "globex").await.unwrap(), None);
    let all = tenants::list(&mut conn, &page(None, 10)).await.unwrap();
    assert_eq!(all.items, vec![renamed, initech]);
}

async fn duplicate_tenant_names_are_refused(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;

    let mut tx = store.write().await.unwrap();
    assert_duplicate(tenants::insert(&mut tx, &tenant("acme")).await);
    drop(tx);

    // The same id under another name is refused too (primary key), but not
    // as a name clash we could report as Duplicate on every backend; only
    // check that it fails.
    let mut tx = store.write().await.unwrap();
    let mut same_id = tenant("other");
    same_id.id = acme.id;
    assert!(tenants::insert(&mut tx, &same_id).await.is_err());
    drop(tx);

    // The store is still usable and holds only the original.
    create_tenant(&store, "globex").await;
    let all = tenants::list(&mut read(&store).await, &page(None, 10))
        .await
        .unwrap();
    assert_eq!(
        all.items
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["acme", "globex"]
    );
    assert_eq!(all.items[0], acme);
}

async fn deleting_a_tenant_cascades_its_directory_but_keeps_its_audit_chain(
    store: Store,
    _db: &TestDb,
) {
    let acme = create_tenant(&store, "acme").await;
    let globex = create_tenant(&store, "globex").await;

    let alice = principal(acme.id, PrincipalKind::User, "alice");
    let mut bob = principal(acme.id, PrincipalKind::User, "bob");
    bob.user_type = Some(UserType::Contractor);
    bob.end_date = Some(at(86_400));
    bob.sponsor_id = Some(alice.id);
    let group = principal(acme.id, PrincipalKind::Group, "staff");
    let mut bot = principal(acme.id, PrincipalKind::ServiceAccount, "bot");
    bot.owner_id = Some(alice.id);
    bot.purpose = Some("builds".into());
    create_principals(
        &store,
        &[alice.clone(), bob.clone(), group.clone(), bot.clone()],
    )
    .await;
    add_member(&store, acme.id, &membership(group.id, bob.id, None)).await;
    let admin = role(acme.id, "admin");
    create_role(&store, &admin).await;
    assign(&store, &assignment(&admin, group.id, None)).await;

    // Another tenant's directory is untouched.
    let carol = principal(globex.id, PrincipalKind::User, "carol");
    create_principal(&store, &carol).await;

    let before = all_records(&store, acme.id).await;
    let mut tx = store.write().await.unwrap();
    assert!(tenants::delete(&mut tx, acme.id).await.unwrap());
    commit(tx, acme.id, "tenant.delete").await;

    let mut conn = read(&store).await;
    assert_eq!(tenants::by_id(&mut conn, acme.id).await.unwrap(), None);
    let left = principals::list(
        &mut conn,
        acme.id,
        &PrincipalFilter::default(),
        &page(None, 100),
    )
    .await
    .unwrap();
    assert!(left.items.is_empty(), "principals survived their tenant");
    assert!(
        principals::members(&mut conn, group.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        principals::memberships_of(&mut conn, bob.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        roles::by_id(&mut conn, acme.id, admin.id).await.unwrap(),
        None
    );
    assert_eq!(
        roles::assignment_count(&mut conn, admin.id).await.unwrap(),
        0
    );
    assert!(
        roles::assignments_of(&mut conn, group.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        principals::by_id(&mut conn, globex.id, carol.id)
            .await
            .unwrap(),
        Some(carol)
    );

    // The audit chain outlives the tenant and still verifies.
    let after = all_records(&store, acme.id).await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(&after[..before.len()], &before[..]);
    assert_eq!(after.last().unwrap().event.action, "tenant.delete");
    verify(&after);
}

// ---------------------------------------------------------------------------
// Principals

async fn principals_round_trip_and_are_found_by_id_and_name(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;

    let mut alice = principal(acme.id, PrincipalKind::User, "Alice");
    alice.display_name = Some("Alice Liddell".into());
    alice.email = Some("alice@example.com".into());
    alice.external_id = Some("hr-0001".into());
    alice.user_type = Some(UserType::Employee);
    alice.attributes =
        json!({"department": "eng", "level": 3, "tags": ["a", "b"], "nested": {"z": 1, "a": null}})
            .as_object()
            .unwrap()
            .clone();
    alice.created_at = at(1);
    alice.updated_at = at(2);
    let mut bob = principal(acme.id, PrincipalKind::User, "bob");
    bob.status = Status::Suspended;
    bob.user_type = Some(UserType::Contractor);
    bob.end_date = Some(
        at(86_400)
            .checked_add(jiff::SignedDuration::from_millis(123))
            .unwrap(),
    );
    bob.sponsor_id = Some(alice.id);
    let mut agent = principal(acme.id, PrincipalKind::Agent, "Helper");
    agent.owner_id = Some(alice.id);
    agent.purpose = Some("triage tickets".into());
    agent.expires_at = Some(at(3600));
    agent.status = Status::Deprovisioned;
    let group = principal(acme.id, PrincipalKind::Group, "Engineering");
    for p in [&alice, &bob, &agent, &group] {
        create_principal(&store, p).await;
    }

    let mut conn = read(&store).await;
    for p in [&alice, &bob, &agent, &group] {
        assert_eq!(
            principals::by_id(&mut conn, acme.id, p.id)
                .await
                .unwrap()
                .as_ref(),
            Some(p)
        );
        // By name, through the case-insensitive key.
        let upper = name_key(&p.name.to_uppercase());
        assert_eq!(
            principals::by_name(&mut conn, acme.id, p.kind, &upper)
                .await
                .unwrap()
                .as_ref(),
            Some(p)
        );
    }
    // Wrong tenant, wrong kind, unknown name or id.
    assert_eq!(
        principals::by_id(&mut conn, other.id, alice.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        principals::by_id(&mut conn, acme.id, PrincipalId::generate())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        principals::by_name(&mut conn, other.id, PrincipalKind::User, "alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        principals::by_name(&mut conn, acme.id, PrincipalKind::Group, "alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        principals::by_name(&mut conn, acme.id, PrincipalKind::User, "alic")
            .await
            .unwrap(),
        None
    );

    // Dependants: those who name alice as sponsor or owner.
    assert_eq!(
        principals::dependants(&mut conn, alice.id).await.unwrap(),
        2
    );
    assert_eq!(principals::dependants(&mut conn, bob.id).await.unwrap(), 0);
}

async fn principal_names_are_unique_case_insensitively_per_tenant_and_kind(
    store: Store,
    _db: &TestDb,
) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;
    let alice = principal(acme.id, PrincipalKind::User, "Alice");
    create_principal(&store, &alice).await;

    for clash in ["alice", "ALICE", "aLiCe"] {
        let mut tx = store.write().await.unwrap();
        let p = principal(acme.id, PrincipalKind::User, clash);
        assert_duplicate(principals::insert(&mut tx, &p, &name_key(&p.name)).await);
    }
    // Composed and decomposed forms of the same name collide.
    create_principal(
        &store,
        &principal(acme.id, PrincipalKind::User, "jos\u{e9}"),
    )
    .await;
    let mut tx = store.write().await.unwrap();
    let decomposed = principal(acme.id, PrincipalKind::User, "Jose\u{301}");
    assert_duplicate(principals::insert(&mut tx, &decomposed, &name_key(&decomposed.name)).await);
    drop(tx);

    // The same name is free for another kind, and in another tenant.
    create_principal(&store, &principal(acme.id, PrincipalKind::Group, "ALICE")).await;
    create_principal(&store, &principal(other.id, PrincipalKind::User, "alice")).await;

    let mut conn = read(&store).await;
    let users = principals::list(
        &mut conn,
        acme.id,
        &PrincipalFilter {
            kind: Some(PrincipalKind::User),
            ..PrincipalFilter::default()
        },
        &page(None, 100),
    )
    .await
    .unwrap();
    assert_eq!(users.items.len(), 2, "a refused insert left a row behind");
    let found = principals::by_name(&mut conn, acme.id, PrincipalKind::User, &name_key("ALICE"))
        .await
        .unwrap();
    assert_eq!(found, Some(alice));
}

async fn duplicate_external_ids_are_refused(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;
    let mut alice = principal(acme.id, PrincipalKind::User, "alice");
    alice.external_id = Some("hr-1".into());
    create_principal(&store, &alice).await;

    let mut bob = principal(acme.id, PrincipalKind::User, "bob");
    bob.external_id = Some("hr-1".into());
    let mut tx = store.write().await.unwrap();
    assert_duplicate(principals::insert(&mut tx, &bob, &name_key(&bob.name)).await);
    drop(tx);

    // Any number of principals without an external id; the same external id
    // for another kind or in another tenant.
    create_principal(&store, &principal(acme.id, PrincipalKind::User, "carol")).await;
    create_principal(&store, &principal(acme.id, PrincipalKind::User, "dave")).await;
    let mut group = principal(acme.id, PrincipalKind::Group, "staff");
    group.external_id = Some("hr-1".into());
    create_principal(&store, &group).await;
    let mut elsewhere = principal(other.id, PrincipalKind::User, "bob");
    elsewhere.external_id = Some("hr-1".into());
    create_principal(&store, &elsewhere).await;

    // Taking an external id by update is refused as well.
    let mut carol = principals::by_name(
        &mut read(&store).await,
        acme.id,
        PrincipalKind::User,
        "carol",
    )
    .await
    .unwrap()
    .unwrap();
    carol.external_id = Some("hr-1".into());
    carol.version = 2;
    let mut tx = store.write().await.unwrap();
    assert_duplicate(principals::update(&mut tx, &carol, &name_key(&carol.name), 1).await);
    drop(tx);

    let mut conn = read(&store).await;
    let with_id = principals::list(
        &mut conn,
        acme.id,
        &PrincipalFilter {
            external_id: Some("hr-1".into()),
            ..PrincipalFilter::default()
        },
        &page(None, 100),
    )
    .await
    .unwrap();
    assert_eq!(with_id.items, sorted_by_id(vec![alice, group]));
}

async fn principals_list_filters(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;

    let mut alice = principal(acme.id, PrincipalKind::User, "alice");
    alice.email = Some("alice@example.com".into());
    alice.user_type = Some(UserType::Employee);
    alice.external_id = Some("hr-1".into());
    let mut alan = principal(acme.id, PrincipalKind::User, "Alan");
    alan.email = Some("shared@example.com".into());
    alan.status = Status::Suspended;
    alan.user_type = Some(UserType::Employee);
    let mut albert = principal(acme.id, PrincipalKind::User, "albert");
    albert.email = Some("shared@example.com".into());
    albert.user_type = Some(UserType::Contractor);
    albert.end_date = Some(at(86_400));
    albert.sponsor_id = Some(alice.id);
    let mut bob = principal(acme.id, PrincipalKind::User, "bob");
    bob.email = Some("bob@example.com".into());
    bob.status = Status::Deprovisioned;
    let mut carol = principal(acme.id, PrincipalKind::User, "carol");
    carol.status = Status::Suspended;
    // Names with LIKE wildcards: a prefix is not a pattern.
    let underscore = principal(acme.id, PrincipalKind::User, "a_b");
    let percent = principal(acme.id, PrincipalKind::User, "a%c");
    let axb = principal(acme.id, PrincipalKind::User, "axb");
    let alpha = principal(acme.id, PrincipalKind::Group, "Alpha-Team");
    let admins = principal(acme.id, PrincipalKind::Group, "admins");
    let mut alerts = principal(acme.id, PrincipalKind::ServiceAccount, "alerts-bot");
    alerts.owner_id = Some(alice.id);
    alerts.purpose = Some("paging".into());
    let mut copilot = principal(acme.id, PrincipalKind::Agent, "copilot");
    copilot.owner_id = Some(bob.id);
    copilot.purpose = Some("code review".into());
    let all = vec![
        alice.clone(),
        alan.clone(),
        albert.clone(),
        bob.clone(),
        carol.clone(),
        underscore.clone(),
        percent.clone(),
        axb.clone(),
        alpha.clone(),
        admins.clone(),
        alerts.clone(),
        copilot.clone(),
    ];
    create_principals(&store, &all).await;
    // Another tenant with look-alikes that must never show up.
    let mut stranger = principal(other.id, PrincipalKind::User, "alice");
    stranger.email = Some("alice@example.com".into());
    stranger.external_id = Some("hr-1".into());
    create_principals(&store, &[stranger]).await;

    let mut conn = read(&store).await;
    let cases: Vec<(&str, PrincipalFilter, Wanted<'_, Principal>)> = vec![
        ("no filter", PrincipalFilter::default(), Box::new(|_| true)),
        (
            "kind user",
            PrincipalFilter {
                kind: Some(PrincipalKind::User),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.kind == PrincipalKind::User),
        ),
        (
            "kind group",
            PrincipalFilter {
                kind: Some(PrincipalKind::Group),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.kind == PrincipalKind::Group),
        ),
        (
            "name prefix al",
            PrincipalFilter {
                name_prefix: Some("al".into()),
                ..PrincipalFilter::default()
            },
            Box::new(|p| name_key(&p.name).starts_with("al")),
        ),
        (
            "users with name prefix al",
            PrincipalFilter {
                kind: Some(PrincipalKind::User),
                name_prefix: Some("al".into()),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.kind == PrincipalKind::User && name_key(&p.name).starts_with("al")),
        ),
        (
            "name prefix a_",
            PrincipalFilter {
                name_prefix: Some("a_".into()),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.name == "a_b"),
        ),
        (
            "name prefix a%",
            PrincipalFilter {
                name_prefix: Some("a%".into()),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.name == "a%c"),
        ),
        (
            "name prefix zz",
            PrincipalFilter {
                name_prefix: Some("zz".into()),
                ..PrincipalFilter::default()
            },
            Box::new(|_| false),
        ),
        (
            "exact name key",
            PrincipalFilter {
                name_key: Some(name_key("ALAN")),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.name == "Alan"),
        ),
        (
            "status suspended",
            PrincipalFilter {
                status: Some(Status::Suspended),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.status == Status::Suspended),
        ),
        (
            "status active",
            PrincipalFilter {
                status: Some(Status::Active),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.status == Status::Active),
        ),
        (
            "shared email",
            PrincipalFilter {
                email: Some("shared@example.com".into()),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.email.as_deref() == Some("shared@example.com")),
        ),
        (
            "email of a principal in both tenants",
            PrincipalFilter {
                email: Some("alice@example.com".into()),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.name == "alice"),
        ),
        (
            "external id",
            PrincipalFilter {
                external_id: Some("hr-1".into()),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.name == "alice"),
        ),
        (
            "user type contractor",
            PrincipalFilter {
                user_type: Some(UserType::Contractor),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.user_type == Some(UserType::Contractor)),
        ),
        (
            "owner",
            PrincipalFilter {
                owner_id: Some(alice.id),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.owner_id == Some(alice.id)),
        ),
        (
            "sponsor",
            PrincipalFilter {
                sponsor_id: Some(alice.id),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.sponsor_id == Some(alice.id)),
        ),
        (
            "active users with the shared email",
            PrincipalFilter {
                kind: Some(PrincipalKind::User),
                status: Some(Status::Active),
                email: Some("shared@example.com".into()),
                ..PrincipalFilter::default()
            },
            Box::new(|p| p.name == "albert"),
        ),
    ];
    for (what, filter, wanted) in cases {
        let expected = sorted_by_id(all.iter().filter(|p| wanted(p)).cloned().collect());
        let got = principals::list(&mut conn, acme.id, &filter, &page(None, 100))
            .await
            .unwrap();
        assert_eq!(got.items, expected, "filter: {what}");
        assert!(!got.more, "filter: {what}");
    }
    // Sanity: the hand-written expectations above are not vacuous.
    let active_users_shared = principals::list(
        &mut conn,
        acme.id,
        &PrincipalFilter {
            kind: Some(PrincipalKind::User),
            status: Some(Status::Active),
            email: Some("shared@example.com".into()),
            ..PrincipalFilter::default()
        },
        &page(None, 100),
    )
    .await
    .unwrap();
    assert_eq!(active_users_shared.items, vec![albert]);
}

async fn principals_list_paginates_with_a_cursor(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;
    let mut all: Vec<Principal> = (0..23)
        .map(|i| {
            let mut p = principal(acme.id, PrincipalKind::User, &format!("user{i:02}"));
            if i % 2 == 0 {
                p.status = Status::Suspended;
            }
            p
        })
        .collect();
    all.push(principal(acme.id, PrincipalKind::Group, "group"));
    create_principals(&store, &all).await;
    create_principals(
        &store,
        &[principal(other.id, PrincipalKind::User, "stranger")],
    )
    .await;
    let all = sorted_by_id(all);

    let mut conn = read(&store).await;
    // Walks every page of `filter` with `limit`; returns the items and the
    // page sizes.
    async fn walk(
        conn: &mut idplane_store::ReadConn,
        tenant: TenantId,
        filter: &PrincipalFilter,
        limit: u32,
    ) -> (Vec<Principal>, Vec<usize>) {
        let mut items: Vec<Principal> = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let after = items.last().map(|p| p.id.to_string());
            let got = principals::list(conn, tenant, filter, &page(after, limit))
                .await
                .unwrap();
            sizes.push(got.items.len());
            items.extend(got.items);
            if !got.more {
                return (items, sizes);
            }
            assert!(sizes.len() < 100, "pagination does not end");
        }
    }

    let everything = PrincipalFilter::default();
    for (limit, sizes) in [
        (5, vec![5, 5, 5, 5, 4]),
        (6, vec![6, 6, 6, 6]),
        (24, vec![24]),
        (23, vec![23, 1]),
        (1000, vec![24]),
    ] {
        let (items, got_sizes) = walk(&mut conn, acme.id, &everything, limit).await;
        assert_eq!(items, all, "limit {limit}");
        assert_eq!(got_sizes, sizes, "limit {limit}");
    }

    // With a filter: 12 suspended users, pages of 5 then of 6.
    let suspended = PrincipalFilter {
        kind: Some(PrincipalKind::User),
        status: Some(Status::Suspended),
        ..PrincipalFilter::default()
    };
    let expected: Vec<Principal> = all
        .iter()
        .filter(|p| p.status == Status::Suspended)
        .cloned()
        .collect();
    assert_eq!(expected.len(), 12);
    let (items, sizes) = walk(&mut conn, acme.id, &suspended, 5).await;
    assert_eq!(items, expected);
    assert_eq!(sizes, [5, 5, 2]);
    let (items, sizes) = walk(&mut conn, acme.id, &suspended, 6).await;
    assert_eq!(items, expected);
    assert_eq!(sizes, [6, 6]);

    // A cursor past the end.
    let last = all.last().unwrap().id.to_string();
    let beyond = principals::list(&mut conn, acme.id, &everything, &page(Some(last), 5))
        .await
        .unwrap();
    assert!(beyond.items.is_empty());
    assert!(!beyond.more);
}

async fn principal_update_checks_the_expected_version(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;
    let alice = principal(acme.id, PrincipalKind::User, "alice");
    let bob = principal(acme.id, PrincipalKind::User, "bob");
    create_principals(&store, &[alice.clone(), bob.clone()]).await;

    let mut changed = alice.clone();
    changed.name = "Alicia".into();
    changed.display_name = Some("Alicia L.".into());
    changed.email = Some("alicia@example.com".into());
    changed.status = Status::Suspended;
    changed.user_type = Some(UserType::Employee);
    changed.attributes = json!({"department": "ops"}).as_object().unwrap().clone();
    changed.updated_at = at(3600);
    changed.version = 2;

    // Wrong expected version: nothing changes.
    let mut tx = store.write().await.unwrap();
    assert!(
        !principals::update(&mut tx, &changed, &name_key(&changed.name), 2)
            .await
            .unwrap()
    );
    assert!(
        !principals::update(&mut tx, &changed, &name_key(&changed.name), 0)
            .await
            .unwrap()
    );
    // Wrong tenant: nothing changes.
    let mut foreign = changed.clone();
    foreign.tenant_id = other.id;
    assert!(
        !principals::update(&mut tx, &foreign, &name_key(&foreign.name), 1)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "user.update").await;
    assert_eq!(
        principals::by_id(&mut read(&store).await, acme.id, alice.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&alice)
    );

    // Right version: everything changes, including the name key.
    let mut tx = store.write().await.unwrap();
    assert!(
        principals::update(&mut tx, &changed, &name_key(&changed.name), 1)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "user.update").await;
    let mut conn = read(&store).await;
    assert_eq!(
        principals::by_id(&mut conn, acme.id, alice.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&changed)
    );
    assert_eq!(
        principals::by_name(&mut conn, acme.id, PrincipalKind::User, "alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        principals::by_name(&mut conn, acme.id, PrincipalKind::User, &name_key("ALICIA"))
            .await
            .unwrap()
            .as_ref(),
        Some(&changed)
    );
    drop(conn);

    // The same update again is stale now.
    let mut tx = store.write().await.unwrap();
    assert!(
        !principals::update(&mut tx, &changed, &name_key(&changed.name), 1)
            .await
            .unwrap()
    );
    drop(tx);

    // Renaming onto another user's name is a duplicate.
    let mut clash = changed.clone();
    clash.name = "BOB".into();
    clash.version = 3;
    let mut tx = store.write().await.unwrap();
    assert_duplicate(principals::update(&mut tx, &clash, &name_key(&clash.name), 2).await);
    drop(tx);
    assert_eq!(
        principals::by_id(&mut read(&store).await, acme.id, alice.id)
            .await
            .unwrap(),
        Some(changed)
    );
}

// ---------------------------------------------------------------------------
// Memberships

/// The many-row writes an HR import uses: more rows than one statement
/// takes, all in, and a second pass updates rather than duplicates.
async fn batched_writes_span_several_statements_and_upsert(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let staff = principal(acme.id, PrincipalKind::Group, "staff");
    let reader = role(acme.id, "reader");
    create_principals(&store, std::slice::from_ref(&staff)).await;
    create_role(&store, &reader).await;
    let users: Vec<Principal> = (0..1_201)
        .map(|i| principal(acme.id, PrincipalKind::User, &format!("user{i:04}")))
        .collect();
    let keys: Vec<String> = users.iter().map(|u| name_key(&u.name)).collect();
    let rows: Vec<(&Principal, &str)> = users.iter().zip(keys.iter().map(String::as_str)).collect();
    let grant = |expires_at| {
        let memberships: Vec<Membership> = users
            .iter()
            .map(|u| membership(staff.id, u.id, expires_at))
            .collect();
        let assignments: Vec<RoleAssignment> = users
            .iter()
            .map(|u| RoleAssignment {
                id: AssignmentId::generate(),
                tenant_id: acme.id,
                role_id: reader.id,
                principal_id: u.id,
                expires_at,
                created_at: t0(),
            })
            .collect();
        (memberships, assignments)
    };
    // The first pass inserts; the second finds every row and updates it.
    for (pass, expires_at) in [None, Some(at(3600))].into_iter().enumerate() {
        let mut tx = store.write().await.unwrap();
        if pass == 0 {
            principals::insert_all(&mut tx, &rows).await.unwrap();
        }
        let (memberships, assignments) = grant(expires_at);
        principals::upsert_memberships(&mut tx, acme.id, &memberships)
            .await
            .unwrap();
        roles::upsert_assignments(&mut tx, &assignments)
            .await
            .unwrap();
        commit(tx, acme.id, "hr.import").await;
    }

    let mut conn = read(&store).await;
    let last = principals::by_name(
        &mut conn,
        acme.id,
        PrincipalKind::User,
        &name_key("USER1200"),
    )
    .await
    .unwrap()
    .expect("the last row is in");
    assert_eq!(last, users[1_200]);
    let members = principals::members(&mut conn, staff.id).await.unwrap();
    assert_eq!(members.len(), 1_201);
    assert!(members.iter().all(|m| m.expires_at == Some(at(3600))));
    assert_eq!(
        roles::assignment_count(&mut conn, reader.id).await.unwrap(),
        1_201
    );
    let held = roles::assignments_of(&mut conn, last.id).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].expires_at, Some(at(3600)));
}

async fn memberships_upsert_list_and_delete(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let staff = principal(acme.id, PrincipalKind::Group, "staff");
    let admins = principal(acme.id, PrincipalKind::Group, "admins");
    let alice = principal(acme.id, PrincipalKind::User, "alice");
    let bob = principal(acme.id, PrincipalKind::User, "bob");
    create_principals(
        &store,
        &[staff.clone(), admins.clone(), alice.clone(), bob.clone()],
    )
    .await;

    let alice_staff = membership(staff.id, alice.id, None);
    let bob_staff = membership(staff.id, bob.id, Some(at(3600)));
    let alice_admins = membership(admins.id, alice.id, None);
    for m in [&alice_staff, &bob_staff, &alice_admins] {
        add_member(&store, acme.id, m).await;
    }

    let mut conn = read(&store).await;
    let mut expected_staff = vec![alice_staff.clone(), bob_staff.clone()];
    expected_staff.sort_by_key(|m| m.member_id.to_string());
    assert_eq!(
        principals::members(&mut conn, staff.id).await.unwrap(),
        expected_staff
    );
    let mut expected_alice = vec![alice_staff.clone(), alice_admins.clone()];
    expected_alice.sort_by_key(|m| m.group_id.to_string());
    assert_eq!(
        principals::memberships_of(&mut conn, alice.id)
            .await
            .unwrap(),
        expected_alice
    );
    assert_eq!(
        principals::memberships_of(&mut conn, bob.id).await.unwrap(),
        vec![bob_staff.clone()]
    );
    assert!(
        principals::members(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    drop(conn);

    // Upserting an existing membership changes only its expiry.
    let mut renewed = alice_staff.clone();
    renewed.expires_at = Some(at(7200));
    renewed.created_at = at(60);
    add_member(&store, acme.id, &renewed).await;
    let mut unexpiring = bob_staff.clone();
    unexpiring.expires_at = None;
    add_member(&store, acme.id, &unexpiring).await;
    let mut conn = read(&store).await;
    let members = principals::members(&mut conn, staff.id).await.unwrap();
    assert_eq!(members.len(), 2, "upsert added a row");
    let stored_alice = members.iter().find(|m| m.member_id == alice.id).unwrap();
    assert_eq!(stored_alice.expires_at, Some(at(7200)));
    assert_eq!(stored_alice.created_at, t0(), "upsert changed created_at");
    let stored_bob = members.iter().find(|m| m.member_id == bob.id).unwrap();
    assert_eq!(stored_bob.expires_at, None);
    drop(conn);

    // Delete.
    let mut tx = store.write().await.unwrap();
    assert!(
        principals::delete_membership(&mut tx, staff.id, alice.id)
            .await
            .unwrap()
    );
    assert!(
        !principals::delete_membership(&mut tx, staff.id, alice.id)
            .await
            .unwrap()
    );
    assert!(
        !principals::delete_membership(&mut tx, admins.id, bob.id)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "group.remove_member").await;
    let mut conn = read(&store).await;
    assert_eq!(
        principals::members(&mut conn, staff.id)
            .await
            .unwrap()
            .iter()
            .map(|m| m.member_id)
            .collect::<Vec<_>>(),
        [bob.id]
    );
    assert_eq!(
        principals::memberships_of(&mut conn, alice.id)
            .await
            .unwrap(),
        vec![alice_admins]
    );
}

async fn transitive_groups_follow_nesting_and_expiry(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let user = principal(acme.id, PrincipalKind::User, "alice");
    let team = principal(acme.id, PrincipalKind::Group, "team");
    let department = principal(acme.id, PrincipalKind::Group, "department");
    let company = principal(acme.id, PrincipalKind::Group, "company");
    let side = principal(acme.id, PrincipalKind::Group, "side-project");
    let contractors = principal(acme.id, PrincipalKind::Group, "contractors");
    let unrelated = principal(acme.id, PrincipalKind::Group, "unrelated");
    create_principals(
        &store,
        &[
            user.clone(),
            team.clone(),
            department.clone(),
            company.clone(),
            side.clone(),
            contractors.clone(),
            unrelated.clone(),
        ],
    )
    .await;
    // user -> team -> department -> company; user -> side (expires at +1h);
    // team -> contractors (expired at t0) -> company (again); a cycle
    // company -> team.
    add_member(&store, acme.id, &membership(team.id, user.id, None)).await;
    add_member(&store, acme.id, &membership(department.id, team.id, None)).await;
    add_member(
        &store,
        acme.id,
        &membership(company.id, department.id, Some(at(86_400))),
    )
    .await;
    add_member(
        &store,
        acme.id,
        &membership(side.id, user.id, Some(at(3600))),
    )
    .await;
    add_member(
        &store,
        acme.id,
        &membership(contractors.id, team.id, Some(t0())),
    )
    .await;
    add_member(
        &store,
        acme.id,
        &membership(company.id, contractors.id, None),
    )
    .await;
    add_member(&store, acme.id, &membership(team.id, company.id, None)).await;

    let mut conn = read(&store).await;
    let mut groups_of =
        async |start: PrincipalId, now: Option<idplane_core::Timestamp>| -> BTreeSet<PrincipalId> {
            let found = principals::transitive_groups(&mut conn, start, now)
                .await
                .unwrap()
                .ids;
            let set: BTreeSet<_> = found.iter().copied().collect();
            assert_eq!(set.len(), found.len(), "a group was reported twice");
            set
        };

    // At t0 the contractors membership has just expired (expiry is exclusive).
    assert_eq!(
        groups_of(user.id, Some(t0())).await,
        BTreeSet::from([team.id, department.id, company.id, side.id])
    );
    // Everything, expired or not, for cycle checks.
    assert_eq!(
        groups_of(user.id, None).await,
        BTreeSet::from([team.id, department.id, company.id, side.id, contractors.id])
    );
    // Just before t0 the contractors membership still counts.
    let before = t0()
        .checked_sub(jiff::SignedDuration::from_millis(1))
        .unwrap();
    assert_eq!(
        groups_of(user.id, Some(before)).await,
        BTreeSet::from([team.id, department.id, company.id, side.id, contractors.id])
    );
    // After +1h the side project is gone; after +1d department -> company too,
    // and company is no longer reachable at all.
    assert_eq!(
        groups_of(user.id, Some(at(3600))).await,
        BTreeSet::from([team.id, department.id, company.id])
    );
    assert_eq!(
        groups_of(user.id, Some(at(86_400))).await,
        BTreeSet::from([team.id, department.id])
    );
    // The first expiry among the memberships counted: the side project's
    // (+1h) at t0; just before t0 the contractors' (t0) comes first; at
    // +1d nothing counted expires.
    let first_expiry = async |now| {
        let mut conn = read(&store).await;
        principals::transitive_groups(&mut conn, user.id, Some(now))
            .await
            .unwrap()
            .first_expiry
    };
    assert_eq!(first_expiry(t0()).await, Some(at(3600)));
    assert_eq!(first_expiry(before).await, Some(t0()));
    assert_eq!(first_expiry(at(86_400)).await, None);
    // From a group: its ancestors, never itself, even through the cycle.
    assert_eq!(
        groups_of(team.id, None).await,
        BTreeSet::from([department.id, company.id, contractors.id])
    );
    assert_eq!(groups_of(unrelated.id, None).await, BTreeSet::new());
}

// ---------------------------------------------------------------------------
// Roles and assignments

async fn roles_insert_lookup_list_update_delete(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let other = create_tenant(&store, "other").await;
    let admin = role(acme.id, "Admin");
    let mut reader = role(acme.id, "reader");
    reader.description = None;
    reader.entitlements = Vec::new();
    create_role(&store, &admin).await;
    create_role(&store, &reader).await;
    create_role(&store, &role(other.id, "admin")).await;

    let mut conn = read(&store).await;
    assert_eq!(
        roles::by_id(&mut conn, acme.id, admin.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&admin)
    );
    assert_eq!(
        roles::by_id(&mut conn, acme.id, reader.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&reader)
    );
    assert_eq!(
        roles::by_id(&mut conn, other.id, admin.id).await.unwrap(),
        None
    );
    assert_eq!(
        roles::by_name(&mut conn, acme.id, &name_key("ADMIN"))
            .await
            .unwrap()
            .as_ref(),
        Some(&admin)
    );
    assert_eq!(
        roles::by_name(&mut conn, acme.id, "nobody").await.unwrap(),
        None
    );

    let mut expected = vec![admin.clone(), reader.clone()];
    expected.sort_by_key(|r| r.id.to_string());
    let all = roles::list(&mut conn, acme.id, &page(None, 10))
        .await
        .unwrap();
    assert_eq!(all.items, expected);
    assert!(!all.more);
    let first = roles::list(&mut conn, acme.id, &page(None, 1))
        .await
        .unwrap();
    assert_eq!(first.items, expected[..1]);
    assert!(first.more);
    let second = roles::list(
        &mut conn,
        acme.id,
        &page(Some(expected[0].id.to_string()), 1),
    )
    .await
    .unwrap();
    assert_eq!(second.items, expected[1..]);
    assert!(!second.more);
    drop(conn);

    // Duplicate names, case-insensitively, within a tenant.
    let mut tx = store.write().await.unwrap();
    let clash = role(acme.id, "ADMIN");
    assert_duplicate(roles::insert(&mut tx, &clash, &name_key(&clash.name)).await);
    drop(tx);

    // Update with the version check.
    let mut changed = admin.clone();
    changed.name = "Administrator".into();
    changed.entitlements.push(Entitlement {
        resource: "hr".into(),
        permission: "admin".into(),
    });
    changed.updated_at = at(10);
    changed.version = 2;
    let mut tx = store.write().await.unwrap();
    assert!(
        !roles::update(&mut tx, &changed, &name_key(&changed.name), 2)
            .await
            .unwrap()
    );
    assert!(
        roles::update(&mut tx, &changed, &name_key(&changed.name), 1)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "role.update").await;
    let mut tx = store.write().await.unwrap();
    let mut onto_reader = changed.clone();
    onto_reader.name = "Reader".into();
    onto_reader.version = 3;
    assert_duplicate(roles::update(&mut tx, &onto_reader, &name_key(&onto_reader.name), 2).await);
    drop(tx);
    let mut conn = read(&store).await;
    assert_eq!(
        roles::by_id(&mut conn, acme.id, admin.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&changed)
    );
    assert_eq!(
        roles::by_name(&mut conn, acme.id, "admin").await.unwrap(),
        None
    );
    drop(conn);

    // Delete.
    let mut tx = store.write().await.unwrap();
    assert!(
        !roles::delete(&mut tx, other.id, reader.id).await.unwrap(),
        "deleted across tenants"
    );
    assert!(roles::delete(&mut tx, acme.id, reader.id).await.unwrap());
    assert!(!roles::delete(&mut tx, acme.id, reader.id).await.unwrap());
    commit(tx, acme.id, "role.delete").await;
    let all = roles::list(&mut read(&store).await, acme.id, &page(None, 10))
        .await
        .unwrap();
    assert_eq!(all.items, vec![changed]);
}

async fn role_assignments_upsert_filter_count_delete(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let admin = role(acme.id, "admin");
    let reader = role(acme.id, "reader");
    create_role(&store, &admin).await;
    create_role(&store, &reader).await;
    let alice = principal(acme.id, PrincipalKind::User, "alice");
    let bob = principal(acme.id, PrincipalKind::User, "bob");
    let staff = principal(acme.id, PrincipalKind::Group, "staff");
    create_principals(&store, &[alice.clone(), bob.clone(), staff.clone()]).await;

    // The upsert returns the row as stored.
    let alice_admin = assignment(&admin, alice.id, None);
    assert_eq!(assign(&store, &alice_admin).await, alice_admin);
    let bob_admin = assignment(&admin, bob.id, Some(at(3600)));
    assert_eq!(assign(&store, &bob_admin).await, bob_admin);
    let staff_reader = assignment(&reader, staff.id, None);
    assert_eq!(assign(&store, &staff_reader).await, staff_reader);
    let alice_reader = assignment(&reader, alice.id, Some(at(60)));
    assert_eq!(assign(&store, &alice_reader).await, alice_reader);

    // Granting again keeps the original id and creation time and changes
    // only the expiry.
    let mut again = assignment(&admin, alice.id, Some(at(7200)));
    again.created_at = at(100);
    let stored = assign(&store, &again).await;
    let mut alice_admin = alice_admin;
    alice_admin.expires_at = Some(at(7200));
    assert_eq!(stored, alice_admin);

    let mut conn = read(&store).await;
    assert_eq!(
        roles::assignment(&mut conn, acme.id, again.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        roles::assignment(&mut conn, acme.id, alice_admin.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&alice_admin)
    );
    assert_eq!(
        roles::assignment(&mut conn, TenantId::generate(), alice_admin.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        roles::assignment_count(&mut conn, admin.id).await.unwrap(),
        2
    );
    assert_eq!(
        roles::assignment_count(&mut conn, reader.id).await.unwrap(),
        2
    );
    assert_eq!(
        roles::assignment_count(&mut conn, RoleId::generate())
            .await
            .unwrap(),
        0
    );

    let all = [
        alice_admin.clone(),
        bob_admin.clone(),
        staff_reader.clone(),
        alice_reader.clone(),
    ];
    let filtered = |f: &dyn Fn(&RoleAssignment) -> bool| {
        let mut v: Vec<RoleAssignment> = all.iter().filter(|a| f(a)).cloned().collect();
        v.sort_by_key(|a| a.id.to_string());
        v
    };
    let cases: Vec<(AssignmentFilter, Vec<RoleAssignment>)> = vec![
        (AssignmentFilter::default(), filtered(&|_| true)),
        (
            AssignmentFilter {
                role_id: Some(admin.id),
                principal_id: None,
            },
            filtered(&|a| a.role_id == admin.id),
        ),
        (
            AssignmentFilter {
                role_id: None,
                principal_id: Some(alice.id),
            },
            filtered(&|a| a.principal_id == alice.id),
        ),
        (
            AssignmentFilter {
                role_id: Some(reader.id),
                principal_id: Some(alice.id),
            },
            vec![alice_reader.clone()],
        ),
        (
            AssignmentFilter {
                role_id: Some(reader.id),
                principal_id: Some(bob.id),
            },
            Vec::new(),
        ),
    ];
    for (filter, expected) in &cases {
        let got = roles::assignments(&mut conn, acme.id, filter, &page(None, 100))
            .await
            .unwrap();
        assert_eq!(&got.items, expected, "filter {filter:?}");
        assert!(!got.more);
    }
    // Pagination by id.
    let everything = filtered(&|_| true);
    let first = roles::assignments(
        &mut conn,
        acme.id,
        &AssignmentFilter::default(),
        &page(None, 3),
    )
    .await
    .unwrap();
    assert_eq!(first.items, everything[..3]);
    assert!(first.more);
    let after = Some(first.items[2].id.to_string());
    let rest = roles::assignments(
        &mut conn,
        acme.id,
        &AssignmentFilter::default(),
        &page(after, 3),
    )
    .await
    .unwrap();
    assert_eq!(rest.items, everything[3..]);
    assert!(!rest.more);
    // Another tenant sees none of them.
    let foreign = roles::assignments(
        &mut conn,
        TenantId::generate(),
        &AssignmentFilter::default(),
        &page(None, 100),
    )
    .await
    .unwrap();
    assert!(foreign.items.is_empty());
    assert_eq!(
        roles::assignments_of(&mut conn, alice.id).await.unwrap(),
        filtered(&|a| a.principal_id == alice.id)
    );
    // The roles held, joined in one query: in assignment order, each with
    // its assignment's expiry; none through another tenant.
    let role_of = |a: &RoleAssignment| {
        if a.role_id == admin.id {
            &admin
        } else {
            &reader
        }
    };
    let held: Vec<(Role, Option<idplane_core::Timestamp>)> =
        filtered(&|a| a.principal_id == alice.id)
            .iter()
            .map(|a| (role_of(a).clone(), a.expires_at))
            .collect();
    assert_eq!(held.len(), 2);
    assert_eq!(
        roles::held_by(&mut conn, acme.id, alice.id).await.unwrap(),
        held
    );
    assert!(
        roles::held_by(&mut conn, TenantId::generate(), alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    drop(conn);

    // Revoke.
    let mut tx = store.write().await.unwrap();
    assert!(
        !roles::delete_assignment(&mut tx, TenantId::generate(), bob_admin.id)
            .await
            .unwrap()
    );
    assert!(
        roles::delete_assignment(&mut tx, acme.id, bob_admin.id)
            .await
            .unwrap()
    );
    assert!(
        !roles::delete_assignment(&mut tx, acme.id, bob_admin.id)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "role.unassign").await;
    let mut conn = read(&store).await;
    assert_eq!(
        roles::assignment_count(&mut conn, admin.id).await.unwrap(),
        1
    );
    assert_eq!(
        roles::assignment(&mut conn, acme.id, bob_admin.id)
            .await
            .unwrap(),
        None
    );
    assert!(
        roles::assignments_of(&mut conn, bob.id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deleting_a_principal_cascades_memberships_and_assignments(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let admin = role(acme.id, "admin");
    create_role(&store, &admin).await;
    let alice = principal(acme.id, PrincipalKind::User, "alice");
    let bob = principal(acme.id, PrincipalKind::User, "bob");
    let staff = principal(acme.id, PrincipalKind::Group, "staff");
    let admins = principal(acme.id, PrincipalKind::Group, "admins");
    let mut contractor = principal(acme.id, PrincipalKind::User, "carol");
    contractor.user_type = Some(UserType::Contractor);
    contractor.end_date = Some(at(86_400));
    contractor.sponsor_id = Some(bob.id);
    create_principals(
        &store,
        &[
            alice.clone(),
            bob.clone(),
            staff.clone(),
            admins.clone(),
            contractor.clone(),
        ],
    )
    .await;
    add_member(&store, acme.id, &membership(staff.id, alice.id, None)).await;
    add_member(&store, acme.id, &membership(staff.id, bob.id, None)).await;
    add_member(&store, acme.id, &membership(admins.id, alice.id, None)).await;
    add_member(&store, acme.id, &membership(staff.id, admins.id, None)).await;
    let alice_admin = assign(&store, &assignment(&admin, alice.id, None)).await;
    let staff_admin = assign(&store, &assignment(&admin, staff.id, None)).await;

    // Deleting a user takes its memberships and assignments with it.
    let mut tx = store.write().await.unwrap();
    assert!(
        !principals::delete(&mut tx, TenantId::generate(), alice.id)
            .await
            .unwrap(),
        "deleted across tenants"
    );
    assert!(
        principals::delete(&mut tx, acme.id, alice.id)
            .await
            .unwrap()
    );
    assert!(
        !principals::delete(&mut tx, acme.id, alice.id)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "user.delete").await;
    let mut conn = read(&store).await;
    assert_eq!(
        principals::by_id(&mut conn, acme.id, alice.id)
            .await
            .unwrap(),
        None
    );
    assert!(
        principals::memberships_of(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    let staff_members: Vec<_> = principals::members(&mut conn, staff.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.member_id)
        .collect();
    assert_eq!(
        BTreeSet::from_iter(staff_members),
        BTreeSet::from([bob.id, admins.id])
    );
    assert!(
        principals::members(&mut conn, admins.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        roles::assignments_of(&mut conn, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        roles::assignment(&mut conn, acme.id, alice_admin.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        roles::assignment_count(&mut conn, admin.id).await.unwrap(),
        1
    );
    drop(conn);

    // Deleting a group takes its members' memberships and its own.
    let mut tx = store.write().await.unwrap();
    assert!(
        principals::delete(&mut tx, acme.id, staff.id)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "group.delete").await;
    let mut conn = read(&store).await;
    assert!(
        principals::memberships_of(&mut conn, bob.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        principals::memberships_of(&mut conn, admins.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        roles::assignment(&mut conn, acme.id, staff_admin.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        roles::assignment_count(&mut conn, admin.id).await.unwrap(),
        0
    );
    assert_eq!(
        roles::by_id(&mut conn, acme.id, admin.id).await.unwrap(),
        Some(admin)
    );
    drop(conn);

    // A sponsor cannot be deleted from under the principal it sponsors: the
    // database refuses (callers check `dependants` first).
    assert_eq!(
        principals::dependants(&mut read(&store).await, bob.id)
            .await
            .unwrap(),
        1
    );
    let mut tx = store.write().await.unwrap();
    let refused = principals::delete(&mut tx, acme.id, bob.id).await;
    assert!(
        matches!(refused, Err(StoreError::Database(_))),
        "sponsor deleted: {refused:?}"
    );
    drop(tx);
    assert!(
        principals::by_id(&mut read(&store).await, acme.id, bob.id)
            .await
            .unwrap()
            .is_some()
    );
}

async fn every_directory_change_moves_the_generation_in_its_transaction(
    store: Store,
    _db: &TestDb,
) {
    async fn generation(store: &Store) -> i64 {
        generations::directory(&mut read(store).await)
            .await
            .unwrap()
    }
    let acme = create_tenant(&store, "acme").await;
    let alice = principal(acme.id, PrincipalKind::User, "alice");
    let staff = principal(acme.id, PrincipalKind::Group, "staff");
    let admin = role(acme.id, "admin");
    let mut seen = generation(&store).await;
    let mut moved = |now: i64, what: &str| {
        assert!(
            now > seen,
            "{what} did not move the generation ({seen} -> {now})"
        );
        seen = now;
    };

    create_principals(&store, &[alice.clone(), staff.clone()]).await;
    moved(generation(&store).await, "inserting principals");
    add_member(&store, acme.id, &membership(staff.id, alice.id, None)).await;
    moved(generation(&store).await, "adding a member");
    create_role(&store, &admin).await;
    moved(generation(&store).await, "creating a role");
    let assigned = assign(&store, &assignment(&admin, alice.id, None)).await;
    moved(generation(&store).await, "assigning a role");

    let mut renamed = admin.clone();
    renamed.name = "admins".into();
    let mut tx = store.write().await.unwrap();
    assert!(
        roles::update(&mut tx, &renamed, "admins", admin.version)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "role.update").await;
    moved(generation(&store).await, "renaming a role");

    let mut tx = store.write().await.unwrap();
    assert!(
        roles::delete_assignment(&mut tx, acme.id, assigned.id)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "role.unassign").await;
    moved(generation(&store).await, "removing an assignment");

    // A write that does not commit moves nothing: the counter is part of
    // the transaction, so a poller never drops its cache for a change that
    // did not happen, nor misses one that did.
    let before = generation(&store).await;
    let mut tx = store.write().await.unwrap();
    assert!(
        principals::delete(&mut tx, acme.id, alice.id)
            .await
            .unwrap()
    );
    drop(tx);
    assert_eq!(generation(&store).await, before, "a dropped write moved it");

    // Deleting a principal (and, through the cascade, its memberships).
    let mut tx = store.write().await.unwrap();
    assert!(
        principals::delete(&mut tx, acme.id, alice.id)
            .await
            .unwrap()
    );
    commit(tx, acme.id, "user.delete").await;
    moved(generation(&store).await, "deleting a principal");

    // Writes outside the directory leave it alone.
    let before = generation(&store).await;
    create_tenant(&store, "globex").await;
    let tx = store.write().await.unwrap();
    tx.commit(event(acme.id, "user.login", None)).await.unwrap();
    assert_eq!(
        generation(&store).await,
        before,
        "a non-directory write moved it"
    );
}

/// On PostgreSQL, directory writers that lock rows in opposite orders do
/// not deadlock on the generation's row: it is locked at commit, the last
/// lock a transaction takes. (SQLite has one writer at a time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_the_generation_closes_no_deadlock_between_directory_writers() {
    let Some(db) = TestDb::postgres() else {
        eprintln!(
            "skipped: {} is not set (PostgreSQL conformance)",
            support::PG_URL_VAR
        );
        return;
    };
    support::run(db, |store, _db| async move {
        let acme = create_tenant(&store, "acme").await;
        let p = principal(acme.id, PrincipalKind::User, "p");
        let q = principal(acme.id, PrincipalKind::User, "q");
        create_principals(&store, &[p.clone(), q.clone()]).await;
        let before = generations::directory(&mut read(&store).await)
            .await
            .unwrap();
        let renamed = |who: &Principal| Principal {
            display_name: Some("renamed".into()),
            ..who.clone()
        };

        // The first writer changes q, the second p; then the first waits
        // for p while the second commits.
        let mut first = store.write().await.unwrap();
        assert!(
            principals::update(&mut first, &renamed(&q), "q", q.version)
                .await
                .unwrap()
        );
        let mut second = store.write().await.unwrap();
        let second_changed = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            principals::update(&mut second, &renamed(&p), "p", p.version),
        )
        .await
        .expect("the second writer waited on the first's generation lock");
        assert!(second_changed.unwrap());
        let p_again = renamed(&p);
        let waiting = tokio::spawn(async move {
            let changed = principals::update(&mut first, &p_again, "p", p_again.version).await;
            (first, changed)
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        commit(second, acme.id, "user.update").await;
        let (first, changed) = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the first writer never got p")
            .unwrap();
        changed.expect("the first writer was chosen as a deadlock victim");
        commit(first, acme.id, "user.update").await;
        let after = generations::directory(&mut read(&store).await)
            .await
            .unwrap();
        assert_eq!(after, before + 2, "each transaction moves it once");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Tokens and keys

async fn tokens_insert_lookup_revoke_and_scope(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let mut conn = read(&store).await;
    assert!(
        !tokens::any_with_scope(&mut conn, "bootstrap")
            .await
            .unwrap()
    );
    drop(conn);

    let bootstrap = token("bootstrap", "bootstrap", None);
    let mut scoped = token("ci", "admin", Some(acme.id));
    scoped.principal_id = Some(PrincipalId::generate());
    scoped.expires_at = Some(at(86_400));
    scoped.created_by = "token:someone".into();
    let reader = token("dashboards", "read", Some(acme.id));
    let mut tx = store.write().await.unwrap();
    tokens::insert(&mut tx, &bootstrap, "hash-bootstrap")
        .await
        .unwrap();
    tokens::insert(&mut tx, &scoped, "hash-ci").await.unwrap();
    tokens::insert(&mut tx, &reader, "hash-read").await.unwrap();
    commit(tx, acme.id, "token.create").await;

    let mut conn = read(&store).await;
    assert_eq!(
        tokens::by_hash(&mut conn, "hash-bootstrap")
            .await
            .unwrap()
            .as_ref(),
        Some(&bootstrap)
    );
    assert_eq!(
        tokens::by_hash(&mut conn, "hash-ci")
            .await
            .unwrap()
            .as_ref(),
        Some(&scoped)
    );
    assert_eq!(
        tokens::by_hash(&mut conn, "hash-unknown").await.unwrap(),
        None
    );
    assert_eq!(
        tokens::by_id(&mut conn, reader.id).await.unwrap().as_ref(),
        Some(&reader)
    );
    assert_eq!(
        tokens::by_id(&mut conn, TokenId::generate()).await.unwrap(),
        None
    );
    assert!(
        tokens::any_with_scope(&mut conn, "bootstrap")
            .await
            .unwrap()
    );
    assert!(tokens::any_with_scope(&mut conn, "read").await.unwrap());
    assert!(!tokens::any_with_scope(&mut conn, "nothing").await.unwrap());

    let mut expected = vec![bootstrap.clone(), scoped.clone(), reader.clone()];
    expected.sort_by_key(|t| t.id.to_string());
    let all = tokens::list(&mut conn, &page(None, 10)).await.unwrap();
    assert_eq!(all.items, expected);
    assert!(!all.more);
    let first = tokens::list(&mut conn, &page(None, 2)).await.unwrap();
    assert_eq!(first.items, expected[..2]);
    assert!(first.more);
    let rest = tokens::list(&mut conn, &page(Some(expected[1].id.to_string()), 2))
        .await
        .unwrap();
    assert_eq!(rest.items, expected[2..]);
    assert!(!rest.more);
    drop(conn);

    // The same secret hash twice is a duplicate.
    let mut tx = store.write().await.unwrap();
    assert_duplicate(tokens::insert(&mut tx, &token("again", "admin", None), "hash-ci").await);
    drop(tx);

    // Revoke once; the second revoke changes nothing.
    let mut tx = store.write().await.unwrap();
    assert!(tokens::revoke(&mut tx, scoped.id, at(60)).await.unwrap());
    assert!(!tokens::revoke(&mut tx, scoped.id, at(120)).await.unwrap());
    assert!(
        !tokens::revoke(&mut tx, TokenId::generate(), at(120))
            .await
            .unwrap()
    );
    commit(tx, acme.id, "token.revoke").await;
    let mut tx = store.write().await.unwrap();
    assert!(!tokens::revoke(&mut tx, scoped.id, at(180)).await.unwrap());
    drop(tx);
    let revoked = tokens::by_hash(&mut read(&store).await, "hash-ci")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at(60)));
    assert_eq!(
        StoredToken {
            revoked_at: None,
            ..revoked
        },
        scoped
    );
}

async fn keys_insert_current_and_by_id(store: Store, _db: &TestDb) {
    let key = |id: &str, purpose: &str, created_at, retired_at| StoredKey {
        id: id.into(),
        purpose: purpose.into(),
        algorithm: "Ed25519".into(),
        public_key: format!("pub-{id}"),
        sealed_private_key: format!("sealed-{id}"),
        created_at,
        retired_at,
    };
    let mut conn = read(&store).await;
    assert_eq!(
        keys::current(&mut conn, "audit-checkpoint").await.unwrap(),
        None
    );
    drop(conn);

    let old = key("k1", "audit-checkpoint", t0(), Some(at(86_400)));
    let new = key("k2", "audit-checkpoint", at(86_400), None);
    let other = key("k3", "token-signing", at(172_800), None);
    let tenant = TenantId::generate();
    for k in [&new, &old, &other] {
        let mut tx = store.write().await.unwrap();
        keys::insert(&mut tx, k).await.unwrap();
        commit(tx, tenant, "key.create").await;
    }

    let mut conn = read(&store).await;
    assert_eq!(
        keys::current(&mut conn, "audit-checkpoint")
            .await
            .unwrap()
            .as_ref(),
        Some(&new)
    );
    assert_eq!(
        keys::current(&mut conn, "token-signing")
            .await
            .unwrap()
            .as_ref(),
        Some(&other)
    );
    assert_eq!(keys::current(&mut conn, "nothing").await.unwrap(), None);
    assert_eq!(
        keys::by_id(&mut conn, "k1").await.unwrap().as_ref(),
        Some(&old)
    );
    assert_eq!(keys::by_id(&mut conn, "nope").await.unwrap(), None);
    assert_eq!(
        keys::active(&mut conn, "audit-checkpoint", "Ed25519")
            .await
            .unwrap()
            .as_ref(),
        Some(&new)
    );
    assert_eq!(
        keys::active(&mut conn, "audit-checkpoint", "ES256")
            .await
            .unwrap(),
        None
    );
    // Published: active keys and keys retired after the cut-off.
    let ids = |keys: Vec<StoredKey>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(
        ids(keys::published(&mut conn, "audit-checkpoint", at(86_399))
            .await
            .unwrap()),
        ["k1", "k2"]
    );
    assert_eq!(
        ids(keys::published(&mut conn, "audit-checkpoint", at(86_400))
            .await
            .unwrap()),
        ["k2"]
    );
    assert_eq!(
        ids(keys::list(&mut conn, "audit-checkpoint").await.unwrap()),
        ["k1", "k2"]
    );
    drop(conn);

    // A second active key of one purpose and algorithm is refused, and a
    // refused insert leaves nothing behind when its transaction is dropped.
    let twin = key("k9", "audit-checkpoint", at(86_400), None);
    let mut tx = store.write().await.unwrap();
    assert_duplicate(keys::insert(&mut tx, &twin).await);
    drop(tx);
    assert_eq!(
        keys::by_id(&mut read(&store).await, "k9").await.unwrap(),
        None
    );

    // Rotation: retire the active key, then the new one can be inserted.
    let mut tx = store.write().await.unwrap();
    let retired = keys::retire_active(&mut tx, "audit-checkpoint", "Ed25519", at(90_000))
        .await
        .unwrap();
    assert_eq!(retired, ["k2"]);
    keys::insert(&mut tx, &twin).await.unwrap();
    commit(tx, tenant, "key.rotate").await;
    let mut conn = read(&store).await;
    assert_eq!(
        keys::current(&mut conn, "audit-checkpoint").await.unwrap(),
        Some(twin.clone())
    );
    assert_eq!(
        keys::by_id(&mut conn, "k2")
            .await
            .unwrap()
            .unwrap()
            .retired_at,
        Some(at(90_000))
    );
    assert_eq!(
        keys::active(&mut conn, "audit-checkpoint", "Ed25519")
            .await
            .unwrap(),
        Some(twin)
    );
}

// ---------------------------------------------------------------------------
// Audit

async fn commit_writes_the_change_and_its_event_atomically(store: Store, _db: &TestDb) {
    let acme = tenant("acme");
    let token_id = TokenId::generate();
    let on_behalf = PrincipalId::generate();
    let ctx = ctx_as(
        acme.id,
        Actor::Token {
            token_id,
            principal_id: Some(on_behalf),
        },
        at(5),
    );
    let event = AuditEvent::new(&ctx, "tenant.create", Some(format!("tenant:{}", acme.id)))
        .with_details(json!({"name": "acme", "z": [1, 2, {"b": true, "a": null}], "a": "x"}));
    let mut tx = store.write().await.unwrap();
    tenants::insert(&mut tx, &acme).await.unwrap();
    let record = tx.commit(event.clone()).await.unwrap();

    assert_eq!(record.seq, 1);
    assert_eq!(record.prev_hash, GENESIS_HASH);
    assert_eq!(record.event, event);
    assert_eq!(record.event.actor, format!("token:{token_id}"));
    assert_eq!(
        record.event.on_behalf_of,
        Some(format!("principal:{on_behalf}"))
    );

    // Both are there, and the stored record is exactly the returned one.
    let mut conn = read(&store).await;
    assert_eq!(
        tenants::by_id(&mut conn, acme.id).await.unwrap(),
        Some(acme.clone())
    );
    drop(conn);
    let records = all_records(&store, acme.id).await;
    assert_eq!(records, vec![record.clone()]);
    verify(&records);

    // A failed action is recorded too, after the first.
    let failed = AuditEvent::new(
        &ctx_as(acme.id, Actor::Anonymous, at(6)),
        "auth.admin_token",
        None,
    )
    .failed();
    let tx = store.write().await.unwrap();
    let second = tx.commit(failed.clone()).await.unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(second.prev_hash, record.hash);
    let records = all_records(&store, acme.id).await;
    assert_eq!(records, vec![record, second]);
    assert_eq!(records[1].event.outcome, Outcome::Failure);
    assert_eq!(records[1].event.actor, "anonymous");
    verify(&records);
}

async fn a_dropped_write_leaves_neither_change_nor_event(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let first = all_records(&store, acme.id).await;
    assert_eq!(first.len(), 1);

    {
        let mut tx = store.write().await.unwrap();
        tenants::insert(&mut tx, &tenant("ghost")).await.unwrap();
        principals::insert(
            &mut tx,
            &principal(acme.id, PrincipalKind::User, "ghost"),
            "ghost",
        )
        .await
        .unwrap();
        tokens::insert(&mut tx, &token("ghost", "bootstrap", None), "hash-ghost")
            .await
            .unwrap();
        // Dropped here without commit.
    }

    let mut conn = read(&store).await;
    assert_eq!(tenants::by_name(&mut conn, "ghost").await.unwrap(), None);
    assert_eq!(
        principals::by_name(&mut conn, acme.id, PrincipalKind::User, "ghost")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tokens::by_hash(&mut conn, "hash-ghost").await.unwrap(),
        None
    );
    assert!(
        !tokens::any_with_scope(&mut conn, "bootstrap")
            .await
            .unwrap()
    );
    let heads = audit::heads(&mut conn).await.unwrap();
    assert_eq!(heads, vec![(acme.id, verify(&first))]);
    drop(conn);
    assert_eq!(all_records(&store, acme.id).await, first);

    // The next commit continues the chain without a gap.
    let tx = store.write().await.unwrap();
    let next = commit(tx, acme.id, "tenant.update").await;
    assert_eq!(next.seq, 2);
    assert_eq!(next.prev_hash, first[0].hash);
    verify(&all_records(&store, acme.id).await);
}

/// Writers that overlap (on SQLite they share one group-committed
/// transaction) each keep their own outcome: a duplicate fails alone, a
/// dropped writer leaves nothing, and everyone else's change and event are
/// there with one contiguous chain.
async fn concurrent_writers_commit_alone_whatever_their_neighbours_do(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    let writers = (0..96).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            // Every fifth name repeats an earlier writer's; every seventh
            // writer gives up before committing.
            let name = if i % 5 == 4 {
                format!("user-{}", i - 1)
            } else {
                format!("user-{i}")
            };
            let mut tx = store.write().await.unwrap();
            let p = principal(acme.id, PrincipalKind::User, &name);
            let inserted = principals::insert(&mut tx, &p, &name).await;
            if i % 7 == 6 {
                return (name, false);
            }
            match inserted {
                Ok(()) => {
                    commit(tx, acme.id, "user.create").await;
                    (name, true)
                }
                Err(StoreError::Duplicate(_)) => (name, false),
                Err(e) => panic!("writer {i}: {e}"),
            }
        })
    });
    let mut committed = Vec::new();
    for writer in writers.collect::<Vec<_>>() {
        let (name, ok) = writer.await.unwrap();
        if ok {
            committed.push(name);
        }
    }
    committed.sort();
    let mut conn = read(&store).await;
    let mut stored: Vec<String> = principals::list(
        &mut conn,
        acme.id,
        &PrincipalFilter {
            kind: Some(PrincipalKind::User),
            ..Default::default()
        },
        &page(None, 500),
    )
    .await
    .unwrap()
    .items
    .into_iter()
    .map(|p| p.name)
    .collect();
    stored.sort();
    drop(conn);
    assert_eq!(stored, committed);
    assert!(committed.len() > 50, "{}", committed.len());
    let records = all_records(&store, acme.id).await;
    assert_eq!(records.len(), committed.len() + 1);
    verify(&records);
}

async fn appended_events_commit_beside_concurrent_changes(store: Store, _db: &TestDb) {
    let acme = create_tenant(&store, "acme").await;
    // Changes and event-only appends at once: on SQLite the appends join
    // and commit the group transaction the changes are waiting in.
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    let name = format!("user-{i}");
                    let mut tx = store.write().await.unwrap();
                    principals::insert(
                        &mut tx,
                        &principal(acme.id, PrincipalKind::User, &name),
                        &name,
                    )
                    .await
                    .unwrap();
                    vec![commit(tx, acme.id, "user.create").await]
                } else {
                    let events = (0..=i % 3)
                        .map(|j| event(acme.id, "token.issue", Some(format!("token:{i}-{j}"))))
                        .collect();
                    store.append_events(events).await.unwrap()
                }
            })
        })
        .collect();
    let mut returned = Vec::new();
    for task in tasks {
        returned.extend(task.await.unwrap());
    }
    let records = all_records(&store, acme.id).await;
    verify(&records);
    // Every record a caller was given is the one stored under its seq.
    assert_eq!(records.len(), returned.len() + 1);
    for record in &returned {
        let stored = records.iter().find(|r| r.seq == record.seq).unwrap();
        assert_eq!(stored.hash, record.hash);
        assert_eq!(stored.event.id, record.event.id);
    }
    let users = principals::list(
        &mut read(&store).await,
        acme.id,
        &PrincipalFilter::default(),
        &page(None, 500),
    )
    .await
    .unwrap();
    assert_eq!(users.items.len(), 32);
}

async fn a_failed_append_leaves_nothing_of_its_events(store: Store, db: &TestDb) {
    let acme = TenantId::generate();
    let first = store
        .append_events(vec![event(acme, "tenant.create", None)])
        .await
        .unwrap();
    assert_eq!(first.first().map(|r| r.seq), Some(1));
    let mut raw = db.raw().await;
    // A row in the way of the second event of a small append (one run of
    // statements on SQLite), then of the 600th of a large one, whose first
    // multi-row INSERT succeeds and second fails.
    for (size, planted) in [(3, 3), (700, 600)] {
        sqlx::query(
            "INSERT INTO audit_events (tenant_id, seq, id, time, actor, action, outcome, \
             details, prev_hash, hash) \
             VALUES ($1, $2, $3, 0, 'root', 'planted', 'success', '{}', 'x', 'y')",
        )
        .bind(acme.to_string())
        .bind(planted)
        .bind(uuid::Uuid::now_v7().to_string())
        .execute(&mut raw)
        .await
        .unwrap();
        let events: Vec<_> = (0..size)
            .map(|i| event(acme, "token.issue", Some(format!("token:{i}"))))
            .collect();
        assert!(store.append_events(events).await.is_err());
        sqlx::query("DELETE FROM audit_events WHERE tenant_id = $1 AND action = 'planted'")
            .bind(acme.to_string())
            .execute(&mut raw)
            .await
            .unwrap();
    }
    // Nothing of the failed appends is left, and the chain goes on from
    // where it was.
    assert_chain_goes_on_at(&store, acme, 2).await;
}

async fn appends_go_on_from_a_chain_another_writer_moved(store: Store, db: &TestDb) {
    let acme = TenantId::generate();
    for _ in 0..2 {
        append_one(&store, acme).await;
    }
    // Another process on the same database moves the head behind this
    // store's back: what this store last committed is no longer the head.
    let other = Store::open(&db.url, &db.options).await.unwrap();
    let moved = other
        .append_events((0..3).map(|_| event(acme, "token.issue", None)).collect())
        .await
        .unwrap();
    assert_eq!(moved.last().map(|r| r.seq), Some(5));
    other.close().await;
    let next = store
        .append_events((0..2).map(|_| event(acme, "token.issue", None)).collect())
        .await
        .unwrap();
    assert_eq!(next.iter().map(|r| r.seq).collect::<Vec<_>>(), [6, 7]);

    // The newest record cut off and the head moved back over it, as the
    // offline tamper test does: the next append goes on from the head as
    // it is, so the chain still links (only a checkpoint shows the cut).
    let mut raw = db.raw().await;
    sqlx::query("DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 7")
        .bind(acme.to_string())
        .execute(&mut raw)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_heads SET seq = 6, \
         hash = (SELECT hash FROM audit_events WHERE tenant_id = $1 AND seq = 6) \
         WHERE tenant_id = $1",
    )
    .bind(acme.to_string())
    .execute(&mut raw)
    .await
    .unwrap();
    assert_chain_goes_on_at(&store, acme, 7).await;
}

/// Appends one event to `tenant`'s chain and checks that it took sequence
/// number `seq` and that the whole chain, `seq` records, verifies.
async fn assert_chain_goes_on_at(store: &Store, tenant: TenantId, seq: i64) {
    assert_eq!(append_one(store, tenant).await.seq, seq);
    let records = all_records(store, tenant).await;
    assert_eq!(i64::try_from(records.len()).unwrap(), seq);
    verify(&records);
}

/// Appends one event-only record to `tenant`'s chain.
async fn append_one(store: &Store, tenant: TenantId) -> AuditRecord {
    let mut records = store
        .append_events(vec![event(tenant, "token.issue", None)])
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    records.pop().unwrap()
}

async fn commit_all_keeps_each_tenants_chain_contiguous(store: Store, _db: &TestDb) {
    let a = TenantId::generate();
    let b = TenantId::generate();
    // One event for `a` first, so its batch does not start at genesis.
    let tx = store.write().await.unwrap();
    let opening = commit(tx, a, "tenant.create").await;
    assert_eq!(opening.seq, 1);

    // 451 events for `a` and 250 for `b`, interleaved: more than one
    // multi-row INSERT per tenant.
    let events: Vec<AuditEvent> = (0..701)
        .map(|i| {
            let tenant = if i % 3 == 2 || i >= 650 { b } else { a };
            event(tenant, "user.create", Some(format!("user:{i}"))).with_details(json!({"i": i}))
        })
        .collect();
    let for_a: Vec<_> = events
        .iter()
        .filter(|e| e.tenant_id == a)
        .map(|e| e.id)
        .collect();
    let for_b: Vec<_> = events
        .iter()
        .filter(|e| e.tenant_id == b)
        .map(|e| e.id)
        .collect();
    assert!(for_a.len() > 400 && for_b.len() > 200);
    let given: Vec<_> = events.iter().map(|e| e.id).collect();
    let tx = store.write().await.unwrap();
    let records = tx.commit_all(events).await.unwrap();
    // In the order given, across tenants: the audit writer hands each
    // record to the caller whose event it is by position.
    assert_eq!(
        records.iter().map(|r| r.event.id).collect::<Vec<_>>(),
        given
    );

    // Per tenant: contiguous seqs in the order given.
    for (tenant, ids, first_seq) in [(a, &for_a, 2_i64), (b, &for_b, 1_i64)] {
        let returned: Vec<&AuditRecord> = records
            .iter()
            .filter(|r| r.event.tenant_id == tenant)
            .collect();
        assert_eq!(
            returned.iter().map(|r| r.event.id).collect::<Vec<_>>(),
            *ids
        );
        let seqs: Vec<i64> = returned.iter().map(|r| r.seq).collect();
        let expected: Vec<i64> =
            (first_seq..first_seq + i64::try_from(ids.len()).unwrap()).collect();
        assert_eq!(seqs, expected);

        let stored = all_records(&store, tenant).await;
        assert_eq!(
            stored.len(),
            ids.len() + usize::try_from(first_seq - 1).unwrap()
        );
        let head = verify(&stored);
        assert_eq!(head.seq, *expected.last().unwrap());
        assert_eq!(
            stored[usize::try_from(first_seq - 1).unwrap()..]
                .iter()
                .collect::<Vec<_>>(),
            returned
        );
    }
    let heads = audit::heads(&mut read(&store).await).await.unwrap();
    assert_eq!(heads.len(), 2);
    for (tenant, head) in heads {
        let stored = all_records(&store, tenant).await;
        assert_eq!(head, verify(&stored));
    }
}

async fn tampering_with_a_stored_record_fails_verification(store: Store, db: &TestDb) {
    let acme = TenantId::generate();
    let events: Vec<AuditEvent> = (0..5)
        .map(|i| event(acme, "user.create", Some(format!("user:{i}"))))
        .collect();
    store
        .write()
        .await
        .unwrap()
        .commit_all(events)
        .await
        .unwrap();
    verify(&all_records(&store, acme).await);

    let mut raw = db.raw().await;
    sqlx::query("UPDATE audit_events SET actor = $1 WHERE tenant_id = $2 AND seq = 3")
        .bind("mallory")
        .bind(acme.to_string())
        .execute(&mut raw)
        .await
        .unwrap();
    let records = all_records(&store, acme).await;
    let mut verifier = ChainVerifier::default();
    let result = records.iter().try_for_each(|r| verifier.check(r));
    assert_eq!(result, Err(ChainError::Altered { seq: 3 }));

    sqlx::query("DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 3")
        .bind(acme.to_string())
        .execute(&mut raw)
        .await
        .unwrap();
    let records = all_records(&store, acme).await;
    let mut verifier = ChainVerifier::default();
    let result = records.iter().try_for_each(|r| verifier.check(r));
    assert_eq!(
        result,
        Err(ChainError::SequenceGap {
            seq: 4,
            expected: 3
        })
    );
}

async fn audit_query_filters(store: Store, _db: &TestDb) {
    let acme = TenantId::generate();
    let other = TenantId::generate();
    let token_id = TokenId::generate();
    let actors = [
        Actor::Root,
        Actor::System,
        Actor::Token {
            token_id,
            principal_id: None,
        },
    ];
    // 24 events, one minute apart, with varied actors, actions and targets.
    let events: Vec<AuditEvent> = (0..24_i64)
        .map(|i| {
            let actor = actors[usize::try_from(i % 3).unwrap()].clone();
            let ctx = ctx_as(acme, actor, at(i * 60));
            // Decision-log events among them: the target index leaves
            // those out, and every search must still find them.
            let action = ["user.create", "user.update", DECISION_ACTION]
                [usize::try_from((i / 2) % 3).unwrap()];
            let target = (i % 5 != 4).then(|| format!("user:{}", i % 4));
            AuditEvent::new(&ctx, action, target)
        })
        .collect();
    let records = store
        .write()
        .await
        .unwrap()
        .commit_all(events)
        .await
        .unwrap();
    // Look-alikes in another tenant.
    let lookalikes = (0..5)
        .map(|_| event(other, "user.create", Some("user:1".into())))
        .collect();
    store
        .write()
        .await
        .unwrap()
        .commit_all(lookalikes)
        .await
        .unwrap();

    let token_label = format!("token:{token_id}");
    let mut conn = read(&store).await;
    let cases: Vec<(&str, AuditFilter, Wanted<'_, AuditRecord>)> = vec![
        (
            "everything",
            AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|_| true),
        ),
        (
            "actor system",
            AuditFilter {
                actor: Some("system".into()),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.actor == "system"),
        ),
        (
            "actor token",
            AuditFilter {
                actor: Some(token_label.clone()),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.actor == token_label),
        ),
        (
            "action",
            AuditFilter {
                action: Some("user.update".into()),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.action == "user.update"),
        ),
        (
            "target",
            AuditFilter {
                target: Some("user:1".into()),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.target.as_deref() == Some("user:1")),
        ),
        (
            "target among decisions",
            AuditFilter {
                target: Some("user:1".into()),
                action: Some(DECISION_ACTION.into()),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| {
                r.event.target.as_deref() == Some("user:1") && r.event.action == DECISION_ACTION
            }),
        ),
        (
            "target and another action",
            AuditFilter {
                target: Some("user:3".into()),
                action: Some("user.update".into()),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| {
                r.event.target.as_deref() == Some("user:3") && r.event.action == "user.update"
            }),
        ),
        (
            "since (inclusive)",
            AuditFilter {
                since: Some(at(600)),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.time >= at(600)),
        ),
        (
            "until (exclusive)",
            AuditFilter {
                until: Some(at(600)),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.time < at(600)),
        ),
        (
            "window",
            AuditFilter {
                since: Some(at(300)),
                until: Some(at(900)),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.time >= at(300) && r.event.time < at(900)),
        ),
        (
            "after seq",
            AuditFilter {
                after_seq: Some(17),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| r.seq > 17),
        ),
        (
            "actor and action",
            AuditFilter {
                actor: Some("root".into()),
                action: Some("user.create".into()),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.actor == "root" && r.event.action == "user.create"),
        ),
        (
            "everything at once",
            AuditFilter {
                actor: Some("root".into()),
                action: Some("user.create".into()),
                target: Some("user:2".into()),
                since: Some(at(60)),
                until: Some(at(23 * 60)),
                after_seq: Some(2),
                limit: 100,
            },
            Box::new(|r| {
                r.event.actor == "root"
                    && r.event.action == "user.create"
                    && r.event.target.as_deref() == Some("user:2")
                    && r.event.time >= at(60)
                    && r.event.time < at(23 * 60)
                    && r.seq > 2
            }),
        ),
        (
            "a target that is SQL, not a target",
            AuditFilter {
                target: Some("user:1' OR action <> 'x".into()),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|_| false),
        ),
        (
            "no match",
            AuditFilter {
                actor: Some("nobody".into()),
                limit: 100,
                ..AuditFilter::default()
            },
            Box::new(|_| false),
        ),
    ];
    for (what, filter, wanted) in cases {
        let expected: Vec<AuditRecord> = records.iter().filter(|r| wanted(r)).cloned().collect();
        let got = audit::query(&mut conn, acme, &filter).await.unwrap();
        assert_eq!(got, expected, "filter: {what}");
        let expect_none = ["no match", "a target that is SQL, not a target"];
        if !expect_none.contains(&what) {
            assert!(
                !got.is_empty(),
                "filter {what} matched nothing: the case proves little"
            );
        }
    }

    // A limit, and the seq cursor to go on from there: by action, and by
    // target across decisions and other events.
    let pages: [(AuditFilter, Wanted<'_, AuditRecord>); 2] = [
        (
            AuditFilter {
                action: Some("user.create".into()),
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.action == "user.create"),
        ),
        (
            AuditFilter {
                target: Some("user:1".into()),
                ..AuditFilter::default()
            },
            Box::new(|r| r.event.target.as_deref() == Some("user:1")),
        ),
    ];
    for (filter, wanted) in pages {
        let mut seen = Vec::new();
        let mut after_seq = None;
        loop {
            let page = AuditFilter {
                after_seq,
                limit: 2,
                ..filter.clone()
            };
            let page = audit::query(&mut conn, acme, &page).await.unwrap();
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            after_seq = Some(last.seq);
            seen.extend(page);
        }
        let expected: Vec<AuditRecord> = records.iter().filter(|r| wanted(r)).cloned().collect();
        assert!(expected.len() > 2, "{filter:?}");
        assert_eq!(seen, expected, "{filter:?}");
    }

    // The other tenant's chain is separate.
    let theirs = audit::query(
        &mut conn,
        other,
        &AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        theirs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    verify(&theirs);
    verify(
        &audit::query(
            &mut conn,
            acme,
            &AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap(),
    );
}

async fn audit_heads_track_each_chain(store: Store, _db: &TestDb) {
    assert!(
        audit::heads(&mut read(&store).await)
            .await
            .unwrap()
            .is_empty()
    );
    let a = TenantId::generate();
    let b = TenantId::generate();
    let c = TenantId::generate();
    for (tenant, n) in [(a, 3), (b, 1), (a, 2), (c, 4)] {
        for _ in 0..n {
            let tx = store.write().await.unwrap();
            commit(tx, tenant, "user.create").await;
        }
    }
    let mut expected = Vec::new();
    for tenant in [a, b, c] {
        let records = all_records(&store, tenant).await;
        expected.push((tenant, verify(&records)));
    }
    expected.sort_by_key(|(tenant, _)| tenant.to_string());
    let heads = audit::heads(&mut read(&store).await).await.unwrap();
    assert_eq!(heads, expected);
    assert_eq!(heads.iter().map(|(_, h)| h.seq).sum::<i64>(), 10);
    let of_a = heads.iter().find(|(t, _)| *t == a).unwrap();
    assert_eq!(of_a.1.seq, 5);
}

async fn checkpoints_insert_once_and_latest(store: Store, _db: &TestDb) {
    let acme = TenantId::generate();
    let other = TenantId::generate();
    let checkpoint = |tenant, seq: i64, signature: &str| Checkpoint {
        tenant_id: tenant,
        seq,
        hash: format!("{seq:064x}"),
        signed_at: at(seq),
        key_id: "k1".into(),
        signature: signature.into(),
    };
    assert_eq!(
        audit::latest_checkpoint(&mut read(&store).await, acme)
            .await
            .unwrap(),
        None
    );

    let save = async |c: &Checkpoint| audit::insert_checkpoint(&store, c).await.unwrap();
    let two = checkpoint(acme, 2, "sig-2");
    save(&two).await;
    assert_eq!(
        audit::latest_checkpoint(&mut read(&store).await, acme)
            .await
            .unwrap()
            .as_ref(),
        Some(&two)
    );
    let five = checkpoint(acme, 5, "sig-5");
    save(&five).await;
    // The same seq again is a no-op, whatever it carries.
    save(&checkpoint(acme, 5, "sig-5-forged")).await;
    // An older one does not become the latest.
    save(&checkpoint(acme, 3, "sig-3")).await;
    save(&checkpoint(other, 1, "sig-other")).await;

    let mut conn = read(&store).await;
    assert_eq!(
        audit::latest_checkpoint(&mut conn, acme).await.unwrap(),
        Some(five)
    );
    assert_eq!(
        audit::latest_checkpoint(&mut conn, other).await.unwrap(),
        Some(checkpoint(other, 1, "sig-other"))
    );
    assert_eq!(
        audit::latest_checkpoint(&mut conn, TenantId::generate())
            .await
            .unwrap(),
        None
    );
    // Checkpoints describe the chain; storing one does not extend it.
    assert!(audit::heads(&mut conn).await.unwrap().is_empty());
}

async fn concurrent_commits_form_a_gap_free_chain(store: Store, _db: &TestDb) {
    const TASKS: usize = 8;
    const PER_TASK: usize = 25;
    // The tenant's chain does not exist yet: the first commits race to
    // create its head, too.
    let tenant = TenantId::generate();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut seqs = Vec::new();
            for i in 0..PER_TASK {
                let mut tx = store.write().await.unwrap();
                let t = token(&format!("t{task}-{i}"), "admin", Some(tenant));
                tokens::insert(&mut tx, &t, &format!("hash-{task}-{i}"))
                    .await
                    .unwrap();
                let record = tx
                    .commit(event(
                        tenant,
                        "token.create",
                        Some(format!("token:{}", t.id)),
                    ))
                    .await
                    .unwrap();
                seqs.push(record.seq);
                tokio::task::yield_now().await;
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        let mine = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("commits hung")
            .unwrap();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "a task's own commits went backwards"
        );
        seqs.extend(mine);
    }
    let total = i64::try_from(TASKS * PER_TASK).unwrap();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());

    let records = all_records(&store, tenant).await;
    assert_eq!(records.len(), TASKS * PER_TASK);
    let head = verify(&records);
    assert_eq!(head.seq, total);
    assert_eq!(
        audit::heads(&mut read(&store).await).await.unwrap(),
        vec![(tenant, head)]
    );
    // Every change landed with its event.
    let all_tokens = tokens::list(&mut read(&store).await, &page(None, 1000))
        .await
        .unwrap();
    assert_eq!(all_tokens.items.len(), TASKS * PER_TASK);
    let targets: BTreeSet<_> = records
        .iter()
        .filter_map(|r| r.event.target.clone())
        .collect();
    let token_targets: BTreeSet<_> = all_tokens
        .items
        .iter()
        .map(|t| format!("token:{}", t.id))
        .collect();
    assert_eq!(targets, token_targets);
}

async fn concurrent_multi_tenant_commits_do_not_deadlock(store: Store, _db: &TestDb) {
    const TASKS: usize = 8;
    const PER_TASK: usize = 10;
    let a = TenantId::generate();
    let b = TenantId::generate();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for i in 0..PER_TASK {
                // Half the tasks name the tenants in the opposite order.
                let (first, second) = if task % 2 == 0 { (a, b) } else { (b, a) };
                let events = vec![
                    event(first, "user.create", Some(format!("user:{task}-{i}"))),
                    event(second, "user.create", Some(format!("user:{task}-{i}"))),
                    event(first, "user.update", Some(format!("user:{task}-{i}"))),
                ];
                let records = store
                    .write()
                    .await
                    .unwrap()
                    .commit_all(events)
                    .await
                    .unwrap();
                assert_eq!(records.len(), 3);
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("commits hung")
            .unwrap();
    }
    let per_task = i64::try_from(PER_TASK * TASKS).unwrap();
    for tenant in [a, b] {
        let records = all_records(&store, tenant).await;
        let head = verify(&records);
        // Each commit gave every tenant one or two events: 2 for the tenant
        // named first, 1 for the other; half the tasks each way.
        assert_eq!(head.seq, per_task / 2 * 2 + per_task / 2);
        // The two events a commit gave one tenant are adjacent.
        for pair in records.iter().filter(|r| r.event.action == "user.update") {
            let before = &records[usize::try_from(pair.seq - 2).unwrap()];
            assert_eq!(before.event.target, pair.event.target);
            assert_eq!(before.event.action, "user.create");
        }
    }
}
