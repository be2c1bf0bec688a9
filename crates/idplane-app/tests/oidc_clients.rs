//! The OAuth client registry: registration rules, secrets (shown once,
//! stored keyed-hashed, rotated), verification with audited failures, and
//! optimistic concurrency.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use idplane_app::oidc::clients::{
    AuthMethod, ClientType, CreateClient, GrantType, SECRET_PREFIX, SigningAlg, UpdateClient,
};
use idplane_app::{AppError, Field};
use idplane_store::Page;
use serde_json::json;
use support::Harness;

impl Harness {
    async fn actions(&self) -> Vec<(String, bool, serde_json::Value)> {
        let ctx = self.ctx().await;
        let filter = idplane_store::audit::AuditFilter {
            limit: 1000,
            ..Default::default()
        };
        self.app
            .audit_events(&ctx, &filter)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let v = serde_json::to_value(&r).unwrap();
                (
                    v["action"].as_str().unwrap_or_default().to_owned(),
                    v["outcome"] == "success",
                    v,
                )
            })
            .collect()
    }
}

fn web(client_id: &str) -> CreateClient {
    CreateClient {
        client_id: Some(client_id.into()),
        name: "Web app".into(),
        redirect_uris: vec!["https://app.example.com/callback".into()],
        ..CreateClient::default()
    }
}

