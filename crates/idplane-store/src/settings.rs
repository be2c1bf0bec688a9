//! Per-tenant settings documents (JSON): authentication policy, lifecycle
//! settings and lifecycle rules.

use idplane_core::{TenantId, Timestamp};
use sqlx::Row;

use crate::codec::millis;
use crate::{Conn, Result, WriteTx};

/// The tenant's authentication settings as stored JSON, if any were set.
pub async fn auth_settings(conn: &mut impl Conn, tenant: TenantId) -> Result<Option<String>> {
    let row = sqlx::query("SELECT settings FROM tenant_auth_settings WHERE tenant_id = $1")
        .bind(tenant.to_string())
        .fetch_optional(conn.conn())
        .await?;
    Ok(row.map(|r| r.try_get("settings")).transpose()?)
}

/// Replaces the tenant's authentication settings.
pub async fn put_auth_settings(
    tx: &mut WriteTx,
    tenant: TenantId,
    settings: &str,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenant_auth_settings (tenant_id, settings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
    )
    .bind(tenant.to_string())
    .bind(settings)
    .bind(millis(at))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The tenant's lifecycle settings as stored JSON, if any were set.
pub async fn lifecycle_settings(conn: &mut impl Conn, tenant: TenantId) -> Result<Option<String>> {
    let row = sqlx::query("SELECT settings FROM tenant_lifecycle_settings WHERE tenant_id = $1")
        .bind(tenant.to_string())
        .fetch_optional(conn.conn())
        .await?;
    Ok(row.map(|r| r.try_get("settings")).transpose()?)
}

/// Replaces the tenant's lifecycle settings.
pub async fn put_lifecycle_settings(
    tx: &mut WriteTx,
    tenant: TenantId,
    settings: &str,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenant_lifecycle_settings (tenant_id, settings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
    )
    .bind(tenant.to_string())
    .bind(settings)
    .bind(millis(at))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The tenant's lifecycle rules (birthright, mover grace, leaver threshold)
/// as stored JSON, if any were set.
pub async fn lifecycle_rules(conn: &mut impl Conn, tenant: TenantId) -> Result<Option<String>> {
    let row = sqlx::query("SELECT rules FROM tenant_lifecycle_rules WHERE tenant_id = $1")
        .bind(tenant.to_string())
        .fetch_optional(conn.conn())
        .await?;
    Ok(row.map(|r| r.try_get("rules")).transpose()?)
}

/// Replaces the tenant's lifecycle rules.
pub async fn put_lifecycle_rules(
    tx: &mut WriteTx,
    tenant: TenantId,
    rules: &str,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenant_lifecycle_rules (tenant_id, rules, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET rules = excluded.rules, updated_at = excluded.updated_at",
    )
    .bind(tenant.to_string())
    .bind(rules)
    .bind(millis(at))
    .execute(tx.conn())
    .await?;
    Ok(())
}
