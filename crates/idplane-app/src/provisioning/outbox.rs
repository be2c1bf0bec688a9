//! The outbox: a change to a principal that a connected application
//! receives schedules, in the change's own transaction, a `scim.push` job
//! keyed by target and principal. The job row is the outbox entry: it
//! survives restarts and outages, and a burst of changes to one principal
//! is one push of its latest state (the push handler reads it when it runs).
//!
//! Keys start with the target id (`TARGET:PRINCIPAL`), so disconnecting a
//! target cancels its pushes, and a leaver's own job cancellation (keyed
//! by the user's id) leaves the pushes that carry their deprovisioning.

use idplane_core::directory::{Principal, PrincipalKind};
use idplane_core::{Ctx, PrincipalId};
use idplane_store::provisioning::{self as store, Target};
use idplane_store::{Conn, WriteTx, principals};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::jobs::{self, JobKind};

/// What a `scim.push` job carries: who, where, and what a remote deletion
/// needs once the principal is gone locally.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PushPayload {
    pub target: String,
    pub principal: PrincipalId,
    pub kind: PrincipalKind,
    /// The principal's id at the target when the push was scheduled.
    pub remote_id: Option<String>,
}

/// The job key of pushes of `principal` to `target`.
pub(crate) fn push_key(target: &str, principal: PrincipalId) -> String {
    format!("{target}:{principal}")
}

/// Schedules pushes of `principal`'s current state to every target that
/// receives it, or received it before (to update, deactivate or delete its
/// copy). Call inside the change's transaction, before a deletion (the
/// remote id is read from the principal's links).
pub(crate) async fn enqueue_pushes(
    tx: &mut WriteTx,
    ctx: &Ctx,
    principal: PrincipalId,
) -> Result<()> {
    enqueue_pushes_all(tx, ctx, std::slice::from_ref(&principal)).await
}

/// [`enqueue_pushes`] for many principals, reading the targets once: with
/// none connected (the common case) that one read is all it costs.
pub(crate) async fn enqueue_pushes_all(
    tx: &mut WriteTx,
    ctx: &Ctx,
    ids: &[PrincipalId],
) -> Result<()> {
    let targets = store::list(tx, ctx.tenant).await?;
    if targets.is_empty() {
        return Ok(());
    }
    for &id in ids {
        let Some(p) = principals::by_id(tx, ctx.tenant, id).await? else {
            continue;
        };
        for target in &targets {
            let link = store::link(tx, &target.id, p.id).await?;
            if link.is_some() || receives(tx, ctx, target, &p).await? {
                schedule_push(tx, ctx, target, &p, link.map(|l| l.remote_id)).await?;
            }
        }
    }
    Ok(())
}

/// [`enqueue_pushes`] for a principal whose memberships changed: when it is
/// a group, its transitive users may have entered or left a target's
/// scope, so they are pushed too.
pub(crate) async fn enqueue_member_pushes(
    tx: &mut WriteTx,
    ctx: &Ctx,
    member: &Principal,
) -> Result<()> {
    enqueue_pushes(tx, ctx, member.id).await?;
    if member.kind != PrincipalKind::Group {
        return Ok(());
    }
    let scoped = store::list(tx, ctx.tenant)
        .await?
        .iter()
        .any(|t| t.scope_group.is_some());
    if scoped {
        for user in transitive_users(tx, ctx, member.id).await? {
            enqueue_pushes(tx, ctx, user).await?;
        }
    }
    Ok(())
}

/// Before `p` is deleted inside `tx`: refuses when it is a target's scope
/// group (the target would silently receive no one), then enqueues the
/// pushes that delete or deactivate its copies.
pub(crate) async fn before_delete(tx: &mut WriteTx, ctx: &Ctx, p: &Principal) -> Result<()> {
    let targets = store::list(tx, ctx.tenant).await?;
    if let Some(t) = targets.iter().find(|t| t.scope_group == Some(p.id)) {
        return Err(crate::AppError::Conflict(format!(
            "group `{}` chooses who provisioning target `{}` receives; change the target first",
            p.name, t.name
        )));
    }
    enqueue_member_pushes(tx, ctx, p).await
}

/// Schedules (or moves to now) the push of `p` to `target`.
pub(crate) async fn schedule_push(
    tx: &mut WriteTx,
    ctx: &Ctx,
    target: &Target,
    p: &Principal,
    remote_id: Option<String>,
) -> Result<()> {
    let payload = PushPayload {
        target: target.id.clone(),
        principal: p.id,
        kind: p.kind,
        remote_id,
    };
    let payload = serde_json::to_value(&payload)
        .map_err(|e| crate::AppError::Internal(format!("push payload: {e}")))?;
    jobs::schedule(
        tx,
        ctx,
        JobKind::ScimPush,
        push_key(&target.id, p.id),
        payload,
        ctx.now,
    )
    .await
}

/// Whether `target` receives `p` now: every user or the transitive members
/// of its group; groups when it takes groups (its group and the groups
/// nested in it, or every group).
pub(crate) async fn receives(
    conn: &mut impl Conn,
    ctx: &Ctx,
    target: &Target,
    p: &Principal,
) -> Result<bool> {
    Ok(match (p.kind, target.scope_group) {
        (PrincipalKind::User, None) => true,
        (PrincipalKind::User, Some(g)) => in_group(conn, ctx, p.id, g).await?,
        (PrincipalKind::Group, _) if !target.push_groups => false,
        (PrincipalKind::Group, None) => true,
        (PrincipalKind::Group, Some(g)) => p.id == g || in_group(conn, ctx, p.id, g).await?,
        _ => false,
    })
}

async fn in_group(
    conn: &mut impl Conn,
    ctx: &Ctx,
    principal: PrincipalId,
    group: PrincipalId,
) -> Result<bool> {
    Ok(
        principals::transitive_groups(conn, principal, Some(ctx.now))
            .await?
            .ids
            .contains(&group),
    )
}

/// The users in `group`, directly or through nesting, by memberships in
/// force now. Breadth-first; each group visited once.
async fn transitive_users(
    conn: &mut impl Conn,
    ctx: &Ctx,
    group: PrincipalId,
) -> Result<Vec<PrincipalId>> {
    let mut seen = std::collections::HashSet::from([group]);
    let mut users = Vec::new();
    let mut frontier = vec![group];
    while let Some(next) = frontier.pop() {
        for m in principals::members(conn, next).await? {
            if !idplane_core::time::in_force(m.expires_at, ctx.now) || !seen.insert(m.member_id) {
                continue;
            }
            match principals::by_id(conn, ctx.tenant, m.member_id).await? {
                Some(p) if p.kind == PrincipalKind::Group => frontier.push(p.id),
                Some(p) if p.kind == PrincipalKind::User => users.push(p.id),
                _ => {}
            }
        }
    }
    Ok(users)
}
