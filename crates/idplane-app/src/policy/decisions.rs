//! The decision API the AuthZEN endpoints call, and the decision log:
//! every deny, and a sample of allows, goes to the audit log with the
//! policy version and the determining policies. Log records are queued for
//! the group-commit writer rather than awaited, so a crash can lose the
//! records of the last moments' decisions (never a state change's).

use std::sync::Arc;

use idplane_core::Ctx;
use idplane_core::audit::{AuditEvent, DECISION_ACTION};
use serde_json::{Map, Value, json};

use super::authzen::{Action, Entity, Evaluation};
use super::authzen::{
    EvaluationResponse, Evaluations, EvaluationsResponse, MAX_EVALUATIONS, Semantic,
};
use super::directory_schema::DirectoryType;
use super::engine::{BadRequest, Decided, Engine, Prepared, Ready, decide};
use crate::{App, AppError, Result};
use idplane_store::Page;
use idplane_store::principals::PrincipalFilter;

/// Principals examined by one subject-search page.
pub const SEARCH_PAGE: u32 = 1_000;

/// A page of subject-search results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectPage {
    /// The names of the subjects allowed.
    pub ids: Vec<String>,
    /// The page token of the next page.
    pub next: Option<String>,
}

/// Batches with fewer items ready for Cedar are decided on one thread.
const PARALLEL_FROM: usize = 8;

impl App {
    /// Decides one evaluation with the active version, and logs it.
    /// Without an active version everything is denied.
    pub async fn evaluate(
        &self,
        ctx: &Ctx,
        eval: &Evaluation,
    ) -> Result<std::result::Result<Decided, BadRequest>> {
        let (decided, logged) = self.evaluate_unlogged(ctx, eval).await?;
        if logged && let Ok(decided) = &decided {
            let details = log_entry(eval, decided)?;
            self.log(ctx, subject_target(eval), details, !decided.allowed)
                .await?;
        }
        Ok(decided)
    }

    /// Decides one evaluation with the active version (without one,
    /// everything is denied), and says whether the decision log takes it.
    async fn evaluate_unlogged(
        &self,
        ctx: &Ctx,
        eval: &Evaluation,
    ) -> Result<(std::result::Result<Decided, BadRequest>, bool)> {
        let Some(engine) = self.policy_engine(ctx).await? else {
            let decided = Decided {
                allowed: false,
                version: None,
                policies: Vec::new(),
                errors: Vec::new(),
                note: Some("no policy version is active".to_owned()),
            };
            return Ok((Ok(decided), true));
        };
        let decided = self.decide_with(ctx, &engine, eval).await?;
        let logged = matches!(&decided, Ok(d) if !d.allowed || engine.sample_allow());
        Ok((decided, logged))
    }

    /// A batch, with AuthZEN's evaluation semantics. An item that cannot be
    /// evaluated is a deny carrying its error, so it never stops the others
    /// (nor counts as a permit).
    pub async fn evaluate_batch(
        &self,
        ctx: &Ctx,
        batch: &Evaluations,
    ) -> Result<std::result::Result<EvaluationsResponse, BadRequest>> {
        let items = batch.evaluations.as_ref().map_or(0, Vec::len);
        if items > MAX_EVALUATIONS {
            return Ok(Err(BadRequest(format!(
                "at most {MAX_EVALUATIONS} evaluations in one request, got {items}"
            ))));
        }
        let semantic = batch
            .options
            .as_ref()
            .map(|o| o.evaluations_semantic)
            .unwrap_or_default();
        let items = batch.resolve();
        let answers = match semantic {
            // Every item is answered: decide them on all cores at once.
            Semantic::ExecuteAll => self.evaluate_all(ctx, items).await?,
            _ => self.evaluate_until(ctx, items, semantic).await?,
        };
        Ok(Ok(EvaluationsResponse {
            evaluations: answers,
        }))
    }

