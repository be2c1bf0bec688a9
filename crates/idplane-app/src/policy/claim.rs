//! A single-reader claim: of the decisions that find a cached read model
//! due for a check, one reads the database while the others go on with
//! what they have.

use std::sync::atomic::{AtomicBool, Ordering};

/// Held by the one caller reading now; dropping it (even when that
/// caller's request is cancelled mid-read) lets the next caller read.
pub(crate) struct Claim<'a>(&'a AtomicBool);

impl<'a> Claim<'a> {
    /// The claim on `flag`, unless another caller holds it.
    pub(crate) fn take(flag: &'a AtomicBool) -> Option<Self> {
        (!flag.swap(true, Ordering::AcqRel)).then_some(Self(flag))
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_until_it_drops() {
        let flag = AtomicBool::new(false);
        let held = Claim::take(&flag).expect("free");
        assert!(Claim::take(&flag).is_none(), "taken twice");
        drop(held);
        assert!(Claim::take(&flag).is_some(), "not released");
    }
}
