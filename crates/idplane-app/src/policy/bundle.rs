//! A policy bundle: what one policy version holds (the applications'
//! schemas, the policies, the tests), and its compilation into something
//! that decides. Compilation is strict: every policy must parse, carry a
//! unique `@id`, and validate against the schema in Cedar's strict mode.
//! Pure: no I/O, so `idplane policy test` runs it on files. Cedar reads
//! the text on a deep stack, after a bound on its nesting ([`super::nesting`]).

use std::collections::BTreeMap;
use std::str::FromStr;

use cedar_policy::{PolicyId, PolicySet, Schema, SchemaFragment, ValidationMode, Validator};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::directory_schema::{DIRECTORY_NAMESPACE, directory_fragment};
use super::index::IndexedPolicies;
use super::nesting::{self, on_deep_stack};
use super::shapes::Shapes;

/// Most policies in one bundle.
pub const MAX_POLICIES: usize = 20_000;
/// Most tests in one bundle.
pub const MAX_TESTS: usize = 5_000;
/// Most bytes of Cedar text (all policy files and schemas together; the
/// HTTP body limit is the same).
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// The contents of one policy version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBundle {
    /// One schema per application, in Cedar schema syntax, keyed by the
    /// application's namespace (the schema declares exactly that namespace).
    /// The directory's own types live in the reserved `Idplane` namespace.
    #[serde(default)]
    pub schemas: BTreeMap<String, String>,
    /// Policy files: a name (e.g. `todo.cedar`) to Cedar policy text.
    #[serde(default)]
    pub policies: BTreeMap<String, String>,
    /// Requests with the decision they must get; all must pass.
    #[serde(default)]
    pub tests: Vec<super::tests::PolicyTest>,
    /// How allowed decisions are logged (denies always are).
    #[serde(default)]
    pub decision_log: DecisionLogSettings,
}

/// Sampling of allowed decisions in the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogSettings {
    /// The share of allowed decisions written to the audit log, 0 to 1.
    pub allow_sample_rate: f64,
}

impl Default for DecisionLogSettings {
    fn default() -> Self {
        Self {
            allow_sample_rate: 0.01,
        }
    }
}

/// Why a bundle was refused: every problem found, each on its own line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct BundleError {
    pub problems: Vec<String>,
}

impl BundleError {
    fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }

    /// Cedar could not be given its deep stack.
    pub(super) fn no_thread(e: &std::io::Error) -> Self {
        Self::one(format!(
            "cannot start a thread to read the policies on: {e}"
        ))
    }
}

/// A bundle ready to decide with.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub schema: Schema,
    pub policies: IndexedPolicies,
    /// The applications' primitive-only entity types, built without
    /// Cedar's JSON parser.
    pub shapes: Shapes,
    /// The application namespaces, without the directory's.
    pub namespaces: Vec<String>,
    pub decision_log: DecisionLogSettings,
}

/// Compiles a bundle: schemas merged with the directory's, policies parsed,
/// re-identified by their `@id` and validated strictly. Tests are not run
/// here (see [`super::tests::run`]).
pub fn compile(bundle: &PolicyBundle) -> Result<Compiled, BundleError> {
    on_deep_stack(|| compile_here(bundle)).map_err(|e| BundleError::no_thread(&e))?
}

fn compile_here(bundle: &PolicyBundle) -> Result<Compiled, BundleError> {
    check_bounds(bundle)?;
    let schema = compile_schema(&bundle.schemas)?;
    let policies = compile_policies(&bundle.policies)?;
    let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    if !validation.validation_passed() {
        return Err(BundleError {
            problems: validation
                .validation_errors()
                .map(|e| format!("policy `{}`: {e}", e.policy_id()))
                .collect(),
        });
    }
    Ok(Compiled {
        policies: IndexedPolicies::new(policies),
        shapes: Shapes::from_schemas(&bundle.schemas),
        schema,
        namespaces: bundle.schemas.keys().cloned().collect(),
        decision_log: bundle.decision_log.clone(),
    })
}

fn check_bounds(bundle: &PolicyBundle) -> Result<(), BundleError> {
    let bytes: usize = bundle
        .schemas
        .values()
        .chain(bundle.policies.values())
        .map(String::len)
        .sum();
    if bytes > MAX_SOURCE_BYTES {
        return Err(BundleError::one(format!(
            "the bundle's Cedar text is {bytes} bytes; at most {MAX_SOURCE_BYTES}"
        )));
    }
    if bundle.tests.len() > MAX_TESTS {
        return Err(BundleError::one(format!("at most {MAX_TESTS} tests")));
    }
    let rate = bundle.decision_log.allow_sample_rate;
    if !(0.0..=1.0).contains(&rate) {
        return Err(BundleError::one(
            "decision_log.allow_sample_rate must be between 0 and 1",
        ));
    }
    Ok(())
}

/// The directory's schema fragment plus one fragment per application,
/// each declaring exactly its own namespace.
fn compile_schema(schemas: &BTreeMap<String, String>) -> Result<Schema, BundleError> {
    let mut problems = Vec::new();
    let mut fragments = vec![directory_fragment()];
    for (namespace, text) in schemas {
        if namespace == DIRECTORY_NAMESPACE {
            problems.push(format!(
                "schema `{namespace}`: the namespace is reserved for the directory"
            ));
            continue;
        }
        if let Err(e) = nesting::check(text) {
            problems.push(format!("schema `{namespace}`: {e}"));
            continue;
        }
        match SchemaFragment::from_cedarschema_str(text) {
            Ok((fragment, _warnings)) => {
                let declared: Vec<String> = fragment
                    .namespaces()
                    .map(|ns| ns.map_or_else(String::new, |ns| ns.to_string()))
                    .collect();
                if declared != [namespace.as_str()] {
                    problems.push(format!(
                        "schema `{namespace}`: must declare exactly `namespace {namespace} {{ ... }}`, found {declared:?}"
                    ));
                } else {
                    fragments.push(fragment);
                }
            }
            Err(e) => problems.push(format!("schema `{namespace}`: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(BundleError { problems });
    }
    Schema::from_schema_fragments(fragments).map_err(|e| BundleError::one(format!("schema: {e}")))
}

/// Every file's policies, each renamed to its `@id` annotation. Call it
/// on a deep stack, as [`compile`] does.
pub(super) fn compile_policies(files: &BTreeMap<String, String>) -> Result<PolicySet, BundleError> {
    let mut problems = Vec::new();
    let mut set = PolicySet::new();
    for (file, text) in files {
        if let Err(e) = nesting::check(text) {
            problems.push(format!("{file}: {e}"));
            continue;
        }
        let parsed = match PolicySet::from_str(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                problems.push(format!("{file}: {e}"));
                continue;
            }
        };
        if parsed.templates().next().is_some() {
            problems.push(format!(
                "{file}: templates are not supported; write policies"
            ));
        }
        for policy in parsed.policies() {
            let Some(id) = policy.annotation("id") else {
                problems.push(format!(
                    "{file}: a policy has no @id(\"...\") annotation: {}",
                    first_line(&policy.to_string())
                ));
                continue;
            };
            if let Err(e) = set.add(policy.new_id(PolicyId::new(id))) {
                problems.push(format!("{file}: policy `{id}`: {e}"));
            }
        }
    }
    if set.policies().count() > MAX_POLICIES {
        problems.push(format!("at most {MAX_POLICIES} policies"));
    }
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(BundleError { problems })
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
}
