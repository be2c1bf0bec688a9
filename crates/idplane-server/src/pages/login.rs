//! `/login`: username and password, then a second factor or a password
//! change when needed; or a passkey alone. `/logout`.

use askama::Template;
use axum::Json;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use idplane_app::AppError;
use idplane_app::authn::login::{SecondFactor, SignInStep};
use idplane_app::authn::sessions::meets;
use serde::Deserialize;
use serde_json::{Value, json};

use super::web::{PageKit, RETURN, SESSION, STEP, local_path};
use super::{account, anonymous};
use crate::http::AppState;
use crate::http::extract::Meta;
use crate::http::problem::Problem;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    nonce: &'a str,
    csrf: &'a str,
    username: &'a str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage<'a> {
    csrf: &'a str,
    /// `totp` or `email`: which code the first form asks for.
    method: &'a str,
    failed: bool,
}

fn method_name(factor: SecondFactor) -> &'static str {
    match factor {
        SecondFactor::Email => "email",
        SecondFactor::Totp | SecondFactor::RecoveryCode => "totp",
    }
}

#[derive(Template)]
#[template(path = "change_password.html")]
struct ChangePasswordPage<'a> {
    csrf: &'a str,
    refused: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub(super) struct MessagePage<'a> {
    pub csrf: &'a str,
    pub title: &'a str,
    pub message: &'a str,
    pub link: &'a str,
    pub link_text: &'a str,
}

