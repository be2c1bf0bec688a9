//! HR-driven lifecycle: the tenant's birthright rules, HR CSV imports, and
//! the leavers report.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idplane_app::lifecycle::birthright::LifecycleRules;
use idplane_app::lifecycle::hr::{HrMapping, ImportOutcome, LeaverReport};
use idplane_core::Timestamp;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::{JsonBody, QueryParams};
use crate::http::problem::{ApiResult, Problem};

/// An HR snapshot of 100,000 rows is about 15 MB.
const MAX_CSV_BYTES: usize = 64 * 1024 * 1024;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    let (schemas, paths, import) = routes!(hr_import);
    OpenApiRouter::new()
        .routes(routes!(get_rules, put_rules))
        .routes((
            schemas,
            paths,
            import.layer(DefaultBodyLimit::max(MAX_CSV_BYTES)),
        ))
        .routes(routes!(leavers))
}

/// The tenant's lifecycle rules.
#[utoipa::path(get, path = "/lifecycle/rules", tag = "lifecycle", params(("tenant" = String, Path)),
    responses((status = 200, body = LifecycleRules)))]
async fn get_rules(State(state): State<AppState>, auth: Authed) -> ApiResult<Json<LifecycleRules>> {
    Ok(Json(state.app.lifecycle_rules(&auth.ctx).await?))
}

/// Replace the tenant's lifecycle rules (birthright, mover grace, leaver
/// threshold). Every group and role named must exist.
#[utoipa::path(put, path = "/lifecycle/rules", tag = "lifecycle", params(("tenant" = String, Path)),
    request_body = LifecycleRules, responses((status = 200, body = LifecycleRules), (status = 422, body = Problem)))]
async fn put_rules(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(rules): JsonBody<LifecycleRules>,
) -> ApiResult<Json<LifecycleRules>> {
    Ok(Json(state.app.set_lifecycle_rules(&auth.ctx, rules).await?))
}

/// How to run an import.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// The column mapping as JSON, e.g.
    /// `{"employee_id":"Employee ID","username":"Login","department":"Dept"}`
    /// (see the `HrMapping` schema).
    pub mapping: String,
    /// Plan only (default false).
    pub dry_run: Option<bool>,
    /// Apply even when the leavers exceed the tenant's share (default false).
    pub force: Option<bool>,
}

/// Import an HR snapshot: the whole workforce as CSV (`text/csv`, UTF-8, a
/// header row). Answers the plan; 422 with the plan when it was refused
/// (row errors, or too many leavers without `force`) and nothing was written.
#[utoipa::path(post, path = "/hr/imports", tag = "lifecycle",
    params(("tenant" = String, Path), ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportOutcome), (status = 422, body = ImportOutcome),
        (status = 400, body = Problem), (status = 415, body = Problem)))]
async fn hr_import(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(params): QueryParams<ImportParams>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"));
    if !csv {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "the body must be text/csv",
        ));
    }
    let mapping: HrMapping = serde_json::from_str(&params.mapping).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            format!("mapping: {e}"),
        )
    })?;
    let dry_run = params.dry_run.unwrap_or(false);
    let outcome = state
        .app
        .hr_import(
            &auth.ctx,
            &body,
            &mapping,
            dry_run,
            params.force.unwrap_or(false),
        )
        .await?;
    let status = if dry_run || outcome.applied {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(outcome)).into_response())
}

/// Which leavers to report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LeaversQuery {
    /// RFC 3339: leavers received at or after this (default: 30 days ago).
    #[param(value_type = Option<String>)]
    pub since: Option<Timestamp>,
}

/// Leavers with their HR termination time, when idplane received it, when
/// the account was fully deprovisioned, and whether that took over 24 hours.
#[utoipa::path(get, path = "/reports/leavers", tag = "lifecycle",
    params(("tenant" = String, Path), LeaversQuery),
    responses((status = 200, body = Vec<LeaverReport>)))]
async fn leavers(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(q): QueryParams<LeaversQuery>,
) -> ApiResult<Json<Vec<LeaverReport>>> {
    let since = q.since.unwrap_or_else(|| {
        auth.ctx
            .now
            .checked_sub(jiff::SignedDuration::from_hours(30 * 24))
            .unwrap_or(auth.ctx.now)
    });
    Ok(Json(state.app.leavers_report(&auth.ctx, since).await?))
}
