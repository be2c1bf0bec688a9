//! `/api/v1/tokens` and `/api/v1/bootstrap`: administrator tokens.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idplane_app::tokens::{CompleteBootstrap, CreateToken};
use idplane_core::TokenId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::PageParams;
use crate::http::AppState;
use crate::http::auth::{AnyCaller, GlobalAuthed};
use crate::http::extract::{JsonBody, PathParams, QueryParams};
use crate::http::problem::{ApiResult, Problem};
use crate::http::views::{IssuedTokenView, List, TokenView};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(bootstrap))
}

/// List administrator tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(PageParams),
    responses((status = 200, body = List<TokenView>), (status = 403, body = Problem)))]
async fn list_tokens(
    State(state): State<AppState>,
    _auth: GlobalAuthed,
    QueryParams(q): QueryParams<PageParams>,
) -> ApiResult<Json<List<TokenView>>> {
    let page = state.app.tokens(&q.page()).await?;
    Ok(Json(List::from_page(
        page,
        |t| t.stored.id.to_string(),
        TokenView::from,
    )))
}

/// Issue a token: `read` scope unless asked, expiring (90 days by default).
/// The secret is in the response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = IssuedTokenView), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_token(
    State(state): State<AppState>,
    auth: GlobalAuthed,
    JsonBody(cmd): JsonBody<CreateToken>,
) -> ApiResult<(StatusCode, Json<IssuedTokenView>)> {
    let issued = state.app.issue_token(&auth.ctx, &auth.caller, cmd).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// Revoke a token; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn revoke_token(
    State(state): State<AppState>,
    auth: GlobalAuthed,
    PathParams(id): PathParams<TokenId>,
) -> ApiResult<StatusCode> {
    state.app.revoke_token(&auth.ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Exchange the one-time bootstrap token (printed on first start) for the
/// first administrator and an admin token.
#[utoipa::path(post, path = "/api/v1/bootstrap", tag = "tokens", request_body = CompleteBootstrap,
    responses((status = 201, body = IssuedTokenView), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn bootstrap(
    State(state): State<AppState>,
    auth: AnyCaller,
    JsonBody(cmd): JsonBody<CompleteBootstrap>,
) -> ApiResult<(StatusCode, Json<IssuedTokenView>)> {
    let issued = state
        .app
        .complete_bootstrap(&auth.caller, auth.meta, cmd)
        .await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}
