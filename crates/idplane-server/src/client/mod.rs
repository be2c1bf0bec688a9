//! Client commands: drive a running server's admin API.

mod http;

use std::process::ExitCode;

use clap::{Args, Subcommand};

pub use self::http::Client;

/// Where the server is and who we are.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The server's base URL.
    #[arg(long, global = true, env = "IDPLANE_SERVER", default_value = "http://localhost:8080")]
    pub server: String,
    /// Tenant to act in.
    #[arg(long, global = true, env = "IDPLANE_TENANT", default_value = "default")]
    pub tenant: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
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
                println!("{}", serde_json::to_string_pretty(&issued)?);
            } else {
                println!(
                    "Administrator `{username}` created. Their admin token (shown only now):\n\n  export IDPLANE_TOKEN={}\n",
                    issued["secret"].as_str().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
