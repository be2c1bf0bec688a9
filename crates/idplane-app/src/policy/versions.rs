//! Policy versions: every change is a new immutable version, validated and
//! tested before it is stored; the active one can be rolled back. The
//! active version is compiled once and kept in memory; a change on this
//! node replaces it at once, other nodes within [`ENGINE_POLL`]: one
//! decision a second per tenant asks which version is active while the
//! others go on with the engine they have.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, PoisonError, RwLock};

use idplane_core::audit::AuditEvent;
use idplane_core::{Ctx, TenantId, Timestamp, ValidationError};
use idplane_store::policies::{self, PolicyVersionInfo, StoredPolicyVersion};
use jiff::SignedDuration;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::bundle::{PolicyBundle, compile};
use super::engine::Engine;
use super::tests;
use crate::watch::Claim;
use crate::{App, AppError, Result};

/// How long another node's policy change may go unseen.
pub const ENGINE_POLL: SignedDuration = SignedDuration::from_secs(1);
/// Longest change message.
const MAX_MESSAGE_LEN: usize = 1_000;

/// The active engine of a tenant (`None`: no version yet), when the
/// active version was last read, and whether a decision reads it now.
#[derive(Clone, Debug)]
struct CachedEngine {
    read_at: Timestamp,
    engine: Option<Arc<Engine>>,
    reading: Arc<AtomicBool>,
}

