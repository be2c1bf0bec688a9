//! `POST /oauth2/token` (RFC 6749 §3.2): authenticates the client, reads
//! the DPoP proof (RFC 9449) and dispatches on `grant_type`. No implicit
//! and no password grant exist.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use idplane_app::oidc::client_auth::ClientCredentials;
use idplane_app::oidc::{ErrorCode, OAuthError};

use super::client_auth::credentials;
use super::wire::{OAuthForm, OAuthResponse, dpop_error};
use super::{dpop_jkt, paths};
use crate::http::AppState;
use crate::http::extract::Meta;

pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    OAuthForm(form): OAuthForm,
) -> Response {
    let app = &state.app;
    let result = async {
        let tenant = state
            .tenant_id(idplane_app::DEFAULT_TENANT)
            .await
            .map_err(|_| OAuthError::new(ErrorCode::ServerError, "no default tenant"))?;
        let ctx = app.ctx(tenant, idplane_core::Actor::Anonymous, meta.0);
        form.check()?;
        let grant_type = form
            .get("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        let endpoint = format!("{}{}", app.issuer(), paths::TOKEN);
        let creds = credentials(&headers, &form)?;
        let client = app.authenticate_client(&ctx, &creds, &endpoint).await?;
        let ctx = idplane_core::Ctx {
            actor: idplane_core::Actor::Client {
                client_id: client.client_id.clone(),
            },
            ..ctx
        };
        let jkt = dpop_jkt(&state, &headers, "POST", &endpoint, None).await?;
        if client.dpop_bound_access_tokens && jkt.is_none() {
            return Err(OAuthError::invalid_request(
                "this client must send a DPoP proof",
            ));
        }
        let jkt = jkt.as_deref();
        let response = match grant_type {
            "authorization_code" => {
                let code = form
                    .get("code")
                    .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
                app.exchange_code(
                    &ctx,
                    &client,
                    code,
                    form.get("redirect_uri"),
                    form.get("code_verifier"),
                    jkt,
                )
                .await?
            }
            "refresh_token" => {
                let refresh = form
                    .get("refresh_token")
                    .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
                app.refresh(&ctx, &client, refresh, form.get("scope"), jkt)
                    .await?
            }
            "client_credentials" => {
                if matches!(creds, ClientCredentials::None { .. }) {
                    return Err(OAuthError::new(
                        ErrorCode::UnauthorizedClient,
                        "public clients cannot use client credentials",
                    ));
                }
                app.client_credentials(&ctx, &client, form.get("scope"), form.resources(), jkt)
                    .await?
            }
            "urn:ietf:params:oauth:grant-type:device_code" => {
                let device_code = form
                    .get("device_code")
                    .ok_or_else(|| OAuthError::invalid_request("device_code is required"))?;
                app.poll_device_code(&ctx, &client, device_code, jkt)
                    .await?
            }
            "urn:ietf:params:oauth:grant-type:token-exchange" => {
                app.exchange_token(&ctx, &client, &form, jkt).await?
            }
            other => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!("grant_type `{other}` is not supported"),
                ));
            }
        };
        Ok(response.to_json())
    }
    .await;
    match result {
        Ok(body) => {
            let mut response: Response = OAuthResponse::Ok(body).into();
            // A fresh nonce for the client's next proof (RFC 9449 §8.2).
            if headers.contains_key("dpop")
                && let Ok(nonce) = axum::http::HeaderValue::from_str(&app.dpop_nonce())
            {
                response.headers_mut().insert("dpop-nonce", nonce);
            }
            response
        }
        Err(e) => dpop_error(&state, &e),
    }
}
