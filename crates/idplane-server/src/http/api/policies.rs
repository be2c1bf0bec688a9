//! Authorization policy: versions (push, list, read, activate), impact
//! analysis, explained decisions and the generated documentation.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idplane_app::policy::authzen::Evaluation;
use idplane_app::policy::bundle::PolicyBundle;
use idplane_app::policy::doc;
use idplane_app::policy::impact::Impact;
use idplane_app::policy::versions::PolicyVersion;
use idplane_core::Timestamp;
use idplane_store::policies::PolicyVersionInfo;
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
        .routes(routes!(list_versions, push_version))
        .routes(routes!(get_version))
        .routes(routes!(get_active))
        .routes(routes!(activate))
        .routes(routes!(impact))
        .routes(routes!(explain))
        .routes(routes!(policy_doc))
}

/// A version as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub author: String,
    pub message: String,
    pub created_at: Timestamp,
}

impl From<PolicyVersionInfo> for VersionView {
    fn from(v: PolicyVersionInfo) -> Self {
        Self {
            version: v.version,
            author: v.author,
            message: v.message,
            created_at: v.created_at,
        }
    }
}

/// A version with its contents.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDetail {
    #[serde(flatten)]
    pub info: VersionView,
    pub active: bool,
    pub bundle: PolicyBundle,
}

impl From<PolicyVersion> for VersionDetail {
    fn from(v: PolicyVersion) -> Self {
        Self {
            info: v.info.into(),
            active: v.active,
            bundle: v.bundle,
        }
    }
}

/// A change: the new bundle and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushVersion {
    pub message: String,
    pub bundle: PolicyBundle,
}

#[derive(Debug, Deserialize)]
struct VersionParam {
    version: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    /// The version to make active (an earlier one, to roll back).
    pub version: i64,
}

/// A proposed bundle and the requests to replay (the last day's decision
/// log when absent).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpactRequest {
    pub bundle: PolicyBundle,
    pub requests: Option<Vec<Evaluation>>,
}

/// A decision with the policies that determined it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Explanation {
    pub decision: bool,
    pub version: Option<i64>,
    pub determining_policies: Vec<String>,
    pub errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// List policy versions, newest first.
#[utoipa::path(get, path = "/policy/versions", tag = "policy", params(("tenant" = String, Path)),
    responses((status = 200, body = Vec<VersionView>)))]
async fn list_versions(
    State(state): State<AppState>,
    auth: Authed,
) -> ApiResult<Json<Vec<VersionView>>> {
    let versions = state.app.policy_versions(&auth.ctx, 1000).await?;
    Ok(Json(versions.into_iter().map(VersionView::from).collect()))
}

/// Push a new version: validated strictly against the schema, its tests
/// run; refused with every problem if either fails. It becomes active.
#[utoipa::path(post, path = "/policy/versions", tag = "policy", params(("tenant" = String, Path)),
    request_body = PushVersion,
    responses((status = 201, body = VersionView), (status = 422, body = Problem)))]
async fn push_version(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(body): JsonBody<PushVersion>,
) -> ApiResult<(StatusCode, Json<VersionView>)> {
    let info = state
        .app
        .put_policies(&auth.ctx, body.bundle, &body.message)
        .await?;
    Ok((StatusCode::CREATED, Json(info.into())))
}

/// Read one version.
#[utoipa::path(get, path = "/policy/versions/{version}", tag = "policy",
    params(("tenant" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = VersionDetail), (status = 404, body = Problem)))]
async fn get_version(
    State(state): State<AppState>,
    auth: Authed,
    PathParams(p): PathParams<VersionParam>,
) -> ApiResult<Json<VersionDetail>> {
    let version = state.app.policy_version(&auth.ctx, Some(p.version)).await?;
    Ok(Json(version.into()))
}

/// Read the active version.
#[utoipa::path(get, path = "/policy", tag = "policy", params(("tenant" = String, Path)),
    responses((status = 200, body = VersionDetail), (status = 404, body = Problem)))]
async fn get_active(State(state): State<AppState>, auth: Authed) -> ApiResult<Json<VersionDetail>> {
    Ok(Json(
        state.app.policy_version(&auth.ctx, None).await?.into(),
    ))
}

/// Make a version the active one (roll back or forward).
#[utoipa::path(post, path = "/policy/activate", tag = "policy", params(("tenant" = String, Path)),
    request_body = Activate, responses((status = 204), (status = 404, body = Problem)))]
async fn activate(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(body): JsonBody<Activate>,
) -> ApiResult<StatusCode> {
    state.app.activate_policies(&auth.ctx, body.version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replay requests against the live and a proposed version; every decision
/// that would flip, grouped by policy. Changes nothing.
#[utoipa::path(post, path = "/policy/impact", tag = "policy", params(("tenant" = String, Path)),
    request_body = ImpactRequest,
    responses((status = 200, body = Impact), (status = 422, body = Problem)))]
async fn impact(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(body): JsonBody<ImpactRequest>,
) -> ApiResult<Json<Impact>> {
    let impact = state
        .app
        .policy_impact(&auth.ctx, &body.bundle, body.requests)
        .await?;
    Ok(Json(impact))
}

/// Decide an AuthZEN evaluation and say why: the policy version, the
/// determining policies and any evaluation errors. Logged like any decision.
#[utoipa::path(post, path = "/policy/explain", tag = "policy", params(("tenant" = String, Path)),
    request_body = Evaluation,
    responses((status = 200, body = Explanation), (status = 400, body = Problem)))]
async fn explain(
    State(state): State<AppState>,
    auth: Authed,
    JsonBody(eval): JsonBody<Evaluation>,
) -> ApiResult<Json<Explanation>> {
    let decided = state
        .app
        .evaluate(&auth.ctx, &eval)
        .await?
        .map_err(|bad| Problem::new(StatusCode::BAD_REQUEST, "bad-request", bad.0))?;
    Ok(Json(Explanation {
        decision: decided.allowed,
        version: decided.version,
        determining_policies: decided.policies,
        errors: decided.errors,
        note: decided.note,
    }))
}

/// The active version as Markdown, generated from its annotations,
/// policies, schemas and tests.
#[utoipa::path(get, path = "/policy/doc", tag = "policy", params(("tenant" = String, Path)),
    responses((status = 200, content_type = "text/markdown", body = String)))]
async fn policy_doc(State(state): State<AppState>, auth: Authed) -> ApiResult<Response> {
    let version = state.app.policy_version(&auth.ctx, None).await?;
    let title = format!(
        "Authorization policy, version {} ({})",
        version.info.version, version.info.message
    );
    let markdown = doc::render(&version.bundle, &title)
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let mut response = markdown.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/markdown; charset=utf-8"),
    );
    Ok(response)
}
