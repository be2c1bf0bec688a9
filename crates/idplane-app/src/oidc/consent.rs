//! Consent: third-party clients get only the scopes a person approved,
//! remembered per person and client and revocable from `/account`.
//! Withdrawing consent also revokes the refresh tokens the client holds
//! for that person. First-party clients need no consent.

use idplane_core::audit::AuditEvent;
use idplane_core::{Ctx, PrincipalId};
use idplane_store::consents::{self, StoredConsent};
use idplane_store::grants::FamilyFilter;
use serde_json::json;

use super::clients::Client;
use crate::{App, AppError, Result};

impl App {
    /// Whether `person` must (still) approve `scopes` for `client`.
    pub async fn needs_consent(
        &self,
        ctx: &Ctx,
        person: PrincipalId,
        client: &Client,
        scopes: &[String],
    ) -> Result<bool> {
        if client.first_party {
            return Ok(false);
        }
        let mut conn = self.store().read().await?;
        let given = consents::get(&mut conn, ctx.tenant, person, &client.client_id).await?;
        Ok(!given.is_some_and(|c| scopes.iter().all(|s| c.scopes.contains(s))))
    }

    /// Records that `person` approved `scopes` for `client` (added to what
    /// was approved before). Audited.
    pub async fn grant_consent(
        &self,
        ctx: &Ctx,
        person: PrincipalId,
        client: &Client,
        scopes: &[String],
    ) -> Result<()> {
        let mut tx = self.store().write().await?;
        let mut all = consents::get(&mut tx, ctx.tenant, person, &client.client_id)
            .await?
            .map(|c| c.scopes)
            .unwrap_or_default();
        for scope in scopes {
            if !all.contains(scope) {
                all.push(scope.clone());
            }
        }
        consents::put(
            &mut tx,
            ctx.tenant,
            person,
            &StoredConsent {
                client_id: client.client_id.clone(),
                scopes: all.clone(),
                granted_at: ctx.now,
            },
        )
        .await?;
        tx.commit(
            AuditEvent::new(
                ctx,
                "oauth.consent",
                Some(format!("client:{}", client.client_id)),
            )
            .with_details(json!({"principal": format!("user:{person}"), "scopes": all})),
        )
        .await?;
        Ok(())
    }

    /// The consents `person` has given, by client.
    pub async fn consents_of(&self, ctx: &Ctx, person: PrincipalId) -> Result<Vec<StoredConsent>> {
        let mut conn = self.store().read().await?;
        Ok(consents::of_principal(&mut conn, ctx.tenant, person).await?)
    }

    /// Withdraws a consent and revokes the client's refresh tokens for
    /// `person`. Audited.
    pub async fn revoke_consent(
        &self,
        ctx: &Ctx,
        person: PrincipalId,
        client_id: &str,
    ) -> Result<()> {
        let mut tx = self.store().write().await?;
        if consents::delete(&mut tx, ctx.tenant, person, Some(client_id)).await? == 0 {
            return Err(AppError::NotFound(format!("consent for `{client_id}`")));
        }
        let revoked = self
            .revoke_refresh_tokens(
                &mut tx,
                ctx,
                FamilyFilter::PrincipalAndClient(person, client_id),
            )
            .await?
            .len();
        tx.commit(
            AuditEvent::new(
                ctx,
                "oauth.consent_revoke",
                Some(format!("client:{client_id}")),
            )
            .with_details(
                json!({"principal": format!("user:{person}"), "refresh_tokens_revoked": revoked}),
            ),
        )
        .await?;
        Ok(())
    }
}
