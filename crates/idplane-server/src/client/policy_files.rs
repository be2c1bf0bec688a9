//! A policy bundle as files in a directory, the way it lives in git:
//!
//! ```text
//! policy/
//!   schemas/Todo.cedarschema   one per application namespace (file stem)
//!   policies/*.cedar           every policy with an @id annotation
//!   tests/*.json               a JSON array of tests (or one test) per file
//!   settings.json              optional: {"decision_log": {"allow_sample_rate": 1.0}}
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::Context;
use idplane_app::policy::bundle::{DecisionLogSettings, PolicyBundle};
use idplane_app::policy::tests::PolicyTest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    decision_log: DecisionLogSettings,
}

/// Reads the bundle under `dir`.
pub fn read(dir: &Path) -> anyhow::Result<PolicyBundle> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let schemas = files(&dir.join("schemas"), "cedarschema")?;
    let policies = files(&dir.join("policies"), "cedar")?
        .into_iter()
        .map(|(stem, text)| (format!("{stem}.cedar"), text))
        .collect();
    let mut tests = Vec::new();
    for (stem, text) in files(&dir.join("tests"), "json")? {
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("tests/{stem}.json"))?;
        let parsed: Vec<PolicyTest> = match value {
            Value::Array(_) => serde_json::from_value(value),
            one => serde_json::from_value(one).map(|t| vec![t]),
        }
        .with_context(|| format!("tests/{stem}.json"))?;
        tests.extend(parsed);
    }
    let settings_path = dir.join("settings.json");
    let settings: Settings = if settings_path.exists() {
        let text = fs::read_to_string(&settings_path)
            .with_context(|| format!("cannot read {}", settings_path.display()))?;
        serde_json::from_str(&text).context("settings.json")?
    } else {
        Settings::default()
    };
    Ok(PolicyBundle {
        schemas,
        policies,
        tests,
        decision_log: settings.decision_log,
    })
}

/// Writes `bundle` under `dir` in the layout [`read`] takes.
pub fn write(bundle: &PolicyBundle, dir: &Path) -> anyhow::Result<()> {
    let put = |path: &Path, text: &str| -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    for (namespace, text) in &bundle.schemas {
        put(
            &dir.join("schemas").join(format!("{namespace}.cedarschema")),
            text,
        )?;
    }
    for (name, text) in &bundle.policies {
        let name = if name.ends_with(".cedar") {
            name.clone()
        } else {
            format!("{name}.cedar")
        };
        put(&dir.join("policies").join(name), text)?;
    }
    if !bundle.tests.is_empty() {
        put(
            &dir.join("tests").join("tests.json"),
            &serde_json::to_string_pretty(&bundle.tests)?,
        )?;
    }
    let settings = Settings {
        decision_log: bundle.decision_log.clone(),
    };
    put(
        &dir.join("settings.json"),
        &serde_json::to_string_pretty(&settings)?,
    )
}

/// The files with `extension` directly in `dir` (none if it is absent),
/// by file stem, in name order.
fn files(dir: &Path, extension: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(extension) {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("{} is not a UTF-8 name", path.display()))?
            .to_owned();
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        out.insert(stem, text);
    }
    Ok(out)
}
