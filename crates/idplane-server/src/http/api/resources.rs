//! Resource servers (RFC 8707): the APIs access tokens are issued for.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idplane_store::resources::StoredResource;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::{JsonBody, QueryParams};
use crate::http::problem::{ApiResult, Problem};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_resources, put_resource, delete_resource))
}

/// A resource server.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceView {
    /// The absolute URI clients name in `resource` and tokens carry in `aud`.
    pub identifier: String,
    pub name: String,
    /// The scopes this API defines.
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl From<StoredResource> for ResourceView {
    fn from(r: StoredResource) -> Self {
        Self {
            identifier: r.identifier,
            name: r.name,
            scopes: r.scopes,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct IdentifierQuery {
    /// The resource server's identifier.
    identifier: String,
}

/// List resource servers.
#[utoipa::path(get, path = "/resources", tag = "oauth", params(("tenant" = String, Path)),
    responses((status = 200, body = Vec<ResourceView>)))]
async fn list_resources(
    State(state): State<AppState>,
    auth: Authed,
) -> ApiResult<Json<Vec<ResourceView>>> {
    let all = state.app.resources(&auth.ctx).await?;
    Ok(Json(all.into_iter().map(ResourceView::from).collect()))
}

/// Register or replace a resource server.
#[utoipa::path(put, path = "/resources", tag = "oauth", params(("tenant" = String, Path)),
    request_body = ResourceView,
    responses((status = 200, body = ResourceView), (status = 400, body = Problem)))]
async fn put_resource(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(body): JsonBody<ResourceView>,
) -> ApiResult<Json<ResourceView>> {
    let stored = state
        .app
        .put_resource(&auth.ctx, &body.identifier, &body.name, body.scopes)
        .await?;
    Ok(Json(stored.into()))
}

/// Remove a resource server.
#[utoipa::path(delete, path = "/resources", tag = "oauth", params(("tenant" = String, Path), IdentifierQuery),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_resource(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(q): QueryParams<IdentifierQuery>,
) -> ApiResult<StatusCode> {
    state.app.delete_resource(&auth.ctx, &q.identifier).await?;
    Ok(StatusCode::NO_CONTENT)
}
