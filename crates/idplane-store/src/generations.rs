//! Counters that triggers move in the same transaction as every change to
//! what nodes cache in memory (migrations 0012 and 0013), in every tenant:
//! a node polls them to learn that another node changed what it cached.

use sqlx::Row;

use crate::{Conn, Result};

/// Moved by every change to principals, memberships, roles and role
/// assignments: what the decision engine projects from the directory.
pub async fn directory(conn: &mut impl Conn) -> Result<i64> {
    read(
        conn,
        "SELECT generation FROM directory_generation WHERE id = 1",
    )
    .await
}

/// Moved by every change to API tokens, OAuth clients and resource
/// servers: what the request paths authenticate and scope with.
pub async fn registry(conn: &mut impl Conn) -> Result<i64> {
    read(
        conn,
        "SELECT generation FROM registry_generation WHERE id = 1",
    )
    .await
}

/// Moved by every revoked access token id.
pub async fn revocations(conn: &mut impl Conn) -> Result<i64> {
    read(
        conn,
        "SELECT generation FROM revocation_generation WHERE id = 1",
    )
    .await
}

async fn read(conn: &mut impl Conn, sql: &'static str) -> Result<i64> {
    let row = sqlx::query(sql).fetch_one(conn.conn()).await?;
    Ok(row.try_get("generation")?)
}
