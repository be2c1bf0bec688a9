//! `/device`: where a signed-in person types the user code shown on a
//! device (RFC 8628 §3.3), checks who asks and from where, and approves or
//! denies.
//!
//! A `user_code` in the link (`verification_uri_complete`) only fills in
//! the field: the person must still submit it, and then still approve on
//! a page that says which application asks, for what, and where the
//! request came from. Codes sent by someone else are the attack this flow
//! invites (RFC 8628 §5.4), so the page says so. Wrong codes are throttled
//! by the application.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use idplane_app::AppError;
use idplane_app::oidc::device::{
    DeviceDecision, PendingDeviceRequest, WRONG_CODE_WINDOW, display_user_code, normalize_user_code,
};
use serde::Deserialize;

use super::account::{SignedIn, signed_in};
use super::login::{MessagePage, csrf_refused, render};
use super::web::PageKit;
use crate::http::AppState;
use crate::http::extract::Meta;
use crate::http::problem::Problem;
use crate::oidc::paths;

#[derive(Template)]
#[template(path = "device.html")]
struct CodePage<'a> {
    csrf: &'a str,
    user_code: &'a str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct ConfirmPage<'a> {
    csrf: &'a str,
    client_name: &'a str,
    client_id: &'a str,
    username: &'a str,
    user_code: &'a str,
    scopes: Vec<(String, &'static str)>,
    source_ip: &'a str,
    user_agent: &'a str,
    requested_at: String,
}

#[derive(Debug, Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

/// `GET /device[?user_code=...]`: the code form, prefilled from the link
/// when the link carries a well-formed code.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Query(query): Query<DeviceQuery>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    // Only a well-formed code is reflected, and only in its canonical form.
    let prefill = query
        .user_code
        .as_deref()
        .and_then(normalize_user_code)
        .map(|c| display_user_code(&c))
        .unwrap_or_default();
    if signed_in(&state, &kit, &headers, meta).await?.is_none() {
        return Ok(kit.redirect(&login_url(&prefill), Vec::new()));
    }
    Ok(code_page(&kit, StatusCode::OK, &prefill, None))
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    csrf: String,
    user_code: String,
}

/// `POST /device`: the code the person typed; the confirmation page.
pub async fn enter(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Form(form): Form<CodeForm>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    if !kit.check_csrf(&headers, &form.csrf) {
        return Ok(csrf_refused(&kit));
    }
    let Some(me) = signed_in(&state, &kit, &headers, meta).await? else {
        return Ok(kit.redirect(&login_url(""), Vec::new()));
    };
    let found = state
        .app
        .pending_device_request(&me.ctx, &me.session, &form.user_code)
        .await;
    Ok(match found {
        Ok(Some(request)) => confirm_page(&kit, &me, &request),
        Ok(None) => code_page(&kit, StatusCode::OK, "", Some(WRONG_CODE.into())),
        Err(AppError::TooManyAttempts { retry_after_secs }) => throttled(&kit, retry_after_secs),
        Err(e) => return Err(e.into()),
    })
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    csrf: String,
    user_code: String,
    decision: String,
}

/// `POST /device/decision`: Approve or Deny.
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Form(form): Form<DecisionForm>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    if !kit.check_csrf(&headers, &form.csrf) {
        return Ok(csrf_refused(&kit));
    }
    let Some(me) = signed_in(&state, &kit, &headers, meta).await? else {
        return Ok(kit.redirect(&login_url(""), Vec::new()));
    };
    let decision = if form.decision == "approve" {
        DeviceDecision::Approve
    } else {
        DeviceDecision::Deny
    };
    let decided = state
        .app
        .decide_device_request(
            &me.ctx,
            &me.session,
            &me.principal,
            &form.user_code,
            decision,
        )
        .await;
    let request = match decided {
        Ok(Some(request)) => request,
        Ok(None) => {
            return Ok(code_page(
                &kit,
                StatusCode::OK,
                "",
                Some(
                    "This request has expired or was already answered. Start again on the device."
                        .into(),
                ),
            ));
        }
        Err(AppError::TooManyAttempts { retry_after_secs }) => {
            return Ok(throttled(&kit, retry_after_secs));
        }
        Err(e) => return Err(e.into()),
    };
    let (title, message) = match decision {
        DeviceDecision::Approve => (
            "Device connected",
            format!(
                "{} is now signed in as you. You can return to your device.",
                request.client.name
            ),
        ),
        DeviceDecision::Deny => (
            "Request denied",
            format!("{} was not given access.", request.client.name),
        ),
    };
    let page = MessagePage {
        csrf: &kit.csrf,
        title,
        message: &message,
        link: "/account",
        link_text: "Your account",
    };
    Ok(render(&kit, StatusCode::OK, &page, Vec::new()))
}

const WRONG_CODE: &str =
    "That code is not valid, was already used or has expired. Check the code on your device.";

/// The sign-in page, coming back to the code form (with its prefill).
fn login_url(prefill: &str) -> String {
    let back = if prefill.is_empty() {
        paths::DEVICE_VERIFICATION.to_owned()
    } else {
        format!("{}?user_code={prefill}", paths::DEVICE_VERIFICATION)
    };
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &back)
        .finish();
    format!("/login?{query}")
}

fn code_page(
    kit: &PageKit,
    status: StatusCode,
    user_code: &str,
    error: Option<String>,
) -> Response {
    let page = CodePage {
        csrf: &kit.csrf,
        user_code,
        error,
    };
    render(kit, status, &page, Vec::new())
}

fn throttled(kit: &PageKit, retry_after_secs: u64) -> Response {
    let minutes = retry_after_secs.div_ceil(60).max(1);
    let error = format!(
        "Too many wrong codes. For your security, entering codes is paused: try again in {minutes} \
         minute{} (at most {} minutes).",
        if minutes == 1 { "" } else { "s" },
        WRONG_CODE_WINDOW.as_secs() / 60
    );
    code_page(kit, StatusCode::TOO_MANY_REQUESTS, "", Some(error))
}

fn confirm_page(kit: &PageKit, me: &SignedIn, request: &PendingDeviceRequest) -> Response {
    let page = ConfirmPage {
        csrf: &kit.csrf,
        client_name: &request.client.name,
        client_id: &request.client.client_id,
        username: &me.principal.name,
        user_code: &request.user_code,
        scopes: request
            .scopes
            .iter()
            .map(|s| (s.clone(), describe_scope(s)))
            .collect(),
        source_ip: request.source_ip.as_deref().unwrap_or("unknown"),
        user_agent: request.user_agent.as_deref().unwrap_or("unknown"),
        requested_at: request
            .requested_at
            .strftime("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
    };
    render(kit, StatusCode::OK, &page, Vec::new())
}

/// What a scope lets the client do, in words (as on the consent page).
fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "openid" => "confirm who you are",
        "profile" => "see your name and username",
        "email" => "see your email address",
        "offline_access" => "keep access while you are away",
        _ => "a permission defined by the application",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_to_the_prefilled_form() {
        assert_eq!(login_url(""), "/login?return_to=%2Fdevice");
        assert_eq!(
            login_url("BCDF-GHJK"),
            "/login?return_to=%2Fdevice%3Fuser_code%3DBCDF-GHJK"
        );
    }
}
