//! Proofs of possession: `private_key_jwt` client assertions (RFC 7523,
//! OIDC Core §9) and DPoP proofs (RFC 9449), built as real JWTs signed with
//! freshly generated ES256, RS256 and EdDSA keys. Time moves with the
//! injected clock, never by sleeping.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use idplane_app::oidc::assertion::JWT_BEARER_ASSERTION;
use idplane_app::oidc::client_auth::ClientCredentials;
use idplane_app::oidc::clients::{AuthMethod, Client, CreateClient};
use idplane_app::oidc::dpop::{DPOP_TYP, dpop_ath};
use idplane_app::oidc::keys::jwk_thumbprint;
use idplane_app::oidc::{ErrorCode, OAuthError};
use jiff::SignedDuration;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::Harness;

const ISSUER: &str = "http://localhost:8080";
const TOKEN_ENDPOINT: &str = "http://localhost:8080/oauth2/token";
const USERINFO: &str = "http://localhost:8080/oauth2/userinfo";

impl Harness {
    /// The default harness, checked to issue as [`ISSUER`], whose endpoints
    /// the assertions and proofs name.
    async fn at_issuer() -> Self {
        let h = Self::new().await;
        assert_eq!(h.app.settings().issuer, ISSUER);
        h
    }

    fn now(&self) -> i64 {
        self.app.clock().now().as_second()
    }

    /// A confidential `private_key_jwt` client with `keys` as its jwks.
    async fn client(&self, client_id: &str, keys: &[&TestKey]) -> Client {
        let jwks = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
        self.app
            .create_client(
                &self.ctx().await,
                CreateClient {
                    client_id: Some(client_id.into()),
                    name: "Service".into(),
                    grant_types: Some(vec!["client_credentials".into()]),
                    token_endpoint_auth_method: Some(AuthMethod::PrivateKeyJwt),
                    jwks: Some(jwks),
                    ..CreateClient::default()
                },
            )
            .await
            .unwrap()
            .client
    }

    /// Claims of a valid assertion of `client_id`: two minutes to live.
    fn assertion_claims(&self, client_id: &str) -> Value {
        json!({
            "iss": client_id,
            "sub": client_id,
            "aud": TOKEN_ENDPOINT,
            "iat": self.now(),
            "exp": self.now() + 120,
            "jti": new_jti(),
        })
    }

    async fn verify(&self, client: &Client, assertion: &str) -> Result<(), OAuthError> {
        self.app
            .verify_client_assertion(client, assertion, TOKEN_ENDPOINT)
            .await
    }

    async fn refused(&self, client: &Client, assertion: &str, needle: &str) {
        let err = self.verify(client, assertion).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidClient, "{err}");
        assert!(
            err.description.contains(needle),
            "`{}` lacks `{needle}`",
            err.description
        );
    }

    /// Claims of a valid DPoP proof for `method` `url` with a server nonce.
    fn proof_claims(&self, method: &str, url: &str) -> Value {
        json!({
            "jti": new_jti(),
            "htm": method,
            "htu": url,
            "iat": self.now(),
            "nonce": self.app.dpop_nonce(),
        })
    }

    async fn dpop(
        &self,
        proof: &str,
        method: &str,
        url: &str,
        token: Option<&str>,
    ) -> Result<idplane_app::oidc::dpop::DpopProof, OAuthError> {
        self.app.verify_dpop_proof(proof, method, url, token).await
    }

    async fn dpop_refused(
        &self,
        proof: &str,
        method: &str,
        url: &str,
        token: Option<&str>,
        code: ErrorCode,
        needle: &str,
    ) {
        let err = self.dpop(proof, method, url, token).await.unwrap_err();
        assert_eq!(err.code, code, "{err}");
        assert!(
            err.description.contains(needle),
            "`{}` lacks `{needle}`",
            err.description
        );
    }
}

fn new_jti() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}

/// A generated key pair, ready to sign with jsonwebtoken.
struct TestKey {
    alg: Algorithm,
    alg_name: &'static str,
    kid: String,
    key: EncodingKey,
    /// The public JWK, without `kid`.
    public: Value,
}

