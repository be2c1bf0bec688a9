//! Roles (named bundles of entitlements) and their assignments.

use std::collections::BTreeSet;

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{
    Entitlement, Role, RoleAssignment, name_key, normalize_name, normalize_text,
};
use idplane_core::{AssignmentId, Ctx, RoleId, ValidationError};
use idplane_store::roles::{self, AssignmentFilter};
use idplane_store::{Conn, Page, Paged};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::principals::target as principal_target;
use super::{Expiry, check_version, resolve_principal};
use crate::{App, AppError, Field, Result};

/// Most entitlements in one role.
const MAX_ENTITLEMENTS: usize = 256;

/// Creates a role.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub entitlements: Vec<Entitlement>,
}

/// Changes a role (JSON Merge Patch; `entitlements` replaces the list).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Field<String>,
    pub entitlements: Option<Vec<Entitlement>>,
}

/// Grants a role to a principal or group.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRole {
    /// The role's id or name.
    pub role: String,
    /// The grantee: an id, `kind:name` (e.g. `group:eng`), or a username.
    pub principal: String,
    #[serde(flatten)]
    pub expiry: Expiry,
}

impl App {
    /// Creates a role.
    pub async fn create_role(&self, ctx: &Ctx, cmd: CreateRole) -> Result<Role> {
        let role = Role {
            id: RoleId::generate(),
            tenant_id: ctx.tenant,
            name: normalize_name("name", &cmd.name)?,
            description: normalize_text("description", cmd.description.as_deref())?,
            entitlements: check_entitlements(cmd.entitlements)?,
            created_at: ctx.now,
            updated_at: ctx.now,
            version: 1,
        };
        let mut tx = self.store().write().await?;
        roles::insert(&mut tx, &role, &name_key(&role.name)).await?;
        let event = AuditEvent::new(ctx, "role.create", Some(target(&role)))
            .with_details(json!({"name": role.name, "entitlements": role.entitlements}));
        tx.commit(event).await?;
        self.directory_changed();
        Ok(role)
    }

    /// The role with this id or name.
    pub async fn role(&self, ctx: &Ctx, reference: &str) -> Result<Role> {
        let mut conn = self.store().read().await?;
        resolve_role(&mut conn, ctx, reference).await
    }

    /// Roles in creation order.
    pub async fn roles(&self, ctx: &Ctx, page: &Page) -> Result<Paged<Role>> {
        let mut conn = self.store().read().await?;
        Ok(roles::list(&mut conn, ctx.tenant, page).await?)
    }

    /// Changes a role.
    pub async fn update_role(
        &self,
        ctx: &Ctx,
        reference: &str,
        cmd: UpdateRole,
        if_match: Option<i64>,
    ) -> Result<Role> {
        let mut tx = self.store().write().await?;
        let current = resolve_role(&mut tx, ctx, reference).await?;
        check_version(if_match, current.version)?;
        let next = Role {
            name: cmd
                .name
                .map(|n| normalize_name("name", &n))
                .transpose()?
                .unwrap_or(current.name.clone()),
            description: cmd
                .description
                .try_map(|d| normalize_text("description", Some(&d)))?
                .apply(Some(current.description.clone()))
                .flatten(),
            entitlements: cmd
                .entitlements
                .map(check_entitlements)
                .transpose()?
                .unwrap_or(current.entitlements.clone()),
            updated_at: ctx.now,
            version: current.version + 1,
            ..current.clone()
        };
        if !roles::update(&mut tx, &next, &name_key(&next.name), current.version).await? {
            return Err(AppError::VersionMismatch {
                current: current.version,
            });
        }
        let event = AuditEvent::new(ctx, "role.update", Some(target(&next)))
            .with_details(json!({"name": next.name, "entitlements": next.entitlements}));
        tx.commit(event).await?;
        self.directory_changed();
        Ok(next)
    }

    /// Deletes a role; refused while it is assigned.
    pub async fn delete_role(
        &self,
        ctx: &Ctx,
        reference: &str,
        if_match: Option<i64>,
    ) -> Result<()> {
        let mut tx = self.store().write().await?;
        let role = resolve_role(&mut tx, ctx, reference).await?;
        check_version(if_match, role.version)?;
        let assigned = roles::assignment_count(&mut tx, role.id).await?;
        if assigned > 0 {
            return Err(AppError::Conflict(format!(
                "role `{}` is still assigned {assigned} time(s); revoke the assignments first",
                role.name
            )));
        }
        roles::delete(&mut tx, ctx.tenant, role.id).await?;
        tx.commit(
            AuditEvent::new(ctx, "role.delete", Some(target(&role)))
                .with_details(json!({"name": role.name})),
        )
        .await?;
        self.directory_changed();
        Ok(())
    }

