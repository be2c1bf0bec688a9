//! OAuth 2.0 / OpenID Connect clients. A client is identified by its
//! `client_id`, unique within its tenant; of its secret only a keyed hash
//! is stored.

use idplane_core::{TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, json, millis, opt_millis, opt_time, time, to_json};
use crate::{Conn, Page, Paged, Result, StoreError, WriteTx};

/// A stored client, in portable column forms (enumerations as their wire
/// names; the application checks and types them). Never its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredClient {
    pub tenant_id: TenantId,
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    pub client_type: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub token_endpoint_auth_method: String,
    /// A JWK Set document, for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    pub first_party: bool,
    /// `jwt` or `opaque`.
    pub access_token_format: String,
    pub id_token_signed_response_alg: String,
    pub require_pushed_authorization_requests: bool,
    pub access_token_lifetime_secs: i64,
    pub refresh_token_lifetime_secs: i64,
    /// Where logout tokens are sent (OpenID Connect Back-Channel Logout).
    pub backchannel_logout_uri: Option<String>,
    /// Whether the client's access tokens must be DPoP-bound (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: bool,
    /// The keyed hash of the RFC 7592 registration access token, for clients
    /// registered dynamically (RFC 7591).
    pub registration_token_hash: Option<String>,
    /// When the current secret was issued (confidential clients with one).
    pub secret_rotated_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

macro_rules! columns {
    () => {
        "tenant_id, client_id, name, client_type, redirect_uris, post_logout_redirect_uris, \
         grant_types, scopes, token_endpoint_auth_method, jwks, jwks_uri, first_party, \
         access_token_format, id_token_signed_response_alg, require_par, \
         access_token_lifetime_secs, refresh_token_lifetime_secs, backchannel_logout_uri, \
         dpop_bound_access_tokens, registration_token_hash, secret_rotated_at, \
         created_at, updated_at, version"
    };
}

fn from_row(row: &AnyRow) -> Result<StoredClient> {
    let jwks: Option<String> = row.try_get("jwks")?;
    let first_party: i64 = row.try_get("first_party")?;
    let require_par: i64 = row.try_get("require_par")?;
    let dpop_bound: i64 = row.try_get("dpop_bound_access_tokens")?;
    Ok(StoredClient {
        tenant_id: id(row, "tenant_id")?,
        client_id: row.try_get("client_id")?,
        name: row.try_get("name")?,
        client_type: row.try_get("client_type")?,
        redirect_uris: json(row, "redirect_uris")?,
        post_logout_redirect_uris: json(row, "post_logout_redirect_uris")?,
        grant_types: json(row, "grant_types")?,
        scopes: json(row, "scopes")?,
        token_endpoint_auth_method: row.try_get("token_endpoint_auth_method")?,
        jwks: jwks
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("jwks: {e}")))
            })
            .transpose()?,
        jwks_uri: row.try_get("jwks_uri")?,
        first_party: first_party != 0,
        access_token_format: row.try_get("access_token_format")?,
        id_token_signed_response_alg: row.try_get("id_token_signed_response_alg")?,
        require_pushed_authorization_requests: require_par != 0,
        access_token_lifetime_secs: row.try_get("access_token_lifetime_secs")?,
        refresh_token_lifetime_secs: row.try_get("refresh_token_lifetime_secs")?,
        backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
        dpop_bound_access_tokens: dpop_bound != 0,
        registration_token_hash: row.try_get("registration_token_hash")?,
        secret_rotated_at: opt_time(row, "secret_rotated_at")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        version: row.try_get("version")?,
    })
}

fn jwks_text(c: &StoredClient) -> Result<Option<String>> {
    c.jwks.as_ref().map(to_json).transpose()
}

/// Adds a client, with the keyed hash of its secret if it has one. Its
/// `client_id` must be unused in the tenant.
pub async fn insert(tx: &mut WriteTx, c: &StoredClient, secret_hash: Option<&str>) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO oauth_clients (",
        columns!(),
        ", secret_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)"
    ))
    .bind(c.tenant_id.to_string())
    .bind(&c.client_id)
    .bind(&c.name)
    .bind(&c.client_type)
    .bind(to_json(&c.redirect_uris)?)
    .bind(to_json(&c.post_logout_redirect_uris)?)
    .bind(to_json(&c.grant_types)?)
    .bind(to_json(&c.scopes)?)
    .bind(&c.token_endpoint_auth_method)
    .bind(jwks_text(c)?)
    .bind(c.jwks_uri.as_deref())
    .bind(i64::from(c.first_party))
    .bind(&c.access_token_format)
    .bind(&c.id_token_signed_response_alg)
    .bind(i64::from(c.require_pushed_authorization_requests))
    .bind(c.access_token_lifetime_secs)
    .bind(c.refresh_token_lifetime_secs)
    .bind(c.backchannel_logout_uri.as_deref())
    .bind(i64::from(c.dpop_bound_access_tokens))
    .bind(c.registration_token_hash.as_deref())
    .bind(opt_millis(c.secret_rotated_at))
    .bind(millis(c.created_at))
    .bind(millis(c.updated_at))
    .bind(c.version)
    .bind(secret_hash)
    .execute(tx.conn())
    .await
    .map_err(|e| StoreError::unique(e, "a client with this client_id"))?;
    Ok(())
}

