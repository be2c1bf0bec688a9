//! The machine's bound for password sign-ins: Argon2id verifications per
//! second with idplane's parameters, on every core at once.
//!
//! `cargo run --release -p idplane-app --example argon2_bound -- [VERIFICATIONS]`

use std::time::Instant;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let params = Params::new(19_456, 2, 1, None).map_err(|e| e.to_string())?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon
        .hash_password(b"load test passphrase that is long enough")
        .map_err(|e| e.to_string())?
        .to_string();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let parsed = PasswordHash::new(&hash).ok();
                for _ in 0..total / threads {
                    if let Some(parsed) = &parsed {
                        let _ = argon
                            .verify_password(b"load test passphrase that is long enough", parsed);
                    }
                }
            });
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let done = total / threads * threads;
    println!(
        "Argon2id (m=19456 KiB, t=2, p=1): {done} verifications on {threads} threads in {elapsed:.2} s: {:.1}/s",
        done as f64 / elapsed
    );
    Ok(())
}
