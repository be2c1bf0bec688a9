//! Operational endpoints: liveness, readiness, Prometheus metrics and the
//! OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use super::problem::Problem;

pub fn routes(doc: Arc<utoipa::openapi::OpenApi>) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/openapi.json",
            get(move || async move { Json(doc.as_ref().clone()) }),
        )
}

/// Ready when the store answers and the signing keys unseal.
async fn readyz(State(state): State<AppState>) -> Result<&'static str, Problem> {
    let start = std::time::Instant::now();
    let ping = state.app.store().ping().await;
    metrics::histogram!("idplane_store_ping_seconds").record(start.elapsed().as_secs_f64());
    if let Err(e) = ping {
        tracing::warn!(error = %e, "readiness: store unreachable");
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "storage is unreachable",
        ));
    }
    Ok("ready")
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let Some(handle) = &state.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are disabled").into_response();
    };
    metrics::gauge!("idplane_audit_backlog").set(state.app.audit_writer().backlog() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
