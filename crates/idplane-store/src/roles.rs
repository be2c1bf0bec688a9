//! Roles and role assignments.

use idplane_core::directory::{Entitlement, Role, RoleAssignment};
use idplane_core::{AssignmentId, PrincipalId, RoleId, TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, insert_rows, json, millis, opt_millis, opt_time, time, to_json};
use crate::{Conn, Page, Paged, Result, StoreError, WriteTx};

macro_rules! columns {
    () => {
        columns!("")
    };
    // Qualified with a table alias, for joins.
    ($t:literal) => {
        concat!(
            $t,
            "id, ",
            $t,
            "tenant_id, ",
            $t,
            "name, ",
            $t,
            "description, ",
            $t,
            "entitlements, ",
            $t,
            "created_at, ",
            $t,
            "updated_at, ",
            $t,
            "version"
        )
    };
}

macro_rules! assignment_columns {
    () => {
        "id, tenant_id, role_id, principal_id, expires_at, created_at"
    };
}

fn from_row(row: &AnyRow) -> Result<Role> {
    let entitlements: Vec<Entitlement> = json(row, "entitlements")?;
    Ok(Role {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        entitlements,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        version: row.try_get("version")?,
    })
}

fn assignment_from_row(row: &AnyRow) -> Result<RoleAssignment> {
    Ok(RoleAssignment {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        role_id: id(row, "role_id")?,
        principal_id: id(row, "principal_id")?,
        expires_at: opt_time(row, "expires_at")?,
        created_at: time(row, "created_at")?,
    })
}

/// Adds a role; its name must be unused in the tenant.
pub async fn insert(tx: &mut WriteTx, role: &Role, name_key: &str) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO roles (",
        columns!(),
        ", name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(role.id.to_string())
    .bind(role.tenant_id.to_string())
    .bind(&role.name)
    .bind(role.description.as_deref())
    .bind(to_json(&role.entitlements)?)
    .bind(millis(role.created_at))
    .bind(millis(role.updated_at))
    .bind(role.version)
    .bind(name_key)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a role with this name"))?;
    Ok(())
}

/// Replaces a role's fields if its stored version is still `expected`.
pub async fn update(tx: &mut WriteTx, role: &Role, name_key: &str, expected: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE roles SET name = $1, name_key = $2, description = $3, entitlements = $4, updated_at = $5, \
         version = $6 WHERE id = $7 AND tenant_id = $8 AND version = $9",
    )
    .bind(&role.name)
    .bind(name_key)
    .bind(role.description.as_deref())
    .bind(to_json(&role.entitlements)?)
    .bind(millis(role.updated_at))
    .bind(role.version)
    .bind(role.id.to_string())
    .bind(role.tenant_id.to_string())
    .bind(expected)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a role with this name"))?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a role. Callers refuse first when it is still assigned.
pub async fn delete(tx: &mut WriteTx, tenant: TenantId, id: RoleId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM roles WHERE id = $1 AND tenant_id = $2")
        .bind(id.to_string())
        .bind(tenant.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The role with `id`.
pub async fn by_id(conn: &mut impl Conn, tenant: TenantId, id: RoleId) -> Result<Option<Role>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM roles WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id.to_string())
    .bind(tenant.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The role whose name has the key `name_key`.
pub async fn by_name(
    conn: &mut impl Conn,
    tenant: TenantId,
    name_key: &str,
) -> Result<Option<Role>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM roles WHERE tenant_id = $1 AND name_key = $2"
    ))
    .bind(tenant.to_string())
    .bind(name_key)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Roles in id order after `page.after`.
pub async fn list(conn: &mut impl Conn, tenant: TenantId, page: &Page) -> Result<Paged<Role>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM roles WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(tenant.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch())
    .fetch_all(conn.conn())
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_rows(items, page))
}

/// Grants a role, or changes the expiry of an existing grant. Returns the
/// assignment as stored.
pub async fn upsert_assignment(tx: &mut WriteTx, a: &RoleAssignment) -> Result<RoleAssignment> {
    upsert_assignments(tx, std::slice::from_ref(a)).await?;
    let row = sqlx::query(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM role_assignments WHERE role_id = $1 AND principal_id = $2"
    ))
    .bind(a.role_id.to_string())
    .bind(a.principal_id.to_string())
    .fetch_one(tx.conn())
    .await?;
    assignment_from_row(&row)
}

