//! Passwords: Argon2id hashing with bounded concurrency, and the NIST SP
//! 800-63B rules.
//!
//! - Length is what counts: at least 15 characters for a password that is
//!   the only factor, 8 when the user also has a second factor (a confirmed
//!   TOTP or a passkey), at most 256; no composition rules.
//! - Passwords are compared after Unicode NFKC normalisation, so the same
//!   password typed on two keyboards verifies.
//! - Common, breached-looking and guessable passwords (zxcvbn score below 3,
//!   with the username and email as context) are refused, saying why.
//! - Oversized input is refused before any hashing: the work per attempt is
//!   bounded.
//! - Unknown users cost the same Argon2 work as known ones (a dummy hash is
//!   verified), so timing does not tell which usernames exist.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHasher, Version};
use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind, name_key};
use idplane_core::{Ctx, PrincipalId, ValidationError};
use idplane_store::credentials::{self, PasswordCredential};
use idplane_store::{Conn, WriteTx, principals};
use serde_json::json;
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use super::hash_workers::{HashWorkers, Memory};
use super::throttle::{self, Keys};
use crate::directory::principals::{load, target};
use crate::{App, AppError, Result};

/// No password input longer than this (in bytes, before normalisation) is
/// ever normalised or hashed.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A fixed salt and output for the dummy hash: verifying anything against
/// it costs the full Argon2 work and never succeeds.
const DUMMY_SALT_B64: &str = "aWRwbGFuZS1kdW1teS1zYWx0";
const DUMMY_OUTPUT_B64: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The outcome of verifying a password against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The password matches.
    pub ok: bool,
    /// The stored hash uses other parameters than the current ones: store a
    /// new hash (only meaningful when `ok`).
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords on a few threads of its own, so that a
/// burst of sign-ins cannot exhaust memory or starve the async runtime.
pub struct Hasher {
    params: Params,
    workers: HashWorkers,
    /// A PHC string with the current parameters that matches no password.
    dummy: String,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .field("threads", &self.workers.threads())
            .field("idle", &self.workers.idle())
            .finish()
    }
}

impl Hasher {
    /// Argon2id with the OWASP parameters (m = 19456 KiB, t = 2, p = 1), one
    /// hashing thread per CPU.
    pub fn owasp() -> Result<Self> {
        // `Params::DEFAULT` is exactly the OWASP recommendation (checked by a
        // test below), and a constant cannot fail to build.
        Self::from_params(Params::DEFAULT, cpus())
    }

    /// A hasher with other Argon2id parameters (memory in KiB, iterations,
    /// lanes) and `max_concurrent` hashing threads.
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        max_concurrent: usize,
    ) -> Result<Self> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| AppError::Internal(format!("argon2 parameters: {e}")))?;
        Self::from_params(params, max_concurrent)
    }

    fn from_params(params: Params, max_concurrent: usize) -> Result<Self> {
        let dummy = format!(
            "$argon2id$v=19$m={},t={},p={}${DUMMY_SALT_B64}${DUMMY_OUTPUT_B64}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        );
        let workers = HashWorkers::start(max_concurrent)
            .map_err(|e| AppError::Internal(format!("starting password hashing threads: {e}")))?;
        Ok(Self {
            params,
            workers,
            dummy,
        })
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Hashes `password` (NFKC-normalised) to a PHC string with a fresh
    /// salt. Input over [`MAX_PASSWORD_BYTES`] is refused unhashed.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = normalize(password)?;
        let params = self.params.clone();
        self.run(move |_| {
            Self::argon2(params)
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
        })
        .await
    }

    /// Verifies `password` (NFKC-normalised) against a stored PHC string.
    /// Input over [`MAX_PASSWORD_BYTES`] never matches and costs no work.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<Verified> {
        let Ok(password) = normalize(password) else {
            return Ok(Verified {
                ok: false,
                needs_rehash: false,
            });
        };
        let parsed = PasswordHash::new(phc)
            .map_err(|e| AppError::Internal(format!("stored password hash is corrupt: {e}")))?;
        let needs_rehash = self.differs(&parsed);
        let ok = self
            .run(move |memory| Ok(matches(memory, password.as_bytes(), &parsed)))
            .await?;
        Ok(Verified { ok, needs_rehash })
    }

    /// Spends the same work as [`Hasher::verify`] without any stored hash:
    /// for unknown users and users without a password.
    pub async fn verify_dummy(&self, password: &str) -> Result<()> {
        self.verify(password, &self.dummy).await.map(|_| ())
    }

    /// Whether a stored hash was made with other parameters than ours.
    fn differs(&self, stored: &PasswordHash) -> bool {
        if stored.algorithm != argon2::ARGON2ID_IDENT || stored.version != Some(0x13) {
            return true;
        }
        let Ok(stored) = Params::try_from(stored) else {
            return true;
        };
        let len = |p: &Params| p.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        stored.m_cost() != self.params.m_cost()
            || stored.t_cost() != self.params.t_cost()
            || stored.p_cost() != self.params.p_cost()
            || len(&stored) != len(&self.params)
    }

    /// Runs `work` on a hashing thread, in its working memory.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.workers
            .run(work)
            .await
            .map_err(|_| AppError::Internal("password hashing failed".into()))?
    }
}

