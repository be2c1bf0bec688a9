//! Passwords, TOTP enrollments, recovery codes, email codes and sign-in
//! throttling. Nothing here holds a secret in the clear: password hashes are
//! Argon2id PHC strings, TOTP secrets are sealed by the caller, codes are
//! stored as hashes.

use idplane_core::{PrincipalId, TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{id, millis, opt_millis, opt_time, time};
use crate::{Conn, Result, WriteTx};

// ---------------------------------------------------------------------------
// Passwords

/// A user's password.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordCredential {
    pub principal_id: PrincipalId,
    pub tenant_id: TenantId,
    /// Argon2id PHC string.
    pub hash: String,
    /// The password was set by an administrator and must be changed at the
    /// next sign-in.
    pub must_change: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for PasswordCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCredential")
            .field("principal_id", &self.principal_id)
            .field("tenant_id", &self.tenant_id)
            .field("hash", &"<redacted>")
            .field("must_change", &self.must_change)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

macro_rules! password_columns {
    () => {
        "principal_id, tenant_id, hash, must_change, created_at, updated_at"
    };
}

fn password_from_row(row: &AnyRow) -> Result<PasswordCredential> {
    let must_change: i64 = row.try_get("must_change")?;
    Ok(PasswordCredential {
        principal_id: id(row, "principal_id")?,
        tenant_id: id(row, "tenant_id")?,
        hash: row.try_get("hash")?,
        must_change: must_change != 0,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// The password of `principal`, if one is set.
pub async fn password(
    conn: &mut impl Conn,
    principal: PrincipalId,
) -> Result<Option<PasswordCredential>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        password_columns!(),
        " FROM password_credentials WHERE principal_id = $1"
    ))
    .bind(principal.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(password_from_row).transpose()
}

/// Sets a password, replacing any earlier one (its `created_at` is kept).
pub async fn put_password(tx: &mut WriteTx, c: &PasswordCredential) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO password_credentials (",
        password_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (principal_id) DO UPDATE SET hash = excluded.hash, \
         must_change = excluded.must_change, updated_at = excluded.updated_at"
    ))
    .bind(c.principal_id.to_string())
    .bind(c.tenant_id.to_string())
    .bind(&c.hash)
    .bind(i64::from(c.must_change))
    .bind(millis(c.created_at))
    .bind(millis(c.updated_at))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Replaces the hash of an unchanged password (a rehash with new
/// parameters), only if the stored hash is still `old_hash`; keeps
/// `must_change`. Returns whether it changed.
pub async fn rehash_password(
    tx: &mut WriteTx,
    principal: PrincipalId,
    old_hash: &str,
    new_hash: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE password_credentials SET hash = $1 WHERE principal_id = $2 AND hash = $3",
    )
    .bind(new_hash)
    .bind(principal.to_string())
    .bind(old_hash)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes the password of `principal`. Returns whether there was one.
pub async fn delete_password(tx: &mut WriteTx, principal: PrincipalId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM password_credentials WHERE principal_id = $1")
        .bind(principal.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() > 0)
}

// ---------------------------------------------------------------------------
// TOTP

/// A user's TOTP enrollment (at most one).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCredential {
    pub principal_id: PrincipalId,
    pub tenant_id: TenantId,
    /// Changes with every enrollment; the sealed secret is bound to it.
    pub id: String,
    /// The secret, sealed under the root key.
    pub sealed_secret: String,
    /// `None` while the enrollment waits for its first code.
    pub confirmed_at: Option<Timestamp>,
    /// The newest time step accepted; no step up to it is accepted again.
    pub last_used_step: Option<i64>,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for TotpCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpCredential")
            .field("principal_id", &self.principal_id)
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("sealed_secret", &"<redacted>")
            .field("confirmed_at", &self.confirmed_at)
            .field("last_used_step", &self.last_used_step)
            .field("created_at", &self.created_at)
            .finish()
    }
}

macro_rules! totp_columns {
    () => {
        "principal_id, tenant_id, id, sealed_secret, confirmed_at, last_used_step, created_at"
    };
}

fn totp_from_row(row: &AnyRow) -> Result<TotpCredential> {
    Ok(TotpCredential {
        principal_id: id(row, "principal_id")?,
        tenant_id: id(row, "tenant_id")?,
        id: row.try_get("id")?,
        sealed_secret: row.try_get("sealed_secret")?,
        confirmed_at: opt_time(row, "confirmed_at")?,
        last_used_step: row.try_get("last_used_step")?,
        created_at: time(row, "created_at")?,
    })
}

/// The TOTP enrollment of `principal`, confirmed or not.
pub async fn totp(conn: &mut impl Conn, principal: PrincipalId) -> Result<Option<TotpCredential>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        totp_columns!(),
        " FROM totp_credentials WHERE principal_id = $1"
    ))
    .bind(principal.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.as_ref().map(totp_from_row).transpose()
}