fn invalid(err: AppError, needle: &str) {
    match err {
        AppError::Invalid(e) => assert!(
            e.to_string().contains(needle) || e.message.contains(needle),
            "{e:?} lacks {needle:?}"
        ),
        other => panic!("expected a validation error with {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn confidential_clients_get_a_secret_once_with_secure_defaults() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let registered = h.app.create_client(&ctx, web("portal")).await.unwrap();
    let c = &registered.client;
    assert_eq!(c.client_id, "portal");
    assert_eq!(c.client_type, ClientType::Confidential);
    assert_eq!(c.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(
        c.grant_types,
        [GrantType::AuthorizationCode, GrantType::RefreshToken]
    );
    assert_eq!(c.scopes, ["openid"]);
    assert_eq!(c.id_token_signed_response_alg, SigningAlg::Es256);
    assert!(!c.first_party);
    assert_eq!(c.version, 1);
    let secret = registered.secret.unwrap();
    assert!(secret.starts_with(SECRET_PREFIX));
    // 256 bits, base64url.
    assert_eq!(secret.len(), SECRET_PREFIX.len() + 43);

    let verified = h
        .app
        .verify_client_secret(&ctx, "portal", &secret)
        .await
        .unwrap();
    assert_eq!(verified.client_id, "portal");
    // Reading a client never shows a secret; the stored form is not it.
    let read = h.app.client(&ctx, "portal").await.unwrap();
    assert_eq!(read, registered.client);

    // A random client_id when none is chosen.
    let mut cmd = web("x");
    cmd.client_id = None;
    let random = h.app.create_client(&ctx, cmd).await.unwrap();
    assert_eq!(random.client.client_id.len(), 32);

    // Duplicates are a conflict.
    let err = h.app.create_client(&ctx, web("portal")).await.unwrap_err();
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");

    let audit = h.actions().await;
    let create = audit.iter().find(|(a, _, _)| a == "client.create").unwrap();
    let text = create.2.to_string();
    assert!(
        !text.contains(&secret),
        "the secret leaked into the audit log"
    );
    assert!(text.contains("client:portal"), "{text}");
}

#[tokio::test]
async fn wrong_secrets_and_unknown_clients_fail_alike_and_are_audited() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let secret = h
        .app
        .create_client(&ctx, web("portal"))
        .await
        .unwrap()
        .secret
        .unwrap();
    let wrong = format!("{secret}x");
    for (id, s) in [
        ("portal", wrong.as_str()),
        ("portal", ""),
        ("nobody", secret.as_str()),
    ] {
        let err = h.app.verify_client_secret(&ctx, id, s).await.unwrap_err();
        assert!(matches!(err, AppError::Unauthenticated), "{err:?}");
    }
    let failures: Vec<_> = h
        .actions()
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "client.auth")
        .collect();
    assert_eq!(failures.len(), 3);
    assert!(failures.iter().all(|(_, ok, _)| !ok));
    assert!(failures[0].2.to_string().contains("wrong secret"));
    assert!(failures[2].2.to_string().contains("unknown client"));
    assert!(!failures[0].2.to_string().contains(&secret));

    // Public clients have no secret to verify.
    let public = CreateClient {
        client_type: ClientType::Public,
        redirect_uris: vec!["com.example.app:/cb".into()],
        ..web("native")
    };
    let registered = h.app.create_client(&ctx, public).await.unwrap();
    assert!(registered.secret.is_none());
    assert_eq!(
        registered.client.token_endpoint_auth_method,
        AuthMethod::None
    );
    assert!(
        h.app
            .verify_client_secret(&ctx, "native", "")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn rotation_replaces_the_secret_at_once() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let old = h
        .app
        .create_client(&ctx, web("portal"))
        .await
        .unwrap()
        .secret
        .unwrap();
    // A stale version is refused.
    let err = h
        .app
        .rotate_client_secret(&ctx, "portal", Some(7))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::VersionMismatch { current: 1 }));
    let rotated = h
        .app
        .rotate_client_secret(&ctx, "portal", Some(1))
        .await
        .unwrap();
    let new = rotated.secret.unwrap();
    assert_ne!(new, old);
    assert_eq!(rotated.client.version, 2);
    assert!(
        h.app
            .verify_client_secret(&ctx, "portal", &old)
            .await
            .is_err()
    );
    assert!(
        h.app
            .verify_client_secret(&ctx, "portal", &new)
            .await
            .is_ok()
    );
    let audit = h.actions().await;
    let rotate = audit
        .iter()
        .find(|(a, _, _)| a == "client.secret.rotate")
        .unwrap();
    assert!(!rotate.2.to_string().contains(&new));
    assert!(!rotate.2.to_string().contains(&old));

    // Clients without a secret have nothing to rotate.
    let jwt = CreateClient {
        token_endpoint_auth_method: Some(AuthMethod::PrivateKeyJwt),
        jwks_uri: Some("https://app.example.com/jwks.json".into()),
        ..web("jwt")
    };
    assert!(
        h.app
            .create_client(&ctx, jwt)
            .await
            .unwrap()
            .secret
            .is_none()
    );
    let err = h
        .app
        .rotate_client_secret(&ctx, "jwt", None)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn registration_rules_are_enforced_with_clear_messages() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let cases: Vec<(CreateClient, &str)> = vec![
        (
            CreateClient {
                grant_types: Some(vec!["implicit".into()]),
                ..web("a")
            },
            "implicit grant is not supported",
        ),
        (
            CreateClient {
                grant_types: Some(vec!["authorization_code".into(), "password".into()]),
                ..web("a")
            },
            "password credentials grant is not supported",
        ),
        (
            CreateClient {
                client_type: ClientType::Public,
                grant_types: Some(vec!["client_credentials".into()]),
                redirect_uris: vec![],
                ..web("a")
            },
            "public client cannot use client_credentials",
        ),
        (
            CreateClient {
                redirect_uris: vec![],
                ..web("a")
            },
            "needs at least one redirect URI",
        ),
        (
            CreateClient {
                redirect_uris: vec!["http://localhost:3000/cb".into()],
                ..web("a")
            },
            "127.0.0.1",
        ),
        (
            CreateClient {
                redirect_uris: vec!["https://app.example.com/cb#x".into()],
                ..web("a")
            },
            "fragment",
        ),
        (
            CreateClient {
                redirect_uris: vec!["com.example.app:/cb".into()],
                ..web("a")
            },
            "public clients",
        ),
        (
            CreateClient {
                token_endpoint_auth_method: Some(AuthMethod::PrivateKeyJwt),
                ..web("a")
            },
            "jwks or jwks_uri",
        ),
        (
            CreateClient {
                token_endpoint_auth_method: Some(AuthMethod::PrivateKeyJwt),
                jwks: Some(json!({"keys": [{"kty": "EC", "d": "secret"}]})),
                ..web("a")
            },
            "private key",
        ),
        (
            CreateClient {
                token_endpoint_auth_method: Some(AuthMethod::None),
                ..web("a")
            },
            "confidential client authenticates",
        ),
        (
            CreateClient {
                client_type: ClientType::Public,
                token_endpoint_auth_method: Some(AuthMethod::ClientSecretPost),
                ..web("a")
            },
            "public client cannot authenticate",
        ),
        (
            CreateClient {
                access_token_lifetime_secs: Some(10 * 86400),
                ..web("a")
            },
            "between 60 and 86400",
        ),
        (
            CreateClient {
                scopes: Some(vec!["open id".into()]),
                ..web("a")
            },
            "is not a scope",
        ),
        (web("Not A Slug"), "lowercase"),
        (
            CreateClient {
                name: " ".into(),
                ..web("a")
            },
            "must not be empty",
        ),
    ];
    for (cmd, needle) in cases {
        invalid(h.app.create_client(&ctx, cmd).await.unwrap_err(), needle);
    }
    // Nothing was written, nothing audited.
    assert!(
        h.app
            .clients(
                &ctx,
                &Page {
                    after: None,
                    limit: 10
                }
            )
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        !h.actions()
            .await
            .iter()
            .any(|(a, _, _)| a.starts_with("client."))
    );

    // A service with client credentials needs no redirect URI.
    let service = CreateClient {
        grant_types: Some(vec!["client_credentials".into()]),
        redirect_uris: vec![],
        first_party: true,
        ..web("svc")
    };
    let c = h.app.create_client(&ctx, service).await.unwrap().client;
    assert_eq!(c.grant_types, [GrantType::ClientCredentials]);
}

