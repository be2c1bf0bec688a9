//! `idplane policy`: policy as code. `test` and `doc DIR` run locally on
//! files (for CI pipelines); the rest drive a server's policy API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use idplane_app::policy::{bundle, doc, tests};
use serde_json::{Value, json};

use super::api::Api;
use super::output::{outln, print_json, print_table, text};
use super::policy_files;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compile a policy directory strictly and run its tests, locally.
    Test {
        /// The directory (schemas/, policies/, tests/).
        dir: PathBuf,
    },
    /// Push a policy directory as the next version; it becomes active if it
    /// validates and its tests pass.
    Push {
        dir: PathBuf,
        /// What changed and why (kept with the version).
        #[arg(long, short)]
        message: String,
    },
    /// List versions, newest first.
    Versions,
    /// Show a version (the active one by default).
    Show {
        #[arg(value_name = "VERSION")]
        number: Option<i64>,
    },
    /// Write a version (the active one by default) into a directory.
    Pull {
        dir: PathBuf,
        #[arg(value_name = "VERSION")]
        number: Option<i64>,
    },
    /// Make a version active again (roll back).
    Activate {
        #[arg(value_name = "VERSION")]
        number: i64,
    },
    /// Which decisions a policy directory would flip, against the live
    /// version: over the last day's decision log, or the requests in a file.
    Diff {
        dir: PathBuf,
        /// A JSON array of AuthZEN evaluation requests.
        #[arg(long)]
        requests: Option<PathBuf>,
    },
    /// Decide an AuthZEN evaluation request (a JSON file) and explain it.
    Explain { request: PathBuf },
    /// Markdown documentation of a policy directory, or of the live policy.
    Doc { dir: Option<PathBuf> },
}

pub async fn run(conn: &super::Connection, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Test { dir } => return test(&dir),
        PolicyCommand::Doc { dir: Some(dir) } => {
            let bundle = policy_files::read(&dir)?;
            let title = format!("Authorization policy ({})", dir.display());
            outln!("{}", doc::render(&bundle, &title)?);
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let api = Api::new(conn)?;
    match command {
        // Answered locally above, without a server.
        PolicyCommand::Test { .. } | PolicyCommand::Doc { dir: Some(_) } => {}
        PolicyCommand::Doc { dir: None } => {
            let markdown = api.client.get(&api.path("/policy/doc")).await?;
            outln!("{}", markdown.as_str().unwrap_or_default());
        }
        PolicyCommand::Push { dir, message } => {
            let bundle = policy_files::read(&dir)?;
            let body = json!({"message": message, "bundle": bundle});
            let pushed = api
                .client
                .post(&api.path("/policy/versions"), &body)
                .await?;
            if api.json {
                return print_json(&pushed).map(|()| ExitCode::SUCCESS);
            }
            outln!("Version {} is active.", text(&pushed, "version"));
        }
        PolicyCommand::Versions => {
            let listed = api.client.get(&api.path("/policy/versions")).await?;
            if api.json {
                return print_json(&listed).map(|()| ExitCode::SUCCESS);
            }
            let rows = listed
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    ["version", "created_at", "author", "message"]
                        .map(|k| text(v, k))
                        .to_vec()
                })
                .collect();
            print_table(&["VERSION", "CREATED", "AUTHOR", "MESSAGE"], rows);
        }
        PolicyCommand::Show { number } => {
            let shown = api.client.get(&api.path(&version_path(number))).await?;
            if api.json {
                return print_json(&shown).map(|()| ExitCode::SUCCESS);
            }
            let count = |k: &str| shown["bundle"][k].as_object().map_or(0, |m| m.len());
            outln!(
                "Version {}{} by {} at {}: {}\n{} policy files, {} schemas, {} tests.",
                text(&shown, "version"),
                if shown["active"] == true {
                    " (active)"
                } else {
                    ""
                },
                text(&shown, "author"),
                text(&shown, "created_at"),
                text(&shown, "message"),
                count("policies"),
                count("schemas"),
                shown["bundle"]["tests"].as_array().map_or(0, Vec::len),
            );
        }
        PolicyCommand::Pull { dir, number } => {
            let shown = api.client.get(&api.path(&version_path(number))).await?;
            let bundle: bundle::PolicyBundle =
                serde_json::from_value(shown["bundle"].clone()).context("the server's bundle")?;
            policy_files::write(&bundle, &dir)?;
            outln!(
                "Wrote version {} to {}.",
                text(&shown, "version"),
                dir.display()
            );
        }
        PolicyCommand::Activate { number } => {
            let body = json!({"version": number});
            api.client
                .post(&api.path("/policy/activate"), &body)
                .await?;
            outln!("Version {number} is active.");
        }
        PolicyCommand::Diff { dir, requests } => {
            let bundle = policy_files::read(&dir)?;
            let requests = match requests {
                Some(path) => Some(read_json(&path)?),
                None => None,
            };
            let body = json!({"bundle": bundle, "requests": requests});
            let impact = api.client.post(&api.path("/policy/impact"), &body).await?;
            if api.json {
                return print_json(&impact).map(|()| ExitCode::SUCCESS);
            }
            print_impact(&impact);
        }
        PolicyCommand::Explain { request } => {
            let body = read_json(&request)?;
            let explained = api.client.post(&api.path("/policy/explain"), &body).await?;
            print_json(&explained)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn test(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let bundle = policy_files::read(dir)?;
    let compiled = match bundle::compile(&bundle) {
        Ok(compiled) => compiled,
        Err(e) => {
            outln!("invalid:\n{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let failures = tests::run(&compiled, &bundle.tests);
    for t in &bundle.tests {
        match failures.iter().find(|f| f.name == t.name) {
            Some(f) => outln!("FAIL  {}: {}", t.name, f.problem),
            None => outln!("ok    {}", t.name),
        }
    }
    outln!(
        "{} policies valid; {} of {} tests passed.",
        compiled.policies.policies().policies().count(),
        bundle.tests.len() - failures.len(),
        bundle.tests.len()
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn version_path(version: Option<i64>) -> String {
    match version {
        Some(v) => format!("/policy/versions/{v}"),
        None => "/policy".to_owned(),
    }
}

fn read_json(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn print_impact(impact: &Value) {
    let flips = impact["flips"].as_array().map_or(&[][..], Vec::as_slice);
    outln!(
        "Replayed {} requests against version {}: {} would flip, {} could not be evaluated.",
        text(impact, "replayed"),
        impact["live_version"]
            .as_i64()
            .map_or_else(|| "none".to_owned(), |v| v.to_string()),
        flips.len(),
        text(impact, "unevaluable"),
    );
    if let Some(by_policy) = impact["by_policy"].as_object() {
        for (policy, count) in by_policy {
            outln!("  {count:>5}  {policy}");
        }
    }
    for flip in flips {
        let r = &flip["request"];
        let word = |d: &Value| if d == true { "allow" } else { "deny" };
        outln!(
            "{} -> {}  {}:{} {} {}:{}",
            word(&flip["live"]["decision"]),
            word(&flip["proposed"]["decision"]),
            text(&r["subject"], "type"),
            text(&r["subject"], "id"),
            text(&r["action"], "name"),
            text(&r["resource"], "type"),
            text(&r["resource"], "id"),
        );
    }
    for failure in impact["test_failures"].as_array().into_iter().flatten() {
        outln!(
            "test FAIL {}: {}",
            text(failure, "name"),
            text(failure, "problem")
        );
    }
}
