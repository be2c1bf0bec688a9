//! `/account`: a person's own profile, password, authenticator app,
//! recovery codes, passkeys and sessions.

use askama::Template;
use axum::Json;
use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use idplane_core::directory::Principal;
use idplane_core::{Actor, Ctx, Timestamp};
use idplane_store::sessions::StoredSession;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::login::{csrf_header, csrf_refused, render};
use super::web::{PageKit, SESSION};
use crate::http::AppState;
use crate::http::extract::Meta;
use crate::http::problem::Problem;

/// A signed-in person: their context (acting as themselves), session and record.
pub(super) struct SignedIn {
    pub ctx: Ctx,
    pub session: StoredSession,
    pub principal: Principal,
}

/// The person behind the session cookie, if the session is running.
pub(super) async fn signed_in(
    state: &AppState,
    kit: &PageKit,
    headers: &HeaderMap,
    meta: Meta,
) -> Result<Option<SignedIn>, Problem> {
    let Some(secret) = kit.read(headers, SESSION) else {
        return Ok(None);
    };
    let ctx = super::anonymous(state, meta).await?;
    let Some((session, principal)) = state.app.session(&ctx, &secret).await? else {
        return Ok(None);
    };
    let ctx = Ctx {
        actor: Actor::User {
            principal_id: principal.id,
        },
        ..ctx
    };
    Ok(Some(SignedIn {
        ctx,
        session,
        principal,
    }))
}

/// Fixed notices, chosen by key so that nothing from the URL is reflected.
fn notice(key: Option<&str>) -> Option<String> {
    Some(
        match key? {
            "password" => "Your password was changed.",
            "totp" => "Your authenticator app is set up.",
            "totp-removed" => "Your authenticator app was removed.",
            "passkey-removed" => "The passkey was removed.",
            "session-ended" => "The session was ended.",
            "consent-revoked" => "The application's access was withdrawn.",
            _ => return None,
        }
        .to_owned(),
    )
}

struct PasskeyRow {
    id: String,
    name: String,
    created_at: String,
    last_used_at: String,
}

struct ConsentRow {
    client_id: String,
    scopes: String,
    granted_at: String,
}

struct SessionRow {
    id: String,
    created_at: String,
    source: String,
    amr: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    nonce: &'a str,
    csrf: &'a str,
    display_name: String,
    username: String,
    email: String,
    session_acr: String,
    session_amr: String,
    notice: Option<String>,
    error: Option<String>,
    policy_warning: bool,
    totp: bool,
    recovery_left: usize,
    passkeys: Vec<PasskeyRow>,
    sessions: Vec<SessionRow>,
    consents: Vec<ConsentRow>,
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage<'a> {
    csrf: &'a str,
    qr_svg: String,
    secret: String,
    failed: bool,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodesPage<'a> {
    csrf: &'a str,
    codes: Vec<String>,
}

