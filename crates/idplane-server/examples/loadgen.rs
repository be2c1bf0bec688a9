//! A small load generator for idplane on loopback, with bounded request
//! counts: it reports throughput and latency percentiles.
//!
//! `cargo run --release -p idplane-server --example loadgen -- URL TOKEN SCENARIO [COUNT] [CONCURRENCY]`
//!
//! Scenarios: `users` (user creations through the admin API), `signin`
//! (password sign-ins through `/login`, one seeded user), `cc`
//! (client-credentials grants, ES256 JWT access tokens, one seeded client)
//! and `introspect` (introspection of one such token by its client).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "load test passphrase that is long enough";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(token), Some(scenario)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: loadgen URL TOKEN users|signin|cc|introspect [COUNT] [CONCURRENCY]");
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
    let request: Arc<dyn Fn(usize) -> reqwest::RequestBuilder + Send + Sync> = match scenario
        .as_str()
    {
        "users" => {
            let (client, url, token, run) = (
                client.clone(),
                format!("{base}/api/v1/users"),
                token.clone(),
                run.clone(),
            );
            Arc::new(move |i| {
                let body = serde_json::json!({"username": format!("load-{run}-{i}"), "email": format!("load{i}@example.com")});
                client.post(&url).bearer_auth(&token).json(&body)
            })
        }
        "signin" => {
            let username = format!("signin-{run}");
            seed_user(&client, &base, token, &username).await?;
            // Any 43-character token: the double-submit check compares cookie and field.
            let csrf = "loadgen-csrf-token-0123456789abcdefghijklmn";
            let (client, url) = (client.clone(), format!("{base}/login"));
            Arc::new(move |_| {
                client
                    .post(&url)
                    .header("cookie", format!("idplane_csrf={csrf}"))
                    .form(&[
                        ("csrf", csrf),
                        ("username", username.as_str()),
                        ("password", PASSWORD),
                    ])
            })
        }
        "cc" | "introspect" => {
            let client_id = format!("load-{run}");
            let secret = seed_client(&client, &base, token, &client_id).await?;
            let url = format!("{base}/oauth2/token");
            if scenario == "cc" {
                let client = client.clone();
                Arc::new(move |_| {
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
                Arc::new(move |_| {
                    client
                        .post(&url)
                        .basic_auth(&client_id, Some(&secret))
                        .form(&[("token", access.as_str())])
                })
            }
        }
        other => {
            eprintln!("unknown scenario `{other}`");
            std::process::exit(2);
        }
    };
    let expected = match scenario.as_str() {
        "users" => 201,
        "signin" => 303,
        _ => 200,
    };
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (request, next) = (request.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let sent = Instant::now();
                let ok = request(i)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == expected)
                    .unwrap_or(false);
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

/// Registers a confidential client for client credentials; returns its secret.
async fn seed_client(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    client_id: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let created: serde_json::Value = client
        .post(format!("{base}/api/v1/clients"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "client_id": client_id,
            "name": "load generator",
            "grant_types": ["client_credentials"],
            "scopes": ["load"],
        }))
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
