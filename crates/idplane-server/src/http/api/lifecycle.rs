//! Lifecycle: deprovisioning leavers, what they lost, the durable jobs
//! (admin view) and the tenant's lifecycle settings.

use axum::Json;
use axum::extract::State;
use idplane_app::lifecycle::{LeaverCause, LeaverReason, LifecycleSettings};
use idplane_core::{PrincipalId, Timestamp};
use idplane_store::jobs::{Job, JobFilter, JobState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{PageParams, etag_header};
use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::{JsonBody, PathParams, QueryParams};
use crate::http::problem::{ApiResult, Problem};
use crate::http::views::{List, PrincipalView};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(deprovision_user))
        .routes(routes!(leaver_record))
        .routes(routes!(list_jobs))
        .routes(routes!(get_settings, put_settings))
}

#[derive(Debug, Deserialize)]
struct IdParam {
    id: PrincipalId,
}

/// Deprovision a user as a leaver: sessions, tokens, consents, memberships
/// and role assignments end (recorded); owned accounts and sponsored
/// contractors go to their manager, flagged for review. Idempotent.
#[utoipa::path(post, path = "/users/{id}/deprovision", tag = "users",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PrincipalView), (status = 404, body = Problem)))]
async fn deprovision_user(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<(axum::http::HeaderMap, Json<PrincipalView>)> {
    let cause = LeaverCause::new(LeaverReason::Admin);
    let user = state.app.deprovision_user(&auth.ctx, p.id, cause).await?;
    Ok((
        etag_header(user.version),
        Json(PrincipalView::at(user, auth.ctx.now)),
    ))
}

/// What a user's latest deprovisioning removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaverRecordView {
    pub id: String,
    /// `hr_termination`, `contractor_end`, `admin` or `scim`.
    pub cause: String,
    pub hr_change_id: Option<String>,
    /// Memberships, role assignments, consents, and the principals handed over.
    #[schema(value_type = Object)]
    pub removed: Value,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

/// What the user lost when they last left (for reviewing a rehire).
#[utoipa::path(get, path = "/users/{id}/leaver-record", tag = "users",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = LeaverRecordView), (status = 404, body = Problem)))]
async fn leaver_record(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<IdParam>,
) -> ApiResult<Json<LeaverRecordView>> {
    let record = state
        .app
        .leaver_record(&auth.ctx, p.id)
        .await?
        .ok_or_else(|| idplane_app::AppError::NotFound(format!("leaver record of `{}`", p.id)))?;
    Ok(Json(LeaverRecordView {
        id: record.id,
        cause: record.cause,
        hr_change_id: record.hr_change_id,
        removed: record.removed,
        created_at: record.created_at,
    }))
}

/// A job's state.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStateParam {
    Pending,
    Done,
    Dead,
}

impl From<JobStateParam> for JobState {
    fn from(s: JobStateParam) -> Self {
        match s {
            JobStateParam::Pending => JobState::Pending,
            JobStateParam::Done => JobState::Done,
            JobStateParam::Dead => JobState::Dead,
        }
    }
}

/// Filters for the job list; all given must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub state: Option<JobStateParam>,
    /// `user.start`, `user.end`, `contractor.reminder`.
    pub kind: Option<String>,
    /// Jobs about this principal id.
    pub subject: Option<String>,
}

/// A durable job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub key: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    #[schema(value_type = String)]
    pub run_at: Timestamp,
    pub attempts: i64,
    pub state: String,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    #[schema(value_type = Option<String>)]
    pub lease_until: Option<Timestamp>,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            key: j.key,
            payload: j.payload,
            run_at: j.run_at,
            attempts: j.attempts,
            state: j.state.as_str().to_owned(),
            last_error: j.last_error,
            lease_owner: j.lease_owner,
            lease_until: j.lease_until,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// List the tenant's jobs (end dates, reminders, start dates), oldest first.
#[utoipa::path(get, path = "/jobs", tag = "lifecycle", params(("tenant" = String, Path), JobQuery),
    responses((status = 200, body = List<JobView>)))]
async fn list_jobs(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(q): QueryParams<JobQuery>,
) -> ApiResult<Json<List<JobView>>> {
    let filter = JobFilter {
        state: q.state.map(JobState::from),
        kind: q.kind,
        subject: q.subject,
    };
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page();
    let found = state.app.jobs(&auth.ctx, &filter, &page).await?;
    Ok(Json(List::from_page(
        found,
        |j| j.id.clone(),
        JobView::from,
    )))
}

/// The tenant's lifecycle settings.
#[utoipa::path(get, path = "/lifecycle/settings", tag = "lifecycle", params(("tenant" = String, Path)),
    responses((status = 200, body = LifecycleSettings)))]
async fn get_settings(
    State(state): State<AppState>,
    auth: Authed,
) -> ApiResult<Json<LifecycleSettings>> {
    Ok(Json(state.app.lifecycle_settings(&auth.ctx).await?))
}

/// Replace the tenant's lifecycle settings.
#[utoipa::path(put, path = "/lifecycle/settings", tag = "lifecycle", params(("tenant" = String, Path)),
    request_body = LifecycleSettings,
    responses((status = 200, body = LifecycleSettings), (status = 422, body = Problem)))]
async fn put_settings(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(settings): JsonBody<LifecycleSettings>,
) -> ApiResult<Json<LifecycleSettings>> {
    Ok(Json(
        state
            .app
            .set_lifecycle_settings(&auth.ctx, settings)
            .await?,
    ))
}
