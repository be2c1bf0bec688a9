//! Per-tenant authentication policy: who must use a second factor, and who
//! must use a phishing-resistant one (holders of privileged roles).

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, name_key};
use idplane_core::{Ctx, ValidationError};
use idplane_store::{principals, settings};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use jiff::SignedDuration;

use super::password::PasswordPolicy;
use super::sessions::{DEFAULT_ABSOLUTE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, acr};
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
    /// Shortest password when it is the only factor (default 15, NIST SP
    /// 800-63B; at least 8).
    pub password_min_length: Option<usize>,
    /// Shortest password for people with a second factor (default 8).
    pub password_min_length_with_mfa: Option<usize>,
    /// Minutes without activity after which a session ends (default 30).
    pub session_idle_minutes: Option<u32>,
    /// Hours after sign-in after which a session ends (default 12).
    pub session_absolute_hours: Option<u32>,
    /// Every client must push its authorization requests (RFC 9126).
    pub require_pushed_authorization_requests: bool,
}

impl AuthPolicy {
    /// The password rules this policy sets.
    pub fn password_policy(&self) -> PasswordPolicy {
        let default = PasswordPolicy::default();
        PasswordPolicy {
            min_len_single_factor: self
                .password_min_length
                .unwrap_or(default.min_len_single_factor),
            min_len_with_mfa: self
                .password_min_length_with_mfa
                .unwrap_or(default.min_len_with_mfa),
            ..default
        }
    }

    /// How long a session may stay idle.
    pub fn idle_timeout(&self) -> SignedDuration {
        self.session_idle_minutes.map_or(DEFAULT_IDLE_TIMEOUT, |m| {
            SignedDuration::from_mins(i64::from(m))
        })
    }

    /// How long a session may last.
    pub fn absolute_timeout(&self) -> SignedDuration {
        self.session_absolute_hours
            .map_or(DEFAULT_ABSOLUTE_TIMEOUT, |h| {
                SignedDuration::from_hours(i64::from(h))
            })
    }

    fn check(&self) -> Result<(), ValidationError> {
        let in_range = |value: Option<usize>, low: usize, high: usize| {
            value.is_none_or(|v| (low..=high).contains(&v))
        };
        if !in_range(self.password_min_length, 8, 64) {
            return Err(ValidationError::new(
                "password_min_length",
                "must be 8 to 64",
            ));
        }
        if !in_range(self.password_min_length_with_mfa, 8, 64) {
            return Err(ValidationError::new(
                "password_min_length_with_mfa",
                "must be 8 to 64",
            ));
        }
        if self
            .session_idle_minutes
            .is_some_and(|m| !(1..=1440).contains(&m))
        {
            return Err(ValidationError::new(
                "session_idle_minutes",
                "must be 1 to 1440",
            ));
        }
        if self
            .session_absolute_hours
            .is_some_and(|h| !(1..=720).contains(&h))
        {
            return Err(ValidationError::new(
                "session_absolute_hours",
                "must be 1 to 720",
            ));
        }
        Ok(())
    }
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
        match settings::document(&mut conn, settings::Document::Auth, ctx.tenant).await? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| AppError::Internal(format!("auth policy: {e}"))),
            None => Ok(AuthPolicy::default()),
        }
    }

    /// Replaces the tenant's policy. Named groups and roles must exist.
    pub async fn set_auth_policy(&self, ctx: &Ctx, policy: AuthPolicy) -> Result<AuthPolicy> {
        policy.check()?;
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
        settings::put_document(
            &mut tx,
            settings::Document::Auth,
            ctx.tenant,
            &text,
            ctx.now,
        )
        .await?;
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
        if policy.require_mfa_groups.is_empty()
            && policy.phishing_resistant_roles.is_empty()
            && !policy.require_mfa
        {
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
