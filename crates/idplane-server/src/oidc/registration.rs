//! Dynamic client registration (RFC 7591) at `POST /oauth2/register`,
//! protected by an initial access token (an admin token valid in the
//! default tenant, or the dev-mode root token), and its management
//! (RFC 7592) at `/oauth2/register/{client_id}` with the registration
//! access token issued to the client. Errors are RFC 7591 §3.2.2 JSON
//! bodies: `invalid_redirect_uri` and `invalid_client_metadata` (400), and
//! `invalid_token` (401, the same whether or not the client exists).

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idplane_app::AppError;
use idplane_app::oidc::registration::{ClientMetadata, DynamicClient, invalid_token};
use idplane_app::oidc::{ErrorCode, OAuthError, OAuthResult};
use idplane_app::tokens::{Caller, root_token_matches};
use idplane_core::{Actor, Ctx};

use super::paths;
use super::wire::{OAuthResponse, error_response, no_store};
use crate::http::extract::Meta;
use crate::http::{AppState, MAX_BODY_BYTES};

/// Largest accepted client metadata document.
pub const MAX_METADATA_BYTES: usize = 128 * 1024;

/// The client configuration endpoint, relative to the issuer.
pub fn configuration_path() -> String {
    format!("{}/{{client_id}}", paths::REGISTER)
}

/// `POST /oauth2/register`: 201 with the client information response.
pub async fn register(
    State(state): State<AppState>,
    meta: Meta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let ctx = initial_access(&state, &headers, meta).await?;
        let metadata = read_metadata(&headers, body).await?;
        state.app.register_client(&ctx, &metadata).await
    }
    .await;
    match result {
        Ok(registered) => {
            let mut response = answer(&state, &registered);
            *response.status_mut() = StatusCode::CREATED;
            response
        }
        Err(e) => error(&e),
    }
}

/// `GET /oauth2/register/{client_id}`: the registration, without secret.
pub async fn read(
    State(state): State<AppState>,
    client_id: Result<Path<String>, PathRejection>,
    meta: Meta,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (ctx, client_id, token) = management(&state, client_id, meta, &headers).await?;
        state.app.read_registration(&ctx, &client_id, &token).await
    }
    .await;
    match result {
        Ok(client) => answer(&state, &client),
        Err(e) => error(&e),
    }
}

/// `PUT /oauth2/register/{client_id}`: replaces the metadata and rotates
/// the registration access token.
pub async fn replace(
    State(state): State<AppState>,
    client_id: Result<Path<String>, PathRejection>,
    meta: Meta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (ctx, client_id, token) = management(&state, client_id, meta, &headers).await?;
        let metadata = match read_metadata(&headers, body).await {
            Ok(m) => m,
            Err(e) => {
                // Who cannot manage the client learns nothing about the body.
                state
                    .app
                    .read_registration(&ctx, &client_id, &token)
                    .await?;
                return Err(e);
            }
        };
        state
            .app
            .update_registration(&ctx, &client_id, &token, &metadata)
            .await
    }
    .await;
    match result {
        Ok(client) => answer(&state, &client),
        Err(e) => error(&e),
    }
}

/// `DELETE /oauth2/register/{client_id}`: 204, the client is gone.
pub async fn delete(
    State(state): State<AppState>,
    client_id: Result<Path<String>, PathRejection>,
    meta: Meta,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let (ctx, client_id, token) = management(&state, client_id, meta, &headers).await?;
        state
            .app
            .delete_registration(&ctx, &client_id, &token)
            .await
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::NO_CONTENT.into_response()),
        Err(e) => error(&e),
    }
}

/// The context of a registration: the caller of a valid initial access
/// token, allowed to write in the default tenant.
async fn initial_access(state: &AppState, headers: &HeaderMap, meta: Meta) -> OAuthResult<Ctx> {
    let tenant = default_tenant(state).await?;
    let refused = || {
        OAuthError::new(
            ErrorCode::InvalidToken,
            "registration needs an initial access token (an admin token)",
        )
    };
    let presented = bearer(headers).unwrap_or_default();
    let caller = match &state.root_token {
        Some(root) if !presented.is_empty() && root_token_matches(presented, root) => {
            Caller::root()
        }
        _ => match state.app.authenticate(presented, tenant, &meta.0).await {
            Ok(caller) => caller,
            Err(AppError::Unauthenticated) => return Err(refused()),
            Err(other) => return Err(other.into()),
        },
    };
    tracing::Span::current().record("actor", caller.actor.label());
    if !caller.may(tenant, true) {
        return Err(refused());
    }
    Ok(state.app.ctx(tenant, caller.actor, meta.0))
}

/// The context, client id and presented registration access token of a
/// management request (the app checks the token).
async fn management(
    state: &AppState,
    client_id: Result<Path<String>, PathRejection>,
    meta: Meta,
    headers: &HeaderMap,
) -> OAuthResult<(Ctx, String, String)> {
    let Ok(Path(client_id)) = client_id else {
        return Err(invalid_token());
    };
    let tenant = default_tenant(state).await?;
    let ctx = state.app.ctx(tenant, Actor::Anonymous, meta.0);
    let token = bearer(headers).unwrap_or_default().to_owned();
    Ok((ctx, client_id, token))
}

async fn default_tenant(state: &AppState) -> OAuthResult<idplane_core::TenantId> {
    state
        .tenant_id(idplane_app::DEFAULT_TENANT)
        .await
        .map_err(|_| OAuthError::new(ErrorCode::ServerError, "no default tenant"))
}

/// The bearer token of `Authorization` (RFC 6750 §2.1), if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The client metadata of a JSON body; a wrong content type, an oversized
/// or unreadable body and malformed JSON are `invalid_client_metadata`.
async fn read_metadata(headers: &HeaderMap, body: Body) -> OAuthResult<ClientMetadata> {
    let invalid = |d: String| OAuthError::new(ErrorCode::InvalidClientMetadata, d);
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(invalid("the body must be application/json".into()));
    }
    let too_large = || {
        invalid(format!(
            "the body could not be read or is larger than {MAX_METADATA_BYTES} bytes"
        ))
    };
    // Read up to the server's body limit before refusing an oversized
    // document, so the client reads our answer instead of a reset.
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(too_large());
    }
    ClientMetadata::from_json(&bytes)
}

/// The client information response, never cached.
fn answer(state: &AppState, client: &DynamicClient) -> Response {
    let uri = format!(
        "{}{}/{}",
        state.app.issuer(),
        paths::REGISTER,
        client.client.client_id
    );
    OAuthResponse::Ok(client.to_json(&uri)).into_response()
}

/// An RFC 7591 error body; 401s carry a `Bearer` challenge.
fn error(err: &OAuthError) -> Response {
    let scheme = (err.code == ErrorCode::InvalidToken).then_some("Bearer");
    error_response(err, scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("Bearer", None),
        ] {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer(&headers), expected, "{value}");
        }
        assert!(configuration_path().starts_with(paths::REGISTER));
    }
}
