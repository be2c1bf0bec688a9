//! RFC 9457 problem documents: the error format of the native API, and the
//! one place where [`AppError`] becomes an HTTP status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idplane_app::AppError;
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The field at fault, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem of `status` with a short slug naming its kind.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:idplane:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    /// 401 with a `WWW-Authenticate` challenge.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid bearer token is required (Authorization: Bearer TOKEN)",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthenticated = status == StatusCode::UNAUTHORIZED;
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if unauthenticated {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"idplane\""),
            );
        }
        response
    }
}

impl From<AppError> for Problem {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Invalid(v) => Problem {
                field: Some(v.field.to_owned()),
                ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", v.to_string())
            },
            AppError::NotFound(what) => Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("{what} not found"),
            ),
            AppError::Conflict(msg) => Problem::new(StatusCode::CONFLICT, "conflict", msg),
            e @ AppError::VersionMismatch { .. } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                e.to_string(),
            ),
            AppError::Unauthenticated => Problem::unauthenticated(),
            e @ AppError::TooManyAttempts { .. } => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-attempts",
                e.to_string(),
            ),
            AppError::Forbidden(msg) => Problem::new(StatusCode::FORBIDDEN, "forbidden", msg),
            AppError::Internal(detail) => {
                // The detail may name internals: log it, never return it.
                tracing::error!(error = %detail, "internal error");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred",
                )
            }
        }
    }
}

/// Result type of API handlers.
pub type ApiResult<T> = Result<T, Problem>;
