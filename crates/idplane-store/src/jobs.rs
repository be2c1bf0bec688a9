//! Durable jobs: time-driven work (end dates, reminders, start dates) as
//! rows with a lease, so any node may run them and a crashed runner's job
//! is taken over once its lease expires.
//!
//! - [`schedule`] and [`cancel`] are part of the change that causes them
//!   (a contractor created or extended), inside its [`WriteTx`].
//! - [`claim`] leases due jobs to a runner. It is scaffolding, written
//!   through `&Store` without an audit event: on PostgreSQL with
//!   `FOR UPDATE SKIP LOCKED`, so two servers sharing one database never
//!   take the same job; on SQLite through its single writer.
//! - [`complete`] marks a job done inside the transaction of its effect, so
//!   the effect, its audit event and the completion commit together or not
//!   at all; it is refused once the lease was lost (expired and taken over,
//!   or the job rescheduled meanwhile).
//! - [`fail`] records an error and when to retry; after [`MAX_ATTEMPTS`]
//!   the job is dead (kept for an administrator to see). [`bury`] makes it
//!   dead at once, for errors no retry can fix.
//!
//! Keys name what a job is about: `SUBJECT` or `SUBJECT:DISCRIMINATOR`
//! (e.g. a user id, or `USER:14d` for one of several reminders), so that
//! [`cancel_subject`] finds every job of a subject.

use std::time::Duration;

use idplane_core::{TenantId, Timestamp};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{Sql, id, json, millis, opt_time, time, to_json};
use crate::{Backend, Conn, Page, Paged, Result, Store, StoreError, WriteTx};

/// Failures after which a job is dead rather than retried.
pub const MAX_ATTEMPTS: i64 = 10;
/// Longest error text kept on a job.
const MAX_ERROR_LEN: usize = 1000;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for `run_at`, or leased to a runner.
    Pending,
    /// Completed together with its effect.
    Done,
    /// Failed [`MAX_ATTEMPTS`] times; not retried.
    Dead,
}

impl JobState {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "done" => Self::Done,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

/// A job to schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub tenant_id: TenantId,
    pub kind: String,
    /// Deduplicates within (tenant, kind): see the module comment.
    pub key: String,
    pub payload: Value,
    pub run_at: Timestamp,
    /// When it is scheduled (the row's creation or update time).
    pub now: Timestamp,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// A UUID v7.
    pub id: String,
    pub tenant_id: TenantId,
    pub kind: String,
    pub key: String,
    pub payload: Value,
    pub run_at: Timestamp,
    /// Failures so far.
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    pub state: JobState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

macro_rules! columns {
    () => {
        "id, tenant_id, kind, key, payload, run_at, attempts, lease_owner, lease_until, \
         last_error, state, created_at, updated_at"
    };
}

fn from_row(row: &AnyRow) -> Result<Job> {
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: row.try_get("id")?,
        tenant_id: id(row, "tenant_id")?,
        kind: row.try_get("kind")?,
        key: row.try_get("key")?,
        payload: json(row, "payload")?,
        run_at: time(row, "run_at")?,
        attempts: row.try_get("attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: opt_time(row, "lease_until")?,
        last_error: row.try_get("last_error")?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("job state `{state}`")))?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// Schedules a job, or moves the job with the same (tenant, kind, key) to
/// the new `run_at` and payload, pending again with a clean slate (a lease
/// held on it is void: its runner's [`complete`] is refused).
pub async fn schedule(tx: &mut WriteTx, job: &NewJob) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, tenant_id, kind, key, payload, run_at, attempts, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, 'pending', $7, $7) \
         ON CONFLICT (tenant_id, kind, key) DO UPDATE SET payload = excluded.payload, \
         run_at = excluded.run_at, attempts = 0, lease_owner = NULL, lease_until = NULL, \
         last_error = NULL, state = 'pending', updated_at = excluded.updated_at",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(job.tenant_id.to_string())
    .bind(&job.kind)
    .bind(&job.key)
    .bind(to_json(&job.payload)?)
    .bind(millis(job.run_at))
    .bind(millis(job.now))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Cancels (deletes) the pending job of `kind` and `key`. Returns whether
