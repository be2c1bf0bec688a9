//! The OpenID provider driven by a mainstream relying-party library (the
//! `openidconnect` crate): discovery, a person signing in with the code
//! flow and PKCE, consent, ID token and userinfo, refresh rotation, client
//! credentials, introspection and revocation; and the hostile cases of the
//! OAuth security BCP (RFC 9700).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::support::{TestServer, s};

const PASSWORD: &str = "correct horse battery staple 42";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The HTTP client the library calls, on our reqwest (never follows redirects).
async fn http(
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()?;
    let (parts, body) = request.into_parts();
    let response = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut builder = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder
        .body(response.bytes().await?.to_vec())
        .expect("a response"))
}

async fn person(server: &TestServer, name: &str) -> String {
    let user = server
        .create(
            "/api/v1/users",
            json!({"username": name, "email": format!("{name}@example.com"), "display_name": "Alice Liddell"}),
        )
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

/// Registers a client; returns its secret (if any).
async fn client(server: &TestServer, body: Value) -> Option<String> {
    let created = server.create("/api/v1/clients", body).await;
    created
        .get("client_secret")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn web_app(server: &TestServer, first_party: bool) -> String {
    client(
        server,
        json!({
            "client_id": "webapp",
            "name": "Web app",
            "redirect_uris": [REDIRECT],
            "scopes": ["openid", "profile", "email", "offline_access"],
            "first_party": first_party,
        }),
    )
    .await
    .unwrap()
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The client URL on the "continue" page shown after a form.
fn continue_url(html: &str) -> String {
    let start = html
        .find("id=\"continue\" href=\"")
        .expect("a continue link")
        + 20;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&").replace("&#38;", "&")
}

/// Walks a browser from the authorization URL to the response at the
/// client: sign-in, then consent when `consent` is true.
async fn authorize(
    browser: &mut Browser<'_>,
    server: &TestServer,
    auth_url: &str,
    username: &str,
    consent: bool,
) -> HashMap<String, String> {
    let path = auth_url.strip_prefix(&server.base).unwrap();
    let (status, headers, _) = browser.get(path).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let login = headers[LOCATION].to_str().unwrap().to_owned();
    assert!(login.starts_with("/login?return_to="), "{login}");
    browser.get(&login).await;
    let (status, headers, _) = browser.sign_in(username, PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let resume = headers[LOCATION].to_str().unwrap().to_owned();
    assert!(
        resume.starts_with("/oauth2/authorize/resume?h="),
        "{resume}"
    );
    let (status, _, html) = browser.get(&resume).await;
    assert_eq!(status, StatusCode::OK);
    let html = if consent {
        assert!(html.contains("Allow Web app access?"), "{html}");
        assert!(html.contains("<code>email</code>"));
        let handle = html
            .split("name=\"handle\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let csrf = browser.csrf().await;
        let (status, _, html) = browser
            .form(
                "/oauth2/authorize/consent",
                &[("csrf", &csrf), ("handle", &handle), ("decision", "allow")],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        html
    } else {
        html
    };
    query_of(&continue_url(&html))
}

#[tokio::test]
async fn discovery_documents_agree_and_every_endpoint_answers() {
    let server = TestServer::dev_oidc().await;
    let oidc = server.get_json("/.well-known/openid-configuration").await;
    let oauth = server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(oidc, oauth);
    assert_eq!(oidc["issuer"], server.base.as_str());
    assert_eq!(oidc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(oidc["response_types_supported"], json!(["code"]));
    assert_eq!(oidc["authorization_response_iss_parameter_supported"], true);
    let grants = oidc["grant_types_supported"].as_array().unwrap();
    assert!(!grants.contains(&json!("implicit")));
    assert!(!grants.contains(&json!("password")));
    for (key, value) in oidc.as_object().unwrap() {
        let Some(url) = value
            .as_str()
            .filter(|_| key.ends_with("_endpoint") || key == "jwks_uri")
        else {
            continue;
        };
        let r = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), StatusCode::NOT_FOUND, "{key}: {url}");
    }
    // The library accepts the document.
    CoreProviderMetadata::discover_async(IssuerUrl::new(server.base.clone()).unwrap(), &http)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_relying_party_signs_a_person_in_refreshes_and_reads_userinfo() {
    let server = TestServer::dev_oidc().await;
    let alice = person(&server, "alice").await;
    let secret = web_app(&server, false).await;
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(server.base.clone()).unwrap(), &http)
            .await
            .unwrap();
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("webapp".into()),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    let mut browser = Browser::new(&server);
    let response = authorize(&mut browser, &server, auth_url.as_str(), "alice", true).await;
    assert!(response.contains_key("code"), "{response:?}");
    assert_eq!(response["state"], *state.secret());
    assert_eq!(response["iss"], server.base, "RFC 9207");
    let code = response["code"].clone();

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = rp.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    assert_eq!(claims.subject().as_str(), alice);
    assert_eq!(claims.preferred_username().unwrap().as_str(), "alice");
    assert!(claims.auth_time().is_some());
    let amr: Vec<String> = claims
        .auth_method_refs()
        .unwrap()
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    assert_eq!(amr, ["pwd"]);
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));

    // The access token is an RFC 9068 JWT.
    let header: Value = serde_json::from_slice(
        &B64.decode(tokens.access_token().secret().split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");

    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.subject().as_str(), alice);
    assert_eq!(info.email().unwrap().as_str(), "alice@example.com");

    // Rotation: the new refresh token works, the old one is spent, and
    // presenting it again revokes the whole family.
    let first = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = rp
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let second = refreshed.refresh_token().unwrap().clone();
    assert_ne!(first.secret(), second.secret());
    let replay = rp
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(
        format!("{replay:?}").contains("invalid_grant"),
        "{replay:?}"
    );
    let after = rp
        .exchange_refresh_token(&second)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(format!("{after:?}").contains("invalid_grant"), "{after:?}");
    let events = server.audit_query("&action=oauth.refresh_reuse").await;
    assert_eq!(events.len(), 1, "{events:?}");

    // The code is single use: a second exchange fails and revokes.
    let again = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&http)
        .await;
    assert!(format!("{again:?}").contains("invalid_grant"), "{again:?}");

    // Consent is remembered: the next sign-in asks no more.
    let (challenge, _) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let (status, headers, _) = browser
        .get(auth_url.as_str().strip_prefix(&server.base).unwrap())
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers[LOCATION].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert!(query_of(location).contains_key("code"));
}

async fn token_request(
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

#[tokio::test]
async fn client_credentials_introspection_and_revocation() {
    let server = TestServer::dev_oidc().await;
    let service = client(
        &server,
        json!({"client_id": "billing", "name": "Billing", "grant_types": ["client_credentials"], "scopes": ["invoices.read"]}),
    )
    .await
    .unwrap();
    let other = client(
        &server,
        json!({"client_id": "other", "name": "Other", "grant_types": ["client_credentials"], "scopes": []}),
    )
    .await
    .unwrap();
    let (status, body) = token_request(
        &server,
        Some(("billing", &service)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "invoices.read"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "invoices.read");
    assert!(body.get("refresh_token").is_none());
    let token = s(&body["access_token"]);

    let mine = introspect(&server, "billing", &service, &token).await;
    assert_eq!(mine["active"], true);
    assert_eq!(mine["client_id"], "billing");
    assert_eq!(mine["sub"], "billing");
    // Another client may not look at it.
    let theirs = introspect(&server, "other", &other, &token).await;
    assert_eq!(theirs, json!({"active": false}));

    // Unauthenticated introspection is refused.
    let r = server
        .client
        .post(server.url("/oauth2/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Wrong secret, unknown scope, unsupported grants.
    let (status, body) = token_request(
        &server,
        Some(("billing", "idp_cs_wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    // An unknown client gets the same answer: no client id oracle.
    let (unknown_status, unknown) = token_request(
        &server,
        Some(("nobody", "idp_cs_wrong")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((unknown_status, &unknown), (status, &body));
    let (_, body) = token_request(
        &server,
        Some(("billing", &service)),
        &[("grant_type", "client_credentials"), ("scope", "admin")],
    )
    .await;
    assert_eq!(body["error"], "invalid_scope");
    for grant in ["password", "implicit", "urn:x"] {
        let (_, body) = token_request(
            &server,
            Some(("billing", &service)),
            &[("grant_type", grant)],
        )
        .await;
        assert_eq!(body["error"], "unsupported_grant_type", "{grant}");
    }
    let failed = server.audit_query("&action=client.auth").await;
    let reasons: Vec<&str> = failed
        .iter()
        .filter_map(|e| e["details"]["reason"].as_str())
        .collect();
    for reason in ["wrong secret", "unknown client"] {
        assert!(reasons.contains(&reason), "{reasons:?}");
    }

    // Revocation makes it inactive.
    let r = server
        .client
        .post(server.url("/oauth2/revoke"))
        .basic_auth("billing", Some(&service))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        introspect(&server, "billing", &service, &token).await["active"],
        false
    );
}

#[tokio::test]
async fn hostile_authorization_requests_fail_safely() {
    let server = TestServer::dev_oidc().await;
    web_app(&server, true).await;
    let mut browser = Browser::new(&server);
    let challenge = B64.encode([7u8; 32]);
    let base = format!(
        "/oauth2/authorize?client_id=webapp&response_type=code&scope=openid&state=s1&code_challenge={challenge}&code_challenge_method=S256"
    );
    // Unregistered redirect URI: our own page, no redirect.
    for bad in [
        "http://127.0.0.1:9/other",
        "https://evil.example.com/callback",
        "http://127.0.0.1:9/callback/../x",
    ] {
        let (status, headers, html) = browser
            .get(&format!("{base}&redirect_uri={}", urlencode(bad)))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(headers.get(LOCATION).is_none());
        assert!(html.contains("not registered"), "{html}");
    }
    // Unknown client: our own page.
    let (status, headers, _) = browser
        .get(&format!(
            "/oauth2/authorize?client_id=nobody&response_type=code&redirect_uri={}",
            urlencode(REDIRECT)
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(headers.get(LOCATION).is_none());

    // PKCE downgrades: back to the client with invalid_request.
    let plain = format!(
        "/oauth2/authorize?client_id=webapp&response_type=code&scope=openid&state=s2&redirect_uri={}",
        urlencode(REDIRECT)
    );
    for query in [
        plain.clone(),
        format!("{plain}&code_challenge={challenge}&code_challenge_method=plain"),
        format!("{plain}&code_challenge={challenge}"),
    ] {
        let (status, headers, _) = browser.get(&query).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{query}");
        let got = query_of(headers[LOCATION].to_str().unwrap());
        assert_eq!(got["error"], "invalid_request", "{query}");
        assert_eq!(got["state"], "s2");
        assert_eq!(got["iss"], server.base);
    }
    // Implicit and hybrid response types are refused.
    let (_, headers, _) = browser
        .get(
            &format!("{base}&redirect_uri={}", urlencode(REDIRECT))
                .replace("response_type=code", "response_type=token"),
        )
        .await;
    assert_eq!(
        query_of(headers[LOCATION].to_str().unwrap())["error"],
        "unsupported_response_type"
    );
    // prompt=none without a session.
    let (_, headers, _) = browser
        .get(&format!(
            "{base}&redirect_uri={}&prompt=none",
            urlencode(REDIRECT)
        ))
        .await;
    assert_eq!(
        query_of(headers[LOCATION].to_str().unwrap())["error"],
        "login_required"
    );
    // Repeated parameters.
    let (status, _, _) = browser
        .get(&format!(
            "{base}&redirect_uri={}&state=again",
            urlencode(REDIRECT)
        ))
        .await;
    assert_ne!(status, StatusCode::OK);
}

#[tokio::test]
async fn forged_tokens_are_refused_at_userinfo() {
    let server = TestServer::dev_oidc().await;
    let jwks = server.get_json("/oauth2/jwks").await;
    let key = &jwks["keys"][0];
    let kid = s(&key["kid"]);
    let claims = B64.encode(
        json!({"iss": server.base, "sub": "x", "scope": "openid", "exp": 4_000_000_000u64, "jti": "j", "client_id": "c"})
            .to_string(),
    );
    // alg none.
    let none = format!(
        "{}.{claims}.",
        B64.encode(json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string())
    );
    // HS256 keyed with the public key (algorithm confusion).
    let header = B64.encode(json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}).to_string());
    let signing_input = format!("{header}.{claims}");
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.to_string().as_bytes()),
        signing_input.as_bytes(),
    );
    let confused = format!("{signing_input}.{}", B64.encode(mac.as_ref()));
    for token in [none, confused, "garbage".to_owned()] {
        let r = server
            .client
            .get(server.url("/oauth2/userinfo"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
