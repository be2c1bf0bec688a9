//! idplane's load harness: every hot path under closed-loop load at several
//! concurrency levels, side by side with the certified peer and the
//! machine's raw bounds measured in the same run.
//!
//! ```sh
//! bench/run.sh                      # release build, peer installed, docs/benchmarks.md rewritten
//! bench run --idplane target/release/idplane [--oidc-provider DIR] [--markdown FILE]
//! bench guard --idplane target/debug/idplane   # CI: brief, fails on errors or a 5x collapse
//! ```

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bounds;
mod fixture;
mod http;
mod load;
mod peers;
mod report;
mod scenarios;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser};

use crate::http::{Conn, Error};
use crate::load::{Sample, Server, Window};
use crate::scenarios::Seeder;

#[derive(Parser)]
#[command(name = "bench", about = "idplane's load harness")]
enum Cli {
    /// Every scenario at several concurrency levels, the bounds and the
    /// peer; prints a Markdown report.
    Run(RunArgs),
    /// Each scenario briefly at one concurrency; fails on any error or on
    /// a collapse of more than 5x against the bound measured in the run.
    Guard(Common),
    /// The bounds' endpoints, started as a child by `run` and `guard`.
    #[command(hide = true)]
    Bounds {
        #[arg(long)]
        listen: SocketAddr,
    },
}

#[derive(Args)]
struct Common {
    /// The idplane binary to load.
    #[arg(long)]
    idplane: PathBuf,
    /// Only these scenarios (comma-separated); all by default.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// The first of four loopback ports the run uses.
    #[arg(long, default_value_t = 19500)]
    port: u16,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    concurrency: Vec<usize>,
    /// Seconds measured at each concurrency level.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of load before each measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// A folder with the oidc-provider peer installed (`npm ci` done).
    #[arg(long)]
    oidc_provider: Option<PathBuf>,
    /// Write the report here instead of standard output.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// How long and how hard a run loads each scenario.
#[derive(Debug)]
pub struct Plan {
    levels: Vec<usize>,
    warmup: Duration,
    duration: Duration,
    /// How long each in-process bound (ES256, Argon2id) runs.
    bound_window: Duration,
    authzen_size: (u64, u64),
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Results {
    pub version: String,
    pub es256_per_core: f64,
    pub argon2_per_second: f64,
    pub hello: Vec<Sample>,
    /// The bare endpoint that only signs an ES256 access token.
    pub signer: Vec<Sample>,
    /// The median time from spawning a first start to its `/readyz`.
    pub ready: Duration,
    pub idle_rss_mib: f64,
    pub scenarios: Vec<(String, Vec<Sample>)>,
    /// The peer, keyed by the idplane scenario it compares with.
    pub peers: Vec<(String, Vec<Sample>)>,
    pub peer_skipped: Option<String>,
}

impl Results {
    pub fn scenario(&self, name: &str) -> Option<&[Sample]> {
        self.scenarios
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice())
    }

    pub fn peer(&self, name: &str) -> Option<&[Sample]> {
        self.peers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice())
    }

    /// The hello bound at `concurrency`.
    pub fn hello_at(&self, concurrency: usize) -> Option<f64> {
        rate_at(&self.hello, concurrency)
    }

    /// The signing endpoint's bound at `concurrency`.
    pub fn signer_at(&self, concurrency: usize) -> Option<f64> {
        rate_at(&self.signer, concurrency)
    }
}

fn rate_at(samples: &[Sample], concurrency: usize) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.concurrency == concurrency)
        .map(|s| s.per_second)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    match Cli::parse() {
        Cli::Bounds { listen } => bounds::serve_bounds(listen).await,
        Cli::Run(args) => {
            let plan = Plan {
                levels: args.concurrency.clone(),
                warmup: Duration::from_secs_f64(args.warmup),
                duration: Duration::from_secs_f64(args.seconds),
                bound_window: Duration::from_secs(3),
                authzen_size: (10_000, 1_000),
            };
            let results = measure(&args.common, &plan, args.oidc_provider.as_deref()).await?;
            let text = report::markdown(&results, &plan);
            match &args.markdown {
                Some(path) => std::fs::write(path, text)?,
                None => print!("{text}"),
            }
            Ok(())
        }
        Cli::Guard(common) => {
            let plan = Plan {
                levels: vec![8],
                warmup: Duration::from_millis(500),
                duration: Duration::from_millis(1500),
                bound_window: Duration::from_secs(1),
                authzen_size: (300, 100),
            };
            let results = measure(&common, &plan, None).await?;
            let failures = report::guard(&results);
            if failures.is_empty() {
                eprintln!(
                    "guard: every scenario answered without errors and within 5x of its bound"
                );
                Ok(())
            } else {
                Err(format!("guard failed:\n  {}", failures.join("\n  ")).into())
            }
        }
    }
}

/// Fresh starts timed for the ready figure (their median).
pub const COLD_STARTS: usize = 5;

