//! Signing keys, with private halves sealed under the root key.
//!
//! A key is active until it is retired; at most one key per purpose and
//! algorithm is active (a unique index enforces it).

use idplane_core::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{millis, opt_millis, opt_time, time};
use crate::{Conn, Result, StoreError, WriteTx};

/// A stored key pair; the private key is ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    /// What the key is for, e.g. `audit-checkpoint`.
    pub purpose: String,
    pub algorithm: String,
    /// The public key: base64url of the raw key (audit checkpoints) or the
    /// public JWK as JSON (token signing).
    pub public_key: String,
    /// Base64url of the sealed (encrypted) private key.
    pub sealed_private_key: String,
    pub created_at: Timestamp,
    /// When a newer key replaced it; `None` while it is the active key.
    pub retired_at: Option<Timestamp>,
}

macro_rules! columns {
    () => {
        "id, purpose, algorithm, public_key, sealed_private_key, created_at, retired_at"
    };
}

fn from_row(row: &AnyRow) -> Result<StoredKey> {
    Ok(StoredKey {
        id: row.try_get("id")?,
        purpose: row.try_get("purpose")?,
        algorithm: row.try_get("algorithm")?,
        public_key: row.try_get("public_key")?,
        sealed_private_key: row.try_get("sealed_private_key")?,
        created_at: time(row, "created_at")?,
        retired_at: opt_time(row, "retired_at")?,
    })
}

/// Stores a key.
pub async fn insert(tx: &mut WriteTx, key: &StoredKey) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO signing_keys (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(&key.id)
    .bind(&key.purpose)
    .bind(&key.algorithm)
    .bind(&key.public_key)
    .bind(&key.sealed_private_key)
    .bind(millis(key.created_at))
    .bind(opt_millis(key.retired_at))
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "this key or an active key of its purpose and algorithm"))?;
    Ok(())
}

/// The newest key for `purpose`.
pub async fn current(conn: &mut impl Conn, purpose: &str) -> Result<Option<StoredKey>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM signing_keys WHERE purpose = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind(purpose)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The key with `id`.
pub async fn by_id(conn: &mut impl Conn, id: &str) -> Result<Option<StoredKey>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM signing_keys WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The active (not retired) key of `purpose` and `algorithm`.
pub async fn active(
    conn: &mut impl Conn,
    purpose: &str,
    algorithm: &str,
) -> Result<Option<StoredKey>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM signing_keys WHERE purpose = $1 AND algorithm = $2 AND retired_at IS NULL",
        " ORDER BY created_at DESC, id DESC LIMIT 1"
    ))
    .bind(purpose)
    .bind(algorithm)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Keys of `purpose` that are active or were retired after `retired_after`,
/// oldest first.
pub async fn published(
    conn: &mut impl Conn,
    purpose: &str,
    retired_after: Timestamp,
) -> Result<Vec<StoredKey>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM signing_keys WHERE purpose = $1 AND (retired_at IS NULL OR retired_at > $2)",
        " ORDER BY created_at, id"
    ))
    .bind(purpose)
    .bind(millis(retired_after))
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every key of `purpose`, retired or not, oldest first.
pub async fn list(conn: &mut impl Conn, purpose: &str) -> Result<Vec<StoredKey>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM signing_keys WHERE purpose = $1 ORDER BY created_at, id"
    ))
    .bind(purpose)
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Retires the active key of `purpose` and `algorithm` as of `at`; the ids
/// of the keys retired (none if there was no active key).
pub async fn retire_active(
    tx: &mut WriteTx,
    purpose: &str,
    algorithm: &str,
    at: Timestamp,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "UPDATE signing_keys SET retired_at = $1 \
         WHERE purpose = $2 AND algorithm = $3 AND retired_at IS NULL RETURNING id",
    )
    .bind(millis(at))
    .bind(purpose)
    .bind(algorithm)
    .fetch_all(tx.conn())
    .await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>("id").map_err(StoreError::from))
        .collect()
}