/// Stores an enrollment, replacing the user's earlier one entirely.
pub async fn put_totp(tx: &mut WriteTx, c: &TotpCredential) -> Result<()> {
    sqlx::query(concat!(
        "INSERT INTO totp_credentials (",
        totp_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (principal_id) DO UPDATE SET tenant_id = excluded.tenant_id, \
         id = excluded.id, sealed_secret = excluded.sealed_secret, \
         confirmed_at = excluded.confirmed_at, last_used_step = excluded.last_used_step, \
         created_at = excluded.created_at"
    ))
    .bind(c.principal_id.to_string())
    .bind(c.tenant_id.to_string())
    .bind(&c.id)
    .bind(&c.sealed_secret)
    .bind(opt_millis(c.confirmed_at))
    .bind(c.last_used_step)
    .bind(millis(c.created_at))
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Confirms the unconfirmed enrollment `enrollment` of `principal` with the
/// code of `step`. Returns whether it changed (false: another enrollment,
/// or already confirmed).
pub async fn confirm_totp(
    tx: &mut WriteTx,
    principal: PrincipalId,
    enrollment: &str,
    at: Timestamp,
    step: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE totp_credentials SET confirmed_at = $1, last_used_step = $2 \
         WHERE principal_id = $3 AND id = $4 AND confirmed_at IS NULL",
    )
    .bind(millis(at))
    .bind(step)
    .bind(principal.to_string())
    .bind(enrollment)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks `step` used for the enrollment `enrollment`, only if it is newer
/// than every step used before: of two concurrent uses of one code, one
/// wins. Returns whether it did.
pub async fn use_totp_step(
    tx: &mut WriteTx,
    principal: PrincipalId,
    enrollment: &str,
    step: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE totp_credentials SET last_used_step = $1 \
         WHERE principal_id = $2 AND id = $3 AND confirmed_at IS NOT NULL \
         AND (last_used_step IS NULL OR last_used_step < $1)",
    )
    .bind(step)
    .bind(principal.to_string())
    .bind(enrollment)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes the TOTP enrollment of `principal`. Returns whether there was one.
pub async fn delete_totp(tx: &mut WriteTx, principal: PrincipalId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM totp_credentials WHERE principal_id = $1")
        .bind(principal.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() > 0)
}

// ---------------------------------------------------------------------------
// Recovery codes

/// Replaces every recovery code of `principal` with `hashes`.
pub async fn replace_recovery_codes(
    tx: &mut WriteTx,
    principal: PrincipalId,
    hashes: &[String],
    at: Timestamp,
) -> Result<()> {
    delete_recovery_codes(tx, principal).await?;
    for hash in hashes {
        sqlx::query(
            "INSERT INTO recovery_codes (principal_id, code_hash, used_at, created_at) \
             VALUES ($1, $2, NULL, $3)",
        )
        .bind(principal.to_string())
        .bind(hash)
        .bind(millis(at))
        .execute(tx.conn())
        .await
        .map_err(|e| crate::StoreError::unique(e, "a recovery code"))?;
    }
    Ok(())
}

/// Spends the unused code of `principal` that hashes to `hash`. Returns
/// whether there was one (a code works once).
pub async fn use_recovery_code(
    tx: &mut WriteTx,
    principal: PrincipalId,
    hash: &str,
    at: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE recovery_codes SET used_at = $1 \
         WHERE principal_id = $2 AND code_hash = $3 AND used_at IS NULL",
    )
    .bind(millis(at))
    .bind(principal.to_string())
    .bind(hash)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many unused recovery codes `principal` has.
pub async fn recovery_codes_left(conn: &mut impl Conn, principal: PrincipalId) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM recovery_codes WHERE principal_id = $1 AND used_at IS NULL",
    )
    .bind(principal.to_string())
    .fetch_one(conn.conn())
    .await?;
    Ok(row.try_get("n")?)
}

/// Removes every recovery code of `principal`; returns how many.
pub async fn delete_recovery_codes(tx: &mut WriteTx, principal: PrincipalId) -> Result<u64> {
    let done = sqlx::query("DELETE FROM recovery_codes WHERE principal_id = $1")
        .bind(principal.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected())
}

// ---------------------------------------------------------------------------
// Email codes

/// A one-time code sent by email (at most one outstanding per user).
#[derive(Clone, PartialEq, Eq)]
pub struct EmailCode {
    pub principal_id: PrincipalId,
    pub code_hash: String,
    pub expires_at: Timestamp,
    /// Wrong guesses so far.
    pub attempts: i64,
}

