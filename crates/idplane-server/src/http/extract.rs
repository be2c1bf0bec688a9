//! Request extractors that fail with problem documents: JSON bodies (right
//! content type, valid UTF-8, no unknown fields), `If-Match`, the tenant in
//! scope, and the caller's request metadata.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use idplane_core::RequestMeta;
use serde::de::DeserializeOwned;

use super::problem::Problem;

/// A JSON request body, refused with a problem document when the content
/// type, size, encoding, syntax or fields are wrong.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "application/json" || v == "application/merge-patch+json"
            })
            .unwrap_or(false);
        if !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too-large",
                        "the body is larger than the limit",
                    )
                } else {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "bad-body",
                        "the body could not be read",
                    )
                }
            })?;
        if std::str::from_utf8(&bytes).is_err() {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-encoding",
                "the body is not valid UTF-8",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            let (status, slug) = if e.is_data() {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
            } else {
                (StatusCode::BAD_REQUEST, "malformed-json")
            };
            Problem::new(status, slug, e.to_string())
        })
    }
}

/// The version named by `If-Match` (`"3"`, `W/"3"` or `*`), if any.
#[derive(Clone, Copy, Debug)]
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
        tag.parse().map(|v| IfMatch(Some(v))).map_err(|_| {
            Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                format!("If-Match `{text}` names no version of this resource"),
            )
        })
    }
}

/// The strong ETag of a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The tenant a request addresses: from the `{tenant}` path segment, or the
/// default tenant for routes mounted at `/api/v1` directly.
#[derive(Clone, Debug)]
pub struct TenantName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TenantName {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let params =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map(|Path(p)| p)
                .unwrap_or_default();
        Ok(TenantName(
            params
                .get("tenant")
                .cloned()
                .unwrap_or_else(|| idplane_app::DEFAULT_TENANT.to_owned()),
        ))
    }
}

/// Request id, source address and user agent, for audit events.
#[derive(Clone, Debug)]
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(512).collect::<String>())
        };
        let source_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(Meta(RequestMeta {
            request_id: header("x-request-id"),
            source_ip,
            user_agent: header("user-agent"),
        }))
    }
}

/// Query parameters, refused with a problem document when malformed or
/// unknown.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| QueryParams(q))
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-query", e.body_text()))
    }
}

/// Path parameters, refused with a problem document when malformed.
#[derive(Debug)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| PathParams(p))
            .map_err(|e| Problem::new(StatusCode::NOT_FOUND, "not-found", e.body_text()))
    }
}
