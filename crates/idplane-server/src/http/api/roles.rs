//! Roles and role assignments.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use idplane_app::directory::roles::{AssignRole, CreateRole, UpdateRole};
use idplane_core::AssignmentId;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageParams, etag_header};
use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::{IfMatch, JsonBody, PathParams, QueryParams};
use crate::http::problem::{ApiResult, Problem};
use crate::http::views::{AssignmentView, List, RoleView};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles, create_role))
        .routes(routes!(get_role, update_role, delete_role))
        .routes(routes!(list_assignments, assign_role))
        .routes(routes!(get_assignment, unassign_role))
}

#[derive(Debug, Deserialize)]
struct RoleParam {
    role: String,
}

#[derive(Debug, Deserialize)]
struct AssignmentParam {
    id: AssignmentId,
}

/// Filters for assignment lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AssignmentQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// Role id or name.
    pub role: Option<String>,
    /// Principal id, `kind:name`, or username.
    pub principal: Option<String>,
}

/// List roles.
#[utoipa::path(get, path = "/roles", tag = "roles", params(("tenant" = String, Path), PageParams),
    responses((status = 200, body = List<RoleView>)))]
async fn list_roles(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(q): QueryParams<PageParams>,
) -> ApiResult<Json<List<RoleView>>> {
    let page = state.app.roles(&auth.ctx, &q.page()).await?;
    Ok(Json(List::from_page(
        page,
        |r| r.id.to_string(),
        RoleView::from,
    )))
}

/// Create a role: a named bundle of entitlements.
#[utoipa::path(post, path = "/roles", tag = "roles", params(("tenant" = String, Path)), request_body = CreateRole,
    responses((status = 201, body = RoleView), (status = 409, body = Problem)))]
async fn create_role(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(cmd): JsonBody<CreateRole>,
) -> ApiResult<(StatusCode, HeaderMap, Json<RoleView>)> {
    let role = state.app.create_role(&auth.ctx, cmd).await?;
    Ok((
        StatusCode::CREATED,
        etag_header(role.version),
        Json(role.into()),
    ))
}

/// Read a role (by id or name).
#[utoipa::path(get, path = "/roles/{role}", tag = "roles", params(("tenant" = String, Path), ("role" = String, Path)),
    responses((status = 200, body = RoleView), (status = 404, body = Problem)))]
async fn get_role(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<RoleParam>,
) -> ApiResult<(HeaderMap, Json<RoleView>)> {
    let role = state.app.role(&auth.ctx, &p.role).await?;
    Ok((etag_header(role.version), Json(role.into())))
}

/// Change a role.
#[utoipa::path(patch, path = "/roles/{role}", tag = "roles", params(("tenant" = String, Path), ("role" = String, Path)),
    request_body = UpdateRole, responses((status = 200, body = RoleView), (status = 412, body = Problem)))]
async fn update_role(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<RoleParam>,
    IfMatch(if_match): IfMatch,
    JsonBody(cmd): JsonBody<UpdateRole>,
) -> ApiResult<(HeaderMap, Json<RoleView>)> {
    let role = state
        .app
        .update_role(&auth.ctx, &p.role, cmd, if_match)
        .await?;
    Ok((etag_header(role.version), Json(role.into())))
}

/// Delete a role; refused while assigned.
#[utoipa::path(delete, path = "/roles/{role}", tag = "roles", params(("tenant" = String, Path), ("role" = String, Path)),
    responses((status = 204), (status = 409, body = Problem, description = "still assigned")))]
async fn delete_role(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<RoleParam>,
    IfMatch(m): IfMatch,
) -> ApiResult<StatusCode> {
    state.app.delete_role(&auth.ctx, &p.role, m).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List role assignments (expired ones show `active: false`).
#[utoipa::path(get, path = "/role-assignments", tag = "roles", params(("tenant" = String, Path), AssignmentQuery),
    responses((status = 200, body = List<AssignmentView>)))]
async fn list_assignments(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(q): QueryParams<AssignmentQuery>,
) -> ApiResult<Json<List<AssignmentView>>> {
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page();
    let found = state
        .app
        .assignments(&auth.ctx, q.role.as_deref(), q.principal.as_deref(), &page)
        .await?;
    Ok(Json(List::from_page(
        found,
        |a| a.id.to_string(),
        |a| AssignmentView::at(a, auth.ctx.now),
    )))
}

/// Assign a role to a principal or group, optionally until an expiry.
#[utoipa::path(post, path = "/role-assignments", tag = "roles", params(("tenant" = String, Path)), request_body = AssignRole,
    responses((status = 201, body = AssignmentView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn assign_role(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(cmd): JsonBody<AssignRole>,
) -> ApiResult<(StatusCode, Json<AssignmentView>)> {
    let assignment = state.app.assign_role(&auth.ctx, cmd).await?;
    Ok((
        StatusCode::CREATED,
        Json(AssignmentView::at(assignment, auth.ctx.now)),
    ))
}

/// Read a role assignment.
#[utoipa::path(get, path = "/role-assignments/{id}", tag = "roles", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = AssignmentView), (status = 404, body = Problem)))]
async fn get_assignment(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<AssignmentParam>,
) -> ApiResult<Json<AssignmentView>> {
    let assignment = state.app.assignment(&auth.ctx, p.id).await?;
    Ok(Json(AssignmentView::at(assignment, auth.ctx.now)))
}

/// Revoke a role assignment.
#[utoipa::path(delete, path = "/role-assignments/{id}", tag = "roles", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn unassign_role(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<AssignmentParam>,
) -> ApiResult<StatusCode> {
    state.app.unassign_role(&auth.ctx, p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
