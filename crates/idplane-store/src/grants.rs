//! OAuth grant state: pending authorization requests, authorization codes,
//! refresh token families, opaque access tokens and revoked JWT ids.
//!
//! Secrets are looked up by their hash only; what a grant carries (subject,
//! scopes, authentication facts, sender binding) is application data kept
//! as JSON, opaque to the store.

use idplane_core::{PrincipalId, TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, millis, opt_id, opt_time, time};
use crate::{Conn, Result, Store, StoreError, WriteTx};

fn parse(row: &AnyRow, column: &str) -> Result<serde_json::Value> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A validated authorization request waiting to be used (pushed, or
/// parked while the person signs in or consents).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRequest {
    pub tenant_id: TenantId,
    pub client_id: String,
    pub params: serde_json::Value,
    pub pushed: bool,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Stores a request on its own: parking a request changes nothing a
/// person or an auditor would see, so it carries no audit event.
pub async fn insert_request(store: &Store, handle_hash: &str, r: &StoredRequest) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_requests (handle_hash, tenant_id, client_id, params, pushed, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(handle_hash)
    .bind(r.tenant_id.to_string())
    .bind(&r.client_id)
    .bind(r.params.to_string())
    .bind(i64::from(r.pushed))
    .bind(millis(r.created_at))
    .bind(millis(r.expires_at))
    .execute(&store.writer)
    .await?;
    Ok(())
}

/// The request behind a handle (not consumed).
pub async fn request(conn: &mut impl Conn, handle_hash: &str) -> Result<Option<StoredRequest>> {
    let row = sqlx::query(
        "SELECT tenant_id, client_id, params, pushed, created_at, expires_at \
         FROM oauth_requests WHERE handle_hash = $1",
    )
    .bind(handle_hash)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(request_from_row).transpose()
}

fn request_from_row(row: &AnyRow) -> Result<StoredRequest> {
    let pushed: i64 = row.try_get("pushed")?;
    Ok(StoredRequest {
        tenant_id: id(row, "tenant_id")?,
        client_id: row.try_get("client_id")?,
        params: parse(row, "params")?,
        pushed: pushed != 0,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
    })
}

/// Takes a request out of the store (single use): the request if it was
/// still there. Like parking, consuming scaffolding carries no audit event.
pub async fn take_request(store: &Store, handle_hash: &str) -> Result<Option<StoredRequest>> {
    let row = sqlx::query(
        "DELETE FROM oauth_requests WHERE handle_hash = $1 \
         RETURNING tenant_id, client_id, params, pushed, created_at, expires_at",
    )
    .bind(handle_hash)
    .fetch_optional(&store.writer)
    .await?;
    row.as_ref().map(request_from_row).transpose()
}

/// An authorization code.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCode {
    pub tenant_id: TenantId,
    pub client_id: String,
    pub grant: serde_json::Value,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    /// The refresh family (and access token) the exchange produced.
    pub family_id: Option<String>,
}

