//! Device authorization requests (RFC 8628): the device code (kept only as
//! its hash) the device polls with, the short user code a person types on
//! another screen, and the request's state: pending, approved (with the
//! grant to issue), denied, or issued.
//!
//! Every transition is a conditional update, so that of two racing callers
//! exactly one wins: a person approves or denies a pending request once, and
//! an approved request yields tokens once.

use idplane_core::{TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{enum_col, id, millis, opt_time, time};
use crate::{Conn, Result, StoreError, WriteTx};

/// Where a device authorization request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceCodeStatus {
    /// Waiting for the person.
    Pending,
    /// Approved: the grant waits for the device's next poll.
    Approved,
    /// Denied by the person.
    Denied,
    /// The tokens were issued; the device code is spent.
    Issued,
}

impl DeviceCodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Issued => "issued",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "approved" => Some(Self::Approved),
            "denied" => Some(Self::Denied),
            "issued" => Some(Self::Issued),
            _ => None,
        }
    }
}

/// A device authorization request.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDeviceCode {
    /// SHA-256 of the device code: the device code itself is never stored.
    pub device_code_hash: String,
    /// The user code, normalised (no dash, upper case); unique.
    pub user_code: String,
    pub tenant_id: TenantId,
    pub client_id: String,
    /// What the client asked for (scopes, resources): application data.
    pub request: serde_json::Value,
    pub status: DeviceCodeStatus,
    /// The grant the person approved; cleared once issued.
    pub grant: Option<serde_json::Value>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The least number of seconds between two polls (raised by `slow_down`).
    pub interval_secs: i64,
    pub last_polled_at: Option<Timestamp>,
    /// Where the device's request came from, shown to the person approving.
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

macro_rules! columns {
    () => {
        "device_code_hash, user_code, tenant_id, client_id, request, status, grant_data, \
         created_at, expires_at, interval_secs, last_polled_at, source_ip, user_agent"
    };
}

fn from_row(row: &AnyRow) -> Result<StoredDeviceCode> {
    let request: String = row.try_get("request")?;
    let grant: Option<String> = row.try_get("grant_data")?;
    let corrupt =
        |column: &str, e: serde_json::Error| StoreError::Corrupt(format!("{column}: {e}"));
    Ok(StoredDeviceCode {
        device_code_hash: row.try_get("device_code_hash")?,
        user_code: row.try_get("user_code")?,
        tenant_id: id(row, "tenant_id")?,
        client_id: row.try_get("client_id")?,
        request: serde_json::from_str(&request).map_err(|e| corrupt("request", e))?,
        status: enum_col(row, "status", DeviceCodeStatus::parse)?,
        grant: grant
            .map(|g| serde_json::from_str(&g).map_err(|e| corrupt("grant_data", e)))
            .transpose()?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        interval_secs: row.try_get("interval_secs")?,
        last_polled_at: opt_time(row, "last_polled_at")?,
        source_ip: row.try_get("source_ip")?,
        user_agent: row.try_get("user_agent")?,
    })
}

/// Stores a new request. A user code already in use is
/// [`StoreError::Duplicate`]: draw another and retry in a new transaction.
pub async fn insert(tx: &mut WriteTx, d: &StoredDeviceCode) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO oauth_device_codes (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&d.device_code_hash)
    .bind(&d.user_code)
    .bind(d.tenant_id.to_string())
    .bind(&d.client_id)
    .bind(d.request.to_string())
    .bind(d.status.as_str())
    .bind(d.grant.as_ref().map(ToString::to_string))
    .bind(millis(d.created_at))
    .bind(millis(d.expires_at))
    .bind(d.interval_secs)
    .bind(d.last_polled_at.map(millis))
    .bind(d.source_ip.as_deref())
    .bind(d.user_agent.as_deref())
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a device authorization request with this code"))?;
    Ok(())
}

/// The request behind a device code's hash.
pub async fn by_hash(
    conn: &mut impl Conn,
    device_code_hash: &str,
) -> Result<Option<StoredDeviceCode>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM oauth_device_codes WHERE device_code_hash = $1"
    ))
    .bind(device_code_hash)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The request of `tenant` with a (normalised) user code.
pub async fn by_user_code(
    conn: &mut impl Conn,
    tenant: TenantId,
    user_code: &str,
) -> Result<Option<StoredDeviceCode>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM oauth_device_codes WHERE tenant_id = $1 AND user_code = $2"
    ))
    .bind(tenant.to_string())
    .bind(user_code)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Records a poll at `at` with the interval now in force, if no other poll
/// was recorded since the one the caller saw (`seen`); false otherwise.
pub async fn record_poll(
    tx: &mut WriteTx,
    device_code_hash: &str,
    seen: Option<Timestamp>,
    at: Timestamp,
    interval_secs: i64,
) -> Result<bool> {
    // -1 stands for "never polled": no millisecond timestamp is negative
    // here, and it keeps the comparison free of NULL semantics.
    let done = sqlx::query(
        "UPDATE oauth_device_codes SET last_polled_at = $1, interval_secs = $2 \
         WHERE device_code_hash = $3 AND COALESCE(last_polled_at, -1) = $4",
    )
    .bind(millis(at))
    .bind(interval_secs)
    .bind(device_code_hash)
    .bind(seen.map_or(-1, millis))
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Approves a pending request that has not expired at `now`, storing the
/// grant to issue; false if it was no longer pending or has expired.
pub async fn approve(
    tx: &mut WriteTx,
    device_code_hash: &str,
    grant: &serde_json::Value,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE oauth_device_codes SET status = 'approved', grant_data = $1 \
         WHERE device_code_hash = $2 AND status = 'pending' AND expires_at > $3",
    )
    .bind(grant.to_string())
    .bind(device_code_hash)
    .bind(millis(now))
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Denies a pending request that has not expired at `now`; false if it was
/// no longer pending or has expired.
pub async fn deny(tx: &mut WriteTx, device_code_hash: &str, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE oauth_device_codes SET status = 'denied' \
         WHERE device_code_hash = $1 AND status = 'pending' AND expires_at > $2",
    )
    .bind(device_code_hash)
    .bind(millis(now))
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks an approved, unexpired request issued and drops its grant; false
/// if it was not approved (already issued: a replay or a lost race) or has
/// expired.
pub async fn mark_issued(tx: &mut WriteTx, device_code_hash: &str, now: Timestamp) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE oauth_device_codes SET status = 'issued', grant_data = NULL \
         WHERE device_code_hash = $1 AND status = 'approved' AND expires_at > $2",
    )
    .bind(device_code_hash)
    .bind(millis(now))
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes requests that expired before `now`; how many went.
pub async fn purge_expired(tx: &mut WriteTx, now: Timestamp) -> Result<u64> {
    let done = sqlx::query("DELETE FROM oauth_device_codes WHERE expires_at <= $1")
        .bind(millis(now))
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected())
}
