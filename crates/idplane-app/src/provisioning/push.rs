//! The `scim.push` handler: reads the principal's current state, works out
//! what the target should hold, and says it in SCIM. The target's copy is
//! found by the stored link or by `externalId eq "<idplane id>"`; then a
//! POST or PUT (users mapped, groups with their members' remote ids), a
//! PATCH of `active` to false for a deprovisioned user or one that left the
//! target's scope, or a DELETE for a deleted principal or a group no
//! longer pushed.
//!
//! Every push is audited (`provisioning.push`) with its outcome. A failure
//! a retry may fix returns an error, so the scheduler backs off and tries
//! again; a refusal it cannot fix dead-letters the job at once with the
//! target's error.

use idplane_core::Ctx;
use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind, Status};
use idplane_store::jobs::Job;
use idplane_store::provisioning::{self as store, Link, Target};
use idplane_store::{Conn, principals};
use serde_json::{Value, json};

use super::client::{CallError, Endpoint, ScimClient};
use super::mapping::Mapping;
use super::outbox::{PushPayload, enqueue_pushes, receives};
use super::targets::audit_target;
use crate::scim::GROUP;
use crate::{App, AppError, Result, jobs};

/// What the target should be told.
enum Plan {
    /// Create or replace the resource with this body.
    Upsert(Endpoint, Value),
    /// Set the user's `active` to false.
    Deactivate,
    /// Delete the resource.
    Delete(Endpoint),
    /// Nothing: the target neither receives nor holds the principal.
    Skip,
}

/// What the push did.
enum Done {
    Created(String),
    Updated(String),
    Deactivated(String),
    Deleted,
    /// Nothing to do, and why.
    Skipped(&'static str),
}

impl Done {
    fn outcome(&self) -> &'static str {
        match self {
            Self::Created(_) => "created",
            Self::Updated(_) => "updated",
            Self::Deactivated(_) => "deactivated",
            Self::Deleted => "deleted",
            Self::Skipped(_) => "skipped",
        }
    }
}

/// Runs one `scim.push` job.
pub(crate) async fn push(app: &App, ctx: &Ctx, job: &Job, runner: &str) -> Result<()> {
    let payload: PushPayload = serde_json::from_value(job.payload.clone())
        .map_err(|e| AppError::Internal(format!("job {}: bad push payload: {e}", job.id)))?;
    let mut conn = app.store().read().await?;
    let Some(target) = store::by_id(&mut conn, ctx.tenant, &payload.target).await? else {
        drop(conn);
        let done = Done::Skipped("the target was disconnected");
        return finish(app, ctx, job, runner, &payload, None, done).await;
    };
    let principal = principals::by_id(&mut conn, ctx.tenant, payload.principal).await?;
    let link = store::link(&mut conn, &target.id, payload.principal).await?;
    let plan = plan(
        &mut conn,
        ctx,
        &target,
        &payload,
        principal.as_ref(),
        link.as_ref(),
    )
    .await?;
    drop(conn);

    let client = ScimClient::new(&target.base_url, app.target_token(&target)?);
    let known = link
        .map(|l| l.remote_id)
        .or_else(|| payload.remote_id.clone());
    let external_id = payload.principal.to_string();
    match execute(&client, plan, known, &external_id).await {
        Ok(done) => finish(app, ctx, job, runner, &payload, principal.as_ref(), done).await,
        Err(CallError::Transient(error)) => {
            let event = event(ctx, &payload).with_details(json!({
                "principal": principal_ref(&payload),
                "outcome": "failed",
                "error": error,
                "attempt": job.attempts + 1,
            }));
            app.store().write().await?.commit(event).await?;
            Err(AppError::Internal(error))
        }
        Err(CallError::Rejected(error)) => {
            let mut tx = app.store().write().await?;
            jobs::bury(&mut tx, ctx, job, runner, &error).await?;
            let event = event(ctx, &payload).with_details(json!({
                "principal": principal_ref(&payload),
                "outcome": "rejected",
                "error": error,
            }));
            tx.commit(event).await?;
            tracing::warn!(job = %job.id, target = %payload.target, %error, "the target refused a push; the job is dead");
            Ok(())
        }
    }
}

async fn plan(
    conn: &mut impl Conn,
    ctx: &Ctx,
    target: &Target,
    payload: &PushPayload,
    principal: Option<&Principal>,
    link: Option<&Link>,
) -> Result<Plan> {
    // Deleted here: the job says what it was.
    let Some(p) = principal else {
        return Ok(Plan::Delete(endpoint_of(payload.kind)));
    };
    let wanted = receives(conn, ctx, target, p).await?;
    Ok(match p.kind {
        PrincipalKind::User if wanted && p.status != Status::Deprovisioned => {
            let mapping = Mapping::from_json(&target.mapping)?;
            Plan::Upsert(Endpoint::Users, mapping.render_user(p, ctx.now))
        }
        PrincipalKind::User if wanted || link.is_some() => Plan::Deactivate,
        PrincipalKind::Group if wanted => {
            Plan::Upsert(Endpoint::Groups, group_body(conn, ctx, target, p).await?)
        }
        PrincipalKind::Group if link.is_some() => Plan::Delete(Endpoint::Groups),
        _ => Plan::Skip,
    })
}