    /// A batch's items one after another, stopping where `semantic` says.
    async fn evaluate_until(
        &self,
        ctx: &Ctx,
        items: Vec<std::result::Result<Evaluation, String>>,
        semantic: Semantic,
    ) -> Result<Vec<EvaluationResponse>> {
        let mut answers = Vec::new();
        let mut log = BatchLog::default();
        for item in items {
            let answer = match item {
                Err(why) => error_response(&why),
                Ok(eval) => {
                    let (decided, logged) = self.evaluate_unlogged(ctx, &eval).await?;
                    if logged && let Ok(d) = &decided {
                        log.add(&eval, d.allowed, log_entry(&eval, d)?);
                    }
                    answer(decided)
                }
            };
            let stop = match semantic {
                Semantic::ExecuteAll => false,
                Semantic::DenyOnFirstDeny => !answer.decision,
                Semantic::PermitOnFirstPermit => answer.decision,
            };
            answers.push(answer);
            if stop {
                break;
            }
        }
        self.log_batch(ctx, log).await?;
        Ok(answers)
    }

    /// Every item of a batch: each read from the directory in turn, then
    /// Cedar (the CPU-bound part, reading nothing) and the log entries of
    /// denies on two threads, then logged in order as [`App::evaluate`]
    /// logs.
    async fn evaluate_all(
        &self,
        ctx: &Ctx,
        items: Vec<std::result::Result<Evaluation, String>>,
    ) -> Result<Vec<EvaluationResponse>> {
        let Some(engine) = self.policy_engine(ctx).await? else {
            return self.evaluate_until(ctx, items, Semantic::ExecuteAll).await;
        };
        let mut slots = Vec::with_capacity(items.len());
        let mut ready = Vec::new();
        for item in items {
            slots.push(match item {
                Err(why) => Slot::Answered(error_response(&why)),
                Ok(eval) => match self.prepare(ctx, &engine, &eval).await? {
                    Prepared::Ready(r) => {
                        ready.push((eval, *r));
                        Slot::Pending
                    }
                    Prepared::Decided(decided) => {
                        Slot::Decided(Box::new((eval, Ok(decided), None)))
                    }
                    Prepared::Bad(bad) => Slot::Decided(Box::new((eval, Err(bad), None))),
                },
            });
        }
        let mut decided = decide_on_two_threads(&engine, ready).await?.into_iter();
        let mut answers = Vec::with_capacity(slots.len());
        let mut log = BatchLog::default();
        for slot in slots {
            let (eval, result, prebuilt) = match slot {
                Slot::Answered(answer) => {
                    answers.push(answer);
                    continue;
                }
                Slot::Decided(decided) => *decided,
                Slot::Pending => decided
                    .next()
                    .ok_or_else(|| AppError::Internal("a batch item went undecided".into()))?,
            };
            if let Ok(d) = &result {
                let entry = match prebuilt {
                    Some(entry) => Some(entry),
                    None if !d.allowed || engine.sample_allow() => Some(log_entry(&eval, d)?),
                    None => None,
                };
                if let Some(entry) = entry {
                    log.add(&eval, d.allowed, entry);
                }
            }
            answers.push(answer(result));
        }
        self.log_batch(ctx, log).await?;
        Ok(answers)
    }

    /// AuthZEN action search: the actions `subject` may take on
    /// `resource`, each decided by Cedar (actions that do not apply to
    /// these types are left out). Not logged.
    pub async fn search_actions(
        &self,
        ctx: &Ctx,
        subject: &Entity,
        resource: &Entity,
        context: &Map<String, Value>,
    ) -> Result<Vec<String>> {
        let Some(engine) = self.policy_engine(ctx).await? else {
            return Ok(Vec::new());
        };
        let mut allowed = Vec::new();
        for name in engine.action_names() {
            let eval = Evaluation {
                subject: subject.clone(),
                action: Action {
                    name: name.clone(),
                    properties: Map::new(),
                },
                resource: resource.clone(),
                context: context.clone(),
            };
            if let Ok(decided) = self.decide_with(ctx, &engine, &eval).await?
                && decided.allowed
            {
                allowed.push(name);
            }
        }
        Ok(allowed)
    }