fn when(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

#[derive(Debug, Deserialize)]
pub struct AccountQuery {
    notice: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Query(query): Query<AccountQuery>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    let Some(me) = signed_in(&state, &kit, &headers, meta).await? else {
        return Ok(kit.redirect("/login", Vec::new()));
    };
    account_page(
        &state,
        &kit,
        &me,
        notice(query.notice.as_deref()),
        None,
        StatusCode::OK,
    )
    .await
}

async fn account_page(
    state: &AppState,
    kit: &PageKit,
    me: &SignedIn,
    notice: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, Problem> {
    let (ctx, user) = (&me.ctx, me.principal.id);
    let passkeys = state
        .app
        .passkeys(ctx, user)
        .await?
        .into_iter()
        .map(|p| PasskeyRow {
            id: p.id,
            name: p.name,
            created_at: when(p.created_at),
            last_used_at: p.last_used_at.map(when).unwrap_or_else(|| "never".into()),
        })
        .collect();
    let sessions = state
        .app
        .sessions_of(ctx, user)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            current: s.id == me.session.id,
            created_at: when(s.created_at),
            source: s.source_ip.clone().unwrap_or_else(|| "unknown".into()),
            amr: s.amr.join(", "),
            id: s.id,
        })
        .collect();
    let consents = state
        .app
        .consents_of(ctx, user)
        .await?
        .into_iter()
        .map(|c| ConsentRow {
            client_id: c.client_id,
            scopes: c.scopes.join(" "),
            granted_at: when(c.granted_at),
        })
        .collect();
    let page = AccountPage {
        nonce: &kit.nonce,
        csrf: &kit.csrf,
        display_name: me
            .principal
            .display_name
            .clone()
            .unwrap_or_else(|| me.principal.name.clone()),
        username: me.principal.name.clone(),
        email: me.principal.email.clone().unwrap_or_else(|| "—".into()),
        session_acr: me.session.acr.clone(),
        session_amr: me.session.amr.join(", "),
        notice,
        error,
        policy_warning: !state
            .app
            .required_level(ctx, &me.principal)
            .await?
            .met_by(&me.session.acr),
        totp: state.app.has_totp(ctx, user).await?,
        recovery_left: state.app.recovery_codes_left(ctx, user).await?,
        passkeys,
        sessions,
        consents,
    };
    Ok(render(kit, status, &page, Vec::new()))
}

/// A form posted by a signed-in person, its CSRF token checked. Rejected
/// with the page to show instead (a CSRF refusal, or the sign-in page).
pub(super) struct AccountForm<T> {
    kit: PageKit,
    me: SignedIn,
    form: T,
}

/// A form that carries a CSRF token.
pub(super) trait CsrfField {
    fn csrf(&self) -> &str;
}

impl<T: DeserializeOwned + CsrfField + Send> FromRequest<AppState> for AccountForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let meta = Meta::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let kit = PageKit::new(state, &headers);
        if !kit.check_csrf(&headers, form.csrf()) {
            return Err(csrf_refused(&kit));
        }
        match signed_in(state, &kit, &headers, meta).await {
            Ok(Some(me)) => Ok(Self { kit, me, form }),
            Ok(None) => Err(kit.redirect("/login", Vec::new())),
            Err(problem) => Err(problem.into_response()),
        }
    }
}

