//! The native administrative API under `/api/v1`.
//!
//! Tenant-scoped resources are served twice: under
//! `/api/v1/tenants/{tenant}/...` (documented) and under `/api/v1/...` for the
//! default tenant. Every handler extracts, makes one `App` call, and renders.

mod access;
mod audit;
mod authn;
mod clients;
mod hr;
mod keys;
mod lifecycle;
mod policies;
mod principals;
mod provisioning;
mod resources;
mod roles;
mod tenants;
mod tokens;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use idplane_store::Page;
use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::extract::etag;

/// Page size when none is asked for.
const DEFAULT_LIMIT: u32 = 50;

#[derive(OpenApi)]
#[openapi(
    info(title = "idplane admin API", description = "The native administrative API of idplane. Errors are RFC 9457 problem documents; updates are JSON Merge Patch with optional If-Match."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API router and its OpenAPI document.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(tenants::routes())
        .merge(tokens::routes())
        .merge(keys::routes())
        .nest("/api/v1/tenants/{tenant}", tenant_scoped())
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let default_tenant = tenant_scoped().split_for_parts().0;
    (router.nest("/api/v1", default_tenant), doc)
}

fn tenant_scoped() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(principals::routes())
        .merge(lifecycle::routes())
        .merge(roles::routes())
        .merge(clients::routes())
        .merge(resources::routes())
        .merge(access::routes())
        .merge(authn::routes())
        .merge(audit::routes())
        .merge(policies::routes())
        .merge(hr::routes())
        .merge(provisioning::routes())
}

/// Cursor pagination parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    fn page(&self) -> Page {
        Page {
            after: self.cursor.clone(),
            limit: self.limit.unwrap_or(DEFAULT_LIMIT),
        }
    }
}

/// An `ETag` header for a version.
fn etag_header(version: i64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&etag(version)) {
        headers.insert(header::ETAG, value);
    }
    headers
}
