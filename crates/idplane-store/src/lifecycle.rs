//! HR-driven lifecycle: the access each birthright rule gave a user, and
//! the HR changes an import applied (joiners, movers, leavers, rehires).

use idplane_core::{PrincipalId, RoleId, TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, insert_rows, millis, opt_id, opt_millis, opt_time, time};
use crate::{Conn, Result, StoreError, WriteTx};

/// What a birthright grant gives: a group membership or a role assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantTarget {
    Group(PrincipalId),
    Role(RoleId),
}

impl GrantTarget {
    fn columns(self) -> (Option<String>, Option<String>) {
        match self {
            Self::Group(g) => (Some(g.to_string()), None),
            Self::Role(r) => (None, Some(r.to_string())),
        }
    }
}

/// Access a birthright rule gave a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirthrightGrant {
    pub tenant_id: TenantId,
    pub principal_id: PrincipalId,
    pub rule_id: String,
    pub target: GrantTarget,
    pub granted_at: Timestamp,
    /// A mover's grace: the grant goes at this instant.
    pub remove_after: Option<Timestamp>,
}

fn grant_from_row(row: &AnyRow) -> Result<BirthrightGrant> {
    let group: Option<PrincipalId> = opt_id(row, "group_id")?;
    let role: Option<RoleId> = opt_id(row, "role_id")?;
    let target = match (group, role) {
        (Some(g), None) => GrantTarget::Group(g),
        (None, Some(r)) => GrantTarget::Role(r),
        _ => {
            return Err(StoreError::Corrupt(
                "a birthright grant names both or neither of a group and a role".into(),
            ));
        }
    };
    Ok(BirthrightGrant {
        tenant_id: id(row, "tenant_id")?,
        principal_id: id(row, "principal_id")?,
        rule_id: row.try_get("rule_id")?,
        target,
        granted_at: time(row, "granted_at")?,
        remove_after: opt_time(row, "remove_after")?,
    })
}

const GRANT_COLUMNS: &str = "SELECT tenant_id, principal_id, rule_id, group_id, role_id, granted_at, remove_after \
     FROM birthright_grants";

/// The birthright grants of `principal`.
pub async fn grants_of(
    conn: &mut impl Conn,
    tenant: TenantId,
    principal: PrincipalId,
) -> Result<Vec<BirthrightGrant>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{GRANT_COLUMNS} WHERE tenant_id = $1 AND principal_id = $2 ORDER BY rule_id, group_id, role_id"
    )))
    .bind(tenant.to_string())
    .bind(principal.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(grant_from_row).collect()
}

/// Grants whose grace ended at or before `now`, oldest first, at most `limit`.
pub async fn due_grants(
    conn: &mut impl Conn,
    tenant: TenantId,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<BirthrightGrant>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{GRANT_COLUMNS} WHERE tenant_id = $1 AND remove_after IS NOT NULL AND remove_after <= $2 \
         ORDER BY remove_after LIMIT $3"
    )))
    .bind(tenant.to_string())
    .bind(millis(now))
    .bind(i64::from(limit))
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(grant_from_row).collect()
}

/// Records a grant.
pub async fn insert_grant(tx: &mut WriteTx, grant: &BirthrightGrant) -> Result<()> {
    insert_grants(tx, std::slice::from_ref(grant)).await
}

/// [`insert_grant`] for many, in as few statements as possible.
pub async fn insert_grants(tx: &mut WriteTx, grants: &[BirthrightGrant]) -> Result<()> {
    insert_rows(
        tx,
        "INSERT INTO birthright_grants \
         (tenant_id, principal_id, rule_id, group_id, role_id, granted_at, remove_after) VALUES",
        "",
        grants,
        |v, grant| {
            let (group, role) = grant.target.columns();
            v.bind(grant.tenant_id.to_string())
                .bind(grant.principal_id.to_string())
                .bind(grant.rule_id.clone())
                .bind(group)
                .bind(role)
                .bind(millis(grant.granted_at))
                .bind(opt_millis(grant.remove_after));
            Ok(())
        },
    )
    .await
    .map_err(|e| match e {
        StoreError::Database(e) => StoreError::unique(e, "this birthright grant"),
        other => other,
    })?;
    Ok(())
}

