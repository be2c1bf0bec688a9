//! Users, service accounts and agents (groups are in `groups`): create,
//! read, update with optimistic concurrency, delete, list.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{
    Principal, PrincipalKind, Status, UserType, name_key, normalize_email, normalize_external_id,
    normalize_name, normalize_text,
};
use idplane_core::{Ctx, PrincipalId, Timestamp, ValidationError};
use idplane_store::grants::FamilyFilter;
use idplane_store::principals::{self, PrincipalFilter};
use idplane_store::{Conn, Page, Paged, WriteTx};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::{check_version, resolve_principal};
use crate::lifecycle::birthright::{Birthright, stage_birthright};
use crate::oidc::logout::LogoutNotice;
use crate::{App, AppError, Field, Result};

/// Largest accepted attributes object, serialised.
const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// Creates a user.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Unique per tenant, case-insensitively.
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// Correlation id from the HR system or a SCIM client.
    pub external_id: Option<String>,
    /// `employee` (default) or `contractor`.
    pub user_type: Option<UserType>,
    /// Joiners: the account grants nothing before this instant.
    #[schema(value_type = Option<String>)]
    pub start_date: Option<Timestamp>,
    /// Required for contractors: the end of the engagement.
    #[schema(value_type = Option<String>)]
    pub end_date: Option<Timestamp>,
    /// Required for contractors: the accountable user (id or username).
    pub sponsor: Option<String>,
    pub status: Option<Status>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

/// Changes a user (JSON Merge Patch: absent keeps, null clears).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub username: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub display_name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub email: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub external_id: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<UserType>)]
    pub user_type: Field<UserType>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub start_date: Field<Timestamp>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub end_date: Field<Timestamp>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub sponsor: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<Status>)]
    pub status: Field<Status>,
    /// Merged into the current attributes (RFC 7396: `null` removes a key).
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

/// Creates a service account or an agent.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNonHuman {
    pub name: String,
    pub display_name: Option<String>,
    /// The accountable human (user id or username).
    pub owner: String,
    /// What it is for.
    pub purpose: String,
    /// When it stops existing.
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    pub external_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

/// Changes a service account or agent (JSON Merge Patch).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNonHuman {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub display_name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub owner: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub purpose: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub expires_at: Field<Timestamp>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub external_id: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<Status>)]
    pub status: Field<Status>,
    /// Merged into the current attributes (RFC 7396: `null` removes a key).
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

impl App {
    /// Creates a user.
    pub async fn create_user(&self, ctx: &Ctx, cmd: CreateUser) -> Result<Principal> {
        let mut tx = self.store().write().await?;
        let user = new_user(&mut tx, ctx, cmd).await?;
        self.insert_principal(ctx, tx, user).await
    }

    /// Creates a service account or agent (`kind`).
    pub async fn create_non_human(
        &self,
        ctx: &Ctx,
        kind: PrincipalKind,
        cmd: CreateNonHuman,
    ) -> Result<Principal> {
        let mut tx = self.store().write().await?;
        let owner = resolve_principal(&mut tx, ctx, &cmd.owner, PrincipalKind::User)
            .await?
            .id;
        let p = Principal {
            id: PrincipalId::generate(),
            tenant_id: ctx.tenant,
            kind,
            name: normalize_name("name", &cmd.name)?,
            display_name: normalize_text("display_name", cmd.display_name.as_deref())?,
            email: None,
            external_id: normalize_external_id(cmd.external_id.as_deref())?,
            status: Status::Active,
            user_type: None,
            start_date: None,
            end_date: None,
            sponsor_id: None,
            owner_id: Some(owner),
            purpose: normalize_text("purpose", Some(&cmd.purpose))?,
            expires_at: cmd.expires_at,
            attributes: check_attributes(cmd.attributes.unwrap_or_default())?,
            created_at: ctx.now,
            updated_at: ctx.now,
            version: 1,
        };
        self.insert_principal(ctx, tx, p).await
    }

    pub(crate) async fn insert_principal(
        &self,
        ctx: &Ctx,
        mut tx: WriteTx,
        p: Principal,
    ) -> Result<Principal> {
        let events = stage_principal(&mut tx, ctx, &p, None).await?;
        tx.commit_all(events).await?;
        self.directory_changed();
        Ok(p)
    }

