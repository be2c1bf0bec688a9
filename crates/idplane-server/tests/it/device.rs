//! The device authorization grant (RFC 8628) end to end: a device asks for
//! codes and polls, a signed-in person enters the code on `/device`, sees
//! who asks and from where, and approves or denies. Expiry is tested
//! against the injected clock in `idplane-app/tests/oidc_device.rs`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, LOCATION};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::support::{TestServer, s};

const PASSWORD: &str = "correct horse battery staple 42";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const DEVICE_UA: &str = "SmartTV/1.0 (living room)";

async fn person(server: &TestServer, name: &str) -> String {
    let user = server
        .create("/api/v1/users", json!({"username": name}))
        .await;
    let id = s(&user["id"]);
    let r = server
        .req(
            reqwest::Method::POST,
            &format!("/api/v1/users/{id}/password"),
        )
        .json(&json!({"password": PASSWORD, "temporary": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    id
}

/// A public client on a TV that may use the device grant and refresh.
async fn tv_app(server: &TestServer, client_id: &str) {
    server
        .create(
            "/api/v1/clients",
            json!({
                "client_id": client_id,
                "name": "Living Room TV",
                "type": "public",
                "grant_types": [DEVICE_GRANT, "refresh_token"],
                "scopes": ["openid", "profile"],
            }),
        )
        .await;
}

/// `POST /oauth2/device_authorization` as the device.
async fn device_authorization(server: &TestServer, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = server
        .client
        .post(server.url("/oauth2/device_authorization"))
        .header("user-agent", DEVICE_UA)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    if status == StatusCode::OK {
        assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    }
    (status, r.json().await.unwrap())
}

/// One poll of the token endpoint by `client_id` (a public client).
async fn poll(server: &TestServer, client_id: &str, device_code: &str) -> (StatusCode, Value) {
    let r = server
        .client
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", DEVICE_GRANT),
            ("client_id", client_id),
            ("device_code", device_code),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

async fn poll_error(server: &TestServer, client_id: &str, device_code: &str) -> String {
    let (status, body) = poll(server, client_id, device_code).await;
    assert_ne!(status, StatusCode::OK, "{body}");
    s(&body["error"])
}

/// A browser signed in as `username` through the `/device` link, which
/// sends a signed-out person to sign in and back; returns the code page.
async fn sign_in_via(browser: &mut Browser<'_>, path: &str, username: &str) -> String {
    let (status, headers, _) = browser.get(path).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let login = headers[LOCATION].to_str().unwrap().to_owned();
    assert!(login.starts_with("/login?return_to=%2Fdevice"), "{login}");
    browser.get(&login).await;
    let (status, headers, _) = browser.sign_in(username, PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let back = headers[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(back, path);
    let (status, _, html) = browser.get(&back).await;
    assert_eq!(status, StatusCode::OK);
    html
}

async fn enter_code(browser: &mut Browser<'_>, user_code: &str) -> (StatusCode, String) {
    let csrf = browser.csrf().await;
    let (status, _, html) = browser
        .form("/device", &[("csrf", &csrf), ("user_code", user_code)])
        .await;
    (status, html)
}

async fn decide(
    browser: &mut Browser<'_>,
    user_code: &str,
    decision: &str,
) -> (StatusCode, String) {
    let csrf = browser.csrf().await;
    let (status, _, html) = browser
        .form(
            "/device/decision",
            &[
                ("csrf", &csrf),
                ("user_code", user_code),
                ("decision", decision),
            ],
        )
        .await;
    (status, html)
}

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn a_person_approves_a_device_which_gets_its_tokens_once() {
    let server = TestServer::dev_oidc().await;
    let alice = person(&server, "alice").await;
    tv_app(&server, "tv").await;
    tv_app(&server, "other-tv").await;

    let (status, issued) =
        device_authorization(&server, &[("client_id", "tv"), ("scope", "openid profile")]).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let device_code = s(&issued["device_code"]);
    let user_code = s(&issued["user_code"]);
    assert!(device_code.starts_with("idp_dc_"));
    assert_eq!(user_code.len(), 9, "{user_code}");
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{user_code}"
    );
    assert_eq!(issued["verification_uri"], server.url("/device"));
    assert_eq!(
        issued["verification_uri_complete"],
        server.url(&format!("/device?user_code={user_code}"))
    );
    assert_eq!(issued["expires_in"], 600);
    assert_eq!(issued["interval"], 5);

    // Waiting for the person; polling too fast slows the device down.
    assert_eq!(
        poll_error(&server, "tv", &device_code).await,
        "authorization_pending"
    );
    let (status, body) = poll(&server, "tv", &device_code).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::BAD_REQUEST, "slow_down".into())
    );
    assert!(
        s(&body["error_description"]).contains("10 seconds"),
        "{body}"
    );
    // Another client cannot use the device code.
    assert_eq!(
        poll_error(&server, "other-tv", &device_code).await,
        "invalid_grant"
    );

    // The link signs the person in and only prefills the code.
    let mut browser = Browser::new(&server);
    let link = s(&issued["verification_uri_complete"]);
    let html = sign_in_via(
        &mut browser,
        link.strip_prefix(&server.base).unwrap(),
        "alice",
    )
    .await;
    assert!(
        html.contains("<label for=\"user_code\">Code</label>"),
        "{html}"
    );
    assert!(html.contains(&format!("value=\"{user_code}\"")), "{html}");
    assert!(!html.contains("Approve"), "{html}");
    assert!(
        server
            .audit_query("&action=oauth.device_approve")
            .await
            .is_empty()
    );

    // The code as typed: lower case, no dash. The confirmation names the
    // client, what it asks for and where the request came from.
    let (status, html) = enter_code(&mut browser, &user_code.replace('-', "").to_lowercase()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Connect Living Room TV?"), "{html}");
    assert!(html.contains("Only approve if you started this on your own device just now"));
    assert!(html.contains("confirm who you are"));
    assert!(html.contains("see your name and username"));
    assert!(html.contains("127.0.0.1"), "{html}");
    assert!(html.contains("SmartTV/1.0 (living room)"), "{html}");
    assert!(html.contains(" UTC"), "{html}");
    assert!(html.contains(&user_code));
    // Still pending until the person answers.
    let (_, body) = poll(&server, "tv", &device_code).await;
    assert!(["authorization_pending", "slow_down"].contains(&body["error"].as_str().unwrap()));

    let (status, html) = decide(&mut browser, &user_code, "approve").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Device connected"), "{html}");
    // Answered once: a second answer finds nothing pending.
    let (_, html) = decide(&mut browser, &user_code, "deny").await;
    assert!(html.contains("expired or was already answered"), "{html}");

    let (status, tokens) = poll(&server, "tv", &device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile");
    assert!(s(&tokens["refresh_token"]).starts_with("idp_rt_"));
    let access = claims(&s(&tokens["access_token"]));
    assert_eq!(access["sub"], alice.as_str());
    assert_eq!(access["client_id"], "tv");
    assert_eq!(access["amr"], json!(["pwd"]));
    assert!(access["sid"].is_string());
    let id_token = claims(&s(&tokens["id_token"]));
    assert_eq!(id_token["sub"], alice.as_str());
    assert_eq!(id_token["aud"], "tv");
    assert_eq!(id_token["preferred_username"], "alice");

    // Exactly once.
    assert_eq!(
        poll_error(&server, "tv", &device_code).await,
        "invalid_grant"
    );
    // The refresh token works like any other.
    let r = server
        .client
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "tv"),
            ("refresh_token", s(&tokens["refresh_token"]).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Audited: the request, the approval, the issuance.
    let requested = server
        .audit_query("&action=oauth.device_authorization")
        .await;
    assert_eq!(requested.len(), 1, "{requested:?}");
    assert_eq!(requested[0]["target"], "client:tv");
    assert_eq!(requested[0]["user_agent"], DEVICE_UA);
    let approved = server.audit_query("&action=oauth.device_approve").await;
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0]["details"]["principal"], format!("user:{alice}"));
    let issued_events: Vec<Value> = server
        .audit_query("&action=oauth.token")
        .await
        .into_iter()
        .filter(|e| e["details"]["grant_type"] == DEVICE_GRANT)
        .collect();
    assert_eq!(issued_events.len(), 1, "{issued_events:?}");
    assert_eq!(
        issued_events[0]["details"]["subject"],
        format!("user:{alice}")
    );
    // Nothing secret reaches the audit log.
    let everything = serde_json::to_string(&server.audit().await).unwrap();
    assert!(!everything.contains(&device_code));
    assert!(!everything.contains(&user_code));
}

#[tokio::test]
async fn a_denied_request_answers_access_denied() {
    let server = TestServer::dev_oidc().await;
    person(&server, "bob").await;
    tv_app(&server, "tv").await;
    let (_, issued) =
        device_authorization(&server, &[("client_id", "tv"), ("scope", "openid")]).await;
    let device_code = s(&issued["device_code"]);
    let user_code = s(&issued["user_code"]);

    let mut browser = Browser::new(&server);
    let html = sign_in_via(&mut browser, "/device", "bob").await;
    assert!(html.contains("value=\"\""), "{html}");
    let (status, html) = enter_code(&mut browser, &user_code).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Deny"), "{html}");
    let (status, html) = decide(&mut browser, &user_code, "deny").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Request denied"), "{html}");

    let (status, body) = poll(&server, "tv", &device_code).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "access_denied");
    assert_eq!(
        poll_error(&server, "tv", &device_code).await,
        "access_denied"
    );
    assert_eq!(
        server.audit_query("&action=oauth.device_deny").await.len(),
        1
    );
    // A denied code cannot be approved afterwards.
    let (_, html) = enter_code(&mut browser, &user_code).await;
    assert!(html.contains("not valid"), "{html}");
}

#[tokio::test]
async fn wrong_codes_are_throttled_and_audited() {
    let server = TestServer::dev_oidc().await;
    person(&server, "carol").await;
    tv_app(&server, "tv").await;
    let (_, issued) = device_authorization(&server, &[("client_id", "tv")]).await;
    let user_code = s(&issued["user_code"]);

    // Signed out, the page and the form send the person to sign in.
    let mut browser = Browser::new(&server);
    let csrf = browser.csrf().await;
    let (status, headers, _) = browser
        .form("/device", &[("csrf", &csrf), ("user_code", &user_code)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/login?return_to=")
    );
    sign_in_via(&mut browser, "/device", "carol").await;
    // A hostile prefill is not reflected.
    let (status, _, html) = browser.get("/device?user_code=%3Cscript%3E").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("value=\"\""), "{html}");
    // No CSRF token, no answer.
    let (status, _, _) = browser
        .form("/device", &[("csrf", "wrong"), ("user_code", &user_code)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for wrong in [
        "BBBB-BBBB",
        "CCCC-CCCC",
        "not a code",
        "DDDD-DDDD",
        "FFFF-FFFF",
    ] {
        let (status, html) = enter_code(&mut browser, wrong).await;
        assert_eq!(status, StatusCode::OK, "{wrong}");
        assert!(html.contains("not valid"), "{html}");
    }
    // The sixth attempt is refused, even with the right code, and the
    // decision form is refused the same way.
    let (status, html) = enter_code(&mut browser, &user_code).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(html.contains("Too many wrong codes"), "{html}");
    let (status, html) = decide(&mut browser, &user_code, "approve").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(html.contains("Too many wrong codes"), "{html}");
    // The same source is refused in another session too.
    person(&server, "dave").await;
    let mut other = Browser::new(&server);
    sign_in_via(&mut other, "/device", "dave").await;
    let (status, _) = enter_code(&mut other, &user_code).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let rejected = server
        .audit_query("&action=oauth.device_code_rejected")
        .await;
    assert_eq!(rejected.len(), 5, "{rejected:?}");
    assert!(
        rejected.iter().all(|e| e["outcome"] == "failure"),
        "{rejected:?}"
    );
    assert!(
        !server
            .audit_query("&action=oauth.device_code_throttled")
            .await
            .is_empty()
    );
    assert!(
        server
            .audit_query("&action=oauth.device_approve")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn device_authorization_checks_the_client() {
    let server = TestServer::dev_oidc().await;
    let metadata = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        metadata["device_authorization_endpoint"],
        server.url("/oauth2/device_authorization")
    );
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(DEVICE_GRANT))
    );
    tv_app(&server, "tv").await;
    let secret = server
        .create(
            "/api/v1/clients",
            json!({"client_id": "web", "name": "Web", "redirect_uris": ["http://127.0.0.1:9/cb"], "scopes": ["openid"]}),
        )
        .await["client_secret"]
        .clone();
    // A client not registered for the device grant.
    let r = server
        .client
        .post(server.url("/oauth2/device_authorization"))
        .basic_auth("web", Some(s(&secret)))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    // A wrong secret.
    let r = server
        .client
        .post(server.url("/oauth2/device_authorization"))
        .basic_auth("web", Some("idp_cs_wrong"))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Unknown clients and scopes the client may not ask for.
    let (status, body) = device_authorization(&server, &[("client_id", "nobody")]).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    let (_, body) = device_authorization(&server, &[("client_id", "tv"), ("scope", "admin")]).await;
    assert_eq!(body["error"], "invalid_scope");
    // A made-up device code.
    assert_eq!(
        poll_error(&server, "tv", "idp_dc_nothing").await,
        "invalid_grant"
    );
}
