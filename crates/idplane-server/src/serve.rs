//! `idplane serve`: start-up, the background tasks, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use idplane_app::keyring::Keyring;
use idplane_app::oidc::tokens::REVOCATION_POLL;
use idplane_app::registry::REGISTRY_POLL;
use idplane_app::{App, AppSettings};
use idplane_core::{Actor, SystemClock};
use idplane_store::{Store, StoreOptions, redact_url};
use jiff::SignedDuration;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio::net::TcpListener;

use crate::config::{ServeArgs, ServeConfig};
use crate::http::{self, AppState};

/// How often the due jobs (end dates, reminders, start dates) are run; also
/// once at start, catching up on what came due while no server ran.
const JOBS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// How long shutdown waits for a run of due jobs in progress to finish.
const JOBS_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Latency buckets (seconds) for the request histograms.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = ServeConfig::resolve(args)?;
    crate::logging::init(config.log_format);
    let metrics = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("seconds".into()), LATENCY_BUCKETS))
        .context("metrics")?
        .install_recorder()
        .context("metrics recorder")?;

    create_private_dir(&config.data_dir)?;
    let store = Store::open(&config.database_url, &StoreOptions::default())
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(&config.database_url)
            )
        })?;
    let keyring = match std::env::var("IDPLANE_ROOT_KEY") {
        Ok(key) => Keyring::from_base64(&key),
        Err(_) => Keyring::load_or_create(&config.data_dir.join("root.key")),
    }
    .map_err(|e| anyhow::anyhow!("root key: {e}"))?;
    if matches!(config.mailer, idplane_app::authn::email::Mailer::Outbox) {
        tracing::info!("mail goes to the outbox (GET /api/v1/outbox), not to the network");
    }
    let settings = AppSettings {
        issuer: config.issuer.clone(),
        mailer: config.mailer.clone(),
        password_hashing: config.password_hashing,
    };
    let app = App::start(store, Arc::new(SystemClock), keyring, settings)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start: {e}"))?;

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    announce(&app, &config).await?;
    let state = AppState::new(app.clone(), config.root_token.clone(), Some(metrics));
    let checkpoints = tokio::spawn(sign_checkpoints(app.clone(), config.checkpoint_interval));
    let store_probe = tokio::spawn(probe_store(app.clone()));
    let housekeeper = tokio::spawn(housekeeping(app.clone(), config.signing_key_rotation));
    let node_watch = tokio::spawn(watch_other_nodes(app.clone()));
    let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
    let job_runner = tokio::spawn(run_jobs(app.clone(), runner_id(), jobs_stopped));
    tracing::info!(
        listen = %config.listen, issuer = %config.issuer, dev = config.dev,
        startup_ms = started.elapsed().as_millis() as u64, "idplane is ready"
    );
    axum::serve(
        listener,
        http::router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("server error")?;
    tracing::info!("shutting down: in-flight requests finished");
    checkpoints.abort();
    store_probe.abort();
    housekeeper.abort();
    node_watch.abort();
    // A run in progress finishes (its jobs commit or roll back whole); an
    // unfinished one is taken over by the next runner once its lease expires.
    let _ = stop_jobs.send(true);
    if tokio::time::timeout(JOBS_SHUTDOWN_GRACE, job_runner)
        .await
        .is_err()
    {
        tracing::warn!("due jobs still running at shutdown; their leases will expire");
    }
    if let Err(e) = app.checkpoint_all().await {
        tracing::warn!(error = %e, "final audit checkpoint failed");
    }
    app.shutdown().await;
    Ok(())
}

/// Prints, once, how the first administrator gets in. Secrets go to the
/// terminal (stderr), never to the log.
async fn announce(app: &App, config: &ServeConfig) -> anyhow::Result<()> {
    if let Some(root) = &config.root_token {
        eprintln!(
            "\nidplane is running in DEVELOPMENT mode: data in {} {}.\n  Root token: {root}\n  export IDPLANE_SERVER={} IDPLANE_TOKEN={root}\n",
            config.data_dir.display(),
            if config._ephemeral.is_some() {
                "(deleted on exit)"
            } else {
                "(kept)"
            },
            config.issuer,
        );
        return Ok(());
    }
    if let Some(secret) = app
        .first_start_bootstrap()
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?
    {
        eprintln!(
            "\nidplane initialised {}.\nThe first administrator gets in with this one-time bootstrap token (valid 24 hours, shown only now):\n\n  idplane bootstrap --server {} --token {secret} --username YOUR_NAME\n\nIt prints an admin token for IDPLANE_TOKEN.\n",
            config.data_dir.display(),
            config.issuer,
        );
    }
    Ok(())
}

async fn sign_checkpoints(app: App, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(e) = app.checkpoint_all().await {
            tracing::warn!(error = %e, "audit checkpoint failed");
        }
    }
}

/// Housekeeping every ten minutes (nothing depends on it for correctness),
/// including rotation of the token signing keys older than
/// `key_rotation`, checked at start too.
async fn housekeeping(app: App, key_rotation: Option<SignedDuration>) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        ticker.tick().await;
        if let Err(e) = app.purge_expired().await {
            tracing::warn!(error = %e, "housekeeping failed");
        }
        if let Some(max_age) = key_rotation
            && let Err(e) = rotate_due_signing_keys(&app, max_age).await
        {
            tracing::warn!(error = %e, "scheduled signing key rotation failed");
        }
    }
}

/// Keeps this node's registry caches, signing keys and revoked token ids
/// true to changes made on other nodes, whether or not requests poll them
/// meanwhile.
async fn watch_other_nodes(app: App) {
    let every = REGISTRY_POLL.min(REVOCATION_POLL).unsigned_abs();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        app.watch_registry().await;
        app.watch_revocations().await;
    }
}

/// Rotates, as the system, the token signing keys older than `max_age`.
async fn rotate_due_signing_keys(app: &App, max_age: SignedDuration) -> idplane_app::Result<()> {
    let tenant = app.default_tenant_id().await?;
    let ctx = app.ctx(tenant, Actor::System, Default::default());
    app.rotate_due_signing_keys(&ctx, max_age).await?;
    Ok(())
}

/// Runs due jobs now and every [`JOBS_INTERVAL`] until `stop` turns true.
async fn run_jobs(app: App, runner: String, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(JOBS_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        match app.run_due_jobs(&runner, app.clock().now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "ran due jobs"),
            Err(e) => tracing::warn!(error = %e, "running due jobs failed"),
        }
    }
}

/// This process's name as a job runner: host, process id and a random
/// part (a restarted process may get the same pid).
fn runner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}/{}/{}",
        std::process::id(),
        &random[random.len() - 8..]
    )
}

/// Measures store latency for `/metrics` every 15 seconds.
async fn probe_store(app: App) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(15));
    loop {
        ticker.tick().await;
        let start = Instant::now();
        let ok = app.store().ping().await.is_ok();
        metrics::histogram!("idplane_store_ping_seconds").record(start.elapsed().as_secs_f64());
        metrics::gauge!("idplane_store_up").set(if ok { 1.0 } else { 0.0 });
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}