    /// The principal with `id`, of `kind`.
    pub async fn principal(
        &self,
        ctx: &Ctx,
        kind: PrincipalKind,
        id: PrincipalId,
    ) -> Result<Principal> {
        let mut conn = self.store().read().await?;
        principals::by_id(&mut conn, ctx.tenant, id)
            .await?
            .filter(|p| p.kind == kind)
            .ok_or_else(|| AppError::NotFound(format!("{} `{id}`", kind.as_str())))
    }

    /// Principals matching `filter`, in creation order.
    pub async fn principals(
        &self,
        ctx: &Ctx,
        filter: &PrincipalFilter,
        page: &Page,
    ) -> Result<Paged<Principal>> {
        let mut conn = self.store().read().await?;
        Ok(principals::list(&mut conn, ctx.tenant, filter, page).await?)
    }

    /// Changes a user.
    pub async fn update_user(
        &self,
        ctx: &Ctx,
        id: PrincipalId,
        cmd: UpdateUser,
        if_match: Option<i64>,
    ) -> Result<Principal> {
        let mut tx = self.store().write().await?;
        let current = load(&mut tx, ctx, PrincipalKind::User, id).await?;
        check_version(if_match, current.version)?;
        let sponsor = match cmd.sponsor {
            Field::Set(s) => Some(
                resolve_principal(&mut tx, ctx, &s, PrincipalKind::User)
                    .await?
                    .id,
            ),
            Field::Clear => None,
            Field::Keep => current.sponsor_id,
        };
        let next = Principal {
            name: normalize_name(
                "username",
                &cmd.username.require("username", current.name.clone())?,
            )?,
            display_name: merge_text("display_name", cmd.display_name, &current.display_name)?,
            email: cmd
                .email
                .try_map(|e| normalize_email(&e))?
                .apply(current.email.clone()),
            external_id: merge_external_id(cmd.external_id, &current.external_id)?,
            user_type: current
                .user_type
                .map(|t| cmd.user_type.require("user_type", t))
                .transpose()?,
            start_date: cmd.start_date.apply(current.start_date),
            end_date: cmd.end_date.apply(current.end_date),
            sponsor_id: sponsor,
            status: cmd.status.require("status", current.status)?,
            attributes: merge_attributes(&current.attributes, cmd.attributes)?,
            ..current.clone()
        };
        let staged = crate::lifecycle::stage_user_change(
            self,
            &mut tx,
            ctx,
            &current,
            next,
            crate::lifecycle::LeaverReason::Admin,
        )
        .await?;
        self.commit_staged(ctx, tx, staged).await
    }

    /// Changes a service account or agent.
    pub async fn update_non_human(
        &self,
        ctx: &Ctx,
        kind: PrincipalKind,
        id: PrincipalId,
        cmd: UpdateNonHuman,
        if_match: Option<i64>,
    ) -> Result<Principal> {
        let mut tx = self.store().write().await?;
        let current = load(&mut tx, ctx, kind, id).await?;
        check_version(if_match, current.version)?;
        let owner = match cmd.owner {
            Field::Set(o) => Some(
                resolve_principal(&mut tx, ctx, &o, PrincipalKind::User)
                    .await?
                    .id,
            ),
            Field::Keep => current.owner_id,
            Field::Clear => return Err(ValidationError::new("owner", "cannot be null").into()),
        };
        let next = Principal {
            name: normalize_name("name", &cmd.name.require("name", current.name.clone())?)?,
            display_name: merge_text("display_name", cmd.display_name, &current.display_name)?,
            owner_id: owner,
            purpose: match cmd.purpose {
                Field::Set(p) => normalize_text("purpose", Some(&p))?,
                Field::Keep => current.purpose.clone(),
                Field::Clear => None,
            },
            expires_at: cmd.expires_at.apply(current.expires_at),
            external_id: merge_external_id(cmd.external_id, &current.external_id)?,
            status: cmd.status.require("status", current.status)?,
            attributes: merge_attributes(&current.attributes, cmd.attributes)?,
            ..current.clone()
        };
        self.replace_principal(ctx, tx, current, next).await
    }

