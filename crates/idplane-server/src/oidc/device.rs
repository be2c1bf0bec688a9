//! `POST /oauth2/device_authorization` (RFC 8628 §3.1–3.2): the client
//! authenticates as at the token endpoint (public clients send only their
//! `client_id`) and gets a device code to poll with, and a user code and
//! the page where a person enters it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use idplane_app::oidc::{ErrorCode, OAuthError};
use idplane_core::{Actor, Ctx};
use serde_json::json;

use super::client_auth::credentials;
use super::paths;
use super::wire::{OAuthForm, OAuthResponse};
use crate::http::AppState;
use crate::http::extract::Meta;

pub async fn device_authorization(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    OAuthForm(form): OAuthForm,
) -> Response {
    let app = &state.app;
    let result = async {
        form.check()?;
        let tenant = state
            .tenant_id(idplane_app::DEFAULT_TENANT)
            .await
            .map_err(|_| OAuthError::new(ErrorCode::ServerError, "no default tenant"))?;
        // The request's address and user agent are kept for the person who
        // will be asked to approve it.
        let ctx = app.ctx(tenant, Actor::Anonymous, meta.0);
        let creds = credentials(&headers, &form)?;
        let endpoint = format!("{}{}", app.issuer(), paths::DEVICE_AUTHORIZATION);
        let client = app.authenticate_client(&ctx, &creds, &endpoint).await?;
        let ctx = Ctx {
            actor: Actor::Client {
                client_id: client.client_id.clone(),
            },
            ..ctx
        };
        let issued = app.authorize_device(&ctx, &client, &form).await?;
        let verification_uri = format!("{}{}", app.issuer(), paths::DEVICE_VERIFICATION);
        let complete = format!(
            "{verification_uri}?{}",
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", &issued.user_code)
                .finish()
        );
        Ok::<_, OAuthError>(json!({
            "device_code": issued.device_code,
            "user_code": issued.user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": complete,
            "expires_in": issued.expires_in,
            "interval": issued.interval,
        }))
    }
    .await;
    match result {
        Ok(body) => OAuthResponse::Ok(body).into(),
        Err(e) => OAuthResponse::Err(e).into(),
    }
}
