//! SCIM errors (RFC 7644 §3.12): an HTTP status, an optional `scimType`
//! and a detail, rendered by the server as the `Error` message schema.

use crate::AppError;

/// A SCIM error response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidSyntax"), detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidValue"), detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidFilter"), detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidPath"), detail)
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(400, Some("noTarget"), detail)
    }

    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(400, Some("mutability"), detail)
    }

    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(409, Some("uniqueness"), detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::new(400, Some("tooMany"), detail)
    }
}

impl From<AppError> for ScimError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Invalid(e) => Self::invalid_value(e.to_string()),
            AppError::NotFound(what) => Self::not_found(format!("{what} not found")),
            AppError::Conflict(detail) if detail.contains("already exists") => {
                Self::uniqueness(detail)
            }
            AppError::Conflict(detail) => Self::new(409, None, detail),
            e @ AppError::VersionMismatch { .. } => Self::new(412, None, e.to_string()),
            AppError::Unauthenticated => Self::new(401, None, "authentication failed"),
            e @ AppError::TooManyAttempts { .. } => Self::new(429, None, e.to_string()),
            AppError::Forbidden(detail) => Self::new(403, None, detail),
            AppError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error in a SCIM request");
                Self::new(500, None, "internal error")
            }
        }
    }
}
