//! Response bodies of the native API: explicit conversions from domain
//! values, so the wire format never changes by accident.

use idplane_app::directory::access::Access;
use idplane_app::directory::groups::Member;
use idplane_app::tokens::{IssuedToken, Scope, Token};
use idplane_core::audit::{AuditRecord, Checkpoint};
use idplane_core::directory::{
    Entitlement, Principal, PrincipalKind, Role, RoleAssignment, Status, Tenant, UserType,
};
use idplane_core::time::in_force;
use idplane_core::{PrincipalId, Timestamp};
use idplane_store::Paged;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

/// A page of results. Pass `next_cursor` as `cursor` for the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> List<T> {
    /// Converts a page, taking the cursor from the last item.
    pub fn from_page<D>(
        page: Paged<D>,
        cursor: impl Fn(&D) -> String,
        view: impl Fn(D) -> T,
    ) -> Self {
        let next_cursor = if page.more {
            page.items.last().map(&cursor)
        } else {
            None
        };
        Self {
            items: page.items.into_iter().map(view).collect(),
            next_cursor,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    pub display_name: Option<String>,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
    pub version: i64,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.as_uuid(),
            name: t.name,
            display_name: t.display_name,
            created_at: t.created_at,
            updated_at: t.updated_at,
            version: t.version,
        }
    }
}

/// A user, group, service account or agent. Fields that do not apply to
/// the kind are omitted.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrincipalView {
    pub id: Uuid,
    pub kind: PrincipalKind,
    /// Username, group name or account name.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub status: Status,
    /// Whether the principal may act now (status, start and end dates, expiry).
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<UserType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub start_date: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub end_date: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sponsor_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
    pub version: i64,
}

impl PrincipalView {
    /// The view of `p` as seen at `now`.
    pub fn at(p: Principal, now: Timestamp) -> Self {
        Self {
            active: p.is_active_at(now),
            id: p.id.as_uuid(),
            kind: p.kind,
            name: p.name,
            display_name: p.display_name,
            email: p.email,
            external_id: p.external_id,
            status: p.status,
            user_type: p.user_type,
            start_date: p.start_date,
            end_date: p.end_date,
            sponsor_id: p.sponsor_id.map(|id| id.as_uuid()),
            owner_id: p.owner_id.map(|id| id.as_uuid()),
            purpose: p.purpose,
            expires_at: p.expires_at,
            attributes: p.attributes,
            created_at: p.created_at,
            updated_at: p.updated_at,
            version: p.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    pub member_id: Uuid,
    pub kind: PrincipalKind,
    pub name: String,
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    /// Whether the membership is in force now.
    pub active: bool,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

impl MemberView {
    pub fn at(m: Member, now: Timestamp) -> Self {
        Self {
            member_id: m.principal.id.as_uuid(),
            kind: m.principal.kind,
            name: m.principal.name,
            expires_at: m.membership.expires_at,
            active: in_force(m.membership.expires_at, now),
            created_at: m.membership.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub entitlements: Vec<Entitlement>,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
    pub version: i64,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        Self {
            id: r.id.as_uuid(),
            name: r.name,
            description: r.description,
            entitlements: r.entitlements,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignmentView {
    pub id: Uuid,
    pub role_id: Uuid,
    pub principal_id: Uuid,
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    /// Whether the assignment grants now.
    pub active: bool,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

impl AssignmentView {
    pub fn at(a: RoleAssignment, now: Timestamp) -> Self {
        Self {
            id: a.id.as_uuid(),
            role_id: a.role_id.as_uuid(),
            principal_id: a.principal_id.as_uuid(),
            expires_at: a.expires_at,
            active: in_force(a.expires_at, now),
            created_at: a.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeldRoleView {
    pub role_id: Uuid,
    pub role_name: String,
    /// The principal holding the assignment: the subject or one of its groups.
    pub via: Uuid,
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
}

/// What a principal may do at `evaluated_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessView {
    pub principal_id: Uuid,
    pub kind: PrincipalKind,
    pub active: bool,
    #[schema(value_type = String)]
    pub evaluated_at: Timestamp,
    pub groups: Vec<Uuid>,
    pub roles: Vec<HeldRoleView>,
    pub entitlements: Vec<Entitlement>,
}

impl From<Access> for AccessView {
    fn from(a: Access) -> Self {
        Self {
            principal_id: a.principal.id.as_uuid(),
            kind: a.principal.kind,
            active: a.active,
            evaluated_at: a.evaluated_at,
            groups: a.groups.iter().map(PrincipalId::as_uuid).collect(),
            roles: a
                .roles
                .into_iter()
                .map(|r| HeldRoleView {
                    role_id: r.role_id.as_uuid(),
                    role_name: r.role_name,
                    via: r.via.as_uuid(),
                    expires_at: r.expires_at,
                })
                .collect(),
            entitlements: a.entitlements.into_iter().collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: Uuid,
    pub name: String,
    pub scope: Scope,
    /// `null`: valid in every tenant.
    pub tenant_id: Option<Uuid>,
    /// The administrator the token acts for.
    pub principal_id: Option<Uuid>,
    pub created_by: String,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<String>)]
    pub revoked_at: Option<Timestamp>,
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        let s = t.stored;
        Self {
            id: s.id.as_uuid(),
            name: s.name,
            scope: t.scope,
            tenant_id: s.tenant_id.map(|id| id.as_uuid()),
            principal_id: s.principal_id.map(|id| id.as_uuid()),
            created_by: s.created_by,
            created_at: s.created_at,
            expires_at: s.expires_at,
            revoked_at: s.revoked_at,
        }
    }
}

/// A new token with its secret, shown only this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedTokenView {
    #[serde(flatten)]
    pub token: TokenView,
    /// The bearer secret. Store it now: it cannot be shown again.
    pub secret: String,
}

impl From<IssuedToken> for IssuedTokenView {
    fn from(t: IssuedToken) -> Self {
        Self {
            token: t.token.into(),
            secret: t.secret,
        }
    }
}

/// An audit record with its place in the tenant's hash chain.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct AuditView(pub AuditRecord);

/// A signed checkpoint of a tenant's audit chain head.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct CheckpointView(pub Checkpoint);
