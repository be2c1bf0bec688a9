//! Policies grouped by identical heads and guards, each group a precomputed
//! policy set, so a decision never builds a policy set, evaluates each
//! matching head once and skips a group whose guard the request fails.

use std::collections::HashMap;

use cedar_policy::{Policy, PolicySet, PolicySetError};

use super::guard::Guard;
use super::head::{Head, Names};

/// Policies that share one head and one guard: they match a request
/// together or not at all.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub(super) head: Head,
    pub(super) guard: Option<Guard>,
    pub(super) policies: PolicySet,
}

/// The groups of `source`, in the order of each group's first policy.
pub(super) fn group_by_head_and_guard(
    source: &PolicySet,
    names: &mut Names,
) -> Result<Vec<Group>, Box<PolicySetError>> {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: HashMap<(Head, Option<Guard>), usize> = HashMap::new();
    for policy in source.policies() {
        let key = (Head::of(policy, names), Guard::of(policy));
        let position = *by_key.entry(key.clone()).or_insert_with(|| {
            let (head, guard) = key;
            groups.push(Group {
                head,
                guard,
                policies: PolicySet::new(),
            });
            groups.len() - 1
        });
        add_policy(&mut groups[position].policies, policy, source)?;
    }
    Ok(groups)
}

/// Adds a static policy as is, and a template-linked one as a link of its
/// template (copied from `source` the first time).
fn add_policy(
    set: &mut PolicySet,
    policy: &Policy,
    source: &PolicySet,
) -> Result<(), Box<PolicySetError>> {
    let (Some(template_id), Some(links)) = (policy.template_id(), policy.template_links()) else {
        return Ok(set.add(policy.clone())?);
    };
    if set.template(template_id).is_none()
        && let Some(template) = source.template(template_id)
    {
        set.add_template(template.clone())?;
    }
    Ok(set.link(template_id.clone(), policy.id().clone(), links)?)
}