impl TestKey {
    fn new(alg: Algorithm, kid: &str) -> Self {
        let rng = SystemRandom::new();
        let (key, alg_name) = match alg {
            Algorithm::ES256 => {
                let pkcs8 =
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
                (EncodingKey::from_ec_der(pkcs8.as_ref()), "ES256")
            }
            Algorithm::EdDSA => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8v1(&rng).unwrap();
                (EncodingKey::from_ed_der(pkcs8.as_ref()), "EdDSA")
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                let der = pair.as_der().unwrap();
                let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
                for line in STANDARD.encode(der.as_ref()).as_bytes().chunks(64) {
                    pem.push_str(std::str::from_utf8(line).unwrap());
                    pem.push('\n');
                }
                pem.push_str("-----END PRIVATE KEY-----\n");
                (EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(), "RS256")
            }
            other => panic!("no test key for {other:?}"),
        };
        let mut public = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
        let map = public.as_object_mut().unwrap();
        map.remove("kid");
        assert!(map.get("d").is_none(), "a public JWK");
        Self {
            alg,
            alg_name,
            kid: kid.to_owned(),
            key,
            public,
        }
    }

    /// The public JWK with its `kid`, as registered.
    fn jwk(&self) -> Value {
        let mut jwk = self.public.clone();
        jwk["kid"] = self.kid.clone().into();
        jwk
    }

    /// A compact JWS of `claims` under `header` (its `alg` is added).
    fn sign_with(&self, mut header: Value, claims: &Value) -> String {
        header["alg"] = self.alg_name.into();
        sign_raw(&header, claims, &self.key, self.alg)
    }

    /// A client assertion: `kid` in the header.
    fn assertion(&self, claims: &Value) -> String {
        self.sign_with(json!({"typ": "JWT", "kid": self.kid}), claims)
    }

    /// A DPoP proof: the public JWK in the header.
    fn proof(&self, claims: &Value) -> String {
        self.sign_with(json!({"typ": DPOP_TYP, "jwk": self.public}), claims)
    }
}

/// Signs `header.claims` with jsonwebtoken's JWS signer (the header is
/// written as given, so tests can send headers jsonwebtoken would not).
fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", b64(header.to_string()), b64(claims.to_string()))
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

// ---------------------------------------------------------------------------
// private_key_jwt

#[tokio::test]
async fn valid_assertions_are_accepted_once() {
    let h = Harness::at_issuer().await;
    let es = TestKey::new(Algorithm::ES256, "es");
    let rs = TestKey::new(Algorithm::RS256, "rs");
    let ed = TestKey::new(Algorithm::EdDSA, "ed");
    let client = h.client("svc", &[&es, &rs, &ed]).await;
    for key in [&es, &rs, &ed] {
        let assertion = key.assertion(&h.assertion_claims("svc"));
        h.verify(&client, &assertion).await.unwrap();
        h.refused(&client, &assertion, "already used").await;
    }
    // The same jti in a new assertion is a replay too.
    let claims = h.assertion_claims("svc");
    h.verify(&client, &es.assertion(&claims)).await.unwrap();
    h.refused(&client, &rs.assertion(&claims), "already used")
        .await;
    // Without `kid`, the only key that fits the algorithm is used.
    let no_kid = ed.sign_with(json!({"typ": "JWT"}), &h.assertion_claims("svc"));
    h.verify(&client, &no_kid).await.unwrap();
    // `aud` may name the issuer, or list the endpoint among others.
    let claims = with(h.assertion_claims("svc"), "aud", ISSUER.into());
    h.verify(&client, &es.assertion(&claims)).await.unwrap();
    let claims = with(
        h.assertion_claims("svc"),
        "aud",
        json!(["https://other.example", TOKEN_ENDPOINT]),
    );
    h.verify(&client, &es.assertion(&claims)).await.unwrap();
    // `iat` and `nbf` are optional; a little clock skew is tolerated.
    let claims = without(without(h.assertion_claims("svc"), "iat"), "nbf");
    h.verify(&client, &es.assertion(&claims)).await.unwrap();
    let claims = with(h.assertion_claims("svc"), "iat", (h.now() + 30).into());
    let claims = with(claims, "nbf", (h.now() + 30).into());
    h.verify(&client, &es.assertion(&claims)).await.unwrap();
    // `exp` exactly ten minutes ahead is still short-lived enough.
    let claims = with(h.assertion_claims("svc"), "exp", (h.now() + 600).into());
    h.verify(&client, &es.assertion(&claims)).await.unwrap();
}

