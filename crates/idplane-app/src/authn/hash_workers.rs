//! Threads that do nothing but Argon2, fed from one queue.
//!
//! Handing each hash to the blocking pool behind a semaphore costs two
//! cross-thread wake-ups between one hash and the next (the freed permit
//! wakes a task, the task wakes a blocking thread), and under sign-in load
//! a core sat idle through each. A hashing thread here takes the next
//! queued job the moment one ends.
//!
//! Each thread also keeps its Argon2 working memory (19 MiB with the default
//! parameters) from one job to the next while jobs queue: mapping and
//! zeroing it per verification took about a tenth of the CPU under sign-in
//! load, and Argon2 writes every block before it reads it, so a buffer can
//! be reused as it is. A thread that finds the queue empty zeroes and frees
//! its buffer, so an idle server holds no password-derived state.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use argon2::Block;
use tokio::sync::oneshot;
use zeroize::Zeroize;

/// Argon2 working memory, kept by one hashing thread.
pub(super) type Memory = Vec<Block>;

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// A fixed set of hashing threads; they exit when this is dropped.
#[derive(Debug)]
pub(super) struct HashWorkers {
    jobs: Sender<Job>,
    threads: usize,
    /// Threads waiting for a job, their memory freed.
    idle: Arc<AtomicUsize>,
}

/// The job never ran to completion: the threads are gone or it panicked.
#[derive(Debug)]
pub(super) struct JobFailed;

impl HashWorkers {
    /// Starts `threads` hashing threads (at least one).
    pub(super) fn start(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let idle = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let (queue, idle) = (queue.clone(), idle.clone());
            std::thread::Builder::new()
                .name(format!("idplane-argon2-{i}"))
                .spawn(move || work(&queue, &idle))?;
        }
        Ok(Self {
            jobs,
            threads,
            idle,
        })
    }

    /// How many hashes run at once.
    pub(super) fn threads(&self) -> usize {
        self.threads
    }

    /// How many threads wait for a job, holding no memory.
    pub(super) fn idle(&self) -> usize {
        self.idle.load(Ordering::Acquire)
    }

    /// Queues `work` to run on a hashing thread with that thread's working
    /// memory; the future gives its result. A caller that drops the future
    /// (a dropped connection) before its turn costs no hash.
    pub(super) fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, JobFailed>> + Send + 'static {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            if !done.is_closed() {
                let _ = done.send(work(memory));
            }
        });
        let queued = self.jobs.send(job).is_ok();
        async move {
            if !queued {
                return Err(JobFailed);
            }
            result.await.map_err(|_| JobFailed)
        }
    }
}

/// One hashing thread: jobs until every sender is gone.
fn work(queue: &Mutex<Receiver<Job>>, idle: &AtomicUsize) {
    let take = || queue.lock().unwrap_or_else(PoisonError::into_inner);
    let mut memory = Memory::new();
    loop {
        // A queue locked by another thread is taken as empty: that thread is
        // most likely waiting for a job, and waiting behind it would keep
        // this thread's memory for as long as the server stays idle.
        let next = match queue.try_lock() {
            Ok(queue) => queue.try_recv(),
            Err(TryLockError::Poisoned(queue)) => queue.into_inner().try_recv(),
            Err(TryLockError::WouldBlock) => Err(TryRecvError::Empty),
        };
        let job = match next {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                forget(&mut memory);
                idle.fetch_add(1, Ordering::AcqRel);
                let next = take().recv();
                idle.fetch_sub(1, Ordering::AcqRel);
                match next {
                    Ok(job) => job,
                    Err(_) => break,
                }
            }
        };
        // A panicking job drops its result sender, which its caller sees;
        // the thread carries on with fresh memory.
        if catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
            forget(&mut memory);
        }
    }
    forget(&mut memory);
}

/// Zeroes and frees working memory.
fn forget(memory: &mut Memory) {
    memory.zeroize();
    *memory = Memory::new();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc::SyncSender;

    use super::*;

    /// Until `n` threads have freed their memory and wait. A job's result
    /// reaches its caller before its thread looks at the queue again.
    async fn until_idle(workers: &HashWorkers, n: usize) {
        while workers.idle() < n {
            tokio::task::yield_now().await;
        }
    }

    /// A job that fills its memory with sevens, then holds its thread until
    /// released.
    fn blocking_job(
        workers: &HashWorkers,
    ) -> (SyncSender<()>, impl Future<Output = Result<(), JobFailed>>) {
        let (release, wait) = mpsc::sync_channel::<()>(0);
        let running = workers.run(move |memory| {
            memory.resize(8, Block::default());
            memory.iter_mut().for_each(|b| b.as_mut().fill(7));
            wait.recv().ok();
        });
        (release, running)
    }

    #[tokio::test]
    async fn memory_is_handed_on_while_jobs_queue_and_freed_when_none_do() {
        let workers = HashWorkers::start(1).unwrap();
        let (release, first) = blocking_job(&workers);
        // Queued behind the first: it finds the first's buffer unzeroed.
        let second = workers.run(|memory| {
            memory.len() == 8 && memory.iter().all(|b| b.as_ref().iter().all(|&w| w == 7))
        });
        release.send(()).unwrap();
        first.await.unwrap();
        assert!(second.await.unwrap(), "the buffer is handed on as it is");
        // Nothing was queued behind the second: its thread let the memory go.
        until_idle(&workers, 1).await;
        assert!(workers.run(|memory| memory.is_empty()).await.unwrap());
    }

    #[tokio::test]
    async fn no_thread_keeps_memory_once_the_queue_is_empty() {
        let workers = HashWorkers::start(2).unwrap();
        let (release_one, one) = blocking_job(&workers);
        let (release_two, two) = blocking_job(&workers);
        // One thread finishes and waits for work; the other finishes after.
        release_one.send(()).unwrap();
        release_two.send(()).unwrap();
        one.await.unwrap();
        two.await.unwrap();
        until_idle(&workers, 2).await;
        // Two jobs held together until both run: one on each thread.
        let both = Arc::new(std::sync::Barrier::new(2));
        let on_each = |both: Arc<std::sync::Barrier>| {
            workers.run(move |memory| {
                both.wait();
                memory.is_empty()
            })
        };
        let (first, second) = (on_each(both.clone()), on_each(both));
        assert!(first.await.unwrap() && second.await.unwrap());
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let workers = HashWorkers::start(1).unwrap();
        let failed = workers.run(|_| -> u8 { panic!("argon2 broke") }).await;
        assert!(failed.is_err());
        assert_eq!(workers.run(|_| 42).await.unwrap(), 42);
    }

    #[tokio::test]
    async fn a_caller_that_gave_up_costs_no_work() {
        let workers = HashWorkers::start(1).unwrap();
        let (release, first) = blocking_job(&workers);
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        drop(workers.run(move |_| flag.store(true, Ordering::SeqCst)));
        release.send(()).unwrap();
        first.await.unwrap();
        workers.run(|_| ()).await.unwrap();
        assert!(!ran.load(Ordering::SeqCst), "the abandoned job ran");
    }
}
