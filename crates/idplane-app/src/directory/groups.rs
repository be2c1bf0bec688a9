//! Groups and memberships: nesting is allowed, cycles are refused, and a
//! membership may expire like a role assignment.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{
    Membership, Principal, PrincipalKind, Status, normalize_external_id, normalize_group_name,
    normalize_text,
};
use idplane_core::{Ctx, PrincipalId, Timestamp};
use idplane_store::{WriteTx, principals};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::principals::{
    check_attributes, load, merge_attributes, merge_external_id, merge_text, target,
};
use super::{Expiry, check_version, resolve_principal};
use crate::{App, AppError, Field, Result};

/// Creates a group.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Unique per tenant, case-insensitively.
    pub name: String,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

/// Changes a group (JSON Merge Patch).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub display_name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub external_id: Field<String>,
    /// Merged into the current attributes (RFC 7396: `null` removes a key).
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

/// Adds a member to a group.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The member: an id, `kind:name` (e.g. `group:eng`), or a username.
    pub member: String,
    #[serde(flatten)]
    pub expiry: Expiry,
}

/// A member of a group, with the principal it names.
#[derive(Clone, Debug)]
pub struct Member {
    pub membership: Membership,
    pub principal: Principal,
}

impl App {
    /// Creates a group.
    pub async fn create_group(&self, ctx: &Ctx, cmd: CreateGroup) -> Result<Principal> {
        let tx = self.store().write().await?;
        let group = Principal {
            id: PrincipalId::generate(),
            tenant_id: ctx.tenant,
            kind: PrincipalKind::Group,
            name: normalize_group_name("name", &cmd.name)?,
            display_name: normalize_text("display_name", cmd.display_name.as_deref())?,
            email: None,
            external_id: normalize_external_id(cmd.external_id.as_deref())?,
            status: Status::Active,
            user_type: None,
            start_date: None,
            end_date: None,
            sponsor_id: None,
            owner_id: None,
            purpose: None,
            expires_at: None,
            attributes: check_attributes(cmd.attributes.unwrap_or_default())?,
            created_at: ctx.now,
            updated_at: ctx.now,
            version: 1,
        };
        self.insert_principal(ctx, tx, group).await
    }

    /// Changes a group.
    pub async fn update_group(
        &self,
        ctx: &Ctx,
        id: PrincipalId,
        cmd: UpdateGroup,
        if_match: Option<i64>,
    ) -> Result<Principal> {
        let mut tx = self.store().write().await?;
        let current = load(&mut tx, ctx, PrincipalKind::Group, id).await?;
        check_version(if_match, current.version)?;
        let next = Principal {
            name: normalize_group_name("name", &cmd.name.require("name", current.name.clone())?)?,
            display_name: merge_text("display_name", cmd.display_name, &current.display_name)?,
            external_id: merge_external_id(cmd.external_id, &current.external_id)?,
            attributes: merge_attributes(&current.attributes, cmd.attributes)?,
            ..current.clone()
        };
        self.replace_principal(ctx, tx, current, next).await
    }

    /// Adds a member (or changes its expiry). Refuses a membership that
    /// would make a group a member of itself, directly or through nesting.
    pub async fn add_member(
        &self,
        ctx: &Ctx,
        group: PrincipalId,
        cmd: AddMember,
    ) -> Result<Member> {
        let expires_at = cmd.expiry.resolve(ctx.now)?;
        let mut tx = self.store().write().await?;
        let group = load(&mut tx, ctx, PrincipalKind::Group, group).await?;
        let member = resolve_principal(&mut tx, ctx, &cmd.member, PrincipalKind::User).await?;
        let (membership, event) =
            stage_add_member(&mut tx, ctx, &group, &member, expires_at).await?;
        tx.commit(event).await?;
        self.directory_changed();
        Ok(Member {
            membership,
            principal: member,
        })
    }

    /// Removes a member.
    pub async fn remove_member(&self, ctx: &Ctx, group: PrincipalId, member: &str) -> Result<()> {
        let mut tx = self.store().write().await?;
        let group = load(&mut tx, ctx, PrincipalKind::Group, group).await?;
        let member = resolve_principal(&mut tx, ctx, member, PrincipalKind::User).await?;
        let event = stage_remove_member(&mut tx, ctx, &group, &member).await?;
        tx.commit(event).await?;
        self.directory_changed();
        Ok(())
    }

    /// The direct members of a group, with expired memberships marked by
    /// their `expires_at` (callers compare with `ctx.now`).
    pub async fn members(&self, ctx: &Ctx, group: PrincipalId) -> Result<Vec<Member>> {
        let mut conn = self.store().read().await?;
        load(&mut conn, ctx, PrincipalKind::Group, group).await?;
        let mut members = Vec::new();
        for membership in principals::members(&mut conn, group).await? {
            if let Some(principal) =
                principals::by_id(&mut conn, ctx.tenant, membership.member_id).await?
            {
                members.push(Member {
                    membership,
                    principal,
                });
            }
        }
        Ok(members)
    }
}

/// Adds `member` to `group` (or changes its expiry) inside `tx`, refusing a
/// cycle; returns the membership and its audit event.
pub(crate) async fn stage_add_member(
    tx: &mut WriteTx,
    ctx: &Ctx,
    group: &Principal,
    member: &Principal,
    expires_at: Option<Timestamp>,
) -> Result<(Membership, AuditEvent)> {
    if member.kind == PrincipalKind::Group {
        // Expired memberships count too: renewing one must not close a cycle.
        let ancestors = principals::transitive_groups(tx, group.id, None).await?;
        if member.id == group.id || ancestors.ids.contains(&member.id) {
            return Err(AppError::Conflict(format!(
                "adding group `{}` to `{}` would make a group a member of itself",
                member.name, group.name
            )));
        }
    }
    let membership = Membership {
        group_id: group.id,
        member_id: member.id,
        expires_at,
        created_at: ctx.now,
    };
    principals::upsert_membership(tx, ctx.tenant, &membership).await?;
    crate::provisioning::enqueue_pushes(tx, ctx, group.id).await?;
    crate::provisioning::enqueue_member_pushes(tx, ctx, member).await?;
    let event = AuditEvent::new(ctx, "group.member.add", Some(target(group))).with_details(json!({
        "member": target(member),
        "expires_at": expires_at,
    }));
    Ok((membership, event))
}

/// Removes `member` from `group` inside `tx`; returns the audit event.
pub(crate) async fn stage_remove_member(
    tx: &mut WriteTx,
    ctx: &Ctx,
    group: &Principal,
    member: &Principal,
) -> Result<AuditEvent> {
    if !principals::delete_membership(tx, group.id, member.id).await? {
        return Err(AppError::NotFound(format!(
            "membership of `{}` in `{}`",
            member.name, group.name
        )));
    }
    crate::provisioning::enqueue_pushes(tx, ctx, group.id).await?;
    crate::provisioning::enqueue_member_pushes(tx, ctx, member).await?;
    Ok(
        AuditEvent::new(ctx, "group.member.remove", Some(target(group)))
            .with_details(json!({"member": target(member)})),
    )
}
