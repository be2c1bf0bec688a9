//! The OAuth client registry over the admin API: the secret appears once,
//! ETag/If-Match guard changes, bad registrations are problem documents,
//! and nothing secret reaches the audit log.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, etag, expect_json, expect_problem, s};

#[tokio::test]
async fn clients_crud_with_secret_shown_once() {
    let srv = TestServer::dev().await;
    let created = srv
        .create(
            "/api/v1/clients",
            json!({
                "client_id": "portal",
                "name": "Employee portal",
                "redirect_uris": ["https://portal.example.com/callback"],
                "scopes": ["openid", "profile"],
            }),
        )
        .await;
    assert_eq!(created["client_id"], "portal");
    assert_eq!(created["type"], "confidential");
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["id_token_signed_response_alg"], "ES256");
    assert_eq!(created["access_token_format"], "jwt");
    assert_eq!(created["has_secret"], true);
    assert_eq!(
        created["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    let secret = s(&created["client_secret"]);
    assert!(secret.starts_with("idp_cs_"), "{secret}");

    // Reads never show it.
    let r = srv
        .req(Method::GET, "/api/v1/clients/portal")
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"1\"");
    let got = expect_json(r, StatusCode::OK).await;
    assert!(got.get("client_secret").is_none(), "{got}");
    let list = srv.get_json("/api/v1/clients").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(&secret));
    // The tenant-scoped path serves the same resource.
    srv.get_json("/api/v1/tenants/default/clients/portal").await;

    // A stale If-Match is refused; the right one applies.
    let r = srv
        .req(Method::PATCH, "/api/v1/clients/portal")
        .header("If-Match", "\"9\"")
        .json(&json!({"first_party": true}))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::PRECONDITION_FAILED).await;
    let r = srv
        .req(Method::PATCH, "/api/v1/clients/portal")
        .header("If-Match", "\"1\"")
        .json(&json!({"first_party": true, "id_token_signed_response_alg": "RS256"}))
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"2\"");
    let updated = expect_json(r, StatusCode::OK).await;
    assert_eq!(updated["first_party"], true);
    assert_eq!(updated["id_token_signed_response_alg"], "RS256");
    assert!(updated.get("client_secret").is_none());

    // Rotation: a new secret, once.
    let r = srv
        .req(Method::POST, "/api/v1/clients/portal/secret")
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&r), "\"3\"");
    let rotated = expect_json(r, StatusCode::OK).await;
    let new_secret = s(&rotated["client_secret"]);
    assert_ne!(new_secret, secret);

    let audit = srv.audit().await;
    let text = Value::Array(audit.clone()).to_string();
    assert!(!text.contains(&secret) && !text.contains(&new_secret));
    let actions: Vec<&str> = audit
        .iter()
        .filter_map(|r| r["action"].as_str())
        .filter(|a| a.starts_with("client."))
        .collect();
    assert_eq!(
        actions,
        ["client.create", "client.update", "client.secret.rotate"]
    );

    let r = srv
        .req(Method::DELETE, "/api/v1/clients/portal")
        .header("If-Match", "\"3\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = srv
        .req(Method::GET, "/api/v1/clients/portal")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::NOT_FOUND).await;
    assert!(
        srv.audit()
            .await
            .iter()
            .any(|r| r["action"] == "client.delete")
    );
}

