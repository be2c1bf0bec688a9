//! Per-tenant authentication policy: who must use a second factor, and who
//! must use a phishing-resistant one (holders of privileged roles).

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, name_key};
use idplane_core::{Ctx, ValidationError};
use idplane_store::{principals, settings};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::sessions::acr;
use crate::{App, AppError, Result};

/// A tenant's authentication policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuthPolicy {
    /// Everyone in the tenant needs a second factor.
    pub require_mfa: bool,
    /// Members (direct or nested) of these groups need a second factor.
    pub require_mfa_groups: Vec<String>,
    /// Holders of these roles (directly or through groups) need a
    /// phishing-resistant factor: a passkey.
    pub phishing_resistant_roles: Vec<String>,
    /// People without an authenticator app get a one-time code by email
    /// as their second factor.
    pub email_codes: bool,
}

/// How strongly a person must authenticate, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    SingleFactor,
    MultiFactor,
    PhishingResistant,
}

impl Level {
    /// Whether a session of class `acr` meets this level.
    pub fn met_by(self, session_acr: &str) -> bool {
        let reached = match session_acr {
            acr::PHISHING_RESISTANT => Level::PhishingResistant,
            acr::MULTI_FACTOR => Level::MultiFactor,
            _ => Level::SingleFactor,
        };
        reached >= self
    }
}

impl App {
    /// The tenant's policy (the default, which asks nothing extra, if unset).
    pub async fn auth_policy(&self, ctx: &Ctx) -> Result<AuthPolicy> {
        let mut conn = self.store().read().await?;
        match settings::auth_settings(&mut conn, ctx.tenant).await? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| AppError::Internal(format!("auth policy: {e}"))),
            None => Ok(AuthPolicy::default()),
        }
    }

    /// Replaces the tenant's policy. Named groups and roles must exist.
    pub async fn set_auth_policy(&self, ctx: &Ctx, policy: AuthPolicy) -> Result<AuthPolicy> {
        let mut tx = self.store().write().await?;
        for group in &policy.require_mfa_groups {
            let key = name_key(group);
            if principals::by_name(
                &mut tx,
                ctx.tenant,
                idplane_core::directory::PrincipalKind::Group,
                &key,
            )
            .await?
            .is_none()
            {
                return Err(ValidationError::new(
                    "require_mfa_groups",
                    format!("no group `{group}`"),
                )
                .into());
            }
        }
        for role in &policy.phishing_resistant_roles {
            if idplane_store::roles::by_name(&mut tx, ctx.tenant, &name_key(role))
                .await?
                .is_none()
            {
                return Err(ValidationError::new(
                    "phishing_resistant_roles",
                    format!("no role `{role}`"),
                )
                .into());
            }
        }
        let text = serde_json::to_string(&policy).map_err(|e| AppError::Internal(e.to_string()))?;
        settings::put_auth_settings(&mut tx, ctx.tenant, &text, ctx.now).await?;
        let event = AuditEvent::new(
            ctx,
            "auth.policy.update",
            Some(format!("tenant:{}", ctx.tenant)),
        )
        .with_details(json!({"policy": policy}));
        tx.commit(event).await?;
        Ok(policy)
    }

    /// The level `principal` must reach, given the policy and what they
    /// hold right now.
    pub async fn required_level(&self, ctx: &Ctx, principal: &Principal) -> Result<Level> {
        let policy = self.auth_policy(ctx).await?;
        if policy == AuthPolicy::default() {
            return Ok(Level::SingleFactor);
        }
        let access = self.access(ctx, principal.id).await?;
        let holds = |wanted: &[String]| {
            access
                .roles
                .iter()
                .any(|r| wanted.iter().any(|w| name_key(w) == name_key(&r.role_name)))
        };
        if holds(&policy.phishing_resistant_roles) {
            return Ok(Level::PhishingResistant);
        }
        if policy.require_mfa {
            return Ok(Level::MultiFactor);
        }
        let mut conn = self.store().read().await?;
        for group in &access.groups {
            if let Some(g) = principals::by_id(&mut conn, ctx.tenant, *group).await?
                && policy
                    .require_mfa_groups
                    .iter()
                    .any(|w| name_key(w) == name_key(&g.name))
            {
                return Ok(Level::MultiFactor);
            }
        }
        Ok(Level::SingleFactor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_met_by_equal_or_stronger_sessions() {
        assert!(Level::SingleFactor.met_by(acr::SINGLE_FACTOR));
        assert!(Level::MultiFactor.met_by(acr::PHISHING_RESISTANT));
        assert!(!Level::MultiFactor.met_by(acr::SINGLE_FACTOR));
        assert!(!Level::PhishingResistant.met_by(acr::MULTI_FACTOR));
    }
}