#[tokio::test]
async fn updates_check_versions_and_keep_secrets_in_step_with_the_method() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let old = h
        .app
        .create_client(&ctx, web("portal"))
        .await
        .unwrap()
        .secret
        .unwrap();
    let err = h
        .app
        .update_client(
            &ctx,
            "portal",
            UpdateClient {
                first_party: Some(true),
                ..UpdateClient::default()
            },
            Some(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::VersionMismatch { current: 1 }));

    let updated = h
        .app
        .update_client(
            &ctx,
            "portal",
            UpdateClient {
                first_party: Some(true),
                scopes: Some(vec!["openid".into(), "email".into(), "openid".into()]),
                id_token_signed_response_alg: Some(SigningAlg::Rs256),
                ..UpdateClient::default()
            },
            Some(1),
        )
        .await
        .unwrap();
    assert!(updated.secret.is_none());
    assert!(updated.client.first_party);
    assert_eq!(updated.client.scopes, ["email", "openid"]);
    assert_eq!(updated.client.version, 2);
    assert!(
        h.app
            .verify_client_secret(&ctx, "portal", &old)
            .await
            .is_ok()
    );

    // Switching to private_key_jwt drops the secret...
    let jwt = h
        .app
        .update_client(
            &ctx,
            "portal",
            UpdateClient {
                token_endpoint_auth_method: Some(AuthMethod::PrivateKeyJwt),
                jwks_uri: Field::Set("https://app.example.com/jwks".into()),
                ..UpdateClient::default()
            },
            None,
        )
        .await
        .unwrap();
    assert!(jwt.secret.is_none());
    assert!(jwt.client.secret_rotated_at.is_none());
    assert!(
        h.app
            .verify_client_secret(&ctx, "portal", &old)
            .await
            .is_err()
    );
    // ...and back to a secret method issues a new one.
    let back = h
        .app
        .update_client(
            &ctx,
            "portal",
            UpdateClient {
                token_endpoint_auth_method: Some(AuthMethod::ClientSecretPost),
                jwks_uri: Field::Clear,
                ..UpdateClient::default()
            },
            None,
        )
        .await
        .unwrap();
    let fresh = back.secret.unwrap();
    assert!(
        h.app
            .verify_client_secret(&ctx, "portal", &fresh)
            .await
            .is_ok()
    );
    assert_eq!(h.app.client(&ctx, "portal").await.unwrap(), back.client);

    // Becoming public takes `none` and drops the secret.
    let public = h
        .app
        .update_client(
            &ctx,
            "portal",
            UpdateClient {
                client_type: Some(ClientType::Public),
                ..UpdateClient::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(public.client.token_endpoint_auth_method, AuthMethod::None);
    assert!(
        h.app
            .verify_client_secret(&ctx, "portal", &fresh)
            .await
            .is_err()
    );

    let err = h
        .app
        .delete_client(&ctx, "portal", Some(1))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::VersionMismatch { .. }));
    h.app
        .delete_client(&ctx, "portal", Some(public.client.version))
        .await
        .unwrap();
    assert!(matches!(
        h.app.client(&ctx, "portal").await.unwrap_err(),
        AppError::NotFound(_)
    ));
    let actions: Vec<String> = h
        .actions()
        .await
        .into_iter()
        .map(|(a, _, _)| a)
        .filter(|a| a.starts_with("client.") && a != "client.auth")
        .collect();
    assert_eq!(
        actions,
        [
            "client.create",
            "client.update",
            "client.update",
            "client.update",
            "client.update",
            "client.delete"
        ]
    );
}

