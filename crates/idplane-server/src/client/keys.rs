//! `idplane keys`: the token signing keys (needs a token valid for every
//! tenant).

use crate::client::output::outln;

use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::api::Api;
use super::output::{print_json, print_table, text};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the keys: active, retired (still in the JWKS) and unpublished.
    List,
    /// Rotate keys: a new key signs from now on; the one it replaces stays
    /// in the JWKS for 24 hours, so tokens it signed still verify.
    Rotate {
        /// Only this algorithm's key (every algorithm's by default).
        #[arg(long, value_enum)]
        algorithm: Option<AlgorithmArg>,
    },
}

/// A token signing algorithm.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    #[value(name = "ES256")]
    Es256,
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "EdDSA")]
    EdDsa,
}

impl AlgorithmArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }
}

pub async fn run(api: &Api, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List => {
            let listed = api.client.get("/api/v1/keys").await?;
            if api.json {
                return print_json(&listed["items"]);
            }
            print_keys(&listed);
            Ok(())
        }
        KeysCommand::Rotate { algorithm } => {
            let body = match algorithm {
                Some(a) => json!({"algorithm": a.as_str()}),
                None => json!({}),
            };
            let rotated = api.client.post("/api/v1/keys/rotate", &body).await?;
            if api.json {
                return print_json(&rotated["items"]);
            }
            outln!("Rotated. The keys replaced stay in the JWKS for 24 hours.\n");
            print_keys(&rotated);
            Ok(())
        }
    }
}

/// The `items` of a key list as a table.
fn print_keys(list: &Value) {
    let rows = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            vec![
                text(k, "kid"),
                text(k, "algorithm"),
                text(k, "status"),
                text(k, "created_at"),
                text(k, "retired_at"),
                text(k, "published_until"),
            ]
        })
        .collect();
    print_table(
        &[
            "KID",
            "ALGORITHM",
            "STATUS",
            "CREATED",
            "RETIRED",
            "PUBLISHED UNTIL",
        ],
        rows,
    );
}
