//! idplane use cases.
//!
//! Every state change is one [`App`] method that opens a write transaction,
//! checks the rules, writes, and commits together with the audit event that
//! describes it. Nothing here knows about HTTP; the server translates wire
//! formats into these calls and [`AppError`] into each protocol's errors.

pub mod audit;
pub mod authn;
pub mod directory;
pub mod error;
pub mod field;
pub mod jobs;
pub mod keyring;
pub mod lifecycle;
pub mod oidc;
pub mod outbound;
pub mod policy;
pub mod provisioning;
pub mod registry;
pub mod scim;
pub mod tokens;
mod watch;

use std::sync::Arc;

use idplane_core::{Actor, Clock, Ctx, RequestMeta, TenantId};
use idplane_store::Store;

pub use error::{AppError, Result};
pub use field::Field;

use crate::audit::AuditWriter;
use crate::keyring::Keyring;

/// The name of the tenant created on first start.
pub const DEFAULT_TENANT: &str = "default";

/// The application: the store, the clock, the keyring and the audit writer.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    keyring: Keyring,
    audit: AuditWriter,
    settings: AppSettings,
    hasher: authn::password::Hasher,
    signing_keys: oidc::keys::KeyCache,
    revoked_jtis: oidc::tokens::RevokedJtis,
    revocations: watch::GenerationWatch,
    verified_jwts: oidc::tokens::VerifiedJwts,
    clients: oidc::client_auth::ClientCache,
    resources: oidc::resources::ResourceCache,
    client_jwks: oidc::assertion::JwksCache,
    engines: policy::versions::EngineCache,
    projections: policy::entities::ProjectionCache,
    pdp_tokens: tokens::PdpTokenCache,
    registry: registry::RegistryWatch,
}

/// Deployment settings the use cases need.
#[derive(Clone, Debug)]
pub struct AppSettings {
    /// The public base URL of the default tenant, e.g. `https://id.example.com`.
    /// Its host is the WebAuthn relying party id; the URL is the origin.
    pub issuer: String,
    /// Where mail goes: the outbox (dev mode, tests, no SMTP configured) or SMTP.
    pub mailer: authn::email::Mailer,
    /// Argon2id parameters `(memory KiB, iterations, lanes)`; `None` for
    /// OWASP's (19456, 2, 1). Stored hashes are upgraded at the next sign-in.
    pub password_hashing: Option<(u32, u32, u32)>,
}

impl Default for AppSettings {
    fn default() -> Self {
        Self {
            issuer: "http://localhost:8080".to_owned(),
            mailer: authn::email::Mailer::Outbox,
            password_hashing: None,
        }
    }
}

impl App {
    /// Builds the application over an opened store and makes sure the
    /// default tenant, the audit signing key and the token signing keys exist.
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        keyring: Keyring,
        settings: AppSettings,
    ) -> Result<Self> {
        let hasher = match settings.password_hashing {
            Some((memory, iterations, lanes)) => {
                let cores =
                    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
                authn::password::Hasher::new(memory, iterations, lanes, cores)?
            }
            None => authn::password::Hasher::owasp()?,
        };
        let audit = AuditWriter::start(store.clone())?;
        let app = Self {
            inner: Arc::new(Inner {
                store,
                clock,
                keyring,
                audit,
                settings,
                hasher,
                signing_keys: Default::default(),
                revoked_jtis: Default::default(),
                revocations: Default::default(),
                verified_jwts: Default::default(),
                clients: Default::default(),
                resources: Default::default(),
                client_jwks: Default::default(),
                engines: Default::default(),
                projections: Default::default(),
                pdp_tokens: Default::default(),
                registry: Default::default(),
            }),
        };
        app.ensure_default_tenant().await?;
        app.ensure_signing_key().await?;
        app.ensure_token_signing_keys().await?;
        app.reload_revoked_tokens().await?;
        Ok(app)
    }

    /// The store, for readiness checks and offline tools.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The injected clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// Deployment settings.
    pub fn settings(&self) -> &AppSettings {
        &self.inner.settings
    }

    /// The password hasher (bounded concurrency).
    pub fn hasher(&self) -> &authn::password::Hasher {
        &self.inner.hasher
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// The group-commit audit writer.
    pub fn audit_writer(&self) -> &AuditWriter {
        &self.inner.audit
    }

    /// A context for `actor` acting in `tenant` now. Time is kept to the
    /// millisecond, the precision the store keeps.
    pub fn ctx(&self, tenant: TenantId, actor: Actor, request: RequestMeta) -> Ctx {
        let now = self.inner.clock.now();
        Ctx {
            tenant,
            actor,
            now: idplane_core::Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now),
            request,
        }
    }

    /// Waits until queued audit events are durable and stops the writer.
    pub async fn shutdown(&self) {
        self.inner.audit.flush().await;
        self.inner.store.close().await;
    }
}
