//! The directory projected into Cedar entities, per subject, cached in
//! memory so a decision needs no database round trip. A projection is
//! dropped when the directory changes on this node, when the first
//! membership, role assignment or end date it reflects expires (so an
//! expired role stops granting at that instant), and when another node
//! changed the directory: the store's directory generation, which every
//! such change moves in its own transaction, is read at most every
//! [`DIRECTORY_POLL`] by one decision while the others go on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use cedar_policy::{Entities, Entity, EntityId, EntityUid, RestrictedExpression};
use idplane_core::directory::{Principal, PrincipalKind, name_key};
use idplane_core::time::in_force;
use idplane_core::{Ctx, PrincipalId, TenantId, Timestamp};
use idplane_store::principals::{self, PrincipalFilter};
use idplane_store::{Conn, Page, generations, roles};
use jiff::SignedDuration;

use super::directory_schema::DirectoryType;
use crate::watch::GenerationWatch;
use crate::{App, Result};

/// How long a change made on another node may go unseen by decisions here.
pub const DIRECTORY_POLL: SignedDuration = SignedDuration::from_secs(1);
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
    /// The first instant at which something it reflects expires.
    valid_until: Option<Timestamp>,
}

type Key = (TenantId, DirectoryType, String);

/// Projections by tenant, type and the id they were asked for, and what
/// this node last learnt of the directory's generation.
#[derive(Debug, Default)]
pub(crate) struct ProjectionCache {
    cached: RwLock<Cached>,
    watch: GenerationWatch,
}

#[derive(Debug, Default)]
struct Cached {
    projections: HashMap<Key, Arc<Projection>>,
    /// Counts the times the cache was emptied (a change on this node, or
    /// the directory generation moved): a projection read while it was may
    /// predate the change and is not kept.
    clears: u64,
}

impl ProjectionCache {
    pub(crate) fn clear(&self) {
        let mut cached = self.cached.write().unwrap_or_else(PoisonError::into_inner);
        cached.clears += 1;
        cached.projections.clear();
    }

    fn lookup(&self, key: &Key) -> (Option<Arc<Projection>>, u64) {
        let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
        (cached.projections.get(key).cloned(), cached.clears)
    }

    /// Keeps what a read begun after `clears` clears found, unless the
    /// cache was emptied meanwhile.
    fn store(&self, key: Key, found: Option<&Arc<Projection>>, clears: u64) {
        let mut cached = self.cached.write().unwrap_or_else(PoisonError::into_inner);
        if cached.clears != clears {
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
        self.watch_directory(ctx).await;
        let (cached, clears) = self.inner.projections.lookup(&key);
        if let Some(found) = cached
            && in_force(found.valid_until, ctx.now)
        {
            return Ok(Some(found));
        }
        self.load_projection(ctx, key, clears).await
    }

    /// Reads the directory's generation when [`DIRECTORY_POLL`] has passed
    /// since the last read, and forgets every projection if it moved. A
    /// node that cannot read it forgets them too: the next decisions read
    /// the directory (or fail), never trust what may have changed.
    async fn watch_directory(&self, ctx: &Ctx) {
        let read = async {
            let mut conn = self.store().read().await?;
            generations::directory(&mut conn).await
        };
        let watch = &self.inner.projections.watch;
        if watch
            .moved(ctx.now, DIRECTORY_POLL, "directory", read)
            .await
        {
            self.inner.projections.clear();
        }
    }

    /// Reads a projection from the database and caches it.
    async fn load_projection(
        &self,
        ctx: &Ctx,
        key: Key,
        clears: u64,
    ) -> Result<Option<Arc<Projection>>> {
        let mut conn = self.store().read().await?;
        let found = project(&mut conn, ctx, key.1, &key.2).await?.map(Arc::new);
        drop(conn);
        self.inner.projections.store(key, found.as_ref(), clears);
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
            // A joiner's projection changes at the start date.
            valid_until: principal.start_date.filter(|start| *start > ctx.now),
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
        valid_until,
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
        valid_until: None,
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
