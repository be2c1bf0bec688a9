//! Impact analysis: replay requests against the live version and a proposed
//! one and report every decision that would flip, grouped by the policy
//! that makes the difference. Nothing is logged or stored.

use std::collections::BTreeMap;

use idplane_core::Ctx;
use idplane_store::audit::{self, AuditFilter};
use jiff::SignedDuration;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::authzen::Evaluation;
use super::bundle::{PolicyBundle, compile};
use idplane_core::audit::DECISION_ACTION;

use super::decisions::BATCH_ENTRIES;
use super::engine::{Decided, Engine};
use super::tests::{self, TestFailure};
use crate::{App, AppError, Result};

/// Most requests replayed in one analysis.
pub const MAX_REPLAYED: usize = 10_000;
/// How far back the decision log is replayed when no requests are given.
pub const LOG_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// One side of a flip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Outcome {
    pub decision: bool,
    pub policies: Vec<String>,
    pub errors: Vec<String>,
}

impl From<Decided> for Outcome {
    fn from(d: Decided) -> Self {
        Self {
            decision: d.allowed,
            policies: d.policies,
            errors: d.errors,
        }
    }
}

/// A request whose decision would change.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Flip {
    pub request: Evaluation,
    pub live: Outcome,
    pub proposed: Outcome,
}

/// What a proposed version would change.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Impact {
    /// The live version compared against (`None`: nothing is active, so
    /// everything is denied today).
    pub live_version: Option<i64>,
    /// Requests replayed.
    pub replayed: usize,
    /// Requests that could not be evaluated under one of the versions.
    pub unevaluable: usize,
    pub flips: Vec<Flip>,
    /// Flips counted by the policy that makes the difference: the
    /// determining policies of whichever side allows (or forbids).
    pub by_policy: BTreeMap<String, usize>,
    /// The proposed version's own tests that fail.
    pub test_failures: Vec<TestFailure>,
}

impl App {
    /// Compares `proposed` with the live version over `requests`, or over
    /// the recent decision log when none are given.
    pub async fn policy_impact(
        &self,
        ctx: &Ctx,
        proposed: &PolicyBundle,
        requests: Option<Vec<Evaluation>>,
    ) -> Result<Impact> {
        let compiled = compile(proposed)
            .map_err(|e| idplane_core::ValidationError::new("policies", e.to_string()))?;
        let test_failures = tests::run(&compiled, &proposed.tests);
        let candidate = Engine::new(0, compiled)?;
        let requests = match requests {
            Some(r) => r,
            None => self.logged_requests(ctx).await?,
        };
        if requests.len() > MAX_REPLAYED {
            return Err(idplane_core::ValidationError::new(
                "requests",
                format!("at most {MAX_REPLAYED} requests"),
            )
            .into());
        }
        let live = self.policy_engine(ctx).await?;
        let mut impact = Impact {
            live_version: live.as_ref().map(|e| e.version),
            replayed: requests.len(),
            unevaluable: 0,
            flips: Vec::new(),
            by_policy: BTreeMap::new(),
            test_failures,
        };
        for request in requests {
            let now = match &live {
                Some(engine) => self.decide_with(ctx, engine, &request).await?,
                None => Ok(default_deny()),
            };
            let then = self.decide_with(ctx, &candidate, &request).await?;
            let (Ok(now), Ok(then)) = (now, then) else {
                impact.unevaluable += 1;
                continue;
            };
            if now.allowed == then.allowed {
                continue;
            }
            let deciding = if then.policies.is_empty() {
                &now.policies
            } else {
                &then.policies
            };
            for policy in deciding {
                *impact.by_policy.entry(policy.clone()).or_default() += 1;
            }
            if deciding.is_empty() {
                *impact
                    .by_policy
                    .entry("(default deny)".to_owned())
                    .or_default() += 1;
            }
            impact.flips.push(Flip {
                request,
                live: now.into(),
                proposed: then.into(),
            });
        }
        Ok(impact)
    }

    /// The requests of the decision log's last [`LOG_WINDOW`].
    async fn logged_requests(&self, ctx: &Ctx) -> Result<Vec<Evaluation>> {
        let filter = AuditFilter {
            action: Some(DECISION_ACTION.to_owned()),
            since: Some(ctx.now - LOG_WINDOW),
            limit: u32::try_from(MAX_REPLAYED).unwrap_or(u32::MAX),
            ..AuditFilter::default()
        };
        let mut conn = self.store().read().await?;
        let records = audit::query(&mut conn, ctx.tenant, &filter).await?;
        records
            .iter()
            .flat_map(|r| logged_entries(&r.event.details))
            .filter_map(|entry| entry.get("request").cloned())
            .take(MAX_REPLAYED)
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| AppError::Internal(format!("logged decision request: {e}")))
            })
            .collect()
    }
}

/// The decisions one logged event holds: itself, or a batch's entries.
fn logged_entries(details: &Value) -> Vec<&Value> {
    match details.get(BATCH_ENTRIES).and_then(Value::as_array) {
        Some(entries) => entries.iter().collect(),
        None => vec![details],
    }
}

fn default_deny() -> Decided {
    Decided {
        allowed: false,
        version: None,
        policies: Vec::new(),
        errors: Vec::new(),
        note: None,
    }
}
