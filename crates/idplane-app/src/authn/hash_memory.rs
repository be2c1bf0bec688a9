//! Argon2 working memory reused between password verifications while
//! sign-ins queue.
//!
//! Each Argon2id verification needs `m` KiB of working memory (19 MiB with
//! the default parameters). Allocating it per verification means mapping
//! and zeroing 19 MiB every time: page faults and a memset that took about
//! a tenth of the CPU under sign-in load. Argon2 writes every block before
//! it reads it, so a buffer from an earlier verification can be used as it
//! is. Buffers are kept only while other verifications are running or
//! waiting; the last one to finish zeroes and frees them, so an idle server
//! holds none, and a busy one at most one per permit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Block;
use zeroize::Zeroize;

/// Spare Argon2 buffers and the number of verifications in flight.
#[derive(Debug)]
pub(super) struct MemoryPool {
    spare: Mutex<Vec<Vec<Block>>>,
    in_flight: AtomicUsize,
    /// At most this many spare buffers: one per hashing permit.
    keep: usize,
}

/// A verification counted as in flight (queued or running) until dropped.
pub(super) struct InFlight<'a>(&'a MemoryPool);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl MemoryPool {
    pub(super) fn new(keep: usize) -> Self {
        Self {
            spare: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            keep,
        }
    }

    /// Counts a verification from before it waits for a permit, so that
    /// one finishing sees the queue behind it.
    pub(super) fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self)
    }

    /// Runs `work` on `blocks` blocks of working memory, a spare buffer if
    /// there is one. Called by a verification that holds an [`InFlight`].
    pub(super) fn with_memory<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        let mut memory = self.take().unwrap_or_default();
        memory.resize(blocks, Block::default());
        let result = work(&mut memory);
        if self.in_flight.load(Ordering::Acquire) > 1 {
            self.give_back(memory);
        } else {
            // Nobody is waiting: leave no password-derived state behind.
            memory.zeroize();
            for mut spare in self.drain() {
                spare.zeroize();
            }
        }
        result
    }

    /// How many spare buffers are held now.
    #[cfg(test)]
    pub(super) fn spare(&self) -> usize {
        self.lock().len()
    }

    fn take(&self) -> Option<Vec<Block>> {
        self.lock().pop()
    }

    fn give_back(&self, mut memory: Vec<Block>) {
        let mut spare = self.lock();
        if spare.len() < self.keep {
            spare.push(memory);
        } else {
            drop(spare);
            memory.zeroize();
        }
    }

    fn drain(&self) -> Vec<Vec<Block>> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        // The list is valid whatever a panicking holder was doing.
        self.spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_verification_keeps_nothing() {
        let pool = MemoryPool::new(2);
        let _me = pool.begin();
        pool.with_memory(8, |m| assert_eq!(m.len(), 8));
        assert_eq!(pool.spare(), 0);
    }

    #[test]
    fn buffers_are_kept_while_others_queue_and_freed_by_the_last() {
        let pool = MemoryPool::new(2);
        let first = pool.begin();
        let second = pool.begin();
        let third = pool.begin();
        pool.with_memory(8, |m| m.iter_mut().for_each(|b| b.as_mut().fill(7)));
        drop(first);
        pool.with_memory(8, |m| {
            // The same buffer, not zeroed: Argon2 writes every block before
            // reading it.
            assert!(m.iter().all(|b| b.as_ref().iter().all(|&w| w == 7)));
        });
        drop(second);
        assert_eq!(pool.spare(), 1);
        pool.with_memory(16, |m| assert_eq!(m.len(), 16));
        drop(third);
        assert_eq!(pool.spare(), 0);
    }

    #[test]
    fn never_more_spares_than_permits() {
        let pool = MemoryPool::new(1);
        let _a = pool.begin();
        let _b = pool.begin();
        let _c = pool.begin();
        let first = pool.take().unwrap_or_default();
        pool.give_back(first);
        pool.give_back(vec![Block::default(); 4]);
        assert_eq!(pool.spare(), 1);
    }
}
