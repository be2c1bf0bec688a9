//! Dynamic client registration (RFC 7591) and its management (RFC 7592)
//! over HTTP: an admin token is the initial access token, the registration
//! access token manages only its own client and is rotated by updates, and
//! every error is an RFC 7591 JSON error body.

use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, expect_json, s};

const REGISTER: &str = "/oauth2/register";

fn rp() -> Value {
    json!({
        "client_name": "Relying party",
        "redirect_uris": ["https://rp.example/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid email",
        "backchannel_logout_uri": "https://rp.example/backchannel",
        "dpop_bound_access_tokens": true,
        "logo_uri": "https://rp.example/logo.png",
        "tos_uri": "https://rp.example/tos",
        "software_id": "rp-suite",
    })
}

async fn register(srv: &TestServer, token: &str, body: &Value) -> Response {
    srv.req_as(token, Method::POST, REGISTER)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Checks an RFC 7591 error response: status, `error`, and that it is not
/// cached; returns the body.
async fn expect_error(r: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let challenge = r.headers().get(WWW_AUTHENTICATE).cloned();
    let content_type = r.headers().get(CONTENT_TYPE).cloned();
    let body = expect_json(r, status).await;
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert_eq!(
        content_type.and_then(|v| v.to_str().ok().map(str::to_owned)),
        Some("application/json".to_owned())
    );
    if status == StatusCode::UNAUTHORIZED {
        let challenge = challenge.expect("WWW-Authenticate on a 401");
        assert!(
            challenge.to_str().unwrap().starts_with("Bearer "),
            "{challenge:?}"
        );
    }
    body
}

fn manage(
    srv: &TestServer,
    token: &str,
    method: Method,
    client_id: &str,
) -> reqwest::RequestBuilder {
    srv.req_as(token, method, &format!("{REGISTER}/{client_id}"))
}

#[tokio::test]
async fn register_read_replace_and_delete_with_the_registration_token() {
    let srv = TestServer::dev().await;
    let (_, admin) = srv.token(json!({"name": "dcr", "scope": "admin"})).await;
    let r = register(&srv, &admin, &rp()).await;
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let created = expect_json(r, StatusCode::CREATED).await;
    let client_id = s(&created["client_id"]);
    let secret = s(&created["client_secret"]);
    let token = s(&created["registration_access_token"]);
    assert!(secret.starts_with("idp_cs_"), "{created}");
    assert!(token.starts_with("idp_rat_"), "{created}");
    assert_eq!(created["client_secret_expires_at"], 0);
    assert!(created["client_id_issued_at"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(
        created["registration_client_uri"]
            .as_str()
            .unwrap()
            .rsplit_once(REGISTER)
            .map(|(_, tail)| tail.to_owned()),
        Some(format!("/{client_id}"))
    );
    assert_eq!(created["client_name"], "Relying party");
    assert_eq!(created["redirect_uris"], json!(["https://rp.example/cb"]));
    assert_eq!(created["response_types"], json!(["code"]));
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["scope"], "email openid");
    assert_eq!(
        created["backchannel_logout_uri"],
        "https://rp.example/backchannel"
    );
    assert_eq!(created["dpop_bound_access_tokens"], true);
    assert_eq!(created["id_token_signed_response_alg"], "ES256");
    assert!(created.get("logo_uri").is_none());

    // The admin API sees a third-party client, never its registration token.
    let admin_view = srv.get_json(&format!("/api/v1/clients/{client_id}")).await;
    assert_eq!(admin_view["first_party"], false);
    assert_eq!(admin_view["dpop_bound_access_tokens"], true);
    assert_eq!(
        admin_view["backchannel_logout_uri"],
        "https://rp.example/backchannel"
    );
    assert!(
        !admin_view.to_string().contains("registration"),
        "{admin_view}"
    );

    // GET: the metadata, no secret.
    let r = manage(&srv, &token, Method::GET, &client_id)
        .send()
        .await
        .unwrap();
    let read = expect_json(r, StatusCode::OK).await;
    assert!(read.get("client_secret").is_none(), "{read}");
    assert_eq!(read["client_id"], client_id.as_str());
    assert_eq!(
        read["registration_client_uri"],
        created["registration_client_uri"]
    );
    assert_eq!(read["scope"], "email openid");

    // PUT: a full replacement, with a new registration token.
    let mut body = read.clone();
    let map = body.as_object_mut().unwrap();
    for key in [
        "registration_access_token",
        "registration_client_uri",
        "client_secret_expires_at",
        "client_id_issued_at",
    ] {
        map.remove(key);
    }
    map.insert("client_name".into(), "Renamed RP".into());
    map.insert("redirect_uris".into(), json!(["https://rp.example/cb2"]));
    map.insert("client_secret".into(), secret.clone().into());
    map.remove("dpop_bound_access_tokens");
    let r = manage(&srv, &token, Method::PUT, &client_id)
        .json(&body)
        .send()
        .await
        .unwrap();
    let updated = expect_json(r, StatusCode::OK).await;
    assert_eq!(updated["client_name"], "Renamed RP");
    assert_eq!(updated["redirect_uris"], json!(["https://rp.example/cb2"]));
    assert_eq!(updated["dpop_bound_access_tokens"], false);
    assert!(updated.get("client_secret").is_none(), "{updated}");
    let new_token = s(&updated["registration_access_token"]);
    assert_ne!(new_token, token);
    // The old token no longer works; the new one does.
    let r = manage(&srv, &token, Method::GET, &client_id)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let r = manage(&srv, &new_token, Method::GET, &client_id)
        .send()
        .await
        .unwrap();
    let read = expect_json(r, StatusCode::OK).await;
    assert_eq!(read["client_name"], "Renamed RP");

    // A PUT naming another client_id is refused.
    let r = manage(&srv, &new_token, Method::PUT, &client_id)
        .json(&json!({"client_id": "someone-else", "redirect_uris": ["https://rp.example/cb"]}))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;

    // DELETE: 204, and the client is gone.
    let r = manage(&srv, &new_token, Method::DELETE, &client_id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = manage(&srv, &new_token, Method::GET, &client_id)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let r = srv
        .req(Method::GET, &format!("/api/v1/clients/{client_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Audited, without any secret.
    let audit = srv.audit().await;
    let text = Value::Array(audit.clone()).to_string();
    for secret in [&secret, &token, &new_token] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret reached the audit log"
        );
    }
    let actions: Vec<&str> = audit
        .iter()
        .filter(|r| r["outcome"] == "success")
        .filter_map(|r| r["action"].as_str())
        .filter(|a| a.starts_with("client."))
        .collect();
    assert_eq!(
        actions,
        ["client.register", "client.update", "client.delete"]
    );
    assert!(
        audit
            .iter()
            .any(|r| r["action"] == "client.registration" && r["outcome"] == "failure"),
        "refused registration tokens are audited"
    );
}

#[tokio::test]
async fn registration_needs_an_admin_token() {
    let srv = TestServer::dev().await;
    let (_, reader) = srv.token(json!({"name": "ro", "scope": "read"})).await;
    // No token, a wrong one, a read-only one: 401 invalid_token.
    let r = srv
        .client
        .post(srv.url(REGISTER))
        .json(&rp())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    for token in ["idp_wrong", &reader, "Basic"] {
        let r = register(&srv, token, &rp()).await;
        expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    let r = srv
        .client
        .post(srv.url(REGISTER))
        .basic_auth("x", Some(&srv.root))
        .json(&rp())
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // The token is checked before the body.
    let r = srv
        .req_as("idp_wrong", Method::POST, REGISTER)
        .header(CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let list = srv.get_json("/api/v1/clients").await;
    assert!(list["items"].as_array().unwrap().is_empty());

    // The dev root token is an admin token too.
    let r = register(&srv, &srv.root, &rp()).await;
    expect_json(r, StatusCode::CREATED).await;
}

#[tokio::test]
async fn bad_metadata_is_an_rfc_7591_error() {
    let srv = TestServer::dev().await;
    let root = srv.root.clone();
    for uri in [
        "http://rp.example/cb",
        "https://rp.example/cb#fragment",
        "https://*.rp.example/cb",
        "https://rp.example/*",
        "javascript:alert(1)",
    ] {
        let r = register(&srv, &root, &json!({"redirect_uris": [uri]})).await;
        let body = expect_error(r, StatusCode::BAD_REQUEST, "invalid_redirect_uri").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("redirect_uris"),
            "{body}"
        );
    }
    for (body, needle) in [
        (
            json!({"redirect_uris": ["https://rp.example/cb"], "response_types": ["token"]}),
            "response_types",
        ),
        (
            json!({"redirect_uris": ["https://rp.example/cb"], "response_types": ["code", "id_token"]}),
            "response_types",
        ),
        (
            json!({"redirect_uris": ["https://rp.example/cb"], "grant_types": ["password"]}),
            "password",
        ),
        (
            json!({"redirect_uris": ["https://rp.example/cb"], "token_endpoint_auth_method": "tls_client_auth"}),
            "token_endpoint_auth_method",
        ),
        (
            json!({"redirect_uris": ["https://rp.example/cb"], "backchannel_logout_uri": "http://rp.example/logout"}),
            "backchannel_logout_uri",
        ),
        (json!({"redirect_uris": "https://rp.example/cb"}), "array"),
        (json!(["https://rp.example/cb"]), "object"),
    ] {
        let r = register(&srv, &root, &body).await;
        let err = expect_error(r, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
        assert!(
            err["error_description"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
    }
    // Malformed, oversized, or not JSON at all.
    let huge = json!({
        "redirect_uris": ["https://rp.example/cb"],
        "client_name": "x".repeat(300 * 1024),
    })
    .to_string();
    for (content_type, payload) in [
        ("application/json", "{\"redirect_uris\": [".to_owned()),
        ("application/json", String::new()),
        ("application/json", huge),
        (
            "application/x-www-form-urlencoded",
            "redirect_uris=https://rp.example/cb".to_owned(),
        ),
    ] {
        let r = srv
            .req(Method::POST, REGISTER)
            .header(CONTENT_TYPE, content_type)
            .body(payload)
            .send()
            .await
            .unwrap();
        expect_error(r, StatusCode::BAD_REQUEST, "invalid_client_metadata").await;
    }
    let list = srv.get_json("/api/v1/clients").await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_registration_token_manages_only_its_own_client() {
    let srv = TestServer::dev().await;
    let root = srv.root.clone();
    let a = expect_json(register(&srv, &root, &rp()).await, StatusCode::CREATED).await;
    let b = expect_json(register(&srv, &root, &rp()).await, StatusCode::CREATED).await;
    let a_token = s(&a["registration_access_token"]);
    let b_id = s(&b["client_id"]);
    srv.create(
        "/api/v1/clients",
        json!({"client_id": "admin-made", "name": "Admin made", "grant_types": ["client_credentials"]}),
    )
    .await;

    // Another client, an unknown one, an admin-made one, and an admin
    // token: all refused alike.
    let mut bodies = Vec::new();
    for (token, id) in [
        (a_token.as_str(), b_id.as_str()),
        (a_token.as_str(), "0123456789abcdef0123456789abcdef"),
        (a_token.as_str(), "admin-made"),
        (root.as_str(), b_id.as_str()),
        ("", b_id.as_str()),
    ] {
        for method in [Method::GET, Method::DELETE] {
            let r = manage(&srv, token, method, id).send().await.unwrap();
            let body = expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
            bodies.push(body);
        }
        let r = manage(&srv, token, Method::PUT, id)
            .json(&json!({"client_id": id, "redirect_uris": ["https://evil.example/cb"]}))
            .send()
            .await
            .unwrap();
        bodies.push(expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await);
        // A malformed body does not tell an outsider more.
        let r = manage(&srv, token, Method::PUT, id)
            .header(CONTENT_TYPE, "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        bodies.push(expect_error(r, StatusCode::UNAUTHORIZED, "invalid_token").await);
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]), "{bodies:?}");

    // B is untouched.
    let b_now = srv.get_json(&format!("/api/v1/clients/{b_id}")).await;
    assert_eq!(b_now["redirect_uris"], json!(["https://rp.example/cb"]));
    srv.get_json("/api/v1/clients/admin-made").await;
}

#[tokio::test]
async fn a_registered_client_gets_tokens() {
    let srv = TestServer::dev_oidc().await;
    let root = srv.root.clone();
    let created = expect_json(
        register(
            &srv,
            &root,
            &json!({"client_name": "Service", "grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "client_secret_post"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["response_types"], json!([]));
    let id = s(&created["client_id"]);
    let secret = s(&created["client_secret"]);
    let r = srv
        .client
        .post(srv.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let body = expect_json(r, StatusCode::OK).await;
    assert!(body["access_token"].is_string(), "{body}");
}
