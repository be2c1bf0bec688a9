//! A small load generator for idplane on loopback, with bounded request
//! counts: it reports throughput and latency percentiles.
//!
//! `cargo run --release -p idplane-server --example loadgen -- URL TOKEN SCENARIO [COUNT] [CONCURRENCY]`
//!
//! Scenarios: `users` (user creations through the admin API), `signin`
//! (password sign-ins through `/login`, one seeded user), `cc`
//! (client-credentials grants, ES256 JWT access tokens, one seeded client)
//! `introspect` (introspection of one such token by its client) and
//! `authcode` (authorization-code round trips: the authorization request
//! of a signed-in person, then the code exchanged with PKCE at the token
//! endpoint; one sign-in up front, so no password hashing in the loop),
//! `scim-create` (SCIM user creations with the enterprise extension) and
//! `scim-list` (filtered SCIM lists: a userName lookup and a department
//! page, alternating, over whatever directory is there).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "load test passphrase that is long enough";
/// Any 43-character token: the double-submit check compares cookie and field.
const CSRF: &str = "loadgen-csrf-token-0123456789abcdefghijklmn";
/// RFC 7636 appendix B: a verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// One unit of load (index in, success out).
type Step = Arc<dyn Fn(usize) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// A step of one request that succeeds on the `expected` status.
fn single(
    expected: u16,
    request: impl Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Step {
    Arc::new(move |i| {
        let sent = request(i).send();
        Box::pin(async move { sent.await.is_ok_and(|r| r.status().as_u16() == expected) })
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(token), Some(scenario)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!(
            "usage: loadgen URL TOKEN users|signin|cc|introspect|authcode|scim-create|scim-list [COUNT] [CONCURRENCY]"
        );
        std::process::exit(2);
    };
    let count: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let concurrency: usize = args.get(5).and_then(|a| a.parse().ok()).unwrap_or(64);
    let base = base.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let step: Step = match scenario.as_str() {
        "users" => {
            let (client, url, token, run) = (
                client.clone(),
                format!("{base}/api/v1/users"),
                token.clone(),
                run.clone(),
            );
            single(201, move |i| {
                let body = serde_json::json!({"username": format!("load-{run}-{i}"), "email": format!("load{i}@example.com")});
                client.post(&url).bearer_auth(&token).json(&body)
            })
        }
        "signin" => {
            let username = format!("signin-{run}");
            seed_user(&client, &base, token, &username).await?;
            let (client, url) = (client.clone(), format!("{base}/login"));
            single(303, move |_| sign_in(&client, &url, &username))
        }
        "cc" | "introspect" => {
            let client_id = format!("load-{run}");
            let registration = serde_json::json!({
                "client_id": client_id,
                "name": "load generator",
                "grant_types": ["client_credentials"],
                "scopes": ["load"],
            });
            let secret = seed_client(&client, &base, token, &registration).await?;
            let url = format!("{base}/oauth2/token");
            if scenario == "cc" {
                let client = client.clone();
                single(200, move |_| {
                    client
                        .post(&url)
                        .basic_auth(&client_id, Some(&secret))
                        .form(&[("grant_type", "client_credentials"), ("scope", "load")])
                })
            } else {
                let issued: serde_json::Value = client
                    .post(&url)
                    .basic_auth(&client_id, Some(&secret))
                    .form(&[("grant_type", "client_credentials"), ("scope", "load")])
                    .send()
                    .await?
                    .json()
                    .await?;
                let access = issued["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let (client, url) = (client.clone(), format!("{base}/oauth2/introspect"));
                single(200, move |_| {
                    client
                        .post(&url)
                        .basic_auth(&client_id, Some(&secret))
                        .form(&[("token", access.as_str())])
                })
            }
        }
        "scim-create" => {
            let (client, url, token, run) = (
                client.clone(),
                format!("{base}/scim/v2/Users"),
                token.clone(),
                run.clone(),
            );
            single(201, move |i| {
                let body = serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                    "userName": format!("scim-{run}-{i}"),
                    "name": {"givenName": "Load", "familyName": format!("User {i}")},
                    "emails": [{"value": format!("scim-{run}-{i}@example.com"), "type": "work", "primary": true}],
                    "active": true,
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": format!("dept-{}", i % 50)},
                });
                client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/scim+json")
                    .body(body.to_string())
            })
        }
        "scim-list" => {
            // Filters a directory seeded beforehand (e.g. by `scim-create`):
            // a userName lookup (indexed) and a department page (JSON scan).
            let (client, token) = (client.clone(), token.clone());
            let lookup = format!("{base}/scim/v2/Users?filter=userName%20eq%20%22nobody-{run}%22");
            let department =
                format!("{base}/scim/v2/Users?filter=department%20eq%20%22dept-7%22&count=20");
            single(200, move |i| {
                let url = if i % 2 == 0 { &lookup } else { &department };
                client.get(url).bearer_auth(&token)
            })
        }
        "authcode" => authcode(&client, &base, token, &run).await?,
        other => {
            eprintln!("unknown scenario `{other}`");
            std::process::exit(2);
        }
    };
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (step, next) = (step.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let sent = Instant::now();
                let ok = step(i).await;
                latencies.push(sent.elapsed());
                failures += usize::from(!ok);
            }
            (latencies, failures)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{scenario}: {count} requests, concurrency {concurrency}: {:.1}/s, p50 {:.2} ms, p99 {:.2} ms, {failures} failed",
        count as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}

/// A password sign-in at `/login`.
fn sign_in(client: &reqwest::Client, url: &str, username: &str) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("cookie", format!("idplane_csrf={CSRF}"))
        .form(&[
            ("csrf", CSRF),
            ("username", username),
            ("password", PASSWORD),
        ])
}

