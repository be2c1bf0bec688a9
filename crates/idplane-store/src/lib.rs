//! idplane storage: the only crate that speaks SQL.
//!
//! One [`Store`] over SQLite (embedded, the default) or PostgreSQL
//! (scale-out). Both run the same portable SQL (ids and JSON as TEXT, times
//! as BIGINT milliseconds, `$n` placeholders) through sqlx's `Any` driver;
//! each backend has its own migration folder. Where the dialects differ
//! (row locks), the code branches on [`Backend`].
//!
//! Reads take any [`Conn`]: a [`ReadConn`] or a [`WriteTx`]. Writes take a
//! [`WriteTx`], and a `WriteTx` can only be committed together with the audit
//! events that describe it ([`WriteTx::commit`]): a change without its audit
//! record cannot be written.

pub mod audit;
pub mod ceremonies;
pub mod clients;
pub mod consents;
pub mod credentials;
pub mod device_codes;
pub mod generations;
pub mod grants;
pub mod jobs;
pub mod keys;
pub mod leavers;
pub mod lifecycle;
pub mod mail;
pub mod passkeys;
pub mod policies;
pub mod principal_query;
pub mod principals;
pub mod provisioning;
pub mod resources;
pub mod roles;
pub mod seen_jtis;
pub mod sessions;
pub mod settings;
pub mod tenants;
pub mod tokens;

mod codec;
pub mod dedicated;
mod group;

pub use codec::{Page, Paged};

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use idplane_core::TenantId;
use idplane_core::audit::{AuditEvent, AuditRecord, ChainHead};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};

