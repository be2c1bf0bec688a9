//! Policy tests: a Cedar request, the entities it is decided over, and the
//! decision it must get. Hermetic (the entities are part of the test), so
//! they run the same on a laptop, in CI and on every policy change.

use std::str::FromStr;

use cedar_policy::{Context, Decision, Entities, EntityUid, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::bundle::Compiled;
use super::nesting::on_deep_stack;

/// The decision a test expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Allow,
    Deny,
}

/// One policy test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyTest {
    pub name: String,
    /// An entity uid, e.g. `Idplane::User::"alice"`.
    pub principal: String,
    /// e.g. `Todo::Action::"can_read_todos"`.
    pub action: String,
    pub resource: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub context: Value,
    /// Entities in Cedar's JSON format (`uid`, `attrs`, `parents`).
    #[serde(default = "empty_array")]
    #[schema(value_type = Vec<Object>)]
    pub entities: Value,
    pub expect: Expect,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn empty_array() -> Value {
    Value::Array(Vec::new())
}

/// A test that did not get its expected decision, or could not run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TestFailure {
    pub name: String,
    pub problem: String,
}

/// Runs every test against `compiled`; the failures, in order. On a deep
/// stack: Cedar reads a test's JSON recursively, and the body limit is all
/// that bounds its depth.
pub fn run(compiled: &Compiled, tests: &[PolicyTest]) -> Vec<TestFailure> {
    let run_all = || {
        tests
            .iter()
            .filter_map(|test| {
                run_one(compiled, test).err().map(|problem| TestFailure {
                    name: test.name.clone(),
                    problem,
                })
            })
            .collect()
    };
    on_deep_stack(run_all).unwrap_or_else(|e| {
        vec![TestFailure {
            name: "every test".to_owned(),
            problem: format!("cannot start a thread to run the tests on: {e}"),
        }]
    })
}

fn run_one(compiled: &Compiled, test: &PolicyTest) -> Result<(), String> {
    let uid = |what: &str, text: &str| {
        EntityUid::from_str(text).map_err(|e| format!("{what} `{text}`: {e}"))
    };
    let principal = uid("principal", &test.principal)?;
    let action = uid("action", &test.action)?;
    let resource = uid("resource", &test.resource)?;
    let schema = &compiled.schema;
    let context = Context::from_json_value(test.context.clone(), Some((schema, &action)))
        .map_err(|e| format!("context: {e}"))?;
    let request = Request::new(principal, action, resource, context, Some(schema))
        .map_err(|e| format!("request: {e}"))?;
    let entities = Entities::from_json_value(test.entities.clone(), Some(schema))
        .map_err(|e| format!("entities: {e}"))?;
    let response = compiled.policies.is_authorized(&request, &entities);
    let got = match response.decision() {
        Decision::Allow => Expect::Allow,
        Decision::Deny => Expect::Deny,
    };
    if got == test.expect {
        return Ok(());
    }
    let reasons: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(ToString::to_string)
        .collect();
    Err(format!(
        "expected {:?}, got {got:?} (determining policies {reasons:?}, errors {errors:?})",
        test.expect
    ))
}
