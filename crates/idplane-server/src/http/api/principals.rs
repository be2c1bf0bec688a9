//! Users, groups (with members), service accounts and agents.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use idplane_app::directory::groups::{AddMember, CreateGroup, UpdateGroup};
use idplane_app::directory::principals::{CreateNonHuman, CreateUser, UpdateNonHuman, UpdateUser};
use idplane_core::directory::{
    Principal, PrincipalKind, Status, UserType, name_key, normalize_email,
};
use idplane_core::{Ctx, PrincipalId};
use idplane_store::principals::PrincipalFilter;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageParams, etag_header};
use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::{IfMatch, JsonBody, PathParams, QueryParams};
use crate::http::problem::{ApiResult, Problem};
use crate::http::views::{List, MemberView, PrincipalView};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(list_members, add_member))
        .routes(routes!(remove_member))
        .routes(routes!(list_service_accounts, create_service_account))
        .routes(routes!(
            get_service_account,
            update_service_account,
            delete_service_account
        ))
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, update_agent, delete_agent))
}

/// Filters for principal lists; all given must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PrincipalQuery {
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Exact name (username, group or account name), case-insensitive.
    pub name: Option<String>,
    /// Names starting with this, case-insensitive.
    pub prefix: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub status: Option<Status>,
    pub user_type: Option<UserType>,
    /// Owner's user id (service accounts and agents).
    #[param(value_type = Option<String>)]
    pub owner_id: Option<PrincipalId>,
    /// Sponsor's user id (contractors).
    #[param(value_type = Option<String>)]
    pub sponsor_id: Option<PrincipalId>,
}

/// The `{id}` of a principal route.
#[derive(Debug, Deserialize)]
struct IdParam {
    id: PrincipalId,
}

/// The `{id}` and `{member}` of a membership route.
#[derive(Debug, Deserialize)]
struct MemberParam {
    id: PrincipalId,
    member: String,
}

async fn list(
    state: &AppState,
    ctx: &Ctx,
    kind: PrincipalKind,
    q: PrincipalQuery,
) -> ApiResult<Json<List<PrincipalView>>> {
    let filter = PrincipalFilter {
        kind: Some(kind),
        name_key: q.name.as_deref().map(|n| name_key(n.trim())),
        name_prefix: q.prefix.as_deref().map(|n| name_key(n.trim())),
        // An unparseable email matches nothing rather than failing.
        email: q
            .email
            .as_deref()
            .map(|e| normalize_email(e).unwrap_or_else(|_| e.to_owned())),
        external_id: q.external_id,
        status: q.status,
        user_type: q.user_type,
        owner_id: q.owner_id,
        sponsor_id: q.sponsor_id,
    };
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page();
    let found = state.app.principals(ctx, &filter, &page).await?;
    Ok(Json(List::from_page(
        found,
        |p| p.id.to_string(),
        |p| PrincipalView::at(p, ctx.now),
    )))
}

type Created = (StatusCode, HeaderMap, Json<PrincipalView>);
type Found = (HeaderMap, Json<PrincipalView>);

fn created(p: Principal, ctx: &Ctx) -> Created {
    (
        StatusCode::CREATED,
        etag_header(p.version),
        Json(PrincipalView::at(p, ctx.now)),
    )
}

fn found(p: Principal, ctx: &Ctx) -> Found {
    (etag_header(p.version), Json(PrincipalView::at(p, ctx.now)))
}

async fn get(
    state: &AppState,
    ctx: &Ctx,
    kind: PrincipalKind,
    id: PrincipalId,
) -> ApiResult<Found> {
    Ok(found(state.app.principal(ctx, kind, id).await?, ctx))
}

async fn delete(
    state: &AppState,
    ctx: &Ctx,
    kind: PrincipalKind,
    id: PrincipalId,
    if_match: Option<i64>,
) -> ApiResult<StatusCode> {
    state.app.delete_principal(ctx, kind, id, if_match).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List users.
#[utoipa::path(get, path = "/users", tag = "users", params(("tenant" = String, Path), PrincipalQuery),
    responses((status = 200, body = List<PrincipalView>), (status = 400, body = Problem)))]
async fn list_users(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(q): QueryParams<PrincipalQuery>,
) -> ApiResult<Json<List<PrincipalView>>> {
    list(&state, &auth.ctx, PrincipalKind::User, q).await
}