    pub(crate) async fn replace_principal(
        &self,
        ctx: &Ctx,
        mut tx: WriteTx,
        current: Principal,
        next: Principal,
    ) -> Result<Principal> {
        let staged = self
            .stage_replace(&mut tx, ctx, &current, next, None)
            .await?;
        self.commit_staged(ctx, tx, staged).await
    }

    /// Commits a staged change, then tells caches and relying parties.
    pub(crate) async fn commit_staged(
        &self,
        ctx: &Ctx,
        tx: WriteTx,
        staged: Staged,
    ) -> Result<Principal> {
        tx.commit_all(staged.events).await?;
        self.directory_changed();
        self.notify_logout(ctx, staged.notices);
        Ok(staged.principal)
    }

    /// Writes `next` over `current` inside `tx` (nothing when nothing
    /// changed), with the birthright it implies; the caller commits the
    /// events and, after the commit, sends the back-channel logout notices.
    /// `rules`: the tenant's birthright rules when the caller has them loaded.
    pub(crate) async fn stage_replace(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        current: &Principal,
        mut next: Principal,
        rules: Option<&Birthright>,
    ) -> Result<Staged> {
        let changed = changed_fields(current, &next);
        if changed.is_empty() {
            // Nothing to change: no new version, no audit event.
            return Ok(Staged {
                principal: current.clone(),
                events: Vec::new(),
                notices: Vec::new(),
            });
        }
        next.updated_at = ctx.now;
        next.version = current.version + 1;
        next.check()?;
        check_accountable(tx, ctx, &next).await?;
        if !principals::update(tx, &next, &name_key(&next.name), current.version).await? {
            return Err(AppError::VersionMismatch {
                current: current.version,
            });
        }
        let mut events = vec![
            AuditEvent::new(ctx, &action(next.kind, "update"), Some(target(&next)))
                .with_details(json!({"changed": changed})),
        ];
        let mut notices = Vec::new();
        if current.status == Status::Active && next.status != Status::Active {
            // Suspension and deprovisioning take effect on running sessions too.
            let (event, ended) = self.end_sign_ins(tx, ctx, &next).await?;
            events.push(event);
            notices = ended;
        }
        crate::lifecycle::schedule_user_jobs(tx, ctx, Some(current), &next).await?;
        events.extend(birthright(tx, ctx, &next, Some(current), rules).await?);
        crate::provisioning::enqueue_pushes(tx, ctx, next.id).await?;
        Ok(Staged {
            principal: next,
            events,
            notices,
        })
    }

    /// Ends every session of `p` and revokes the refresh tokens relying
    /// parties hold for them, inside `tx`. Returns the `session.end_all`
    /// event and the back-channel notices to send once `tx` committed.
    pub(crate) async fn end_sign_ins(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        p: &Principal,
    ) -> Result<(AuditEvent, Vec<LogoutNotice>)> {
        let ended = idplane_store::sessions::end_all(tx, p.id, ctx.now).await?;
        let notices = self
            .revoke_for_logout(tx, ctx, FamilyFilter::Principal(p.id))
            .await?;
        let event = AuditEvent::new(ctx, "session.end_all", Some(target(p))).with_details(json!({
            "ended": ended,
            "reason": p.status,
            "clients_signed_out": notices.len(),
        }));
        Ok((event, notices))
    }

    /// Deletes a principal with its memberships and role assignments.
    /// Refused while it is the sponsor or owner of another principal.
    pub async fn delete_principal(
        &self,
        ctx: &Ctx,
        kind: PrincipalKind,
        id: PrincipalId,
        if_match: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.store().write().await?;
        let current = load(&mut tx, ctx, kind, id).await?;
        check_version(if_match, current.version)?;
        let event = stage_delete(&mut tx, ctx, &current).await?;
        tx.commit(event).await?;
        self.directory_changed();
        Ok(())
    }
}

