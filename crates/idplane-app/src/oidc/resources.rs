//! Resource servers (RFC 8707 resource indicators): the APIs our access
//! tokens are for. A client names one with `resource`; the token's `aud`
//! is that identifier, so a token for one API is refused by another.
//! Only registered resource servers may be named. They are read from
//! memory on the token path; a change on this node refreshes them at once,
//! other nodes within [`crate::registry::REGISTRY_POLL`].

use std::sync::Arc;

use idplane_core::audit::AuditEvent;
use idplane_core::{Ctx, TenantId, ValidationError};
use idplane_store::resources::{self, StoredResource};
use serde_json::json;

use super::error::{ErrorCode, OAuthError, OAuthResult};
use crate::registry::RegistryCache;
use crate::{App, AppError, Result};

/// Most resource indicators in one request.
const MAX_RESOURCES: usize = 8;
/// The resource servers of each tenant.
pub(crate) type ResourceCache = RegistryCache<TenantId, Arc<Vec<StoredResource>>>;

impl App {
    /// Registers (or replaces) a resource server. Audited.
    pub async fn put_resource(
        &self,
        ctx: &Ctx,
        identifier: &str,
        name: &str,
        scopes: Vec<String>,
    ) -> Result<StoredResource> {
        if !is_resource_uri(identifier) {
            return Err(
                ValidationError::new("identifier", "an absolute URI without a fragment").into(),
            );
        }
        let mut tx = self.store().write().await?;
        let created_at = resources::get(&mut tx, ctx.tenant, identifier)
            .await?
            .map_or(ctx.now, |r| r.created_at);
        let resource = StoredResource {
            tenant_id: ctx.tenant,
            identifier: identifier.to_owned(),
            name: name.to_owned(),
            scopes,
            created_at,
            updated_at: ctx.now,
        };
        resources::put(&mut tx, &resource).await?;
        tx.commit(
            AuditEvent::new(ctx, "resource.put", Some(format!("resource:{identifier}")))
                .with_details(json!({"name": name, "scopes": resource.scopes})),
        )
        .await?;
        self.forget_resources(ctx.tenant);
        Ok(resource)
    }

    pub async fn resources(&self, ctx: &Ctx) -> Result<Vec<StoredResource>> {
        let mut conn = self.store().read().await?;
        Ok(resources::list(&mut conn, ctx.tenant).await?)
    }

    /// The tenant's resource servers, from memory when fresh.
    async fn cached_resources(&self, ctx: &Ctx) -> Result<Arc<Vec<StoredResource>>> {
        let epoch = self.registry_epoch(ctx.now).await;
        let cache = &self.inner.resources;
        if let Some(list) = cache.get(&ctx.tenant, epoch) {
            return Ok(list);
        }
        let list = Arc::new(self.resources(ctx).await?);
        cache.insert(ctx.tenant, epoch, list.clone());
        Ok(list)
    }

    fn forget_resources(&self, tenant: TenantId) {
        self.inner.resources.remove(&tenant);
    }

    pub async fn delete_resource(&self, ctx: &Ctx, identifier: &str) -> Result<()> {
        let mut tx = self.store().write().await?;
        if !resources::delete(&mut tx, ctx.tenant, identifier).await? {
            return Err(AppError::NotFound(format!("resource `{identifier}`")));
        }
        tx.commit(AuditEvent::new(
            ctx,
            "resource.delete",
            Some(format!("resource:{identifier}")),
        ))
        .await?;
        self.forget_resources(ctx.tenant);
        Ok(())
    }

    /// The audiences of a grant: the resource indicators asked for (each
    /// registered, at most a few), or else the registered resource servers
    /// that define one of the requested `scopes`.
    pub async fn check_resources(
        &self,
        ctx: &Ctx,
        requested: &[String],
        scopes: &[String],
    ) -> OAuthResult<Vec<String>> {
        let invalid = |why: String| OAuthError::new(ErrorCode::InvalidTarget, why);
        if requested.len() > MAX_RESOURCES {
            return Err(invalid(format!("at most {MAX_RESOURCES} resources")));
        }
        if requested.is_empty() && scopes.is_empty() {
            return Ok(Vec::new());
        }
        let registered = self.cached_resources(ctx).await?;
        if requested.is_empty() {
            return Ok(registered
                .iter()
                .filter(|r| r.scopes.iter().any(|s| scopes.contains(s)))
                .map(|r| r.identifier.clone())
                .collect());
        }
        let mut out: Vec<String> = Vec::new();
        for resource in requested {
            if !is_resource_uri(resource) {
                return Err(invalid(format!(
                    "resource `{resource}` is not an absolute URI without a fragment"
                )));
            }
            if !registered.iter().any(|r| &r.identifier == resource) {
                return Err(invalid(format!("resource `{resource}` is not registered")));
            }
            if !out.contains(resource) {
                out.push(resource.clone());
            }
        }
        Ok(out)
    }
}

/// RFC 8707 §2: an absolute URI, no fragment.
fn is_resource_uri(value: &str) -> bool {
    url::Url::parse(value).is_ok_and(|u| u.fragment().is_none() && !u.cannot_be_a_base())
        && !value.contains('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_indicators_are_absolute_uris_without_fragments() {
        assert!(is_resource_uri("https://api.example.com"));
        assert!(is_resource_uri("https://api.example.com/v1"));
        assert!(!is_resource_uri("api.example.com"));
        assert!(!is_resource_uri("https://api.example.com/#x"));
        assert!(!is_resource_uri("/relative"));
    }
}