impl CachedEngine {
    fn new(read_at: Timestamp, engine: Option<Arc<Engine>>) -> Self {
        Self {
            read_at,
            engine,
            reading: Arc::default(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct EngineCache(RwLock<HashMap<TenantId, CachedEngine>>);

/// A stored version with its bundle.
#[derive(Clone, Debug)]
pub struct PolicyVersion {
    pub info: PolicyVersionInfo,
    pub bundle: PolicyBundle,
    pub active: bool,
}

impl App {
    /// Stores `bundle` as the next version and activates it, after it
    /// compiled strictly and every one of its tests passed. Audited.
    pub async fn put_policies(
        &self,
        ctx: &Ctx,
        bundle: PolicyBundle,
        message: &str,
    ) -> Result<PolicyVersionInfo> {
        let message = message.trim();
        if message.is_empty() || message.len() > MAX_MESSAGE_LEN {
            return Err(ValidationError::new(
                "message",
                format!("say what changed and why, in 1 to {MAX_MESSAGE_LEN} bytes"),
            )
            .into());
        }
        let compiled = compile(&bundle).map_err(|e| invalid("policies", &e.to_string()))?;
        let failures = tests::run(&compiled, &bundle.tests);
        if !failures.is_empty() {
            let lines: Vec<String> = failures
                .iter()
                .map(|f| format!("test `{}`: {}", f.name, f.problem))
                .collect();
            return Err(invalid("tests", &lines.join("\n")));
        }
        let text = serde_json::to_string(&bundle)
            .map_err(|e| AppError::Internal(format!("policy bundle: {e}")))?;
        let author = ctx.actor.label();
        let mut tx = self.store().write().await?;
        let version =
            policies::append(&mut tx, ctx.tenant, &text, &author, message, ctx.now).await?;
        policies::activate(&mut tx, ctx.tenant, version, ctx.now).await?;
        tx.commit(
            AuditEvent::new(ctx, "policy.version", Some(format!("policy:{version}"))).with_details(
                json!({
                    "version": version,
                    "message": message,
                    "policies": compiled.policies.policies().policies().count(),
                    "tests": bundle.tests.len(),
                    "sha256": hex::encode(Sha256::digest(text.as_bytes())),
                }),
            ),
        )
        .await?;
        self.install_engine(ctx, Engine::new(version, compiled)?);
        Ok(PolicyVersionInfo {
            version,
            author,
            message: message.to_owned(),
            created_at: ctx.now,
        })
    }

    /// Makes an earlier (or later) version the active one again. It must
    /// still compile against this binary's directory schema. Audited.
    pub async fn activate_policies(&self, ctx: &Ctx, version: i64) -> Result<()> {
        let mut tx = self.store().write().await?;
        let stored = policies::get(&mut tx, ctx.tenant, version)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("policy version {version}")))?;
        let previous = policies::active_number(&mut tx, ctx.tenant).await?;
        let compiled = compile(&parse(&stored)?).map_err(|e| invalid("version", &e.to_string()))?;
        policies::activate(&mut tx, ctx.tenant, version, ctx.now).await?;
        tx.commit(
            AuditEvent::new(ctx, "policy.activate", Some(format!("policy:{version}")))
                .with_details(json!({"version": version, "previous": previous})),
        )
        .await?;
        self.install_engine(ctx, Engine::new(version, compiled)?);
        Ok(())
    }

    /// The newest versions first.
    pub async fn policy_versions(&self, ctx: &Ctx, limit: u32) -> Result<Vec<PolicyVersionInfo>> {
        let mut conn = self.store().read().await?;
        Ok(policies::list(&mut conn, ctx.tenant, limit).await?)
    }

    /// One version (the active one when `version` is `None`).
    pub async fn policy_version(&self, ctx: &Ctx, version: Option<i64>) -> Result<PolicyVersion> {
        let mut conn = self.store().read().await?;
        let active = policies::active_number(&mut conn, ctx.tenant).await?;
        let wanted = version.or(active);
        let stored = match wanted {
            Some(v) => policies::get(&mut conn, ctx.tenant, v).await?,
            None => None,
        };
        let stored = stored.ok_or_else(|| match version {
            Some(v) => AppError::NotFound(format!("policy version {v}")),
            None => AppError::NotFound("an active policy version".to_owned()),
        })?;
        Ok(PolicyVersion {
            bundle: parse(&stored)?,
            active: active == Some(stored.version),
            info: PolicyVersionInfo {
                version: stored.version,
                author: stored.author,
                message: stored.message,
                created_at: stored.created_at,
            },
        })
    }

    /// The active engine, from memory. Once [`ENGINE_POLL`] has passed,
    /// one decision reads which version is active (and compiles it if it
    /// changed) while the others go on with the engine they have.
    pub async fn policy_engine(&self, ctx: &Ctx) -> Result<Option<Arc<Engine>>> {
        let cache = &self.inner.engines.0;
        let cached = cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ctx.tenant)
            .cloned();
        // The flag of the entry this read is over, if any.
        let read_over = cached.as_ref().map(|c| c.reading.clone());
        let _claim = match (&cached, &read_over) {
            (Some(cached), Some(flag)) => {
                if ctx.now < cached.read_at + ENGINE_POLL {
                    return Ok(cached.engine.clone());
                }
                match Claim::take(flag) {
                    Some(claim) => Some(claim),
                    None => return Ok(cached.engine.clone()),
                }
            }
            _ => None,
        };
        let mut conn = self.store().read().await?;
        let active = policies::active_number(&mut conn, ctx.tenant).await?;
        let engine = match (cached.and_then(|c| c.engine), active) {
            // Unchanged elsewhere: keep the compiled engine.
            (Some(engine), Some(v)) if engine.version == v => Some(engine),
            (_, None) => None,
            (_, Some(_)) => {
                let stored = policies::active(&mut conn, ctx.tenant).await?;
                drop(conn);
                match stored {
                    Some(stored) => {
                        let compiled = compile(&parse(&stored)?).map_err(|e| {
                            AppError::Internal(format!(
                                "active policy version {} no longer compiles: {e}",
                                stored.version
                            ))
                        })?;
                        Some(Arc::new(Engine::new(stored.version, compiled)?))
                    }
                    None => None,
                }
            }
        };
        let mut engines = cache.write().unwrap_or_else(PoisonError::into_inner);
        // A version activated on this node while we read was installed
        // with the entry's replacement: it wins over what we read.
        if let Some(now) = engines.get(&ctx.tenant)
            && read_over
                .as_ref()
                .is_none_or(|was| !Arc::ptr_eq(&now.reading, was))
        {
            return Ok(now.engine.clone());
        }
        engines.insert(ctx.tenant, CachedEngine::new(ctx.now, engine.clone()));
        Ok(engine)
    }

    fn install_engine(&self, ctx: &Ctx, engine: Engine) {
        self.inner
            .engines
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                ctx.tenant,
                CachedEngine::new(ctx.now, Some(Arc::new(engine))),
            );
    }
}

fn parse(stored: &StoredPolicyVersion) -> Result<PolicyBundle> {
    serde_json::from_str(&stored.bundle).map_err(|e| {
        AppError::Internal(format!(
            "policy version {} does not parse: {e}",
            stored.version
        ))
    })
}

fn invalid(field: &'static str, why: &str) -> AppError {
    ValidationError::new(field, why).into()
}