/// Which database is behind the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Duplicate(&'static str),
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error(
        "the database was migrated by a newer idplane (schema version {0}); refusing to start an older binary on it"
    )]
    SchemaTooNew(i64),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query the store cannot express (a programming error of the caller).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("the lease on job {0} is no longer held")]
    LeaseLost(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The writer's thread could not be started.
    #[error("could not start the writer thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The group transaction this change was part of did not commit.
    #[error("the write could not be committed: {0}")]
    GroupCommit(String),
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Duplicate`].
    pub(crate) fn unique(err: sqlx::Error, what: &'static str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate(what),
            _ => StoreError::Database(err),
        }
    }
}

/// Result alias for store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How to open a store.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// PostgreSQL only: keep every table in this schema (tests give each
    /// test its own). Must be a plain identifier.
    pub schema: Option<String>,
    /// Connections for PostgreSQL, and readers for SQLite.
    pub max_connections: Option<u32>,
    /// Offline tools read a database as it is, without migrating it.
    pub skip_migrations: bool,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The store: a pool for writes and a pool for reads (the same one on
/// PostgreSQL; on SQLite a single writer connection, so writers queue in
/// the process instead of failing with `SQLITE_BUSY`, and their changes are
/// group-committed, see [`group`]).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    writer: AnyPool,
    reader: AnyPool,
    group: Option<group::Group>,
}

impl Store {
    /// Opens the database at `url`, creating it if needed, and applies
    /// pending migrations. Refuses a database migrated by a newer binary.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let connect = AnyConnectOptions::from_str(url)?;
        let store = match backend {
            Backend::Sqlite => {
                let writer = sqlite_pool(1, WRITER_CACHE)
                    .connect_with(connect.clone())
                    .await?;
                let reader = sqlite_pool(options.max_connections.unwrap_or(4), READER_CACHE)
                    .connect_with(connect)
                    .await?;
                Store {
                    backend,
                    group: Some(group::Group::start(writer.clone())?),
                    writer,
                    reader,
                }
            }
            Backend::Postgres => {
                let schema = options.schema.clone().map(Arc::<str>::from);
                if let Some(schema) = &schema
                    && !schema
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(StoreError::UnsupportedUrl(format!("schema `{schema}`")));
                }
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.unwrap_or(16))
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(move |conn, _| {
                        let schema = schema.clone();
                        Box::pin(async move {
                            if let Some(schema) = schema {
                                conn.execute(sqlx::AssertSqlSafe(format!(
                                    "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET search_path TO \"{schema}\""
                                )))
                                .await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(connect)
                    .await?;
                Store {
                    backend,
                    writer: pool.clone(),
                    reader: pool,
                    group: None,
                }
            }
        };
        if !options.skip_migrations {
            store.migrate().await?;
        }
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        match migrator.run(&self.writer).await {
            Err(sqlx::migrate::MigrateError::VersionMissing(version)) => {
                Err(StoreError::SchemaTooNew(version))
            }
            other => Ok(other?),
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for reads.
    pub async fn read(&self) -> Result<ReadConn> {
        Ok(ReadConn {
            conn: self.reader.acquire().await?,
            backend: self.backend,
        })
    }

    /// A write transaction. Commit it with [`WriteTx::commit`].
    pub async fn write(&self) -> Result<WriteTx> {
        let inner = match &self.group {
            Some(group) => Inner::Grouped(group.unit().await?),
            None => Inner::Own(self.writer.begin().await?),
        };
        Ok(WriteTx {
            inner,
            backend: self.backend,
        })
    }

    /// Appends events that describe no change of state (a token issued, a
    /// failed sign-in) and returns once they are durable. On SQLite they
    /// join the open group transaction and commit it at once.
    pub async fn append_events(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>> {
        match &self.group {
            Some(group) => group.append_and_commit(events).await,
            None => self.write().await?.commit_all(events).await,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.reader.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        if let Some(group) = &self.group {
            group.flush().await;
        }
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// SQLite's page cache for the one writing connection (negative: in KiB):
/// every write inserts into the audit log's five B-trees, and with SQLite's
/// default of 2 MiB their pages were read back from the operating system
/// for each batch. Pages are allocated as they are used, not at start.
const WRITER_CACHE: &str = "PRAGMA cache_size = -32768";
/// SQLite's default page cache for each reading connection.
const READER_CACHE: &str = "PRAGMA cache_size = -2000";

fn sqlite_pool(max: u32, cache: &'static str) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; FULL makes every
                // commit durable; foreign keys are off in SQLite by default.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                )
                .await?;
                conn.execute(cache).await?;
                Ok(())
            })
        })
}

/// Removes a password from a database URL, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Anything that reads: a [`ReadConn`] or a [`WriteTx`].
pub trait Conn: Send {
    #[doc(hidden)]
    fn conn(&mut self) -> &mut AnyConnection;
    /// The backend, for the rare query whose dialect differs.
    fn backend(&self) -> Backend;
}

/// A pooled connection for reads.
#[derive(Debug)]
pub struct ReadConn {
    conn: PoolConnection<Any>,
    backend: Backend,
}

impl Conn for ReadConn {
    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
    fn backend(&self) -> Backend {
        self.backend
    }
}

/// A write transaction. Dropped without commit, it rolls back.
pub struct WriteTx {
    inner: Inner,
    backend: Backend,
}

enum Inner {
    /// A transaction of its own (PostgreSQL).
    Own(Transaction<'static, Any>),
    /// A savepoint in the group transaction (SQLite).
    Grouped(group::Unit),
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Conn for WriteTx {
    fn conn(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Inner::Own(tx) => tx,
            Inner::Grouped(unit) => unit.state().conn(),
        }
    }
    fn backend(&self) -> Backend {
        self.backend
    }
}

impl WriteTx {
    /// Appends the event that describes this change to its tenant's audit
    /// chain and commits both, or neither.
    pub async fn commit(self, event: AuditEvent) -> Result<AuditRecord> {
        let mut records = self.commit_all(vec![event]).await?;
        records
            .pop()
            .ok_or_else(|| StoreError::Corrupt("audit append returned no record".into()))
    }

    /// Appends several events (possibly of several tenants) and commits.
    pub async fn commit_all(mut self, events: Vec<AuditEvent>) -> Result<Vec<AuditRecord>> {
        let (records, heads) = audit::append(&mut self, events).await?;
        match self.inner {
            Inner::Own(mut tx) => {
                for (tenant, head) in &heads {
                    audit::write_head(&mut tx, *tenant, head).await?;
                }
                tx.commit().await?;
            }
            Inner::Grouped(unit) => unit.commit(heads).await?,
        }
        Ok(records)
    }
}

impl audit::Chain for WriteTx {
    /// The chain head of `tenant` as this group transaction has moved it,
    /// if it has.
    fn moved_head(&mut self, tenant: TenantId) -> Option<ChainHead> {
        match &mut self.inner {
            Inner::Own(_) => None,
            Inner::Grouped(unit) => unit.state().heads.get(&tenant).cloned(),
        }
    }
}
