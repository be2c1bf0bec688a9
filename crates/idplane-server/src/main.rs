//! `idplane`: the server and its command-line client.

mod authzen;
mod cli;
mod client;
mod config;
mod http;
mod logging;
mod offline;
mod oidc;
mod pages;
mod scim;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// Allocation-heavy paths (JSON, Cedar evaluation, JWTs) spend far less in
/// mimalloc than in glibc's malloc; see docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Cedar evaluates recursively and denies with an error when less
        // than 100 KiB of stack is left. An optimised build needs about
        // 2 KiB per level, an unoptimised one up to 60; at 16 MiB both
        // decide the deepest policies the nesting bound admits. Reserved,
        // not resident, memory.
        .thread_stack_size(16 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idplane: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        // The reader went away (`idplane audit export | head`): it has what
        // it wanted, as with any Unix filter.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the reason, with its causes.
            eprintln!("idplane: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
