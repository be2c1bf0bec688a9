//! The endpoints clients and resource servers call besides the token
//! endpoint: introspection (RFC 7662), revocation (RFC 7009), pushed
//! authorization requests (RFC 9126) and userinfo (OIDC Core §5.3).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idplane_app::oidc::authorize::Params;
use idplane_app::oidc::clients::Client;
use idplane_app::oidc::{ErrorCode, OAuthError};
use idplane_core::{Actor, Ctx};
use serde_json::json;

use super::client_auth::credentials;
use super::wire::{OAuthForm, OAuthResponse, dpop_error, error_response, no_store};
use super::{dpop_jkt, paths};
use crate::http::AppState;
use crate::http::extract::Meta;

/// Authenticates the client calling `path`; the context acts as it.
async fn client_call(
    state: &AppState,
    headers: &HeaderMap,
    meta: Meta,
    form: &Params,
    path: &str,
) -> Result<(Ctx, Arc<Client>), OAuthError> {
    form.check()?;
    let tenant = state
        .tenant_id(idplane_app::DEFAULT_TENANT)
        .await
        .map_err(|_| OAuthError::new(ErrorCode::ServerError, "no default tenant"))?;
    let ctx = state.app.ctx(tenant, Actor::Anonymous, meta.0);
    let creds = credentials(headers, form)?;
    let endpoint = format!("{}{path}", state.app.issuer());
    let client = state
        .app
        .authenticate_client(&ctx, &creds, &endpoint)
        .await?;
    let ctx = Ctx {
        actor: Actor::Client {
            client_id: client.client_id.clone(),
        },
        ..ctx
    };
    Ok((ctx, client))
}

/// `POST /oauth2/introspect`.
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    OAuthForm(form): OAuthForm,
) -> Response {
    let result = async {
        let (ctx, client) = client_call(&state, &headers, meta, &form, paths::INTROSPECT).await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        state.app.introspect(&ctx, &client, token).await
    }
    .await;
    match result {
        Ok(body) => OAuthResponse::Ok(body).into(),
        Err(e) => OAuthResponse::Err(e).into(),
    }
}

/// `POST /oauth2/revoke`: 200 whether or not the token was known.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    OAuthForm(form): OAuthForm,
) -> Response {
    let result = async {
        let (ctx, client) = client_call(&state, &headers, meta, &form, paths::REVOKE).await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        state.app.revoke_oauth_token(&ctx, &client, token).await
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => OAuthResponse::Err(e).into(),
    }
}

/// `POST /oauth2/par`: 201 with the `request_uri`.
pub async fn par(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    OAuthForm(form): OAuthForm,
) -> Response {
    let result = async {
        let (ctx, client) = client_call(&state, &headers, meta, &form, paths::PAR).await?;
        state
            .app
            .push_authorization_request(&ctx, &client, &form)
            .await
    }
    .await;
    match result {
        Ok((request_uri, expires_in)) => {
            let body = json!({"request_uri": request_uri, "expires_in": expires_in});
            let mut response = OAuthResponse::Ok(body).into_response();
            *response.status_mut() = StatusCode::CREATED;
            response
        }
        Err(e) => OAuthResponse::Err(e).into(),
    }
}

/// `GET` or `POST /oauth2/userinfo` with a Bearer or DPoP access token.
pub async fn userinfo(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    method: Method,
) -> Response {
    let (scheme, token) = match presented_token(&headers) {
        Some(found) => found,
        None => {
            return error_response(
                &OAuthError::new(ErrorCode::InvalidToken, "an access token is required"),
                Some("Bearer"),
            );
        }
    };
    let result = async {
        let tenant = state
            .tenant_id(idplane_app::DEFAULT_TENANT)
            .await
            .map_err(|_| OAuthError::new(ErrorCode::ServerError, "no default tenant"))?;
        let ctx = state.app.ctx(tenant, Actor::Anonymous, meta.0);
        let invalid = || OAuthError::new(ErrorCode::InvalidToken, "the access token is not valid");
        let valid = state
            .app
            .validate_access_token(tenant, &token)
            .await?
            .ok_or_else(invalid)?;
        // A DPoP-bound token only with a proof of its key (RFC 9449 §7).
        match (valid.jkt(), scheme) {
            (Some(bound), "DPoP") => {
                let url = format!("{}{}", state.app.issuer(), paths::USERINFO);
                let jkt = dpop_jkt(&state, &headers, method.as_str(), &url, Some(&token)).await?;
                if jkt.as_deref() != Some(bound) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidToken,
                        "the DPoP proof is not by the key the token is bound to",
                    ));
                }
            }
            (Some(_), _) => return Err(invalid()),
            (None, "DPoP") => return Err(invalid()),
            (None, _) => {}
        }
        state.app.userinfo(&ctx, &valid).await
    }
    .await;
    match result {
        Ok(body) => OAuthResponse::Ok(body).into(),
        Err(e) if e.code == ErrorCode::UseDpopNonce || e.code == ErrorCode::InvalidDpopProof => {
            dpop_error(&state, &e)
        }
        Err(e) => error_response(&e, Some(if scheme == "DPoP" { "DPoP" } else { "Bearer" })),
    }
}

/// The access token and its scheme (`Bearer` or `DPoP`).
fn presented_token(headers: &HeaderMap) -> Option<(&'static str, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        "Bearer"
    } else if scheme.eq_ignore_ascii_case("dpop") {
        "DPoP"
    } else {
        return None;
    };
    let token = token.trim();
    (!token.is_empty()).then(|| (scheme, token.to_owned()))
}