/// Whether `password` hashes to `stored` under the stored hash's own
/// algorithm, version and parameters, computed in the given working memory
/// and compared in constant time. A hash we cannot compute never matches.
fn matches(memory: &mut Memory, password: &[u8], stored: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = stored
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    // Sets the output length to the stored hash's.
    let Ok(params) = Params::try_from(stored) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    memory.resize(blocks, Block::default());
    argon2
        .hash_password_into_with_memory(password, salt.as_ref(), &mut computed, &mut memory[..])
        .is_ok()
        && bool::from(computed.ct_eq(expected.as_bytes()))
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// NFKC form of a password, refusing oversized input before touching it.
fn normalize(password: &str) -> Result<Zeroizing<String>, ValidationError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ValidationError::new(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(Zeroizing::new(password.nfkc().collect()))
}

/// The NIST SP 800-63B password rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length (characters) of a password that is the only factor.
    pub min_len_single_factor: usize,
    /// Minimum length when the user also has a second factor.
    pub min_len_with_mfa: usize,
    /// Maximum length (characters).
    pub max_len: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len_single_factor: 15,
            min_len_with_mfa: 8,
            max_len: 256,
        }
    }
}

impl PasswordPolicy {
    /// The minimum length that applies.
    pub fn min_len(&self, has_second_factor: bool) -> usize {
        if has_second_factor {
            self.min_len_with_mfa
        } else {
            self.min_len_single_factor
        }
    }

    /// Checks a new password. `context` holds what an attacker would try
    /// first (username, email, name); a password built from it is refused.
    /// The message says why a password is refused, never what it was.
    pub fn check(
        &self,
        password: &str,
        has_second_factor: bool,
        context: &[&str],
    ) -> Result<(), ValidationError> {
        let refuse = |message: String| Err(ValidationError::new("password", message));
        let normalized = normalize(password)?;
        let len = normalized.chars().count();
        if len > self.max_len {
            return refuse(format!("must be at most {} characters", self.max_len));
        }
        let min = self.min_len(has_second_factor);
        if len < min {
            return refuse(if has_second_factor {
                format!("must be at least {min} characters")
            } else {
                format!(
                    "must be at least {min} characters ({} with a second factor such as an \
                     authenticator app or a passkey)",
                    self.min_len_with_mfa
                )
            });
        }
        let mut inputs: Vec<&str> = context.iter().copied().filter(|s| !s.is_empty()).collect();
        inputs.push("idplane");
        let estimate = zxcvbn::zxcvbn(&normalized, &inputs);
        if u8::from(estimate.score()) < 3 {
            let why = estimate
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            return refuse(format!(
                "is too easy to guess: it is common, appears in breach lists, or is built from \
                 your name or words that belong together{why}; a passphrase of several \
                 unrelated words works well"
            ));
        }
        Ok(())
    }
}