#[tokio::test]
async fn jtis_are_per_client() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::ES256, "k");
    let a = h.client("svc-a", &[&key]).await;
    let b = h.client("svc-b", &[&key]).await;
    let jti = new_jti();
    let for_a = with(h.assertion_claims("svc-a"), "jti", jti.clone().into());
    let for_b = with(h.assertion_claims("svc-b"), "jti", jti.into());
    h.verify(&a, &key.assertion(&for_a)).await.unwrap();
    h.verify(&b, &key.assertion(&for_b)).await.unwrap();
    // An assertion for one client does not authenticate another.
    h.refused(&b, &key.assertion(&h.assertion_claims("svc-a")), "`iss`")
        .await;
}

#[tokio::test]
async fn assertions_with_wrong_claims_are_refused() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::ES256, "k");
    let client = h.client("svc", &[&key]).await;
    let claims = || h.assertion_claims("svc");
    let cases: Vec<(Value, &str)> = vec![
        (
            with(claims(), "aud", "https://other.example".into()),
            "`aud`",
        ),
        (
            with(claims(), "aud", json!(["https://other.example"])),
            "`aud`",
        ),
        (with(claims(), "aud", json!([])), "`aud`"),
        (
            with(
                claims(),
                "aud",
                "http://localhost:8080/oauth2/introspect".into(),
            ),
            "`aud`",
        ),
        (without(claims(), "aud"), "`aud`"),
        (with(claims(), "iss", "other".into()), "`iss`"),
        (with(claims(), "sub", "other".into()), "`sub`"),
        (
            with(with(claims(), "iss", "other".into()), "sub", "other".into()),
            "`iss`",
        ),
        (without(claims(), "iss"), "no `iss`"),
        (without(claims(), "sub"), "no `sub`"),
        (with(claims(), "exp", (h.now() - 1).into()), "expired"),
        (with(claims(), "exp", h.now().into()), "expired"),
        (without(claims(), "exp"), "no `exp`"),
        (with(claims(), "exp", "tomorrow".into()), "NumericDate"),
        (
            with(claims(), "iat", (h.now() + 61).into()),
            "`iat` is in the future",
        ),
        (
            with(claims(), "nbf", (h.now() + 300).into()),
            "`nbf` is in the future",
        ),
        (with(claims(), "exp", (h.now() + 601).into()), "10 minutes"),
        (
            with(claims(), "exp", (h.now() + 86_400).into()),
            "10 minutes",
        ),
        (without(claims(), "jti"), "no `jti`"),
        (with(claims(), "jti", "".into()), "`jti`"),
        (with(claims(), "jti", 42.into()), "`jti`"),
    ];
    for (claims, needle) in cases {
        h.refused(&client, &key.assertion(&claims), needle).await;
    }
}

#[tokio::test]
async fn assertions_expire_on_the_injected_clock() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::RS256, "k");
    let client = h.client("svc", &[&key]).await;
    let early = key.assertion(&h.assertion_claims("svc"));
    let late = key.assertion(&h.assertion_claims("svc"));
    h.advance(SignedDuration::from_secs(60));
    h.verify(&client, &early).await.unwrap();
    h.advance(SignedDuration::from_secs(60));
    h.refused(&client, &late, "expired").await;
    // Made "in the future" (iat two minutes ahead) it becomes valid once
    // the clock catches up.
    let ahead = with(h.assertion_claims("svc"), "iat", (h.now() + 120).into());
    let ahead = with(ahead, "exp", (h.now() + 300).into());
    let ahead = key.assertion(&ahead);
    h.refused(&client, &ahead, "not valid yet").await;
    h.advance(SignedDuration::from_secs(60));
    h.verify(&client, &ahead).await.unwrap();
}

