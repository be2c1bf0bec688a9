//! A compiled policy version ready to decide, and the translation of an
//! AuthZEN evaluation into a Cedar request over the directory's entities.
//!
//! Names: an action is `name` (unique among the applications' actions),
//! `Namespace::name` or a Cedar uid. A subject or resource type is one of
//! the directory's (`user`, `group`, `service_account`, `agent`, `role`, or
//! `Idplane::User`, ...), resolved in the directory, or an application's
//! type (`Todo::todo`, or bare `todo` in the action's namespace, which wins
//! over the directory's), built from the request's `properties`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cedar_policy::{Context, Decision, Entities, Entity, EntityTypeName, EntityUid, Request};
use cedar_policy_core::ast;
use cedar_policy_core::entities::{self as core, Dereference, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use idplane_core::Ctx;
use serde_json::{Map, Value, json};

use super::authzen::{self, Evaluation};
use super::bundle::Compiled;
use super::directory_schema::DirectoryType;
use super::entities::Projection;
use crate::{App, AppError, Result};

/// Deepest JSON nesting accepted in properties and context.
pub const MAX_JSON_DEPTH: usize = 16;
/// Most JSON values (all levels) in one evaluation's properties and context.
pub const MAX_JSON_VALUES: usize = 4_096;

/// A policy version ready to decide with.
#[derive(Debug)]
pub struct Engine {
    pub version: i64,
    pub compiled: Compiled,
    /// Each action with its ancestor action groups, as entities (shared,
    /// so a decision adds them to its store without copying them).
    actions: HashMap<EntityUid, Vec<Arc<ast::Entity>>>,
    /// Bare action names to the actions of that name.
    action_names: HashMap<String, Vec<EntityUid>>,
    /// The schema's entity types by namespace, then by bare name, so a
    /// request's type is found without building and parsing its name.
    entity_types: HashMap<String, HashMap<String, EntityTypeName>>,
    /// Allowed decisions seen, for sampling them into the log.
    allows: AtomicU64,
}

/// A decision with its explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    pub allowed: bool,
    /// The policy version that decided; `None` when none is active.
    pub version: Option<i64>,
    /// The policies that determined the decision (permits for an allow,
    /// forbids for a deny; none for a default deny).
    pub policies: Vec<String>,
    /// Policies whose evaluation failed (they count as not applying).
    pub errors: Vec<String>,
    /// Why Cedar was not asked: unknown or inactive subject, no policy.
    pub note: Option<String>,
}

impl Decided {
    fn denied(version: Option<i64>, note: &str) -> Self {
        Self {
            allowed: false,
            version,
            policies: Vec::new(),
            errors: Vec::new(),
            note: Some(note.to_owned()),
        }
    }
}

/// A request that cannot be evaluated: names the part that is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

impl Engine {
    pub fn new(version: i64, compiled: Compiled) -> Result<Self> {
        let all = compiled
            .schema
            .action_entities()
            .map_err(|e| AppError::Internal(format!("action entities: {e}")))?;
        let mut actions = HashMap::new();
        let mut action_names: HashMap<String, Vec<EntityUid>> = HashMap::new();
        for action in compiled.schema.actions() {
            let chain = std::iter::once(action)
                .chain(all.ancestors(action).into_iter().flatten())
                .filter_map(|a| all.get(a))
                .map(|a| Arc::new(a.as_ref().clone()))
                .collect();
            actions.insert(action.clone(), chain);
            action_names
                .entry(action.id().unescaped().to_owned())
                .or_default()
                .push(action.clone());
        }
        let mut entity_types: HashMap<String, HashMap<String, EntityTypeName>> = HashMap::new();
        for name in compiled.schema.entity_types() {
            entity_types
                .entry(name.namespace())
                .or_default()
                .insert(name.basename().to_owned(), name.clone());
        }
        Ok(Self {
            version,
            compiled,
            actions,
            action_names,
            entity_types,
            allows: AtomicU64::new(0),
        })
    }

