//! DPoP (RFC 9449) at the token endpoint: the server nonce dance, tokens
//! bound to the proof's key, introspection reporting the binding, and
//! proofs for another URL or method, or replayed, refused.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, s};

struct Prover {
    key: EncodingKey,
    jwk: jsonwebtoken::jwk::Jwk,
}

impl Prover {
    fn new() -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = serde_json::from_value(json!({
            "kty": "EC", "crv": "P-256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]),
        }))
        .unwrap();
        Self {
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }

    fn proof(&self, method: &str, url: &str, nonce: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        // The server under test runs on the wall clock.
        let now = idplane_core::Clock::now(&idplane_core::SystemClock).as_second();
        let mut claims = json!({
            "htm": method, "htu": url, "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

async fn token(
    server: &TestServer,
    secret: &str,
    proof: &str,
) -> (StatusCode, Option<String>, Value) {
    let r = server
        .client
        .post(server.url("/oauth2/token"))
        .basic_auth("svc", Some(secret))
        .header("DPoP", proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let nonce = r
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, nonce, r.json().await.unwrap())
}

#[tokio::test]
async fn dpop_binds_tokens_to_the_proof_key() {
    let server = TestServer::dev_oidc().await;
    let created = server
        .create(
            "/api/v1/clients",
            json!({"client_id": "svc", "name": "Service", "grant_types": ["client_credentials"], "scopes": []}),
        )
        .await;
    let secret = s(&created["client_secret"]);
    let url = server.url("/oauth2/token");
    let prover = Prover::new();

    // No nonce yet: the server supplies one.
    let (status, nonce, body) = token(&server, &secret, &prover.proof("POST", &url, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "use_dpop_nonce");
    let nonce = nonce.expect("a DPoP-Nonce header");

    let proof = prover.proof("POST", &url, Some(&nonce));
    let (status, _, body) = token(&server, &secret, &proof).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let access = s(&body["access_token"]);

    // The same proof again is a replay.
    let (status, _, body) = token(&server, &secret, &proof).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_dpop_proof");
    // A proof for another URL or method.
    for (method, target) in [
        ("POST", server.url("/oauth2/introspect")),
        ("GET", url.clone()),
    ] {
        let (_, _, body) = token(
            &server,
            &secret,
            &prover.proof(method, &target, Some(&nonce)),
        )
        .await;
        assert_eq!(body["error"], "invalid_dpop_proof", "{method} {target}");
    }

    // Introspection reports the binding.
    let r = server
        .client
        .post(server.url("/oauth2/introspect"))
        .basic_auth("svc", Some(&secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "DPoP");
    let thumbprint = {
        use sha2::{Digest, Sha256};
        let jwk = serde_json::to_value(&prover.jwk).unwrap();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
            jwk["x"], jwk["y"]
        );
        B64.encode(Sha256::digest(canonical.as_bytes()))
    };
    assert_eq!(info["cnf"]["jkt"], thumbprint);
}
