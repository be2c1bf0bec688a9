//! Token exchange (RFC 8693) end to end: a service exchanges another
//! service's access token, with its own token as the actor, for a narrower
//! one that names the delegation (`act`) and never outlives the original;
//! and everything else is refused with the RFC's error codes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, s};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Registers a confidential client; returns its secret.
async fn service(server: &TestServer, body: Value) -> String {
    s(&server.create("/api/v1/clients", body).await["client_secret"])
}

async fn token(
    server: &TestServer,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = server.client.post(server.url("/oauth2/token")).form(form);
    if let Some((id, secret)) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

async fn client_credentials(server: &TestServer, id: &str, secret: &str, scope: &str) -> String {
    let (status, body) = token(
        server,
        Some((id, secret)),
        &[("grant_type", "client_credentials"), ("scope", scope)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s(&body["access_token"])
}

async fn introspect(server: &TestServer, id: &str, secret: &str, token: &str) -> Value {
    let r = server
        .client
        .post(server.url("/oauth2/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

struct Services {
    a: String,
    b: String,
    /// A's token: orders.read and orders.write, 2 minutes.
    subject: String,
    /// B's own token, its actor token.
    actor: String,
}

async fn services(server: &TestServer) -> Services {
    let r = server
        .req(reqwest::Method::PUT, "/api/v1/resources")
        .json(&json!({"identifier": "https://orders.example.com", "name": "Orders", "scopes": ["orders.read", "orders.write"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let a = service(
        server,
        json!({
            "client_id": "service-a",
            "name": "Service A",
            "grant_types": ["client_credentials"],
            "scopes": ["orders.read", "orders.write"],
            "access_token_lifetime_secs": 120,
        }),
    )
    .await;
    let b = service(
        server,
        json!({
            "client_id": "service-b",
            "name": "Service B",
            "grant_types": ["client_credentials", EXCHANGE],
            "scopes": ["orders.read", "orders.admin"],
        }),
    )
    .await;
    let subject = client_credentials(server, "service-a", &a, "orders.read orders.write").await;
    let actor = client_credentials(server, "service-b", &b, "orders.read").await;
    Services {
        a,
        b,
        subject,
        actor,
    }
}

#[tokio::test]
async fn a_service_exchanges_another_services_token_for_a_narrower_delegated_one() {
    let server = TestServer::dev_oidc().await;
    let metadata = server.get_json("/.well-known/openid-configuration").await;
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(EXCHANGE))
    );
    let svc = services(&server).await;
    let (status, body) = token(
        &server,
        Some(("service-b", &svc.b)),
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", &svc.subject),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &svc.actor),
            ("actor_token_type", ACCESS_TOKEN),
            ("scope", "orders.read"),
            ("audience", "https://orders.example.com"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "orders.read");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let exchanged = s(&body["access_token"]);

    let original = introspect(&server, "service-a", &svc.a, &svc.subject).await;
    let new = introspect(&server, "service-b", &svc.b, &exchanged).await;
    assert_eq!(new["active"], true, "{new}");
    assert_eq!(new["client_id"], "service-b");
    assert_eq!(
        new["sub"], "service-a",
        "the subject stays the subject: {new}"
    );
    assert_eq!(new["scope"], "orders.read");
    assert_eq!(new["aud"], "https://orders.example.com");
    assert_eq!(
        new["act"],
        json!({"sub": "service-b", "client_id": "service-b"})
    );
    // B's lifetime is 600 s, A's token had 120 s: capped.
    assert!(
        new["exp"].as_i64().unwrap() <= original["exp"].as_i64().unwrap(),
        "{new} {original}"
    );
    assert!(body["expires_in"].as_i64().unwrap() <= 120, "{body}");

    let events = server.audit_query("&action=oauth.token_exchange").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["target"], "client:service-b");
    assert_eq!(events[0]["details"]["subject"], "client:service-a");
    assert_eq!(events[0]["details"]["actor"]["sub"], "service-b");
    assert_eq!(events[0]["details"]["scope"], "orders.read");

    // Without scope, the subject's scopes the client is registered for.
    let (status, body) = token(
        &server,
        Some(("service-b", &svc.b)),
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", &svc.subject),
            ("subject_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "orders.read");
    let plain = introspect(&server, "service-b", &svc.b, &s(&body["access_token"])).await;
    assert!(plain.get("act").is_none(), "{plain}");
}

#[tokio::test]
async fn exchanges_that_widen_forge_or_misuse_are_refused() {
    let server = TestServer::dev_oidc().await;
    let svc = services(&server).await;
    let b = Some(("service-b", svc.b.as_str()));
    let exchange = |extra: &'static [(&'static str, &'static str)]| {
        let mut form = vec![
            ("grant_type", EXCHANGE),
            ("subject_token", svc.subject.as_str()),
            ("subject_token_type", ACCESS_TOKEN),
        ];
        form.extend_from_slice(extra);
        form
    };
    let refused = |expected: &'static str| {
        move |(status, body): (StatusCode, Value)| {
            assert_eq!(body["error"], expected, "{body}");
            assert!(status.is_client_error(), "{status}");
        }
    };

    // Widening: a scope the subject token does not hold.
    refused("invalid_scope")(
        token(
            &server,
            b,
            &exchange(&[("scope", "orders.read orders.admin")]),
        )
        .await,
    );
    // A target that is not a registered resource server.
    refused("invalid_target")(
        token(
            &server,
            b,
            &exchange(&[("audience", "https://evil.example.com")]),
        )
        .await,
    );
    // Only access tokens in and out.
    refused("invalid_request")(
        token(
            &server,
            b,
            &exchange(&[(
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            )]),
        )
        .await,
    );
    refused("invalid_request")(
        token(
            &server,
            b,
            &[
                ("grant_type", EXCHANGE),
                ("subject_token", &svc.subject),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ],
        )
        .await,
    );
    // A garbage subject token, or none.
    for garbage in ["garbage", "idp_at_nothing", "a.b.c"] {
        refused("invalid_request")(
            token(
                &server,
                b,
                &[
                    ("grant_type", EXCHANGE),
                    ("subject_token", garbage),
                    ("subject_token_type", ACCESS_TOKEN),
                ],
            )
            .await,
        );
    }
    refused("invalid_request")(
        token(
            &server,
            b,
            &[
                ("grant_type", EXCHANGE),
                ("subject_token_type", ACCESS_TOKEN),
            ],
        )
        .await,
    );
    // An actor token without its type, or issued to another client.
    let mut form = exchange(&[]);
    form.push(("actor_token", &svc.actor));
    refused("invalid_request")(token(&server, b, &form).await);
    let mut form = exchange(&[("actor_token_type", ACCESS_TOKEN)]);
    form.push(("actor_token", &svc.subject));
    refused("invalid_request")(token(&server, b, &form).await);

    // Unauthenticated, or a client not registered for the grant.
    let (status, body) = token(&server, None, &exchange(&[])).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    let (status, body) = token(&server, Some(("service-b", "idp_cs_wrong")), &exchange(&[])).await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    refused("unauthorized_client")(
        token(&server, Some(("service-a", svc.a.as_str())), &exchange(&[])).await,
    );

    // A revoked subject token is no longer exchangeable.
    let r = server
        .client
        .post(server.url("/oauth2/revoke"))
        .basic_auth("service-a", Some(&svc.a))
        .form(&[("token", svc.subject.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    refused("invalid_request")(token(&server, b, &exchange(&[])).await);
    assert!(
        server
            .audit_query("&action=oauth.token_exchange")
            .await
            .is_empty()
    );
}
