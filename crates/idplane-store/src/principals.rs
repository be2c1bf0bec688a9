//! Principals (users, groups, service accounts, agents) and group memberships.

use idplane_core::directory::{Membership, Principal, PrincipalKind, Status, UserType};
use idplane_core::{PrincipalId, TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{
    Sql, enum_col, id, insert_rows, json, millis, opt_id, opt_millis, opt_time, time, to_json,
};
use crate::{Conn, Page, Paged, Result, StoreError, WriteTx};

macro_rules! columns {
    () => {
        "id, tenant_id, kind, name, display_name, email, external_id, status, user_type, \
         end_date, sponsor_id, owner_id, purpose, expires_at, attributes, created_at, updated_at, version, start_date"
    };
}
pub(crate) use columns;

pub(crate) fn from_row(row: &AnyRow) -> Result<Principal> {
    let user_type: Option<String> = row.try_get("user_type")?;
    Ok(Principal {
        id: id(row, "id")?,
        tenant_id: id(row, "tenant_id")?,
        kind: enum_col(row, "kind", PrincipalKind::parse)?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        external_id: row.try_get("external_id")?,
        status: enum_col(row, "status", Status::parse)?,
        user_type: user_type
            .map(|t| {
                UserType::parse(&t).ok_or_else(|| StoreError::Corrupt(format!("user_type `{t}`")))
            })
            .transpose()?,
        start_date: opt_time(row, "start_date")?,
        end_date: opt_time(row, "end_date")?,
        sponsor_id: opt_id(row, "sponsor_id")?,
        owner_id: opt_id(row, "owner_id")?,
        purpose: row.try_get("purpose")?,
        expires_at: opt_time(row, "expires_at")?,
        attributes: json(row, "attributes")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        version: row.try_get("version")?,
    })
}

fn duplicate(e: sqlx::Error, kind: PrincipalKind) -> StoreError {
    StoreError::unique(
        e,
        match kind {
            PrincipalKind::User => "a user with this username or external id",
            PrincipalKind::Group => "a group with this name or external id",
            PrincipalKind::ServiceAccount => "a service account with this name or external id",
            PrincipalKind::Agent => "an agent with this name or external id",
        },
    )
}

/// Adds a principal. `name_key` is the case-insensitive uniqueness key.
pub async fn insert(tx: &mut WriteTx, p: &Principal, name_key: &str) -> Result<()> {
    insert_all(tx, &[(p, name_key)]).await
}

/// Adds principals (with their name keys) in as few statements as
/// possible; all or, on a duplicate, an error.
pub async fn insert_all(tx: &mut WriteTx, principals: &[(&Principal, &str)]) -> Result<()> {
    let Some((first, _)) = principals.first() else {
        return Ok(());
    };
    insert_rows(
        tx,
        concat!("INSERT INTO principals (", columns!(), ", name_key) VALUES"),
        "",
        principals,
        |v, (p, name_key)| {
            v.bind(p.id.to_string())
                .bind(p.tenant_id.to_string())
                .bind(p.kind.as_str())
                .bind(p.name.clone())
                .bind(p.display_name.clone())
                .bind(p.email.clone())
                .bind(p.external_id.clone())
                .bind(p.status.as_str())
                .bind(p.user_type.map(UserType::as_str))
                .bind(opt_millis(p.end_date))
                .bind(p.sponsor_id.map(|id| id.to_string()))
                .bind(p.owner_id.map(|id| id.to_string()))
                .bind(p.purpose.clone())
                .bind(opt_millis(p.expires_at))
                .bind(to_json(&p.attributes)?)
                .bind(millis(p.created_at))
                .bind(millis(p.updated_at))
                .bind(p.version)
                .bind(opt_millis(p.start_date))
                .bind(name_key.to_string());
            Ok(())
        },
    )
    .await
    .map_err(|e| match e {
        StoreError::Database(e) => duplicate(e, first.kind),
        other => other,
    })?;
    Ok(())
}

/// Replaces a principal's fields if its stored version is still `expected`.
/// Returns whether a row was updated.
pub async fn update(
    tx: &mut WriteTx,
    p: &Principal,
    name_key: &str,
    expected: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE principals SET name = $1, name_key = $2, display_name = $3, email = $4, external_id = $5, \
         status = $6, user_type = $7, end_date = $8, sponsor_id = $9, owner_id = $10, purpose = $11, \
         expires_at = $12, attributes = $13, updated_at = $14, version = $15, start_date = $16 \
         WHERE id = $17 AND tenant_id = $18 AND version = $19",
    )
    .bind(&p.name)
    .bind(name_key)
    .bind(p.display_name.as_deref())
    .bind(p.email.as_deref())
    .bind(p.external_id.as_deref())
    .bind(p.status.as_str())
    .bind(p.user_type.map(UserType::as_str))
    .bind(opt_millis(p.end_date))
    .bind(p.sponsor_id.map(|id| id.to_string()))
    .bind(p.owner_id.map(|id| id.to_string()))
    .bind(p.purpose.as_deref())
    .bind(opt_millis(p.expires_at))
    .bind(to_json(&p.attributes)?)
    .bind(millis(p.updated_at))
    .bind(p.version)
    .bind(opt_millis(p.start_date))
    .bind(p.id.to_string())
    .bind(p.tenant_id.to_string())
    .bind(expected)
    .execute(tx.conn())
    .await
    .map_err(|e| duplicate(e, p.kind))?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a principal; its memberships and role assignments go with it.
pub async fn delete(tx: &mut WriteTx, tenant: TenantId, id: PrincipalId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM principals WHERE id = $1 AND tenant_id = $2")
        .bind(id.to_string())
        .bind(tenant.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// How many principals name `id` as their sponsor or owner.
pub async fn dependants(conn: &mut impl Conn, id: PrincipalId) -> Result<i64> {
    let row =
        sqlx::query("SELECT COUNT(*) AS n FROM principals WHERE sponsor_id = $1 OR owner_id = $1")
            .bind(id.to_string())
            .fetch_one(conn.conn())
            .await?;
    Ok(row.try_get("n")?)
}

/// The principal with `id` in `tenant`.
pub async fn by_id(
    conn: &mut impl Conn,
    tenant: TenantId,
    id: PrincipalId,
) -> Result<Option<Principal>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM principals WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id.to_string())
    .bind(tenant.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The principal of `kind` whose name has the key `name_key`.
pub async fn by_name(
    conn: &mut impl Conn,
    tenant: TenantId,
    kind: PrincipalKind,
    name_key: &str,
) -> Result<Option<Principal>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM principals WHERE tenant_id = $1 AND kind = $2 AND name_key = $3"
    ))
    .bind(tenant.to_string())
    .bind(kind.as_str())
    .bind(name_key)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Filters for listing principals; all given filters must match.
#[derive(Clone, Debug, Default)]
pub struct PrincipalFilter {
    pub kind: Option<PrincipalKind>,
    /// Exact name, as its case-insensitive key.
    pub name_key: Option<String>,
    /// Names whose key starts with this.
    pub name_prefix: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub status: Option<Status>,
    pub user_type: Option<UserType>,
    pub owner_id: Option<PrincipalId>,
    pub sponsor_id: Option<PrincipalId>,
}

/// Principals in id (creation) order after `page.after`.
pub async fn list(
    conn: &mut impl Conn,
    tenant: TenantId,
    filter: &PrincipalFilter,
    page: &Page,
) -> Result<Paged<Principal>> {
    let mut q = Sql::new(
        conn.backend(),
        concat!("SELECT ", columns!(), " FROM principals WHERE tenant_id = "),
    );
    q.bind(tenant.to_string());
    if let Some(after) = &page.after {
        q.push(" AND id > ").bind(after.clone());
    }
    if let Some(kind) = filter.kind {
        q.push(" AND kind = ").bind(kind.as_str());
    }
    if let Some(key) = &filter.name_key {
        q.push(" AND name_key = ").bind(key.clone());
    }
    if let Some(prefix) = &filter.name_prefix {
        // Range instead of LIKE: no wildcard characters to escape.
        q.push(" AND name_key >= ").bind(prefix.clone());
        q.push(" AND name_key < ")
            .bind(format!("{prefix}\u{10FFFF}"));
    }
    if let Some(email) = &filter.email {
        q.push(" AND email = ").bind(email.clone());
    }
    if let Some(external_id) = &filter.external_id {
        q.push(" AND external_id = ").bind(external_id.clone());
    }
    if let Some(status) = filter.status {
        q.push(" AND status = ").bind(status.as_str());
    }
    if let Some(user_type) = filter.user_type {
        q.push(" AND user_type = ").bind(user_type.as_str());
    }
    if let Some(owner) = filter.owner_id {
        q.push(" AND owner_id = ").bind(owner.to_string());
    }
    if let Some(sponsor) = filter.sponsor_id {
        q.push(" AND sponsor_id = ").bind(sponsor.to_string());
    }
    q.push(" ORDER BY id LIMIT ").bind(page.fetch());
    let rows = q.query()?.fetch_all(conn.conn()).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_rows(items, page))
}