    /// Every action, named as a request would name it: bare when the name
    /// is unique, else `Namespace::name`.
    pub fn action_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .action_names
            .iter()
            .flat_map(|(bare, uids)| {
                uids.iter().map(move |uid| match uids.len() {
                    1 => bare.clone(),
                    _ => format!("{}::{bare}", uid.type_name().namespace()),
                })
            })
            .collect();
        names.sort();
        names
    }

    /// Whether this allowed decision is one of the sampled ones.
    pub(crate) fn sample_allow(&self) -> bool {
        let rate = self.compiled.decision_log.allow_sample_rate;
        if rate <= 0.0 {
            return false;
        }
        // Every n-th allow, n = 1 / rate: deterministic, so testable.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "rate is in (0, 1]"
        )]
        let every = (1.0 / rate).round().max(1.0) as u64;
        self.allows
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(every)
    }

    fn action(&self, name: &str) -> std::result::Result<EntityUid, BadRequest> {
        let unknown = || BadRequest(format!("action `{name}` is not in the schema"));
        let uid = if name.contains('"') {
            EntityUid::from_str(name).map_err(|_| unknown())?
        } else if let Some((namespace, bare)) = name.rsplit_once("::") {
            EntityUid::from_str(&format!("{namespace}::Action::{}", quoted(bare)))
                .map_err(|_| unknown())?
        } else {
            match self.action_names.get(name).map(Vec::as_slice) {
                Some([only]) => only.clone(),
                Some(many) if many.len() > 1 => {
                    let names: Vec<String> = many.iter().map(ToString::to_string).collect();
                    return Err(BadRequest(format!(
                        "action `{name}` is ambiguous ({}); qualify it with its namespace",
                        names.join(", ")
                    )));
                }
                _ => return Err(unknown()),
            }
        };
        if self.actions.contains_key(&uid) {
            Ok(uid)
        } else {
            Err(unknown())
        }
    }

    /// The application type `kind` names, qualified or in `namespace`.
    fn app_type(&self, kind: &str, namespace: &str) -> Option<EntityTypeName> {
        let (namespace, bare) = match kind.rsplit_once("::") {
            Some(("", _)) => return None,
            Some(qualified) => qualified,
            None if namespace.is_empty() => return None,
            None => (namespace, kind),
        };
        self.entity_types.get(namespace)?.get(bare).cloned()
    }
}

fn quoted(id: &str) -> String {
    serde_json::to_string(id).unwrap_or_default()
}

/// An evaluation with everything read from the directory, ready for
/// Cedar: deciding it reads nothing more, so it can run on any thread.
#[derive(Debug)]
pub(crate) struct Ready {
    action: EntityUid,
    subject: Resolved,
    resource: Resolved,
}

/// What [`App::prepare`] made of an evaluation.
#[derive(Debug)]
pub(crate) enum Prepared {
    Ready(Box<Ready>),
    /// Decided without Cedar (an unknown or inactive subject).
    Decided(Decided),
    Bad(BadRequest),
}

/// What an AuthZEN subject or resource turned into.
#[derive(Debug)]
enum Resolved {
    /// A directory entity, with its groups and roles.
    Directory(Arc<Projection>),
    /// An application entity, built from the request.
    App(EntityUid, Box<Entity>),
    /// A resource no longer (or never) in the directory: its name alone.
    Absent(EntityUid),
}

impl Resolved {
    fn uid(&self) -> &EntityUid {
        match self {
            Self::Directory(projection) => &projection.uid,
            Self::App(uid, _) | Self::Absent(uid) => uid,
        }
    }
}

/// A subject or resource, or why the request is denied without Cedar.
enum Found {
    Entity(Resolved),
    /// A directory entity that does not exist or is not active.
    Denied(&'static str),
}

impl App {
    /// Decides one evaluation with `engine`. Bad requests are errors; an
    /// unknown or inactive subject is a deny with a note.
    pub async fn decide_with(
        &self,
        ctx: &Ctx,
        engine: &Engine,
        eval: &Evaluation,
    ) -> Result<std::result::Result<Decided, BadRequest>> {
        Ok(match self.prepare(ctx, engine, eval).await? {
            Prepared::Ready(ready) => decide(engine, *ready, eval),
            Prepared::Decided(decided) => Ok(decided),
            Prepared::Bad(bad) => Err(bad),
        })
    }

    /// Reads what deciding `eval` needs from the directory.
    pub(crate) async fn prepare(
        &self,
        ctx: &Ctx,
        engine: &Engine,
        eval: &Evaluation,
    ) -> Result<Prepared> {
        let action = match engine.action(&eval.action.name) {
            Ok(action) => action,
            Err(bad) => return Ok(Prepared::Bad(bad)),
        };
        if let Err(bad) = check_json(eval) {
            return Ok(Prepared::Bad(bad));
        }
        let namespace = action.type_name().namespace();
        let version = Some(engine.version);
        let subject = match self
            .resolve(ctx, engine, &eval.subject, &namespace, false)
            .await?
        {
            Ok(Found::Entity(resolved)) => resolved,
            Ok(Found::Denied(note)) => {
                return Ok(Prepared::Decided(Decided::denied(version, note)));
            }
            Err(bad) => return Ok(Prepared::Bad(bad.prefixed("subject"))),
        };
        let resource = match self
            .resolve(ctx, engine, &eval.resource, &namespace, true)
            .await?
        {
            Ok(Found::Entity(resolved)) => resolved,
            // A resource that is not (or no longer) in the directory is
            // decided without its attributes and parents.
            Ok(Found::Denied(_)) => Resolved::Absent(resource_uid(&eval.resource)?),
            Err(bad) => return Ok(Prepared::Bad(bad.prefixed("resource"))),
        };
        Ok(Prepared::Ready(Box::new(Ready {
            action,
            subject,
            resource,
        })))
    }

