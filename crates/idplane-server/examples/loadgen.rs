//! A small load generator for the admin API: creates users over HTTP with
//! bounded concurrency and reports throughput and latency percentiles.
//!
//! `cargo run --release -p idplane-server --example loadgen -- URL TOKEN [USERS] [CONCURRENCY]`
//! The loop is bounded by USERS; only loopback targets make sense here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(base), Some(token)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: loadgen URL TOKEN [USERS] [CONCURRENCY]");
        std::process::exit(2);
    };
    let users: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let concurrency: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(64);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = format!("{}/api/v1/users", base.trim_end_matches('/'));
    let run = uuid::Uuid::now_v7().simple().to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, run, next) = (
            client.clone(),
            url.clone(),
            token.clone(),
            run.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= users {
                    break;
                }
                let body = serde_json::json!({"username": format!("load-{run}-{i}"), "email": format!("load{i}@example.com")});
                let sent = Instant::now();
                let ok = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 201)
                    .unwrap_or(false);
                latencies.push(sent.elapsed());
                if !ok {
                    failures += 1;
                }
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
        "{users} user creations, concurrency {concurrency}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {failures} failed",
        users as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}
