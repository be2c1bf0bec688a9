//! Time is a parameter: every use case reads "now" from an injected [`Clock`].
//!
//! Expiry is evaluated when data is read, by comparing with `Ctx::now`, so no
//! correctness depends on a background job having run, and tests move a
//! [`ManualClock`] instead of sleeping.

use std::sync::Mutex;

pub use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place where the wall clock is read"
    )]
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward (or backward, for a negative span).
    pub fn advance(&self, by: jiff::SignedDuration) {
        let mut now = self.now.lock().unwrap_or_else(|poison| poison.into_inner());
        *now = now.saturating_add(by).unwrap_or(*now);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        *self.now.lock().unwrap_or_else(|poison| poison.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Whether something that expires at `expires_at` is still in force at `now`.
/// An expiry is exclusive: at the instant itself the thing has expired.
pub fn in_force(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_none_or(|at| now < at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_exclusive() {
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert!(in_force(
            Some(at),
            at - jiff::SignedDuration::from_millis(1)
        ));
        assert!(!in_force(Some(at), at));
        assert!(in_force(None, at));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(jiff::SignedDuration::from_hours(4));
        assert_eq!(clock.now().as_second() - start.as_second(), 4 * 3600);
    }
}