/// The words an attacker would try first for `p`.
/// Stores a password hash for `user` inside `tx`; returns the audit event.
pub(crate) async fn stage_password(
    tx: &mut WriteTx,
    ctx: &Ctx,
    user: &Principal,
    hash: String,
    temporary: bool,
) -> Result<AuditEvent> {
    credentials::put_password(
        tx,
        &PasswordCredential {
            principal_id: user.id,
            tenant_id: ctx.tenant,
            hash,
            must_change: temporary,
            created_at: ctx.now,
            updated_at: ctx.now,
        },
    )
    .await?;
    Ok(AuditEvent::new(ctx, "password.set", Some(target(user)))
        .with_details(json!({ "temporary": temporary })))
}

fn context_of(p: &Principal) -> Vec<String> {
    let mut words = vec![p.name.clone()];
    if let Some(email) = &p.email {
        words.push(email.clone());
        if let Some((local, _)) = email.split_once('@') {
            words.push(local.to_owned());
        }
    }
    if let Some(display) = &p.display_name {
        words.push(display.clone());
        words.extend(display.split_whitespace().map(str::to_owned));
    }
    words
}

/// Whether `principal` has a second factor: a confirmed TOTP or a passkey.
pub(crate) async fn has_second_factor(
    conn: &mut impl Conn,
    principal: PrincipalId,
) -> Result<bool> {
    let totp = credentials::totp(conn, principal)
        .await?
        .is_some_and(|t| t.confirmed_at.is_some());
    Ok(totp || credentials::passkey_count(conn, principal).await? > 0)
}

/// The first factor of a sign-in, passed.
#[derive(Clone, Debug)]
pub struct PasswordCheck {
    pub principal: Principal,
    /// The password was set by an administrator as temporary: it must be
    /// changed before the sign-in completes.
    pub must_change: bool,
}

/// Why a password check failed (audit only, never told to the caller).
fn failure_reason(
    user: Option<&Principal>,
    has_password: bool,
    ok: bool,
    ctx: &Ctx,
) -> Option<&'static str> {
    match user {
        None => Some("unknown_user"),
        Some(_) if !has_password => Some("no_password"),
        Some(_) if !ok => Some("wrong_password"),
        Some(p) if !p.is_active_at(ctx.now) => Some("inactive"),
        Some(_) => None,
    }
}

impl App {
    /// Sets a user's password (by an administrator, or by the user at the
    /// end of a sign-in with a temporary password). `temporary` makes the
    /// user change it at the next sign-in.
    pub async fn set_password(
        &self,
        ctx: &Ctx,
        user: PrincipalId,
        password: &str,
        temporary: bool,
    ) -> Result<()> {
        let mut conn = self.store().read().await?;
        let p = load(&mut conn, ctx, PrincipalKind::User, user).await?;
        let mfa = has_second_factor(&mut conn, user).await?;
        drop(conn);
        let hash = self.hash_new_password(ctx, &p, password, mfa).await?;
        let mut tx = self.store().write().await?;
        // Still there (the foreign key would refuse it otherwise, less kindly).
        load(&mut tx, ctx, PrincipalKind::User, user).await?;
        let event = stage_password(&mut tx, ctx, &p, hash, temporary).await?;
        tx.commit(event).await?;
        Ok(())
    }

    /// Checks a new password for `user` against the tenant's policy and
    /// hashes it (slow: call it before opening a transaction).
    pub(crate) async fn hash_new_password(
        &self,
        ctx: &Ctx,
        user: &Principal,
        password: &str,
        has_mfa: bool,
    ) -> Result<String> {
        let context = context_of(user);
        let context: Vec<&str> = context.iter().map(String::as_str).collect();
        self.auth_policy(ctx)
            .await?
            .password_policy()
            .check(password, has_mfa, &context)?;
        self.hasher().hash(password).await
    }

    /// Whether the user has a password.
    pub async fn has_password(&self, ctx: &Ctx, user: PrincipalId) -> Result<bool> {
        let mut conn = self.store().read().await?;
        load(&mut conn, ctx, PrincipalKind::User, user).await?;
        Ok(credentials::password(&mut conn, user).await?.is_some())
    }

