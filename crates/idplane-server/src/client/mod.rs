//! Client commands: drive a running server's admin API.
//!
//! Every command reads the server from `--server`/`IDPLANE_SERVER`, the
//! admin token from `IDPLANE_TOKEN`, and the tenant from
//! `--tenant`/`IDPLANE_TENANT` (`default` if neither). Output is a table for
//! people; `--json` prints the API's JSON for programs.

mod admin;
mod api;
mod authn;
mod clients;
mod declarative;
mod directory;
mod hr;
mod http;
mod keys;
mod output;
mod policy;
mod policy_files;
mod provisioning;
mod roles;

use crate::client::output::outln;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

pub use self::http::Client;

/// Where the server is and who we are.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "IDPLANE_SERVER",
        default_value = "http://localhost:8080"
    )]
    pub server: String,
    /// Tenant to act in [env: IDPLANE_TENANT] [default: default].
    #[arg(long, global = true)]
    pub tenant: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Connection {
    /// The tenant named by `--tenant` or `IDPLANE_TENANT`, if any.
    pub fn selected_tenant(&self) -> Option<String> {
        self.tenant
            .clone()
            .or_else(|| std::env::var("IDPLANE_TENANT").ok())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    }

    /// The tenant to act in: the selected one, or `default`.
    pub fn tenant(&self) -> String {
        self.selected_tenant()
            .unwrap_or_else(|| "default".to_owned())
    }
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create the first administrator with the one-time bootstrap token.
    Bootstrap {
        #[command(flatten)]
        conn: Connection,
        /// The bootstrap token printed on first start.
        #[arg(long, env = "IDPLANE_BOOTSTRAP_TOKEN")]
        token: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// Users: create, list, read, change, delete, and their effective access.
    User {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: directory::UserCommand,
    },
    /// Groups and their members.
    Group {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: directory::GroupCommand,
    },
    /// Roles (named bundles of entitlements) and role assignments.
    Role {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: roles::RoleCommand,
    },
    /// OAuth 2.0 / OpenID Connect clients (applications that get tokens).
    Client {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: clients::OAuthClientCommand,
    },
    /// Service accounts (non-human principals with an accountable owner).
    ServiceAccount {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: directory::NonHumanCommand,
    },
    /// AI agents (non-human principals with an accountable owner).
    Agent {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: directory::NonHumanCommand,
    },
    /// Tenants (needs a token valid for every tenant).
    Tenant {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: admin::TenantCommand,
    },
    /// Administrator tokens for the API.
    Token {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// Outbound provisioning: connected applications that receive users
    /// and groups over SCIM, and reconciliation against them.
    Provisioning {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: provisioning::ProvisioningCommand,
    },
    /// Token signing keys (needs a token valid for every tenant).
    Keys {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Authorization policy as code: test locally, push versions, diff
    /// their impact, roll back, explain decisions, generate documentation.
    Policy {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Query the audit log of a running server (`audit` has the offline tools).
    #[command(visible_alias = "audit-log")]
    Events {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        filter: admin::EventFilter,
    },
    /// Print the latest signed checkpoint of the tenant's audit chain as
    /// JSON; save it for `idplane audit verify --checkpoint FILE`.
    Checkpoint {
        #[command(flatten)]
        conn: Connection,
    },
    /// HR as the source of truth: import the workforce from a CSV snapshot.
    Hr {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: hr::HrCommand,
    },
    /// Reports: `leavers` (how soon each leaver lost access).
    Report {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: hr::ReportCommand,
    },
    /// Make the live state match a YAML description (see `idplane export`).
    ///
    /// Prints each change, one per line: `+` create, `~` update (with the
    /// fields that change), `-` delete. Objects and lists the file does not
    /// mention are left alone; with `--prune`, objects missing from a list
    /// the file does have are deleted.
    Apply {
        #[command(flatten)]
        conn: Connection,
        /// The YAML file (`-` for standard input).
        file: PathBuf,
        /// Print the plan without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Delete what the file's lists do not contain.
        #[arg(long)]
        prune: bool,
    },
    /// Print the live state as YAML, in the format `idplane apply` reads.
    ///
    /// All tenants the token can see, or only the one named by `--tenant`
    /// or `IDPLANE_TENANT`.
    Export {
        #[command(flatten)]
        conn: Connection,
    },
}

/// A principal's status.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Active,
    Suspended,
    Deprovisioned,
}

impl StatusArg {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deprovisioned => "deprovisioned",
        }
    }
}

/// When a grant ends.
#[derive(Debug, Clone, Args)]
pub struct ExpiryArgs {
    /// Expire after this long, e.g. `4h`, `30m`, `7d`.
    #[arg(long, conflicts_with = "expires_at")]
    pub expires: Option<String>,
    /// Expire at this RFC 3339 instant.
    #[arg(long)]
    pub expires_at: Option<jiff::Timestamp>,
}

impl ExpiryArgs {
    /// Adds `expires_in` / `expires_at` to a request body.
    pub fn add_to(&self, body: &mut serde_json::Value) {
        if let Some(map) = body.as_object_mut() {
            if let Some(span) = &self.expires {
                map.insert("expires_in".into(), span.clone().into());
            }
            if let Some(at) = self.expires_at {
                map.insert("expires_at".into(), at.to_string().into());
            }
        }
    }
}

pub async fn run(cmd: ClientCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClientCommand::Bootstrap {
            conn,
            token,
            username,
            email,
        } => {
            let client = Client::new(&conn.server, Some(token))?;
            let body = serde_json::json!({"username": username, "email": email});
            let issued = client.post("/api/v1/bootstrap", &body).await?;
            if conn.json {
                outln!("{}", serde_json::to_string_pretty(&issued)?);
            } else {
                outln!(
                    "Administrator `{username}` created. Their admin token (shown only now):\n\n  export IDPLANE_TOKEN={}\n",
                    issued["secret"].as_str().unwrap_or_default()
                );
            }
        }
        ClientCommand::User { conn, command } => {
            directory::user(&api::Api::new(&conn)?, command).await?
        }
        ClientCommand::Group { conn, command } => {
            directory::group(&api::Api::new(&conn)?, command).await?
        }
        ClientCommand::Role { conn, command } => {
            roles::run(&api::Api::new(&conn)?, command).await?
        }
        ClientCommand::Client { conn, command } => {
            clients::run(&api::Api::new(&conn)?, command).await?
        }
        ClientCommand::ServiceAccount { conn, command } => {
            let kind = idplane_core::directory::PrincipalKind::ServiceAccount;
            directory::non_human(&api::Api::new(&conn)?, kind, command).await?;
        }
        ClientCommand::Agent { conn, command } => {
            let kind = idplane_core::directory::PrincipalKind::Agent;
            directory::non_human(&api::Api::new(&conn)?, kind, command).await?;
        }
        ClientCommand::Tenant { conn, command } => {
            admin::tenant(&api::Api::new(&conn)?, command).await?
        }
        ClientCommand::Token { conn, command } => {
            admin::token(&api::Api::new(&conn)?, &conn, command).await?
        }
        ClientCommand::Keys { conn, command } => keys::run(&api::Api::new(&conn)?, command).await?,
        ClientCommand::Provisioning { conn, command } => {
            provisioning::run(&api::Api::new(&conn)?, command).await?
        }
        ClientCommand::Events { conn, filter } => {
            admin::events(&api::Api::new(&conn)?, filter).await?
        }
        ClientCommand::Policy { conn, command } => return policy::run(&conn, command).await,
        ClientCommand::Hr { conn, command } => {
            if !hr::run(&api::Api::new(&conn)?, command).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        ClientCommand::Report { conn, command } => {
            hr::report(&api::Api::new(&conn)?, command).await?
        }
        ClientCommand::Checkpoint { conn } => admin::checkpoint(&api::Api::new(&conn)?).await?,
        ClientCommand::Apply {
            conn,
            file,
            dry_run,
            prune,
        } => declarative::apply(&conn, &file, dry_run, prune).await?,
        ClientCommand::Export { conn } => declarative::export(&conn).await?,
    }
    Ok(ExitCode::SUCCESS)
}
