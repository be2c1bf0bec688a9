//! The token signing keys over HTTP: the JWKS for anyone, at both of its
//! paths; listing and rotation for global administrators only; a rotated
//! key published next to its successor.

use std::collections::HashSet;

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, expect_json, expect_problem, s};

/// The kids a JWKS (or a list of keys) names.
fn kids(keys: &Value) -> HashSet<String> {
    keys.as_array()
        .unwrap()
        .iter()
        .map(|k| s(&k["kid"]))
        .collect()
}

/// The JWKS, fetched without credentials.
async fn jwks(srv: &TestServer) -> Value {
    let r = srv
        .client
        .get(srv.url("/oauth2/jwks"))
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await
}

/// The kid of the active key of `algorithm`.
async fn active_kid(srv: &TestServer, algorithm: &str) -> String {
    let keys = srv.get_json("/api/v1/keys").await;
    let active: Vec<&Value> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["algorithm"] == algorithm && k["status"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{keys}");
    s(&active[0]["kid"])
}

#[tokio::test]
async fn the_jwks_is_public_at_both_paths() {
    let srv = TestServer::dev().await;
    let mut bodies = Vec::new();
    for path in ["/oauth2/jwks", "/.well-known/jwks.json"] {
        let r = srv.client.get(srv.url(path)).send().await.unwrap();
        let headers = r.headers().clone();
        bodies.push(expect_json(r, StatusCode::OK).await);
        assert_eq!(headers[CONTENT_TYPE], "application/json", "{path}");
        assert_eq!(headers[CACHE_CONTROL], "public, max-age=60", "{path}");
    }
    assert_eq!(bodies[0], bodies[1]);
    let published = &bodies[0]["keys"];
    let algorithms: HashSet<String> = published
        .as_array()
        .unwrap()
        .iter()
        .map(|k| s(&k["alg"]))
        .collect();
    assert_eq!(
        algorithms,
        HashSet::from(["ES256", "RS256", "EdDSA"].map(String::from))
    );
    for jwk in published.as_array().unwrap() {
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none(), "a private key is published: {jwk}");
    }
    let listed = srv.get_json("/api/v1/keys").await;
    assert_eq!(kids(published), kids(&listed["items"]));

    let discovery = srv.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/oauth2/jwks", s(&discovery["issuer"]))
    );
}

#[tokio::test]
async fn the_keys_api_is_for_global_administrators() {
    let srv = TestServer::dev().await;
    srv.create("/api/v1/tenants", json!({"name": "acme"})).await;
    let rotate = json!({"algorithm": "ES256"});

    for (method, path) in [
        (Method::GET, "/api/v1/keys"),
        (Method::POST, "/api/v1/keys/rotate"),
    ] {
        let r = srv
            .client
            .request(method, srv.url(path))
            .json(&rotate)
            .send()
            .await
            .unwrap();
        expect_problem(r, StatusCode::UNAUTHORIZED).await;
    }

    // A read token lists but does not rotate; a tenant's admin does neither.
    let (_, read) = srv.token(json!({"name": "auditor"})).await;
    let r = srv
        .req_as(&read, Method::GET, "/api/v1/keys")
        .send()
        .await
        .unwrap();
    expect_json(r, StatusCode::OK).await;
    let (_, acme) = srv
        .token(json!({"name": "acme-admin", "scope": "admin", "tenant": "acme"}))
        .await;
    let r = srv
        .req_as(&acme, Method::GET, "/api/v1/keys")
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::FORBIDDEN).await;
    for token in [&read, &acme] {
        let r = srv
            .req_as(token, Method::POST, "/api/v1/keys/rotate")
            .json(&rotate)
            .send()
            .await
            .unwrap();
        expect_problem(r, StatusCode::FORBIDDEN).await;
    }
    assert!(srv.audit_query("&action=key.rotate").await.is_empty());

    let r = srv
        .client
        .get(srv.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    let doc = expect_json(r, StatusCode::OK).await;
    assert!(doc["paths"]["/api/v1/keys"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/keys/rotate"]["post"].is_object());
}

#[tokio::test]
async fn rotation_replaces_the_active_key_and_keeps_the_old_one_published() {
    let srv = TestServer::dev().await;
    let old = active_kid(&srv, "ES256").await;
    let rs256 = active_kid(&srv, "RS256").await;

    let rotated = srv
        .req(Method::POST, "/api/v1/keys/rotate")
        .json(&json!({"algorithm": "ES256"}))
        .send()
        .await
        .unwrap();
    let rotated = expect_json(rotated, StatusCode::OK).await;
    let items = rotated["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{rotated}");
    assert_eq!(items[0]["algorithm"], "ES256");
    assert_eq!(items[0]["status"], "active");
    let new = s(&items[0]["kid"]);
    assert_ne!(new, old);
    assert_eq!(active_kid(&srv, "ES256").await, new);
    assert_eq!(active_kid(&srv, "RS256").await, rs256, "only ES256 rotates");

    // The old key is retired but published for another 24 hours.
    let listed = srv.get_json("/api/v1/keys").await;
    let retired = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == old.as_str())
        .unwrap();
    assert_eq!(retired["status"], "retired");
    let retired_at: jiff::Timestamp = s(&retired["retired_at"]).parse().unwrap();
    let until: jiff::Timestamp = s(&retired["published_until"]).parse().unwrap();
    assert_eq!(
        until.duration_since(retired_at),
        jiff::SignedDuration::from_hours(24)
    );
    let published = kids(&jwks(&srv).await["keys"]);
    assert!(published.contains(&old) && published.contains(&new));
    assert_eq!(published.len(), 4);

    let events = srv.audit_query("&action=key.rotate").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"], "root");
    assert_eq!(events[0]["target"], format!("key:{new}"));

    // Without an algorithm, every algorithm rotates.
    let all = srv
        .req(Method::POST, "/api/v1/keys/rotate")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let all = expect_json(all, StatusCode::OK).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 3, "{all}");
    let published = kids(&jwks(&srv).await["keys"]);
    assert_eq!(published.len(), 7);
    assert!(published.is_superset(&kids(&all["items"])));
    assert_eq!(srv.audit_query("&action=key.rotate").await.len(), 4);

    // Unknown algorithms are refused.
    let r = srv
        .req(Method::POST, "/api/v1/keys/rotate")
        .json(&json!({"algorithm": "HS256"}))
        .send()
        .await
        .unwrap();
    expect_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
}
