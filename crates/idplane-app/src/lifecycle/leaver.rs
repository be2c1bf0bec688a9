//! Leavers: everything a deprovisioned user loses, staged inside a
//! transaction the caller owns (the HR import applies many rows in one
//! transaction, all or nothing), and recorded so that a rehire can be
//! reviewed: nothing is given back automatically.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind, Status};
use idplane_core::{Ctx, PrincipalId};
use idplane_store::leavers::{self, LeaverRecord};
use idplane_store::principals::{self, PrincipalFilter};
use idplane_store::{Page, WriteTx, consents, jobs as store_jobs, roles};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::directory::principals::{Staged, action, load, target};
use crate::oidc::logout::LogoutNotice;
use crate::{App, AppError, Result};

/// Why a user leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaverReason {
    /// The HR system terminated the employment.
    HrTermination,
    /// A contractor's end date passed.
    ContractorEnd,
    /// An administrator deprovisioned them.
    Admin,
    /// A SCIM client deprovisioned them.
    Scim,
}

impl LeaverReason {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HrTermination => "hr_termination",
            Self::ContractorEnd => "contractor_end",
            Self::Admin => "admin",
            Self::Scim => "scim",
        }
    }
}

/// Why a user leaves, and the HR change that caused it: both go into every
/// audit event of the leaver, so each step links to its cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaverCause {
    pub reason: LeaverReason,
    pub hr_change_id: Option<String>,
}

impl LeaverCause {
    /// A cause without an HR change.
    pub fn new(reason: LeaverReason) -> Self {
        Self {
            reason,
            hr_change_id: None,
        }
    }

    /// `event` with the cause in its details.
    fn stamp(&self, mut event: AuditEvent) -> AuditEvent {
        if !event.details.is_object() {
            event.details = Value::Object(Map::new());
        }
        if let Value::Object(details) = &mut event.details {
            details.insert("cause".into(), self.reason.as_str().into());
            details.insert("hr_change".into(), json!(self.hr_change_id));
        }
        event
    }
}

/// What staging a leaver produced, for the caller to commit and send.
#[derive(Debug)]
pub struct LeaverOutcome {
    /// The user as stored now: deprovisioned.
    pub user: Principal,
    /// The audit events to commit with the transaction.
    pub events: Vec<AuditEvent>,
    /// The back-channel logout notices to send once it committed
    /// ([`App::notify_logout`]).
    pub notices: Vec<LogoutNotice>,
}

/// Stages, inside `tx`, everything `user` loses as a leaver:
/// - status deprovisioned; sessions ended, refresh-token families revoked
///   (with back-channel notices), OAuth consents revoked;
/// - group memberships and role assignments removed, and recorded;
/// - service accounts and agents they own, and contractors they sponsor,
///   handed to their manager (`attributes.manager`) when that is another
///   active user, and flagged for review either way;
/// - their pending jobs cancelled.
///
/// The caller commits `events` and then sends `notices`.
pub(crate) async fn stage_leaver(
    app: &App,
    tx: &mut WriteTx,
    ctx: &Ctx,
    user: &Principal,
    cause: &LeaverCause,
) -> Result<LeaverOutcome> {
    if user.kind != PrincipalKind::User {
        return Err(AppError::Conflict(format!(
            "only users are deprovisioned as leavers, not a {}",
            user.kind.as_str()
        )));
    }
    let mut events = Vec::new();
    let left = Principal {
        status: Status::Deprovisioned,
        updated_at: ctx.now,
        version: user.version + 1,
        ..user.clone()
    };
    if !principals::update(
        tx,
        &left,
        &idplane_core::directory::name_key(&left.name),
        user.version,
    )
    .await?
    {
        return Err(AppError::VersionMismatch {
            current: user.version,
        });
    }

    let (ended, notices) = app.end_sign_ins(tx, ctx, &left).await?;
    events.push(cause.stamp(ended));
    let consents = revoke_consents(tx, ctx, user.id).await?;
    let memberships = remove_memberships(tx, ctx, user.id).await?;
    let assignments = remove_assignments(tx, ctx, user.id).await?;
    // What birthright gave is gone with the rest: a rehire's is fresh.
    idplane_store::lifecycle::delete_grants_of(tx, ctx.tenant, user.id).await?;
    let manager = active_manager(tx, ctx, user).await?;
    let mut handed_over = Vec::new();
    for (field, filter) in [
        (
            Dependence::Owner,
            PrincipalFilter {
                owner_id: Some(user.id),
                ..PrincipalFilter::default()
            },
        ),
        (
            Dependence::Sponsor,
            PrincipalFilter {
                sponsor_id: Some(user.id),
                ..PrincipalFilter::default()
            },
        ),
    ] {
        for dependant in all(tx, ctx, &filter).await? {
            let (entry, event) = hand_over(tx, ctx, user, manager, field, dependant).await?;
            handed_over.push(entry);
            events.push(cause.stamp(event));
        }
    }
    let jobs_cancelled = store_jobs::cancel_subject(tx, ctx.tenant, &user.id.to_string()).await?;
    // After the cancellation, which spares pushes (keyed by target): the
    // connected applications learn of the deprovisioning.
    crate::provisioning::enqueue_pushes(tx, ctx, user.id).await?;
    // Privileged access (PAM) plugs in here once it exists: checked-out
    // credentials and standing privileged grants end with the rest.

    let removed = json!({
        "memberships": memberships,
        "role_assignments": assignments,
        "consents": consents,
        "handed_over": handed_over,
    });
    let record = LeaverRecord {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: ctx.tenant,
        principal_id: user.id,
        cause: cause.reason.as_str().to_owned(),
        hr_change_id: cause.hr_change_id.clone(),
        removed: removed.clone(),
        created_at: ctx.now,
    };
    leavers::insert(tx, &record).await?;
    events.push(cause.stamp(
        AuditEvent::new(ctx, "user.deprovision", Some(target(&left))).with_details(json!({
            "record": record.id,
            "previous_status": user.status,
            "removed": removed,
            "jobs_cancelled": jobs_cancelled,
        })),
    ));
    Ok(LeaverOutcome {
        user: left,
        events,
        notices,
    })
}

