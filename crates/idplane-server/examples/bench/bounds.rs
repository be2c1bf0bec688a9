//! The machine's raw bounds, measured in the same run as the scenarios so
//! each figure reads as a fraction of what the machine allows: ES256
//! signatures on one core with idplane's crypto backend, Argon2id
//! verifications with idplane's hasher, and a bare axum endpoint.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use idplane_app::authn::password::Hasher;

use crate::http::Error;

/// ES256 signatures per second on one core (aws-lc-rs, as idplane signs),
/// over a message the size of a typical access token's signing input.
pub fn es256_per_core(window: Duration) -> Result<f64, Error> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())?;
    let message = [b'x'; 400];
    let start = Instant::now();
    let mut signatures = 0u64;
    while start.elapsed() < window {
        key.sign(&rng, &message)?;
        signatures += 1;
    }
    Ok(signatures as f64 / start.elapsed().as_secs_f64())
}

/// Argon2id verifications per second through idplane's own hasher (its
/// parameters and its thread per core), every core busy: twice as many
/// callers as cores keep a verification queued behind each running one, as
/// under sign-in load.
pub async fn argon2_per_second(window: Duration) -> Result<f64, Error> {
    const PASSWORD: &str = "load test passphrase that is long enough";
    let hasher = std::sync::Arc::new(Hasher::owasp()?);
    let phc = hasher.hash(PASSWORD).await?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..2 * cores {
        let (hasher, phc) = (hasher.clone(), phc.clone());
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            while start.elapsed() < window {
                hasher.verify(PASSWORD, &phc).await?;
                done += 1;
            }
            Ok::<_, idplane_app::AppError>(done)
        }));
    }
    let mut verified = 0;
    for worker in workers {
        verified += worker.await??;
    }
    Ok(verified as f64 / start.elapsed().as_secs_f64())
}

/// Serves the bound's endpoint until killed: one axum route answering
/// `hello`, on the same runtime and allocator as idplane.
pub async fn serve_hello(listen: std::net::SocketAddr) -> Result<(), Error> {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
