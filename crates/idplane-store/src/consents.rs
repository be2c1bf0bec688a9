//! Consent people gave third-party OAuth clients: the scopes granted,
//! remembered per person and client until revoked.

use idplane_core::{PrincipalId, TenantId, Timestamp};
use sqlx::Row;

use crate::codec::{json, millis, time, to_json};
use crate::{Conn, Result, WriteTx};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredConsent {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub granted_at: Timestamp,
}

/// The consent `principal` gave `client_id`, if any.
pub async fn get(
    conn: &mut impl Conn,
    tenant: TenantId,
    principal: PrincipalId,
    client_id: &str,
) -> Result<Option<StoredConsent>> {
    let row = sqlx::query(
        "SELECT client_id, scopes, granted_at FROM oauth_consents \
         WHERE tenant_id = $1 AND principal_id = $2 AND client_id = $3",
    )
    .bind(tenant.to_string())
    .bind(principal.to_string())
    .bind(client_id)
    .fetch_optional(conn.conn())
    .await?;
    row.map(|row| {
        Ok(StoredConsent {
            client_id: row.try_get("client_id")?,
            scopes: json(&row, "scopes")?,
            granted_at: time(&row, "granted_at")?,
        })
    })
    .transpose()
}

/// Every consent of `principal`, by client id.
pub async fn of_principal(
    conn: &mut impl Conn,
    tenant: TenantId,
    principal: PrincipalId,
) -> Result<Vec<StoredConsent>> {
    let rows = sqlx::query(
        "SELECT client_id, scopes, granted_at FROM oauth_consents \
         WHERE tenant_id = $1 AND principal_id = $2 ORDER BY client_id",
    )
    .bind(tenant.to_string())
    .bind(principal.to_string())
    .fetch_all(conn.conn())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredConsent {
                client_id: row.try_get("client_id")?,
                scopes: json(row, "scopes")?,
                granted_at: time(row, "granted_at")?,
            })
        })
        .collect()
}

/// Records (or widens) a consent.
pub async fn put(
    tx: &mut WriteTx,
    tenant: TenantId,
    principal: PrincipalId,
    consent: &StoredConsent,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_consents (tenant_id, principal_id, client_id, scopes, granted_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, principal_id, client_id) \
         DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
    )
    .bind(tenant.to_string())
    .bind(principal.to_string())
    .bind(&consent.client_id)
    .bind(to_json(&consent.scopes)?)
    .bind(millis(consent.granted_at))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Deletes a consent (or every consent of `principal` when `client_id` is
/// `None`). Returns how many went.
pub async fn delete(
    tx: &mut WriteTx,
    tenant: TenantId,
    principal: PrincipalId,
    client_id: Option<&str>,
) -> Result<u64> {
    let done = match client_id {
        Some(client) => sqlx::query(
            "DELETE FROM oauth_consents WHERE tenant_id = $1 AND principal_id = $2 \
             AND client_id = $3",
        )
        .bind(tenant.to_string())
        .bind(principal.to_string())
        .bind(client),
        None => {
            sqlx::query("DELETE FROM oauth_consents WHERE tenant_id = $1 AND principal_id = $2")
                .bind(tenant.to_string())
                .bind(principal.to_string())
        }
    }
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected())
}