fn endpoint_of(kind: PrincipalKind) -> Endpoint {
    if kind == PrincipalKind::Group {
        Endpoint::Groups
    } else {
        Endpoint::Users
    }
}

/// A SCIM Group for `group`: its name, and those of its direct members (in
/// force) that the target already holds, by their remote ids. A member
/// created there later re-pushes its groups.
async fn group_body(
    conn: &mut impl Conn,
    ctx: &Ctx,
    target: &Target,
    group: &Principal,
) -> Result<Value> {
    let mut members = Vec::new();
    for m in principals::members(conn, group.id).await? {
        if !idplane_core::time::in_force(m.expires_at, ctx.now) {
            continue;
        }
        if let Some(link) = store::link(conn, &target.id, m.member_id).await? {
            members.push(json!({"value": link.remote_id}));
        }
    }
    Ok(json!({
        "schemas": [GROUP],
        "externalId": group.id.to_string(),
        "displayName": group.name,
        "members": members,
    }))
}

async fn execute(
    client: &ScimClient,
    plan: Plan,
    known: Option<String>,
    external_id: &str,
) -> Result<Done, CallError> {
    let endpoint = match &plan {
        Plan::Upsert(e, _) | Plan::Delete(e) => *e,
        Plan::Deactivate => Endpoint::Users,
        Plan::Skip => return Ok(Done::Skipped("the target does not receive it")),
    };
    let remote = match known {
        Some(id) => Some(id),
        None => client
            .find(endpoint, external_id)
            .await?
            .and_then(|r| r.get("id").and_then(Value::as_str).map(str::to_owned)),
    };
    match (plan, remote) {
        (Plan::Upsert(_, body), Some(id)) => match client.replace(endpoint, &id, &body).await? {
            Some(id) => Ok(Done::Updated(id)),
            // Deleted at the target meanwhile: create it again.
            None => Ok(Done::Created(client.create(endpoint, &body).await?)),
        },
        (Plan::Upsert(_, body), None) => Ok(Done::Created(client.create(endpoint, &body).await?)),
        (Plan::Deactivate, Some(id)) => Ok(if client.deactivate(&id).await? {
            Done::Deactivated(id)
        } else {
            Done::Skipped("the target no longer holds it")
        }),
        (Plan::Delete(_), Some(id)) => {
            client.delete(endpoint, &id).await?;
            Ok(Done::Deleted)
        }
        (Plan::Deactivate | Plan::Delete(_), None) => {
            Ok(Done::Skipped("the target does not hold it"))
        }
        (Plan::Skip, _) => Ok(Done::Skipped("the target does not receive it")),
    }
}

/// Records what the push did (the link), completes the job and audits it,
/// in one transaction. A user the target just created has its groups
/// pushed again, now that they can name it.
async fn finish(
    app: &App,
    ctx: &Ctx,
    job: &Job,
    runner: &str,
    payload: &PushPayload,
    principal: Option<&Principal>,
    done: Done,
) -> Result<()> {
    let mut tx = app.store().write().await?;
    let remote_id = match &done {
        Done::Created(id) | Done::Updated(id) | Done::Deactivated(id) => Some(id.clone()),
        Done::Deleted | Done::Skipped(_) => None,
    };
    match (&remote_id, principal) {
        (Some(id), Some(p)) => {
            let link = Link {
                target_id: payload.target.clone(),
                principal_id: p.id,
                remote_id: id.clone(),
                last_pushed_version: p.version,
                pushed_at: ctx.now,
            };
            store::upsert_link(&mut tx, &link).await?;
        }
        _ if matches!(done, Done::Deleted) => {
            store::delete_link(&mut tx, &payload.target, payload.principal).await?;
        }
        _ => {}
    }
    if let (Done::Created(_), Some(p)) = (&done, principal)
        && p.kind == PrincipalKind::User
    {
        for m in principals::memberships_of(&mut tx, p.id).await? {
            enqueue_pushes(&mut tx, ctx, m.group_id).await?;
        }
    }
    jobs::complete(&mut tx, ctx, job, runner).await?;
    let mut details = json!({
        "principal": principal_ref(payload),
        "outcome": done.outcome(),
        "remote_id": remote_id,
    });
    if let Done::Skipped(why) = done {
        details["reason"] = json!(why);
    }
    tx.commit(event(ctx, payload).with_details(details)).await?;
    Ok(())
}

fn event(ctx: &Ctx, payload: &PushPayload) -> AuditEvent {
    AuditEvent::new(
        ctx,
        "provisioning.push",
        Some(audit_target(&payload.target)),
    )
}

fn principal_ref(payload: &PushPayload) -> String {
    format!("{}:{}", payload.kind.as_str(), payload.principal)
}
