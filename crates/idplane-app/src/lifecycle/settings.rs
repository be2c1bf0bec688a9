//! A tenant's lifecycle settings: where lifecycle notices are posted.

use idplane_core::audit::AuditEvent;
use idplane_core::{Ctx, ValidationError};
use idplane_store::settings;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::{App, AppError, Result};

/// Per-tenant lifecycle settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSettings {
    /// An `http(s)` URL that receives a JSON notice (POST) for each
    /// contractor reminder, besides the mail to the sponsor. A failed
    /// delivery is retried with the job's back-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

impl LifecycleSettings {
    fn check(&self) -> Result<(), ValidationError> {
        let Some(raw) = &self.webhook_url else {
            return Ok(());
        };
        let invalid = |why: &str| ValidationError::new("webhook_url", why.to_owned());
        let url = url::Url::parse(raw).map_err(|e| invalid(&format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(invalid("must be an http or https URL with a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "must not carry credentials (they would be stored and logged in the clear)",
            ));
        }
        if url.fragment().is_some() {
            return Err(invalid("must not have a fragment"));
        }
        Ok(())
    }
}

impl App {
    /// The tenant's lifecycle settings (the defaults when none were set).
    pub async fn lifecycle_settings(&self, ctx: &Ctx) -> Result<LifecycleSettings> {
        let mut conn = self.store().read().await?;
        match settings::document(&mut conn, settings::Document::Lifecycle, ctx.tenant).await? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| AppError::Internal(format!("stored lifecycle settings: {e}"))),
            None => Ok(LifecycleSettings::default()),
        }
    }

    /// Replaces the tenant's lifecycle settings.
    pub async fn set_lifecycle_settings(
        &self,
        ctx: &Ctx,
        next: LifecycleSettings,
    ) -> Result<LifecycleSettings> {
        next.check()?;
        let text = serde_json::to_string(&next).map_err(|e| AppError::Internal(e.to_string()))?;
        let mut tx = self.store().write().await?;
        settings::put_document(
            &mut tx,
            settings::Document::Lifecycle,
            ctx.tenant,
            &text,
            ctx.now,
        )
        .await?;
        tx.commit(
            AuditEvent::new(
                ctx,
                "lifecycle.settings",
                Some(format!("tenant:{}", ctx.tenant)),
            )
            .with_details(json!({ "webhook": next.webhook_url.is_some() })),
        )
        .await?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_checked() {
        let with = |url: &str| LifecycleSettings {
            webhook_url: Some(url.into()),
        };
        with("https://hooks.example.com/idplane").check().unwrap();
        with("http://127.0.0.1:8080/hook").check().unwrap();
        LifecycleSettings::default().check().unwrap();
        for bad in [
            "hooks.example.com",
            "ftp://example.com/x",
            "https://user:pw@example.com/",
            "https://example.com/#x",
            "file:///etc/passwd",
        ] {
            assert!(with(bad).check().is_err(), "{bad} accepted");
        }
    }
}