/// Adds `member` to `group`, or changes the expiry of an existing membership.
pub async fn upsert_membership(tx: &mut WriteTx, tenant: TenantId, m: &Membership) -> Result<()> {
    upsert_memberships(tx, tenant, std::slice::from_ref(m)).await
}

/// [`upsert_membership`] for many, in as few statements as possible.
pub async fn upsert_memberships(
    tx: &mut WriteTx,
    tenant: TenantId,
    memberships: &[Membership],
) -> Result<()> {
    insert_rows(
        tx,
        "INSERT INTO memberships (tenant_id, group_id, member_id, expires_at, created_at) VALUES",
        " ON CONFLICT (group_id, member_id) DO UPDATE SET expires_at = excluded.expires_at",
        memberships,
        |v, m| {
            v.bind(tenant.to_string())
                .bind(m.group_id.to_string())
                .bind(m.member_id.to_string())
                .bind(opt_millis(m.expires_at))
                .bind(millis(m.created_at));
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// Removes `member` from `group`. Returns whether it was a member.
pub async fn delete_membership(
    tx: &mut WriteTx,
    group: PrincipalId,
    member: PrincipalId,
) -> Result<bool> {
    let done = sqlx::query("DELETE FROM memberships WHERE group_id = $1 AND member_id = $2")
        .bind(group.to_string())
        .bind(member.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

fn membership_from_row(row: &AnyRow) -> Result<Membership> {
    Ok(Membership {
        group_id: id(row, "group_id")?,
        member_id: id(row, "member_id")?,
        expires_at: opt_time(row, "expires_at")?,
        created_at: time(row, "created_at")?,
    })
}

/// The direct members of `group`, expired ones included (callers decide).
pub async fn members(conn: &mut impl Conn, group: PrincipalId) -> Result<Vec<Membership>> {
    let rows = sqlx::query(
        "SELECT group_id, member_id, expires_at, created_at FROM memberships WHERE group_id = $1 ORDER BY member_id",
    )
    .bind(group.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(membership_from_row).collect()
}

/// The groups `member` belongs to directly, expired ones included.
pub async fn memberships_of(conn: &mut impl Conn, member: PrincipalId) -> Result<Vec<Membership>> {
    let rows = sqlx::query(
        "SELECT group_id, member_id, expires_at, created_at FROM memberships WHERE member_id = $1 ORDER BY group_id",
    )
    .bind(member.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(membership_from_row).collect()
}

/// The groups a principal belongs to, directly or through nesting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransitiveGroups {
    /// Each group once.
    pub ids: Vec<PrincipalId>,
    /// The first instant at which one of the memberships counted (the
    /// principal's and its groups') expires: where the answer may change.
    pub first_expiry: Option<Timestamp>,
}

/// Every group `start` belongs to, directly or through nesting, counting only
/// memberships in force at `now` (all of them when `now` is `None`, as cycle
/// checks need). Each group visited once.
pub async fn transitive_groups(
    conn: &mut impl Conn,
    start: PrincipalId,
    now: Option<Timestamp>,
) -> Result<TransitiveGroups> {
    let mut seen = std::collections::HashSet::from([start]);
    let mut found = TransitiveGroups::default();
    let mut frontier = vec![start];
    while let Some(next) = frontier.pop() {
        for m in memberships_of(conn, next).await? {
            let live = now.is_none_or(|now| idplane_core::time::in_force(m.expires_at, now));
            if !live {
                continue;
            }
            if let Some(expires) = m.expires_at {
                found.first_expiry = Some(found.first_expiry.map_or(expires, |f| f.min(expires)));
            }
            if seen.insert(m.group_id) {
                found.ids.push(m.group_id);
                frontier.push(m.group_id);
            }
        }
    }
    Ok(found)
}
