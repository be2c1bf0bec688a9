//! Closed-loop load: N workers, each on its own connection, send one request
//! after another for a warm-up and then a measured window; the server's CPU
//! and peak memory are read from /proc over the same window.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::http::{Conn, Error};
use crate::scenarios::Workload;

/// The number of the next unit of load, unique across every window of a
/// run, so creations never reuse a name from an earlier level.
static NEXT_UNIT: AtomicU64 = AtomicU64::new(0);

/// What one run at one concurrency measured.
#[derive(Debug)]
pub struct Sample {
    pub concurrency: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub errors: u64,
    pub first_error: Option<String>,
    pub server: Option<Usage>,
}

/// The server's share of the machine during a measured window.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// CPU seconds per wall second (2.0 = both cores of a 2-core machine).
    pub cores: f64,
    pub peak_rss_mib: f64,
}

pub struct Window {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

pub async fn measure(
    workload: Arc<Workload>,
    addr: SocketAddr,
    window: &Window,
    server: Option<&Server>,
) -> Sample {
    let start = Instant::now() + Duration::from_millis(20);
    let measured_from = start + window.warmup;
    let until = measured_from + window.duration;
    let mut workers = Vec::with_capacity(window.concurrency);
    for worker in 0..window.concurrency {
        let workload = workload.clone();
        workers.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            let mut tally = Tally::default();
            let mut state = match workload.worker_state(&mut conn, worker).await {
                Ok(state) => state,
                Err(e) => {
                    tally.fail(e);
                    return tally;
                }
            };
            tokio::time::sleep_until(start.into()).await;
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let unit = NEXT_UNIT.fetch_add(1, Ordering::Relaxed);
                let outcome = workload.run(&mut conn, &mut state, unit).await;
                let done = Instant::now();
                if sent < measured_from || done > until {
                    continue;
                }
                match outcome {
                    Ok(()) => tally.latencies.push(done - sent),
                    Err(e) => tally.fail(e),
                }
            }
            tally
        }));
    }
    let usage = async {
        let server = server?;
        tokio::time::sleep_until(measured_from.into()).await;
        let before = server.mark();
        tokio::time::sleep_until(until.into()).await;
        Some(server.usage_since(before))
    };
    let (usage, tallies) = tokio::join!(usage, join_all(workers));
    let mut total = Tally::default();
    for tally in tallies {
        total.merge(tally);
    }
    total.latencies.sort_unstable();
    let at = |p: f64| {
        let n = total.latencies.len();
        total
            .latencies
            .get(((n as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    Sample {
        concurrency: window.concurrency,
        per_second: total.latencies.len() as f64 / window.duration.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        errors: total.errors,
        first_error: total.first_error,
        server: usage,
    }
}

async fn join_all(workers: Vec<tokio::task::JoinHandle<Tally>>) -> Vec<Tally> {
    let mut tallies = Vec::with_capacity(workers.len());
    for worker in workers {
        tallies.push(worker.await.unwrap_or_else(|e| {
            let mut tally = Tally::default();
            tally.fail(e.to_string().into());
            tally
        }));
    }
    tallies
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, e: Error) {
        self.errors += 1;
        self.first_error.get_or_insert_with(|| e.to_string());
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// A server process this run started (idplane, a peer, the bounds),
/// stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    ticks_per_second: f64,
}

/// CPU ticks at an instant, to subtract from a later reading.
pub struct Mark {
    ticks: u64,
    at: Instant,
}

impl Server {
    /// Starts `command` and waits until `ready_path` answers 200; returns
    /// the server and how long it took to become ready.
    pub async fn start(
        name: &str,
        mut command: Command,
        addr: SocketAddr,
        ready_path: &str,
    ) -> Result<(Self, Duration), Error> {
        let started = Instant::now();
        let child = command.spawn()?;
        let mut server = Self {
            addr,
            child,
            ticks_per_second: clock_ticks_per_second(),
        };
        let probe = crate::http::Call::get(ready_path);
        let mut conn = Conn::new(addr);
        loop {
            if let Ok(reply) = conn.send(&probe).await
                && reply.status.is_success()
            {
                return Ok((server, started.elapsed()));
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(format!("{name} exited before it was ready: {status}").into());
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!("{name} was not ready within 60 s").into());
            }
            conn = Conn::new(addr);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn mark(&self) -> Mark {
        self.reset_peak_rss();
        Mark {
            ticks: self.cpu_ticks(),
            at: Instant::now(),
        }
    }

    pub fn usage_since(&self, mark: Mark) -> Usage {
        let cpu = (self.cpu_ticks().saturating_sub(mark.ticks)) as f64 / self.ticks_per_second;
        Usage {
            cores: cpu / mark.at.elapsed().as_secs_f64(),
            peak_rss_mib: self.status_kib("VmHWM:") / 1024.0,
        }
    }

    pub fn rss_mib(&self) -> f64 {
        self.status_kib("VmRSS:") / 1024.0
    }

    /// utime + stime of every thread, fields 14 and 15 of /proc/PID/stat
    /// (counted after the parenthesised command name, which may hold spaces).
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
        // After the name, field 3 (state) is index 0, so utime (14) is 11.
        field(11).unwrap_or(0) + field(12).unwrap_or(0)
    }

    fn status_kib(&self, key: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Writing 5 to clear_refs resets VmHWM, so each window reports its own
    /// peak rather than the process's lifetime peak.
    fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}
