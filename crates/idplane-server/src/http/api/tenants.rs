//! `/api/v1/tenants`: tenants (global administrators only).

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use idplane_app::directory::tenants::{CreateTenant, UpdateTenant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageParams, etag_header};
use crate::http::AppState;
use crate::http::auth::GlobalAuthed;
use crate::http::extract::{IfMatch, JsonBody, PathParams, QueryParams};
use crate::http::problem::{ApiResult, Problem};
use crate::http::views::{List, TenantView};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
}

/// List tenants.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageParams),
    responses((status = 200, body = List<TenantView>), (status = 401, body = Problem)))]
async fn list_tenants(
    axum::extract::State(state): axum::extract::State<AppState>,
    _auth: GlobalAuthed,
    QueryParams(params): QueryParams<PageParams>,
) -> ApiResult<Json<List<TenantView>>> {
    let page = state.app.tenants(&params.page()).await?;
    Ok(Json(List::from_page(
        page,
        |t| t.name.clone(),
        TenantView::from,
    )))
}

/// Create a tenant.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = TenantView), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_tenant(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: GlobalAuthed,
    JsonBody(cmd): JsonBody<CreateTenant>,
) -> ApiResult<(StatusCode, HeaderMap, Json<TenantView>)> {
    let tenant = state.app.create_tenant(&auth.ctx, cmd).await?;
    Ok((
        StatusCode::CREATED,
        etag_header(tenant.version),
        Json(tenant.into()),
    ))
}

/// Read a tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path)),
    responses((status = 200, body = TenantView), (status = 404, body = Problem)))]
async fn get_tenant(
    axum::extract::State(state): axum::extract::State<AppState>,
    _auth: GlobalAuthed,
    PathParams(name): PathParams<String>,
) -> ApiResult<(HeaderMap, Json<TenantView>)> {
    let tenant = state.app.tenant(&name).await?;
    Ok((etag_header(tenant.version), Json(tenant.into())))
}

/// Change a tenant (JSON Merge Patch).
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path)),
    request_body = UpdateTenant,
    responses((status = 200, body = TenantView), (status = 412, body = Problem)))]
async fn update_tenant(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: GlobalAuthed,
    PathParams(name): PathParams<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(cmd): JsonBody<UpdateTenant>,
) -> ApiResult<(HeaderMap, Json<TenantView>)> {
    let tenant = state
        .app
        .update_tenant(&auth.ctx, &name, cmd, if_match)
        .await?;
    Ok((etag_header(tenant.version), Json(tenant.into())))
}

/// Delete a tenant and its directory (its audit chain remains).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}", tag = "tenants", params(("tenant" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_tenant(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: GlobalAuthed,
    PathParams(name): PathParams<String>,
    IfMatch(if_match): IfMatch,
) -> ApiResult<StatusCode> {
    state.app.delete_tenant(&auth.ctx, &name, if_match).await?;
    state.forget_tenant(&name);
    Ok(StatusCode::NO_CONTENT)
}
