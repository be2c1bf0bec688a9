//! Tenants: create, read, update, delete, list.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Tenant, normalize_tenant_name, normalize_text};
use idplane_core::{Actor, Ctx, RequestMeta, TenantId};
use idplane_store::{Page, Paged, tenants};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::check_version;
use crate::{App, AppError, DEFAULT_TENANT, Field, Result};

/// Creates a tenant.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lowercase letters, digits and `-`; part of URLs.
    pub name: String,
    pub display_name: Option<String>,
}

/// Changes a tenant (JSON Merge Patch).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub display_name: Field<String>,
}

impl App {
    /// Creates a tenant.
    pub async fn create_tenant(&self, ctx: &Ctx, cmd: CreateTenant) -> Result<Tenant> {
        let tenant = Tenant {
            id: TenantId::generate(),
            name: normalize_tenant_name(&cmd.name)?,
            display_name: normalize_text("display_name", cmd.display_name.as_deref())?,
            created_at: ctx.now,
            updated_at: ctx.now,
            version: 1,
        };
        let mut tx = self.store().write().await?;
        tenants::insert(&mut tx, &tenant).await?;
        // The new tenant's chain starts with its own creation.
        let event = AuditEvent::new(
            &Ctx {
                tenant: tenant.id,
                ..ctx.clone()
            },
            "tenant.create",
            Some(target(&tenant)),
        )
        .with_details(json!({"name": tenant.name}));
        tx.commit(event).await?;
        Ok(tenant)
    }

    /// The tenant called `name`.
    pub async fn tenant(&self, name: &str) -> Result<Tenant> {
        let mut conn = self.store().read().await?;
        tenants::by_name(&mut conn, name)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("tenant `{name}`")))
    }

    /// The default tenant's id.
    pub async fn default_tenant_id(&self) -> Result<TenantId> {
        Ok(self.tenant(DEFAULT_TENANT).await?.id)
    }

    /// Tenants in name order.
    pub async fn tenants(&self, page: &Page) -> Result<Paged<Tenant>> {
        let mut conn = self.store().read().await?;
        Ok(tenants::list(&mut conn, page).await?)
    }

    /// Changes a tenant's display name.
    pub async fn update_tenant(
        &self,
        ctx: &Ctx,
        name: &str,
        cmd: UpdateTenant,
        if_match: Option<i64>,
    ) -> Result<Tenant> {
        let mut tx = self.store().write().await?;
        let current = tenants::by_name(&mut tx, name)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("tenant `{name}`")))?;
        check_version(if_match, current.version)?;
        let display_name = cmd
            .display_name
            .try_map(|d| normalize_text("display_name", Some(&d)))?
            .apply(Some(current.display_name.clone()))
            .flatten();
        let tenant = Tenant {
            display_name,
            updated_at: ctx.now,
            version: current.version + 1,
            ..current.clone()
        };
        if !tenants::update(&mut tx, &tenant, current.version).await? {
            return Err(AppError::VersionMismatch {
                current: current.version,
            });
        }
        let event = AuditEvent::new(
            &Ctx {
                tenant: tenant.id,
                ..ctx.clone()
            },
            "tenant.update",
            Some(target(&tenant)),
        );
        tx.commit(event).await?;
        Ok(tenant)
    }

    /// Deletes a tenant with its whole directory. Its audit chain remains.
    /// The default tenant cannot be deleted.
    pub async fn delete_tenant(&self, ctx: &Ctx, name: &str, if_match: Option<i64>) -> Result<()> {
        if name == DEFAULT_TENANT {
            return Err(AppError::Conflict(
                "the default tenant cannot be deleted".into(),
            ));
        }
        let mut tx = self.store().write().await?;
        let current = tenants::by_name(&mut tx, name)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("tenant `{name}`")))?;
        check_version(if_match, current.version)?;
        tenants::delete(&mut tx, current.id).await?;
        let event = AuditEvent::new(
            &Ctx {
                tenant: current.id,
                ..ctx.clone()
            },
            "tenant.delete",
            Some(target(&current)),
        )
        .with_details(json!({"name": current.name}));
        tx.commit(event).await?;
        Ok(())
    }

    /// Creates the default tenant on first start.
    pub(crate) async fn ensure_default_tenant(&self) -> Result<()> {
        let mut conn = self.store().read().await?;
        if tenants::by_name(&mut conn, DEFAULT_TENANT).await?.is_some() {
            return Ok(());
        }
        drop(conn);
        let ctx = self.ctx(TenantId::generate(), Actor::System, RequestMeta::default());
        let cmd = CreateTenant {
            name: DEFAULT_TENANT.to_owned(),
            display_name: Some("Default".to_owned()),
        };
        match self.create_tenant(&ctx, cmd).await {
            // Another node of a cluster created it first.
            Err(AppError::Conflict(_)) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

fn target(tenant: &Tenant) -> String {
    format!("tenant:{}", tenant.id)
}
