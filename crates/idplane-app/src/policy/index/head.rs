//! Policy heads compiled to dense ids, and the request facts they are
//! matched against.

use std::collections::HashMap;

use cedar_policy::{
    ActionConstraint, Entities, EntityTypeName, EntityUid, Policy, PrincipalConstraint, Request,
    ResourceConstraint,
};

/// Dense ids for the entity uids and types that policy heads name. A request
/// entity (or ancestor) without an id cannot be named by any head, so it is
/// simply left out of the request's facts.
#[derive(Debug, Clone, Default)]
pub(super) struct Names {
    /// Keyed by the entity id alone, then the type: hashing an id string
    /// costs half as much as hashing a whole uid, and a request hashes a
    /// dozen ancestors.
    uids: HashMap<String, Vec<(EntityTypeName, usize)>>,
    uid_count: usize,
    types: HashMap<EntityTypeName, usize>,
}

impl Names {
    fn intern_uid(&mut self, uid: EntityUid) -> usize {
        let same_id = self
            .uids
            .entry(uid.id().unescaped().to_owned())
            .or_default();
        if let Some(&(_, known)) = same_id.iter().find(|(ty, _)| ty == uid.type_name()) {
            return known;
        }
        let id = self.uid_count;
        self.uid_count += 1;
        same_id.push((uid.type_name().clone(), id));
        id
    }

    fn intern_type(&mut self, ty: EntityTypeName) -> usize {
        let next = self.types.len();
        *self.types.entry(ty).or_insert(next)
    }

    fn uid(&self, uid: &EntityUid) -> Option<usize> {
        let same_id = self.uids.get(uid.id().unescaped())?;
        let (_, id) = same_id.iter().find(|(ty, _)| ty == uid.type_name())?;
        Some(*id)
    }

    fn entity_type(&self, ty: &EntityTypeName) -> Option<usize> {
        self.types.get(ty).copied()
    }
}

/// A principal or resource scope constraint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum EntityScope {
    Any,
    Eq(usize),
    In(usize),
    Is(usize),
    IsIn(usize, usize),
}

impl EntityScope {
    fn of_principal(constraint: PrincipalConstraint, names: &mut Names) -> Self {
        match constraint {
            PrincipalConstraint::Any => Self::Any,
            PrincipalConstraint::Eq(uid) => Self::Eq(names.intern_uid(uid)),
            PrincipalConstraint::In(uid) => Self::In(names.intern_uid(uid)),
            PrincipalConstraint::Is(ty) => Self::Is(names.intern_type(ty)),
            PrincipalConstraint::IsIn(ty, uid) => {
                Self::IsIn(names.intern_type(ty), names.intern_uid(uid))
            }
        }
    }

    fn of_resource(constraint: ResourceConstraint, names: &mut Names) -> Self {
        match constraint {
            ResourceConstraint::Any => Self::Any,
            ResourceConstraint::Eq(uid) => Self::Eq(names.intern_uid(uid)),
            ResourceConstraint::In(uid) => Self::In(names.intern_uid(uid)),
            ResourceConstraint::Is(ty) => Self::Is(names.intern_type(ty)),
            ResourceConstraint::IsIn(ty, uid) => {
                Self::IsIn(names.intern_type(ty), names.intern_uid(uid))
            }
        }
    }

    fn admits(&self, entity: &RequestEntity) -> bool {
        match *self {
            Self::Any => true,
            Self::Eq(uid) => entity.uid == Some(uid),
            Self::In(uid) => entity.lineage.contains(&uid),
            Self::Is(ty) => entity.ty == Some(ty),
            Self::IsIn(ty, uid) => entity.ty == Some(ty) && entity.lineage.contains(&uid),
        }
    }
}

/// An action scope constraint; `In` holds the listed actions, sorted, so
/// that equal heads compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ActionScope {
    Any,
    Eq(usize),
    In(Vec<usize>),
}

impl ActionScope {
    fn of(constraint: ActionConstraint, names: &mut Names) -> Self {
        match constraint {
            ActionConstraint::Any => Self::Any,
            ActionConstraint::Eq(uid) => Self::Eq(names.intern_uid(uid)),
            ActionConstraint::In(uids) => {
                let mut ids: Vec<usize> =
                    uids.into_iter().map(|uid| names.intern_uid(uid)).collect();
                ids.sort_unstable();
                ids.dedup();
                Self::In(ids)
            }
        }
    }

    fn admits(&self, action: &RequestEntity) -> bool {
        match self {
            Self::Any => true,
            Self::Eq(uid) => action.uid == Some(*uid),
            Self::In(uids) => uids.iter().any(|uid| action.lineage.contains(uid)),
        }
    }
}

/// A policy's scope: Cedar evaluates it before the conditions and it cannot
/// error, so a policy whose head does not admit a request plays no part in
/// the decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Head {
    pub(super) principal: EntityScope,
    pub(super) action: ActionScope,
    pub(super) resource: EntityScope,
}

impl Head {
    /// The unconstrained head, which admits every request.
    pub(super) const ANY: Self = Self {
        principal: EntityScope::Any,
        action: ActionScope::Any,
        resource: EntityScope::Any,
    };

    /// The head of a static or template-linked policy (slots are already
    /// filled by the link).
    pub(super) fn of(policy: &Policy, names: &mut Names) -> Self {
        Self {
            principal: EntityScope::of_principal(policy.principal_constraint(), names),
            action: ActionScope::of(policy.action_constraint(), names),
            resource: EntityScope::of_resource(policy.resource_constraint(), names),
        }
    }

    pub(super) fn admits(&self, scope: &RequestScope) -> bool {
        self.action.admits(&scope.action)
            && self.principal.admits(&scope.principal)
            && self.resource.admits(&scope.resource)
    }
}

/// What a head can test about one request entity, in dense ids.
#[derive(Debug)]
pub(super) struct RequestEntity {
    pub(super) uid: Option<usize>,
    pub(super) ty: Option<usize>,
    /// The entity itself and its ancestors in the request's entities, as
    /// Cedar's `in` sees them (equal, or an ancestor); only those with ids.
    pub(super) lineage: Vec<usize>,
}

impl RequestEntity {
    fn of(uid: &EntityUid, entities: &Entities, names: &Names) -> Self {
        let own = names.uid(uid);
        let mut lineage: Vec<usize> = own.into_iter().collect();
        if let Some(ancestors) = entities.ancestors(uid) {
            lineage.extend(ancestors.filter_map(|ancestor| names.uid(ancestor)));
        }
        Self {
            uid: own,
            ty: names.entity_type(uid.type_name()),
            lineage,
        }
    }
}

/// The request's principal, action and resource, as heads see them.
#[derive(Debug)]
pub(super) struct RequestScope {
    pub(super) principal: RequestEntity,
    pub(super) action: RequestEntity,
    pub(super) resource: RequestEntity,
}

impl RequestScope {
    /// `None` when the request leaves its principal, action or resource
    /// unknown (partial evaluation): then any head might match.
    pub(super) fn of(request: &Request, entities: &Entities, names: &Names) -> Option<Self> {
        Some(Self {
            principal: RequestEntity::of(request.principal()?, entities, names),
            action: RequestEntity::of(request.action()?, entities, names),
            resource: RequestEntity::of(request.resource()?, entities, names),
        })
    }
}