macro_rules! csrf_field {
    ($($form:ty),*) => {
        $(impl CsrfField for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}

csrf_field!(PasswordForm, CsrfForm, CodeForm, IdForm, ClientForm);

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    AccountForm { kit, me, form }: AccountForm<PasswordForm>,
) -> Result<Response, Problem> {
    match state
        .app
        .change_password(&me.ctx, me.principal.id, &form.current, &form.new)
        .await
    {
        Ok(()) => Ok(kit.redirect("/account?notice=password", Vec::new())),
        Err(e) => {
            let problem = Problem::from(e);
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
            let message = if status == StatusCode::UNAUTHORIZED {
                "The current password is wrong.".to_owned()
            } else {
                problem.detail
            };
            account_page(&state, &kit, &me, None, Some(message), StatusCode::OK).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn begin_totp(
    State(state): State<AppState>,
    AccountForm { kit, me, .. }: AccountForm<CsrfForm>,
) -> Result<Response, Problem> {
    totp_page(&state, &kit, &me, false).await
}

async fn totp_page(
    state: &AppState,
    kit: &PageKit,
    me: &SignedIn,
    failed: bool,
) -> Result<Response, Problem> {
    let enrollment = state.app.begin_totp(&me.ctx, me.principal.id).await?;
    let page = TotpPage {
        csrf: &kit.csrf,
        qr_svg: enrollment.qr_svg,
        secret: enrollment.secret_base32,
        failed,
    };
    Ok(render(kit, StatusCode::OK, &page, Vec::new()))
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

pub async fn confirm_totp(
    State(state): State<AppState>,
    AccountForm { kit, me, form }: AccountForm<CodeForm>,
) -> Result<Response, Problem> {
    match state
        .app
        .confirm_totp(&me.ctx, me.principal.id, &form.code)
        .await
    {
        Ok(Some(codes)) => Ok(render(
            &kit,
            StatusCode::OK,
            &RecoveryCodesPage {
                csrf: &kit.csrf,
                codes,
            },
            Vec::new(),
        )),
        Ok(None) => Ok(kit.redirect("/account?notice=totp", Vec::new())),
        // A wrong code: a fresh secret to scan (the failed one is discarded).
        Err(idplane_app::AppError::Unauthenticated | idplane_app::AppError::Invalid(_)) => {
            totp_page(&state, &kit, &me, true).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn remove_totp(
    State(state): State<AppState>,
    AccountForm { kit, me, .. }: AccountForm<CsrfForm>,
) -> Result<Response, Problem> {
    state.app.remove_totp(&me.ctx, me.principal.id).await?;
    Ok(kit.redirect("/account?notice=totp-removed", Vec::new()))
}

pub async fn recovery_codes(
    State(state): State<AppState>,
    AccountForm { kit, me, .. }: AccountForm<CsrfForm>,
) -> Result<Response, Problem> {
    let codes = state
        .app
        .regenerate_recovery_codes(&me.ctx, me.principal.id)
        .await?;
    Ok(render(
        &kit,
        StatusCode::OK,
        &RecoveryCodesPage {
            csrf: &kit.csrf,
            codes,
        },
        Vec::new(),
    ))
}

/// JSON endpoints called by the passkey script: CSRF in a header.
async fn json_caller(
    state: &AppState,
    headers: &HeaderMap,
    meta: Meta,
) -> Result<SignedIn, Problem> {
    let kit = PageKit::new(state, headers);
    if !kit.check_csrf(headers, csrf_header(headers)) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "missing or wrong CSRF token",
        ));
    }
    signed_in(state, &kit, headers, meta)
        .await?
        .ok_or_else(Problem::unauthenticated)
}

pub async fn passkey_options(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
) -> Result<Response, Problem> {
    let me = json_caller(&state, &headers, meta).await?;
    let (handle, options) = state
        .app
        .begin_passkey_registration(&me.ctx, me.principal.id)
        .await?;
    Ok(Json(json!({"handle": handle, "options": options})).into_response())
}

#[derive(Debug, Deserialize)]
pub struct NewPasskey {
    handle: String,
    name: String,
    credential: Value,
}

pub async fn add_passkey(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Json(body): Json<NewPasskey>,
) -> Result<Response, Problem> {
    let me = json_caller(&state, &headers, meta).await?;
    let added = state
        .app
        .finish_passkey_registration(
            &me.ctx,
            me.principal.id,
            &body.handle,
            &body.name,
            body.credential,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": added.id, "name": added.name})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct IdForm {
    csrf: String,
    id: String,
}

pub async fn remove_passkey(
    State(state): State<AppState>,
    AccountForm { kit, me, form }: AccountForm<IdForm>,
) -> Result<Response, Problem> {
    state
        .app
        .remove_passkey(&me.ctx, me.principal.id, &form.id)
        .await?;
    Ok(kit.redirect("/account?notice=passkey-removed", Vec::new()))
}

#[derive(Debug, Deserialize)]
pub struct ClientForm {
    csrf: String,
    client_id: String,
}

/// Withdraws the consent given to an application (and its refresh tokens).
pub async fn revoke_consent(
    State(state): State<AppState>,
    AccountForm { kit, me, form }: AccountForm<ClientForm>,
) -> Result<Response, Problem> {
    state
        .app
        .revoke_consent(&me.ctx, me.principal.id, &form.client_id)
        .await?;
    Ok(kit.redirect("/account?notice=consent-revoked", Vec::new()))
}

pub async fn end_session(
    State(state): State<AppState>,
    AccountForm { kit, me, form }: AccountForm<IdForm>,
) -> Result<Response, Problem> {
    state
        .app
        .end_session(&me.ctx, &form.id, Some(me.principal.id))
        .await?;
    if form.id == me.session.id {
        return Ok(kit.redirect("/login", vec![kit.clear(SESSION)]));
    }
    Ok(kit.redirect("/account?notice=session-ended", Vec::new()))
}
