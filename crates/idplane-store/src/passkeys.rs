//! WebAuthn passkeys.
