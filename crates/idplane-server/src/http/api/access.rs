//! Effective access of a principal, evaluated now.

use axum::Json;
use axum::extract::State;
use idplane_core::PrincipalId;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::PathParams;
use crate::http::problem::{ApiResult, Problem};
use crate::http::views::AccessView;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(access))
}

#[derive(Debug, Deserialize)]
struct IdParam {
    id: PrincipalId,
}

/// What a principal is granted now: its groups (nested), roles (direct and
/// through groups) and entitlements. Expired grants are not counted.
#[utoipa::path(get, path = "/principals/{id}/access", tag = "access", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = AccessView), (status = 404, body = Problem)))]
async fn access(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<Json<AccessView>> {
    Ok(Json(state.app.access(&auth.ctx, p.id).await?.into()))
}
