//! Short-lived ceremony state (WebAuthn challenges, a sign-in waiting for
//! its second factor), stored under the SHA-256 of a random handle.
//!
//! Like checkpoints, these rows are scaffolding rather than state of
//! consequence, so they are written without an audit event; what the
//! ceremony achieves is audited by the use case that finishes it.

use idplane_core::{PrincipalId, TenantId, Timestamp};
use sqlx::Row;

use crate::codec::{id, millis, opt_id, time};
use crate::{Result, Store};

/// A ceremony in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ceremony {
    pub tenant_id: TenantId,
    /// What the state is for, e.g. `passkey-registration`; a handle of one
    /// kind never finishes a ceremony of another.
    pub kind: String,
    pub principal_id: Option<PrincipalId>,
    /// Kind-specific JSON.
    pub state: String,
    pub expires_at: Timestamp,
}

/// Stores a ceremony under `handle_hash`.
pub async fn put(store: &Store, handle_hash: &str, c: &Ceremony) -> Result<()> {
    sqlx::query(
        "INSERT INTO ceremonies (id_hash, tenant_id, kind, principal_id, state, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(handle_hash)
    .bind(c.tenant_id.to_string())
    .bind(&c.kind)
    .bind(c.principal_id.map(|p| p.to_string()))
    .bind(&c.state)
    .bind(millis(c.expires_at))
    .execute(&store.writer)
    .await?;
    Ok(())
}

/// Removes and returns the ceremony under `handle_hash`, so that it can be
/// finished once only. An expired ceremony is removed and not returned.
pub async fn take(store: &Store, handle_hash: &str, now: Timestamp) -> Result<Option<Ceremony>> {
    let row = sqlx::query(
        "DELETE FROM ceremonies WHERE id_hash = $1 \
         RETURNING tenant_id, kind, principal_id, state, expires_at",
    )
    .bind(handle_hash)
    .fetch_optional(&store.writer)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let ceremony = Ceremony {
        tenant_id: id(&row, "tenant_id")?,
        kind: row.try_get("kind")?,
        principal_id: opt_id(&row, "principal_id")?,
        state: row.try_get("state")?,
        expires_at: time(&row, "expires_at")?,
    };
    Ok((now < ceremony.expires_at).then_some(ceremony))
}

/// Deletes expired ceremonies; returns how many.
pub async fn purge_expired(store: &Store, now: Timestamp) -> Result<u64> {
    let done = sqlx::query("DELETE FROM ceremonies WHERE expires_at <= $1")
        .bind(millis(now))
        .execute(&store.writer)
        .await?;
    Ok(done.rows_affected())
}
