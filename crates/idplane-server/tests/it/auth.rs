//! Who may call the admin API, and what failed attempts leave behind.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestServer, expect_json, expect_problem};

#[tokio::test]
async fn missing_bad_and_revoked_tokens_are_401() {
    let srv = TestServer::dev().await;

    let r = srv
        .client
        .get(srv.url("/api/v1/users"))
        .send()
        .await
        .unwrap();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    expect_problem(r, StatusCode::UNAUTHORIZED).await;
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer")),
        "WWW-Authenticate challenge"
    );

    for bad in [
        "nonsense",
        "idp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &format!("{}x", srv.root),
    ] {
        let r = srv
            .req_as(bad, Method::GET, "/api/v1/users")
            .send()
            .await
            .unwrap();
        assert!(r.headers().contains_key("www-authenticate"));
        expect_problem(r, StatusCode::UNAUTHORIZED).await;
    }
    // A malformed Authorization header is the same as none.
    let r = srv
        .client
        .get(srv.url("/api/v1/users"))
        .header("authorization", format!("Basic {}", srv.root))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNAUTHORIZED).await;

    let (id, secret) = srv.token(json!({"name": "ci", "scope": "admin"})).await;
    let r = srv
        .req_as(&secret, Method::GET, "/api/v1/users")
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    let listed = srv.get_json("/api/v1/tokens").await;
    let item = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert!(
        item.get("secret").is_none(),
        "listings never show secrets: {item}"
    );
    assert!(item["revoked_at"].is_null());
    let r = srv
        .req(Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = srv
        .req_as(&secret, Method::GET, "/api/v1/users")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNAUTHORIZED).await;
    let r = srv
        .req(Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn read_tokens_read_and_tenant_tokens_stay_home() {
    let srv = TestServer::dev().await;
    srv.create("/api/v1/tenants", json!({"name": "acme"})).await;

    // Read scope (the default).
    let (_, read) = srv.token(json!({"name": "auditor"})).await;
    let r = srv
        .req_as(&read, Method::GET, "/api/v1/users")
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    let r = srv
        .req_as(&read, Method::GET, "/api/v1/tenants/acme/audit")
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    let before = srv.audit_count().await;
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/users",
            json!({"username": "mallory"}),
        ),
        (
            Method::POST,
            "/api/v1/tenants/acme/groups",
            json!({"name": "g"}),
        ),
        (Method::POST, "/api/v1/tenants", json!({"name": "evil"})),
        (
            Method::POST,
            "/api/v1/tokens",
            json!({"name": "escalate", "scope": "admin"}),
        ),
    ] {
        let r = srv
            .req_as(&read, method, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_problem(r, StatusCode::FORBIDDEN).await;
    }
    assert!(
        srv.get_json("/api/v1/users?name=mallory").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(srv.audit_count().await, before);

    // Bound to acme.
    let (token_id, acme) = srv
        .token(json!({"name": "acme-admin", "scope": "admin", "tenant": "acme"}))
        .await;
    let u = srv
        .req_as(&acme, Method::POST, "/api/v1/tenants/acme/users")
        .json(&json!({"username": "wile"}))
        .send()
        .await
        .unwrap();
    expect_json(u, StatusCode::CREATED).await;
    for path in [
        "/api/v1/tenants/default/users",
        "/api/v1/users",
        "/api/v1/tenants",
        "/api/v1/tokens",
        "/api/v1/tenants/acme",
    ] {
        let r = srv.req_as(&acme, Method::GET, path).send().await.unwrap();
        expect_problem(r, StatusCode::FORBIDDEN).await;
    }
    let r = srv
        .req_as(&acme, Method::POST, "/api/v1/tenants/default/users")
        .json(&json!({"username": "intruder"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::FORBIDDEN).await;
    assert!(
        srv.get_json("/api/v1/users?name=intruder").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The change it made is attributed to it in acme's chain.
    let events = srv
        .get_json("/api/v1/tenants/acme/audit?action=user.create")
        .await;
    assert_eq!(events["items"][0]["actor"], format!("token:{token_id}"));
}

#[tokio::test]
async fn failed_authentication_is_audited() {
    let srv = TestServer::dev().await;
    let (id, secret) = srv
        .token(json!({"name": "soon-revoked", "scope": "admin"}))
        .await;
    let r = srv
        .req(Method::DELETE, &format!("/api/v1/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let r = srv
        .req_as("idp_guessing", Method::GET, "/api/v1/users")
        .header("x-request-id", "req-bad-token")
        .header("user-agent", "intruder/1.0")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNAUTHORIZED).await;
    let r = srv
        .req_as(&secret, Method::GET, "/api/v1/groups")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNAUTHORIZED).await;

    let failures = srv.audit_query("&action=auth.admin_token").await;
    assert_eq!(failures.len(), 2, "{failures:?}");
    for f in &failures {
        assert_eq!(f["outcome"], "failure", "{f}");
        assert_eq!(f["actor"], "anonymous", "{f}");
        assert_eq!(f["source_ip"], "127.0.0.1", "{f}");
    }
    assert_eq!(failures[0]["request_id"], "req-bad-token");
    assert_eq!(failures[0]["user_agent"], "intruder/1.0");
    assert_eq!(failures[0]["details"]["reason"], "unknown token");
    assert_eq!(failures[1]["target"], format!("token:{id}"));
    assert_eq!(failures[1]["details"]["reason"], "revoked token");
    let text = serde_json::to_string(&failures).unwrap();
    assert!(
        !text.contains(&secret),
        "the presented secret is never recorded"
    );
}
