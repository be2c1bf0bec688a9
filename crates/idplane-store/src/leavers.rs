//! What deprovisioning removed from a user, kept so that a rehire can be
//! reviewed against it (nothing is restored automatically).

use idplane_core::{PrincipalId, TenantId, Timestamp};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, json, millis, time, to_json};
use crate::{Conn, Result, WriteTx};

/// One deprovisioning of one user.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaverRecord {
    /// A UUID v7.
    pub id: String,
    pub tenant_id: TenantId,
    pub principal_id: PrincipalId,
    /// `hr_termination`, `contractor_end`, `admin`, `scim`.
    pub cause: String,
    /// The HR change that caused it, if any.
    pub hr_change_id: Option<String>,
    /// What was removed or transferred (memberships, role assignments,
    /// consents, owned and sponsored principals).
    pub removed: Value,
    pub created_at: Timestamp,
}

fn from_row(row: &AnyRow) -> Result<LeaverRecord> {
    Ok(LeaverRecord {
        id: row.try_get("id")?,
        tenant_id: id(row, "tenant_id")?,
        principal_id: id(row, "principal_id")?,
        cause: row.try_get("cause")?,
        hr_change_id: row.try_get("hr_change_id")?,
        removed: json(row, "removed")?,
        created_at: time(row, "created_at")?,
    })
}

/// Stores a record, inside the deprovisioning's transaction.
pub async fn insert(tx: &mut WriteTx, r: &LeaverRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO leaver_records (id, tenant_id, principal_id, cause, hr_change_id, removed, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.id)
    .bind(r.tenant_id.to_string())
    .bind(r.principal_id.to_string())
    .bind(&r.cause)
    .bind(r.hr_change_id.as_deref())
    .bind(to_json(&r.removed)?)
    .bind(millis(r.created_at))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The newest record of `principal`, if they ever left.
pub async fn latest(
    conn: &mut impl Conn,
    tenant: TenantId,
    principal: PrincipalId,
) -> Result<Option<LeaverRecord>> {
    let row = sqlx::query(
        "SELECT id, tenant_id, principal_id, cause, hr_change_id, removed, created_at \
         FROM leaver_records WHERE tenant_id = $1 AND principal_id = $2 \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(tenant.to_string())
    .bind(principal.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}
