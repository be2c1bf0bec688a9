//! The directory projected into Cedar entities, per subject, cached in
//! memory so a decision needs no database round trip. A projection is
//! dropped when the directory changes on this node, when the first
//! membership, role assignment or end date it reflects expires (so an
//! expired role stops granting at that instant), and after
//! [`PROJECTION_TTL`] (changes made on other nodes). A projection asked for
//! after [`REFRESH_AFTER`] is read again in the background while it still
//! answers, so a subject in steady use never waits for the database.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use cedar_policy::{Entities, Entity, EntityId, EntityUid, RestrictedExpression};
use idplane_core::directory::{Principal, PrincipalKind, name_key};
use idplane_core::time::in_force;
use idplane_core::{Ctx, PrincipalId, TenantId, Timestamp};
use idplane_store::principals::{self, PrincipalFilter};
use idplane_store::{Conn, Page, roles};
use jiff::SignedDuration;

use super::directory_schema::DirectoryType;
use crate::{App, Result};

/// How long a projection may miss a change made on another node.
pub const PROJECTION_TTL: SignedDuration = SignedDuration::from_secs(30);
/// The age from which a projection in use is read again ahead of its TTL.
pub const REFRESH_AFTER: SignedDuration = SignedDuration::from_secs(20);
/// Projections kept before the cache starts over (a bound on memory).
const MAX_PROJECTIONS: usize = 100_000;

/// A directory entity as Cedar sees it at one instant.
#[derive(Debug)]
pub(crate) struct Projection {
    pub uid: EntityUid,
    /// False for suspended, deprovisioned, ended or expired principals.
    pub active: bool,
    /// The entity itself (parents: every group and role, transitively),
    /// and its groups and roles: a Cedar entity store built (its
    /// transitive closure computed) once, which each decision extends
    /// with the request's other entities.
    pub entities: Entities,
    loaded_at: Timestamp,
    /// The first instant at which something it reflects expires.
    valid_until: Option<Timestamp>,
    /// Set once a background read of its successor has started.
    refreshing: AtomicBool,
}

impl Projection {
    fn fresh_at(&self, now: Timestamp) -> bool {
        now < self.loaded_at + PROJECTION_TTL && in_force(self.valid_until, now)
    }

    /// True for the first caller past [`REFRESH_AFTER`]: that caller
    /// starts the read of its successor. If that read fails, the projection
    /// still expires at its TTL and the next decision reads it in line.
    fn claim_refresh(&self, now: Timestamp) -> bool {
        now >= self.loaded_at + REFRESH_AFTER && !self.refreshing.swap(true, Ordering::Relaxed)
    }
}

type Key = (TenantId, DirectoryType, String);

/// Projections by tenant, type and the id they were asked for.
#[derive(Debug, Default)]
pub(crate) struct ProjectionCache(RwLock<Cached>);

#[derive(Debug, Default)]
struct Cached {
    projections: HashMap<Key, Arc<Projection>>,
    /// Counts directory changes on this node: a projection read while one
    /// happened may predate it and is not kept.
    generation: u64,
}

impl ProjectionCache {
    pub(crate) fn clear(&self) {
        let mut cached = self.0.write().unwrap_or_else(PoisonError::into_inner);
        cached.generation += 1;
        cached.projections.clear();
    }

    fn lookup(&self, key: &Key) -> (Option<Arc<Projection>>, u64) {
        let cached = self.0.read().unwrap_or_else(PoisonError::into_inner);
        (cached.projections.get(key).cloned(), cached.generation)
    }

    /// Keeps what a read begun at `generation` found, unless the directory
    /// changed meanwhile.
    fn store(&self, key: Key, found: Option<&Arc<Projection>>, generation: u64) {
        let mut cached = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if cached.generation != generation {
            return;
        }
        match found {
            Some(projection) => {
                if cached.projections.len() >= MAX_PROJECTIONS {
                    cached.projections.clear();
                }
                cached.projections.insert(key, projection.clone());
            }
            None => {
                cached.projections.remove(&key);
            }
        }
    }
}