    /// Grants a role (or changes the expiry of an existing grant).
    pub async fn assign_role(&self, ctx: &Ctx, cmd: AssignRole) -> Result<RoleAssignment> {
        let expires_at = cmd.expiry.resolve(ctx.now)?;
        let mut tx = self.store().write().await?;
        let role = resolve_role(&mut tx, ctx, &cmd.role).await?;
        let principal = resolve_principal(
            &mut tx,
            ctx,
            &cmd.principal,
            idplane_core::directory::PrincipalKind::User,
        )
        .await?;
        let assignment = roles::upsert_assignment(
            &mut tx,
            &RoleAssignment {
                id: AssignmentId::generate(),
                tenant_id: ctx.tenant,
                role_id: role.id,
                principal_id: principal.id,
                expires_at,
                created_at: ctx.now,
            },
        )
        .await?;
        let event = AuditEvent::new(ctx, "role.assign", Some(principal_target(&principal)))
            .with_details(json!({
                "role": target(&role),
                "assignment": assignment.id,
                "expires_at": expires_at,
            }));
        tx.commit(event).await?;
        self.directory_changed();
        Ok(assignment)
    }

    /// Revokes an assignment.
    pub async fn unassign_role(&self, ctx: &Ctx, id: AssignmentId) -> Result<()> {
        let mut tx = self.store().write().await?;
        let assignment = roles::assignment(&mut tx, ctx.tenant, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("role assignment `{id}`")))?;
        roles::delete_assignment(&mut tx, ctx.tenant, id).await?;
        let event = AuditEvent::new(
            ctx,
            "role.unassign",
            Some(format!("principal:{}", assignment.principal_id)),
        )
        .with_details(json!({"role": format!("role:{}", assignment.role_id), "assignment": id}));
        tx.commit(event).await?;
        self.directory_changed();
        Ok(())
    }

    /// The assignment with `id`.
    pub async fn assignment(&self, ctx: &Ctx, id: AssignmentId) -> Result<RoleAssignment> {
        let mut conn = self.store().read().await?;
        roles::assignment(&mut conn, ctx.tenant, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("role assignment `{id}`")))
    }

    /// Assignments, optionally of one role or principal (references as in
    /// [`AssignRole`]). Expired ones are included; callers compare with now.
    pub async fn assignments(
        &self,
        ctx: &Ctx,
        role: Option<&str>,
        principal: Option<&str>,
        page: &Page,
    ) -> Result<Paged<RoleAssignment>> {
        let mut conn = self.store().read().await?;
        let filter = AssignmentFilter {
            role_id: match role {
                Some(r) => Some(resolve_role(&mut conn, ctx, r).await?.id),
                None => None,
            },
            principal_id: match principal {
                Some(p) => Some(
                    resolve_principal(
                        &mut conn,
                        ctx,
                        p,
                        idplane_core::directory::PrincipalKind::User,
                    )
                    .await?
                    .id,
                ),
                None => None,
            },
        };
        Ok(roles::assignments(&mut conn, ctx.tenant, &filter, page).await?)
    }
}

/// A role by id or name.
pub(crate) async fn resolve_role(conn: &mut impl Conn, ctx: &Ctx, reference: &str) -> Result<Role> {
    let found = match reference.parse::<RoleId>() {
        Ok(id) => roles::by_id(conn, ctx.tenant, id).await?,
        Err(_) => roles::by_name(conn, ctx.tenant, &name_key(reference.trim())).await?,
    };
    found.ok_or_else(|| AppError::NotFound(format!("role `{reference}`")))
}

/// Entitlements are non-empty names, deduplicated and sorted.
fn check_entitlements(entitlements: Vec<Entitlement>) -> Result<Vec<Entitlement>, ValidationError> {
    if entitlements.len() > MAX_ENTITLEMENTS {
        return Err(ValidationError::new(
            "entitlements",
            format!("at most {MAX_ENTITLEMENTS} per role"),
        ));
    }
    let mut set = BTreeSet::new();
    for e in entitlements {
        set.insert(Entitlement {
            resource: normalize_name("entitlements.resource", &e.resource)?,
            permission: normalize_name("entitlements.permission", &e.permission)?,
        });
    }
    Ok(set.into_iter().collect())
}

fn target(role: &Role) -> String {
    format!("role:{}", role.id)
}
