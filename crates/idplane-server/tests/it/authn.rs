//! Signing in as a person would: the pages, a password, an authenticator
//! app, a passkey (a software authenticator), sessions, and the attacks on
//! each step.

use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::json;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use crate::browser::Browser;
use crate::support::{TestServer, s};

const PASSWORD: &str = "correct horse battery staple 42";

fn location(headers: &HeaderMap) -> String {
    headers
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn user_with_password(server: &TestServer, name: &str) -> String {
    let user = server
        .create("/api/v1/users", json!({"username": name}))
        .await;
    let id = s(&user["id"]);
    let r = server
        .req(Method::POST, &format!("/api/v1/users/{id}/password"))
        .json(&json!({"password": PASSWORD, "temporary": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    id
}

/// The current code of an authenticator app holding `secret` (base32).
fn totp_now(secret: &str) -> String {
    let totp = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .with_account_name("alice".to_owned())
        .build()
        .unwrap();
    totp.generate_current().to_string()
}

fn between<'t>(text: &'t str, start: &str, end: &str) -> &'t str {
    let from = text.find(start).unwrap() + start.len();
    let to = text[from..].find(end).unwrap() + from;
    &text[from..to]
}

#[tokio::test]
async fn the_sign_in_page_is_labelled_and_locked_down() {
    let server = TestServer::dev().await;
    let mut browser = Browser::new(&server);
    let (status, headers, body) = browser.get("/login").await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'nonce-"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    let nonce = between(csp, "'nonce-", "'");
    assert!(
        body.contains(&format!("nonce=\"{nonce}\"")),
        "the script carries the response's nonce"
    );
    assert!(body.contains(r#"<label for="username">Username</label>"#));
    assert!(body.contains(r#"<label for="password">Password</label>"#));
    assert_eq!(headers["x-frame-options"], "DENY");
    // A form without the CSRF token is refused.
    let (status, _, _) = browser
        .form(
            "/login",
            &[("csrf", "forged"), ("username", "x"), ("password", "y")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_person_signs_in_enrolls_factors_and_uses_a_passkey_alone() {
    let server = TestServer::dev().await;
    let origin = Url::parse(&server.base.replace("127.0.0.1", "localhost")).unwrap();
    let alice = user_with_password(&server, "alice").await;
    let mut browser = Browser::new(&server);

    // Session fixation: a cookie planted before sign-in is not the session.
    browser.set("idplane_session", "planted-by-attacker");
    let (status, headers, _) = browser.sign_in("alice", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/account");
    let first_session = browser.cookie("idplane_session").unwrap();
    assert_ne!(first_session, "planted-by-attacker");
    let (status, _, account) = browser.get("/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(account.contains("alice"));

    // Enroll an authenticator app.
    let csrf = browser.csrf().await;
    let (_, _, page) = browser.form("/account/totp", &[("csrf", &csrf)]).await;
    let secret = between(&page, "Key: <code>", "</code>").to_owned();
    assert!(
        page.contains("<svg"),
        "the QR code is rendered by the server"
    );
    let code = totp_now(&secret);
    let (status, _, page) = browser
        .form("/account/totp/confirm", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(status, StatusCode::OK);
    let recovery: Vec<String> = page
        .split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);

    // Enroll a passkey with a software authenticator.
    let mut authenticator = SoftPasskey::new(true);
    let (status, start) = browser.json("/account/passkeys/options", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    // The soft token keeps no resident keys: ask it for a plain credential
    // and remember the user handle for it, as a passkey would.
    let mut options = start["options"].clone();
    let user_handle = s(&options["publicKey"]["user"]["id"]);
    let selection = &mut options["publicKey"]["authenticatorSelection"];
    selection["requireResidentKey"] = json!(false);
    selection.as_object_mut().unwrap().remove("residentKey");
    let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let credential = authenticator
        .do_registration(origin.clone(), options)
        .unwrap();
    let credential_id = credential.id.clone();
    let (status, added) = browser
        .json(
            "/account/passkeys",
            json!({"handle": start["handle"], "name": "laptop", "credential": credential}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");

    // Sign out: the session cookie stops working.
    let (status, _, _) = browser.form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let mut stale = Browser::new(&server);
    stale.set("idplane_session", &first_session);
    let (_, headers, _) = stale.get("/account").await;
    assert_eq!(location(&headers), "/login");
    // The cookie was the only credential: the record names its owner.
    let ended = server.audit_query("&action=session.end").await;
    assert_eq!(ended[0]["details"]["reason"], "signed out");
    assert_eq!(ended[0]["details"]["user"], format!("user:{alice}"));

    // The password now needs the second factor; a replayed code is refused.
    let (_, headers, _) = browser.sign_in("alice", PASSWORD).await;
    assert_eq!(location(&headers), "/login/second-factor?method=totp");
    let (_, _, page) = browser
        .form(
            "/login/second-factor",
            &[("csrf", &csrf), ("method", "totp"), ("code", &code)],
        )
        .await;
    assert!(page.contains("did not work"), "a TOTP code works once");
    let (status, headers, _) = browser
        .form(
            "/login/second-factor",
            &[
                ("csrf", &csrf),
                ("method", "recovery"),
                ("code", &recovery[0]),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/account");
    browser.form("/logout", &[("csrf", &csrf)]).await;

    // Sign in with the passkey alone: no username, no password.
    let (status, start) = browser.json("/login/passkey/options", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let mut options = start["options"].clone();
    assert_eq!(
        options["publicKey"]["allowCredentials"],
        json!([]),
        "no username: discoverable"
    );
    // The person picks their passkey; the soft token needs to be told which.
    options["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": credential_id}]);
    let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let assertion = authenticator
        .do_authentication(origin.clone(), options)
        .unwrap();
    let mut assertion = serde_json::to_value(&assertion).unwrap();
    assertion["response"]["userHandle"] = json!(user_handle);
    let (status, done) = browser
        .json(
            "/login/passkey",
            json!({"handle": start["handle"], "credential": assertion}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (status, _, account) = browser.get("/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        account.contains("urn:idplane:acr:phr"),
        "a passkey sign-in is phishing-resistant"
    );
    // The same assertion again is refused (its challenge was single use).
    let (status, _) = browser
        .json(
            "/login/passkey",
            json!({"handle": start["handle"], "credential": assertion}),
        )
        .await;
    assert!(status.is_client_error());

    // Sessions: listed for the admin, ended by the person.
    let sessions = server
        .get_json(&format!("/api/v1/users/{alice}/sessions"))
        .await;
    let current = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["acr"] == "urn:idplane:acr:phr")
        .unwrap();
    let (status, headers, _) = browser
        .form(
            "/account/sessions/end",
            &[("csrf", &csrf), ("id", &s(&current["id"]))],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/login");
    let (_, headers, _) = browser.get("/account").await;
    assert_eq!(location(&headers), "/login");

    // Every step left its trace.
    let actions: Vec<String> = server
        .audit()
        .await
        .iter()
        .map(|e| s(&e["action"]))
        .collect();
    for action in [
        "auth.password",
        "session.create",
        "passkey.register",
        "passkey.sign_in",
        "session.end",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "no {action} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn failures_look_alike_and_suspended_users_cannot_sign_in() {
    let server = TestServer::dev().await;
    let bob = user_with_password(&server, "bob").await;
    let mut browser = Browser::new(&server);
    let (_, _, wrong) = browser.sign_in("bob", "not the password at all").await;
    let (_, _, unknown) = browser.sign_in("nobody", "not the password at all").await;
    let message = |page: &str| between(page, "role=\"alert\">", "<").to_owned();
    assert_eq!(message(&wrong), message(&unknown));

    let r = server
        .req(Method::PATCH, &format!("/api/v1/users/{bob}"))
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _, page) = browser.sign_in("bob", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(message(&page), message(&wrong));
    assert!(browser.cookie("idplane_session").is_none());
}

#[tokio::test]
async fn email_codes_are_a_second_factor_when_the_tenant_enables_them() {
    let server = TestServer::dev().await;
    let carol = server
        .create(
            "/api/v1/users",
            json!({"username": "carol", "email": "carol@example.com"}),
        )
        .await;
    let r = server
        .req(
            Method::POST,
            &format!("/api/v1/users/{}/password", s(&carol["id"])),
        )
        .json(&json!({"password": PASSWORD, "temporary": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = server
        .req(Method::PUT, "/api/v1/auth-policy")
        .json(&json!({"email_codes": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let mut browser = Browser::new(&server);
    let (_, headers, _) = browser.sign_in("carol", PASSWORD).await;
    assert_eq!(location(&headers), "/login/second-factor?method=email");
    let (_, _, page) = browser.get("/login/second-factor?method=email").await;
    assert!(page.contains("We sent a 6-digit code"));
    // Dev mode: the mail is in the outbox, not on the network.
    let mails = server.get_json("/api/v1/outbox").await;
    let mail = &mails[0];
    assert_eq!(mail["recipient"], "carol@example.com");
    let body = s(&mail["body"]);
    let code: String = body
        .split_whitespace()
        .find(|w| w.len() == 6 && w.chars().all(|c| c.is_ascii_digit()))
        .unwrap()
        .to_owned();
    let csrf = browser.csrf().await;
    let (status, headers, _) = browser
        .form(
            "/login/second-factor",
            &[("csrf", &csrf), ("method", "email"), ("code", &code)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/account");
    let (_, _, account) = browser.get("/account").await;
    assert!(account.contains("urn:idplane:acr:mfa"));
}

#[tokio::test]
async fn step_up_asks_again_and_return_targets_stay_local() {
    let server = TestServer::dev().await;
    user_with_password(&server, "dana").await;
    let mut browser = Browser::new(&server);
    // An outside target is ignored: no open redirect.
    browser.get("/login?return_to=https://evil.example/x").await;
    let (_, headers, _) = browser.sign_in("dana", PASSWORD).await;
    assert_eq!(location(&headers), "/account");
    // Signed in with one factor: a plain visit goes straight through...
    let (_, headers, _) = browser.get("/login?return_to=/account%3Ftab%3D1").await;
    assert_eq!(location(&headers), "/account?tab=1");
    // ...but a request for a stronger class, or a fresher sign-in, asks again.
    let (status, _, page) = browser.get("/login?acr=urn:idplane:acr:mfa").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Sign in"));
    let (status, _, _) = browser.get("/login?max_age=0").await;
    assert_eq!(status, StatusCode::OK);
    // Signing in again replaces the session.
    let before = browser.cookie("idplane_session").unwrap();
    browser.get("/login?max_age=0&return_to=/account").await;
    let (_, headers, _) = browser.sign_in("dana", PASSWORD).await;
    assert_eq!(location(&headers), "/account");
    assert_ne!(browser.cookie("idplane_session").unwrap(), before);
    let mut old = Browser::new(&server);
    old.set("idplane_session", &before);
    let (_, headers, _) = old.get("/account").await;
    assert_eq!(location(&headers), "/login", "the replaced session ended");
}

#[tokio::test]
async fn every_form_refuses_a_missing_or_forged_csrf_token() {
    let server = TestServer::dev().await;
    user_with_password(&server, "erin").await;
    let mut browser = Browser::new(&server);
    browser.sign_in("erin", PASSWORD).await;
    for path in [
        "/login",
        "/login/second-factor",
        "/login/change-password",
        "/logout",
        "/account/password",
        "/account/totp",
        "/account/totp/confirm",
        "/account/totp/remove",
        "/account/recovery-codes",
        "/account/passkeys/remove",
        "/account/sessions/end",
    ] {
        let (status, _, _) = browser
            .form(
                path,
                &[
                    ("csrf", "forged-token"),
                    ("code", "1"),
                    ("id", "x"),
                    ("current", "a"),
                    ("new", "b"),
                    ("password", "p"),
                    ("username", "u"),
                    ("method", "totp"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    for path in [
        "/login/passkey/options",
        "/login/passkey",
        "/account/passkeys/options",
        "/account/passkeys",
    ] {
        let r = browser
            .client
            .post(server.url(path))
            .header("cookie", browser.cookie_header())
            .header("x-csrf-token", "forged")
            .json(&json!({"handle": "h", "name": "n", "credential": {}}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == StatusCode::FORBIDDEN,
            "{path}: {}",
            r.status()
        );
    }
    // Still signed in: nothing above took effect.
    let (status, _, _) = browser.get("/account").await;
    assert_eq!(status, StatusCode::OK);
}
