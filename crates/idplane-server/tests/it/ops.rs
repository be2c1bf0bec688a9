//! Operations: health, readiness, metrics, the OpenAPI document, shutdown.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, expect_json, idplane, s};

#[tokio::test]
async fn health_metrics_and_openapi() {
    let srv = TestServer::dev().await;
    let r = srv.client.get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = srv.client.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    srv.create("/api/v1/tenants", json!({"name": "acme"})).await;
    srv.get_json("/api/v1/users").await;
    srv.get_json("/api/v1/tenants/acme/users").await;
    let r = srv
        .req(Method::GET, "/some-random-path-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = srv.client.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let body = r.text().await.unwrap();
    let requests: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("idplane_http_requests_total{"))
        .collect();
    assert!(
        requests
            .iter()
            .any(|l| l.contains("route=\"/api/v1/users\"") && l.contains("status=\"200\"")),
        "no request counter with a route label:\n{body}"
    );
    // Route templates, not raw paths: bounded label cardinality.
    assert!(
        requests
            .iter()
            .any(|l| l.contains("route=\"/api/v1/tenants/{tenant}/users\"")),
        "{body}"
    );
    assert!(
        !body.contains("/api/v1/tenants/acme"),
        "a raw path became a label:\n{body}"
    );
    assert!(
        !body.contains("some-random-path"),
        "an unmatched path became a label:\n{body}"
    );
    assert!(
        body.contains("idplane_http_request_duration_seconds"),
        "{body}"
    );

    let r = srv
        .client
        .get(srv.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc: Value = expect_json(r, StatusCode::OK).await;
    assert!(s(&doc["openapi"]).starts_with("3.1"), "{}", doc["openapi"]);
    let users = &doc["paths"]["/api/v1/tenants/{tenant}/users"];
    assert!(
        users["get"].is_object() && users["post"].is_object(),
        "{users}"
    );
    for path in [
        "/api/v1/tenants",
        "/api/v1/tokens",
        "/api/v1/bootstrap",
        "/api/v1/tenants/{tenant}/groups/{id}/members",
        "/api/v1/tenants/{tenant}/principals/{id}/access",
        "/api/v1/tenants/{tenant}/audit/checkpoint",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = TestServer::start(&data, true).await;
    let mut pending = Vec::new();
    for i in 0..20 {
        let req = srv
            .req(Method::POST, "/api/v1/users")
            .json(&json!({"username": format!("u{i}")}));
        pending.push(tokio::spawn(async move { req.send().await }));
    }
    for p in pending {
        let r = p.await.unwrap().unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let status = srv.terminate().await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}: {}",
        srv.stderr()
    );
    drop(srv);

    let mut srv = TestServer::start(&data, true).await;
    let users = srv.get_json("/api/v1/users?prefix=u&limit=100").await;
    assert_eq!(users["items"].as_array().unwrap().len(), 20);
    assert_eq!(srv.audit_query("&action=user.create").await.len(), 20);

    // SIGINT too; and the chain written by concurrent requests verifies.
    let status = srv.signal("INT").await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}: {}",
        srv.stderr()
    );
    let out = idplane()
        .arg("audit")
        .arg("verify")
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