impl std::fmt::Debug for EmailCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailCode")
            .field("principal_id", &self.principal_id)
            .field("code_hash", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// Stores an email code, replacing the user's outstanding one.
pub async fn put_email_code(tx: &mut WriteTx, c: &EmailCode) -> Result<()> {
    sqlx::query(
        "INSERT INTO email_codes (principal_id, code_hash, expires_at, attempts) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (principal_id) DO UPDATE SET code_hash = excluded.code_hash, \
         expires_at = excluded.expires_at, attempts = excluded.attempts",
    )
    .bind(c.principal_id.to_string())
    .bind(&c.code_hash)
    .bind(millis(c.expires_at))
    .bind(c.attempts)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The outstanding email code of `principal` (expired or not: compare
/// `expires_at` with now).
pub async fn email_code(conn: &mut impl Conn, principal: PrincipalId) -> Result<Option<EmailCode>> {
    let row = sqlx::query(
        "SELECT principal_id, code_hash, expires_at, attempts FROM email_codes \
         WHERE principal_id = $1",
    )
    .bind(principal.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.map(|row| {
        Ok(EmailCode {
            principal_id: id(&row, "principal_id")?,
            code_hash: row.try_get("code_hash")?,
            expires_at: time(&row, "expires_at")?,
            attempts: row.try_get("attempts")?,
        })
    })
    .transpose()
}

/// Counts a wrong guess against the outstanding email code; returns the
/// attempts so far, or `None` when there is no code.
pub async fn count_email_code_attempt(
    tx: &mut WriteTx,
    principal: PrincipalId,
) -> Result<Option<i64>> {
    let row = sqlx::query(
        "UPDATE email_codes SET attempts = attempts + 1 WHERE principal_id = $1 \
         RETURNING attempts",
    )
    .bind(principal.to_string())
    .fetch_optional(tx.conn())
    .await?;
    Ok(row.map(|r| r.try_get("attempts")).transpose()?)
}

/// Removes the outstanding email code of `principal`. Returns whether there
/// was one.
pub async fn delete_email_code(tx: &mut WriteTx, principal: PrincipalId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM email_codes WHERE principal_id = $1")
        .bind(principal.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() > 0)
}

// ---------------------------------------------------------------------------
// Passkeys (only what the credential use cases need: the passkey module
// owns the rest)

/// How many passkeys `principal` has.
pub async fn passkey_count(conn: &mut impl Conn, principal: PrincipalId) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM passkeys WHERE principal_id = $1")
        .bind(principal.to_string())
        .fetch_one(conn.conn())
        .await?;
    Ok(row.try_get("n")?)
}

/// Removes every passkey of `principal`; returns how many.
pub async fn delete_passkeys(tx: &mut WriteTx, principal: PrincipalId) -> Result<u64> {
    let done = sqlx::query("DELETE FROM passkeys WHERE principal_id = $1")
        .bind(principal.to_string())
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected())
}

// ---------------------------------------------------------------------------
// Sign-in throttling

/// Failed attempts under one key (an account, a source address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttle {
    pub key: String,
    /// Failures since the counter last started.
    pub failures: i64,
    pub last_failure_at: Timestamp,
    /// No attempt under this key is made before this instant.
    pub blocked_until: Timestamp,
}

fn throttle_from_row(row: &AnyRow) -> Result<Throttle> {
    Ok(Throttle {
        key: row.try_get("key")?,
        failures: row.try_get("failures")?,
        last_failure_at: time(row, "last_failure_at")?,
        blocked_until: time(row, "blocked_until")?,
    })
}

/// The throttle state of each of `keys` that has one.
pub async fn throttles(conn: &mut impl Conn, keys: &[&str]) -> Result<Vec<Throttle>> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let row = sqlx::query(
            "SELECT key, failures, last_failure_at, blocked_until FROM auth_throttle \
             WHERE key = $1",
        )
        .bind(*key)
        .fetch_optional(conn.conn())
        .await?;
        if let Some(row) = row {
            out.push(throttle_from_row(&row)?);
        }
    }
    Ok(out)
}

/// Counts one failure under `key` at `at`, atomically (concurrent failures
/// all count). A counter whose last failure is before `forget_before`
/// starts again at one. Returns the failures counted so far.
pub async fn count_failure(
    tx: &mut WriteTx,
    key: &str,
    at: Timestamp,
    forget_before: Timestamp,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO auth_throttle (key, failures, last_failure_at, blocked_until) \
         VALUES ($1, 1, $2, 0) \
         ON CONFLICT (key) DO UPDATE SET \
         failures = CASE WHEN auth_throttle.last_failure_at < $3 THEN 1 \
                         ELSE auth_throttle.failures + 1 END, \
         last_failure_at = excluded.last_failure_at \
         RETURNING failures",
    )
    .bind(key)
    .bind(millis(at))
    .bind(millis(forget_before))
    .fetch_one(tx.conn())
    .await?;
    Ok(row.try_get("failures")?)
}

/// Blocks `key` until `until` (never shortening a longer block).
pub async fn block(tx: &mut WriteTx, key: &str, until: Timestamp) -> Result<()> {
    sqlx::query(
        "UPDATE auth_throttle SET blocked_until = $1 WHERE key = $2 AND blocked_until < $1",
    )
    .bind(millis(until))
    .bind(key)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Forgets every failure under `key`. Returns whether there were any.
pub async fn clear_throttle(tx: &mut WriteTx, key: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM auth_throttle WHERE key = $1")
        .bind(key)
        .execute(tx.conn())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes counters whose last failure is before `before` and that block
/// nothing any more (clean-up; they would restart at one anyway). Returns
/// how many.
pub async fn purge_throttles(tx: &mut WriteTx, before: Timestamp) -> Result<u64> {
    let done =
        sqlx::query("DELETE FROM auth_throttle WHERE last_failure_at < $1 AND blocked_until < $1")
            .bind(millis(before))
            .execute(tx.conn())
            .await?;
    Ok(done.rows_affected())
}
