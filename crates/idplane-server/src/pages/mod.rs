//! Web pages for people: sign-in (`/login`) and self-service (`/account`),
//! server-rendered with askama, under a strict CSP with nonces, CSRF tokens
//! on every form. The password path needs no JavaScript; passkeys use one
//! small script served from our own origin.

mod account;
mod authorize;
mod device;
mod end_session;
mod login;
mod web;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use idplane_core::{Actor, Ctx};

use crate::http::AppState;
use crate::http::extract::Meta;
use crate::http::problem::Problem;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login::show).post(login::password))
        .route(
            "/login/second-factor",
            get(login::show_second_factor).post(login::second_factor),
        )
        .route(
            "/login/change-password",
            get(login::show_change_password).post(login::change_password),
        )
        .route("/login/passkey/options", post(login::passkey_options))
        .route("/login/passkey", post(login::passkey))
        .route("/logout", post(login::logout))
        .route(
            crate::oidc::paths::AUTHORIZE,
            get(authorize::authorize).post(authorize::authorize),
        )
        .route("/oauth2/authorize/resume", get(authorize::resume))
        .route("/oauth2/authorize/consent", post(authorize::consent))
        .route(
            crate::oidc::paths::DEVICE_VERIFICATION,
            get(device::show).post(device::enter),
        )
        .route("/device/decision", post(device::decide))
        .route(
            crate::oidc::paths::END_SESSION,
            get(end_session::end_session).post(end_session::end_session),
        )
        .route("/account", get(account::show))
        .route("/account/password", post(account::change_password))
        .route("/account/totp", post(account::begin_totp))
        .route("/account/totp/confirm", post(account::confirm_totp))
        .route("/account/totp/remove", post(account::remove_totp))
        .route("/account/recovery-codes", post(account::recovery_codes))
        .route("/account/passkeys/options", post(account::passkey_options))
        .route("/account/passkeys", post(account::add_passkey))
        .route("/account/passkeys/remove", post(account::remove_passkey))
        .route("/account/sessions/end", post(account::end_session))
        .route("/account/consents/revoke", post(account::revoke_consent))
        .route(
            "/assets/passkey.js",
            get(|| {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../../assets/passkey.js"),
                )
            }),
        )
        .route(
            "/assets/style.css",
            get(|| {
                asset(
                    "text/css; charset=utf-8",
                    include_str!("../../assets/style.css"),
                )
            }),
        )
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}

/// A context in the default tenant for someone not yet signed in.
async fn anonymous(state: &AppState, meta: Meta) -> Result<Ctx, Problem> {
    let tenant = state.tenant_id(idplane_app::DEFAULT_TENANT).await?;
    Ok(state.app.ctx(tenant, Actor::Anonymous, meta.0))
}
