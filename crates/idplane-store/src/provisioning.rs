//! Outbound provisioning: the connected applications (targets) a tenant
//! pushes users and groups to over SCIM, and the links that remember each
//! principal's id at each target. What is pushed and when is the job
//! scheduler's (`jobs`, kind `scim.push`); this module only keeps state.

use idplane_core::{PrincipalId, TenantId, Timestamp};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, json, millis, opt_id, time, to_json};
use crate::{Conn, Result, StoreError, WriteTx};

/// A connected application.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// A UUID v7.
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    /// The SCIM base URL, without a trailing slash (e.g. `https://app/scim/v2`).
    pub base_url: String,
    /// The bearer token, sealed under the root key; never leaves the app.
    pub token_sealed: String,
    /// Receives the transitive members of this group; `None`: every user.
    pub scope_group: Option<PrincipalId>,
    /// Whether groups are pushed too.
    pub push_groups: bool,
    /// Target SCIM attribute path -> idplane source (a JSON object).
    pub mapping: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

macro_rules! columns {
    () => {
        "id, tenant_id, name, base_url, token_sealed, scope_group, push_groups, mapping, \
         created_at, updated_at, version"
    };
}

fn from_row(row: &AnyRow) -> Result<Target> {
    Ok(Target {
        id: row.try_get("id")?,
        tenant_id: id(row, "tenant_id")?,
        name: row.try_get("name")?,
        base_url: row.try_get("base_url")?,
        token_sealed: row.try_get("token_sealed")?,
        scope_group: opt_id(row, "scope_group")?,
        push_groups: row.try_get::<i64, _>("push_groups")? != 0,
        mapping: json(row, "mapping")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        version: row.try_get("version")?,
    })
}

/// Adds a target; its `name_key` (the case-folded name) must be unused in
/// the tenant.
pub async fn insert(tx: &mut WriteTx, t: &Target, name_key: &str) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO provisioning_targets (",
        columns!(),
        ", name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&t.id)
    .bind(t.tenant_id.to_string())
    .bind(&t.name)
    .bind(&t.base_url)
    .bind(&t.token_sealed)
    .bind(t.scope_group.map(|g| g.to_string()))
    .bind(i64::from(t.push_groups))
    .bind(to_json(&t.mapping)?)
    .bind(millis(t.created_at))
    .bind(millis(t.updated_at))
    .bind(t.version)
    .bind(name_key)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a provisioning target with this name"))?;
    Ok(())
}

/// Replaces a target if its stored version is still `expected`.
pub async fn update(tx: &mut WriteTx, t: &Target, name_key: &str, expected: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE provisioning_targets SET name = $3, name_key = $4, base_url = $5, \
         token_sealed = $6, scope_group = $7, push_groups = $8, mapping = $9, \
         updated_at = $10, version = $11 WHERE tenant_id = $1 AND id = $2 AND version = $12",
    )
    .bind(t.tenant_id.to_string())
    .bind(&t.id)
    .bind(&t.name)
    .bind(name_key)
    .bind(&t.base_url)
    .bind(&t.token_sealed)
    .bind(t.scope_group.map(|g| g.to_string()))
    .bind(i64::from(t.push_groups))
    .bind(to_json(&t.mapping)?)
    .bind(millis(t.updated_at))
    .bind(t.version)
    .bind(expected)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a provisioning target with this name"))?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a target with its links. Returns whether it existed.
pub async fn delete(tx: &mut WriteTx, tenant: TenantId, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM provisioning_targets WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.to_string())
        .bind(id)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The target with `id`.
pub async fn by_id(conn: &mut impl Conn, tenant: TenantId, id: &str) -> Result<Option<Target>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM provisioning_targets WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant.to_string())
    .bind(id)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The target whose case-folded name is `name_key`.
pub async fn by_name(
    conn: &mut impl Conn,
    tenant: TenantId,
    name_key: &str,
) -> Result<Option<Target>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM provisioning_targets WHERE tenant_id = $1 AND name_key = $2"
    ))
    .bind(tenant.to_string())
    .bind(name_key)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every target of the tenant, in creation order. A tenant connects a
/// handful of applications, so there is no paging.
pub async fn list(conn: &mut impl Conn, tenant: TenantId) -> Result<Vec<Target>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM provisioning_targets WHERE tenant_id = $1 ORDER BY id"
    ))
    .bind(tenant.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(from_row).collect()
}

/// A principal's id at a target, and which of its versions was pushed.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub target_id: String,
    pub principal_id: PrincipalId,
    pub remote_id: String,
    pub last_pushed_version: i64,
    pub pushed_at: Timestamp,
}

fn link_from_row(row: &AnyRow) -> Result<Link> {
    Ok(Link {
        target_id: row.try_get("target_id")?,
        principal_id: id(row, "principal_id")?,
        remote_id: row.try_get("remote_id")?,
        last_pushed_version: row.try_get("last_pushed_version")?,
        pushed_at: time(row, "pushed_at")?,
    })
}

/// Records (or moves) a principal's remote id at a target.
pub async fn upsert_link(tx: &mut WriteTx, link: &Link) -> Result<()> {
    sqlx::query(
        "INSERT INTO provisioning_links (target_id, principal_id, remote_id, last_pushed_version, pushed_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (target_id, principal_id) DO UPDATE SET \
         remote_id = excluded.remote_id, last_pushed_version = excluded.last_pushed_version, \
         pushed_at = excluded.pushed_at",
    )
    .bind(&link.target_id)
    .bind(link.principal_id.to_string())
    .bind(&link.remote_id)
    .bind(link.last_pushed_version)
    .bind(millis(link.pushed_at))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The link of `principal` at `target`.
pub async fn link(
    conn: &mut impl Conn,
    target: &str,
    principal: PrincipalId,
) -> Result<Option<Link>> {
    let row = sqlx::query(
        "SELECT target_id, principal_id, remote_id, last_pushed_version, pushed_at \
         FROM provisioning_links WHERE target_id = $1 AND principal_id = $2",
    )
    .bind(target)
    .bind(principal.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(link_from_row).transpose()
}

/// Forgets the link of `principal` at `target`. Returns whether there was one.
pub async fn delete_link(tx: &mut WriteTx, target: &str, principal: PrincipalId) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM provisioning_links WHERE target_id = $1 AND principal_id = $2")
            .bind(target)
            .bind(principal.to_string())
            .execute(tx.conn())
            .await?;
    Ok(done.rows_affected() == 1)
}
