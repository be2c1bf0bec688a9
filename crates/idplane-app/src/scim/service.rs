//! The SCIM operations on one resource: create, read, replace, delete. Each
//! is one transaction through the directory's own staging functions, so a
//! SCIM change is checked, audited and committed like a native one.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind, Status, name_key};
use idplane_core::{Ctx, PrincipalId};
use idplane_store::{Conn, WriteTx, principals};
use serde_json::Value;

use super::error::ScimError;
use super::groups::{self, GroupFields};
use super::schema::ResourceType;
use super::users::{self, UserFields};
use super::{parse_id, patch};
use crate::authn::password::stage_password;
use crate::directory::check_version;
use crate::directory::groups::{stage_add_member, stage_remove_member};
use crate::directory::principals::{load, stage_delete, stage_principal};
use crate::lifecycle::{LeaverCause, LeaverReason, stage_leaver, stage_user_change};
use crate::{App, AppError};

pub type ScimResult<T> = Result<T, ScimError>;

impl ResourceType {
    pub(crate) fn kind(self) -> PrincipalKind {
        match self {
            Self::User => PrincipalKind::User,
            Self::Group => PrincipalKind::Group,
        }
    }
}

impl App {
    /// The SCIM base URL (`meta.location` and `$ref` values start with it).
    pub fn scim_base(&self) -> String {
        format!("{}/scim/v2", self.issuer())
    }

    /// The resource `id` of type `rt`.
    pub async fn scim_get(&self, ctx: &Ctx, rt: ResourceType, id: &str) -> ScimResult<Value> {
        let id = parse_id(id)?;
        let mut conn = self.store().read().await.map_err(AppError::from)?;
        let p = load_resource(&mut conn, ctx, rt, id).await?;
        self.scim_resource(&mut conn, ctx, rt, &p).await
    }

    pub(crate) async fn scim_resource(
        &self,
        conn: &mut impl Conn,
        ctx: &Ctx,
        rt: ResourceType,
        p: &Principal,
    ) -> ScimResult<Value> {
        let base = self.scim_base();
        match rt {
            ResourceType::User => users::to_resource(conn, ctx, &base, p).await,
            ResourceType::Group => groups::to_resource(conn, ctx, &base, p).await,
        }
    }

    /// Creates a resource from a SCIM body.
    pub async fn scim_create(
        &self,
        ctx: &Ctx,
        rt: ResourceType,
        body: &Value,
    ) -> ScimResult<Value> {
        let created = match rt {
            ResourceType::User => self.scim_create_user(ctx, body).await?,
            ResourceType::Group => self.scim_create_group(ctx, body).await?,
        };
        self.directory_changed();
        let mut conn = self.store().read().await.map_err(AppError::from)?;
        self.scim_resource(&mut conn, ctx, rt, &created).await
    }

    async fn scim_create_user(&self, ctx: &Ctx, body: &Value) -> ScimResult<Principal> {
        let fields = UserFields::from_body(body)?;
        let user = fields.to_new_user(ctx)?;
        let hash = match &fields.password {
            Some(password) => Some(self.hash_new_password(ctx, &user, password, false).await?),
            None => None,
        };
        let mut tx = self.store().write().await.map_err(AppError::from)?;
        let mut events = stage_principal(&mut tx, ctx, &user, None).await?;
        if let Some(hash) = hash {
            events.push(stage_password(&mut tx, ctx, &user, hash, false).await?);
        }
        tx.commit_all(events).await.map_err(AppError::from)?;
        Ok(user)
    }

    async fn scim_create_group(&self, ctx: &Ctx, body: &Value) -> ScimResult<Principal> {
        let fields = GroupFields::from_body(body)?;
        let group = fields.to_new_group(ctx)?;
        let mut tx = self.store().write().await.map_err(AppError::from)?;
        let mut events = stage_principal(&mut tx, ctx, &group, None).await?;
        events.extend(set_members(&mut tx, ctx, &group, &fields.members).await?);
        tx.commit_all(events).await.map_err(AppError::from)?;
        Ok(group)
    }

