//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at
//! `/oauth2/logout`. A relying party that proves the session (an
//! `id_token_hint` naming it) signs the person out at once; anyone else
//! gets a confirmation page, so a link on another site cannot sign people
//! out. The return goes only to a post-logout redirect URI registered,
//! exactly, for the client.

use askama::Template;
use axum::extract::{Query, RawForm, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use idplane_app::oidc::authorize::Params;
use idplane_app::oidc::clients::Client;
use std::sync::Arc;

use super::login::{MessagePage, csrf_refused, render};
use super::web::{PageKit, SESSION, STEP};
use crate::http::AppState;
use crate::http::extract::Meta;
use crate::http::problem::Problem;

#[derive(Template)]
#[template(path = "logout.html")]
struct ConfirmPage<'a> {
    csrf: &'a str,
    client_name: Option<&'a str>,
    client_id: Option<&'a str>,
    post_logout_redirect_uri: Option<&'a str>,
    state: Option<&'a str>,
}

/// `GET` or `POST /oauth2/logout`.
pub async fn end_session(
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
    let params = Params::from_pairs(pairs);
    let ctx = super::anonymous(&state, meta).await?;
    if params.check().is_err() {
        return Ok(message(&kit, "The sign-out request is malformed."));
    }
    let hint = match params.get("id_token_hint") {
        Some(token) => match state.app.id_token_hint(token) {
            Some(claims) => Some(claims),
            None => {
                return Ok(message(
                    &kit,
                    "The id_token_hint was not issued by this provider.",
                ));
            }
        },
        None => None,
    };
    let hinted_client = hint
        .as_ref()
        .and_then(|c| c.get("aud"))
        .and_then(|a| a.as_str())
        .map(str::to_owned);
    let client_id = match (params.get("client_id"), hinted_client.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return Ok(message(&kit, "client_id does not match the id_token_hint."));
        }
        (Some(a), _) => Some(a.to_owned()),
        (None, b) => b.map(str::to_owned),
    };
    let client: Option<Arc<Client>> = match &client_id {
        Some(id) => match state.app.cached_client(ctx.tenant, id).await? {
            Some(c) => Some(c),
            None => return Ok(message(&kit, "The application is unknown.")),
        },
        None => None,
    };
    let return_to = params.get("post_logout_redirect_uri");
    if let Some(uri) = return_to
        && !client
            .as_ref()
            .is_some_and(|c| c.post_logout_redirect_uri_allowed(uri))
    {
        return Ok(message(
            &kit,
            "The post_logout_redirect_uri is not registered for this application.",
        ));
    }
    let secret = kit.read(&headers, SESSION);
    let current = match &secret {
        Some(secret) => state.app.session(&ctx, secret).await?.map(|(s, _)| s),
        None => None,
    };
    let proven = hint.as_ref().is_some_and(|claims| {
        let sid = claims.get("sid").and_then(|v| v.as_str());
        current.as_ref().is_some_and(|s| Some(s.id.as_str()) == sid)
    });
    let confirmed = method == Method::POST && params.get("confirm") == Some("yes");
    if confirmed && !kit.check_csrf(&headers, params.get("csrf").unwrap_or_default()) {
        return Ok(csrf_refused(&kit));
    }
    if current.is_some() && !proven && !confirmed {
        let page = ConfirmPage {
            csrf: &kit.csrf,
            client_name: client.as_ref().map(|c| c.name.as_str()),
            client_id: client_id.as_deref(),
            post_logout_redirect_uri: return_to,
            state: params.get("state"),
        };
        return Ok(render(&kit, StatusCode::OK, &page, Vec::new()));
    }
    if let Some(secret) = &secret {
        state.app.sign_out(&ctx, secret).await?;
    }
    let cookies = vec![kit.clear(SESSION), kit.clear(STEP)];
    Ok(match return_to {
        Some(uri) => {
            let mut url = url::Url::parse(uri).map_err(|_| {
                Problem::new(StatusCode::BAD_REQUEST, "bad-request", "bad redirect URI")
            })?;
            if let Some(state_value) = params.get("state") {
                url.query_pairs_mut().append_pair("state", state_value);
            }
            super::authorize::continue_to(
                &kit,
                client.as_ref().map_or("the application", |c| &c.name),
                url.as_str(),
                cookies,
            )
        }
        None => {
            let page = MessagePage {
                csrf: &kit.csrf,
                title: "Signed out",
                message: "You are signed out of idplane.",
                link: "/login",
                link_text: "Sign in again",
            };
            render(&kit, StatusCode::OK, &page, cookies)
        }
    })
}

fn message(kit: &PageKit, why: &str) -> Response {
    let page = MessagePage {
        csrf: &kit.csrf,
        title: "The sign-out request was refused",
        message: why,
        link: "/account",
        link_text: "Your account",
    };
    render(kit, StatusCode::BAD_REQUEST, &page, Vec::new())
}