    /// Changes the user's own password, proving the current one. A wrong
    /// current password is audited and throttled like a failed sign-in.
    pub async fn change_password(
        &self,
        ctx: &Ctx,
        user: PrincipalId,
        current: &str,
        new: &str,
    ) -> Result<()> {
        let mut conn = self.store().read().await?;
        let p = load(&mut conn, ctx, PrincipalKind::User, user).await?;
        let stored = credentials::password(&mut conn, user).await?;
        let mfa = has_second_factor(&mut conn, user).await?;
        let keys = Keys::password(ctx, &name_key(&p.name));
        self.throttle_gate(&mut conn, ctx, &keys, "password.change", Some(&p))
            .await?;
        drop(conn);
        let context = context_of(&p);
        let context: Vec<&str> = context.iter().map(String::as_str).collect();
        self.auth_policy(ctx)
            .await?
            .password_policy()
            .check(new, mfa, &context)?;
        let ok = match &stored {
            Some(c) => self.hasher().verify(current, &c.hash).await?.ok,
            None => {
                self.hasher().verify_dummy(current).await?;
                false
            }
        };
        if let Some(reason) = failure_reason(Some(&p), stored.is_some(), ok, ctx) {
            let mut tx = self.store().write().await?;
            throttle::record_failure(&mut tx, ctx, &keys).await?;
            tx.commit(
                AuditEvent::new(ctx, "password.change", Some(target(&p)))
                    .with_details(json!({ "reason": reason }))
                    .failed(),
            )
            .await?;
            return Err(AppError::Unauthenticated);
        }
        let hash = self.hasher().hash(new).await?;
        let mut tx = self.store().write().await?;
        credentials::put_password(
            &mut tx,
            &PasswordCredential {
                principal_id: user,
                tenant_id: ctx.tenant,
                hash,
                must_change: false,
                created_at: ctx.now,
                updated_at: ctx.now,
            },
        )
        .await?;
        throttle::record_success(&mut tx, &keys).await?;
        tx.commit(AuditEvent::new(ctx, "password.change", Some(target(&p))))
            .await?;
        Ok(())
    }

