//! Indexed evaluation of a Cedar policy set: a decision evaluates only the
//! policies whose heads (scope constraints) can match the request, and of
//! those only the ones whose leading comparisons (their guard, `guard.rs`)
//! the request does not certainly fail.
//!
//! Cedar conjoins a policy's scope constraints with its conditions and
//! evaluates the scope first, short-circuiting, and scope constraints cannot
//! error; so a policy whose head does not match adds neither a reason nor an
//! error, and leaving it out yields the same Response. Heads are matched
//! exactly against the request's principal, action and resource and their
//! ancestors in the request's entities, which is where Cedar's `in` looks
//! too (action groups included: an `Entities` built with a schema holds the
//! action entities).

mod groups;
mod guard;
mod head;
mod merge;
mod postings;

use cedar_policy::{Authorizer, Entities, PolicySet, Request, Response};

use self::groups::Group;
use self::head::{Head, Names, RequestScope};
use self::postings::Postings;

/// A policy set with an index over its policy heads (principal, action,
/// resource scope constraints).
#[derive(Debug, Clone)]
pub struct IndexedPolicies {
    policies: PolicySet,
    names: Names,
    groups: Vec<Group>,
    postings: Postings,
    authorizer: Authorizer,
}

impl IndexedPolicies {
    pub fn new(policies: PolicySet) -> Self {
        let mut names = Names::default();
        let groups = groups::group_by_head_and_guard(&policies, &mut names).unwrap_or_else(|_| {
            // Regrouping policies of a valid set cannot fail; if it ever
            // did, one always-matching group of the whole set stays exact.
            vec![Group {
                head: Head::ANY,
                guard: None,
                policies: policies.clone(),
            }]
        });
        let postings = Postings::new(&groups);
        Self {
            policies,
            names,
            groups,
            postings,
            authorizer: Authorizer::new(),
        }
    }

    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Cedar's decision over only the policies whose heads can match
    /// `request` and whose guards it may pass; identical Response
    /// (decision, determining policy ids, errors) to evaluating the whole
    /// set, errors possibly in another order (Cedar leaves their order
    /// unspecified).
    pub fn is_authorized(&self, request: &Request, entities: &Entities) -> Response {
        let Some(scope) = RequestScope::of(request, entities, &self.names) else {
            return self.is_authorized_full(request, entities);
        };
        merge::combine(
            self.matching_groups(&scope, request, entities)
                .into_iter()
                .map(|group| {
                    self.authorizer
                        .is_authorized(request, &self.groups[group].policies, entities)
                }),
        )
    }

    /// The whole set, unindexed (reference for tests and benchmarks).
    pub fn is_authorized_full(&self, request: &Request, entities: &Entities) -> Response {
        self.authorizer
            .is_authorized(request, &self.policies, entities)
    }