impl App {
    /// The projection of a directory entity named by `id` (its name, its
    /// principal id or its external id), or `None` if there is none.
    pub(crate) async fn projection(
        &self,
        ctx: &Ctx,
        kind: DirectoryType,
        id: &str,
    ) -> Result<Option<Arc<Projection>>> {
        let key = (ctx.tenant, kind, id.to_owned());
        let (cached, generation) = self.inner.projections.lookup(&key);
        if let Some(found) = cached
            && found.fresh_at(ctx.now)
        {
            if found.claim_refresh(ctx.now) {
                let (app, ctx) = (self.clone(), ctx.clone());
                tokio::spawn(async move {
                    if let Err(e) = app.load_projection(&ctx, key, generation).await {
                        tracing::warn!(error = %e, "refreshing a directory projection failed");
                    }
                });
            }
            return Ok(Some(found));
        }
        self.load_projection(ctx, key, generation).await
    }

    /// Reads a projection from the database and caches it.
    async fn load_projection(
        &self,
        ctx: &Ctx,
        key: Key,
        generation: u64,
    ) -> Result<Option<Arc<Projection>>> {
        let mut conn = self.store().read().await?;
        let found = project(&mut conn, ctx, key.1, &key.2).await?.map(Arc::new);
        drop(conn);
        self.inner
            .projections
            .store(key, found.as_ref(), generation);
        Ok(found)
    }

    /// Forgets every projection: called after each directory change.
    pub(crate) fn directory_changed(&self) {
        self.inner.projections.clear();
    }
}

async fn project(
    conn: &mut impl Conn,
    ctx: &Ctx,
    kind: DirectoryType,
    id: &str,
) -> Result<Option<Projection>> {
    let Some(principal_kind) = kind.principal_kind() else {
        return project_role(conn, ctx, id).await;
    };
    let Some(principal) = find_principal(conn, ctx.tenant, principal_kind, id).await? else {
        return Ok(None);
    };
    let uid = uid(kind, &principal.name);
    let owner = match principal.owner_id {
        Some(owner) => principals::by_id(conn, ctx.tenant, owner)
            .await?
            .map(|o| o.name),
        None => None,
    };
    let attrs = principal_attrs(&principal, owner);
    if !principal.is_active_at(ctx.now) {
        let entity = entity(uid.clone(), attrs, HashSet::new())?;
        return Ok(Some(Projection {
            uid,
            active: false,
            entities: store(vec![entity])?,
            loaded_at: ctx.now,
            // A joiner's projection changes at the start date.
            valid_until: principal.start_date.filter(|start| *start > ctx.now),
            refreshing: AtomicBool::new(false),
        }));
    }
    let groups = principals::transitive_groups(conn, principal.id, Some(ctx.now)).await?;
    let mut valid_until = earliest(
        earliest(principal.end_date, principal.expires_at),
        groups.first_expiry,
    );
    let mut ancestors = Vec::new();
    let mut parents = HashSet::new();
    for group_id in &groups.ids {
        if let Some(group) = principals::by_id(conn, ctx.tenant, *group_id).await? {
            let group_uid = self::uid(DirectoryType::Group, &group.name);
            parents.insert(group_uid.clone());
            ancestors.push(entity(
                group_uid,
                principal_attrs(&group, None),
                HashSet::new(),
            )?);
        }
    }
    for holder in std::iter::once(principal.id).chain(groups.ids.iter().copied()) {
        for (role, expires_at) in roles::held_by(conn, ctx.tenant, holder).await? {
            if !in_force(expires_at, ctx.now) {
                continue;
            }
            valid_until = earliest(valid_until, expires_at);
            let role_uid = self::uid(DirectoryType::Role, &role.name);
            if parents.insert(role_uid.clone()) {
                ancestors.push(role_entity(role_uid, &role.name)?);
            }
        }
    }
    let mut entities = vec![entity(uid.clone(), attrs, parents)?];
    entities.extend(ancestors);
    Ok(Some(Projection {
        uid,
        active: true,
        entities: store(entities)?,
        loaded_at: ctx.now,
        valid_until,
        refreshing: AtomicBool::new(false),
    }))
}

