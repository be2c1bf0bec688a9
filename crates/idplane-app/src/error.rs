//! The one error type of the use cases. The server maps it to each
//! protocol's error format; internal details are logged, never returned.

use idplane_core::ValidationError;
use idplane_store::StoreError;

/// What went wrong in a use case.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the resource was changed by someone else (version {current}); fetch it and retry")]
    VersionMismatch { current: i64 },
    #[error("authentication failed")]
    Unauthenticated,
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("{0}")]
    Forbidden(String),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Duplicate(what) => AppError::Conflict(format!("{what} already exists")),
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// Result alias for use cases.
pub type Result<T, E = AppError> = std::result::Result<T, E>;