#[tokio::test]
async fn unsigned_symmetric_and_forged_assertions_are_refused() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::RS256, "k");
    let ec = TestKey::new(Algorithm::ES256, "e");
    let client = h.client("svc", &[&key, &ec]).await;
    let claims = h.assertion_claims("svc");

    // alg: none, with and without a signature part.
    let header = json!({"alg": "none", "typ": "JWT", "kid": "k"});
    h.refused(&client, &unsigned(&header, &claims), "`alg: none`")
        .await;
    let none = format!("{}sig", unsigned(&header, &claims));
    h.refused(&client, &none, "`alg: none`").await;

    // Algorithm confusion: HS256 keyed with the public key, in every form
    // an attacker might guess (JWK JSON, raw modulus, PEM-ish text).
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "k"});
    let modulus = B64.decode(key.public["n"].as_str().unwrap()).unwrap();
    for secret in [
        key.jwk().to_string().into_bytes(),
        modulus,
        key.public["n"].as_str().unwrap().as_bytes().to_vec(),
    ] {
        let forged = sign_raw(
            &header,
            &with(claims.clone(), "jti", new_jti().into()),
            &EncodingKey::from_secret(&secret),
            Algorithm::HS256,
        );
        h.refused(&client, &forged, "symmetric").await;
    }
    for alg in ["HS384", "HS512"] {
        let header = json!({"alg": alg, "kid": "k"});
        h.refused(
            &client,
            &format!("{}c2ln", unsigned(&header, &claims)),
            "symmetric",
        )
        .await;
    }

    // Signed by another key under the client's kid.
    let impostor = TestKey::new(Algorithm::RS256, "k");
    h.refused(&client, &impostor.assertion(&claims), "signature")
        .await;
    // A valid signature over other claims.
    let genuine = key.assertion(&claims);
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(with(claims.clone(), "sub", "admin".into()).to_string()),
        parts[2]
    );
    h.refused(&client, &tampered, "signature").await;
    // A kid naming a key of another type than the alg.
    let mixed = ec.sign_with(json!({"kid": "k"}), &claims);
    h.refused(&client, &mixed, "cannot verify ES256 signatures")
        .await;
    // None of the refusals spent the jti: the genuine assertion still works.
    h.verify(&client, &genuine).await.unwrap();

    h.refused(&client, "not-a-jwt", "three").await;
    h.refused(&client, "", "three").await;
    let crit = key.sign_with(
        json!({"kid": "k", "crit": ["exp"], "exp": 1}),
        &h.assertion_claims("svc"),
    );
    h.refused(&client, &crit, "crit").await;
}

#[tokio::test]
async fn the_signing_key_must_be_found() {
    let h = Harness::at_issuer().await;
    let es = TestKey::new(Algorithm::ES256, "one");
    let es2 = TestKey::new(Algorithm::ES256, "two");
    let client = h.client("svc", &[&es, &es2]).await;
    let claims = || h.assertion_claims("svc");
    let unknown = es.sign_with(json!({"kid": "three"}), &claims());
    h.refused(&client, &unknown, "no key of the client has kid `three`")
        .await;
    // Without a kid, two ES256 keys are ambiguous; with it, both work.
    let no_kid = es.sign_with(json!({}), &claims());
    h.refused(&client, &no_kid, "several ES256").await;
    h.verify(&client, &es2.assertion(&claims())).await.unwrap();
    let ed = TestKey::new(Algorithm::EdDSA, "ed");
    let no_kid = ed.sign_with(json!({}), &claims());
    h.refused(&client, &no_kid, "no EdDSA signing key").await;

    // A client without keys (not registered for private_key_jwt).
    let mut keyless = client.clone();
    keyless.jwks = None;
    keyless.jwks_uri = None;
    h.refused(&keyless, &es.assertion(&claims()), "no registered keys")
        .await;
    // A client that authenticates otherwise.
    let mut secret_client = client.clone();
    secret_client.token_endpoint_auth_method = AuthMethod::ClientSecretBasic;
    h.refused(
        &secret_client,
        &es.assertion(&claims()),
        "client_secret_basic",
    )
    .await;
    // A jwks_uri is fetched over https only (nothing is fetched here).
    let mut remote = keyless.clone();
    remote.jwks_uri = Some("http://127.0.0.1:9/jwks.json".into());
    h.refused(&remote, &es.assertion(&claims()), "https").await;
}

