//! The authorization endpoint's pages (RFC 6749 §4.1.1, OIDC Core §3.1.2):
//! validate the request, send the person to sign in (or step up) when the
//! session is missing, too weak or too old, ask consent for third-party
//! clients, then return the code to the client with `state` and `iss`
//! (RFC 9207).
//!
//! Errors before the client and redirect URI are trusted are shown here;
//! after, they go back to the client. The final hop to the client after a
//! form (sign-in, consent) is a page that refreshes to it, because the
//! pages' `form-action 'self'` policy also governs the redirects that
//! follow a form submission.

use askama::Template;
use axum::extract::{Form, Query, RawForm, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use idplane_app::oidc::authorize::{AuthorizationRequest, AuthorizeError, Params};
use idplane_app::oidc::clients::Client;
use idplane_app::oidc::{ErrorCode, OAuthError};
use idplane_core::Timestamp;
use serde::Deserialize;

use super::account::{self, SignedIn};
use super::login::{MessagePage, csrf_refused, render};
use super::web::PageKit;
use crate::http::AppState;
use crate::http::extract::Meta;
use crate::http::problem::Problem;
use crate::oidc::paths;

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    csrf: &'a str,
    handle: &'a str,
    client_name: &'a str,
    client_id: &'a str,
    username: &'a str,
    scopes: Vec<(String, &'static str)>,
}

#[derive(Template)]
#[template(path = "continue.html")]
struct ContinuePage<'a> {
    csrf: &'a str,
    client_name: &'a str,
    url: &'a str,
}

/// `GET` or `POST /oauth2/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    method: Method,
    Query(query): Query<Vec<(String, String)>>,
    RawForm(body): RawForm,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    let pairs = if method == Method::POST {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        query
    };
    let ctx = super::anonymous(&state, meta.clone()).await?;
    let params = Params::from_pairs(pairs);
    match state.app.authorization_request(&ctx, &params).await {
        Ok((client, request)) => {
            let pending = Pending {
                client: &client,
                request: &request,
                handle: None,
                requested_at: ctx.now,
            };
            proceed(&state, &kit, &headers, meta, pending, false).await
        }
        Err(e) => Ok(refused(&state, &kit, e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct ResumeQuery {
    h: String,
}

/// `GET /oauth2/authorize/resume?h=...`: back from signing in.
pub async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Query(query): Query<ResumeQuery>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    let ctx = super::anonymous(&state, meta.clone()).await?;
    let Some((client, request, requested_at)) = state
        .app
        .parked_authorization_request(&ctx, &query.h)
        .await?
    else {
        return Ok(expired(&kit));
    };
    let pending = Pending {
        client: &client,
        request: &request,
        handle: Some(query.h),
        requested_at,
    };
    proceed(&state, &kit, &headers, meta, pending, false).await
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    csrf: String,
    handle: String,
    decision: String,
}

/// `POST /oauth2/authorize/consent`: the person's answer.
pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Meta,
    Form(form): Form<ConsentForm>,
) -> Result<Response, Problem> {
    let kit = PageKit::new(&state, &headers);
    if !kit.check_csrf(&headers, &form.csrf) {
        return Ok(csrf_refused(&kit));
    }
    let ctx = super::anonymous(&state, meta.clone()).await?;
    let Some((client, request, requested_at)) = state
        .app
        .parked_authorization_request(&ctx, &form.handle)
        .await?
    else {
        return Ok(expired(&kit));
    };
    let Some(me) = account::signed_in(&state, &kit, &headers, meta.clone()).await? else {
        return Ok(expired(&kit));
    };
    if form.decision != "allow" {
        state.app.finish_parked_request(&ctx, &form.handle).await?;
        let error = OAuthError::new(ErrorCode::AccessDenied, "the person denied the request");
        return Ok(to_client(&state, &kit, &client, &request, Err(error), true));
    }
    state
        .app
        .grant_consent(&me.ctx, me.principal.id, &client, &request.scopes)
        .await?;
    let pending = Pending {
        client: &client,
        request: &request,
        handle: Some(form.handle),
        requested_at,
    };
    proceed(&state, &kit, &headers, meta, pending, true).await
}

/// An authorization request on its way: its client, and, once parked
/// for a form, the handle it is parked under.
struct Pending<'a> {
    client: &'a Client,
    request: &'a AuthorizationRequest,
    handle: Option<String>,
    /// When the client sent it (`prompt=login` wants a sign-in after this).
    requested_at: Timestamp,
}