    /// Replaces a resource (PUT): every writable attribute takes the body's
    /// value, absent ones are cleared.
    pub async fn scim_replace(
        &self,
        ctx: &Ctx,
        rt: ResourceType,
        id: &str,
        body: &Value,
        if_match: Option<i64>,
    ) -> ScimResult<Value> {
        let id = parse_id(id)?;
        match rt {
            ResourceType::User => {
                let fields = UserFields::from_body(body)?;
                self.scim_write_user(ctx, id, &fields, if_match).await
            }
            ResourceType::Group => {
                let fields = GroupFields::from_body(body)?;
                self.scim_write_group(ctx, id, &fields, if_match).await
            }
        }
    }

    /// Writes `fields` over user `id` in one transaction, with the password
    /// if the fields carry one.
    pub(crate) async fn scim_write_user(
        &self,
        ctx: &Ctx,
        id: PrincipalId,
        fields: &UserFields,
        if_match: Option<i64>,
    ) -> ScimResult<Value> {
        // The password is checked and hashed before the transaction: Argon2
        // must not hold the writer.
        let hash = match &fields.password {
            Some(password) => {
                let mut conn = self.store().read().await.map_err(AppError::from)?;
                let current = load_resource(&mut conn, ctx, ResourceType::User, id).await?;
                drop(conn);
                let next = fields.apply_to(&current)?;
                Some(self.hash_new_password(ctx, &next, password, false).await?)
            }
            None => None,
        };
        let mut tx = self.store().write().await.map_err(AppError::from)?;
        let current = load_resource(&mut tx, ctx, ResourceType::User, id).await?;
        check_version(if_match, current.version)?;
        let next = fields.apply_to(&current)?;
        // `active: false` makes a leaver: the whole pipeline, not a flag.
        let staged =
            stage_user_change(self, &mut tx, ctx, &current, next, LeaverReason::Scim).await?;
        let (user, mut events, notices) = (staged.principal, staged.events, staged.notices);
        if let Some(hash) = hash {
            events.push(stage_password(&mut tx, ctx, &user, hash, false).await?);
        }
        let resource = self
            .scim_resource(&mut tx, ctx, ResourceType::User, &user)
            .await?;
        tx.commit_all(events).await.map_err(AppError::from)?;
        self.directory_changed();
        self.notify_logout(ctx, notices);
        Ok(resource)
    }

    /// Writes `fields` over group `id`, its members made exactly the given
    /// ones; a change of members alone is a new version too.
    pub(crate) async fn scim_write_group(
        &self,
        ctx: &Ctx,
        id: PrincipalId,
        fields: &GroupFields,
        if_match: Option<i64>,
    ) -> ScimResult<Value> {
        let mut tx = self.store().write().await.map_err(AppError::from)?;
        let current = load_resource(&mut tx, ctx, ResourceType::Group, id).await?;
        check_version(if_match, current.version)?;
        let next = fields.apply_to(&current)?;
        let staged = self
            .stage_replace(&mut tx, ctx, &current, next, None)
            .await?;
        let mut events = staged.events;
        let member_events = set_members(&mut tx, ctx, &staged.principal, &fields.members).await?;
        let mut group = staged.principal;
        if events.is_empty() && !member_events.is_empty() {
            group = touch(&mut tx, ctx, group).await?;
        }
        events.extend(member_events);
        let resource = self
            .scim_resource(&mut tx, ctx, ResourceType::Group, &group)
            .await?;
        tx.commit_all(events).await.map_err(AppError::from)?;
        self.directory_changed();
        Ok(resource)
    }

