//! One-time JWT ids seen (`private_key_jwt` client assertions, DPoP
//! proofs), kept until the JWT they came from expires, so that a replay is
//! refused on every node.
//!
//! An `issuer` names the namespace of the ids (e.g. `assertion:TENANT:CLIENT`
//! or `dpop:JKT`): the same `jti` from two issuers is two ids.
//!
//! Like ceremonies, these rows are scaffolding rather than state of
//! consequence: each is written in its own small write, without an audit
//! event; what the JWT achieves is audited by the use case that accepts it.

use idplane_core::Timestamp;

use crate::codec::millis;
use crate::{Result, Store};

/// Remembers `jti` of `issuer` until `expires_at`. Returns `true` when the
/// id is new, `false` when it was already seen (a replay), also when two
/// callers race with the same id: exactly one of them gets `true`.
///
/// An id stays seen until [`purge_expired`] removes it, even past its
/// `expires_at`: by then the JWT that carried it is refused as expired.
pub async fn remember(
    store: &Store,
    issuer: &str,
    jti: &str,
    expires_at: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO oauth_seen_jtis (issuer, jti, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (issuer, jti) DO NOTHING",
    )
    .bind(issuer)
    .bind(jti)
    .bind(millis(expires_at))
    .execute(&store.writer)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the ids whose JWT expired at or before `now`; returns how many.
pub async fn purge_expired(store: &Store, now: Timestamp) -> Result<u64> {
    let done = sqlx::query("DELETE FROM oauth_seen_jtis WHERE expires_at <= $1")
        .bind(millis(now))
        .execute(&store.writer)
        .await?;
    Ok(done.rows_affected())
}
