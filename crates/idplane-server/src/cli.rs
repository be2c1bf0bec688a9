//! The command line: `serve`, the offline audit tools, and the client
//! commands that drive a running server's admin API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::ClientCommand;
use crate::config::ServeArgs;

/// idplane: identity and access management in one small server.
#[derive(Debug, Parser)]
#[command(name = "idplane", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Audit log tools that read the database directly (offline).
    #[command(subcommand)]
    Audit(AuditCommand),
    #[command(flatten)]
    Client(Box<ClientCommand>),
}

/// Where the database is, for offline tools.
#[derive(Debug, Args)]
pub struct StoreLocation {
    /// The data directory of an embedded (SQLite) server.
    #[arg(long, conflicts_with = "database_url")]
    pub data: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://...`.
    #[arg(long, env = "IDPLANE_DATABASE_URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every tenant's hash chain; name the first broken link.
    Verify {
        #[command(flatten)]
        store: StoreLocation,
        /// A checkpoint (JSON from GET /api/v1/audit/checkpoint) the log must still reach.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Stream events as JSON lines.
    Export {
        #[command(flatten)]
        store: StoreLocation,
        /// Only events at or after this RFC 3339 instant.
        #[arg(long)]
        since: Option<jiff::Timestamp>,
        /// `jsonl` (idplane records with hashes) or `ocsf` (OCSF API Activity).
        #[arg(long, default_value = "jsonl")]
        format: ExportFormatArg,
        /// Only this tenant (by name); all tenants by default.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormatArg {
    Jsonl,
    Ocsf,
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(*args).await.map(|()| ExitCode::SUCCESS),
        Command::Audit(cmd) => crate::offline::run(cmd).await,
        Command::Client(cmd) => crate::client::run(*cmd).await,
    }
}