/// Sets or clears when a grant goes. Returns whether the grant exists.
pub async fn set_remove_after(
    tx: &mut WriteTx,
    grant: &BirthrightGrant,
    remove_after: Option<Timestamp>,
) -> Result<bool> {
    let (group, role) = grant.target.columns();
    let done = sqlx::query(
        "UPDATE birthright_grants SET remove_after = $1 WHERE tenant_id = $2 AND principal_id = $3 \
         AND rule_id = $4 AND group_id IS NOT DISTINCT FROM $5 AND role_id IS NOT DISTINCT FROM $6",
    )
    .bind(opt_millis(remove_after))
    .bind(grant.tenant_id.to_string())
    .bind(grant.principal_id.to_string())
    .bind(&grant.rule_id)
    .bind(group)
    .bind(role)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes every birthright grant of `principal` (a leaver loses the
/// access itself; a rehire starts from nothing). Returns how many.
pub async fn delete_grants_of(
    tx: &mut WriteTx,
    tenant: TenantId,
    principal: PrincipalId,
) -> Result<u64> {
    let done =
        sqlx::query("DELETE FROM birthright_grants WHERE tenant_id = $1 AND principal_id = $2")
            .bind(tenant.to_string())
            .bind(principal.to_string())
            .execute(tx.conn())
            .await?;
    Ok(done.rows_affected())
}

/// Deletes a grant. Returns whether it existed.
pub async fn delete_grant(tx: &mut WriteTx, grant: &BirthrightGrant) -> Result<bool> {
    let (group, role) = grant.target.columns();
    let done = sqlx::query(
        "DELETE FROM birthright_grants WHERE tenant_id = $1 AND principal_id = $2 AND rule_id = $3 \
         AND group_id IS NOT DISTINCT FROM $4 AND role_id IS NOT DISTINCT FROM $5",
    )
    .bind(grant.tenant_id.to_string())
    .bind(grant.principal_id.to_string())
    .bind(&grant.rule_id)
    .bind(group)
    .bind(role)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One step of the lifecycle that an HR import applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HrChange {
    /// A UUID v7; audit events of the step carry it.
    pub id: String,
    pub tenant_id: TenantId,
    pub import_id: String,
    pub employee_id: String,
    pub principal_id: PrincipalId,
    /// `joiner`, `mover`, `leaver` or `rehire`.
    pub kind: String,
    /// When HR says it takes effect (a leaver's termination), if it said.
    pub effective_at: Option<Timestamp>,
    /// When idplane received the HR data.
    pub received_at: Timestamp,
    pub applied_at: Option<Timestamp>,
    /// Leavers: when the account was fully deprovisioned.
    pub deprovisioned_at: Option<Timestamp>,
}

/// Records an HR change.
pub async fn insert_change(tx: &mut WriteTx, change: &HrChange) -> Result<()> {
    insert_changes(tx, std::slice::from_ref(change)).await
}

/// [`insert_change`] for many, in as few statements as possible.
pub async fn insert_changes(tx: &mut WriteTx, changes: &[HrChange]) -> Result<()> {
    insert_rows(
        tx,
        "INSERT INTO hr_changes (id, tenant_id, import_id, employee_id, principal_id, kind, \
         effective_at, received_at, applied_at, deprovisioned_at) VALUES",
        "",
        changes,
        |v, change| {
            v.bind(change.id.clone())
                .bind(change.tenant_id.to_string())
                .bind(change.import_id.clone())
                .bind(change.employee_id.clone())
                .bind(change.principal_id.to_string())
                .bind(change.kind.clone())
                .bind(opt_millis(change.effective_at))
                .bind(millis(change.received_at))
                .bind(opt_millis(change.applied_at))
                .bind(opt_millis(change.deprovisioned_at));
            Ok(())
        },
    )
    .await
    .map_err(|e| match e {
        StoreError::Database(e) => StoreError::unique(e, "this HR change"),
        other => other,
    })?;
    Ok(())
}

/// Records when a leaver's account was fully deprovisioned. Returns
/// whether the change exists.
pub async fn set_deprovisioned(tx: &mut WriteTx, change_id: &str, at: Timestamp) -> Result<bool> {
    let done = sqlx::query("UPDATE hr_changes SET deprovisioned_at = $1 WHERE id = $2")
        .bind(millis(at))
        .bind(change_id)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The changes of `kind` received at or after `since`, oldest first.
pub async fn changes(
    conn: &mut impl Conn,
    tenant: TenantId,
    kind: &str,
    since: Timestamp,
) -> Result<Vec<HrChange>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, import_id, employee_id, principal_id, kind, effective_at, \
         received_at, applied_at, deprovisioned_at FROM hr_changes \
         WHERE tenant_id = $1 AND kind = $2 AND received_at >= $3 ORDER BY received_at, id",
    )
    .bind(tenant.to_string())
    .bind(kind)
    .bind(millis(since))
    .fetch_all(conn.conn())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(HrChange {
                id: row.try_get("id")?,
                tenant_id: id(row, "tenant_id")?,
                import_id: row.try_get("import_id")?,
                employee_id: row.try_get("employee_id")?,
                principal_id: id(row, "principal_id")?,
                kind: row.try_get("kind")?,
                effective_at: opt_time(row, "effective_at")?,
                received_at: time(row, "received_at")?,
                applied_at: opt_time(row, "applied_at")?,
                deprovisioned_at: opt_time(row, "deprovisioned_at")?,
            })
        })
        .collect()
}