/// Replaces a client's settings (and registration token hash) if its stored
/// version is still `expected`. The secret is left alone (see [`set_secret`]).
pub async fn update(tx: &mut WriteTx, c: &StoredClient, expected: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE oauth_clients SET name = $1, client_type = $2, redirect_uris = $3, \
         post_logout_redirect_uris = $4, grant_types = $5, scopes = $6, \
         token_endpoint_auth_method = $7, jwks = $8, jwks_uri = $9, first_party = $10, \
         access_token_format = $11, id_token_signed_response_alg = $12, require_par = $13, \
         access_token_lifetime_secs = $14, refresh_token_lifetime_secs = $15, \
         backchannel_logout_uri = $16, dpop_bound_access_tokens = $17, \
         registration_token_hash = $18, updated_at = $19, version = $20 \
         WHERE tenant_id = $21 AND client_id = $22 AND version = $23",
    )
    .bind(&c.name)
    .bind(&c.client_type)
    .bind(to_json(&c.redirect_uris)?)
    .bind(to_json(&c.post_logout_redirect_uris)?)
    .bind(to_json(&c.grant_types)?)
    .bind(to_json(&c.scopes)?)
    .bind(&c.token_endpoint_auth_method)
    .bind(jwks_text(c)?)
    .bind(c.jwks_uri.as_deref())
    .bind(i64::from(c.first_party))
    .bind(&c.access_token_format)
    .bind(&c.id_token_signed_response_alg)
    .bind(i64::from(c.require_pushed_authorization_requests))
    .bind(c.access_token_lifetime_secs)
    .bind(c.refresh_token_lifetime_secs)
    .bind(c.backchannel_logout_uri.as_deref())
    .bind(i64::from(c.dpop_bound_access_tokens))
    .bind(c.registration_token_hash.as_deref())
    .bind(millis(c.updated_at))
    .bind(c.version)
    .bind(c.tenant_id.to_string())
    .bind(&c.client_id)
    .bind(expected)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces (or with `None` removes) a client's secret hash, bumping its
/// version, if the stored version is still `expected`.
pub async fn set_secret(
    tx: &mut WriteTx,
    tenant: TenantId,
    client_id: &str,
    secret_hash: Option<&str>,
    at: Timestamp,
    expected: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE oauth_clients SET secret_hash = $1, secret_rotated_at = $2, updated_at = $3, \
         version = version + 1 WHERE tenant_id = $4 AND client_id = $5 AND version = $6",
    )
    .bind(secret_hash)
    .bind(secret_hash.map(|_| millis(at)))
    .bind(millis(at))
    .bind(tenant.to_string())
    .bind(client_id)
    .bind(expected)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a client. Returns whether it existed.
pub async fn delete(tx: &mut WriteTx, tenant: TenantId, client_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM oauth_clients WHERE tenant_id = $1 AND client_id = $2")
        .bind(tenant.to_string())
        .bind(client_id)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The client with `client_id`.
pub async fn by_id(
    conn: &mut impl Conn,
    tenant: TenantId,
    client_id: &str,
) -> Result<Option<StoredClient>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM oauth_clients WHERE tenant_id = $1 AND client_id = $2"
    ))
    .bind(tenant.to_string())
    .bind(client_id)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The client with `client_id` and the keyed hash of its secret, if any.
pub async fn with_secret(
    conn: &mut impl Conn,
    tenant: TenantId,
    client_id: &str,
) -> Result<Option<(StoredClient, Option<String>)>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        ", secret_hash FROM oauth_clients WHERE tenant_id = $1 AND client_id = $2"
    ))
    .bind(tenant.to_string())
    .bind(client_id)
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref()
        .map(|row| Ok((from_row(row)?, row.try_get("secret_hash")?)))
        .transpose()
}

/// Clients in `client_id` order (byte order) after `page.after`.
pub async fn list(
    conn: &mut impl Conn,
    tenant: TenantId,
    page: &Page,
) -> Result<Paged<StoredClient>> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM oauth_clients WHERE tenant_id = $1 AND client_id > $2 ORDER BY client_id LIMIT $3"
    ))
    .bind(tenant.to_string())
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch())
    .fetch_all(conn.conn())
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Paged::from_rows(items, page))
}
