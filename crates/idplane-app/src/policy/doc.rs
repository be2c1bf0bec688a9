//! Documentation generated from the policies themselves: their `@id`,
//! `@description` and `@owner` annotations, their text, the schemas and the
//! tests, as Markdown. Generated from what runs, so it cannot drift.

use std::fmt::Write as _;

use cedar_policy::Effect;

use super::bundle::{BundleError, PolicyBundle, compile_policies};
use super::directory_schema::DIRECTORY_SCHEMA;
use super::nesting::on_deep_stack;

/// Renders `bundle` as Markdown under `title`.
pub fn render(bundle: &PolicyBundle, title: &str) -> Result<String, BundleError> {
    // Cedar's printer recurses as its parser does.
    on_deep_stack(|| render_here(bundle, title)).map_err(|e| BundleError::no_thread(&e))?
}

fn render_here(bundle: &PolicyBundle, title: &str) -> Result<String, BundleError> {
    let policies = compile_policies(&bundle.policies)?;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# {title}\n");
    let (permits, forbids) = policies
        .policies()
        .partition::<Vec<_>, _>(|p| p.effect() == Effect::Permit);
    let _ = writeln!(
        out,
        "{} policies ({} permit, {} forbid), {} tests, applications: {}.\n",
        permits.len() + forbids.len(),
        permits.len(),
        forbids.len(),
        bundle.tests.len(),
        if bundle.schemas.is_empty() {
            "none".to_owned()
        } else {
            bundle
                .schemas
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(out, "## Policies\n");
    let mut all: Vec<_> = policies.policies().collect();
    all.sort_by_key(|p| p.id().to_string());
    for policy in all {
        let effect = match policy.effect() {
            Effect::Permit => "permit",
            Effect::Forbid => "forbid",
        };
        let _ = writeln!(out, "### `{}` ({effect})\n", policy.id());
        for (key, value) in policy.annotations() {
            if key != "id" {
                let _ = writeln!(out, "- **{key}**: {value}");
            }
        }
        let _ = writeln!(out, "\n```cedar\n{}\n```\n", policy.to_string().trim());
    }
    let _ = writeln!(out, "## Schemas\n");
    let _ = writeln!(
        out,
        "### `Idplane` (the directory)\n\n```cedarschema\n{}```\n",
        DIRECTORY_SCHEMA
    );
    for (namespace, text) in &bundle.schemas {
        let _ = writeln!(
            out,
            "### `{namespace}`\n\n```cedarschema\n{}\n```\n",
            text.trim()
        );
    }
    if !bundle.tests.is_empty() {
        let _ = writeln!(out, "## Tests\n");
        let _ = writeln!(out, "| test | principal | action | resource | expect |");
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for t in &bundle.tests {
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | `{}` | {:?} |",
                t.name.replace('|', "\\|"),
                t.principal,
                t.action,
                t.resource,
                t.expect
            );
        }
    }
    Ok(out)
}
