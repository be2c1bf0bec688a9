//! The OAuth 2.0 / OpenID Connect endpoints: translators between the wire
//! (forms, JSON, redirects, RFC 6749 error bodies) and the `idplane_app`
//! oidc use cases. Paths are fixed here and advertised by discovery. The
//! authorization endpoint is a page and lives with the pages.

mod client_auth;
mod device;
mod discovery;
mod endpoints;
mod jwks;
mod registration;
mod token;
mod wire;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use idplane_app::oidc::{OAuthError, OAuthResult};

use crate::http::AppState;

/// Endpoint paths, relative to the issuer.
pub mod paths {
    pub const JWKS: &str = "/oauth2/jwks";
    pub const AUTHORIZE: &str = "/oauth2/authorize";
    pub const TOKEN: &str = "/oauth2/token";
    pub const USERINFO: &str = "/oauth2/userinfo";
    pub const INTROSPECT: &str = "/oauth2/introspect";
    pub const REVOKE: &str = "/oauth2/revoke";
    pub const DEVICE_AUTHORIZATION: &str = "/oauth2/device_authorization";
    pub const PAR: &str = "/oauth2/par";
    pub const REGISTER: &str = "/oauth2/register";
    pub const END_SESSION: &str = "/oauth2/logout";
    /// Where a person enters a device flow user code.
    pub const DEVICE_VERIFICATION: &str = "/device";
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(jwks::routes())
        .route(
            "/.well-known/openid-configuration",
            get(discovery::configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::configuration),
        )
        .route(paths::TOKEN, post(token::token))
        .route(paths::INTROSPECT, post(endpoints::introspect))
        .route(paths::REVOKE, post(endpoints::revoke))
        .route(paths::PAR, post(endpoints::par))
        .route(
            paths::DEVICE_AUTHORIZATION,
            post(device::device_authorization),
        )
        .route(paths::REGISTER, post(registration::register))
        .route(
            &registration::configuration_path(),
            get(registration::read)
                .put(registration::replace)
                .delete(registration::delete),
        )
        .route(
            paths::USERINFO,
            get(endpoints::userinfo).post(endpoints::userinfo),
        )
}

/// The thumbprint of the key of the request's DPoP proof, if it has one
/// (RFC 9449 §4.3); a bad proof is an error, never ignored.
async fn dpop_jkt(
    state: &AppState,
    headers: &HeaderMap,
    method: &str,
    url: &str,
    access_token: Option<&str>,
) -> OAuthResult<Option<String>> {
    let mut proofs = headers.get_all("dpop").iter();
    let Some(proof) = proofs.next() else {
        return Ok(None);
    };
    if proofs.next().is_some() {
        return Err(OAuthError::new(
            idplane_app::oidc::ErrorCode::InvalidDpopProof,
            "send one DPoP proof",
        ));
    }
    let proof = proof.to_str().map_err(|_| {
        OAuthError::new(
            idplane_app::oidc::ErrorCode::InvalidDpopProof,
            "the DPoP proof is not text",
        )
    })?;
    let verified = state
        .app
        .verify_dpop_proof(proof, method, url, access_token)
        .await?;
    Ok(Some(verified.jkt))
}