#[tokio::test]
async fn client_authentication_checks_assertions() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::EdDSA, "k");
    h.client("svc", &[&key]).await;
    let ctx = h.ctx().await;
    let assertion = key.assertion(&h.assertion_claims("svc"));
    let creds = |assertion_type: &str, assertion: &str| ClientCredentials::Assertion {
        client_id: None,
        assertion_type: assertion_type.into(),
        assertion: assertion.into(),
    };
    let wrong_type = h
        .app
        .authenticate_client(&ctx, &creds("jwt", &assertion), TOKEN_ENDPOINT)
        .await
        .unwrap_err();
    assert_eq!(wrong_type.code, ErrorCode::InvalidClient);
    let client = h
        .app
        .authenticate_client(
            &ctx,
            &creds(JWT_BEARER_ASSERTION, &assertion),
            TOKEN_ENDPOINT,
        )
        .await
        .unwrap();
    assert_eq!(client.client_id, "svc");
    let replay = h
        .app
        .authenticate_client(
            &ctx,
            &creds(JWT_BEARER_ASSERTION, &assertion),
            TOKEN_ENDPOINT,
        )
        .await
        .unwrap_err();
    assert!(replay.description.contains("already used"), "{replay}");
}

// ---------------------------------------------------------------------------
// DPoP

/// RFC 7638 §3.1's example key and thumbprint.
#[test]
fn thumbprints_follow_rfc_7638() {
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        jwk_thumbprint(&jwk).unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[tokio::test]
async fn valid_proofs_give_the_key_thumbprint() {
    let h = Harness::at_issuer().await;
    for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA] {
        let key = TestKey::new(alg, "unused");
        let claims = h.proof_claims("POST", TOKEN_ENDPOINT);
        let proof = h
            .dpop(&key.proof(&claims), "POST", TOKEN_ENDPOINT, None)
            .await
            .unwrap();
        // The thumbprint, computed two other ways.
        let canonical = match alg {
            Algorithm::ES256 => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                key.public["x"].as_str().unwrap(),
                key.public["y"].as_str().unwrap()
            ),
            Algorithm::RS256 => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                key.public["e"].as_str().unwrap(),
                key.public["n"].as_str().unwrap()
            ),
            _ => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                key.public["x"].as_str().unwrap()
            ),
        };
        assert_eq!(proof.jkt, b64(Sha256::digest(canonical.as_bytes())));
        let jwk: Jwk = serde_json::from_value(key.public.clone()).unwrap();
        assert_eq!(proof.jkt, jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
        assert_eq!(proof.jti, claims["jti"].as_str().unwrap());
        assert_eq!(proof.iat.as_second(), h.now());
    }
    // With an access token, `ath` binds the proof to it.
    let key = TestKey::new(Algorithm::ES256, "unused");
    let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    let claims = with(
        h.proof_claims("GET", USERINFO),
        "ath",
        dpop_ath(token).into(),
    );
    h.dpop(&key.proof(&claims), "GET", USERINFO, Some(token))
        .await
        .unwrap();
    // Query and fragment are not compared.
    let claims = h.proof_claims("GET", &format!("{USERINFO}?schema=openid"));
    let claims = with(claims, "ath", dpop_ath(token).into());
    h.dpop(
        &key.proof(&claims),
        "GET",
        &format!("{USERINFO}#x"),
        Some(token),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn proofs_are_for_one_request() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::ES256, "unused");
    let invalid = ErrorCode::InvalidDpopProof;
    let proof = key.proof(&h.proof_claims("POST", TOKEN_ENDPOINT));
    h.dpop_refused(&proof, "GET", TOKEN_ENDPOINT, None, invalid, "`htm`")
        .await;
    h.dpop_refused(&proof, "post", TOKEN_ENDPOINT, None, invalid, "`htm`")
        .await;
    h.dpop_refused(&proof, "POST", USERINFO, None, invalid, "`htu`")
        .await;
    h.dpop_refused(
        &proof,
        "POST",
        "https://localhost:8080/oauth2/token",
        None,
        invalid,
        "`htu`",
    )
    .await;
    // Refused proofs were not spent.
    h.dpop(&proof, "POST", TOKEN_ENDPOINT, None).await.unwrap();
    // A replay is refused, even for the same request.
    h.dpop_refused(
        &proof,
        "POST",
        TOKEN_ENDPOINT,
        None,
        invalid,
        "already used",
    )
    .await;
    // Missing claims.
    for (name, needle) in [
        ("htm", "no `htm`"),
        ("htu", "no `htu`"),
        ("iat", "no `iat`"),
        ("jti", "no `jti`"),
    ] {
        let claims = without(h.proof_claims("POST", TOKEN_ENDPOINT), name);
        h.dpop_refused(
            &key.proof(&claims),
            "POST",
            TOKEN_ENDPOINT,
            None,
            invalid,
            needle,
        )
        .await;
    }
}