/// The authorization-code round trip of one signed-in person at a
/// first-party client: authorize (302 with a code), then the token request.
async fn authcode(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    run: &str,
) -> Result<Step, Box<dyn std::error::Error>> {
    let username = format!("authcode-{run}");
    seed_user(client, base, token, &username).await?;
    let signed_in = sign_in(client, &format!("{base}/login"), &username)
        .send()
        .await?;
    let session = signed_in
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("idplane_session="))
        .and_then(|v| v.split(';').next())
        .ok_or("signing in set no session cookie")?
        .to_owned();
    let client_id = format!("load-{run}");
    let registration = serde_json::json!({
        "client_id": client_id,
        "name": "load generator",
        "first_party": true,
        "redirect_uris": [REDIRECT],
        "scopes": ["openid"],
    });
    let secret = seed_client(client, base, token, &registration).await?;
    let authorize = reqwest::Url::parse_with_params(
        &format!("{base}/oauth2/authorize"),
        [
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "load"),
        ],
    )?;
    let (client, token_url) = (client.clone(), format!("{base}/oauth2/token"));
    let (client_id, secret, session) = (Arc::new(client_id), Arc::new(secret), Arc::new(session));
    Ok(Arc::new(move |_| {
        let (client, authorize, token_url) = (client.clone(), authorize.clone(), token_url.clone());
        let (client_id, secret, session) = (client_id.clone(), secret.clone(), session.clone());
        Box::pin(async move {
            let Ok(answer) = client
                .get(authorize)
                .header("cookie", session.as_str())
                .send()
                .await
            else {
                return false;
            };
            let code = answer
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| reqwest::Url::parse(l.to_str().ok()?).ok())
                .and_then(|l| {
                    l.query_pairs()
                        .find(|(k, _)| k == "code")
                        .map(|(_, v)| v.into_owned())
                });
            let Some(code) = code else { return false };
            client
                .post(&token_url)
                .basic_auth(client_id.as_str(), Some(secret.as_str()))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ])
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
    }))
}

/// Creates a user with a known password through the admin API.
async fn seed_user(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    username: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let user: serde_json::Value = client
        .post(format!("{base}/api/v1/users"))
        .bearer_auth(token)
        .json(&serde_json::json!({"username": username}))
        .send()
        .await?
        .json()
        .await?;
    let id = user["id"].as_str().ok_or("no user id")?;
    let status = client
        .post(format!("{base}/api/v1/users/{id}/password"))
        .bearer_auth(token)
        .json(&serde_json::json!({"password": PASSWORD, "temporary": false}))
        .send()
        .await?
        .status();
    if !status.is_success() {
        return Err(format!("setting the password failed: {status}").into());
    }
    Ok(())
}

/// Registers a confidential client; returns its secret.
async fn seed_client(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    registration: &serde_json::Value,
) -> Result<String, Box<dyn std::error::Error>> {
    let created: serde_json::Value = client
        .post(format!("{base}/api/v1/clients"))
        .bearer_auth(token)
        .json(registration)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(created["client_secret"]
        .as_str()
        .ok_or("no client secret in the response")?
        .to_owned())
}