    /// The first factor of a sign-in: `username` in the context's tenant
    /// and its password. Every kind of failure (unknown user, no password,
    /// wrong password, user not active) is [`AppError::Unauthenticated`]
    /// after the same Argon2 work; the reason goes to the audit log only.
    /// Too many failures for the account or from the source address give
    /// [`AppError::TooManyAttempts`] before any hashing.
    pub async fn check_password(
        &self,
        ctx: &Ctx,
        username: &str,
        password: &str,
    ) -> Result<PasswordCheck> {
        // Nobody's name is longer than this; a longer input costs no more.
        let typed: String = username
            .trim()
            .chars()
            .take(idplane_core::directory::MAX_NAME_LEN)
            .collect();
        let key = name_key(&typed);
        let keys = Keys::password(ctx, &key);
        let mut conn = self.store().read().await?;
        let user = principals::by_name(&mut conn, ctx.tenant, PrincipalKind::User, &key).await?;
        self.throttle_gate(&mut conn, ctx, &keys, "password", user.as_ref())
            .await?;
        let stored = match &user {
            Some(u) => credentials::password(&mut conn, u.id).await?,
            None => None,
        };
        let failures_to_clear = throttle::has_failures(&mut conn, &keys).await?;
        drop(conn);
        let verified = match &stored {
            Some(c) => self.hasher().verify(password, &c.hash).await?,
            None => {
                self.hasher().verify_dummy(password).await?;
                Verified {
                    ok: false,
                    needs_rehash: false,
                }
            }
        };
        let reason = failure_reason(user.as_ref(), stored.is_some(), verified.ok, ctx);
        let (Some(user), Some(stored), None) = (user.clone(), stored, reason) else {
            let mut tx = self.store().write().await?;
            throttle::record_failure(&mut tx, ctx, &keys).await?;
            tx.commit(
                AuditEvent::new(ctx, "auth.password", user.as_ref().map(target))
                    .with_details(json!({ "reason": reason }))
                    .failed(),
            )
            .await?;
            return Err(AppError::Unauthenticated);
        };
        let rehash = if verified.needs_rehash {
            Some(self.hasher().hash(password).await?)
        } else {
            None
        };
        if rehash.is_none() && !failures_to_clear {
            // Nothing to write but the event: the group-commit writer shares
            // one durable commit among concurrent sign-ins.
            self.record(
                AuditEvent::new(ctx, "auth.password", Some(target(&user)))
                    .with_details(json!({ "rehashed": false })),
            )
            .await?;
            return Ok(PasswordCheck {
                principal: user,
                must_change: stored.must_change,
            });
        }
        let mut tx = self.store().write().await?;
        let mut rehashed = false;
        if let Some(new_hash) = &rehash {
            rehashed =
                credentials::rehash_password(&mut tx, user.id, &stored.hash, new_hash).await?;
        }
        throttle::record_success(&mut tx, &keys).await?;
        tx.commit(
            AuditEvent::new(ctx, "auth.password", Some(target(&user)))
                .with_details(json!({ "rehashed": rehashed })),
        )
        .await?;
        Ok(PasswordCheck {
            principal: user,
            must_change: stored.must_change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_parameters_are_owasps() {
        let h = Hasher::owasp().unwrap();
        assert_eq!(
            (h.params.m_cost(), h.params.t_cost(), h.params.p_cost()),
            (19_456, 2, 1)
        );
        assert!(PasswordHash::new(&h.dummy).is_ok());
        assert!(!h.differs(&PasswordHash::new(&h.dummy).unwrap()));
    }

    #[tokio::test]
    async fn hashes_verify_and_report_other_parameters() {
        let cheap = Hasher::new(64, 1, 1, 2).unwrap();
        let phc = cheap.hash("correct horse battery staple").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let v = cheap
            .verify("correct horse battery staple", &phc)
            .await
            .unwrap();
        assert_eq!(
            v,
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(
            !cheap
                .verify("correct horse battery stapl", &phc)
                .await
                .unwrap()
                .ok
        );
        let other = Hasher::new(128, 1, 1, 2).unwrap();
        let v = other
            .verify("correct horse battery staple", &phc)
            .await
            .unwrap();
        assert!(v.ok && v.needs_rehash);
        assert!(cheap.verify_dummy("anything").await.is_ok());
        assert!(!cheap.verify(&"x".repeat(2000), &phc).await.unwrap().ok);
        assert!(cheap.hash(&"x".repeat(2000)).await.is_err());
    }

    /// Verification in reused working memory agrees with the crate's own,
    /// whatever algorithm, version and parameters a stored hash was made
    /// with, and through buffers left by other parameters.
    #[test]
    fn verification_in_reused_memory_agrees_with_the_crates() {
        use argon2::PasswordVerifier;
        let mut memory = Memory::new();
        let salt = b"sixteen byte salt";
        for (algorithm, version, m, t, p) in [
            (Algorithm::Argon2id, Version::V0x13, 64, 1, 1),
            (Algorithm::Argon2id, Version::V0x13, 256, 3, 2),
            (Algorithm::Argon2i, Version::V0x10, 128, 2, 1),
            (Algorithm::Argon2d, Version::V0x13, 96, 1, 3),
        ] {
            let params = Params::new(m, t, p, Some(24)).unwrap();
            let argon2 = Argon2::new(algorithm, version, params);
            let phc = argon2
                .hash_password_with_salt(b"correct horse", salt)
                .unwrap()
                .to_string();
            let stored = PasswordHash::new(&phc).unwrap();
            for attempt in [&b"correct horse"[..], b"correct hors", b""] {
                let theirs = argon2.verify_password(attempt, &stored).is_ok();
                assert_eq!(matches(&mut memory, attempt, &stored), theirs, "{phc}");
                assert_eq!(theirs, attempt == b"correct horse");
            }
        }
        let without_output =
            PasswordHash::new("$argon2id$v=19$m=64,t=1,p=1$c2l4dGVlbiBieXRlIHNhbHQ").unwrap();
        assert!(!matches(&mut memory, b"", &without_output));
    }

    #[test]
    fn policy_counts_characters_and_refuses_guessable_passwords() {
        let policy = PasswordPolicy::default();
        // 15 characters of which many are multi-byte: length is in characters.
        assert!(policy.check("ünïcödé-ßträßé!", false, &[]).is_ok());
        assert!(policy.check("short", false, &[]).is_err());
        let err = policy.check("password123456789", false, &[]).unwrap_err();
        assert!(err.message.contains("too easy to guess"), "{err}");
        let err = policy
            .check("alice.wonderland1", false, &["alice.wonderland"])
            .unwrap_err();
        assert!(err.message.contains("too easy to guess"), "{err}");
    }
}
