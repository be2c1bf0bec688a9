//! `idplane hr import`: send an HR snapshot (CSV) with its column mapping
//! (TOML) and print the plan; `idplane report leavers`: how soon each
//! leaver's account closed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use idplane_app::lifecycle::hr::HrMapping;
use reqwest::StatusCode;
use serde_json::Value;

use super::api::Api;
use super::http::with_query;
use super::output::{outln, print_json, print_table, text};

#[derive(Debug, Subcommand)]
pub enum HrCommand {
    /// Import the whole workforce from a CSV snapshot: joiners, movers,
    /// leavers and rehires, in one transaction, all or nothing.
    Import {
        /// The CSV file (UTF-8, with a header row).
        file: PathBuf,
        /// The column mapping (TOML), e.g. `employee_id = "Employee ID"`.
        #[arg(long)]
        mapping: PathBuf,
        /// Print the plan without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Apply even when the leavers exceed the tenant's share.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Leavers: HR termination, receipt, deprovisioning and the time it took.
    Leavers {
        /// RFC 3339: leavers received at or after this (default: 30 days).
        #[arg(long)]
        since: Option<jiff::Timestamp>,
    },
}

/// Reads a mapping file.
fn read_mapping(path: &Path) -> anyhow::Result<HrMapping> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the mapping {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("the mapping {} is invalid", path.display()))
}

/// Runs `idplane hr`; returns whether the import went through.
pub async fn run(api: &Api, command: HrCommand) -> anyhow::Result<bool> {
    let HrCommand::Import {
        file,
        mapping,
        dry_run,
        force,
    } = command;
    let mapping = read_mapping(&mapping)?;
    let csv = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let path = with_query(
        &api.path("/hr/imports"),
        &[
            ("mapping", Some(serde_json::to_string(&mapping)?)),
            ("dry_run", Some(dry_run.to_string())),
            ("force", Some(force.to_string())),
        ],
    );
    let (outcome, _) = api
        .client
        .post_raw(&path, "text/csv", csv, &[StatusCode::UNPROCESSABLE_ENTITY])
        .await?;
    let refused = outcome["plan"]["refused"].as_str().map(str::to_owned);
    if api.json {
        print_json(&outcome)?;
    } else {
        print_plan(&outcome, dry_run);
    }
    match refused {
        Some(reason) if !api.json => bail!("{reason}"),
        Some(_) => Ok(false),
        None => Ok(true),
    }
}

fn print_plan(outcome: &Value, dry_run: bool) {
    let plan = &outcome["plan"];
    let count = |key: &str| plan[key].as_array().map_or(0, Vec::len);
    outln!(
        "{} rows: {} joiners, {} movers, {} leavers, {} rehires, {} unchanged, {} errors",
        text(plan, "rows"),
        count("joiners"),
        count("movers"),
        count("leavers"),
        count("rehires"),
        text(plan, "unchanged"),
        count("errors"),
    );
    let list = |key: &str| plan[key].as_array().cloned().unwrap_or_default();
    for (title, key) in [("Joiners", "joiners"), ("Rehires", "rehires")] {
        let rows: Vec<Vec<String>> = list(key)
            .iter()
            .map(|j| {
                vec![
                    text(j, "employee_id"),
                    text(j, "username"),
                    text(j, "user_type"),
                    text(j, "start_date"),
                    join(&j["gains"]),
                ]
            })
            .collect();
        if !rows.is_empty() {
            outln!("\n{title}:");
            print_table(&["EMPLOYEE", "USERNAME", "TYPE", "STARTS", "GAINS"], rows);
        }
    }
    let movers: Vec<Vec<String>> = list("movers")
        .iter()
        .map(|m| {
            vec![
                text(m, "employee_id"),
                text(m, "username"),
                join(&m["changed"]),
                join(&m["gains"]),
                join(&m["losses"]),
            ]
        })
        .collect();
    if !movers.is_empty() {
        outln!("\nMovers:");
        print_table(
            &["EMPLOYEE", "USERNAME", "CHANGED", "GAINS", "LOSES"],
            movers,
        );
    }
    let leavers: Vec<Vec<String>> = list("leavers")
        .iter()
        .map(|l| {
            vec![
                text(l, "employee_id"),
                text(l, "username"),
                text(l, "reason"),
                text(l, "termination"),
            ]
        })
        .collect();
    if !leavers.is_empty() {
        outln!("\nLeavers:");
        print_table(&["EMPLOYEE", "USERNAME", "REASON", "TERMINATION"], leavers);
    }
    let errors: Vec<Vec<String>> = list("errors")
        .iter()
        .map(|e| vec![text(e, "line"), text(e, "employee_id"), text(e, "message")])
        .collect();
    if !errors.is_empty() {
        outln!("\nErrors:");
        print_table(&["LINE", "EMPLOYEE", "ERROR"], errors);
    }
    if outcome["applied"].as_bool() == Some(true) {
        outln!("\nApplied (import {}).", text(outcome, "import_id"));
    } else if dry_run && plan.get("refused").is_none() {
        outln!("\nDry run: nothing was changed.");
    }
}

fn join(list: &Value) -> String {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// Runs `idplane report`.
pub async fn report(api: &Api, command: ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Leavers { since } = command;
    let path = with_query(
        &api.path("/reports/leavers"),
        &[("since", since.map(|s| s.to_string()))],
    );
    let report = api.client.get(&path).await?;
    if api.json {
        return print_json(&report);
    }
    let rows: Vec<Vec<String>> = report
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let elapsed = r["elapsed_seconds"].as_i64().map_or_else(
                || "not yet".to_owned(),
                |s| format!("{:.1} h", s as f64 / 3600.0),
            );
            vec![
                text(r, "employee_id"),
                text(r, "username"),
                text(r, "terminated_at"),
                text(r, "received_at"),
                text(r, "deprovisioned_at"),
                elapsed,
                if r["over_24h"].as_bool() == Some(true) {
                    "OVER 24 H".to_owned()
                } else {
                    "same day".to_owned()
                },
            ]
        })
        .collect();
    print_table(
        &[
            "EMPLOYEE",
            "USERNAME",
            "TERMINATED",
            "RECEIVED",
            "DEPROVISIONED",
            "ELAPSED",
            "",
        ],
        rows,
    );
    Ok(())
}