/// there was one. Done and dead jobs stay as history.
pub async fn cancel(tx: &mut WriteTx, tenant: TenantId, kind: &str, key: &str) -> Result<bool> {
    let done = sqlx::query(
        "DELETE FROM jobs WHERE tenant_id = $1 AND kind = $2 AND key = $3 AND state = 'pending'",
    )
    .bind(tenant.to_string())
    .bind(kind)
    .bind(key)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels every pending job about `subject` (key `subject` or
/// `subject:...`), whatever its kind. Returns how many went.
pub async fn cancel_subject(tx: &mut WriteTx, tenant: TenantId, subject: &str) -> Result<u64> {
    // `;` follows `:` in every collation: a range instead of LIKE, so the
    // subject needs no escaping.
    let done = sqlx::query(
        "DELETE FROM jobs WHERE tenant_id = $1 AND state = 'pending' \
         AND (key = $2 OR (key >= $3 AND key < $4))",
    )
    .bind(tenant.to_string())
    .bind(subject)
    .bind(format!("{subject}:"))
    .bind(format!("{subject};"))
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// Leases up to `limit` due jobs (pending, `run_at <= now`, lease free or
/// expired) to `runner` until `now + lease`, earliest first.
pub async fn claim(
    store: &Store,
    runner: &str,
    now: Timestamp,
    lease: Duration,
    limit: u32,
) -> Result<Vec<Job>> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let until = millis(now).saturating_add(lease_ms);
    // Rows another claimer has locked are skipped, not waited for; the row
    // lock also re-checks the lease, so a job leased meanwhile is left out.
    let lock = match store.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET lease_owner = $1, lease_until = $2, updated_at = $3 WHERE id IN (\
         SELECT id FROM jobs WHERE state = 'pending' AND run_at <= $3 \
         AND (lease_until IS NULL OR lease_until <= $3) ORDER BY run_at, id LIMIT $4{lock}) \
         RETURNING {}",
        columns!()
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(runner)
        .bind(until)
        .bind(millis(now))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&store.writer)
        .await?;
    let mut jobs = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    // RETURNING follows no ORDER BY.
    jobs.sort_by(|a, b| (a.run_at, &a.id).cmp(&(b.run_at, &b.id)));
    Ok(jobs)
}

/// The `WHERE` clause that holds only while `job`'s lease is `runner`'s:
/// the same owner and the same lease end as when it was claimed.
const LEASE_HELD: &str = "id = $1 AND lease_owner = $2 AND lease_until = $3 AND state = 'pending'";

/// Marks `job` done inside the transaction of its effect. Refused with
/// [`StoreError::LeaseLost`] when `runner` no longer holds its lease; the
/// caller then drops the transaction, effect and all.
pub async fn complete(tx: &mut WriteTx, job: &Job, runner: &str, now: Timestamp) -> Result<()> {
    let sql = format!(
        "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, \
         last_error = NULL, updated_at = $4 WHERE {LEASE_HELD}"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&job.id)
        .bind(runner)
        .bind(job.lease_until.map(millis))
        .bind(millis(now))
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost(job.id.clone()))
    }
}

/// Records that `job` failed with `error` at `now`: one more attempt, the
/// lease released, retried at `retry_at`, or dead after [`MAX_ATTEMPTS`].
/// Returns the state it is left in; [`StoreError::LeaseLost`] when
/// `runner` no longer holds the lease (the new holder decides).
pub async fn fail(
    store: &Store,
    job: &Job,
    runner: &str,
    error: &str,
    now: Timestamp,
    retry_at: Timestamp,
) -> Result<JobState> {
    let error: String = error.chars().take(MAX_ERROR_LEN).collect();
    let sql = format!(
        "UPDATE jobs SET attempts = attempts + 1, last_error = $4, run_at = $5, \
         lease_owner = NULL, lease_until = NULL, updated_at = $7, \
         state = CASE WHEN attempts + 1 >= $6 THEN 'dead' ELSE 'pending' END \
         WHERE {LEASE_HELD} RETURNING state"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&job.id)
        .bind(runner)
        .bind(job.lease_until.map(millis))
        .bind(error)
        .bind(millis(retry_at))
        .bind(MAX_ATTEMPTS)
        .bind(millis(now))
        .fetch_optional(&store.writer)
        .await?;
    let Some(row) = row else {
        return Err(StoreError::LeaseLost(job.id.clone()));
    };
    let state: String = row.try_get("state")?;
    JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("job state `{state}`")))
}

/// Dead-letters `job` at once with `error`, inside the transaction that
/// records why (a target refused a request that retrying cannot fix).
/// [`StoreError::LeaseLost`] when `runner` no longer holds the lease.
pub async fn bury(
    tx: &mut WriteTx,
    job: &Job,
    runner: &str,
    error: &str,
    now: Timestamp,
) -> Result<()> {
    let error: String = error.chars().take(MAX_ERROR_LEN).collect();
    let sql = format!(
        "UPDATE jobs SET attempts = attempts + 1, last_error = $4, state = 'dead', \
         lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE {LEASE_HELD}"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&job.id)
        .bind(runner)
        .bind(job.lease_until.map(millis))
        .bind(error)
        .bind(millis(now))
        .execute(tx.conn())
        .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost(job.id.clone()))
    }
}

/// The job of `kind` and `key`, whatever its state.
pub async fn by_key(
    conn: &mut impl Conn,
    tenant: TenantId,
    kind: &str,
    key: &str,
) -> Result<Option<Job>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM jobs WHERE tenant_id = $1 AND kind = $2 AND key = $3"
    ))
    .bind(tenant.to_string())
    .bind(kind)
    .bind(key)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Filters for listing jobs; all given must match.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Jobs about this subject (key `subject` or `subject:...`).
    pub subject: Option<String>,
}

/// A tenant's jobs in id (creation) order after `page.after`.
pub async fn list(
    conn: &mut impl Conn,
    tenant: TenantId,
    filter: &JobFilter,
    page: &Page,
) -> Result<Paged<Job>> {
    let mut q = Sql::new(
        conn.backend(),
        concat!("SELECT ", columns!(), " FROM jobs WHERE tenant_id = "),
    );
    q.bind(tenant.to_string());
    if let Some(after) = &page.after {
        q.push(" AND id > ").bind(after.clone());
    }
    if let Some(state) = filter.state {
        q.push(" AND state = ").bind(state.as_str());
    }
    if let Some(kind) = &filter.kind {
        q.push(" AND kind = ").bind(kind.clone());
    }
    if let Some(subject) = &filter.subject {
        q.push(" AND (key = ").bind(subject.clone());
        q.push(" OR (key >= ").bind(format!("{subject}:"));
        q.push(" AND key < ").bind(format!("{subject};"));
        q.push("))");
    }
    q.push(" ORDER BY id LIMIT ").bind(page.fetch());
    let rows = q.query()?.fetch_all(conn.conn()).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_rows(items, page))
}