    /// The groups whose heads match and whose guards may pass, each once,
    /// in policy-set order.
    fn matching_groups(
        &self,
        scope: &RequestScope,
        request: &Request,
        entities: &Entities,
    ) -> Vec<usize> {
        let mut matching: Vec<usize> = self
            .postings
            .candidates(scope)
            .filter(|&group| self.groups[group].head.admits(scope))
            .collect();
        matching.sort_unstable();
        matching.dedup();
        matching.retain(|&group| {
            self.groups[group]
                .guard
                .as_ref()
                .is_none_or(|guard| guard.may_pass(request, entities))
        });
        matching
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::str::FromStr;

    use cedar_policy::{
        Context, Decision, Entity, EntityUid, Policy, PolicyId, RestrictedExpression, Template,
    };

    use super::*;

    fn uid(text: &str) -> EntityUid {
        EntityUid::from_str(text).expect("entity uid")
    }

    /// alice is an editor, editors are staff; doc d is in folder f, in root;
    /// edit is in the write action group; bob is not in `entities()`.
    fn entities() -> Entities {
        let entity = |id: &str, parents: &[&str]| {
            let attrs = [("level".to_owned(), RestrictedExpression::new_long(3))];
            Entity::new(
                uid(id),
                attrs.into(),
                parents.iter().map(|p| uid(p)).collect(),
            )
            .expect("entity")
        };
        Entities::from_entities(
            [
                entity(r#"User::"alice""#, &[r#"Role::"editor""#]),
                entity(r#"Role::"editor""#, &[r#"Role::"staff""#]),
                entity(r#"Doc::"d""#, &[r#"Folder::"f""#]),
                entity(r#"Folder::"f""#, &[r#"Folder::"root""#]),
                entity(r#"Action::"edit""#, &[r#"Action::"write""#]),
            ],
            None,
        )
        .expect("entities")
    }

    fn policy_set(policies: &[(&str, &str)]) -> PolicySet {
        let policies = policies
            .iter()
            .map(|(id, text)| Policy::parse(Some(PolicyId::new(*id)), *text).expect("policy"));
        PolicySet::from_policies(policies).expect("policy set")
    }

    /// Decision, determining policies and erroring policies.
    fn summary(response: &Response) -> (Decision, BTreeSet<String>, Vec<String>) {
        let diagnostics = response.diagnostics();
        let mut errors: Vec<String> = diagnostics.errors().map(|e| e.to_string()).collect();
        errors.sort();
        let reasons = diagnostics.reason().map(ToString::to_string).collect();
        (response.decision(), reasons, errors)
    }

    /// The ids of the policies the index evaluates for `request`, after
    /// checking that its Response is the whole set's.
    fn evaluated_for(
        index: &IndexedPolicies,
        request: &Request,
        entities: &Entities,
    ) -> BTreeSet<String> {
        assert_eq!(
            summary(&index.is_authorized(request, entities)),
            summary(&index.is_authorized_full(request, entities)),
        );
        let scope = RequestScope::of(request, entities, &index.names).expect("known request");
        index
            .matching_groups(&scope, request, entities)
            .into_iter()
            .flat_map(|group| index.groups[group].policies.policies())
            .map(|policy| policy.id().to_string())
            .collect()
    }

    /// [`evaluated_for`] a request on [`entities`] without context.
    fn evaluated(
        index: &IndexedPolicies,
        principal: &str,
        action: &str,
        resource: &str,
    ) -> BTreeSet<String> {
        let (principal, action, resource) = (uid(principal), uid(action), uid(resource));
        let request =
            Request::new(principal, action, resource, Context::empty(), None).expect("request");
        evaluated_for(index, &request, &entities())
    }

    fn ids(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    const ALICE: &str = r#"User::"alice""#;
    const BOB: &str = r#"User::"bob""#;
    const EDIT: &str = r#"Action::"edit""#;
    const VIEW: &str = r#"Action::"view""#;
    const DOC: &str = r#"Doc::"d""#;

    #[test]
    fn principal_any_and_eq() {
        let index = IndexedPolicies::new(policy_set(&[
            ("any", "permit(principal, action, resource);"),
            (
                "alice",
                r#"permit(principal == User::"alice", action, resource);"#,
            ),
            (
                "bob",
                r#"forbid(principal == User::"bob", action, resource);"#,
            ),
        ]));
        assert_eq!(evaluated(&index, ALICE, EDIT, DOC), ids(&["any", "alice"]));
        assert_eq!(evaluated(&index, BOB, EDIT, DOC), ids(&["any", "bob"]));
    }

    #[test]
    fn principal_in_follows_the_hierarchy() {
        let index = IndexedPolicies::new(policy_set(&[
            (
                "self",
                r#"permit(principal in User::"alice", action, resource);"#,
            ),
            (
                "parent",
                r#"permit(principal in Role::"editor", action, resource);"#,
            ),
            (
                "grandparent",
                r#"forbid(principal in Role::"staff", action, resource);"#,
            ),
            (
                "other",
                r#"permit(principal in Role::"admin", action, resource);"#,
            ),
        ]));
        assert_eq!(
            evaluated(&index, ALICE, EDIT, DOC),
            ids(&["self", "parent", "grandparent"])
        );
        // bob is not in the entities: `in` holds only for bob himself.
        assert_eq!(evaluated(&index, BOB, EDIT, DOC), ids(&[]));
        assert_eq!(
            evaluated(&index, r#"Role::"editor""#, EDIT, DOC),
            ids(&["parent", "grandparent"])
        );
    }

    #[test]
    fn principal_is_and_is_in() {
        let index = IndexedPolicies::new(policy_set(&[
            ("user", "permit(principal is User, action, resource);"),
            ("role", "permit(principal is Role, action, resource);"),
            (
                "staff user",
                r#"permit(principal is User in Role::"staff", action, resource);"#,
            ),
            (
                "staff role",
                r#"permit(principal is Role in Role::"staff", action, resource);"#,
            ),
            (
                "admin user",
                r#"permit(principal is User in Role::"admin", action, resource);"#,
            ),
        ]));
        assert_eq!(
            evaluated(&index, ALICE, EDIT, DOC),
            ids(&["user", "staff user"])
        );
        assert_eq!(evaluated(&index, BOB, EDIT, DOC), ids(&["user"]));
        assert_eq!(
            evaluated(&index, r#"Role::"editor""#, EDIT, DOC),
            ids(&["role", "staff role"])
        );
    }

    #[test]
    fn action_any_eq_list_and_group() {
        let index = IndexedPolicies::new(policy_set(&[
            ("any", "permit(principal, action, resource);"),
            (
                "edit",
                r#"permit(principal, action == Action::"edit", resource);"#,
            ),
            (
                "view",
                r#"permit(principal, action == Action::"view", resource);"#,
            ),
            (
                "list",
                r#"permit(principal, action in [Action::"view", Action::"share"], resource);"#,
            ),
            (
                "group",
                r#"forbid(principal, action in Action::"write", resource);"#,
            ),
            // Both listed actions admit edit: still evaluated once.
            (
                "edit or write",
                r#"permit(principal, action in [Action::"edit", Action::"write"], resource) when { principal.missing };"#,
            ),
        ]));
        assert_eq!(
            evaluated(&index, ALICE, EDIT, DOC),
            ids(&["any", "edit", "group", "edit or write"])
        );
        assert_eq!(
            evaluated(&index, ALICE, VIEW, DOC),
            ids(&["any", "view", "list"])
        );
    }

    #[test]
    fn action_groups_from_a_schema() {
        let schema = r#"
            entity User;
            entity Doc;
            action write;
            action edit in [write] appliesTo { principal: User, resource: Doc };
        "#;
        let (schema, _) = cedar_policy::Schema::from_cedarschema_str(schema).expect("schema");
        let alice = Entity::new_no_attrs(uid(ALICE), Default::default());
        let entities = Entities::from_entities([alice], Some(&schema)).expect("entities");
        let request = Request::new(
            uid(ALICE),
            uid(EDIT),
            uid(DOC),
            Context::empty(),
            Some(&schema),
        )
        .expect("request");
        let index = IndexedPolicies::new(policy_set(&[
            (
                "group",
                r#"permit(principal, action in Action::"write", resource);"#,
            ),
            (
                "other",
                r#"permit(principal, action in Action::"read", resource);"#,
            ),
        ]));
        assert_eq!(evaluated_for(&index, &request, &entities), ids(&["group"]));
        let response = index.is_authorized(&request, &entities);
        assert_eq!(response.decision(), Decision::Allow);
    }

    #[test]
    fn resource_eq_in_is_and_is_in() {
        let index = IndexedPolicies::new(policy_set(&[
            ("eq", r#"permit(principal, action, resource == Doc::"d");"#),
            (
                "other eq",
                r#"permit(principal, action, resource == Doc::"e");"#,
            ),
            (
                "in",
                r#"permit(principal, action, resource in Folder::"root");"#,
            ),
            (
                "other in",
                r#"permit(principal, action, resource in Folder::"g");"#,
            ),
            ("is", "forbid(principal, action, resource is Doc);"),
            ("other is", "forbid(principal, action, resource is Folder);"),
            (
                "is in",
                r#"permit(principal, action, resource is Doc in Folder::"f");"#,
            ),
            (
                "other is in",
                r#"permit(principal, action, resource is Folder in Folder::"root");"#,
            ),
        ]));
        assert_eq!(
            evaluated(&index, ALICE, EDIT, DOC),
            ids(&["eq", "in", "is", "is in"])
        );
        assert_eq!(
            evaluated(&index, ALICE, EDIT, r#"Folder::"f""#),
            ids(&["in", "other is", "other is in"])
        );
    }

    #[test]
    fn all_three_scopes_must_match() {
        let index = IndexedPolicies::new(policy_set(&[
            (
                "all",
                r#"permit(principal in Role::"staff", action == Action::"edit", resource is Doc);"#,
            ),
            (
                "wrong action",
                r#"permit(principal in Role::"staff", action == Action::"view", resource is Doc);"#,
            ),
            (
                "wrong resource",
                r#"permit(principal in Role::"staff", action == Action::"edit", resource is Folder);"#,
            ),
            (
                "wrong principal",
                r#"permit(principal is Role, action == Action::"edit", resource is Doc);"#,
            ),
        ]));
        assert_eq!(evaluated(&index, ALICE, EDIT, DOC), ids(&["all"]));
    }

    #[test]
    fn forbids_permits_and_errors_combine_across_groups() {
        let index = IndexedPolicies::new(policy_set(&[
            (
                "permit",
                r#"permit(principal == User::"alice", action, resource);"#,
            ),
            (
                "failing permit",
                "permit(principal, action, resource) when { principal.missing };",
            ),
            (
                "failing forbid",
                "forbid(principal is User, action, resource) when { resource.missing };",
            ),
            (
                "forbid",
                r#"forbid(principal, action == Action::"edit", resource) when { principal.level > 2 };"#,
            ),
        ]));
        let all = ids(&["permit", "failing permit", "failing forbid", "forbid"]);
        assert_eq!(evaluated(&index, ALICE, EDIT, DOC), all);
        assert_eq!(evaluated(&index, ALICE, VIEW, DOC).len(), 3);
        let entities = entities();
        let request =
            Request::new(uid(ALICE), uid(EDIT), uid(DOC), Context::empty(), None).expect("request");
        let (decision, reasons, errors) = summary(&index.is_authorized(&request, &entities));
        assert_eq!((decision, reasons), (Decision::Deny, ids(&["forbid"])));
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn a_group_whose_guard_fails_is_skipped() {
        // Every entity of `entities()` has level 3; bob is not there.
        let index = IndexedPolicies::new(policy_set(&[
            (
                "high",
                "forbid(principal, action, resource) when { resource.level > 8 };",
            ),
            (
                "high too",
                "forbid(principal, action, resource) when { resource.level > 8 && principal.missing };",
            ),
            (
                "low",
                "permit(principal, action, resource) when { resource.level <= 8 };",
            ),
            (
                "unless low",
                "permit(principal, action, resource) unless { principal.level < 5 };",
            ),
            (
                "same level",
                "permit(principal, action, resource) when { principal.level == resource.level };",
            ),
        ]));
        assert_eq!(
            evaluated(&index, ALICE, EDIT, DOC),
            ids(&["low", "same level"])
        );
        // bob is not there to decide on: Cedar evaluates his guards (and
        // errors); the resource's still decide.
        assert_eq!(
            evaluated(&index, BOB, EDIT, DOC),
            ids(&["low", "unless low", "same level"])
        );
    }

    #[test]
    fn no_matching_policy_denies_without_reasons() {
        let index = IndexedPolicies::new(policy_set(&[(
            "bob",
            r#"permit(principal == User::"bob", action, resource);"#,
        )]));
        assert_eq!(evaluated(&index, ALICE, EDIT, DOC), ids(&[]));
    }

    #[test]
    fn template_links_are_indexed_by_their_slots() {
        let mut policies = PolicySet::new();
        let template = Template::parse(
            Some(PolicyId::new("share")),
            "permit(principal == ?principal, action, resource in ?resource);",
        )
        .expect("template");
        policies.add_template(template).expect("add template");
        for (id, principal, resource) in [
            ("alice f", ALICE, r#"Folder::"f""#),
            ("bob f", BOB, r#"Folder::"f""#),
            ("alice g", ALICE, r#"Folder::"g""#),
        ] {
            let slots = [
                (cedar_policy::SlotId::principal(), uid(principal)),
                (cedar_policy::SlotId::resource(), uid(resource)),
            ];
            policies
                .link(PolicyId::new("share"), PolicyId::new(id), slots.into())
                .expect("link");
        }
        let index = IndexedPolicies::new(policies);
        assert_eq!(evaluated(&index, ALICE, EDIT, DOC), ids(&["alice f"]));
        assert_eq!(evaluated(&index, BOB, EDIT, DOC), ids(&["bob f"]));
    }
}
