//! OpenID Connect Discovery 1.0 and RFC 8414 metadata: one document, true
//! to what the endpoints do (every value here is exercised by tests).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use idplane_app::authn::sessions::acr;
use idplane_app::oidc::keys::SigningAlgorithm;
use serde_json::{Value, json};

use super::paths;
use crate::http::AppState;

/// Algorithms we accept on client assertions and DPoP proofs.
pub const CLIENT_JWS_ALGS: [&str; 5] = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];

/// The metadata document for `issuer`.
pub fn metadata(issuer: &str) -> Value {
    let url = |path: &str| format!("{issuer}{path}");
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    ];
    let signing: Vec<&str> = SigningAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
    json!({
        "issuer": issuer,
        "authorization_endpoint": url(paths::AUTHORIZE),
        "token_endpoint": url(paths::TOKEN),
        "userinfo_endpoint": url(paths::USERINFO),
        "jwks_uri": url(paths::JWKS),
        "registration_endpoint": url(paths::REGISTER),
        "introspection_endpoint": url(paths::INTROSPECT),
        "revocation_endpoint": url(paths::REVOKE),
        "pushed_authorization_request_endpoint": url(paths::PAR),
        "device_authorization_endpoint": url(paths::DEVICE_AUTHORIZATION),
        "end_session_endpoint": url(paths::END_SESSION),
        "require_pushed_authorization_requests": false,
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing,
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_JWS_ALGS,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": CLIENT_JWS_ALGS,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": CLIENT_JWS_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": [acr::SINGLE_FACTOR, acr::MULTI_FACTOR, acr::PHISHING_RESISTANT],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp",
            "at_hash", "sid", "name", "preferred_username", "updated_at", "email",
            "email_verified",
        ],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": CLIENT_JWS_ALGS,
        "tls_client_certificate_bound_access_tokens": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
    })
}

/// `GET /.well-known/openid-configuration` and
/// `/.well-known/oauth-authorization-server`.
pub async fn configuration(State(state): State<AppState>) -> Response {
    let mut response = Json(metadata(state.app.issuer())).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