    async fn resolve(
        &self,
        ctx: &Ctx,
        engine: &Engine,
        entity: &authzen::Entity,
        namespace: &str,
        app_first: bool,
    ) -> Result<std::result::Result<Found, BadRequest>> {
        let app_type = engine.app_type(&entity.kind, namespace);
        let directory = DirectoryType::parse(&entity.kind);
        let use_app = match (&app_type, directory) {
            (Some(_), Some(_)) => app_first,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if use_app && let Some(type_name) = app_type {
            return Ok(app_entity(engine, type_name, entity)
                .map(|(uid, e)| Found::Entity(Resolved::App(uid, Box::new(e)))));
        }
        let Some(kind) = directory else {
            return Ok(Err(BadRequest(format!(
                "type `{}` is neither the directory's nor in the schema",
                entity.kind
            ))));
        };
        if !entity.properties.is_empty() {
            return Ok(Err(BadRequest(
                "properties of a directory entity come from the directory; send none".to_owned(),
            )));
        }
        Ok(Ok(match self.projection(ctx, kind, &entity.id).await? {
            None => Found::Denied("unknown subject"),
            Some(p) if !p.active => Found::Denied("the subject is not active"),
            Some(p) => Found::Entity(Resolved::Directory(p)),
        }))
    }
}

impl BadRequest {
    fn prefixed(self, part: &str) -> Self {
        Self(format!("{part}: {}", self.0))
    }
}

fn resource_uid(entity: &authzen::Entity) -> Result<EntityUid> {
    let kind = DirectoryType::parse(&entity.kind)
        .ok_or_else(|| AppError::Internal("a denied resource is a directory entity".to_owned()))?;
    Ok(super::entities::uid(kind, &entity.id))
}

/// An application entity from the request: its properties are its
/// attributes, checked and typed by the schema.
fn app_entity(
    engine: &Engine,
    type_name: EntityTypeName,
    entity: &authzen::Entity,
) -> std::result::Result<(EntityUid, Entity), BadRequest> {
    if let Some(built) = engine
        .compiled
        .shapes
        .entity(&type_name, &entity.id, &entity.properties)
    {
        return Ok((built.uid(), built));
    }
    let json = json!({
        "uid": {"type": type_name.to_string(), "id": entity.id},
        "attrs": entity.properties,
        "parents": [],
    });
    let built = Entity::from_json_value(json, Some(&engine.compiled.schema))
        .map_err(|e| BadRequest(format!("`{type_name}::{}`: {e}", quoted(&entity.id))))?;
    Ok((built.uid(), built))
}

/// Asks Cedar. CPU only: reads nothing.
pub(crate) fn decide(
    engine: &Engine,
    ready: Ready,
    eval: &Evaluation,
) -> std::result::Result<Decided, BadRequest> {
    let Ready {
        action,
        subject,
        resource,
    } = ready;
    let schema = &engine.compiled.schema;
    let context = merged_context(eval)?;
    // Request::new checks the context against the schema either way.
    let context = if context.is_empty() {
        Context::empty()
    } else {
        Context::from_json_value(Value::Object(context), Some((schema, &action)))
            .map_err(|e| BadRequest(format!("context: {e}")))?
    };
    let action_entities = engine.actions.get(&action).cloned().unwrap_or_default();
    let request = Request::new(
        subject.uid().clone(),
        action,
        resource.uid().clone(),
        context,
        Some(schema),
    )
    .map_err(|e| BadRequest(e.to_string()))?;
    let entities = request_entities(subject, resource, action_entities)?;
    let response = engine.compiled.policies.is_authorized(&request, &entities);
    let diagnostics = response.diagnostics();
    Ok(Decided {
        allowed: response.decision() == Decision::Allow,
        version: Some(engine.version),
        policies: diagnostics.reason().map(ToString::to_string).collect(),
        errors: diagnostics.errors().map(ToString::to_string).collect(),
        note: None,
    })
}

/// The entities a decision sees: the subject's (a directory subject's
/// store is reused, its closure already computed), then the resource's
/// and the action's that are not already among them.
///
/// A projection's groups and roles are bare (no parents, no owner: the
/// projected entity lists them all as its parents). So a directory
/// resource that is one of the subject's groups or roles replaces that
/// bare copy with its own entity, or `resource in` its parents would fail.
fn request_entities(
    subject: Resolved,
    resource: Resolved,
    actions: Vec<Arc<ast::Entity>>,
) -> std::result::Result<Entities, BadRequest> {
    // Computed before the subject is taken apart, without cloning its uid.
    let two_projections = matches!(&subject, Resolved::Directory(_))
        && matches!(&resource, Resolved::Directory(p) if p.uid != *subject.uid());
    let (base, mut more) = match subject {
        Resolved::Directory(projection) => (projection.entities.as_ref().clone(), Vec::new()),
        Resolved::App(_, entity) => (core::Entities::new(), vec![shared(&entity)]),
        Resolved::Absent(_) => (core::Entities::new(), Vec::new()),
    };
    let mut replacing = None;
    match resource {
        Resolved::Directory(projection) => {
            for entity in projection.entities.iter() {
                let uid = entity.as_ref().uid();
                if two_projections && *uid == *projection.uid.as_ref() && has(&base, uid) {
                    replacing = Some(entity.clone());
                } else {
                    more.push(shared(entity));
                }
            }
        }
        Resolved::App(_, entity) => more.push(shared(&entity)),
        Resolved::Absent(_) => {}
    }
    more.extend(actions);
    let mut seen = std::collections::HashSet::new();
    more.retain(|e| !has(&base, e.uid()) && seen.insert(e.uid().clone()));
    // Every entity added is an application's (no parents), an action (its
    // hierarchy closed in the schema) or in one projection (closed when
    // built), so the closure holds as it is. Two projections, read at
    // different instants, may disagree on a membership: Cedar recomputes it.
    let closure = if two_projections {
        TCComputation::ComputeNow
    } else {
        TCComputation::AssumeAlreadyComputed
    };
    let bad = |e: cedar_policy_core::entities::err::EntitiesError| BadRequest(e.to_string());
    let entities = base
        .add_entities(
            more,
            None::<&NoEntitiesSchema>,
            closure,
            Extensions::all_available(),
        )
        .map_err(bad)?;
    let entities = Entities::from(entities);
    match replacing {
        Some(own) => entities
            .upsert_entities([own], None)
            .map_err(|e| BadRequest(e.to_string())),
        None => Ok(entities),
    }
}

fn shared(entity: &Entity) -> Arc<ast::Entity> {
    Arc::new(entity.as_ref().clone())
}

fn has(entities: &core::Entities, uid: &ast::EntityUID) -> bool {
    matches!(entities.entity(uid), Dereference::Data(_))
}

/// The request context with the action's properties merged in.
fn merged_context(eval: &Evaluation) -> std::result::Result<Map<String, Value>, BadRequest> {
    let mut context = eval.context.clone();
    for (key, value) in &eval.action.properties {
        if context.insert(key.clone(), value.clone()).is_some() {
            return Err(BadRequest(format!(
                "`{key}` is both an action property and a context key"
            )));
        }
    }
    Ok(context)
}

/// Bounds the work a request's free-form JSON can cause.
fn check_json(eval: &Evaluation) -> std::result::Result<(), BadRequest> {
    let mut values = 0usize;
    for (part, map) in [
        ("subject.properties", &eval.subject.properties),
        ("resource.properties", &eval.resource.properties),
        ("action.properties", &eval.action.properties),
        ("context", &eval.context),
    ] {
        for value in map.values() {
            walk(value, 1, &mut values).map_err(|why| BadRequest(format!("{part}: {why}")))?;
        }
    }
    Ok(())
}

fn walk(value: &Value, depth: usize, values: &mut usize) -> std::result::Result<(), String> {
    *values += 1;
    if *values > MAX_JSON_VALUES {
        return Err(format!("more than {MAX_JSON_VALUES} values"));
    }
    if depth > MAX_JSON_DEPTH {
        return Err(format!("nested deeper than {MAX_JSON_DEPTH}"));
    }
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| walk(v, depth + 1, values)),
        Value::Object(map) => map.values().try_for_each(|v| walk(v, depth + 1, values)),
        _ => Ok(()),
    }
}
