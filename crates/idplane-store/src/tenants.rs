//! Tenants.

use idplane_core::TenantId;
use idplane_core::directory::Tenant;
use sqlx::any::AnyRow;

use crate::codec::{id, millis, time};
use crate::{Conn, Page, Paged, Result, StoreError, WriteTx};

macro_rules! columns {
    () => {
        "id, name, display_name, created_at, updated_at, version"
    };
}

fn from_row(row: &AnyRow) -> Result<Tenant> {
    use sqlx::Row;
    Ok(Tenant {
        id: id(row, "id")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        version: row.try_get("version")?,
    })
}

/// Adds a tenant; its name must be unused.
pub async fn insert(tx: &mut WriteTx, tenant: &Tenant) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenants (id, name, display_name, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.id.to_string())
    .bind(&tenant.name)
    .bind(tenant.display_name.as_deref())
    .bind(millis(tenant.created_at))
    .bind(millis(tenant.updated_at))
    .bind(tenant.version)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a tenant with this name"))?;
    Ok(())
}

/// Replaces a tenant's mutable fields if its version is still `expected`.
/// Returns whether a row was updated.
pub async fn update(tx: &mut WriteTx, tenant: &Tenant, expected: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE tenants SET display_name = $1, updated_at = $2, version = $3 WHERE id = $4 AND version = $5",
    )
    .bind(tenant.display_name.as_deref())
    .bind(millis(tenant.updated_at))
    .bind(tenant.version)
    .bind(tenant.id.to_string())
    .bind(expected)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a tenant and, by cascade, its directory. Its audit chain stays.
pub async fn delete(tx: &mut WriteTx, id: TenantId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(id.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The tenant called `name`.
pub async fn by_name(conn: &mut impl Conn, name: &str) -> Result<Option<Tenant>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM tenants WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The tenant with `id`.
pub async fn by_id(conn: &mut impl Conn, id: TenantId) -> Result<Option<Tenant>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM tenants WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Tenants in name order, after the name `page.after`.
pub async fn list(conn: &mut impl Conn, page: &Page) -> Result<Paged<Tenant>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM tenants WHERE name > $1 ORDER BY name LIMIT $2"
    ))
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch())
    .fetch_all(conn.conn())
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_rows(items, page))
}