/// Deletes `p` inside `tx`, refused while it sponsors or owns another
/// principal; returns the audit event.
pub(crate) async fn stage_delete(tx: &mut WriteTx, ctx: &Ctx, p: &Principal) -> Result<AuditEvent> {
    let dependants = principals::dependants(tx, p.id).await?;
    if dependants > 0 {
        return Err(AppError::Conflict(format!(
            "{} `{}` is the sponsor or owner of {dependants} principal(s); reassign them first",
            p.kind.as_str(),
            p.name
        )));
    }
    // Before the deletion: the pushes need the principal's remote ids.
    crate::provisioning::before_delete(tx, ctx, p).await?;
    principals::delete(tx, ctx.tenant, p.id).await?;
    idplane_store::jobs::cancel_subject(tx, ctx.tenant, &p.id.to_string()).await?;
    Ok(
        AuditEvent::new(ctx, &action(p.kind, "delete"), Some(target(p)))
            .with_details(json!({"name": p.name})),
    )
}

/// A change written inside a transaction, not yet committed.
pub(crate) struct Staged {
    pub principal: Principal,
    pub events: Vec<AuditEvent>,
    /// Back-channel logout notices to send once committed.
    pub notices: Vec<LogoutNotice>,
}

/// A new user from `cmd`, normalised, its sponsor resolved; not yet stored.
pub(crate) async fn new_user(tx: &mut WriteTx, ctx: &Ctx, cmd: CreateUser) -> Result<Principal> {
    let sponsor = match cmd.sponsor.as_deref() {
        Some(s) => Some(resolve_principal(tx, ctx, s, PrincipalKind::User).await?.id),
        None => None,
    };
    Ok(Principal {
        id: PrincipalId::generate(),
        tenant_id: ctx.tenant,
        kind: PrincipalKind::User,
        name: normalize_name("username", &cmd.username)?,
        display_name: normalize_text("display_name", cmd.display_name.as_deref())?,
        email: cmd.email.as_deref().map(normalize_email).transpose()?,
        external_id: normalize_external_id(cmd.external_id.as_deref())?,
        status: cmd.status.unwrap_or(Status::Active),
        user_type: Some(cmd.user_type.unwrap_or(UserType::Employee)),
        start_date: cmd.start_date,
        end_date: cmd.end_date,
        sponsor_id: sponsor,
        owner_id: None,
        purpose: None,
        expires_at: None,
        attributes: check_attributes(cmd.attributes.unwrap_or_default())?,
        created_at: ctx.now,
        updated_at: ctx.now,
        version: 1,
    })
}

/// Checks and inserts a principal inside `tx`, with the jobs its dates call
/// for; returns the audit events to commit with it.
pub(crate) async fn stage_principal(
    tx: &mut WriteTx,
    ctx: &Ctx,
    p: &Principal,
    rules: Option<&Birthright>,
) -> Result<Vec<AuditEvent>> {
    let mut events = stage_principals(tx, ctx, std::slice::from_ref(p), rules).await?;
    Ok(events.pop().unwrap_or_default())
}

/// [`stage_principal`] for many new principals at once (an HR import's
/// joiners): the rows go in a few statements rather than several each.
/// A sponsor or owner may be one of `ps`. Returns each one's audit events,
/// in order.
pub(crate) async fn stage_principals(
    tx: &mut WriteTx,
    ctx: &Ctx,
    ps: &[Principal],
    rules: Option<&Birthright>,
) -> Result<Vec<Vec<AuditEvent>>> {
    for p in ps {
        p.check()?;
    }
    let keys: Vec<String> = ps.iter().map(|p| name_key(&p.name)).collect();
    let rows: Vec<(&Principal, &str)> = ps.iter().zip(keys.iter().map(String::as_str)).collect();
    principals::insert_all(tx, &rows).await?;
    for p in ps {
        check_accountable(tx, ctx, p).await?;
        crate::lifecycle::schedule_user_jobs(tx, ctx, None, p).await?;
    }
    let ids: Vec<PrincipalId> = ps.iter().map(|p| p.id).collect();
    crate::provisioning::enqueue_pushes_all(tx, ctx, &ids).await?;
    let granted = match rules {
        Some(rules) => rules.stage_new(tx, ctx, ps).await?,
        None => {
            Birthright::load(tx, ctx.tenant)
                .await?
                .stage_new(tx, ctx, ps)
                .await?
        }
    };
    Ok(ps
        .iter()
        .zip(granted)
        .map(|(p, granted)| {
            let mut events = vec![
                AuditEvent::new(ctx, &action(p.kind, "create"), Some(target(p)))
                    .with_details(json!({"name": p.name, "status": p.status})),
            ];
            events.extend(granted);
            events
        })
        .collect())
}