    /// AuthZEN subject search over the directory: of the principals of
    /// `subject_type` after `after` (a principal id, the page token), at
    /// most [`SEARCH_PAGE`] are examined; those allowed are returned with
    /// the token of the next page, if there is one. Not logged.
    pub async fn search_subjects(
        &self,
        ctx: &Ctx,
        subject_type: &str,
        action: &Action,
        resource: &Entity,
        context: &Map<String, Value>,
        after: Option<String>,
    ) -> Result<std::result::Result<SubjectPage, BadRequest>> {
        let Some(kind) = DirectoryType::parse(subject_type).and_then(DirectoryType::principal_kind)
        else {
            return Ok(Err(BadRequest(format!(
                "subject search covers the directory's principals, not `{subject_type}`"
            ))));
        };
        let Some(engine) = self.policy_engine(ctx).await? else {
            return Ok(Ok(SubjectPage::default()));
        };
        let filter = PrincipalFilter {
            kind: Some(kind),
            ..PrincipalFilter::default()
        };
        let page = Page {
            after,
            limit: SEARCH_PAGE,
        };
        let examined = self.principals(ctx, &filter, &page).await?;
        let mut found = SubjectPage {
            next: examined
                .more
                .then(|| examined.items.last().map(|p| p.id.to_string()))
                .flatten(),
            ids: Vec::new(),
        };
        for principal in examined.items {
            let eval = Evaluation {
                subject: Entity {
                    kind: subject_type.to_owned(),
                    id: principal.id.to_string(),
                    properties: Map::new(),
                },
                action: action.clone(),
                resource: resource.clone(),
                context: context.clone(),
            };
            match self.decide_with(ctx, &engine, &eval).await? {
                Ok(decided) if decided.allowed => found.ids.push(principal.name),
                Ok(_) => {}
                Err(bad) => return Ok(Err(bad)),
            }
        }
        Ok(Ok(found))
    }

    /// A batch's logged decisions: one event per subject.
    async fn log_batch(&self, ctx: &Ctx, log: BatchLog) -> Result<()> {
        for (target, entries, denied) in log.0 {
            // Moved in, not through `json!`, which would copy every entry.
            let details = Map::from_iter([(BATCH_ENTRIES.to_owned(), Value::Array(entries))]);
            self.log(ctx, target, Value::Object(details), denied)
                .await?;
        }
        Ok(())
    }

    /// Queues a decision-log event about `target` (a subject), a failure
    /// if it holds a deny.
    async fn log(&self, ctx: &Ctx, target: String, details: Value, denied: bool) -> Result<()> {
        let event = AuditEvent::new(ctx, DECISION_ACTION, Some(target)).with_details(details);
        // Queued, not awaited: a decision is an observation, and waiting for
        // its fsync would bound decisions by commits.
        self.audit_writer()
            .enqueue(if denied { event.failed() } else { event })
            .await
    }
}

/// The details key of a batch's event: its subject's logged decisions, in
/// order, each as a single evaluation's event holds it.
pub const BATCH_ENTRIES: &str = "decisions";

/// A decision as the log holds it, with the whole request (what impact
/// analysis replays). Built field by field: `json!` would copy the request
/// a second time.
fn log_entry(eval: &Evaluation, decided: &Decided) -> Result<Value> {
    let request =
        serde_json::to_value(eval).map_err(|e| AppError::Internal(format!("evaluation: {e}")))?;
    let decision = if decided.allowed { "allow" } else { "deny" };
    let fields: [(&str, Value); 6] = [
        ("decision", decision.into()),
        ("version", decided.version.into()),
        ("policies", decided.policies.clone().into()),
        ("errors", decided.errors.clone().into()),
        ("note", decided.note.clone().into()),
        ("request", request),
    ];
    Ok(Value::Object(
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    ))
}

