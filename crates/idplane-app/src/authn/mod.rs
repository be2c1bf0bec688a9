//! Authentication: passwords the NIST way, TOTP and recovery codes,
//! passkeys, sessions, brute-force protection, and the sign-in flow that
//! combines them.

pub mod ceremony;
pub mod login;
pub mod passkeys;
pub mod password;
pub mod policy;
pub mod recovery;
pub mod sessions;
pub mod throttle;
pub mod totp;

use serde::{Deserialize, Serialize};

/// Authentication method references (RFC 8176) recorded in a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Amr {
    /// A password.
    Pwd,
    /// A one-time code (TOTP, email code, recovery code).
    Otp,
    /// A hardware-bound key (a device-bound passkey or security key).
    Hwk,
    /// A software-bound key (a synced passkey).
    Swk,
    /// Biometric or PIN user verification on the authenticator.
    User,
    /// More than one factor.
    Mfa,
}

impl Amr {
    /// The RFC 8176 value.
    pub fn as_str(self) -> &'static str {
        match self {
            Amr::Pwd => "pwd",
            Amr::Otp => "otp",
            Amr::Hwk => "hwk",
            Amr::Swk => "swk",
            Amr::User => "user",
            Amr::Mfa => "mfa",
        }
    }
}
