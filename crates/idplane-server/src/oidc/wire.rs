//! OAuth wire forms: form bodies, error bodies (RFC 6749 §5.2) with the
//! statuses and `WWW-Authenticate` challenges the RFCs require, and JSON
//! responses that must not be cached.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idplane_app::oidc::authorize::Params;
use idplane_app::oidc::{ErrorCode, OAuthError};
use serde_json::json;

use crate::http::AppState;

/// An OAuth JSON response or error.
#[derive(Debug)]
pub enum OAuthResponse {
    Ok(serde_json::Value),
    Err(OAuthError),
}

impl From<OAuthResponse> for Response {
    fn from(value: OAuthResponse) -> Self {
        value.into_response()
    }
}

impl IntoResponse for OAuthResponse {
    fn into_response(self) -> Response {
        match self {
            Self::Ok(body) => no_store(Json(body).into_response()),
            Self::Err(err) => error_response(&err, None),
        }
    }
}

/// An `application/x-www-form-urlencoded` body, refused in the OAuth
/// error format when it is something else or unreadable.
pub struct OAuthForm(pub Params);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(error_response(
                &OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"),
                None,
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| {
                error_response(
                    &OAuthError::invalid_request("the body could not be read"),
                    None,
                )
            })?;
        Ok(Self(Params::from_pairs(
            url::form_urlencoded::parse(&bytes).into_owned(),
        )))
    }
}

/// The JSON error body, with `WWW-Authenticate` for 401s (scheme `Basic`
/// for client authentication, `Bearer`/`DPoP` for resource requests).
pub fn error_response(err: &OAuthError, challenge_scheme: Option<&str>) -> Response {
    let status = StatusCode::from_u16(err.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (
        status,
        Json(json!({"error": err.code.as_str(), "error_description": err.description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED || challenge_scheme.is_some() {
        let scheme = challenge_scheme.unwrap_or("Basic");
        let value = match err.code {
            ErrorCode::InvalidClient => format!("{scheme} realm=\"idplane\""),
            code => format!(
                "{scheme} realm=\"idplane\", error=\"{}\", error_description=\"{}\"",
                code.as_str(),
                err.description.replace(['"', '\\'], "'")
            ),
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    no_store(response)
}

/// An error at an endpoint that takes DPoP proofs: a fresh server nonce
/// rides along when the proof lacked one (RFC 9449 §8).
pub fn dpop_error(state: &AppState, err: &OAuthError) -> Response {
    let mut response = error_response(err, None);
    if matches!(
        err.code,
        ErrorCode::UseDpopNonce | ErrorCode::InvalidDpopProof
    ) && let Ok(nonce) = HeaderValue::from_str(&state.app.dpop_nonce())
    {
        response.headers_mut().insert("dpop-nonce", nonce);
    }
    response
}

/// Marks a response `Cache-Control: no-store` (RFC 6749 §5.1).
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