/// A user's birthright after a change, recomputed with `rules` or the
/// tenant's rules.
async fn birthright(
    tx: &mut WriteTx,
    ctx: &Ctx,
    p: &Principal,
    before: Option<&Principal>,
    rules: Option<&Birthright>,
) -> Result<Vec<AuditEvent>> {
    match rules {
        Some(rules) => rules.stage(tx, ctx, p, before).await,
        None => stage_birthright(tx, ctx, p, before).await,
    }
}

/// Loads a principal of `kind` inside a transaction.
pub(crate) async fn load(
    conn: &mut impl Conn,
    ctx: &Ctx,
    kind: PrincipalKind,
    id: PrincipalId,
) -> Result<Principal> {
    principals::by_id(conn, ctx.tenant, id)
        .await?
        .filter(|p| p.kind == kind)
        .ok_or_else(|| AppError::NotFound(format!("{} `{id}`", kind.as_str())))
}

/// Sponsors and owners must be active users of the same tenant.
async fn check_accountable(conn: &mut impl Conn, ctx: &Ctx, p: &Principal) -> Result<()> {
    for (field, id) in [("sponsor", p.sponsor_id), ("owner", p.owner_id)] {
        let Some(id) = id else { continue };
        let human = principals::by_id(conn, ctx.tenant, id).await?;
        match human {
            Some(h) if h.kind == PrincipalKind::User && h.is_active_at(ctx.now) && h.id != p.id => {
            }
            _ => {
                return Err(ValidationError::new(
                    if field == "sponsor" {
                        "sponsor"
                    } else {
                        "owner"
                    },
                    format!("the {field} must be another active user of this tenant"),
                )
                .into());
            }
        }
    }
    Ok(())
}

pub(crate) fn merge_text(
    field: &'static str,
    update: Field<String>,
    current: &Option<String>,
) -> Result<Option<String>> {
    Ok(update
        .try_map(|t| normalize_text(field, Some(&t)))?
        .apply(Some(current.clone()))
        .flatten())
}

pub(crate) fn merge_external_id(
    update: Field<String>,
    current: &Option<String>,
) -> Result<Option<String>> {
    Ok(update
        .try_map(|t| normalize_external_id(Some(&t)))?
        .apply(Some(current.clone()))
        .flatten())
}

/// The current attributes with a merge patch applied, bounded in size.
pub(crate) fn merge_attributes(
    current: &Map<String, Value>,
    patch: Option<Map<String, Value>>,
) -> Result<Map<String, Value>, ValidationError> {
    let mut merged = current.clone();
    if let Some(patch) = patch {
        crate::field::merge_patch(&mut merged, patch);
    }
    check_attributes(merged)
}

/// Attributes are free-form JSON, bounded in size.
pub(crate) fn check_attributes(
    attributes: Map<String, Value>,
) -> Result<Map<String, Value>, ValidationError> {
    let size = serde_json::to_string(&attributes)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if size > MAX_ATTRIBUTES_BYTES {
        return Err(ValidationError::new(
            "attributes",
            format!("must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"),
        ));
    }
    Ok(attributes)
}

/// The audit action for `verb` on a principal of `kind`, e.g. `user.create`.
pub(crate) fn action(kind: PrincipalKind, verb: &str) -> String {
    format!("{}.{verb}", kind.as_str())
}

/// The audit target of a principal, e.g. `user:<id>`.
pub(crate) fn target(p: &Principal) -> String {
    format!("{}:{}", p.kind.as_str(), p.id)
}

fn changed_fields(a: &Principal, b: &Principal) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("name", a.name != b.name);
    check("display_name", a.display_name != b.display_name);
    check("email", a.email != b.email);
    check("external_id", a.external_id != b.external_id);
    check("status", a.status != b.status);
    check("user_type", a.user_type != b.user_type);
    check("start_date", a.start_date != b.start_date);
    check("end_date", a.end_date != b.end_date);
    check("sponsor_id", a.sponsor_id != b.sponsor_id);
    check("owner_id", a.owner_id != b.owner_id);
    check("purpose", a.purpose != b.purpose);
    check("expires_at", a.expires_at != b.expires_at);
    check("attributes", a.attributes != b.attributes);
    changed
}
