//! The HTTP edge: routers per protocol, middleware, and the shared state.

pub mod api;
pub mod auth;
pub mod extract;
pub mod ops;
pub mod problem;
mod request_metrics;
pub mod views;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use idplane_app::App;
use idplane_core::TenantId;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use self::problem::Problem;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach. Extractors clone it several times per
/// request, so a clone is one reference count.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub app: App,
    /// The dev-mode root token, if any.
    pub root_token: Option<String>,
    pub metrics: Option<PrometheusHandle>,
    tenant_ids: RwLock<HashMap<String, TenantId>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(app: App, root_token: Option<String>, metrics: Option<PrometheusHandle>) -> Self {
        Self(Arc::new(Shared {
            app,
            root_token,
            metrics,
            tenant_ids: RwLock::default(),
        }))
    }

    /// The id of the tenant called `name`, cached: tenant ids never change.
    pub async fn tenant_id(&self, name: &str) -> Result<TenantId, Problem> {
        if let Some(id) = self
            .tenant_ids
            .read()
            .ok()
            .and_then(|m| m.get(name).copied())
        {
            return Ok(id);
        }
        let id = self.app.tenant(name).await?.id;
        if let Ok(mut map) = self.tenant_ids.write() {
            map.insert(name.to_owned(), id);
        }
        Ok(id)
    }

    /// Drops a deleted tenant from the cache.
    pub fn forget_tenant(&self, name: &str) {
        if let Ok(mut map) = self.tenant_ids.write() {
            map.remove(name);
        }
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api::router();
    let doc = Arc::new(doc);
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(ops::routes(doc))
        .merge(api)
        .merge(crate::pages::routes())
        .merge(crate::oidc::routes())
        .merge(crate::authzen::routes())
        .merge(crate::scim::routes())
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(request_metrics::record))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(axum::middleware::from_fn(time_limit))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "an internal error occurred",
            ))
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!(
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = %id,
                actor = tracing::field::Empty,
            )
        }))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            HeaderName::from_static("x-vault-token"),
        ]))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The longest a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// An HR import applies a whole workforce snapshot (100,000 rows take
/// about a minute on two cores) in one transaction.
const HR_IMPORT_TIMEOUT: Duration = Duration::from_secs(600);

/// Answers 408 once a request runs past its time limit.
async fn time_limit(req: Request, next: Next) -> Response {
    let limit = if req.uri().path().ends_with("/hr/imports") {
        HR_IMPORT_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request took longer than {} s", limit.as_secs()),
        )),
    }
}
