//! Resource servers (RFC 8707): APIs that accept our access tokens, named
//! by an absolute URI (the token audience), with the scopes they define.

use idplane_core::{TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, json, millis, time, to_json};
use crate::{Conn, Result, StoreError, WriteTx};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResource {
    pub tenant_id: TenantId,
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn from_row(row: &AnyRow) -> Result<StoredResource> {
    Ok(StoredResource {
        tenant_id: id(row, "tenant_id")?,
        identifier: row.try_get("identifier")?,
        name: row.try_get("name")?,
        scopes: json(row, "scopes")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// Creates or replaces a resource server.
pub async fn put(tx: &mut WriteTx, r: &StoredResource) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_resources (tenant_id, identifier, name, scopes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, identifier) \
         DO UPDATE SET name = excluded.name, scopes = excluded.scopes, \
         updated_at = excluded.updated_at",
    )
    .bind(r.tenant_id.to_string())
    .bind(&r.identifier)
    .bind(&r.name)
    .bind(to_json(&r.scopes)?)
    .bind(millis(r.created_at))
    .bind(millis(r.updated_at))
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a resource server with this identifier"))?;
    Ok(())
}

pub async fn get(
    conn: &mut impl Conn,
    tenant: TenantId,
    identifier: &str,
) -> Result<Option<StoredResource>> {
    let row = sqlx::query(
        "SELECT tenant_id, identifier, name, scopes, created_at, updated_at \
         FROM oauth_resources WHERE tenant_id = $1 AND identifier = $2",
    )
    .bind(tenant.to_string())
    .bind(identifier)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(conn: &mut impl Conn, tenant: TenantId) -> Result<Vec<StoredResource>> {
    let rows = sqlx::query(
        "SELECT tenant_id, identifier, name, scopes, created_at, updated_at \
         FROM oauth_resources WHERE tenant_id = $1 ORDER BY identifier",
    )
    .bind(tenant.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn delete(tx: &mut WriteTx, tenant: TenantId, identifier: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM oauth_resources WHERE tenant_id = $1 AND identifier = $2")
        .bind(tenant.to_string())
        .bind(identifier)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}
