//! Caches kept true across nodes by polling: of the requests that find a
//! cached read model due for a check, one reads the database (a claim)
//! while the others go on with what they have. A generation counter that
//! the store moves in every changing transaction tells the reader whether
//! what is cached may predate a change made on another node.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use idplane_core::Timestamp;
use jiff::SignedDuration;

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

/// A store generation this node last read, and when.
#[derive(Debug)]
pub(crate) struct GenerationWatch {
    /// Milliseconds since the epoch of the last read.
    read_at: AtomicI64,
    /// The generation then; `NONE` before the first read or after a
    /// failed one.
    seen: AtomicI64,
    /// Held by the caller reading it now.
    reading: AtomicBool,
}

impl GenerationWatch {
    /// Generations are never negative.
    const NONE: i64 = -1;

    /// Reads the generation with `read` if `poll` has passed since the last
    /// read and no other caller is reading it; true when what was cached
    /// may predate a change and must go: the generation moved, or it could
    /// not be read (a node that cannot tell trusts nothing cached).
    pub(crate) async fn moved(
        &self,
        now: Timestamp,
        poll: SignedDuration,
        what: &str,
        read: impl Future<Output = idplane_store::Result<i64>>,
    ) -> bool {
        let Some(claimed) = self.claim(now, poll) else {
            return false;
        };
        let generation = read.await.map_err(|e| {
            tracing::warn!(error = %e, "reading the {what} generation failed");
        });
        claimed.saw(generation.ok())
    }

    /// The right to read the generation, for the first caller once `poll`
    /// has passed since the last read.
    fn claim(&self, now: Timestamp, poll: SignedDuration) -> Option<Poll<'_>> {
        let now = now.as_millisecond();
        let due = self.read_at.load(Ordering::Acquire) + poll.as_millis() as i64;
        if now < due {
            return None;
        }
        let claim = Claim::take(&self.reading)?;
        Some(Poll {
            watch: self,
            now,
            _claim: claim,
        })
    }
}

impl Default for GenerationWatch {
    fn default() -> Self {
        Self {
            read_at: AtomicI64::new(i64::MIN / 2),
            seen: AtomicI64::new(Self::NONE),
            reading: AtomicBool::new(false),
        }
    }
}

/// A claimed read of the generation.
struct Poll<'a> {
    watch: &'a GenerationWatch,
    now: i64,
    _claim: Claim<'a>,
}

impl Poll<'_> {
    /// Records what the read found (`None`: it failed); true when the
    /// cached read model may predate a change and must go.
    fn saw(self, generation: Option<i64>) -> bool {
        let now = generation.unwrap_or(GenerationWatch::NONE);
        let before = self.watch.seen.swap(now, Ordering::AcqRel);
        self.watch.read_at.store(self.now, Ordering::Release);
        before == GenerationWatch::NONE || before != now
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

    /// A poll period for the tests.
    const POLL: SignedDuration = SignedDuration::from_secs(1);

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }

    #[test]
    fn one_caller_a_poll_reads_the_generation() {
        let watch = GenerationWatch::default();
        let poll = watch
            .claim(at(0), POLL)
            .expect("the first read is due at once");
        assert!(
            watch.claim(at(0), POLL).is_none(),
            "a second reader while one reads"
        );
        assert!(poll.saw(Some(7)), "the first read forgets what came before");
        let poll_ms = POLL.as_millis() as i64;
        assert!(watch.claim(at(poll_ms - 1), POLL).is_none(), "not due yet");
        let poll = watch.claim(at(poll_ms), POLL).expect("due after a poll");
        assert!(!poll.saw(Some(7)), "unchanged: the cache stays");
        let poll = watch.claim(at(2 * poll_ms), POLL).unwrap();
        assert!(poll.saw(Some(8)), "moved: the cache goes");
    }

    #[test]
    fn a_failed_or_abandoned_read_trusts_nothing() {
        let watch = GenerationWatch::default();
        assert!(watch.claim(at(0), POLL).unwrap().saw(Some(3)));
        let poll_ms = POLL.as_millis() as i64;
        // Cancelled mid-read (the request went away): the next caller reads.
        drop(watch.claim(at(poll_ms), POLL).unwrap());
        let poll = watch
            .claim(at(poll_ms), POLL)
            .expect("an abandoned read is released");
        // It fails: the cache goes, and goes again at the next read,
        // even if the generation then reads as before.
        assert!(poll.saw(None));
        assert!(watch.claim(at(2 * poll_ms), POLL).unwrap().saw(Some(3)));
        assert!(!watch.claim(at(3 * poll_ms), POLL).unwrap().saw(Some(3)));
    }
}
