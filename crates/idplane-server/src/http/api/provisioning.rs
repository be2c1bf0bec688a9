//! Outbound provisioning: the connected applications idplane pushes users
//! and groups to over SCIM (their tokens are write-only), and
//! reconciliation against what each holds.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use idplane_app::provisioning::{CreateTarget, DriftReport, Target, UpdateTarget};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::etag_header;
use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::{IfMatch, JsonBody, PathParams, QueryParams};
use crate::http::problem::{ApiResult, Problem};
use crate::http::views::List;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_targets, create_target))
        .routes(routes!(get_target, update_target, delete_target))
        .routes(routes!(reconcile))
}

#[derive(Debug, Deserialize)]
struct TargetParam {
    /// The target's id or name.
    target: String,
}

/// Connect an application: idplane pushes the users (and groups) it
/// receives to its SCIM endpoint from now on.
#[utoipa::path(post, path = "/provisioning/targets", tag = "provisioning", params(("tenant" = String, Path)),
    request_body = CreateTarget,
    responses((status = 201, body = Target), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_target(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(cmd): JsonBody<CreateTarget>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Target>)> {
    let target = state.app.create_target(&auth.ctx, cmd).await?;
    Ok((
        StatusCode::CREATED,
        etag_header(target.version),
        Json(target),
    ))
}

/// The connected applications (never their tokens).
#[utoipa::path(get, path = "/provisioning/targets", tag = "provisioning", params(("tenant" = String, Path)),
    responses((status = 200, body = List<Target>)))]
async fn list_targets(
    State(state): State<AppState>,
    auth: Authed,
) -> ApiResult<Json<List<Target>>> {
    let items = state.app.targets(&auth.ctx).await?;
    Ok(Json(List {
        items,
        next_cursor: None,
    }))
}

/// Read a connected application.
#[utoipa::path(get, path = "/provisioning/targets/{target}", tag = "provisioning",
    params(("tenant" = String, Path), ("target" = String, Path, description = "id or name")),
    responses((status = 200, body = Target), (status = 404, body = Problem)))]
async fn get_target(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<TargetParam>,
) -> ApiResult<(HeaderMap, Json<Target>)> {
    let target = state.app.target(&auth.ctx, &p.target).await?;
    Ok((etag_header(target.version), Json(target)))
}

/// Change a connected application (JSON Merge Patch; a new token replaces
/// the old one).
#[utoipa::path(patch, path = "/provisioning/targets/{target}", tag = "provisioning",
    params(("tenant" = String, Path), ("target" = String, Path, description = "id or name")),
    request_body = UpdateTarget,
    responses((status = 200, body = Target), (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn update_target(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<TargetParam>,
    IfMatch(if_match): IfMatch,
    JsonBody(cmd): JsonBody<UpdateTarget>,
) -> ApiResult<(HeaderMap, Json<Target>)> {
    let target = state
        .app
        .update_target(&auth.ctx, &p.target, cmd, if_match)
        .await?;
    Ok((etag_header(target.version), Json(target)))
}

/// Disconnect an application: its pending pushes are cancelled; nothing
/// is deleted at the application.
#[utoipa::path(delete, path = "/provisioning/targets/{target}", tag = "provisioning",
    params(("tenant" = String, Path), ("target" = String, Path, description = "id or name")),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_target(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<TargetParam>,
) -> ApiResult<StatusCode> {
    state.app.delete_target(&auth.ctx, &p.target).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReconcileParams {
    /// Schedule pushes for the users that drifted.
    #[serde(default)]
    fix: bool,
}

/// Compare what the application holds with what idplane would push:
/// users missing there, users there that are not idplane's, and mapped
/// attributes that differ; with `fix=true`, push the drifted users again.
#[utoipa::path(post, path = "/provisioning/targets/{target}/reconcile", tag = "provisioning",
    params(("tenant" = String, Path), ("target" = String, Path, description = "id or name"), ReconcileParams),
    responses((status = 200, body = DriftReport), (status = 404, body = Problem), (status = 409, body = Problem, description = "the application could not be read")))]
async fn reconcile(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<TargetParam>,
    QueryParams(q): QueryParams<ReconcileParams>,
) -> ApiResult<Json<DriftReport>> {
    Ok(Json(
        state.app.reconcile(&auth.ctx, &p.target, q.fix).await?,
    ))
}
