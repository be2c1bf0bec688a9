//! Harness for the store conformance suite: one database per test, on
//! SQLite (a temporary file) or PostgreSQL (a schema of its own), plus
//! builders for domain values and small helpers shared by the tests.

use std::sync::Arc;

use idplane_core::audit::{AuditEvent, AuditRecord, ChainHead, ChainVerifier};
use idplane_core::directory::{Principal, PrincipalKind, Status, Tenant, name_key};
use idplane_core::{Actor, Ctx, RequestMeta, TenantId, Timestamp};
use idplane_store::audit::{self, AuditFilter};
use idplane_store::{
    Backend, ReadConn, Store, StoreError, StoreOptions, WriteTx, principals, tenants,
};
use sqlx::{AnyConnection, Connection, Executor};

/// For each `body => sqlite_name, postgres_name;` generates a test on SQLite
/// (always) and one on PostgreSQL (when `IDPLANE_TEST_DATABASE_URL` is set).
/// Each body is `async fn body(store: Store, db: &TestDb)`.
macro_rules! conformance {
    ($($body:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $sqlite() {
            support::run(TestDb::sqlite(), |store, db| async move { $body(store, &db).await }).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $postgres() {
            let Some(db) = TestDb::postgres() else {
                eprintln!("skipped: {} is not set (PostgreSQL conformance)", support::PG_URL_VAR);
                return;
            };
            support::run(db, |store, db| async move { $body(store, &db).await }).await;
        }
    )*};
}

/// The environment variable naming the PostgreSQL server to test against.
pub const PG_URL_VAR: &str = "IDPLANE_TEST_DATABASE_URL";

/// One test's database: where it is, and how to open it again.
pub struct TestDb {
    pub url: String,
    pub options: StoreOptions,
    pub backend: Backend,
    /// Keeps the SQLite file's directory alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh SQLite database in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        Self {
            url,
            options: StoreOptions::default(),
            backend: Backend::Sqlite,
            _dir: Some(dir),
        }
    }

    /// A fresh schema on the PostgreSQL server named by [`PG_URL_VAR`], or
    /// `None` when the variable is not set.
    pub fn postgres() -> Option<Self> {
        let url = std::env::var(PG_URL_VAR)
            .ok()
            .filter(|url| !url.trim().is_empty())?;
        Some(Self {
            url,
            options: StoreOptions {
                schema: Some(format!("t_{}", uuid::Uuid::now_v7().simple())),
                // Tests run in parallel against one server: stay well below
                // its connection limit.
                max_connections: Some(10),
                ..StoreOptions::default()
            },
            backend: Backend::Postgres,
            _dir: None,
        })
    }

    /// Opens (and migrates) the store.
    pub async fn open(&self) -> Result<Store, StoreError> {
        Store::open(&self.url, &self.options).await
    }

    /// A connection outside the store, on the test's schema, for poking at
    /// the database behind the store's back.
    pub async fn raw(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(&self.url)
            .await
            .expect("raw connection");
        if let Some(schema) = &self.options.schema {
            conn.execute(sqlx::AssertSqlSafe(format!(
                "SET search_path TO \"{schema}\""
            )))
            .await
            .expect("set search_path");
        }
        conn
    }

    /// Removes what the test left behind on a shared server.
    pub async fn cleanup(&self) {
        if let Some(schema) = &self.options.schema {
            sqlx::any::install_default_drivers();
            let mut conn = AnyConnection::connect(&self.url)
                .await
                .expect("raw connection");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .await
            .expect("drop schema");
            conn.close().await.expect("close raw connection");
        }
    }
}

/// Opens the test's store, runs `body` on it, then closes the store and
/// cleans up, also when `body` panics (the panic is passed on afterwards).
pub async fn run<F, Fut>(db: TestDb, body: F)
where
    F: FnOnce(Store, Arc<TestDb>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = Arc::new(db);
    let store = db.open().await.expect("open store");
    assert_eq!(store.backend(), db.backend);
    let outcome = tokio::spawn(body(store.clone(), db.clone())).await;
    store.close().await;
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A fixed "now" for the suite: 2026-01-01T00:00:00Z.
pub fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("timestamp")
}

