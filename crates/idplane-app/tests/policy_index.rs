//! Differential test of the policy index: over random policy sets, entity
//! hierarchies and requests, the indexed decision must be the full set's
//! (decision, determining policies, erroring policies).
#![allow(
    clippy::expect_used,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityUid, Policy, PolicyId, PolicySet, Request, Response,
    RestrictedExpression, SlotId, Template,
};
use idplane_app::policy::index::IndexedPolicies;
use proptest::prelude::*;
use proptest::sample::{Index, select, subsequence};

const PRINCIPALS: &[&str] = &[
    r#"User::"u0""#,
    r#"User::"u1""#,
    r#"User::"u2""#,
    r#"User::"u3""#,
    r#"Group::"g0""#,
    r#"Group::"g1""#,
    r#"Group::"g2""#,
    r#"App::Role::"r0""#,
    r#"App::Role::"r1""#,
];
const ACTIONS: &[&str] = &[
    r#"Action::"read""#,
    r#"Action::"write""#,
    r#"Action::"delete""#,
    r#"Action::"share""#,
    r#"Action::"edit""#,
    r#"Action::"all""#,
];
const RESOURCES: &[&str] = &[
    r#"Doc::"d0""#,
    r#"Doc::"d1""#,
    r#"Doc::"d2""#,
    r#"Folder::"f0""#,
    r#"Folder::"f1""#,
    r#"Folder::"f2""#,
    r#"App::Doc::"d0""#,
];
const PRINCIPAL_TYPES: &[&str] = &["User", "Group", "App::Role"];
const RESOURCE_TYPES: &[&str] = &["Doc", "Folder", "App::Doc"];
/// Some read attributes that may be missing or of another type, so some
/// policies error; many start with a comparison the index may decide (a
/// guard) and go on with tests it may not.
const CONDITIONS: &[&str] = &[
    "",
    "when { true }",
    "when { principal.level > 2 }",
    "when { resource.level <= principal.level }",
    "unless { context.urgent }",
    r#"when { principal has level && principal.level == 1 }"#,
    r#"when { resource in Folder::"f0" }"#,
    "when { resource.level > 1 && principal.level < 3 }",
    "when { resource.level > 1 } unless { context.urgent }",
    "unless { resource.level == 2 }",
    "unless { resource.level == 2 } when { principal.level >= 1 }",
    "when { principal.level != resource.level && context.urgent }",
    r#"when { resource.level == "2" }"#,
    r#"when { resource.level < "2" }"#,
    "when { 1 >= principal.level }",
    "when { resource.level < 2 && context.urgent }",
    "unless { principal.level >= 2 }",
    r#"when { principal.level >= 1 && resource.level < 3 && resource.name != "d0" }"#,
    "when { resource.name == principal.name && resource.level > 0 }",
    r#"unless { principal.name == "u1" }"#,
    r#"when { principal.name != "u1" && principal.flag == true }"#,
];

fn scope(
    variable: &str,
    uids: &'static [&'static str],
    types: &'static [&'static str],
) -> impl Strategy<Value = String> {
    let variable = variable.to_owned();
    (0..5u8, select(uids), select(types)).prop_map(move |(kind, uid, ty)| match kind {
        0 => variable.clone(),
        1 => format!("{variable} == {uid}"),
        2 => format!("{variable} in {uid}"),
        3 => format!("{variable} is {ty}"),
        _ => format!("{variable} is {ty} in {uid}"),
    })
}

fn action_scope() -> impl Strategy<Value = String> {
    (0..3u8, select(ACTIONS), subsequence(ACTIONS, 0..=3)).prop_map(|(kind, action, list)| {
        match kind {
            0 => "action".to_owned(),
            1 => format!("action == {action}"),
            _ => format!("action in [{}]", list.join(", ")),
        }
    })
}

fn policy_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        scope("principal", PRINCIPALS, PRINCIPAL_TYPES),
        action_scope(),
        scope("resource", RESOURCES, RESOURCE_TYPES),
        select(CONDITIONS),
    )
        .prop_map(|(permit, principal, action, resource, condition)| {
            let effect = if permit { "permit" } else { "forbid" };
            format!("{effect}({principal}, {action}, {resource}) {condition};")
        })
}

/// Links of `permit(principal in ?principal, action, resource in ?resource)`.
fn links() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    prop::collection::vec((select(PRINCIPALS), select(RESOURCES)), 0..4)
}

/// Each entity is present or missing; a present one has some of the earlier
/// entities of its kind (or of the groups, for users) as parents, so the
/// hierarchy is acyclic, and maybe a `level` (a long, sometimes a string),
/// a `name` and a `flag`.
#[derive(Debug, Clone)]
struct EntitySpec {
    present: bool,
    parents: Vec<Index>,
    level: Option<i64>,
    level_as_string: bool,
    name: Option<&'static str>,
    flag: Option<bool>,
}

