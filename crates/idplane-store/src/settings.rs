//! Per-tenant settings documents (JSON), one table each: the
//! authentication policy, the lifecycle settings and the lifecycle rules.

use idplane_core::{TenantId, Timestamp};
use sqlx::Row;

use crate::codec::millis;
use crate::{Conn, Result, WriteTx};

/// Which per-tenant document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    /// Authentication policy (factors, password rules, sessions).
    Auth,
    /// Lifecycle settings (the tenant's webhook).
    Lifecycle,
    /// Lifecycle rules (birthright, mover grace, leaver threshold).
    LifecycleRules,
}

impl Document {
    /// The table and the column holding the JSON; constants, never input.
    fn place(self) -> (&'static str, &'static str) {
        match self {
            Self::Auth => ("tenant_auth_settings", "settings"),
            Self::Lifecycle => ("tenant_lifecycle_settings", "settings"),
            Self::LifecycleRules => ("tenant_lifecycle_rules", "rules"),
        }
    }
}

/// The tenant's document as stored JSON, if one was set.
pub async fn document(
    conn: &mut impl Conn,
    doc: Document,
    tenant: TenantId,
) -> Result<Option<String>> {
    let (table, column) = doc.place();
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {column} AS doc FROM {table} WHERE tenant_id = $1"
    )))
    .bind(tenant.to_string())
    .fetch_optional(conn.conn())
    .await?;
    Ok(row.map(|r| r.try_get("doc")).transpose()?)
}

/// Replaces the tenant's document.
pub async fn put_document(
    tx: &mut WriteTx,
    doc: Document,
    tenant: TenantId,
    json: &str,
    at: Timestamp,
) -> Result<()> {
    let (table, column) = doc.place();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (tenant_id, {column}, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET {column} = excluded.{column}, updated_at = excluded.updated_at"
    )))
    .bind(tenant.to_string())
    .bind(json)
    .bind(millis(at))
    .execute(tx.conn())
    .await?;
    Ok(())
}
