//! The OpenID AuthZEN Authorization API 1.0 request and response bodies.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Most evaluations in one `evaluations` request (advertised in the
/// metadata document).
pub const MAX_EVALUATIONS: usize = 256;

/// A subject or resource: `{type, id, properties}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
}

/// `{name, properties}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub name: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
}

/// `POST /access/v1/evaluation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    pub subject: Entity,
    pub action: Action,
    pub resource: Entity,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
}

/// One item of a batch: whatever it gives overrides the batch's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartialEvaluation {
    pub subject: Option<Entity>,
    pub action: Option<Action>,
    pub resource: Option<Entity>,
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// How a batch is evaluated (AuthZEN `evaluations_semantic`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Semantic {
    /// Every evaluation, in order.
    #[default]
    ExecuteAll,
    /// Stop after the first deny.
    DenyOnFirstDeny,
    /// Stop after the first permit.
    PermitOnFirstPermit,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Options {
    #[serde(default)]
    pub evaluations_semantic: Semantic,
}

/// `POST /access/v1/evaluations`: defaults at the top level, items in
/// `evaluations`. Without items it is a single evaluation of the defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evaluations {
    pub subject: Option<Entity>,
    pub action: Option<Action>,
    pub resource: Option<Entity>,
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    pub evaluations: Option<Vec<PartialEvaluation>>,
    pub options: Option<Options>,
}

impl Evaluations {
    /// The batch's items with the defaults filled in; an item missing a
    /// part that has no default is an error naming it.
    pub fn resolve(&self) -> Vec<Result<Evaluation, String>> {
        let items = match &self.evaluations {
            Some(items) if !items.is_empty() => items.clone(),
            _ => vec![PartialEvaluation::default()],
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let missing = |part: &str| format!("evaluations[{i}]: no {part} and no default");
                Ok(Evaluation {
                    subject: item
                        .subject
                        .or_else(|| self.subject.clone())
                        .ok_or_else(|| missing("subject"))?,
                    action: item
                        .action
                        .or_else(|| self.action.clone())
                        .ok_or_else(|| missing("action"))?,
                    resource: item
                        .resource
                        .or_else(|| self.resource.clone())
                        .ok_or_else(|| missing("resource"))?,
                    context: item
                        .context
                        .or_else(|| self.context.clone())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// An evaluation's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvaluationResponse {
    pub decision: bool,
    /// Present when the request could not be evaluated: `{"error": ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
}

/// The answer to a batch, in the order of its items (shorter when a
/// semantic other than `execute_all` stopped early).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsResponse {
    pub evaluations: Vec<EvaluationResponse>,
}
