//! The OpenID AuthZEN Authorization API 1.0: a translator between its JSON
//! and the `idplane_app::policy` decision calls. Callers are policy
//! enforcement points with a `pdp` (or `admin`) token; a request that
//! cannot be evaluated is a 400 problem, never an allow.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use idplane_app::policy::authzen::{Action, Entity, Evaluation};
use idplane_app::policy::authzen::{
    EvaluationResponse, Evaluations, EvaluationsResponse, MAX_EVALUATIONS,
};
use idplane_app::policy::engine::BadRequest;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::http::AppState;
use crate::http::auth::PdpCaller;
use crate::http::extract::JsonBody;
use crate::http::problem::{ApiResult, Problem};

pub const EVALUATION: &str = "/access/v1/evaluation";
pub const EVALUATIONS: &str = "/access/v1/evaluations";
pub const SEARCH_ACTION: &str = "/access/v1/search/action";
pub const SEARCH_SUBJECT: &str = "/access/v1/search/subject";
pub const METADATA: &str = "/.well-known/authzen-configuration";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(METADATA, get(metadata))
        .route(EVALUATION, post(evaluation))
        .route(EVALUATIONS, post(evaluations))
        .route(SEARCH_ACTION, post(search_action))
        .route(SEARCH_SUBJECT, post(search_subject))
}

/// The PDP metadata: exactly the endpoints that work.
async fn metadata(State(state): State<AppState>) -> Json<Value> {
    let issuer = state.app.issuer();
    Json(json!({
        "policy_decision_point": issuer,
        "access_evaluation_endpoint": format!("{issuer}{EVALUATION}"),
        "access_evaluations_endpoint": format!("{issuer}{EVALUATIONS}"),
        "search_action_endpoint": format!("{issuer}{SEARCH_ACTION}"),
        "search_subject_endpoint": format!("{issuer}{SEARCH_SUBJECT}"),
        "capabilities": {
            "max_evaluations": MAX_EVALUATIONS,
            "evaluations_semantic": ["execute_all", "deny_on_first_deny", "permit_on_first_permit"],
        },
    }))
}

async fn evaluation(
    State(state): State<AppState>,
    caller: PdpCaller,
    JsonBody(eval): JsonBody<Evaluation>,
) -> ApiResult<Json<EvaluationResponse>> {
    let decided = state.app.evaluate(&caller.ctx, &eval).await?.map_err(bad)?;
    Ok(Json(EvaluationResponse {
        decision: decided.allowed,
        context: None,
    }))
}

async fn evaluations(
    State(state): State<AppState>,
    caller: PdpCaller,
    JsonBody(batch): JsonBody<Evaluations>,
) -> ApiResult<Json<EvaluationsResponse>> {
    let answers = state
        .app
        .evaluate_batch(&caller.ctx, &batch)
        .await?
        .map_err(bad)?;
    Ok(Json(answers))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionSearch {
    subject: Entity,
    resource: Entity,
    #[serde(default)]
    context: Map<String, Value>,
    /// Accepted for the spec's sake; one page holds every result.
    #[serde(default)]
    #[expect(dead_code, reason = "results always fit one page")]
    page: Option<Value>,
}

async fn search_action(
    State(state): State<AppState>,
    caller: PdpCaller,
    JsonBody(search): JsonBody<ActionSearch>,
) -> ApiResult<Json<Value>> {
    let names = state
        .app
        .search_actions(
            &caller.ctx,
            &search.subject,
            &search.resource,
            &search.context,
        )
        .await?;
    let results: Vec<Value> = names
        .into_iter()
        .map(|name| json!({"name": name}))
        .collect();
    Ok(Json(json!({"results": results})))
}

/// The subject of a subject search: a type, no id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectType {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageToken {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectSearch {
    subject: SubjectType,
    action: Action,
    resource: Entity,
    #[serde(default)]
    context: Map<String, Value>,
    page: Option<PageToken>,
}

async fn search_subject(
    State(state): State<AppState>,
    caller: PdpCaller,
    JsonBody(search): JsonBody<SubjectSearch>,
) -> ApiResult<Json<Value>> {
    let found = state
        .app
        .search_subjects(
            &caller.ctx,
            &search.subject.kind,
            &search.action,
            &search.resource,
            &search.context,
            search.page.and_then(|p| p.token),
        )
        .await?
        .map_err(bad)?;
    let results: Vec<Value> = found
        .ids
        .into_iter()
        .map(|id| json!({"type": search.subject.kind, "id": id}))
        .collect();
    Ok(Json(json!({
        "results": results,
        "page": {"next_token": found.next.unwrap_or_default()},
    })))
}

fn bad(err: BadRequest) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "bad-request", err.0)
}