#[tokio::test]
async fn bad_registrations_are_problems_and_write_nothing() {
    let srv = TestServer::dev().await;
    let before = srv.audit_count().await;
    let cases = [
        (
            json!({"name": "x", "grant_types": ["implicit"], "redirect_uris": ["https://a.example/cb"]}),
            "implicit",
        ),
        (
            json!({"name": "x", "grant_types": ["password"], "redirect_uris": ["https://a.example/cb"]}),
            "password",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://good.example@evil.com/cb"]}),
            "user information",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://a.example/*"]}),
            "wildcard",
        ),
        (
            json!({"name": "x", "redirect_uris": ["http://localhost:8080/cb"]}),
            "127.0.0.1",
        ),
        (
            json!({"name": "x", "redirect_uris": ["javascript:alert(1)"]}),
            "javascript",
        ),
        (
            json!({"name": "x", "type": "public", "grant_types": ["client_credentials"]}),
            "client_credentials",
        ),
        (
            json!({"name": "x", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
            "jwks",
        ),
    ];
    for (body, needle) in cases {
        let r = srv
            .req(Method::POST, "/api/v1/clients")
            .json(&body)
            .send()
            .await
            .unwrap();
        let p = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            p.to_string().contains(needle),
            "{body}: {p} lacks {needle:?}"
        );
    }
    // Unknown fields and unknown enum values are refused too.
    for body in [
        json!({"name": "x", "client_secret": "mine"}),
        json!({"name": "x", "type": "trusted"}),
    ] {
        let r = srv
            .req(Method::POST, "/api/v1/clients")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{body}: {}", r.status());
    }
    assert_eq!(srv.audit_count().await, before);
    let list = srv.get_json("/api/v1/clients").await;
    assert!(list["items"].as_array().unwrap().is_empty());

    // A secret-less client has nothing to rotate.
    srv.create(
        "/api/v1/clients",
        json!({"client_id": "cli", "name": "CLI", "type": "public",
               "redirect_uris": ["http://127.0.0.1/callback"]}),
    )
    .await;
    let r = srv
        .req(Method::POST, "/api/v1/clients/cli/secret")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn read_only_tokens_cannot_register_or_rotate() {
    let srv = TestServer::dev().await;
    srv.create(
        "/api/v1/clients",
        json!({"client_id": "svc", "name": "Service", "grant_types": ["client_credentials"]}),
    )
    .await;
    let (_, reader) = srv.token(json!({"name": "ro", "scope": "read"})).await;
    let r = srv
        .req_as(&reader, Method::GET, "/api/v1/clients/svc")
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    for (method, path) in [
        (Method::POST, "/api/v1/clients"),
        (Method::POST, "/api/v1/clients/svc/secret"),
        (Method::DELETE, "/api/v1/clients/svc"),
    ] {
        let r = srv
            .req_as(&reader, method.clone(), path)
            .json(&json!({"name": "x", "grant_types": ["client_credentials"]}))
            .send()
            .await
            .unwrap();
        expect_problem(r, StatusCode::FORBIDDEN).await;
    }
}

#[tokio::test]
async fn back_channel_logout_and_dpop_binding_over_the_admin_api() {
    let srv = TestServer::dev().await;
    let created = srv
        .create(
            "/api/v1/clients",
            json!({
                "client_id": "rp",
                "name": "RP",
                "redirect_uris": ["https://rp.example/cb"],
                "backchannel_logout_uri": "https://rp.example/backchannel",
                "dpop_bound_access_tokens": true,
            }),
        )
        .await;
    assert_eq!(
        created["backchannel_logout_uri"],
        "https://rp.example/backchannel"
    );
    assert_eq!(created["dpop_bound_access_tokens"], true);
    let plain = srv
        .create(
            "/api/v1/clients",
            json!({"client_id": "plain", "name": "Plain", "redirect_uris": ["https://rp.example/cb"]}),
        )
        .await;
    assert!(plain["backchannel_logout_uri"].is_null(), "{plain}");
    assert_eq!(plain["dpop_bound_access_tokens"], false);
    // Nothing about dynamic registration shows.
    assert!(!created.to_string().contains("registration"), "{created}");

    let r = srv
        .req(Method::PATCH, "/api/v1/clients/rp")
        .json(&json!({"backchannel_logout_uri": null, "dpop_bound_access_tokens": false}))
        .send()
        .await
        .unwrap();
    let updated = expect_json(r, StatusCode::OK).await;
    assert!(updated["backchannel_logout_uri"].is_null(), "{updated}");
    assert_eq!(updated["dpop_bound_access_tokens"], false);

    for uri in [
        "http://rp.example/logout",
        "https://rp.example/logout#x",
        "logout",
    ] {
        let r = srv
            .req(Method::PATCH, "/api/v1/clients/rp")
            .json(&json!({"backchannel_logout_uri": uri}))
            .send()
            .await
            .unwrap();
        let p = expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(p.to_string().contains("backchannel_logout_uri"), "{p}");
    }
    let r = srv
        .req(Method::PATCH, "/api/v1/clients/rp")
        .json(&json!({"dpop_bound_access_tokens": "yes"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
}