#[tokio::test]
async fn redirect_uris_match_the_registration() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let native = CreateClient {
        client_type: ClientType::Public,
        redirect_uris: vec![
            "http://127.0.0.1/callback".into(),
            "com.example.app:/callback".into(),
        ],
        ..web("native")
    };
    let c = h.app.create_client(&ctx, native).await.unwrap().client;
    assert!(c.redirect_uri_allowed("http://127.0.0.1:49152/callback"));
    assert!(c.redirect_uri_allowed("com.example.app:/callback"));
    assert!(!c.redirect_uri_allowed("http://127.0.0.1:49152/callback/x"));
    assert!(!c.redirect_uri_allowed("com.example.app:/callback?x=1"));
}

#[tokio::test]
async fn back_channel_logout_and_dpop_binding_are_registered_and_changed() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let created = h
        .app
        .create_client(
            &ctx,
            CreateClient {
                backchannel_logout_uri: Some("https://app.example.com/backchannel".into()),
                dpop_bound_access_tokens: true,
                ..web("portal")
            },
        )
        .await
        .unwrap()
        .client;
    assert_eq!(
        created.backchannel_logout_uri.as_deref(),
        Some("https://app.example.com/backchannel")
    );
    assert!(created.dpop_bound_access_tokens);
    assert!(created.registration_token_hash.is_none());
    assert_eq!(h.app.client(&ctx, "portal").await.unwrap(), created);
    // The defaults: none, and not bound.
    let plain = h
        .app
        .create_client(&ctx, web("plain"))
        .await
        .unwrap()
        .client;
    assert!(plain.backchannel_logout_uri.is_none());
    assert!(!plain.dpop_bound_access_tokens);

    let updated = h
        .app
        .update_client(
            &ctx,
            "portal",
            UpdateClient {
                backchannel_logout_uri: Field::Set("http://127.0.0.1:9000/logout".into()),
                dpop_bound_access_tokens: Some(false),
                ..UpdateClient::default()
            },
            Some(1),
        )
        .await
        .unwrap()
        .client;
    assert_eq!(
        updated.backchannel_logout_uri.as_deref(),
        Some("http://127.0.0.1:9000/logout")
    );
    assert!(!updated.dpop_bound_access_tokens);
    // Absent keeps, null clears.
    let kept = h
        .app
        .update_client(&ctx, "portal", UpdateClient::default(), None)
        .await
        .unwrap()
        .client;
    assert_eq!(kept.backchannel_logout_uri, updated.backchannel_logout_uri);
    let cleared = h
        .app
        .update_client(
            &ctx,
            "portal",
            UpdateClient {
                backchannel_logout_uri: Field::Clear,
                ..UpdateClient::default()
            },
            None,
        )
        .await
        .unwrap()
        .client;
    assert!(cleared.backchannel_logout_uri.is_none());
    // The change is in the audit log.
    let audit = h.actions().await;
    let first_update = audit.iter().find(|(a, _, _)| a == "client.update").unwrap();
    let changed = &first_update.2["details"]["changed"];
    assert_eq!(
        changed["backchannel_logout_uri"], "http://127.0.0.1:9000/logout",
        "{changed}"
    );
    assert_eq!(changed["dpop_bound_access_tokens"], false, "{changed}");

    for (uri, needle) in [
        ("http://app.example.com/logout", "must use https"),
        ("https://app.example.com/logout#x", "fragment"),
        ("/logout", "absolute"),
        ("https://*.example.com/logout", "wildcard"),
    ] {
        let err = h
            .app
            .create_client(
                &ctx,
                CreateClient {
                    backchannel_logout_uri: Some(uri.into()),
                    ..web("bad")
                },
            )
            .await
            .unwrap_err();
        invalid(err, needle);
        let err = h
            .app
            .update_client(
                &ctx,
                "portal",
                UpdateClient {
                    backchannel_logout_uri: Field::Set(uri.into()),
                    ..UpdateClient::default()
                },
                None,
            )
            .await
            .unwrap_err();
        invalid(err, "backchannel_logout_uri");
    }
}

