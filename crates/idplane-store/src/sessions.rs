//! Server-side sign-in sessions, looked up by the SHA-256 of the cookie
//! value; the public `id` names a session for listing and ending it.

use idplane_core::{PrincipalId, TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, json, millis, opt_time, time, to_json};
use crate::{Conn, Result, Store, WriteTx};

/// A stored session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    pub id: String,
    pub tenant_id: TenantId,
    pub principal_id: PrincipalId,
    /// Authentication methods (RFC 8176): `pwd`, `otp`, `hwk`, `swk`, `mfa`...
    pub amr: Vec<String>,
    pub acr: String,
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The absolute end, whatever the activity.
    pub expires_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, principal_id, amr, acr, auth_time, created_at, last_seen_at, expires_at, \
         ended_at, source_ip, user_agent"
    };
}

fn from_row(row: &AnyRow) -> Result<StoredSession> {
    Ok(StoredSession {
        id: row.try_get("id")?,
        tenant_id: id(row, "tenant_id")?,
        principal_id: id(row, "principal_id")?,
        amr: json(row, "amr")?,
        acr: row.try_get("acr")?,
        auth_time: time(row, "auth_time")?,
        created_at: time(row, "created_at")?,
        last_seen_at: time(row, "last_seen_at")?,
        expires_at: time(row, "expires_at")?,
        ended_at: opt_time(row, "ended_at")?,
        source_ip: row.try_get("source_ip")?,
        user_agent: row.try_get("user_agent")?,
    })
}

/// Stores a new session under the hash of its secret.
pub async fn insert(tx: &mut WriteTx, s: &StoredSession, secret_hash: &str) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO sessions (",
        columns!(),
        ", id_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&s.id)
    .bind(s.tenant_id.to_string())
    .bind(s.principal_id.to_string())
    .bind(to_json(&s.amr)?)
    .bind(&s.acr)
    .bind(millis(s.auth_time))
    .bind(millis(s.created_at))
    .bind(millis(s.last_seen_at))
    .bind(millis(s.expires_at))
    .bind(s.ended_at.map(millis))
    .bind(s.source_ip.as_deref())
    .bind(s.user_agent.as_deref())
    .bind(secret_hash)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The session whose secret hashes to `secret_hash`.
pub async fn by_hash(conn: &mut impl Conn, secret_hash: &str) -> Result<Option<StoredSession>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM sessions WHERE id_hash = $1"
    ))
    .bind(secret_hash)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The session with public id `id` in `tenant`.
pub async fn by_id(
    conn: &mut impl Conn,
    tenant: TenantId,
    id: &str,
) -> Result<Option<StoredSession>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM sessions WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The sessions of a principal that have not been ended, newest first.
pub async fn of_principal(
    conn: &mut impl Conn,
    principal: PrincipalId,
) -> Result<Vec<StoredSession>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM sessions WHERE principal_id = $1 AND ended_at IS NULL ORDER BY created_at DESC"
    ))
    .bind(principal.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Ends one session. Returns whether it was still running.
pub async fn end(tx: &mut WriteTx, id: &str, at: Timestamp) -> Result<bool> {
    let done = sqlx::query("UPDATE sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
        .bind(millis(at))
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every running session of a principal. Returns how many.
pub async fn end_all(tx: &mut WriteTx, principal: PrincipalId, at: Timestamp) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE sessions SET ended_at = $1 WHERE principal_id = $2 AND ended_at IS NULL",
    )
    .bind(millis(at))
    .bind(principal.to_string())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}

/// Records activity for the idle timeout. Activity is not a change of
/// consequence, so, like ceremonies, it carries no audit event.
pub async fn touch(store: &Store, id: &str, at: Timestamp) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND ended_at IS NULL")
        .bind(millis(at))
        .bind(id)
        .execute(&store.writer)
        .await?;
    Ok(())
}
