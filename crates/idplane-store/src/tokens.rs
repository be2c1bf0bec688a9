//! Administrator tokens. Only a SHA-256 of each secret is stored.

use idplane_core::{PrincipalId, TenantId, Timestamp, TokenId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, millis, opt_id, opt_millis, opt_time, time};
use crate::{Conn, Page, Paged, Result, StoreError, WriteTx};

/// A stored administrator token (without its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    pub id: TokenId,
    /// `None`: valid for every tenant.
    pub tenant_id: Option<TenantId>,
    pub name: String,
    /// `admin`, `read` or `bootstrap`.
    pub scope: String,
    pub principal_id: Option<PrincipalId>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

macro_rules! columns {
    () => {
        "id, tenant_id, name, scope, principal_id, created_by, created_at, expires_at, revoked_at"
    };
}

fn from_row(row: &AnyRow) -> Result<StoredToken> {
    Ok(StoredToken {
        id: id(row, "id")?,
        tenant_id: opt_id(row, "tenant_id")?,
        name: row.try_get("name")?,
        scope: row.try_get("scope")?,
        principal_id: opt_id(row, "principal_id")?,
        created_by: row.try_get("created_by")?,
        created_at: time(row, "created_at")?,
        expires_at: opt_time(row, "expires_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

/// Stores a token under the hash of its secret.
pub async fn insert(tx: &mut WriteTx, token: &StoredToken, secret_hash: &str) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO admin_tokens (",
        columns!(),
        ", token_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(token.id.to_string())
    .bind(token.tenant_id.map(|t| t.to_string()))
    .bind(&token.name)
    .bind(&token.scope)
    .bind(token.principal_id.map(|p| p.to_string()))
    .bind(&token.created_by)
    .bind(millis(token.created_at))
    .bind(opt_millis(token.expires_at))
    .bind(opt_millis(token.revoked_at))
    .bind(secret_hash)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a token with this secret"))?;
    Ok(())
}

/// The token whose secret hashes to `secret_hash`. The lookup is by a hash
/// of the secret, so timing reveals nothing about the secret itself.
pub async fn by_hash(conn: &mut impl Conn, secret_hash: &str) -> Result<Option<StoredToken>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM admin_tokens WHERE token_hash = $1"
    ))
    .bind(secret_hash)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The token with `id`.
pub async fn by_id(conn: &mut impl Conn, id: TokenId) -> Result<Option<StoredToken>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM admin_tokens WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Tokens in id order after `page.after`.
pub async fn list(conn: &mut impl Conn, page: &Page) -> Result<Paged<StoredToken>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM admin_tokens WHERE id > $1 ORDER BY id LIMIT $2"
    ))
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch())
    .fetch_all(conn.conn())
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_rows(items, page))
}

/// Marks a token revoked at `at`, unless it already was. Returns whether it
/// changed.
pub async fn revoke(tx: &mut WriteTx, id: TokenId, at: Timestamp) -> Result<bool> {
    let done =
        sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(millis(at))
            .bind(id.to_string())
            .execute(tx.conn())
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether any token of `scope` was ever issued (used to bootstrap once).
pub async fn any_with_scope(conn: &mut impl Conn, scope: &str) -> Result<bool> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM admin_tokens WHERE scope = $1")
        .bind(scope)
        .fetch_one(conn.conn())
        .await?;
    let n: i64 = row.try_get("n")?;
    Ok(n > 0)
}