mod registration {
    use super::*;

    use idplane_app::oidc::ErrorCode;
    use idplane_app::oidc::registration::{ClientMetadata, REGISTRATION_TOKEN_PREFIX};
    use serde_json::Value;

    fn metadata(v: Value) -> ClientMetadata {
        ClientMetadata::from_value(v).unwrap()
    }

    fn rp() -> Value {
        json!({
            "client_name": "Relying party",
            "redirect_uris": ["https://rp.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid email",
            "post_logout_redirect_uris": ["https://rp.example/bye"],
            "backchannel_logout_uri": "https://rp.example/backchannel",
            "id_token_signed_response_alg": "RS256",
            "dpop_bound_access_tokens": true,
            "logo_uri": "https://rp.example/logo.png",
            "contacts": ["ops@rp.example"],
            "software_version": "1.2",
        })
    }

    #[tokio::test]
    async fn registered_clients_are_third_party_with_a_token_shown_once() {
        let h = Harness::new().await;
        let ctx = h.ctx().await;
        let reg = h.app.register_client(&ctx, &metadata(rp())).await.unwrap();
        let c = &reg.client;
        assert_eq!(c.client_id.len(), 32);
        assert_eq!(c.name, "Relying party");
        assert!(!c.first_party, "registered clients always ask for consent");
        assert_eq!(c.client_type, ClientType::Confidential);
        assert_eq!(c.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(c.scopes, ["email", "openid"]);
        assert_eq!(c.id_token_signed_response_alg, SigningAlg::Rs256);
        assert_eq!(
            c.backchannel_logout_uri.as_deref(),
            Some("https://rp.example/backchannel")
        );
        assert!(c.dpop_bound_access_tokens);
        let secret = reg.client_secret.clone().unwrap();
        let token = reg.registration_access_token.clone();
        assert!(token.starts_with(REGISTRATION_TOKEN_PREFIX));
        assert_eq!(token.len(), REGISTRATION_TOKEN_PREFIX.len() + 43);
        // Only a keyed hash is stored.
        let stored = h.app.client(&ctx, &c.client_id).await.unwrap();
        let hash = stored.registration_token_hash.clone().unwrap();
        assert!(!hash.contains(&token) && !token.contains(&hash));
        // The secret works at the token endpoint's check.
        h.app
            .verify_client_secret(&ctx, &c.client_id, &secret)
            .await
            .unwrap();

        // The client information response (RFC 7591 §3.2.1).
        let body = reg.to_json("https://idp.example/oauth2/register/x");
        assert_eq!(body["client_id"], c.client_id.as_str());
        assert_eq!(body["client_secret"], secret.as_str());
        assert_eq!(body["client_secret_expires_at"], 0);
        assert_eq!(body["client_id_issued_at"], c.created_at.as_second());
        assert_eq!(body["registration_access_token"], token.as_str());
        assert_eq!(
            body["registration_client_uri"],
            "https://idp.example/oauth2/register/x"
        );
        assert_eq!(body["response_types"], json!(["code"]));
        assert_eq!(
            body["grant_types"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(body["scope"], "email openid");
        assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
        assert_eq!(body["dpop_bound_access_tokens"], true);
        assert!(
            body.get("logo_uri").is_none(),
            "informational metadata is not kept"
        );

        // Reading shows no secret, and echoes the token presented.
        let read = h
            .app
            .read_registration(&ctx, &c.client_id, &token)
            .await
            .unwrap();
        assert!(read.client_secret.is_none());
        assert_eq!(read.client, stored);

        let audit = h.actions().await;
        let register = audit
            .iter()
            .find(|(a, _, _)| a == "client.register")
            .unwrap();
        assert!(register.1);
        assert_eq!(register.2["details"]["registration_token_issued"], true);
        let text = Value::Array(audit.iter().map(|(_, _, v)| v.clone()).collect()).to_string();
        assert!(!text.contains(&token) && !text.contains(&secret) && !text.contains(&hash));

        // Public clients: `none`, no secret.
        let public = h
            .app
            .register_client(
                &ctx,
                &metadata(json!({
                    "redirect_uris": ["com.example.app:/cb", "http://127.0.0.1/cb"],
                    "token_endpoint_auth_method": "none",
                })),
            )
            .await
            .unwrap();
        assert!(public.client_secret.is_none());
        assert_eq!(public.client.client_type, ClientType::Public);
        assert_eq!(public.client.name, public.client.client_id);
        assert!(
            public
                .to_json("u")
                .get("client_secret_expires_at")
                .is_none()
        );
    }

    #[tokio::test]
    async fn registration_refuses_bad_metadata_with_rfc_7591_codes() {
        let h = Harness::new().await;
        let ctx = h.ctx().await;
        let cases: Vec<(Value, ErrorCode, &str)> = vec![
            (
                json!({"redirect_uris": ["http://rp.example/cb"]}),
                ErrorCode::InvalidRedirectUri,
                "https",
            ),
            (
                json!({"redirect_uris": ["https://rp.example/cb#x"]}),
                ErrorCode::InvalidRedirectUri,
                "fragment",
            ),
            (
                json!({"redirect_uris": ["https://*.rp.example/cb"]}),
                ErrorCode::InvalidRedirectUri,
                "wildcard",
            ),
            (
                json!({"redirect_uris": []}),
                ErrorCode::InvalidRedirectUri,
                "at least one redirect URI",
            ),
            (
                json!({"redirect_uris": ["https://rp.example/cb"], "response_types": ["token"]}),
                ErrorCode::InvalidClientMetadata,
                "only `code`",
            ),
            (
                json!({"redirect_uris": ["https://rp.example/cb"], "grant_types": ["implicit"]}),
                ErrorCode::InvalidClientMetadata,
                "implicit",
            ),
            (
                json!({"redirect_uris": ["https://rp.example/cb"],
                       "token_endpoint_auth_method": "private_key_jwt"}),
                ErrorCode::InvalidClientMetadata,
                "jwks",
            ),
            (
                json!({"redirect_uris": ["https://rp.example/cb"],
                       "post_logout_redirect_uris": ["http://rp.example/bye"]}),
                ErrorCode::InvalidClientMetadata,
                "post_logout_redirect_uris",
            ),
            (
                json!({"redirect_uris": ["https://rp.example/cb"],
                       "backchannel_logout_uri": "http://rp.example/logout"}),
                ErrorCode::InvalidClientMetadata,
                "backchannel_logout_uri",
            ),
            (
                json!({"redirect_uris": ["https://rp.example/cb"], "scope": "openid \"x\""}),
                ErrorCode::InvalidClientMetadata,
                "scope:",
            ),
            (
                json!({"redirect_uris": ["https://rp.example/cb"], "client_name": "x".repeat(201)}),
                ErrorCode::InvalidClientMetadata,
                "client_name",
            ),
            (
                json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
                ErrorCode::InvalidClientMetadata,
                "client_credentials",
            ),
        ];
        for (body, code, needle) in cases {
            // Type and grant errors are found reading, the rest registering.
            let err = match ClientMetadata::from_value(body.clone()) {
                Ok(m) => h.app.register_client(&ctx, &m).await.unwrap_err(),
                Err(e) => e,
            };
            assert_eq!(err.code, code, "{body}: {err}");
            assert!(err.description.contains(needle), "{body}: {err}");
        }
        // Nothing was written or audited.
        assert!(
            !h.actions()
                .await
                .iter()
                .any(|(a, _, _)| a.starts_with("client."))
        );
        // A client-credentials service needs no redirect URI nor response type.
        let svc = h
            .app
            .register_client(
                &ctx,
                &metadata(json!({"grant_types": ["client_credentials"]})),
            )
            .await
            .unwrap();
        assert_eq!(svc.to_json("u")["response_types"], json!([]));
    }

    #[tokio::test]
    async fn registration_tokens_manage_only_their_client_and_rotate_on_update() {
        let h = Harness::new().await;
        let ctx = h.ctx().await;
        let a = h.app.register_client(&ctx, &metadata(rp())).await.unwrap();
        let b = h.app.register_client(&ctx, &metadata(rp())).await.unwrap();
        let (a_id, a_token) = (
            a.client.client_id.clone(),
            a.registration_access_token.clone(),
        );
        let b_id = b.client.client_id.clone();
        h.app.create_client(&ctx, web("admin-made")).await.unwrap();

        // A's token reads A only; every refusal is the same.
        h.app
            .read_registration(&ctx, &a_id, &a_token)
            .await
            .unwrap();
        let refusals = [
            h.app
                .read_registration(&ctx, &b_id, &a_token)
                .await
                .unwrap_err(),
            h.app
                .read_registration(&ctx, "nobody", &a_token)
                .await
                .unwrap_err(),
            h.app
                .read_registration(&ctx, "admin-made", &a_token)
                .await
                .unwrap_err(),
            h.app.read_registration(&ctx, &a_id, "").await.unwrap_err(),
            h.app
                .read_registration(&ctx, &a_id, &format!("{a_token}x"))
                .await
                .unwrap_err(),
            h.app
                .delete_registration(&ctx, &b_id, &a_token)
                .await
                .unwrap_err(),
            h.app
                .update_registration(&ctx, &b_id, &a_token, &metadata(json!({"client_id": b_id})))
                .await
                .unwrap_err(),
        ];
        for e in &refusals {
            assert_eq!(e, &refusals[0]);
        }
        assert_eq!(refusals[0].code, ErrorCode::InvalidToken);
        let failures: Vec<_> = h
            .actions()
            .await
            .into_iter()
            .filter(|(a, ok, _)| a == "client.registration" && !ok)
            .collect();
        assert_eq!(failures.len(), refusals.len());
        assert!(failures[1].2.to_string().contains("unknown client"));
        // B is untouched.
        h.app.client(&ctx, &b_id).await.unwrap();

        // An administrator's settings survive the client's updates.
        h.app
            .update_client(
                &ctx,
                &a_id,
                UpdateClient {
                    first_party: Some(true),
                    access_token_lifetime_secs: Some(300),
                    ..UpdateClient::default()
                },
                None,
            )
            .await
            .unwrap();

        // PUT needs the client's own client_id, and the secret if sent.
        let mut body = rp();
        for (patch, needle) in [
            (json!({}), "client_id"),
            (json!({"client_id": b_id}), "client_id"),
            (
                json!({"client_id": a_id, "client_secret": "idp_cs_mine"}),
                "client_secret",
            ),
            // Scopes and grants narrow, never widen.
            (
                json!({"client_id": a_id, "scope": "openid email admin"}),
                "only an administrator",
            ),
            (
                json!({"client_id": a_id,
                       "grant_types": ["authorization_code", "client_credentials"]}),
                "only an administrator",
            ),
        ] {
            let mut m = body.clone();
            m.as_object_mut()
                .unwrap()
                .extend(patch.as_object().unwrap().clone());
            let err = h
                .app
                .update_registration(&ctx, &a_id, &a_token, &metadata(m))
                .await
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidClientMetadata, "{err}");
            assert!(err.description.contains(needle), "{err}");
        }
        // A full replacement: omitted members take their defaults.
        body.as_object_mut().unwrap().extend(
            json!({
                "client_id": a_id,
                "client_secret": a.client_secret.clone().unwrap(),
                "client_name": "Renamed",
                "redirect_uris": ["https://rp.example/new"],
                "registration_access_token": "ignored",
                "client_id_issued_at": 1,
            })
            .as_object()
            .unwrap()
            .clone(),
        );
        body.as_object_mut()
            .unwrap()
            .remove("backchannel_logout_uri");
        body.as_object_mut()
            .unwrap()
            .remove("dpop_bound_access_tokens");
        let updated = h
            .app
            .update_registration(&ctx, &a_id, &a_token, &metadata(body))
            .await
            .unwrap();
        let c = &updated.client;
        assert_eq!(c.name, "Renamed");
        assert_eq!(c.redirect_uris, ["https://rp.example/new"]);
        assert!(c.backchannel_logout_uri.is_none());
        assert!(!c.dpop_bound_access_tokens);
        assert!(c.first_party);
        assert_eq!(c.access_token_lifetime_secs, 300);
        assert_eq!(c.created_at, a.client.created_at);
        assert!(
            updated.client_secret.is_none(),
            "the secret is kept, not reissued"
        );
        h.app
            .verify_client_secret(&ctx, &a_id, a.client_secret.as_deref().unwrap())
            .await
            .unwrap();
        let new_token = updated.registration_access_token.clone();
        assert_ne!(new_token, a_token);
        assert_eq!(h.app.client(&ctx, &a_id).await.unwrap(), *c);
        // The old token stops working at once; the new one works.
        let err = h
            .app
            .read_registration(&ctx, &a_id, &a_token)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidToken);
        h.app
            .read_registration(&ctx, &a_id, &new_token)
            .await
            .unwrap();
        let update = h
            .actions()
            .await
            .into_iter()
            .rfind(|(a, _, _)| a == "client.update")
            .unwrap();
        assert_eq!(update.2["details"]["via"], "registration");
        assert_eq!(update.2["actor"], format!("client:{a_id}"), "{}", update.2);

        // Switching to `none` makes it public and drops the secret.
        let public = h
            .app
            .update_registration(
                &ctx,
                &a_id,
                &new_token,
                &metadata(json!({
                    "client_id": a_id,
                    "redirect_uris": ["http://127.0.0.1/cb"],
                    "token_endpoint_auth_method": "none",
                    "scope": "openid",
                })),
            )
            .await
            .unwrap();
        assert_eq!(public.client.client_type, ClientType::Public);
        assert_eq!(public.client.scopes, ["openid"], "narrowed");
        assert_eq!(
            public.client.grant_types,
            [GrantType::AuthorizationCode, GrantType::RefreshToken],
            "absent grant types are kept"
        );
        assert!(public.client.secret_rotated_at.is_none());
        let last_token = public.registration_access_token;

        // Delete: gone, and so is the token.
        h.app
            .delete_registration(&ctx, &a_id, &last_token)
            .await
            .unwrap();
        assert!(matches!(
            h.app.client(&ctx, &a_id).await.unwrap_err(),
            AppError::NotFound(_)
        ));
        let err = h
            .app
            .read_registration(&ctx, &a_id, &last_token)
            .await
            .unwrap_err();
        assert_eq!(err, refusals[0]);
        assert!(
            h.actions()
                .await
                .iter()
                .any(|(a, ok, v)| a == "client.delete"
                    && *ok
                    && v["details"]["via"] == "registration")
        );
    }
}