fn entity_spec() -> impl Strategy<Value = EntitySpec> {
    (
        prop::bool::weighted(0.85),
        prop::collection::vec(any::<Index>(), 0..3),
        prop::option::of(0..4i64),
        prop::bool::weighted(0.1),
        prop::option::of(select(&["u1", "d0", "x"][..])),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(present, parents, level, level_as_string, name, flag)| EntitySpec {
                present,
                parents,
                level,
                level_as_string,
                name,
                flag,
            },
        )
}

fn uid(text: &str) -> EntityUid {
    EntityUid::from_str(text).expect("entity uid")
}

/// Where the groups and roles start in PRINCIPALS: users join any of them.
const FIRST_GROUP: usize = 4;

/// Parents come from earlier entries of the same list, except that users
/// join groups and roles (listed after them), so there are no cycles.
fn entities(specs: &[EntitySpec]) -> Entities {
    let lists: [(&[&str], usize); 3] = [(PRINCIPALS, FIRST_GROUP), (ACTIONS, 0), (RESOURCES, 0)];
    let mut specs = specs.iter();
    let mut entities = Vec::new();
    for (list, first_parent) in lists {
        for (position, text) in list.iter().enumerate() {
            let Some(spec) = specs.next() else { break };
            if !spec.present {
                continue;
            }
            let candidates = if position < first_parent {
                &list[first_parent..]
            } else {
                &list[first_parent..position]
            };
            let parents: HashSet<EntityUid> = spec
                .parents
                .iter()
                .filter(|_| !candidates.is_empty())
                .map(|index| uid(candidates[index.index(candidates.len())]))
                .collect();
            let level = spec.level.map(|level| {
                if spec.level_as_string {
                    RestrictedExpression::new_string(level.to_string())
                } else {
                    RestrictedExpression::new_long(level)
                }
            });
            let name = spec
                .name
                .map(|name| RestrictedExpression::new_string(name.to_owned()));
            let flag = spec.flag.map(RestrictedExpression::new_bool);
            let attrs: HashMap<String, RestrictedExpression> =
                [("level", level), ("name", name), ("flag", flag)]
                    .into_iter()
                    .filter_map(|(key, value)| Some((key.to_owned(), value?)))
                    .collect();
            entities.push(Entity::new(uid(text), attrs, parents).expect("entity"));
        }
    }
    Entities::from_entities(entities, None).expect("entities")
}

fn policy_set(texts: &[String], links: &[(&str, &str)]) -> PolicySet {
    let mut set = PolicySet::new();
    for (position, text) in texts.iter().enumerate() {
        let id = PolicyId::new(format!("p{position}"));
        set.add(Policy::parse(Some(id), text).expect("policy"))
            .expect("add policy");
    }
    let template = "permit(principal in ?principal, action, resource in ?resource) when { principal.level > 0 };";
    set.add_template(Template::parse(Some(PolicyId::new("t")), template).expect("template"))
        .expect("add template");
    for (position, (principal, resource)) in links.iter().enumerate() {
        let slots = HashMap::from([
            (SlotId::principal(), uid(principal)),
            (SlotId::resource(), uid(resource)),
        ]);
        set.link(
            PolicyId::new("t"),
            PolicyId::new(format!("link{position}")),
            slots,
        )
        .expect("link");
    }
    set
}

/// Decision, determining policy ids and erroring policy ids.
fn summary(response: &Response) -> (cedar_policy::Decision, BTreeSet<String>, Vec<String>) {
    let diagnostics = response.diagnostics();
    let mut errors: Vec<String> = diagnostics
        .errors()
        .map(|error| match error {
            cedar_policy::AuthorizationError::PolicyEvaluationError(error) => {
                error.policy_id().to_string()
            }
        })
        .collect();
    errors.sort();
    let reasons = diagnostics.reason().map(ToString::to_string).collect();
    (response.decision(), reasons, errors)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn indexed_decisions_equal_full_evaluation(
        texts in prop::collection::vec(policy_text(), 0..40),
        links in links(),
        specs in prop::collection::vec(entity_spec(), PRINCIPALS.len() + ACTIONS.len() + RESOURCES.len()),
        requests in prop::collection::vec(
            (select(PRINCIPALS), select(ACTIONS), select(RESOURCES), any::<bool>()),
            1..40,
        ),
    ) {
        let index = IndexedPolicies::new(policy_set(&texts, &links));
        let entities = entities(&specs);
        for (principal, action, resource, urgent) in requests {
            let context = Context::from_pairs([
                ("urgent".to_owned(), RestrictedExpression::new_bool(urgent)),
            ])
            .expect("context");
            let request = Request::new(uid(principal), uid(action), uid(resource), context, None)
                .expect("request");
            prop_assert_eq!(
                summary(&index.is_authorized(&request, &entities)),
                summary(&index.is_authorized_full(&request, &entities)),
                "request {} {} {}", principal, action, resource
            );
        }
    }
}
