//! Which groups a request may match, found by probing the request's
//! principal, action and resource (and their ancestors) instead of scanning
//! every head.

use std::collections::HashMap;

use super::groups::Group;
use super::head::{ActionScope, EntityScope, Head, RequestEntity, RequestScope};

/// A dense uid or type id, tagged with the part of the request it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Principal(usize),
    PrincipalType(usize),
    Action(usize),
    Resource(usize),
    ResourceType(usize),
}

/// Each group is filed under the keys of one of its constrained scopes (the
/// rarest); a request probes all of its keys, so every group whose head can
/// match it is found, plus a few whose other scopes then rule them out.
#[derive(Debug, Clone, Default)]
pub(super) struct Postings {
    by_key: HashMap<Key, Vec<usize>>,
    /// Groups with unconstrained heads: candidates for every request.
    always: Vec<usize>,
}

impl Postings {
    pub(super) fn new(groups: &[Group]) -> Self {
        let options: Vec<Vec<Vec<Key>>> = groups.iter().map(|g| key_options(&g.head)).collect();
        let mut frequency: HashMap<Key, usize> = HashMap::new();
        for key in options.iter().flatten().flatten() {
            *frequency.entry(*key).or_default() += 1;
        }
        let mut postings = Self::default();
        for (group, options) in options.into_iter().enumerate() {
            let rarest = options
                .into_iter()
                .min_by_key(|keys| keys.iter().map(|key| frequency[key]).sum::<usize>());
            match rarest {
                Some(keys) => {
                    for key in keys {
                        postings.by_key.entry(key).or_default().push(group);
                    }
                }
                None => postings.always.push(group),
            }
        }
        postings
    }

    /// Groups that may match, possibly repeated (a group filed under several
    /// listed actions is found once per listed action the request is in).
    pub(super) fn candidates<'a>(
        &'a self,
        scope: &'a RequestScope,
    ) -> impl Iterator<Item = usize> + 'a {
        probe_keys(scope)
            .filter_map(|key| self.by_key.get(&key))
            .flatten()
            .chain(&self.always)
            .copied()
    }
}

/// The ways a head can be filed: one key list per constrained scope.
fn key_options(head: &Head) -> Vec<Vec<Key>> {
    [
        entity_keys(&head.principal, Key::Principal, Key::PrincipalType),
        entity_keys(&head.resource, Key::Resource, Key::ResourceType),
        action_keys(&head.action),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn entity_keys(
    scope: &EntityScope,
    by_uid: fn(usize) -> Key,
    by_type: fn(usize) -> Key,
) -> Option<Vec<Key>> {
    match *scope {
        EntityScope::Any => None,
        EntityScope::Eq(uid) | EntityScope::In(uid) | EntityScope::IsIn(_, uid) => {
            Some(vec![by_uid(uid)])
        }
        EntityScope::Is(ty) => Some(vec![by_type(ty)]),
    }
}

fn action_keys(scope: &ActionScope) -> Option<Vec<Key>> {
    match scope {
        ActionScope::Any => None,
        ActionScope::Eq(uid) => Some(vec![Key::Action(*uid)]),
        ActionScope::In(uids) => Some(uids.iter().copied().map(Key::Action).collect()),
    }
}

/// Every key a matching head could be filed under.
fn probe_keys(scope: &RequestScope) -> impl Iterator<Item = Key> + '_ {
    entity_probes(&scope.principal, Key::Principal, Key::PrincipalType)
        .chain(entity_probes(
            &scope.resource,
            Key::Resource,
            Key::ResourceType,
        ))
        .chain(scope.action.lineage.iter().copied().map(Key::Action))
}

fn entity_probes(
    entity: &RequestEntity,
    by_uid: fn(usize) -> Key,
    by_type: fn(usize) -> Key,
) -> impl Iterator<Item = Key> + '_ {
    entity
        .lineage
        .iter()
        .copied()
        .map(by_uid)
        .chain(entity.ty.map(by_type))
}