    /// Applies a PATCH request. The operations apply to the resource as
    /// read, and the result is written only if nobody changed it meanwhile;
    /// without `If-Match` a concurrent change is retried a few times.
    pub async fn scim_patch(
        &self,
        ctx: &Ctx,
        rt: ResourceType,
        id: &str,
        body: &Value,
        if_match: Option<i64>,
    ) -> ScimResult<Value> {
        let ops = patch::parse(body)?;
        let id = parse_id(id)?;
        let mut attempts = 0;
        loop {
            let mut conn = self.store().read().await.map_err(AppError::from)?;
            let current = load_resource(&mut conn, ctx, rt, id).await?;
            check_version(if_match, current.version)?;
            let Value::Object(mut writable) =
                self.scim_resource(&mut conn, ctx, rt, &current).await?
            else {
                unreachable!("resources are objects");
            };
            drop(conn);
            for read_only in ["id", "meta", "groups"] {
                writable.remove(read_only);
            }
            patch::apply(rt, &mut writable, &ops)?;
            let body = Value::Object(writable);
            let written = match rt {
                ResourceType::User => {
                    let fields = UserFields::from_body(&body)?;
                    self.scim_write_user(ctx, id, &fields, Some(current.version))
                        .await
                }
                ResourceType::Group => {
                    let fields = GroupFields::from_body(&body)?;
                    self.scim_write_group(ctx, id, &fields, Some(current.version))
                        .await
                }
            };
            match written {
                Err(e) if e.status == 412 && if_match.is_none() && attempts < 3 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Deletes a resource.
    pub async fn scim_delete(
        &self,
        ctx: &Ctx,
        rt: ResourceType,
        id: &str,
        if_match: Option<i64>,
    ) -> ScimResult<()> {
        let id = parse_id(id)?;
        let mut tx = self.store().write().await.map_err(AppError::from)?;
        let p = load_resource(&mut tx, ctx, rt, id).await?;
        check_version(if_match, p.version)?;
        // A user deleted by a provisioning client leaves first: sessions,
        // tokens and consents end, what they own goes to their manager.
        let mut events = Vec::new();
        let mut notices = Vec::new();
        if rt == ResourceType::User && p.status != Status::Deprovisioned {
            let left = stage_leaver(
                self,
                &mut tx,
                ctx,
                &p,
                &LeaverCause::new(LeaverReason::Scim),
            )
            .await?;
            events = left.events;
            notices = left.notices;
        }
        events.push(stage_delete(&mut tx, ctx, &p).await?);
        tx.commit_all(events).await.map_err(AppError::from)?;
        self.directory_changed();
        self.notify_logout(ctx, notices);
        Ok(())
    }
}

/// The principal `id` if it is a resource of type `rt`.
pub(crate) async fn load_resource(
    conn: &mut impl Conn,
    ctx: &Ctx,
    rt: ResourceType,
    id: PrincipalId,
) -> ScimResult<Principal> {
    load(conn, ctx, rt.kind(), id)
        .await
        .map_err(|_| ScimError::not_found(format!("{} `{id}` not found", rt.name())))
}

/// Makes the direct members of `group` exactly `wanted`; returns the audit
/// events of the memberships added and removed.
pub(crate) async fn set_members(
    tx: &mut WriteTx,
    ctx: &Ctx,
    group: &Principal,
    wanted: &[PrincipalId],
) -> ScimResult<Vec<AuditEvent>> {
    let current: Vec<PrincipalId> = principals::members(tx, group.id)
        .await
        .map_err(AppError::from)?
        .into_iter()
        .filter(|m| idplane_core::time::in_force(m.expires_at, ctx.now))
        .map(|m| m.member_id)
        .collect();
    let mut events = Vec::new();
    for id in current.iter().filter(|id| !wanted.contains(id)) {
        let member = groups::load_member(tx, ctx, *id).await?;
        events.push(stage_remove_member(tx, ctx, group, &member).await?);
    }
    for id in wanted.iter().filter(|id| !current.contains(id)) {
        let member = groups::load_member(tx, ctx, *id).await?;
        let (_, event) = stage_add_member(tx, ctx, group, &member, None).await?;
        events.push(event);
    }
    Ok(events)
}

/// A new version of `p` with nothing else changed (its members did).
async fn touch(tx: &mut WriteTx, ctx: &Ctx, p: Principal) -> ScimResult<Principal> {
    let next = Principal {
        updated_at: ctx.now,
        version: p.version + 1,
        ..p.clone()
    };
    if !principals::update(tx, &next, &name_key(&next.name), p.version)
        .await
        .map_err(AppError::from)?
    {
        return Err(AppError::VersionMismatch { current: p.version }.into());
    }
    Ok(next)
}