#[tokio::test]
async fn proofs_must_be_fresh() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::EdDSA, "unused");
    let invalid = ErrorCode::InvalidDpopProof;
    for offset in [-61, 61, -3600, 86_400] {
        let claims = with(
            h.proof_claims("POST", TOKEN_ENDPOINT),
            "iat",
            (h.now() + offset).into(),
        );
        h.dpop_refused(
            &key.proof(&claims),
            "POST",
            TOKEN_ENDPOINT,
            None,
            invalid,
            "`iat`",
        )
        .await;
    }
    for offset in [-60, 60] {
        let claims = with(
            h.proof_claims("POST", TOKEN_ENDPOINT),
            "iat",
            (h.now() + offset).into(),
        );
        h.dpop(&key.proof(&claims), "POST", TOKEN_ENDPOINT, None)
            .await
            .unwrap();
    }
    // A proof kept too long goes stale.
    let proof = key.proof(&h.proof_claims("POST", TOKEN_ENDPOINT));
    h.advance(SignedDuration::from_secs(61));
    h.dpop_refused(&proof, "POST", TOKEN_ENDPOINT, None, invalid, "`iat`")
        .await;
}

#[tokio::test]
async fn proofs_need_a_current_server_nonce() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::ES256, "unused");
    let use_nonce = ErrorCode::UseDpopNonce;
    let claims = without(h.proof_claims("POST", TOKEN_ENDPOINT), "nonce");
    h.dpop_refused(
        &key.proof(&claims),
        "POST",
        TOKEN_ENDPOINT,
        None,
        use_nonce,
        "nonce",
    )
    .await;
    for bad in [json!("made-up"), json!(""), json!(42)] {
        let claims = with(h.proof_claims("POST", TOKEN_ENDPOINT), "nonce", bad);
        h.dpop_refused(
            &key.proof(&claims),
            "POST",
            TOKEN_ENDPOINT,
            None,
            use_nonce,
            "nonce",
        )
        .await;
    }
    // A nonce lives at least five minutes and at most ten.
    let nonce = h.app.dpop_nonce();
    assert!(nonce.len() >= 32, "a nonce is unguessable: {nonce}");
    let proof_with = |h: &Harness| {
        key.proof(&with(
            h.proof_claims("POST", TOKEN_ENDPOINT),
            "nonce",
            nonce.clone().into(),
        ))
    };
    h.advance(SignedDuration::from_secs(300));
    h.dpop(&proof_with(&h), "POST", TOKEN_ENDPOINT, None)
        .await
        .unwrap();
    h.advance(SignedDuration::from_secs(300));
    h.dpop_refused(
        &proof_with(&h),
        "POST",
        TOKEN_ENDPOINT,
        None,
        use_nonce,
        "stale",
    )
    .await;
    // The fresh nonce works, and the proof's other faults come first.
    let fresh = h.app.dpop_nonce();
    assert_ne!(fresh, nonce);
    let claims = with(
        h.proof_claims("POST", TOKEN_ENDPOINT),
        "nonce",
        fresh.into(),
    );
    h.dpop(&key.proof(&claims), "POST", TOKEN_ENDPOINT, None)
        .await
        .unwrap();
    let claims = without(h.proof_claims("GET", TOKEN_ENDPOINT), "nonce");
    h.dpop_refused(
        &key.proof(&claims),
        "POST",
        TOKEN_ENDPOINT,
        None,
        ErrorCode::InvalidDpopProof,
        "`htm`",
    )
    .await;
}

#[tokio::test]
async fn proofs_are_bound_to_the_access_token() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::RS256, "unused");
    let invalid = ErrorCode::InvalidDpopProof;
    let token = "an-access-token";
    let claims = h.proof_claims("GET", USERINFO);
    h.dpop_refused(
        &key.proof(&claims),
        "GET",
        USERINFO,
        Some(token),
        invalid,
        "no `ath`",
    )
    .await;
    for wrong in [dpop_ath("another-token"), "".into(), b64(token)] {
        let claims = with(h.proof_claims("GET", USERINFO), "ath", wrong.into());
        h.dpop_refused(
            &key.proof(&claims),
            "GET",
            USERINFO,
            Some(token),
            invalid,
            "`ath`",
        )
        .await;
    }
    let claims = with(
        h.proof_claims("GET", USERINFO),
        "ath",
        dpop_ath(token).into(),
    );
    h.dpop(&key.proof(&claims), "GET", USERINFO, Some(token))
        .await
        .unwrap();
}

