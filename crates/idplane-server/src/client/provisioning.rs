//! `idplane provisioning`: connected applications that idplane pushes
//! users and groups to over SCIM, and reconciliation against them.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Map, Value, json};

use super::api::Api;
use super::http::encode;
use super::output::{print_json, print_table, text};
use crate::client::output::outln;

#[derive(Debug, Subcommand)]
pub enum ProvisioningCommand {
    /// Connected applications: create, list, delete.
    Target {
        #[command(subcommand)]
        command: TargetCommand,
    },
    /// Compare what an application holds with what idplane would push.
    Reconcile {
        /// The target's name or id.
        name: String,
        /// Push the drifted users again.
        #[arg(long)]
        fix: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TargetCommand {
    /// Connect an application.
    Create {
        name: String,
        /// Its SCIM base URL, e.g. https://app.example.com/scim/v2.
        #[arg(long)]
        url: String,
        /// A file holding the bearer token idplane presents (`-`: stdin).
        /// Kept off the command line, where other users could read it.
        #[arg(long, value_name = "PATH")]
        token_file: PathBuf,
        /// Push only the transitive members of this group (every user otherwise).
        #[arg(long)]
        group: Option<String>,
        /// Push users only, not groups.
        #[arg(long)]
        no_groups: bool,
        /// An attribute mapping entry, TARGET=SOURCE (repeatable; replaces
        /// the default mapping), e.g.
        /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department=attributes.department`.
        #[arg(long = "map", value_name = "TARGET=SOURCE")]
        map: Vec<String>,
    },
    /// List the connected applications.
    List,
    /// Disconnect an application (nothing is deleted there).
    Delete {
        /// The target's name or id.
        name: String,
    },
}

pub async fn run(api: &Api, command: ProvisioningCommand) -> anyhow::Result<()> {
    match command {
        ProvisioningCommand::Target { command } => target(api, command).await,
        ProvisioningCommand::Reconcile { name, fix } => {
            let path = format!(
                "/provisioning/targets/{}/reconcile?fix={fix}",
                encode(&name)
            );
            let report = api.client.post(&api.path(&path), &json!({})).await?;
            if api.json {
                return print_json(&report);
            }
            print_report(&report);
            Ok(())
        }
    }
}

async fn target(api: &Api, command: TargetCommand) -> anyhow::Result<()> {
    match command {
        TargetCommand::Create {
            name,
            url,
            token_file,
            group,
            no_groups,
            map,
        } => {
            let mut body = json!({
                "name": name,
                "base_url": url,
                "token": read_token(&token_file)?,
                "push_groups": !no_groups,
            });
            if let Some(group) = group {
                body["group"] = json!(group);
            }
            if !map.is_empty() {
                body["mapping"] = Value::Object(parse_mapping(&map)?);
            }
            let created = api
                .client
                .post(&api.path("/provisioning/targets"), &body)
                .await?;
            if api.json {
                return print_json(&created);
            }
            outln!(
                "Connected {} ({}).",
                text(&created, "name"),
                text(&created, "id")
            );
            Ok(())
        }
        TargetCommand::List => {
            let listed = api.client.get(&api.path("/provisioning/targets")).await?;
            if api.json {
                return print_json(&listed["items"]);
            }
            let rows = listed["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        text(t, "name"),
                        text(t, "base_url"),
                        t["group"].as_str().unwrap_or("(every user)").to_owned(),
                        text(t, "push_groups"),
                        text(t, "id"),
                    ]
                })
                .collect();
            print_table(&["NAME", "URL", "GROUP", "GROUPS", "ID"], rows);
            Ok(())
        }
        TargetCommand::Delete { name } => {
            let path = format!("/provisioning/targets/{}", encode(&name));
            api.client.delete(&api.path(&path)).await?;
            if !api.json {
                outln!("Disconnected {name}.");
            }
            Ok(())
        }
    }
}

fn read_token(path: &PathBuf) -> anyhow::Result<String> {
    let mut token = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut token)
            .context("reading the token from stdin")?;
    } else {
        token = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token from {}", path.display()))?;
    }
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("the token file is empty");
    }
    Ok(token)
}

/// `TARGET=SOURCE` pairs; the target path may itself contain `:` but not `=`.
fn parse_mapping(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for pair in pairs {
        let Some((target, source)) = pair.split_once('=') else {
            bail!("--map {pair:?}: expected TARGET=SOURCE");
        };
        if map
            .insert(target.trim().to_owned(), json!(source.trim()))
            .is_some()
        {
            bail!("--map: `{target}` is mapped twice");
        }
    }
    Ok(map)
}

fn print_report(report: &Value) {
    let count = |key: &str| report[key].as_array().map_or(0, Vec::len);
    outln!(
        "{}: {} users there; {} missing, {} not idplane's, {} different.",
        text(report, "target"),
        text(report, "remote_users"),
        count("missing"),
        count("unknown"),
        count("different"),
    );
    let mut rows = Vec::new();
    for m in report["missing"].as_array().into_iter().flatten() {
        rows.push(vec!["missing".into(), text(m, "user_name"), String::new()]);
    }
    for d in report["different"].as_array().into_iter().flatten() {
        let attrs: Vec<&str> = d["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        rows.push(vec![
            "different".into(),
            text(d, "user_name"),
            attrs.join(", "),
        ]);
    }
    for u in report["unknown"].as_array().into_iter().flatten() {
        rows.push(vec![
            "unknown".into(),
            text(u, "user_name"),
            text(u, "remote_id"),
        ]);
    }
    if !rows.is_empty() {
        print_table(&["DRIFT", "USER", "DETAIL"], rows);
    }
    if let Some(n) = report["pushes_scheduled"].as_u64().filter(|n| *n > 0) {
        outln!("Scheduled {n} push(es) to repair it.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_pairs_split_at_the_first_equals_sign() {
        let m = parse_mapping(&[
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department=attributes.department".into(),
            "title = attributes.title".into(),
        ])
        .unwrap();
        assert_eq!(
            m["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"],
            "attributes.department"
        );
        assert_eq!(m["title"], "attributes.title");
        assert!(parse_mapping(&["title".into()]).is_err());
        assert!(parse_mapping(&["a=b".into(), "a=c".into()]).is_err());
    }
}
