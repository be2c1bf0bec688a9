//! `/api/v1/keys`: the token signing keys (global administrators only).
//! Their public halves are published at the JWKS endpoint; this shows the
//! whole life of each key and rotates them on demand.

use axum::Json;
use axum::extract::State;
use idplane_app::oidc::keys::{KeyInfo, KeyStatus, SigningAlgorithm};
use idplane_core::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::AppState;
use crate::http::auth::GlobalAuthed;
use crate::http::extract::JsonBody;
use crate::http::problem::{ApiResult, Problem};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys))
        .routes(routes!(rotate_keys))
}

/// A token signing key (never its private half).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The key id: the RFC 7638 thumbprint of the public key.
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub status: KeyStatus,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub retired_at: Option<Timestamp>,
    /// When a retired key leaves the JWKS.
    #[schema(value_type = Option<String>)]
    pub published_until: Option<Timestamp>,
    /// The public JWK as published.
    #[schema(value_type = Object)]
    pub public_jwk: Value,
}

impl From<KeyInfo> for KeyView {
    fn from(k: KeyInfo) -> Self {
        Self {
            kid: k.kid,
            algorithm: k.algorithm,
            status: k.status,
            created_at: k.created_at,
            retired_at: k.retired_at,
            published_until: k.published_until,
            public_jwk: k.public_jwk,
        }
    }
}

/// The keys, oldest first (the list is short: no paging).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

/// What to rotate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeys {
    /// Only this algorithm's key; every algorithm's when absent.
    pub algorithm: Option<SigningAlgorithm>,
}

/// List the token signing keys: active, retired (still published) and
/// unpublished, oldest first.
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = KeyList), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list_keys(State(state): State<AppState>, auth: GlobalAuthed) -> ApiResult<Json<KeyList>> {
    let keys = state.app.signing_keys(auth.ctx.now).await?;
    Ok(Json(KeyList {
        items: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// Rotate token signing keys: a new key signs from now on; the one it
/// replaces stays in the JWKS for 24 hours, so tokens it signed still
/// verify. Returns the new keys.
#[utoipa::path(post, path = "/api/v1/keys/rotate", tag = "keys", request_body = RotateKeys,
    responses((status = 200, body = KeyList), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn rotate_keys(
    State(state): State<AppState>,
    auth: GlobalAuthed,
    JsonBody(cmd): JsonBody<RotateKeys>,
) -> ApiResult<Json<KeyList>> {
    let algorithms = match cmd.algorithm {
        Some(algorithm) => vec![algorithm],
        None => SigningAlgorithm::ALL.to_vec(),
    };
    let keys = state
        .app
        .rotate_signing_keys(&auth.ctx, &algorithms)
        .await?;
    Ok(Json(KeyList {
        items: keys.into_iter().map(KeyView::from).collect(),
    }))
}
