//! The machine's raw bounds, measured in the same run as the scenarios so
//! each figure reads as a fraction of what the machine allows: ES256
//! signatures on one core with idplane's crypto backend, Argon2id
//! verifications with idplane's hasher, a bare axum endpoint, and a bare
//! axum endpoint that only signs an ES256 JWT (the reference the
//! client-credentials target is set against).

use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_app::authn::password::Hasher;
use idplane_core::time::Clock as _;

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

/// Serves the bounds' endpoints until killed, on the same runtime and
/// allocator as idplane: `GET /` answers `hello`; `POST /token` answers
/// every request with a fresh ES256 access token, as a token endpoint
/// would if it did nothing but sign (no client check, no audit).
pub async fn serve_bounds(listen: std::net::SocketAddr) -> Result<(), Error> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())?;
    let signer = std::sync::Arc::new(key);
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hello" }))
        .route(
            "/token",
            axum::routing::post(move || {
                let signer = signer.clone();
                async move { signed_token_response(&signer) }
            }),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// A token response carrying an RFC 9068 access token with the claims
/// idplane's client-credentials tokens carry, signed with `key`.
fn signed_token_response(key: &EcdsaKeyPair) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now = idplane_core::time::SystemClock.now().as_second();
    let header = serde_json::json!({"typ": "at+jwt", "alg": "ES256", "kid": "bound"});
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1", "sub": "bench", "aud": "http://127.0.0.1/api",
        "client_id": "bench", "scope": "read", "iat": now, "exp": now + 300,
        "jti": uuid::Uuid::now_v7().simple().to_string(),
    });
    let mut jws = B64.encode(header.to_string());
    jws.push('.');
    B64.encode_string(claims.to_string(), &mut jws);
    let Ok(signature) = key.sign(&SystemRandom::new(), jws.as_bytes()) else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    jws.push('.');
    B64.encode_string(signature.as_ref(), &mut jws);
    axum::Json(serde_json::json!({
        "access_token": jws, "token_type": "Bearer", "expires_in": 300, "scope": "read",
    }))
    .into_response()
}