/// Revokes every OAuth consent of `user`; returns what they were.
async fn revoke_consents(tx: &mut WriteTx, ctx: &Ctx, user: PrincipalId) -> Result<Vec<Value>> {
    let given = consents::of_principal(tx, ctx.tenant, user).await?;
    consents::delete(tx, ctx.tenant, user, None).await?;
    Ok(given
        .into_iter()
        .map(|c| json!({"client_id": c.client_id, "scopes": c.scopes}))
        .collect())
}

/// Removes `user` from every group; returns what the memberships were.
async fn remove_memberships(tx: &mut WriteTx, ctx: &Ctx, user: PrincipalId) -> Result<Vec<Value>> {
    let mut removed = Vec::new();
    for m in principals::memberships_of(tx, user).await? {
        let group = principals::by_id(tx, ctx.tenant, m.group_id).await?;
        principals::delete_membership(tx, m.group_id, user).await?;
        crate::provisioning::enqueue_pushes(tx, ctx, m.group_id).await?;
        removed.push(json!({
            "group_id": m.group_id.to_string(),
            "group": group.map(|g| g.name),
            "expires_at": m.expires_at,
        }));
    }
    Ok(removed)
}

/// Removes every role assignment `user` holds directly; returns them.
async fn remove_assignments(tx: &mut WriteTx, ctx: &Ctx, user: PrincipalId) -> Result<Vec<Value>> {
    let mut removed = Vec::new();
    for a in roles::assignments_of(tx, user).await? {
        let role = roles::by_id(tx, ctx.tenant, a.role_id).await?;
        roles::delete_assignment(tx, ctx.tenant, a.id).await?;
        removed.push(json!({
            "assignment_id": a.id.to_string(),
            "role_id": a.role_id.to_string(),
            "role": role.map(|r| r.name),
            "expires_at": a.expires_at,
        }));
    }
    Ok(removed)
}

/// The leaver's manager (`attributes.manager`, a principal id), if that is
/// another user active now.
async fn active_manager(
    tx: &mut WriteTx,
    ctx: &Ctx,
    user: &Principal,
) -> Result<Option<PrincipalId>> {
    let Some(id) = user
        .attributes
        .get("manager")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<PrincipalId>().ok())
    else {
        return Ok(None);
    };
    let manager = principals::by_id(tx, ctx.tenant, id).await?;
    Ok(manager
        .filter(|m| m.kind == PrincipalKind::User && m.id != user.id && m.is_active_at(ctx.now))
        .map(|m| m.id))
}

/// How a principal depends on the leaver.
#[derive(Clone, Copy, Debug)]
enum Dependence {
    /// A service account or agent they are accountable for.
    Owner,
    /// A contractor they sponsor.
    Sponsor,
}

