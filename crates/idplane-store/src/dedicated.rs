//! A thread of its own for a task on the write path.
//!
//! The write path is a chain of hand-offs with SQLite's worker thread (or
//! PostgreSQL's socket), and every caller waiting for durability waits for
//! the whole chain. On the request runtime each hand-off's wake-up queues
//! behind the request tasks already runnable; under load that turned a
//! sub-millisecond group commit into several milliseconds with the cores
//! partly idle. On a single-threaded runtime of its own, the task runs as
//! soon as the operating system wakes its thread.

use std::future::Future;

/// Runs `task` to completion on a new thread named `name`.
pub fn spawn<F>(name: &str, task: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || runtime.block_on(task))?;
    Ok(())
}