/// [`upsert_assignment`] for many (at most one per role and principal), in
/// as few statements as possible.
pub async fn upsert_assignments(tx: &mut WriteTx, assignments: &[RoleAssignment]) -> Result<()> {
    insert_rows(
        tx,
        concat!(
            "INSERT INTO role_assignments (",
            assignment_columns!(),
            ") VALUES"
        ),
        " ON CONFLICT (role_id, principal_id) DO UPDATE SET expires_at = excluded.expires_at",
        assignments,
        |v, a| {
            v.bind(a.id.to_string())
                .bind(a.tenant_id.to_string())
                .bind(a.role_id.to_string())
                .bind(a.principal_id.to_string())
                .bind(opt_millis(a.expires_at))
                .bind(millis(a.created_at));
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// Revokes an assignment. Returns whether it existed.
pub async fn delete_assignment(
    tx: &mut WriteTx,
    tenant: TenantId,
    id: AssignmentId,
) -> Result<bool> {
    let done = sqlx::query("DELETE FROM role_assignments WHERE id = $1 AND tenant_id = $2")
        .bind(id.to_string())
        .bind(tenant.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The assignment with `id`.
pub async fn assignment(
    conn: &mut impl Conn,
    tenant: TenantId,
    id: AssignmentId,
) -> Result<Option<RoleAssignment>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM role_assignments WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id.to_string())
    .bind(tenant.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(assignment_from_row).transpose()
}

/// Filters for listing assignments.
#[derive(Clone, Debug, Default)]
pub struct AssignmentFilter {
    pub role_id: Option<RoleId>,
    pub principal_id: Option<PrincipalId>,
}

/// Assignments in id order after `page.after`, expired ones included.
pub async fn assignments(
    conn: &mut impl Conn,
    tenant: TenantId,
    filter: &AssignmentFilter,
    page: &Page,
) -> Result<Paged<RoleAssignment>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM role_assignments WHERE tenant_id = $1 AND id > $2 \
         AND ($3 = '' OR role_id = $3) AND ($4 = '' OR principal_id = $4) ORDER BY id LIMIT $5"
    ))
    .bind(tenant.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(filter.role_id.map(|id| id.to_string()).unwrap_or_default())
    .bind(
        filter
            .principal_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    )
    .bind(page.fetch())
    .fetch_all(conn.conn())
    .await?;
    let items = rows
        .iter()
        .map(assignment_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_rows(items, page))
}

/// The roles `principal` holds directly in `tenant`, each with when its
/// assignment expires (expired ones included), in assignment order: one
/// query where [`assignments_of`] and a [`by_id`] per role take several.
pub async fn held_by(
    conn: &mut impl Conn,
    tenant: TenantId,
    principal: PrincipalId,
) -> Result<Vec<(Role, Option<Timestamp>)>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!("r."),
        ", a.expires_at AS assignment_expires_at FROM role_assignments a \
         JOIN roles r ON r.id = a.role_id \
         WHERE a.principal_id = $1 AND r.tenant_id = $2 ORDER BY a.id"
    ))
    .bind(principal.to_string())
    .bind(tenant.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter()
        .map(|row| Ok((from_row(row)?, opt_time(row, "assignment_expires_at")?)))
        .collect()
}

/// The assignments held directly by `principal`, expired included.
pub async fn assignments_of(
    conn: &mut impl Conn,
    principal: PrincipalId,
) -> Result<Vec<RoleAssignment>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM role_assignments WHERE principal_id = $1 ORDER BY id"
    ))
    .bind(principal.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(assignment_from_row).collect()
}

/// How many assignments grant `role`.
pub async fn assignment_count(conn: &mut impl Conn, role: RoleId) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM role_assignments WHERE role_id = $1")
        .bind(role.to_string())
        .fetch_one(conn.conn())
        .await?;
    Ok(row.try_get("n")?)
}