/// Signs in, steps up, asks consent or issues the code, as needed.
async fn proceed(
    state: &AppState,
    kit: &PageKit,
    headers: &HeaderMap,
    meta: Meta,
    pending: Pending<'_>,
    consented: bool,
) -> Result<Response, Problem> {
    let Pending {
        client,
        request,
        handle,
        requested_at,
    } = pending;
    // After a form (sign-in or consent) the person arrives here by redirect.
    let after_form = handle.is_some();
    let me = account::signed_in(state, kit, headers, meta).await?;
    let session_ok = me
        .as_ref()
        .is_some_and(|me| session_satisfies(me, request, requested_at));
    let fail = |code, why: &str| {
        Ok(to_client(
            state,
            kit,
            client,
            request,
            Err(OAuthError::new(code, why)),
            after_form,
        ))
    };
    let (Some(me), true) = (me, session_ok) else {
        if request.prompts("none") {
            return fail(ErrorCode::LoginRequired, "the person must sign in");
        }
        let handle = park(state, request, handle).await?;
        return Ok(kit.redirect(&login_url(request, &handle), Vec::new()));
    };
    let consent_needed = !consented
        && !client.first_party
        && (request.prompts("consent")
            || state
                .app
                .needs_consent(&me.ctx, me.principal.id, client, &request.scopes)
                .await?);
    if consent_needed {
        if request.prompts("none") {
            return fail(
                ErrorCode::ConsentRequired,
                "the person must approve the request",
            );
        }
        let handle = park(state, request, handle).await?;
        return Ok(consent_page(kit, client, request, &me, &handle));
    }
    let code = state
        .app
        .issue_code(&me.ctx, request, &me.session, &me.principal)
        .await?;
    if let Some(handle) = &handle {
        state.app.finish_parked_request(&me.ctx, handle).await?;
    }
    Ok(to_client(state, kit, client, request, Ok(code), after_form))
}

/// Whether the session is strong, fresh and recent enough for `request`.
fn session_satisfies(
    me: &SignedIn,
    request: &AuthorizationRequest,
    requested_at: Timestamp,
) -> bool {
    let fresh_login = !request.prompts("login") || me.session.auth_time >= requested_at;
    fresh_login
        && idplane_app::authn::sessions::meets(
            &me.session,
            request.wanted_acr(),
            request.max_age(),
            me.ctx.now,
        )
}

async fn park(
    state: &AppState,
    request: &AuthorizationRequest,
    handle: Option<String>,
) -> Result<String, Problem> {
    if let Some(handle) = handle {
        return Ok(handle);
    }
    let tenant = state.tenant_id(idplane_app::DEFAULT_TENANT).await?;
    let ctx = state
        .app
        .ctx(tenant, idplane_core::Actor::Anonymous, Default::default());
    Ok(state.app.park_authorization_request(&ctx, request).await?)
}

/// The sign-in page, returning to the parked request, asking for the ACR
/// and freshness the request wants.
fn login_url(request: &AuthorizationRequest, handle: &str) -> String {
    let resume = format!("{}/resume?h={handle}", paths::AUTHORIZE);
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    url.append_pair("return_to", &resume);
    if let Some(acr) = request.wanted_acr() {
        url.append_pair("acr", acr);
    }
    if request.prompts("login") {
        url.append_pair("max_age", "0");
    } else if let Some(max_age) = request.max_age {
        url.append_pair("max_age", &max_age.to_string());
    }
    if let Some(hint) = &request.login_hint {
        url.append_pair("login_hint", hint);
    }
    format!("/login?{}", url.finish())
}