/// Every principal matching `filter`, page by page.
async fn all(tx: &mut WriteTx, ctx: &Ctx, filter: &PrincipalFilter) -> Result<Vec<Principal>> {
    let mut found = Vec::new();
    let mut page = Page {
        after: None,
        limit: 500,
    };
    loop {
        let batch = principals::list(tx, ctx.tenant, filter, &page).await?;
        page.after = batch.items.last().map(|p| p.id.to_string());
        found.extend(batch.items);
        if !batch.more {
            return Ok(found);
        }
    }
}

/// Hands `dependant` to `manager` (or leaves it with the leaver when there
/// is none) and flags it for review. Returns the record entry and the event.
async fn hand_over(
    tx: &mut WriteTx,
    ctx: &Ctx,
    leaver: &Principal,
    manager: Option<PrincipalId>,
    field: Dependence,
    dependant: Principal,
) -> Result<(Value, AuditEvent)> {
    let (role, column) = match field {
        Dependence::Owner => ("owner", "owner_id"),
        Dependence::Sponsor => ("sponsor", "sponsor_id"),
    };
    let reason = match manager {
        Some(m) => format!("{role} `{}` left; handed to their manager {m}", leaver.name),
        None => format!(
            "{role} `{}` left and has no active manager; assign a new {role}",
            leaver.name
        ),
    };
    let mut next = dependant.clone();
    if let Some(m) = manager {
        match field {
            Dependence::Owner => next.owner_id = Some(m),
            Dependence::Sponsor => next.sponsor_id = Some(m),
        }
    }
    next.attributes
        .insert("review_required".into(), Value::Bool(true));
    next.attributes
        .insert("review_reason".into(), Value::String(reason.clone()));
    next.updated_at = ctx.now;
    next.version = dependant.version + 1;
    let key = idplane_core::directory::name_key(&next.name);
    if !principals::update(tx, &next, &key, dependant.version).await? {
        return Err(AppError::VersionMismatch {
            current: dependant.version,
        });
    }
    crate::provisioning::enqueue_pushes(tx, ctx, next.id).await?;
    let mut changed = vec!["attributes"];
    if manager.is_some() {
        changed.insert(0, column);
    }
    let entry = json!({
        "id": next.id.to_string(),
        "kind": next.kind,
        "name": next.name,
        "as": role,
        "handed_to": manager.map(|m| m.to_string()),
    });
    let event = AuditEvent::new(ctx, &action(next.kind, "update"), Some(target(&next)))
        .with_details(json!({
            "changed": changed,
            "review_reason": reason,
            "handed_to": manager.map(|m| m.to_string()),
        }));
    Ok((entry, event))
}

/// Writes a change to a user inside `tx`; a change to `deprovisioned` is a
/// leaver: the whole pipeline, with `reason` as its cause, not just a flag.
pub(crate) async fn stage_user_change(
    app: &App,
    tx: &mut WriteTx,
    ctx: &Ctx,
    current: &Principal,
    mut next: Principal,
    reason: LeaverReason,
) -> Result<Staged> {
    let leaves = next.status == Status::Deprovisioned && current.status != Status::Deprovisioned;
    if leaves {
        next.status = current.status;
    }
    let mut staged = app.stage_replace(tx, ctx, current, next, None).await?;
    if leaves {
        let left = stage_leaver(app, tx, ctx, &staged.principal, &LeaverCause::new(reason)).await?;
        staged.events.extend(left.events);
        staged.notices.extend(left.notices);
        staged.principal = left.user;
    }
    Ok(staged)
}

impl App {
    /// Deprovisions a user as a leaver (see [`stage_leaver`]) in a
    /// transaction of its own. A user already deprovisioned is returned
    /// as is.
    pub async fn deprovision_user(
        &self,
        ctx: &Ctx,
        id: PrincipalId,
        cause: LeaverCause,
    ) -> Result<Principal> {
        let mut tx = self.store().write().await?;
        let user = load(&mut tx, ctx, PrincipalKind::User, id).await?;
        if user.status == Status::Deprovisioned {
            return Ok(user);
        }
        let outcome = stage_leaver(self, &mut tx, ctx, &user, &cause).await?;
        tx.commit_all(outcome.events).await?;
        self.directory_changed();
        self.notify_logout(ctx, outcome.notices);
        Ok(outcome.user)
    }

    /// What the user's latest deprovisioning removed, if they ever left.
    pub async fn leaver_record(
        &self,
        ctx: &Ctx,
        user: PrincipalId,
    ) -> Result<Option<LeaverRecord>> {
        let mut conn = self.store().read().await?;
        load(&mut conn, ctx, PrincipalKind::User, user).await?;
        Ok(leavers::latest(&mut conn, ctx.tenant, user).await?)
    }
}
