//! OAuth 2.0 protocol errors (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
//! RFC 8628 §3.5, RFC 9449 §7, RFC 7591 §3.2.2): a registered `error` code
//! and a description safe to show the client. Internal failures become
//! `server_error` with no detail; the detail goes to the log.

use crate::AppError;

/// A registered OAuth error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    InvalidRequestUri,
    InvalidRequestObject,
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    InvalidToken,
    InsufficientScope,
    InvalidDpopProof,
    UseDpopNonce,
    InvalidClientMetadata,
    InvalidRedirectUri,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
        }
    }

    /// The HTTP status of this error at the token-style endpoints.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope | Self::AccessDenied => 403,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An OAuth error: its code and a description for the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }
}

impl From<AppError> for OAuthError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Invalid(e) => Self::invalid_request(e.to_string()),
            AppError::Unauthenticated => Self::invalid_client("client authentication failed"),
            AppError::TooManyAttempts { .. } => Self::new(
                ErrorCode::TemporarilyUnavailable,
                "too many attempts; slow down",
            ),
            AppError::Forbidden(why) => Self::new(ErrorCode::AccessDenied, why),
            AppError::NotFound(what) => Self::invalid_request(format!("{what} not found")),
            AppError::Conflict(why) => Self::invalid_request(why),
            AppError::VersionMismatch { .. } => Self::new(
                ErrorCode::TemporarilyUnavailable,
                "concurrent change; retry",
            ),
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error in an OAuth request");
                Self::new(ErrorCode::ServerError, "an internal error occurred")
            }
        }
    }
}

impl From<idplane_store::StoreError> for OAuthError {
    fn from(err: idplane_store::StoreError) -> Self {
        AppError::from(err).into()
    }
}

/// Result alias for protocol operations.
pub type OAuthResult<T> = std::result::Result<T, OAuthError>;
