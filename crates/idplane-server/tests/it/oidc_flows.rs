//! Authorization flows beyond the basic sign-in: step-up through
//! `acr_values`, `prompt=login`, pushed authorization requests, resource
//! indicators, RP-initiated logout, and withdrawing consent.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::browser::Browser;
use crate::support::{TestServer, s};

const PASSWORD: &str = "correct horse battery staple 42";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge() -> String {
    B64.encode(Sha256::digest(VERIFIER.as_bytes()))
}

fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn location(headers: &reqwest::header::HeaderMap) -> String {
    headers[LOCATION].to_str().unwrap().to_owned()
}

/// A user with a password, and a client (`first_party` as given).
async fn setup(server: &TestServer, first_party: bool) -> String {
    let user = server
        .create("/api/v1/users", json!({"username": "alice"}))
        .await;
    let r = server
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/users/{}/password", s(&user["id"])),
        )
        .json(&json!({"password": PASSWORD, "temporary": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let created = server
        .create(
            "/api/v1/clients",
            json!({
                "client_id": "app",
                "name": "App",
                "redirect_uris": [REDIRECT],
                "post_logout_redirect_uris": ["http://127.0.0.1:9/bye"],
                "scopes": ["openid", "orders.read"],
                "first_party": first_party,
            }),
        )
        .await;
    s(&created["client_secret"])
}

fn authorize_path(extra: &str) -> String {
    format!(
        "/oauth2/authorize?client_id=app&response_type=code&scope=openid&state=st&redirect_uri={}&code_challenge={}&code_challenge_method=S256{extra}",
        enc(REDIRECT),
        challenge()
    )
}

/// Follows a sign-in from the login page back to the parked request and
/// returns the page or redirect the resume answers with.
async fn sign_in_and_resume(
    browser: &mut Browser<'_>,
    login: &str,
) -> (StatusCode, String, String) {
    browser.get(login).await;
    let (status, headers, _) = browser.sign_in("alice", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let resume = location(&headers);
    let (status, headers, html) = browser.get(&resume).await;
    let to = headers
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, to, html)
}

fn continue_url(html: &str) -> String {
    let start = html
        .find("id=\"continue\" href=\"")
        .expect("a continue link")
        + 20;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&").replace("&#38;", "&")
}

async fn exchange(server: &TestServer, secret: &str, code: &str) -> Value {
    let r = server
        .client
        .post(server.url("/oauth2/token"))
        .basic_auth("app", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn step_up_and_prompt_login_send_the_person_to_sign_in_again() {
    let server = TestServer::dev_oidc().await;
    setup(&server, true).await;
    let mut browser = Browser::new(&server);
    let (_, headers, _) = browser.get(&authorize_path("")).await;
    let (status, _, html) = sign_in_and_resume(&mut browser, &location(&headers)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(query_of(&continue_url(&html)).contains_key("code"));

    // Signed in: a plain request goes straight back to the client.
    let (status, headers, _) = browser.get(&authorize_path("")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location(&headers).starts_with(REDIRECT));

    // A stronger ACR than the session has: to the login page, asking for it.
    let (status, headers, _) = browser
        .get(&authorize_path(&format!(
            "&acr_values={}",
            enc("urn:idplane:acr:mfa")
        )))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let login = location(&headers);
    assert!(login.contains("acr=urn%3Aidplane%3Aacr%3Amfa"), "{login}");
    // prompt=none cannot satisfy it.
    let (_, headers, _) = browser
        .get(&authorize_path(&format!(
            "&prompt=none&acr_values={}",
            enc("urn:idplane:acr:mfa")
        )))
        .await;
    assert_eq!(query_of(&location(&headers))["error"], "login_required");

    // prompt=login: sign in again even with a fresh session, and the new
    // session's auth_time is what the ID token says.
    let (status, headers, _) = browser.get(&authorize_path("&prompt=login")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let login = location(&headers);
    assert!(login.contains("max_age=0"), "{login}");
    let (status, _, html) = sign_in_and_resume(&mut browser, &login).await;
    assert_eq!(status, StatusCode::OK);
    assert!(query_of(&continue_url(&html)).contains_key("code"));
}

#[tokio::test]
async fn pushed_requests_are_single_use_and_bound_to_their_client() {
    let server = TestServer::dev_oidc().await;
    let secret = setup(&server, true).await;
    let push = |form: Vec<(&'static str, String)>| {
        server
            .client
            .post(server.url("/oauth2/par"))
            .basic_auth("app", Some(secret.clone()))
            .form(&form)
            .send()
    };
    let form = vec![
        ("response_type", "code".to_owned()),
        ("scope", "openid".to_owned()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("code_challenge", challenge()),
        ("code_challenge_method", "S256".to_owned()),
        ("state", "pushed".to_owned()),
    ];
    let r = push(form.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    let request_uri = s(&body["request_uri"]);
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    assert_eq!(body["expires_in"], 90);

    let mut browser = Browser::new(&server);
    let path = format!(
        "/oauth2/authorize?client_id=app&request_uri={}",
        enc(&request_uri)
    );
    let (status, headers, _) = browser.get(&path).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, html) = sign_in_and_resume(&mut browser, &location(&headers)).await;
    let got = query_of(&continue_url(&html));
    assert_eq!(got["state"], "pushed");
    exchange(&server, &secret, &got["code"]).await;
    // Used once: a second use is refused on our own page.
    let (status, headers, _) = browser.get(&path).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers.get(LOCATION).is_none());

    // A push without PKCE, or with an unregistered redirect URI, is refused.
    let mut bad = form.clone();
    bad.retain(|(k, _)| *k != "code_challenge");
    let r = push(bad).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut bad = form.clone();
    bad[2].1 = "http://127.0.0.1:9/elsewhere".into();
    let r = push(bad).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Another client cannot use a pushed request.
    let r = push(form).await.unwrap();
    let uri = s(&r.json::<Value>().await.unwrap()["request_uri"]);
    server
        .create(
            "/api/v1/clients",
            json!({"client_id": "other", "name": "Other", "redirect_uris": [REDIRECT]}),
        )
        .await;
    let (status, _, _) = browser
        .get(&format!(
            "/oauth2/authorize?client_id=other&request_uri={}",
            enc(&uri)
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn resource_indicators_set_the_audience() {
    let server = TestServer::dev_oidc().await;
    let secret = setup(&server, true).await;
    let r = server
        .req(reqwest::Method::PUT, "/api/v1/resources")
        .json(&json!({"identifier": "https://orders.example.com", "name": "Orders", "scopes": ["orders.read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut browser = Browser::new(&server);
    let (_, headers, _) = browser
        .get(&authorize_path(&format!(
            "&resource={}",
            enc("https://orders.example.com")
        )))
        .await;
    let (_, _, html) = sign_in_and_resume(&mut browser, &location(&headers)).await;
    let code = query_of(&continue_url(&html))["code"].clone();
    let tokens = exchange(&server, &secret, &code).await;
    assert_eq!(
        claims(&s(&tokens["access_token"]))["aud"],
        "https://orders.example.com"
    );
    // An unregistered resource is refused with invalid_target.
    let (_, headers, _) = browser
        .get(&authorize_path(&format!(
            "&resource={}",
            enc("https://evil.example.com")
        )))
        .await;
    assert_eq!(query_of(&location(&headers))["error"], "invalid_target");
}

#[tokio::test]
async fn rp_initiated_logout_and_withdrawn_consent_revoke_tokens() {
    let server = TestServer::dev_oidc().await;
    let secret = setup(&server, false).await;
    let mut browser = Browser::new(&server);
    let (_, headers, _) = browser.get(&authorize_path("")).await;
    let (_, _, html) = sign_in_and_resume(&mut browser, &location(&headers)).await;
    // Third-party client: consent first.
    assert!(html.contains("Allow App access?"), "{html}");
    let handle = html
        .split("name=\"handle\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let csrf = browser.csrf().await;
    let (_, _, html) = browser
        .form(
            "/oauth2/authorize/consent",
            &[("csrf", &csrf), ("handle", &handle), ("decision", "allow")],
        )
        .await;
    let code = query_of(&continue_url(&html))["code"].clone();
    let tokens = exchange(&server, &secret, &code).await;

    // The consent is listed in /account and can be withdrawn, which
    // revokes the refresh token.
    let (_, _, account) = browser.get("/account").await;
    assert!(account.contains("<code>app</code>"), "{account}");
    let csrf = browser.csrf().await;
    let (status, _, _) = browser
        .form(
            "/account/consents/revoke",
            &[("csrf", &csrf), ("client_id", "app")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let r = server
        .client
        .post(server.url("/oauth2/token"))
        .basic_auth("app", Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s(&tokens["refresh_token"])),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Logout with a hint naming this session: signed out at once, sent to
    // the registered URI with the state.
    let hint = s(&tokens["id_token"]);
    let (status, _, html) = browser
        .get(&format!(
            "/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye",
            enc("http://127.0.0.1:9/bye")
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(continue_url(&html), "http://127.0.0.1:9/bye?state=bye");
    let (_, headers, _) = browser.get("/account").await;
    assert_eq!(location(&headers), "/login");
    // An unregistered post-logout URI is refused.
    let (status, _, _) = browser
        .get(&format!(
            "/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
            enc("https://evil.example.com/")
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Without a hint, a signed-in person is asked first. (The consent was
    // withdrawn, so signing in again asks for it again.)
    let (_, headers, _) = browser.get(&authorize_path("")).await;
    let (_, _, html) = sign_in_and_resume(&mut browser, &location(&headers)).await;
    assert!(html.contains("Allow App access?"), "{html}");
    let (status, _, html) = browser.get("/oauth2/logout").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sign out?"), "{html}");
    let (_, headers, _) = browser.get("/account").await;
    assert!(headers.get(LOCATION).is_none(), "still signed in");
}

#[tokio::test]
async fn deprovisioning_revokes_grants_and_sends_back_channel_logout() {
    // A relying party's back-channel logout endpoint.
    let (sent, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/bc",
        axum::routing::post(
            move |axum::Form(form): axum::Form<HashMap<String, String>>| {
                let sent = sent.clone();
                async move {
                    sent.send(form.get("logout_token").cloned().unwrap_or_default())
                        .unwrap();
                    StatusCode::OK
                }
            },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let server = TestServer::dev_oidc().await;
    let secret = setup(&server, true).await;
    let r = server
        .req(reqwest::Method::PATCH, "/api/v1/clients/app")
        .json(&json!({"backchannel_logout_uri": format!("http://127.0.0.1:{port}/bc")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    let mut browser = Browser::new(&server);
    let (_, headers, _) = browser.get(&authorize_path("")).await;
    let (_, _, html) = sign_in_and_resume(&mut browser, &location(&headers)).await;
    let code = query_of(&continue_url(&html))["code"].clone();
    let tokens = exchange(&server, &secret, &code).await;
    let id_claims = claims(&s(&tokens["id_token"]));

    let users = server.get_json("/api/v1/users").await;
    let alice = s(&users["items"][0]["id"]);
    let r = server
        .req(reqwest::Method::PATCH, &format!("/api/v1/users/{alice}"))
        .json(&json!({"status": "deprovisioned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let logout = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("a logout token within 10 s")
        .unwrap();
    let header: Value =
        serde_json::from_slice(&B64.decode(logout.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["typ"], "logout+jwt");
    let logout = claims(&logout);
    assert_eq!(logout["sub"], alice.as_str());
    assert_eq!(logout["sid"], id_claims["sid"]);
    assert_eq!(logout["aud"], "app");
    assert!(logout["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(logout.get("nonce").is_none());

    // The refresh token died with the account.
    let r = server
        .client
        .post(server.url("/oauth2/token"))
        .basic_auth("app", Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &s(&tokens["refresh_token"])),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let delivered = server.wait_audit("&action=oauth.backchannel_logout").await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
}

#[tokio::test]
async fn a_tenant_can_require_pushed_requests() {
    let server = TestServer::dev_oidc().await;
    setup(&server, true).await;
    let r = server
        .req(reqwest::Method::PUT, "/api/v1/auth-policy")
        .json(&json!({"require_pushed_authorization_requests": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut browser = Browser::new(&server);
    let (status, headers, _) = browser.get(&authorize_path("")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let got = query_of(&location(&headers));
    assert_eq!(got["error"], "invalid_request");
    assert!(got["error_description"].contains("PAR"), "{got:?}");
}
