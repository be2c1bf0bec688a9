//! Administrators' side of authentication: set a temporary password, reset
//! a person's factors, lift a sign-in back-off, see and end sessions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idplane_app::authn::policy::AuthPolicy;
use idplane_core::PrincipalId;
use idplane_core::directory::PrincipalKind;
use idplane_store::sessions::StoredSession;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::{JsonBody, PathParams};
use crate::http::problem::{ApiResult, Problem};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_password))
        .routes(routes!(reset_factors))
        .routes(routes!(unlock))
        .routes(routes!(list_sessions, end_all_sessions))
        .routes(routes!(end_session))
        .routes(routes!(get_policy, put_policy))
        .routes(routes!(outbox))
}

#[derive(Debug, Deserialize)]
struct IdParam {
    id: PrincipalId,
}

#[derive(Debug, Deserialize)]
struct SessionParam {
    session: String,
}

/// Sets a user's password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub password: String,
    /// Force a change at the next sign-in (default true: an administrator
    /// should not know a person's working password).
    pub temporary: Option<bool>,
}

/// A running session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub principal_id: String,
    pub amr: Vec<String>,
    pub acr: String,
    #[schema(value_type = String)]
    pub auth_time: idplane_core::Timestamp,
    #[schema(value_type = String)]
    pub last_seen_at: idplane_core::Timestamp,
    #[schema(value_type = String)]
    pub expires_at: idplane_core::Timestamp,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl From<StoredSession> for SessionView {
    fn from(s: StoredSession) -> Self {
        Self {
            id: s.id,
            principal_id: s.principal_id.to_string(),
            amr: s.amr,
            acr: s.acr,
            auth_time: s.auth_time,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            source_ip: s.source_ip,
            user_agent: s.user_agent,
        }
    }
}

async fn user(state: &AppState, auth: &Authed, id: PrincipalId) -> ApiResult<PrincipalId> {
    Ok(state
        .app
        .principal(&auth.ctx, PrincipalKind::User, id)
        .await?
        .id)
}

/// Set a user's password (temporary by default: changed at next sign-in).
#[utoipa::path(post, path = "/users/{id}/password", tag = "authentication",
    params(("tenant" = String, Path), ("id" = String, Path)), request_body = SetPassword,
    responses((status = 204), (status = 422, body = Problem)))]
async fn set_password(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
    JsonBody(body): JsonBody<SetPassword>,
) -> ApiResult<StatusCode> {
    let id = user(&state, &auth, p.id).await?;
    state
        .app
        .set_password(
            &auth.ctx,
            id,
            &body.password,
            body.temporary.unwrap_or(true),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a user's second factors and passkeys (lost device) and end their sessions.
#[utoipa::path(post, path = "/users/{id}/factors/reset", tag = "authentication",
    params(("tenant" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
async fn reset_factors(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<StatusCode> {
    let id = user(&state, &auth, p.id).await?;
    state.app.reset_factors(&auth.ctx, id).await?;
    state.app.end_all_sessions(&auth.ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift the sign-in back-off of a user's account.
#[utoipa::path(post, path = "/users/{id}/unlock", tag = "authentication",
    params(("tenant" = String, Path), ("id" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
async fn unlock(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<StatusCode> {
    let id = user(&state, &auth, p.id).await?;
    state.app.unlock(&auth.ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's running sessions.
#[utoipa::path(get, path = "/users/{id}/sessions", tag = "authentication",
    params(("tenant" = String, Path), ("id" = String, Path)), responses((status = 200, body = Vec<SessionView>)))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<Json<Vec<SessionView>>> {
    let id = user(&state, &auth, p.id).await?;
    let sessions = state.app.sessions_of(&auth.ctx, id).await?;
    Ok(Json(sessions.into_iter().map(SessionView::from).collect()))
}

/// End every session of a user.
#[utoipa::path(delete, path = "/users/{id}/sessions", tag = "authentication",
    params(("tenant" = String, Path), ("id" = String, Path)), responses((status = 204)))]
async fn end_all_sessions(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<StatusCode> {
    let id = user(&state, &auth, p.id).await?;
    state.app.end_all_sessions(&auth.ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End one session.
#[utoipa::path(delete, path = "/sessions/{session}", tag = "authentication",
    params(("tenant" = String, Path), ("session" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
async fn end_session(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<SessionParam>,
) -> ApiResult<StatusCode> {
    state.app.end_session(&auth.ctx, &p.session, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's authentication policy.
#[utoipa::path(get, path = "/auth-policy", tag = "authentication", params(("tenant" = String, Path)),
    responses((status = 200, body = AuthPolicy)))]
async fn get_policy(State(state): State<AppState>, auth: Authed) -> ApiResult<Json<AuthPolicy>> {
    Ok(Json(state.app.auth_policy(&auth.ctx).await?))
}

/// Replace the tenant's authentication policy.
#[utoipa::path(put, path = "/auth-policy", tag = "authentication", params(("tenant" = String, Path)),
    request_body = AuthPolicy, responses((status = 200, body = AuthPolicy), (status = 422, body = Problem)))]
async fn put_policy(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(policy): JsonBody<AuthPolicy>,
) -> ApiResult<Json<AuthPolicy>> {
    Ok(Json(state.app.set_auth_policy(&auth.ctx, policy).await?))
}

/// A mail in the outbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailView {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    #[schema(value_type = String)]
    pub created_at: idplane_core::Timestamp,
}

/// Mail written to the outbox instead of being sent (dev mode, or no SMTP
/// configured), newest first. It may hold sign-in codes: admin tokens only.
#[utoipa::path(get, path = "/outbox", tag = "authentication", params(("tenant" = String, Path)),
    responses((status = 200, body = Vec<MailView>), (status = 404, body = Problem)))]
async fn outbox(State(state): State<AppState>, auth: Authed) -> ApiResult<Json<Vec<MailView>>> {
    if auth.caller.scope != idplane_app::tokens::Scope::Admin {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the outbox holds sign-in codes: admin scope only",
        ));
    }
    if !matches!(
        state.app.settings().mailer,
        idplane_app::authn::email::Mailer::Outbox
    ) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "mail is sent by SMTP; there is no outbox",
        ));
    }
    let mails = state.app.outbox(&auth.ctx, 100).await?;
    Ok(Json(
        mails
            .into_iter()
            .map(|m| MailView {
                id: m.id.to_string(),
                recipient: m.recipient,
                subject: m.subject,
                body: m.body,
                created_at: m.created_at,
            })
            .collect(),
    ))
}