pub(super) fn render(
    kit: &PageKit,
    status: StatusCode,
    page: &impl Template,
    cookies: Vec<String>,
) -> Response {
    match page.render() {
        Ok(html) => kit.html(status, html, cookies),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The page shown when a form's CSRF token is missing or wrong.
pub(super) fn csrf_refused(kit: &PageKit) -> Response {
    let page = MessagePage {
        csrf: &kit.csrf,
        title: "Please try again",
        message: "The form expired or did not come from this site.",
        link: "/login",
        link_text: "Back",
    };
    render(kit, StatusCode::FORBIDDEN, &page, Vec::new())
}

fn login_page(
    kit: &PageKit,
    status: StatusCode,
    username: &str,
    error: Option<String>,
) -> Response {
    let page = LoginPage {
        nonce: &kit.nonce,
        csrf: &kit.csrf,
        username,
        error,
    };
    render(kit, status, &page, Vec::new())
}

/// What the page that sent the person here asks of the sign-in.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// A local path to return to afterwards.
    return_to: Option<String>,
    /// The class of authentication wanted (step-up), e.g. `urn:idplane:acr:mfa`.
    acr: Option<String>,
    /// The oldest acceptable sign-in, in seconds (`0`: sign in again).
    max_age: Option<i64>,
    /// A username to prefill (OIDC `login_hint`).
    login_hint: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    let return_to = query.return_to.as_deref().and_then(local_path);
    if let Some(me) = account::signed_in(&state, &kit, &headers, meta).await? {
        let max_age = query
            .max_age
            .map(|s| jiff::SignedDuration::from_secs(s.max(0)));
        if meets(&me.session, query.acr.as_deref(), max_age, me.ctx.now) {
            return Ok(kit.redirect(return_to.unwrap_or("/account"), Vec::new()));
        }
        // Step-up: sign in again; the new session replaces this one.
    }
    let cookies = return_to
        .map(|path| vec![kit.cookie(RETURN, path, Some(600))])
        .unwrap_or_default();
    let hint: String = query
        .login_hint
        .as_deref()
        .unwrap_or_default()
        .chars()
        .take(256)
        .collect();
    let page = LoginPage {
        nonce: &kit.nonce,
        csrf: &kit.csrf,
        username: &hint,
        error: None,
    };
    Ok(render(&kit, StatusCode::OK, &page, cookies))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    username: String,
    password: String,
}

pub async fn password(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    if !kit.check_csrf(&headers, &form.csrf) {
        return Ok(csrf_refused(&kit));
    }
    let ctx = anonymous(&state, meta).await?;
    let replaces = kit.read(&headers, SESSION);
    let step = state
        .app
        .sign_in_with_password(&ctx, &form.username, &form.password, replaces.as_deref())
        .await;
    Ok(match step {
        Ok(step) => advance(&kit, &headers, step),
        Err(e) => login_error(&kit, &form.username, e),
    })
}

/// Where a sign-in step leads.
fn advance(kit: &PageKit, headers: &HeaderMap, step: SignInStep) -> Response {
    match step {
        SignInStep::Done(session) => kit.redirect(
            &return_target(kit, headers),
            vec![
                kit.cookie(SESSION, &session.secret, None),
                kit.clear(STEP),
                kit.clear(RETURN),
            ],
        ),
        SignInStep::SecondFactor { handle, factor, .. } => kit.redirect(
            &format!("/login/second-factor?method={}", method_name(factor)),
            vec![kit.cookie(STEP, &handle, Some(300))],
        ),
        SignInStep::ChangePassword { handle, .. } => kit.redirect(
            "/login/change-password",
            vec![kit.cookie(STEP, &handle, Some(300))],
        ),
    }
}

/// The same message for every credential failure: no account enumeration.
fn login_error(kit: &PageKit, username: &str, error: AppError) -> Response {
    let outcome = match &error {
        AppError::Unauthenticated => "failed",
        AppError::TooManyAttempts { .. } => "throttled",
        _ => "refused",
    };
    metrics::counter!("idplane_sign_in_failures_total", "outcome" => outcome).increment(1);
    match error {
        AppError::Unauthenticated => login_page(
            kit,
            StatusCode::OK,
            username,
            Some("Wrong username or password.".into()),
        ),
        e @ AppError::TooManyAttempts { .. } => login_page(
            kit,
            StatusCode::TOO_MANY_REQUESTS,
            username,
            Some(format!("{e}.")),
        ),
        other => {
            let problem = Problem::from(other);
            login_page(kit, StatusCode::OK, username, Some(problem.detail))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct MethodQuery {
    method: Option<String>,
}

pub async fn show_second_factor(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<MethodQuery>,
) -> Response {
    let kit = PageKit::new(&state, &headers);
    if kit.read(&headers, STEP).is_none() {
        return kit.redirect("/login", Vec::new());
    }
    // Only the two known values are reflected.
    let method = if query.method.as_deref() == Some("email") {
        "email"
    } else {
        "totp"
    };
    render(
        &kit,
        StatusCode::OK,
        &SecondFactorPage {
            csrf: &kit.csrf,
            method,
            failed: false,
        },
        Vec::new(),
    )
}

#[derive(Debug, Deserialize)]
pub struct SecondFactorForm {
    csrf: String,
    method: String,
    code: String,
}

pub async fn second_factor(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Form(form): Form<SecondFactorForm>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    if !kit.check_csrf(&headers, &form.csrf) {
        return Ok(csrf_refused(&kit));
    }
    let Some(handle) = kit.read(&headers, STEP) else {
        return Ok(kit.redirect("/login", Vec::new()));
    };
    let factor = match form.method.as_str() {
        "recovery" => SecondFactor::RecoveryCode,
        "email" => SecondFactor::Email,
        _ => SecondFactor::Totp,
    };
    let ctx = anonymous(&state, meta).await?;
    let replaces = kit.read(&headers, SESSION);
    let step = state
        .app
        .sign_in_second_factor(&ctx, &handle, factor, &form.code, replaces.as_deref())
        .await;
    Ok(match step {
        Ok(SignInStep::SecondFactor {
            handle,
            factor,
            failed,
        }) => render(
            &kit,
            StatusCode::OK,
            &SecondFactorPage {
                csrf: &kit.csrf,
                method: method_name(factor),
                failed,
            },
            vec![kit.cookie(STEP, &handle, Some(300))],
        ),
        Ok(step) => advance(&kit, &headers, step),
        Err(e) => login_error(&kit, "", e),
    })
}

pub async fn show_change_password(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let kit = PageKit::new(&state, &headers);
    if kit.read(&headers, STEP).is_none() {
        return kit.redirect("/login", Vec::new());
    }
    render(
        &kit,
        StatusCode::OK,
        &ChangePasswordPage {
            csrf: &kit.csrf,
            refused: None,
        },
        Vec::new(),
    )
}

#[derive(Debug, Deserialize)]
pub struct NewPasswordForm {
    csrf: String,
    password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Form(form): Form<NewPasswordForm>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    if !kit.check_csrf(&headers, &form.csrf) {
        return Ok(csrf_refused(&kit));
    }
    let Some(handle) = kit.read(&headers, STEP) else {
        return Ok(kit.redirect("/login", Vec::new()));
    };
    let ctx = anonymous(&state, meta).await?;
    let replaces = kit.read(&headers, SESSION);
    let step = state
        .app
        .sign_in_change_password(&ctx, &handle, &form.password, replaces.as_deref())
        .await;
    Ok(match step {
        Ok(SignInStep::ChangePassword { handle, refused }) => render(
            &kit,
            StatusCode::OK,
            &ChangePasswordPage {
                csrf: &kit.csrf,
                refused,
            },
            vec![kit.cookie(STEP, &handle, Some(300))],
        ),
        Ok(step) => advance(&kit, &headers, step),
        Err(e) => login_error(&kit, "", e),
    })
}

/// Starts a passkey sign-in: the options for `navigator.credentials.get`.
pub async fn passkey_options(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    if !kit.check_csrf(&headers, csrf_header(&headers)) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "missing or wrong CSRF token",
        ));
    }
    let ctx = anonymous(&state, meta).await?;
    let (handle, options) = state.app.begin_passkey_sign_in(&ctx).await?;
    Ok(Json(json!({"handle": handle, "options": options})).into_response())
}

#[derive(Debug, Deserialize)]
pub struct PasskeyAssertion {
    handle: String,
    credential: Value,
}

/// Finishes a passkey sign-in and starts the session.
pub async fn passkey(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Json(body): Json<PasskeyAssertion>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    if !kit.check_csrf(&headers, csrf_header(&headers)) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "missing or wrong CSRF token",
        ));
    }
    let ctx = anonymous(&state, meta).await?;
    let replaces = kit.read(&headers, SESSION);
    let step = state
        .app
        .sign_in_with_passkey(&ctx, &body.handle, body.credential, replaces.as_deref())
        .await?;
    let SignInStep::Done(session) = step else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "passkey sign-in failed",
        ));
    };
    let mut response = Json(json!({"redirect": return_target(&kit, &headers)})).into_response();
    if let Ok(value) = kit.cookie(SESSION, &session.secret, None).parse() {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Where a finished sign-in goes: the saved local path, or the account page.
fn return_target(kit: &PageKit, headers: &HeaderMap) -> String {
    kit.read(headers, RETURN)
        .as_deref()
        .and_then(local_path)
        .unwrap_or("/account")
        .to_owned()
}

pub(super) fn csrf_header(headers: &HeaderMap) -> &str {
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    if !kit.check_csrf(&headers, &form.csrf) {
        return Ok(csrf_refused(&kit));
    }
    if let Some(secret) = kit.read(&headers, SESSION) {
        let ctx = anonymous(&state, meta).await?;
        state.app.sign_out(&ctx, &secret).await?;
    }
    Ok(kit.redirect("/login", vec![kit.clear(SESSION), kit.clear(STEP)]))
}
