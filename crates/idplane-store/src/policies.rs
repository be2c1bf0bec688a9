//! Authorization policy versions: immutable bundles (JSON text the use cases
//! own) numbered per tenant, and the pointer to the active one.

use idplane_core::{TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, millis, time};
use crate::{Conn, Result, StoreError, WriteTx};

/// One version of a tenant's policy bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPolicyVersion {
    pub tenant_id: TenantId,
    pub version: i64,
    /// The bundle as JSON text; its shape belongs to the use cases.
    pub bundle: String,
    /// Who made the change (an actor label).
    pub author: String,
    pub message: String,
    pub created_at: Timestamp,
}

/// A version's listing entry, without its bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersionInfo {
    pub version: i64,
    pub author: String,
    pub message: String,
    pub created_at: Timestamp,
}

fn from_row(row: &AnyRow) -> Result<StoredPolicyVersion> {
    Ok(StoredPolicyVersion {
        tenant_id: id(row, "tenant_id")?,
        version: row.try_get("version")?,
        bundle: row.try_get("bundle")?,
        author: row.try_get("author")?,
        message: row.try_get("message")?,
        created_at: time(row, "created_at")?,
    })
}

/// Appends the next version (one more than the newest) and returns its number.
pub async fn append(
    tx: &mut WriteTx,
    tenant: TenantId,
    bundle: &str,
    author: &str,
    message: &str,
    at: Timestamp,
) -> Result<i64> {
    let newest: Option<i64> =
        sqlx::query("SELECT MAX(version) AS newest FROM policy_versions WHERE tenant_id = $1")
            .bind(tenant.to_string())
            .fetch_one(tx.conn())
            .await?
            .try_get("newest")?;
    let version = newest.unwrap_or(0) + 1;
    sqlx::query(
        "INSERT INTO policy_versions (tenant_id, version, bundle, author, message, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.to_string())
    .bind(version)
    .bind(bundle)
    .bind(author)
    .bind(message)
    .bind(millis(at))
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "this policy version"))?;
    Ok(version)
}

/// Makes `version` the active one.
pub async fn activate(
    tx: &mut WriteTx,
    tenant: TenantId,
    version: i64,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO policy_active (tenant_id, version, activated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET version = excluded.version, \
         activated_at = excluded.activated_at",
    )
    .bind(tenant.to_string())
    .bind(version)
    .bind(millis(at))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The active version's number, if any version was ever activated.
pub async fn active_number(conn: &mut impl Conn, tenant: TenantId) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT version FROM policy_active WHERE tenant_id = $1")
        .bind(tenant.to_string())
        .fetch_optional(conn.conn())
        .await?;
    Ok(row.map(|r| r.try_get("version")).transpose()?)
}

/// The active version, whole.
pub async fn active(conn: &mut impl Conn, tenant: TenantId) -> Result<Option<StoredPolicyVersion>> {
    let row = sqlx::query(
        "SELECT v.tenant_id, v.version, v.bundle, v.author, v.message, v.created_at \
         FROM policy_versions v JOIN policy_active a \
         ON a.tenant_id = v.tenant_id AND a.version = v.version WHERE a.tenant_id = $1",
    )
    .bind(tenant.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// One version, whole.
pub async fn get(
    conn: &mut impl Conn,
    tenant: TenantId,
    version: i64,
) -> Result<Option<StoredPolicyVersion>> {
    let row = sqlx::query(
        "SELECT tenant_id, version, bundle, author, message, created_at \
         FROM policy_versions WHERE tenant_id = $1 AND version = $2",
    )
    .bind(tenant.to_string())
    .bind(version)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The newest versions first, at most `limit`.
pub async fn list(
    conn: &mut impl Conn,
    tenant: TenantId,
    limit: u32,
) -> Result<Vec<PolicyVersionInfo>> {
    let rows = sqlx::query(
        "SELECT version, author, message, created_at FROM policy_versions \
         WHERE tenant_id = $1 ORDER BY version DESC LIMIT $2",
    )
    .bind(tenant.to_string())
    .bind(i64::from(limit.clamp(1, 1000)))
    .fetch_all(conn.conn())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(PolicyVersionInfo {
                version: row.try_get("version")?,
                author: row.try_get("author")?,
                message: row.try_get("message")?,
                created_at: time(row, "created_at")?,
            })
        })
        .collect()
}