/// The entry of a decision the log always takes (a deny), built where the
/// decision is made; allows are sampled in order, so theirs wait.
fn deny_entry(
    eval: &Evaluation,
    decided: &std::result::Result<Decided, BadRequest>,
) -> Result<Option<Value>> {
    match decided {
        Ok(d) if !d.allowed => log_entry(eval, d).map(Some),
        _ => Ok(None),
    }
}

/// The audit target of a decision: its subject.
fn subject_target(eval: &Evaluation) -> String {
    format!("{}:{}", eval.subject.kind, eval.subject.id)
}

/// A batch's decisions to log, by subject in order of first appearance:
/// (target, entries, whether any is a deny). A batch is one event per
/// subject, not one per item: a hundred denies cost one record, one hash
/// and one set of index entries, and still each is logged with its
/// request, found by its subject.
#[derive(Default)]
struct BatchLog(Vec<(String, Vec<Value>, bool)>);

impl BatchLog {
    fn add(&mut self, eval: &Evaluation, allowed: bool, entry: Value) {
        let target = subject_target(eval);
        let slot = match self.0.iter().position(|(t, ..)| *t == target) {
            Some(i) => i,
            None => {
                self.0.push((target, Vec::new(), false));
                self.0.len() - 1
            }
        };
        if let Some((_, entries, denied)) = self.0.get_mut(slot) {
            entries.push(entry);
            *denied |= !allowed;
        }
    }
}

/// Where a batch item stands while the batch is decided.
enum Slot {
    /// Not an evaluation (a part missing): answered with its error.
    Answered(EvaluationResponse),
    /// Decided without Cedar, or a bad request.
    Decided(Box<Concluded>),
    /// Waiting for Cedar; the next of the decided, in order.
    Pending,
}

/// A batch item decided: the evaluation, its decision, and its log entry
/// if it was built with the decision (see [`deny_entry`]).
type Concluded = (
    Evaluation,
    std::result::Result<Decided, BadRequest>,
    Option<Value>,
);

/// Decides `ready` in order; from [`PARALLEL_FROM`] items on, the second
/// half on a blocking thread while this task does the first: the items are
/// independent, and on a batch Cedar is most of the time.
async fn decide_on_two_threads(
    engine: &Arc<Engine>,
    mut ready: Vec<(Evaluation, Ready)>,
) -> Result<Vec<Concluded>> {
    let decide_all = |engine: &Engine, items: Vec<(Evaluation, Ready)>| {
        items
            .into_iter()
            .map(|(eval, r)| {
                let decided = decide(engine, r, &eval);
                let entry = deny_entry(&eval, &decided)?;
                Ok((eval, decided, entry))
            })
            .collect::<Result<Vec<_>>>()
    };
    // A few decisions cost less than handing half of them to a thread.
    let second = if ready.len() < PARALLEL_FROM {
        Vec::new()
    } else {
        ready.split_off(ready.len() / 2)
    };
    let other = (!second.is_empty()).then(|| {
        let engine = Arc::clone(engine);
        tokio::task::spawn_blocking(move || decide_all(&engine, second))
    });
    let mut decided = decide_all(engine, ready)?;
    if let Some(other) = other {
        decided.extend(
            other
                .await
                .map_err(|e| AppError::Internal(format!("batch decisions: {e}")))??,
        );
    }
    Ok(decided)
}

fn answer(result: std::result::Result<Decided, BadRequest>) -> EvaluationResponse {
    match result {
        Ok(decided) => EvaluationResponse {
            decision: decided.allowed,
            context: None,
        },
        Err(bad) => error_response(&bad.0),
    }
}

fn error_response(why: &str) -> EvaluationResponse {
    EvaluationResponse {
        decision: false,
        context: Some(json!({"error": {"status": 400, "message": why}})),
    }
}