async fn measure(common: &Common, plan: &Plan, peer_dir: Option<&Path>) -> Result<Results, Error> {
    let addr = |offset: u16| SocketAddr::from(([127, 0, 0, 1], common.port + offset));
    let scratch = tempfile::tempdir()?;

    progress("bounds: ES256 and Argon2id");
    let es256_per_core = bounds::es256_per_core(plan.bound_window)?;
    let argon2_per_second = bounds::argon2_per_second(plan.bound_window).await?;
    let mut bounds_command = Command::new(std::env::current_exe()?);
    bounds_command
        .args(["bounds", "--listen", &addr(3).to_string()])
        .stdout(Stdio::null());
    let (bounds_server, _) = Server::start("bounds", bounds_command, addr(3), "/").await?;
    let hello = load_levels("hello", scenarios::hello(), &bounds_server, plan).await;
    let signer = load_levels("signer", scenarios::signer(), &bounds_server, plan).await;
    drop(bounds_server);

    let root = format!("bench-root-{}", uuid::Uuid::now_v7().simple());
    let serve = |store: &str| -> Result<Command, Error> {
        let log = std::fs::File::create(scratch.path().join(format!("{store}.log")))?;
        let mut command = Command::new(&common.idplane);
        command
            .args(["serve", "--dev", "--dev-root-token", &root, "--listen"])
            .arg(addr(0).to_string())
            .arg("--data")
            .arg(scratch.path().join(store))
            .args(["--issuer", &format!("http://{}", addr(0))])
            .stdout(log.try_clone()?)
            .stderr(log);
        Ok(command)
    };
    // One first start is at the mercy of one slow fsync or key generation:
    // the figure is the median of several, each on a new data directory,
    // the last of them the server that is loaded.
    let mut starts = Vec::with_capacity(COLD_STARTS);
    for n in 1..COLD_STARTS {
        let (server, ready) =
            Server::start("idplane", serve(&format!("cold-{n}"))?, addr(0), "/readyz").await?;
        drop(server);
        starts.push(ready);
    }
    let (idplane, last) = Server::start("idplane", serve("store")?, addr(0), "/readyz").await?;
    starts.push(last);
    starts.sort_unstable();
    let ready = starts.get(starts.len() / 2).copied().unwrap_or(last);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mib = idplane.rss_mib();
    let version = String::from_utf8_lossy(
        &Command::new(&common.idplane)
            .arg("--version")
            .output()?
            .stdout,
    )
    .trim()
    .to_owned();

    let (peers, peer_skipped) = match peer_dir {
        Some(dir) => match start_peers(dir, addr(1), addr(2)).await {
            Ok(peers) => (Some(peers), None),
            Err(e) => (None, Some(format!("the peer did not start: {e}"))),
        },
        None => (
            None,
            Some("no peer folder given (--oidc-provider)".to_owned()),
        ),
    };

    let mut seeder = Seeder::new(Conn::new(addr(0)), &root, &common.idplane, scratch.path());
    seeder.base_url = format!("http://{}", addr(0));
    seeder.authzen_size = plan.authzen_size;
    let mut results = Results {
        version,
        es256_per_core,
        argon2_per_second,
        hello,
        signer,
        ready,
        idle_rss_mib,
        scenarios: Vec::new(),
        peers: Vec::new(),
        peer_skipped,
    };
    for name in scenarios::IDPLANE {
        if !common.scenarios.is_empty() && !common.scenarios.iter().any(|s| s == name) {
            continue;
        }
        progress(name);
        let workload = Arc::new(seeder.seed(name).await?);
        let peer = match (&peers, *name) {
            (Some((jwt, _)), "client-credentials") => {
                Some((jwt, Arc::new(scenarios::peer_client_credentials())))
            }
            (Some((_, opaque)), "introspection") => {
                let workload = scenarios::peer_introspection(&mut Conn::new(opaque.addr)).await?;
                Some((opaque, Arc::new(workload)))
            }
            _ => None,
        };
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        // Alternating at each level, so drift in the machine hits both alike.
        for &concurrency in &plan.levels {
            let window = window(plan, concurrency);
            ours.push(load::measure(workload.clone(), addr(0), &window, Some(&idplane)).await);
            if let Some((server, workload)) = &peer {
                theirs.push(
                    load::measure(workload.clone(), server.addr, &window, Some(server)).await,
                );
            }
        }
        results.scenarios.push((name.to_string(), ours));
        if peer.is_some() {
            results.peers.push((name.to_string(), theirs));
        }
    }
    Ok(results)
}

async fn start_peers(
    dir: &Path,
    jwt: SocketAddr,
    opaque: SocketAddr,
) -> Result<(Server, Server), Error> {
    Ok((
        peers::oidc_provider(dir, jwt, "jwt").await?,
        peers::oidc_provider(dir, opaque, "opaque").await?,
    ))
}

async fn load_levels(
    name: &str,
    workload: scenarios::Workload,
    server: &Server,
    plan: &Plan,
) -> Vec<Sample> {
    progress(name);
    let workload = Arc::new(workload);
    let mut samples = Vec::new();
    for &concurrency in &plan.levels {
        let window = window(plan, concurrency);
        samples.push(load::measure(workload.clone(), server.addr, &window, Some(server)).await);
    }
    samples
}

fn window(plan: &Plan, concurrency: usize) -> Window {
    Window {
        concurrency,
        warmup: plan.warmup,
        duration: plan.duration,
    }
}

fn progress(what: &str) {
    eprintln!("bench: {what}");
}
