//! Audit log queries and checkpoints.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use idplane_core::Timestamp;
use idplane_store::audit::AuditFilter;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::auth::Authed;
use crate::http::extract::QueryParams;
use crate::http::problem::{ApiResult, Problem};
use crate::http::views::{AuditView, CheckpointView};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(query_audit))
        .routes(routes!(checkpoint))
}

/// Filters for audit queries; all given must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// e.g. `root`, `token:<id>`, `system`, `anonymous`.
    pub actor: Option<String>,
    /// e.g. `user:<id>`.
    pub target: Option<String>,
    /// e.g. `user.create`.
    pub action: Option<String>,
    /// RFC 3339; inclusive.
    #[param(value_type = Option<String>)]
    pub since: Option<Timestamp>,
    /// RFC 3339; exclusive.
    #[param(value_type = Option<String>)]
    pub until: Option<Timestamp>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// 1 to 1000, default 100.
    pub limit: Option<u32>,
}

/// A page of audit records.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<i64>,
}

/// Query the tenant's audit log, oldest first.
#[utoipa::path(get, path = "/audit", tag = "audit", params(("tenant" = String, Path), AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem)))]
async fn query_audit(
    State(state): State<AppState>,
    auth: Authed,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = AuditFilter {
        actor: q.actor,
        target: q.target,
        action: q.action,
        since: q.since,
        until: q.until,
        after_seq: q.cursor,
        limit,
    };
    let records = state.app.audit_events(&auth.ctx, &filter).await?;
    let full = records.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if full {
        records.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(Json(AuditPage {
        items: records.into_iter().map(AuditView).collect(),
        next_cursor,
    }))
}

/// The latest signed checkpoint of the tenant's audit chain head (signed now
/// if the chain grew since the last one). Keep copies elsewhere: `idplane
/// audit verify --checkpoint FILE` proves the log still reaches it.
#[utoipa::path(get, path = "/audit/checkpoint", tag = "audit", params(("tenant" = String, Path)),
    responses((status = 200, body = CheckpointView), (status = 404, body = Problem)))]
async fn checkpoint(
    State(state): State<AppState>,
    auth: Authed,
) -> ApiResult<Json<CheckpointView>> {
    match state.app.audit_checkpoint(auth.ctx.tenant).await? {
        Some(cp) => Ok(Json(CheckpointView(cp))),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "the tenant has no audit events yet",
        )),
    }
}
