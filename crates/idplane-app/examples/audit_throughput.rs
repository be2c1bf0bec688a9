//! Measures durable audit appends per second through the group-commit
//! writer: many concurrent producers, each waiting until its event is
//! committed.
//!
//! `cargo run --release -p idplane-app --example audit_throughput -- [EVENTS] [PRODUCERS] [DATABASE_URL]`
//! (SQLite in a temporary directory unless a URL is given).

use std::sync::Arc;
use std::time::Instant;

use idplane_app::App;
use idplane_app::keyring::Keyring;
use idplane_core::audit::AuditEvent;
use idplane_core::{Actor, RequestMeta, SystemClock};
use idplane_store::{Store, StoreOptions};

/// The server's allocator, so these figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let producers: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let dir = tempfile::tempdir()?;
    let url = args.get(3).cloned().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        )
    });
    let options = StoreOptions {
        schema: url
            .starts_with("postgres")
            .then(|| format!("bench_{}", uuid::Uuid::now_v7().simple())),
        ..Default::default()
    };
    let store = Store::open(&url, &options).await?;
    let app = App::start(
        store,
        Arc::new(SystemClock),
        Keyring::ephemeral()?,
        Default::default(),
    )
    .await?;
    let tenant = app.default_tenant_id().await?;
    let ctx = app.ctx(tenant, Actor::System, RequestMeta::default());

    let per_producer = events / producers;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(producers);
    for p in 0..producers {
        let app = app.clone();
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_producer {
                let event = AuditEvent::new(&ctx, "bench.event", Some(format!("bench:{p}:{i}")));
                app.record(event).await?;
            }
            Ok::<_, idplane_app::AppError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed();
    let total = per_producer * producers;
    println!(
        "{total} durable audit events from {producers} concurrent producers in {:.2} s: {:.0} events/s ({})",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        if url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    idplane_app::audit::verify_store(app.store(), None).await?;
    println!("chain verified");
    Ok(())
}
