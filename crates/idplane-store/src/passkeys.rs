//! WebAuthn passkeys: one row per credential, holding the serialised
//! webauthn-rs `Passkey` (public key, counter, flags) and what the user
//! calls it. A credential id is unique across every tenant: a credential
//! registered to one account is never accepted for another.

use idplane_core::{PrincipalId, TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, millis, opt_millis, opt_time, time};
use crate::{Conn, Result, StoreError, WriteTx};

/// A stored passkey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPasskey {
    /// The credential id, base64url without padding.
    pub id: String,
    pub principal_id: PrincipalId,
    pub tenant_id: TenantId,
    /// What the user calls it ("YubiKey", "phone").
    pub name: String,
    /// The serialised webauthn-rs `Passkey` (JSON).
    pub passkey: String,
    /// The last signature counter seen (0: the authenticator keeps none).
    pub counter: i64,
    /// Whether the credential may be synced to other devices.
    pub backup_eligible: bool,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

macro_rules! columns {
    () => {
        "id, principal_id, tenant_id, name, passkey, counter, backup_eligible, created_at, last_used_at"
    };
}

fn from_row(row: &AnyRow) -> Result<StoredPasskey> {
    let backup_eligible: i64 = row.try_get("backup_eligible")?;
    Ok(StoredPasskey {
        id: row.try_get("id")?,
        principal_id: id(row, "principal_id")?,
        tenant_id: id(row, "tenant_id")?,
        name: row.try_get("name")?,
        passkey: row.try_get("passkey")?,
        counter: row.try_get("counter")?,
        backup_eligible: backup_eligible != 0,
        created_at: time(row, "created_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
    })
}

/// Stores a new passkey. A credential id already stored (for anyone) is
/// [`StoreError::Duplicate`].
pub async fn insert(tx: &mut WriteTx, p: &StoredPasskey) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO passkeys (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(&p.id)
    .bind(p.principal_id.to_string())
    .bind(p.tenant_id.to_string())
    .bind(&p.name)
    .bind(&p.passkey)
    .bind(p.counter)
    .bind(i64::from(p.backup_eligible))
    .bind(millis(p.created_at))
    .bind(opt_millis(p.last_used_at))
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a passkey with this credential id"))?;
    Ok(())
}

/// Whether a credential id is stored, in any tenant.
pub async fn exists(conn: &mut impl Conn, id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM passkeys WHERE id = $1")
        .bind(id)
        .fetch_one(conn.conn())
        .await?;
    let n: i64 = row.try_get("n")?;
    Ok(n > 0)
}

/// The passkey with credential id `id` in `tenant`.
pub async fn by_id(
    conn: &mut impl Conn,
    tenant: TenantId,
    id: &str,
) -> Result<Option<StoredPasskey>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM passkeys WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// A principal's passkeys, oldest first.
pub async fn for_principal(
    conn: &mut impl Conn,
    tenant: TenantId,
    principal: PrincipalId,
) -> Result<Vec<StoredPasskey>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM passkeys WHERE principal_id = $1 AND tenant_id = $2 ORDER BY created_at, id"
    ))
    .bind(principal.to_string())
    .bind(tenant.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(from_row).collect()
}

/// How many passkeys a principal has.
pub async fn count_for_principal(
    conn: &mut impl Conn,
    tenant: TenantId,
    principal: PrincipalId,
) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM passkeys WHERE principal_id = $1 AND tenant_id = $2",
    )
    .bind(principal.to_string())
    .bind(tenant.to_string())
    .fetch_one(conn.conn())
    .await?;
    Ok(row.try_get("n")?)
}

/// Records a successful use: `updated` carries the new serialised passkey,
/// counter, backup eligibility and `last_used_at`. Changes the row only if
/// its counter is still `expected_counter` (no other use raced this one);
/// returns whether it changed.
pub async fn record_use(
    tx: &mut WriteTx,
    updated: &StoredPasskey,
    expected_counter: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE passkeys SET passkey = $1, counter = $2, backup_eligible = $3, last_used_at = $4 \
         WHERE id = $5 AND tenant_id = $6 AND principal_id = $7 AND counter = $8",
    )
    .bind(&updated.passkey)
    .bind(updated.counter)
    .bind(i64::from(updated.backup_eligible))
    .bind(opt_millis(updated.last_used_at))
    .bind(&updated.id)
    .bind(updated.tenant_id.to_string())
    .bind(updated.principal_id.to_string())
    .bind(expected_counter)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Renames a principal's passkey. Returns whether it exists.
pub async fn rename(
    tx: &mut WriteTx,
    tenant: TenantId,
    principal: PrincipalId,
    id: &str,
    name: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE passkeys SET name = $1 WHERE id = $2 AND principal_id = $3 AND tenant_id = $4",
    )
    .bind(name)
    .bind(id)
    .bind(principal.to_string())
    .bind(tenant.to_string())
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a principal's passkey. Returns whether it existed.
pub async fn delete(
    tx: &mut WriteTx,
    tenant: TenantId,
    principal: PrincipalId,
    id: &str,
) -> Result<bool> {
    let done =
        sqlx::query("DELETE FROM passkeys WHERE id = $1 AND principal_id = $2 AND tenant_id = $3")
            .bind(id)
            .bind(principal.to_string())
            .bind(tenant.to_string())
            .execute(tx.conn())
            .await?;
    Ok(done.rows_affected() == 1)
}
