//! Passwords, TOTP enrollments, recovery codes, email codes and sign-in throttling.
