//! Effective access: what a principal is granted right now, through direct
//! assignments and (nested) group memberships. Evaluated at `ctx.now`, so an
//! expired assignment or membership stops granting at that instant, whether
//! or not any background job has run.

use std::collections::BTreeSet;

use idplane_core::directory::{Entitlement, Principal};
use idplane_core::time::in_force;
use idplane_core::{Ctx, PrincipalId, Timestamp};
use idplane_store::{principals, roles};

use super::principals::load;
use crate::{App, Result};

/// A role held at the moment of evaluation, and through whom.
#[derive(Clone, Debug)]
pub struct HeldRole {
    pub role_id: idplane_core::RoleId,
    pub role_name: String,
    /// The principal the role is assigned to: the subject or one of its groups.
    pub via: PrincipalId,
    pub expires_at: Option<Timestamp>,
}

/// What a principal may do at `evaluated_at`.
#[derive(Clone, Debug)]
pub struct Access {
    pub principal: Principal,
    pub evaluated_at: Timestamp,
    /// False for suspended, deprovisioned, ended or expired principals,
    /// which hold nothing.
    pub active: bool,
    pub groups: Vec<PrincipalId>,
    pub roles: Vec<HeldRole>,
    pub entitlements: BTreeSet<Entitlement>,
}

impl App {
    /// The effective access of a principal of any kind at `ctx.now`.
    pub async fn access(&self, ctx: &Ctx, id: PrincipalId) -> Result<Access> {
        let mut conn = self.store().read().await?;
        access_with(&mut conn, ctx, id).await
    }
}

/// [`App::access`] on a connection the caller holds: a use case inside a
/// write transaction reads through it rather than waiting for another
/// connection while it holds the writer.
pub(crate) async fn access_with(
    conn: &mut impl idplane_store::Conn,
    ctx: &Ctx,
    id: PrincipalId,
) -> Result<Access> {
    let principal = principals::by_id(conn, ctx.tenant, id)
        .await?
        .ok_or_else(|| crate::AppError::NotFound(format!("principal `{id}`")))?;
    let kind = principal.kind;
    let principal = load(conn, ctx, kind, id).await?;
    let mut access = Access {
        active: principal.is_active_at(ctx.now),
        principal,
        evaluated_at: ctx.now,
        groups: Vec::new(),
        roles: Vec::new(),
        entitlements: BTreeSet::new(),
    };
    if !access.active {
        return Ok(access);
    }
    access.groups = principals::transitive_groups(conn, id, Some(ctx.now))
        .await?
        .ids;
    let holders = std::iter::once(id)
        .chain(access.groups.iter().copied())
        .collect::<Vec<_>>();
    for holder in holders {
        for assignment in roles::assignments_of(conn, holder).await? {
            if !in_force(assignment.expires_at, ctx.now) {
                continue;
            }
            if let Some(role) = roles::by_id(conn, ctx.tenant, assignment.role_id).await? {
                access
                    .entitlements
                    .extend(role.entitlements.iter().cloned());
                access.roles.push(HeldRole {
                    role_id: role.id,
                    role_name: role.name,
                    via: holder,
                    expires_at: assignment.expires_at,
                });
            }
        }
    }
    Ok(access)
}
