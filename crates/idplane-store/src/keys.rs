//! Signing keys, with private halves sealed under the root key.

use idplane_core::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{millis, time};
use crate::{Conn, Result, StoreError, WriteTx};

/// A stored key pair; the private key is ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub id: String,
    /// What the key is for, e.g. `audit-checkpoint`.
    pub purpose: String,
    pub algorithm: String,
    /// Base64url of the raw public key.
    pub public_key: String,
    /// Base64url of the sealed (encrypted) private key.
    pub sealed_private_key: String,
    pub created_at: Timestamp,
}

macro_rules! columns {
    () => {
        "id, purpose, algorithm, public_key, sealed_private_key, created_at"
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
    })
}

/// Stores a key.
pub async fn insert(tx: &mut WriteTx, key: &StoredKey) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO signing_keys (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(&key.id)
    .bind(&key.purpose)
    .bind(&key.algorithm)
    .bind(&key.public_key)
    .bind(&key.sealed_private_key)
    .bind(millis(key.created_at))
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a key with this id"))?;
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