#[tokio::test]
async fn proof_headers_are_checked() {
    let h = Harness::at_issuer().await;
    let key = TestKey::new(Algorithm::ES256, "unused");
    let invalid = ErrorCode::InvalidDpopProof;
    let claims = || h.proof_claims("POST", TOKEN_ENDPOINT);
    let refused = |proof: String, needle: &'static str| {
        let h = &h;
        async move {
            h.dpop_refused(&proof, "POST", TOKEN_ENDPOINT, None, invalid, needle)
                .await;
        }
    };

    // The private key in the header.
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let own = EncodingKey::from_ec_der(pkcs8.as_ref());
    let mut private =
        serde_json::to_value(Jwk::from_encoding_key(&own, Algorithm::ES256).unwrap()).unwrap();
    private["d"] = b64([7u8; 32]).into();
    let header = json!({"typ": DPOP_TYP, "alg": "ES256", "jwk": private});
    refused(
        sign_raw(&header, &claims(), &own, Algorithm::ES256),
        "private",
    )
    .await;

    // Symmetric algorithms, with an `oct` key or the public key as secret.
    let secret = b"a shared secret of thirty-two b.";
    let oct = json!({"kty": "oct", "k": b64(secret)});
    let header = json!({"typ": DPOP_TYP, "alg": "HS256", "jwk": oct});
    refused(
        sign_raw(
            &header,
            &claims(),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        ),
        "symmetric",
    )
    .await;
    let header = json!({"typ": DPOP_TYP, "alg": "HS256", "jwk": key.public});
    let confused = EncodingKey::from_secret(key.public.to_string().as_bytes());
    refused(
        sign_raw(&header, &claims(), &confused, Algorithm::HS256),
        "symmetric",
    )
    .await;
    let header = json!({"typ": DPOP_TYP, "alg": "none", "jwk": key.public});
    refused(unsigned(&header, &claims()), "none").await;

    // typ, jwk.
    refused(
        key.sign_with(json!({"typ": "JWT", "jwk": key.public}), &claims()),
        "`typ`",
    )
    .await;
    refused(
        key.sign_with(json!({"jwk": key.public}), &claims()),
        "`typ`",
    )
    .await;
    refused(
        key.sign_with(json!({"typ": DPOP_TYP}), &claims()),
        "no `jwk`",
    )
    .await;
    refused(
        key.sign_with(json!({"typ": DPOP_TYP, "jwk": "k"}), &claims()),
        "not a JWK",
    )
    .await;
    // A jwk that did not make the signature.
    let other = TestKey::new(Algorithm::ES256, "unused");
    refused(
        key.sign_with(json!({"typ": DPOP_TYP, "jwk": other.public}), &claims()),
        "signature",
    )
    .await;
    // A jwk of another type than the alg.
    let ed = TestKey::new(Algorithm::EdDSA, "unused");
    refused(
        key.sign_with(json!({"typ": DPOP_TYP, "jwk": ed.public}), &claims()),
        "ES256",
    )
    .await;
    // Everything right: accepted.
    h.dpop(&key.proof(&claims()), "POST", TOKEN_ENDPOINT, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn proof_jtis_are_per_key() {
    let h = Harness::at_issuer().await;
    let a = TestKey::new(Algorithm::ES256, "unused");
    let b = TestKey::new(Algorithm::EdDSA, "unused");
    let claims = h.proof_claims("POST", TOKEN_ENDPOINT);
    let pa = h
        .dpop(&a.proof(&claims), "POST", TOKEN_ENDPOINT, None)
        .await
        .unwrap();
    let pb = h
        .dpop(&b.proof(&claims), "POST", TOKEN_ENDPOINT, None)
        .await
        .unwrap();
    assert_ne!(pa.jkt, pb.jkt);
    assert_eq!(pa.jti, pb.jti);
}
