//! The JSON Web Key Set (RFC 7517) relying parties verify our tokens with:
//! at the `jwks_uri` discovery advertises, and at `/.well-known/jwks.json`,
//! where some libraries look without reading discovery. No authentication.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::paths;
use crate::http::AppState;

/// The conventional location of the set.
const WELL_KNOWN_JWKS: &str = "/.well-known/jwks.json";

/// Relying parties cache the set. A rotated-in key signs at once, so a
/// short lifetime bounds how long a relying party that refetches only on
/// expiry refuses new tokens.
const CACHE_CONTROL: &str = "public, max-age=60";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(paths::JWKS, get(jwks))
        .route(WELL_KNOWN_JWKS, get(jwks))
}

/// `GET /oauth2/jwks` and `/.well-known/jwks.json`: the active keys and
/// those retired within the grace period, public halves only.
async fn jwks(State(state): State<AppState>) -> Response {
    let now = state.app.clock().now();
    let mut response = Json(state.app.jwks(now)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}
