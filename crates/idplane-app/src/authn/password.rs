//! Passwords: Argon2id hashing with bounded concurrency, and the NIST SP
//! 800-63B rules.

/// Hashes and verifies passwords, at most a few at a time so that a burst of
/// sign-ins cannot exhaust memory.
#[derive(Debug, Default)]
pub struct Hasher {}