/// `t0` plus `secs` seconds.
pub fn at(secs: i64) -> Timestamp {
    t0().checked_add(jiff::SignedDuration::from_secs(secs))
        .expect("timestamp in range")
}

/// A context in `tenant`, acting as root at `t0`.
pub fn ctx(tenant: TenantId) -> Ctx {
    ctx_as(tenant, Actor::Root, t0())
}

/// A context in `tenant`, acting as `actor` at `now`.
pub fn ctx_as(tenant: TenantId, actor: Actor, now: Timestamp) -> Ctx {
    Ctx {
        tenant,
        actor,
        now,
        request: RequestMeta {
            request_id: Some("req-1".into()),
            source_ip: Some("192.0.2.7".into()),
            user_agent: Some("conformance".into()),
        },
    }
}

/// A root event in `tenant`.
pub fn event(tenant: TenantId, action: &str, target: Option<String>) -> AuditEvent {
    AuditEvent::new(&ctx(tenant), action, target)
}

/// Commits `tx` with one root event in `tenant`.
pub async fn commit(tx: WriteTx, tenant: TenantId, action: &str) -> AuditRecord {
    tx.commit(event(tenant, action, None))
        .await
        .expect("commit")
}

/// A tenant value (not stored).
pub fn tenant(name: &str) -> Tenant {
    Tenant {
        id: TenantId::generate(),
        name: name.into(),
        display_name: Some(format!("{name} Inc.")),
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

/// Stores a new tenant called `name`.
pub async fn create_tenant(store: &Store, name: &str) -> Tenant {
    let t = tenant(name);
    let mut tx = store.write().await.expect("write");
    tenants::insert(&mut tx, &t).await.expect("insert tenant");
    commit(tx, t.id, "tenant.create").await;
    t
}

/// A principal value (not stored), active, with nothing optional set.
pub fn principal(tenant: TenantId, kind: PrincipalKind, name: &str) -> Principal {
    Principal {
        id: idplane_core::PrincipalId::generate(),
        tenant_id: tenant,
        kind,
        name: name.into(),
        display_name: None,
        email: None,
        external_id: None,
        status: Status::Active,
        user_type: None,
        start_date: None,
        end_date: None,
        sponsor_id: None,
        owner_id: None,
        purpose: None,
        expires_at: None,
        attributes: serde_json::Map::new(),
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

/// Stores `p` under the key of its name.
pub async fn create_principal(store: &Store, p: &Principal) {
    let mut tx = store.write().await.expect("write");
    principals::insert(&mut tx, p, &name_key(&p.name))
        .await
        .expect("insert principal");
    commit(tx, p.tenant_id, "principal.create").await;
}

/// Stores each of `ps`, in one transaction.
pub async fn create_principals(store: &Store, ps: &[Principal]) {
    let mut tx = store.write().await.expect("write");
    for p in ps {
        principals::insert(&mut tx, p, &name_key(&p.name))
            .await
            .expect("insert principal");
    }
    let tenant = ps.first().map_or_else(TenantId::generate, |p| p.tenant_id);
    commit(tx, tenant, "principal.create").await;
}

/// A read connection.
pub async fn read(store: &Store) -> ReadConn {
    store.read().await.expect("read connection")
}

/// Every audit record of `tenant`, read page by page with the seq cursor.
pub async fn all_records(store: &Store, tenant: TenantId) -> Vec<AuditRecord> {
    let mut conn = read(store).await;
    let mut out: Vec<AuditRecord> = Vec::new();
    loop {
        let filter = AuditFilter {
            after_seq: out.last().map(|r| r.seq),
            limit: 97,
            ..AuditFilter::default()
        };
        let page = audit::query(&mut conn, tenant, &filter)
            .await
            .expect("audit query");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Verifies `records` as a whole chain from genesis; returns its head.
pub fn verify(records: &[AuditRecord]) -> ChainHead {
    let mut verifier = ChainVerifier::default();
    for record in records {
        if let Err(e) = verifier.check(record) {
            panic!("audit chain does not verify: {e}");
        }
    }
    verifier.head().clone()
}
