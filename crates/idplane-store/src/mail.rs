//! The mail outbox (dev mode and tests: mail is written here instead of
//! being sent) and what the email-code use cases need beyond
//! [`crate::credentials`]'s email-code functions.

use idplane_core::{PrincipalId, TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, millis, time};
use crate::{Conn, Result, WriteTx};

/// A mail written to the outbox instead of being sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMail {
    /// A UUID v7.
    pub id: String,
    pub tenant_id: TenantId,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_at: Timestamp,
}

fn outbox_from_row(row: &AnyRow) -> Result<OutboxMail> {
    Ok(OutboxMail {
        id: row.try_get("id")?,
        tenant_id: id(row, "tenant_id")?,
        recipient: row.try_get("recipient")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        created_at: time(row, "created_at")?,
    })
}

/// Writes a mail to the outbox, inside the transaction of the change that
/// sends it.
pub async fn put_outbox(tx: &mut WriteTx, mail: &OutboxMail) -> Result<()> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, tenant_id, recipient, subject, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&mail.id)
    .bind(mail.tenant_id.to_string())
    .bind(&mail.recipient)
    .bind(&mail.subject)
    .bind(&mail.body)
    .bind(millis(mail.created_at))
    .execute(tx.conn())
    .await
    .map_err(|e| crate::StoreError::unique(e, "an outbox mail"))?;
    Ok(())
}

/// The newest `limit` mails of `tenant`, newest first.
pub async fn outbox(conn: &mut impl Conn, tenant: TenantId, limit: u32) -> Result<Vec<OutboxMail>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, recipient, subject, body, created_at FROM mail_outbox \
         WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(tenant.to_string())
    .bind(i64::from(limit))
    .fetch_all(conn.conn())
    .await?;
    rows.iter().map(outbox_from_row).collect()
}

/// Removes the outstanding email code of `principal` only if it is still
/// the one hashing to `code_hash` (a newer code sent meanwhile stays).
/// Returns whether it did.
pub async fn delete_email_code_if(
    tx: &mut WriteTx,
    principal: PrincipalId,
    code_hash: &str,
) -> Result<bool> {
    let done = sqlx::query("DELETE FROM email_codes WHERE principal_id = $1 AND code_hash = $2")
        .bind(principal.to_string())
        .bind(code_hash)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() > 0)
}