pub async fn insert_code(tx: &mut WriteTx, code_hash: &str, c: &StoredCode) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_codes (code_hash, tenant_id, client_id, grant_data, created_at, \
         expires_at, used_at, family_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(code_hash)
    .bind(c.tenant_id.to_string())
    .bind(&c.client_id)
    .bind(c.grant.to_string())
    .bind(millis(c.created_at))
    .bind(millis(c.expires_at))
    .bind(c.used_at.map(millis))
    .bind(c.family_id.as_deref())
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn code(conn: &mut impl Conn, code_hash: &str) -> Result<Option<StoredCode>> {
    let row = sqlx::query(
        "SELECT tenant_id, client_id, grant_data, created_at, expires_at, used_at, family_id \
         FROM oauth_codes WHERE code_hash = $1",
    )
    .bind(code_hash)
    .fetch_optional(conn.conn())
    .await?;
    row.map(|row| {
        Ok(StoredCode {
            tenant_id: id(&row, "tenant_id")?,
            client_id: row.try_get("client_id")?,
            grant: parse(&row, "grant_data")?,
            created_at: time(&row, "created_at")?,
            expires_at: time(&row, "expires_at")?,
            used_at: opt_time(&row, "used_at")?,
            family_id: row.try_get("family_id")?,
        })
    })
    .transpose()
}

/// Marks a code used by the exchange that produced `family_id`; false if
/// it was already used (the caller lost a race or sees a replay).
pub async fn use_code(
    tx: &mut WriteTx,
    code_hash: &str,
    at: Timestamp,
    family_id: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE oauth_codes SET used_at = $1, family_id = $2 \
         WHERE code_hash = $3 AND used_at IS NULL",
    )
    .bind(millis(at))
    .bind(family_id)
    .bind(code_hash)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A refresh token of a family.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRefreshToken {
    pub family_id: String,
    pub tenant_id: TenantId,
    pub client_id: String,
    pub principal_id: Option<PrincipalId>,
    pub session_id: Option<String>,
    pub grant: serde_json::Value,
    /// The access token issued together with this refresh token.
    pub access_jti: Option<String>,
    pub access_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

macro_rules! refresh_columns {
    () => {
        "family_id, tenant_id, client_id, principal_id, session_id, grant_data, access_jti, \
         created_at, expires_at, used_at, revoked_at"
    };
}

fn refresh_from_row(row: &AnyRow) -> Result<StoredRefreshToken> {
    let grant = parse(row, "grant_data")?;
    let access: Option<String> = row.try_get("access_jti")?;
    // `access_jti` holds "jti expires_at_ms" so a family revocation can
    // list the JWT to revoke until it expires.
    let (access_jti, access_expires_at) = match access.as_deref().and_then(|a| a.split_once(' ')) {
        Some((jti, ms)) => (
            Some(jti.to_owned()),
            ms.parse::<i64>()
                .ok()
                .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        ),
        None => (None, None),
    };
    Ok(StoredRefreshToken {
        family_id: row.try_get("family_id")?,
        tenant_id: id(row, "tenant_id")?,
        client_id: row.try_get("client_id")?,
        principal_id: opt_id(row, "principal_id")?,
        session_id: row.try_get("session_id")?,
        grant,
        access_jti,
        access_expires_at,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        used_at: opt_time(row, "used_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

pub async fn insert_refresh_token(
    tx: &mut WriteTx,
    token_hash: &str,
    t: &StoredRefreshToken,
) -> Result<()> {
    let access = match (&t.access_jti, t.access_expires_at) {
        (Some(jti), Some(exp)) => Some(format!("{jti} {}", millis(exp))),
        _ => None,
    };
    sqlx::query(
        "INSERT INTO oauth_refresh_tokens (token_hash, family_id, tenant_id, client_id, \
         principal_id, session_id, grant_data, access_jti, created_at, expires_at, used_at, \
         revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(token_hash)
    .bind(&t.family_id)
    .bind(t.tenant_id.to_string())
    .bind(&t.client_id)
    .bind(t.principal_id.map(|p| p.to_string()))
    .bind(t.session_id.as_deref())
    .bind(t.grant.to_string())
    .bind(access)
    .bind(millis(t.created_at))
    .bind(millis(t.expires_at))
    .bind(t.used_at.map(millis))
    .bind(t.revoked_at.map(millis))
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn refresh_token(
    conn: &mut impl Conn,
    token_hash: &str,
) -> Result<Option<StoredRefreshToken>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        refresh_columns!(),
        " FROM oauth_refresh_tokens WHERE token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(refresh_from_row).transpose()
}

/// Marks a refresh token spent; false if it already was (a replay, or a
/// concurrent rotation that won).
pub async fn spend_refresh_token(
    tx: &mut WriteTx,
    token_hash: &str,
    at: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE oauth_refresh_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(millis(at))
    .bind(token_hash)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which refresh tokens to revoke.
#[derive(Clone, Copy, Debug)]
pub enum FamilyFilter<'a> {
    Family(&'a str),
    Principal(PrincipalId),
    Session(&'a str),
    PrincipalAndClient(PrincipalId, &'a str),
}

/// Revokes the live tokens matching `filter`. Returns the revoked tokens,
/// so the access tokens issued with them can be revoked too.
pub async fn revoke_refresh_tokens(
    tx: &mut WriteTx,
    tenant: TenantId,
    filter: FamilyFilter<'_>,
    at: Timestamp,
) -> Result<Vec<StoredRefreshToken>> {
    let (clause, first, second) = match filter {
        FamilyFilter::Family(f) => ("family_id = $3", f.to_owned(), None),
        FamilyFilter::Principal(p) => ("principal_id = $3", p.to_string(), None),
        FamilyFilter::Session(s) => ("session_id = $3", s.to_owned(), None),
        FamilyFilter::PrincipalAndClient(p, c) => (
            "principal_id = $3 AND client_id = $4",
            p.to_string(),
            Some(c),
        ),
    };
    // `clause` is one of the fixed strings above; values are bound.
    let sql = format!(
        "UPDATE oauth_refresh_tokens SET revoked_at = $1 \
         WHERE tenant_id = $2 AND {clause} AND revoked_at IS NULL RETURNING {}",
        refresh_columns!()
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(millis(at))
        .bind(tenant.to_string())
        .bind(first);
    if let Some(second) = second {
        query = query.bind(second);
    }
    let rows = query.fetch_all(tx.conn()).await?;
    rows.iter().map(refresh_from_row).collect()
}

/// An opaque access token and the claims it stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAccessToken {
    pub jti: String,
    pub tenant_id: TenantId,
    pub client_id: String,
    pub claims: serde_json::Value,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

pub async fn insert_access_token(
    tx: &mut WriteTx,
    token_hash: &str,
    t: &StoredAccessToken,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_access_tokens (token_hash, jti, tenant_id, client_id, claims, \
         expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token_hash)
    .bind(&t.jti)
    .bind(t.tenant_id.to_string())
    .bind(&t.client_id)
    .bind(t.claims.to_string())
    .bind(millis(t.expires_at))
    .bind(t.revoked_at.map(millis))
    .execute(tx.conn())
    .await?;
    Ok(())
}

pub async fn access_token(
    conn: &mut impl Conn,
    token_hash: &str,
) -> Result<Option<StoredAccessToken>> {
    let row = sqlx::query(
        "SELECT jti, tenant_id, client_id, claims, expires_at, revoked_at \
         FROM oauth_access_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn.conn())
    .await?;
    row.map(|row| {
        Ok(StoredAccessToken {
            jti: row.try_get("jti")?,
            tenant_id: id(&row, "tenant_id")?,
            client_id: row.try_get("client_id")?,
            claims: parse(&row, "claims")?,
            expires_at: time(&row, "expires_at")?,
            revoked_at: opt_time(&row, "revoked_at")?,
        })
    })
    .transpose()
}

/// Revokes a token by its id: an opaque token's row is marked, and the id
/// is listed as revoked until `expires_at` (JWTs are checked against it).
/// Returns whether the id was newly revoked.
pub async fn revoke_jti(
    tx: &mut WriteTx,
    tenant: TenantId,
    jti: &str,
    expires_at: Timestamp,
    at: Timestamp,
) -> Result<bool> {
    sqlx::query(
        "UPDATE oauth_access_tokens SET revoked_at = $1 WHERE jti = $2 AND revoked_at IS NULL",
    )
    .bind(millis(at))
    .bind(jti)
    .execute(tx.conn())
    .await?;
    let done = sqlx::query(
        "INSERT INTO oauth_revoked_jtis (jti, tenant_id, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(tenant.to_string())
    .bind(millis(expires_at))
    .bind(millis(at))
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revoked token ids that have not expired yet at `now`.
pub async fn revoked_jtis(
    conn: &mut impl Conn,
    now: Timestamp,
) -> Result<Vec<(String, Timestamp)>> {
    let rows = sqlx::query("SELECT jti, expires_at FROM oauth_revoked_jtis WHERE expires_at > $1")
        .bind(millis(now))
        .fetch_all(conn.conn())
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("jti")?, time(row, "expires_at")?)))
        .collect()
}

/// Deletes grant state that expired before `now`; how many rows went.
pub async fn purge_expired(tx: &mut WriteTx, now: Timestamp) -> Result<u64> {
    let mut purged = 0;
    for table in [
        "oauth_requests",
        "oauth_codes",
        "oauth_refresh_tokens",
        "oauth_access_tokens",
        "oauth_revoked_jtis",
    ] {
        // `table` is one of the fixed names above.
        let sql = format!("DELETE FROM {table} WHERE expires_at <= $1");
        purged += sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(millis(now))
            .execute(tx.conn())
            .await?
            .rows_affected();
    }
    Ok(purged)
}