/// Create a user.
#[utoipa::path(post, path = "/users", tag = "users", params(("tenant" = String, Path)), request_body = CreateUser,
    responses((status = 201, body = PrincipalView), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_user(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(cmd): JsonBody<CreateUser>,
) -> ApiResult<Created> {
    Ok(created(
        state.app.create_user(&auth.ctx, cmd).await?,
        &auth.ctx,
    ))
}

/// Read a user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PrincipalView), (status = 404, body = Problem)))]
async fn get_user(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<Found> {
    get(&state, &auth.ctx, PrincipalKind::User, p.id).await
}

/// Change a user (JSON Merge Patch; If-Match for optimistic concurrency).
#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(("tenant" = String, Path), ("id" = String, Path)),
    request_body = UpdateUser,
    responses((status = 200, body = PrincipalView), (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn update_user(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
    IfMatch(if_match): IfMatch,
    JsonBody(cmd): JsonBody<UpdateUser>,
) -> ApiResult<Found> {
    Ok(found(
        state
            .app
            .update_user(&auth.ctx, p.id, cmd, if_match)
            .await?,
        &auth.ctx,
    ))
}

/// Delete a user with their memberships and assignments.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 409, body = Problem)))]
async fn delete_user(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
    IfMatch(m): IfMatch,
) -> ApiResult<StatusCode> {
    delete(&state, &auth.ctx, PrincipalKind::User, p.id, m).await
}

/// List groups.
#[utoipa::path(get, path = "/groups", tag = "groups", params(("tenant" = String, Path), PrincipalQuery),
    responses((status = 200, body = List<PrincipalView>)))]
async fn list_groups(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(q): QueryParams<PrincipalQuery>,
) -> ApiResult<Json<List<PrincipalView>>> {
    list(&state, &auth.ctx, PrincipalKind::Group, q).await
}

/// Create a group.
#[utoipa::path(post, path = "/groups", tag = "groups", params(("tenant" = String, Path)), request_body = CreateGroup,
    responses((status = 201, body = PrincipalView), (status = 409, body = Problem)))]
async fn create_group(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(cmd): JsonBody<CreateGroup>,
) -> ApiResult<Created> {
    Ok(created(
        state.app.create_group(&auth.ctx, cmd).await?,
        &auth.ctx,
    ))
}

/// Read a group.
#[utoipa::path(get, path = "/groups/{id}", tag = "groups", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PrincipalView), (status = 404, body = Problem)))]
async fn get_group(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<Found> {
    get(&state, &auth.ctx, PrincipalKind::Group, p.id).await
}

/// Change a group.
#[utoipa::path(patch, path = "/groups/{id}", tag = "groups", params(("tenant" = String, Path), ("id" = String, Path)),
    request_body = UpdateGroup, responses((status = 200, body = PrincipalView), (status = 412, body = Problem)))]
async fn update_group(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
    IfMatch(if_match): IfMatch,
    JsonBody(cmd): JsonBody<UpdateGroup>,
) -> ApiResult<Found> {
    Ok(found(
        state
            .app
            .update_group(&auth.ctx, p.id, cmd, if_match)
            .await?,
        &auth.ctx,
    ))
}

/// Delete a group.
#[utoipa::path(delete, path = "/groups/{id}", tag = "groups", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_group(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
    IfMatch(m): IfMatch,
) -> ApiResult<StatusCode> {
    delete(&state, &auth.ctx, PrincipalKind::Group, p.id, m).await
}

/// List a group's direct members (expired memberships show `active: false`).
#[utoipa::path(get, path = "/groups/{id}/members", tag = "groups", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Vec<MemberView>)))]
async fn list_members(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<Json<Vec<MemberView>>> {
    let members = state.app.members(&auth.ctx, p.id).await?;
    Ok(Json(
        members
            .into_iter()
            .map(|m| MemberView::at(m, auth.ctx.now))
            .collect(),
    ))
}

/// Add a member (a user, service account, agent or group), optionally until an expiry.
#[utoipa::path(post, path = "/groups/{id}/members", tag = "groups", params(("tenant" = String, Path), ("id" = String, Path)),
    request_body = AddMember,
    responses((status = 201, body = MemberView), (status = 409, body = Problem, description = "would create a cycle")))]