fn consent_page(
    kit: &PageKit,
    client: &Client,
    request: &AuthorizationRequest,
    me: &SignedIn,
    handle: &str,
) -> Response {
    let page = ConsentPage {
        csrf: &kit.csrf,
        handle,
        client_name: &client.name,
        client_id: &client.client_id,
        username: &me.principal.name,
        scopes: request
            .scopes
            .iter()
            .map(|s| (s.clone(), describe_scope(s)))
            .collect(),
    };
    render(kit, StatusCode::OK, &page, Vec::new())
}

/// What a scope lets the client do, in words.
fn describe_scope(scope: &str) -> &'static str {
    match scope {
        "openid" => "confirm who you are",
        "profile" => "see your name and username",
        "email" => "see your email address",
        "offline_access" => "keep access while you are away",
        _ => "a permission defined by the application",
    }
}

/// The response to the client: the code or the error, with `state` and
/// `iss`. After a form, a page that refreshes to the client (see the
/// module comment); otherwise a redirect.
fn to_client(
    state: &AppState,
    kit: &PageKit,
    client: &Client,
    request: &AuthorizationRequest,
    outcome: Result<String, OAuthError>,
    after_form: bool,
) -> Response {
    let url = redirect_url(
        &request.redirect_uri,
        request.state.as_deref(),
        state.app.issuer(),
        outcome,
    );
    if !after_form {
        return kit.redirect(&url, Vec::new());
    }
    continue_to(kit, &client.name, &url, Vec::new())
}

/// A page that sends the browser on to `url` at a client (a refresh, and a
/// link): the hop out of a form flow that `form-action 'self'` allows.
pub(super) fn continue_to(
    kit: &PageKit,
    client_name: &str,
    url: &str,
    cookies: Vec<String>,
) -> Response {
    let page = ContinuePage {
        csrf: &kit.csrf,
        client_name,
        url,
    };
    render(kit, StatusCode::OK, &page, cookies)
}

/// The redirect URI with the response parameters added to its query.
pub fn redirect_url(
    redirect_uri: &str,
    state: Option<&str>,
    issuer: &str,
    outcome: Result<String, OAuthError>,
) -> String {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return redirect_uri.to_owned();
    };
    {
        let mut query = url.query_pairs_mut();
        match &outcome {
            Ok(code) => {
                query.append_pair("code", code);
            }
            Err(e) => {
                query.append_pair("error", e.code.as_str());
                query.append_pair("error_description", &e.description);
            }
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    url.to_string()
}

/// An error page, or the error sent back to the client.
fn refused(state: &AppState, kit: &PageKit, error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Page(why) => message(kit, StatusCode::BAD_REQUEST, &why),
        AuthorizeError::Redirect {
            redirect_uri,
            state: client_state,
            error,
        } => kit.redirect(
            &redirect_url(
                &redirect_uri,
                client_state.as_deref(),
                state.app.issuer(),
                Err(error),
            ),
            Vec::new(),
        ),
    }
}

fn expired(kit: &PageKit) -> Response {
    message(
        kit,
        StatusCode::BAD_REQUEST,
        "This sign-in request has expired or was already answered. Go back to the application and start again.",
    )
}

fn message(kit: &PageKit, status: StatusCode, why: &str) -> Response {
    let page = MessagePage {
        csrf: &kit.csrf,
        title: "The application's request was refused",
        message: why,
        link: "/account",
        link_text: "Your account",
    };
    render(kit, status, &page, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_state_and_issuer_and_keep_the_query() {
        let url = redirect_url(
            "https://app.example.com/cb?tenant=a",
            Some("xyz"),
            "https://id.example.com",
            Ok("c0de".into()),
        );
        assert_eq!(
            url,
            "https://app.example.com/cb?tenant=a&code=c0de&state=xyz&iss=https%3A%2F%2Fid.example.com"
        );
        let url = redirect_url(
            "https://app.example.com/cb",
            None,
            "https://id.example.com",
            Err(OAuthError::new(ErrorCode::AccessDenied, "no")),
        );
        assert!(url.contains("error=access_denied"));
        assert!(!url.contains("state="));
    }
}