async fn project_role(conn: &mut impl Conn, ctx: &Ctx, id: &str) -> Result<Option<Projection>> {
    let Some(role) = roles::by_name(conn, ctx.tenant, &name_key(id)).await? else {
        return Ok(None);
    };
    let uid = uid(DirectoryType::Role, &role.name);
    Ok(Some(Projection {
        entities: store(vec![role_entity(uid.clone(), &role.name)?])?,
        uid,
        active: true,
        loaded_at: ctx.now,
        valid_until: None,
        refreshing: AtomicBool::new(false),
    }))
}

/// By name, then by principal id, then by external id (which must be
/// unique to count).
async fn find_principal(
    conn: &mut impl Conn,
    tenant: TenantId,
    kind: PrincipalKind,
    id: &str,
) -> Result<Option<Principal>> {
    if let Some(found) = principals::by_name(conn, tenant, kind, &name_key(id)).await? {
        return Ok(Some(found));
    }
    if let Ok(principal_id) = id.parse::<PrincipalId>()
        && let Some(found) = principals::by_id(conn, tenant, principal_id).await?
        && found.kind == kind
    {
        return Ok(Some(found));
    }
    let filter = PrincipalFilter {
        kind: Some(kind),
        external_id: Some(id.to_owned()),
        ..PrincipalFilter::default()
    };
    let page = Page {
        after: None,
        limit: 2,
    };
    let mut found = principals::list(conn, tenant, &filter, &page).await?.items;
    Ok(if found.len() == 1 { found.pop() } else { None })
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(crate) fn uid(kind: DirectoryType, name: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(kind.type_name(), EntityId::new(name))
}

fn principal_attrs(p: &Principal, owner: Option<String>) -> HashMap<String, RestrictedExpression> {
    let mut attrs = HashMap::from([
        ("name".to_owned(), string(&p.name)),
        ("status".to_owned(), string(p.status.as_str())),
    ]);
    let optional = [
        ("email", p.email.clone()),
        ("displayName", p.display_name.clone()),
        ("externalId", p.external_id.clone()),
        ("userType", p.user_type.map(|t| t.as_str().to_owned())),
        ("owner", owner),
        ("purpose", p.purpose.clone()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            attrs.insert(name.to_owned(), RestrictedExpression::new_string(value));
        }
    }
    // Only the attributes the directory schema declares for this kind.
    let allowed: &[&str] = match p.kind {
        PrincipalKind::User => &[
            "name",
            "status",
            "email",
            "displayName",
            "externalId",
            "userType",
        ],
        PrincipalKind::Group => &["name", "displayName", "externalId"],
        PrincipalKind::ServiceAccount | PrincipalKind::Agent => {
            &["name", "status", "owner", "purpose"]
        }
    };
    attrs.retain(|k, _| allowed.contains(&k.as_str()));
    attrs
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn role_entity(uid: EntityUid, name: &str) -> Result<Entity> {
    entity(
        uid,
        HashMap::from([("name".to_owned(), string(name))]),
        HashSet::new(),
    )
}

fn store(entities: Vec<Entity>) -> Result<Entities> {
    Entities::from_entities(entities, None)
        .map_err(|e| crate::AppError::Internal(format!("directory entities: {e}")))
}

fn entity(
    uid: EntityUid,
    attrs: HashMap<String, RestrictedExpression>,
    parents: HashSet<EntityUid>,
) -> Result<Entity> {
    Entity::new(uid, attrs, parents)
        .map_err(|e| crate::AppError::Internal(format!("directory entity: {e}")))
}