async fn add_member(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
    JsonBody(cmd): JsonBody<AddMember>,
) -> ApiResult<(StatusCode, Json<MemberView>)> {
    let member = state.app.add_member(&auth.ctx, p.id, cmd).await?;
    Ok((
        StatusCode::CREATED,
        Json(MemberView::at(member, auth.ctx.now)),
    ))
}

/// Remove a member (by id, `kind:name` or username).
#[utoipa::path(delete, path = "/groups/{id}/members/{member}", tag = "groups",
    params(("tenant" = String, Path), ("id" = String, Path), ("member" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn remove_member(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<MemberParam>,
) -> ApiResult<StatusCode> {
    state.app.remove_member(&auth.ctx, p.id, &p.member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The five handlers of a non-human kind (service accounts, agents): the
/// same API over a different kind, named apart for the OpenAPI document.
macro_rules! non_human_handlers {
    ($kind:expr, $tag:literal, $collection:literal, $item:literal,
     $list:ident, $create:ident, $get:ident, $update:ident, $delete:ident) => {
        /// List principals of this kind.
        #[utoipa::path(get, path = $collection, tag = $tag, params(("tenant" = String, Path), PrincipalQuery),
            responses((status = 200, body = List<PrincipalView>)))]
        async fn $list(
            State(state): State<AppState>,
            auth: Authed,
            QueryParams(q): QueryParams<PrincipalQuery>,
        ) -> ApiResult<Json<List<PrincipalView>>> {
            list(&state, &auth.ctx, $kind, q).await
        }

        /// Create one, with an accountable owner and a purpose.
        #[utoipa::path(post, path = $collection, tag = $tag, params(("tenant" = String, Path)),
            request_body = CreateNonHuman, responses((status = 201, body = PrincipalView), (status = 422, body = Problem)))]
        async fn $create(
            State(state): State<AppState>,
            auth: Authed,
            JsonBody(cmd): JsonBody<CreateNonHuman>,
        ) -> ApiResult<Created> {
            let p = state.app.create_non_human(&auth.ctx, $kind, cmd).await?;
            Ok(created(p, &auth.ctx))
        }

        /// Read one.
        #[utoipa::path(get, path = $item, tag = $tag, params(("tenant" = String, Path), ("id" = String, Path)),
            responses((status = 200, body = PrincipalView), (status = 404, body = Problem)))]
        async fn $get(
            State(state): State<AppState>,
            auth: Authed,
            PathParams(p): PathParams<IdParam>,
        ) -> ApiResult<Found> {
            get(&state, &auth.ctx, $kind, p.id).await
        }

        /// Change one (JSON Merge Patch; If-Match for optimistic concurrency).
        #[utoipa::path(patch, path = $item, tag = $tag, params(("tenant" = String, Path), ("id" = String, Path)),
            request_body = UpdateNonHuman, responses((status = 200, body = PrincipalView), (status = 412, body = Problem)))]
        async fn $update(
            State(state): State<AppState>,
            auth: Authed,
            PathParams(p): PathParams<IdParam>,
            IfMatch(if_match): IfMatch,
            JsonBody(cmd): JsonBody<UpdateNonHuman>,
        ) -> ApiResult<Found> {
            let updated = state.app.update_non_human(&auth.ctx, $kind, p.id, cmd, if_match).await?;
            Ok(found(updated, &auth.ctx))
        }

        /// Delete one.
        #[utoipa::path(delete, path = $item, tag = $tag, params(("tenant" = String, Path), ("id" = String, Path)),
            responses((status = 204), (status = 404, body = Problem)))]
        async fn $delete(
            State(state): State<AppState>,
            auth: Authed,
            PathParams(p): PathParams<IdParam>,
            IfMatch(m): IfMatch,
        ) -> ApiResult<StatusCode> {
            delete(&state, &auth.ctx, $kind, p.id, m).await
        }
    };
}

non_human_handlers!(
    PrincipalKind::ServiceAccount,
    "service accounts",
    "/service-accounts",
    "/service-accounts/{id}",
    list_service_accounts,
    create_service_account,
    get_service_account,
    update_service_account,
    delete_service_account
);

non_human_handlers!(
    PrincipalKind::Agent,
    "agents",
    "/agents",
    "/agents/{id}",
    list_agents,
    create_agent,
    get_agent,
    update_agent,
    delete_agent
);
