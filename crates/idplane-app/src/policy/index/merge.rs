//! One Response from the Responses of disjoint groups of policies, exactly
//! as Cedar answers over their union: a satisfied forbid denies, with the
//! satisfied forbids as reasons; otherwise a satisfied permit allows, with
//! the satisfied permits as reasons; otherwise deny without reasons. Errors
//! come from every group.

use std::collections::HashSet;

use cedar_policy::{Decision, Response};

pub(super) fn combine(responses: impl IntoIterator<Item = Response>) -> Response {
    let mut responses = responses.into_iter();
    let Some(first) = responses.next() else {
        return Response::new(Decision::Deny, HashSet::new(), Vec::new());
    };
    let Some(second) = responses.next() else {
        return first;
    };
    let mut forbids = HashSet::new();
    let mut permits = HashSet::new();
    let mut errors = Vec::new();
    for response in [first, second].into_iter().chain(responses) {
        // A group's Deny names its satisfied forbids (none if it merely had
        // no satisfied permit); its Allow names its satisfied permits.
        let reasons = match response.decision() {
            Decision::Allow => &mut permits,
            Decision::Deny => &mut forbids,
        };
        reasons.extend(response.diagnostics().reason().cloned());
        errors.extend(response.diagnostics().errors().cloned());
    }
    if !forbids.is_empty() || permits.is_empty() {
        Response::new(Decision::Deny, forbids, errors)
    } else {
        Response::new(Decision::Allow, permits, errors)
    }
}
