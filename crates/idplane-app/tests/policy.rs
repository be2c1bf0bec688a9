//! Authorization use cases: policy versions, decisions over the directory,
//! the decision log and impact analysis, on a temporary SQLite store with a
//! manual clock.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use idplane_app::directory::roles::AssignRole;
use idplane_app::policy::DIRECTORY_POLL;
use idplane_app::policy::authzen::{Evaluation, Evaluations, EvaluationsResponse};
use idplane_app::policy::bundle::{DecisionLogSettings, PolicyBundle};
use idplane_app::policy::engine::Decided;
use idplane_app::policy::versions::ENGINE_POLL;
use idplane_app::tokens::{Caller, CreateToken, Scope};
use idplane_app::{App, AppError};
use idplane_core::audit::{AuditRecord, DECISION_ACTION};
use idplane_core::directory::Principal;
use idplane_core::{Ctx, RequestMeta};
use idplane_store::audit::AuditFilter;
use jiff::SignedDuration;
use serde_json::{Value, json};
use support::Harness;

const SCHEMA: &str = r#"namespace Docs {
  entity Doc = { owner: String, classification: Long };
  action read, write appliesTo { principal: [Idplane::User], resource: [Doc], context: { mfa?: Bool } };
  action approve appliesTo { principal: [Idplane::User], resource: [Doc], context: { ticket: String } };
}"#;

const POLICIES: &str = r#"
@id("readers-read")
@description("Anyone holding the reader role reads documents")
permit (principal in Idplane::Role::"reader", action == Docs::Action::"read", resource);

@id("owners-write")
permit (principal, action == Docs::Action::"write", resource)
when { principal has email && resource.owner == principal.email };

@id("secret-needs-mfa")
forbid (principal, action, resource)
when { resource.classification > 2 } unless { context has mfa && context.mfa };
"#;

fn bundle(policies: &str) -> PolicyBundle {
    PolicyBundle {
        schemas: [("Docs".to_owned(), SCHEMA.to_owned())].into(),
        policies: [("docs.cedar".to_owned(), policies.to_owned())].into(),
        tests: Vec::new(),
        decision_log: DecisionLogSettings {
            allow_sample_rate: 1.0,
        },
    }
}

fn eval(subject: &str, action: &str, owner: &str, classification: i64) -> Evaluation {
    serde_json::from_value(json!({
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "Doc", "id": "d1", "properties": {"owner": owner, "classification": classification}},
    }))
    .unwrap()
}

async fn decide(h: &Harness, e: &Evaluation) -> Decided {
    h.app.evaluate(&h.ctx().await, e).await.unwrap().unwrap()
}

async fn setup() -> Harness {
    setup_with_users().await.0
}

/// The harness, alice and bob (with emails), the reader role, version 1.
async fn setup_with_users() -> (Harness, Vec<Principal>) {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let mut users = Vec::new();
    for (name, email) in [("alice", "alice@example.com"), ("bob", "bob@example.com")] {
        let cmd = serde_json::from_value(json!({"username": name, "email": email})).unwrap();
        users.push(h.app.create_user(&ctx, cmd).await.unwrap());
    }
    let role = serde_json::from_value(json!({"name": "reader"})).unwrap();
    h.app.create_role(&ctx, role).await.unwrap();
    h.app
        .put_policies(&ctx, bundle(POLICIES), "first version")
        .await
        .unwrap();
    (h, users)
}

/// [`setup`], with alice holding the reader role for good.
async fn setup_with_alice_reading() -> (Harness, Ctx) {
    let h = setup().await;
    let ctx = h.ctx().await;
    assign(&h.app, &ctx, "alice", None).await;
    (h, ctx)
}

/// [`setup_with_users`] with one namespace's schema and policies as the
/// active version, and the groups company (holding engineering),
/// engineering (holding alice) and `others`, in that order.
async fn setup_with_teams(
    namespace: &str,
    schema: &str,
    policies: &str,
    others: &[&str],
) -> (Harness, Ctx, Vec<Principal>) {
    let (h, _) = setup_with_users().await;
    let ctx = h.ctx().await;
    let bundle = PolicyBundle {
        schemas: [(namespace.to_owned(), schema.to_owned())].into(),
        policies: [(format!("{namespace}.cedar"), policies.to_owned())].into(),
        tests: Vec::new(),
        decision_log: DecisionLogSettings::default(),
    };
    h.app.put_policies(&ctx, bundle, namespace).await.unwrap();
    let mut groups = Vec::new();
    for name in ["company", "engineering"].iter().chain(others) {
        let group = serde_json::from_value(json!({"name": name})).unwrap();
        groups.push(h.app.create_group(&ctx, group).await.unwrap());
    }
    for (group, member) in [(0, "group:engineering"), (1, "alice")] {
        let member = serde_json::from_value(json!({"member": member})).unwrap();
        h.app
            .add_member(&ctx, groups[group].id, member)
            .await
            .unwrap();
    }
    (h, ctx, groups)
}

async fn assign(app: &App, ctx: &Ctx, principal: &str, expires_in: Option<&str>) {
    let cmd: AssignRole = serde_json::from_value(json!({
        "role": "reader", "principal": principal, "expires_in": expires_in,
    }))
    .unwrap();
    app.assign_role(ctx, cmd).await.unwrap();
}

/// The decision log's events so far, oldest first.
async fn decision_records(h: &Harness) -> Vec<AuditRecord> {
    let filter = AuditFilter {
        action: Some(DECISION_ACTION.to_owned()),
        limit: 1000,
        ..AuditFilter::default()
    };
    h.app.audit_writer().flush().await;
    let ctx = h.ctx().await;
    h.app.audit_events(&ctx, &filter).await.unwrap()
}

async fn decision_events(h: &Harness) -> Vec<Value> {
    decision_records(h)
        .await
        .into_iter()
        .map(|r| r.event.details)
        .collect()
}

/// A batch for alice on a document of bob's, with `semantic`.
fn alice_batch(semantic: &str, evaluations: Value) -> Evaluations {
    serde_json::from_value(json!({
        "subject": {"type": "user", "id": "alice"},
        "resource": {"type": "Doc", "id": "d", "properties": {"owner": "bob@example.com", "classification": 1}},
        "evaluations": evaluations,
        "options": {"evaluations_semantic": semantic},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_role_allows_until_it_expires_and_a_forbid_wins() {
    let h = setup().await;
    let ctx = h.ctx().await;
    let read = eval("alice", "read", "bob@example.com", 1);
    assert!(!decide(&h, &read).await.allowed, "no role yet");

    assign(&h.app, &ctx, "alice", Some("1h")).await;
    let decided = decide(&h, &read).await;
    assert!(decided.allowed);
    assert_eq!(decided.policies, ["readers-read"]);
    assert_eq!(decided.version, Some(1));

    // The forbid beats the permit for a secret document without MFA.
    let secret = eval("alice", "read", "bob@example.com", 3);
    let decided = decide(&h, &secret).await;
    assert!(!decided.allowed);
    assert_eq!(decided.policies, ["secret-needs-mfa"]);
    let mut with_mfa = secret.clone();
    with_mfa.context.insert("mfa".into(), json!(true));
    assert!(decide(&h, &with_mfa).await.allowed);

    // The assignment expires: the very next decision is a deny, with no
    // directory change and no background job.
    h.advance(SignedDuration::from_mins(61));
    assert!(!decide(&h, &read).await.allowed);
}

/// A second node on this one's database, and a root context there. Two
/// nodes on one SQLite file (PostgreSQL's deployment, in miniature): flush
/// this node's queued decision-log events before writing on the other, or
/// its transaction may find its snapshot stale and be refused.
async fn other_node(h: &Harness) -> (App, Ctx) {
    let other = h.second_node().await;
    let tenant = other.default_tenant_id().await.unwrap();
    let ctx = other.ctx(tenant, idplane_core::Actor::Root, RequestMeta::default());
    (other, ctx)
}

/// A change made on another node reaches a subject in steady use once this
/// node reads the directory generation again, within `DIRECTORY_POLL`;
/// until then the cached projection keeps answering without a round trip.
#[tokio::test]
async fn a_change_on_another_node_applies_within_a_poll() {
    let (h, users) = setup_with_users().await;
    let (other, ctx) = other_node(&h).await;
    let read = eval("alice", "read", "x", 1);
    assert!(!decide(&h, &read).await.allowed);

    h.app.audit_writer().flush().await;
    assign(&other, &ctx, "alice", None).await;
    h.advance(DIRECTORY_POLL - SignedDuration::from_millis(1));
    assert!(
        !decide(&h, &read).await.allowed,
        "this node has not read the generation again yet"
    );
    h.advance(SignedDuration::from_millis(1));
    assert!(decide(&h, &read).await.allowed, "the grant was not seen");

    // Suspending her there is seen the same way: a leaver deprovisioned
    // on one node is denied on every node within a poll.
    h.advance(DIRECTORY_POLL);
    assert!(
        decide(&h, &read).await.allowed,
        "nothing changed, still allowed"
    );
    let suspend = serde_json::from_value(json!({"status": "suspended"})).unwrap();
    h.app.audit_writer().flush().await;
    other
        .update_user(&ctx, users[0].id, suspend, None)
        .await
        .unwrap();
    assert!(
        decide(&h, &read).await.allowed,
        "within the poll, still cached"
    );
    h.advance(DIRECTORY_POLL);
    let decided = decide(&h, &read).await;
    assert!(!decided.allowed, "the suspension was not seen");
    assert_eq!(decided.note.as_deref(), Some("the subject is not active"));
}

#[tokio::test]
async fn directory_changes_apply_to_the_next_decision() {
    let (h, users) = setup_with_users().await;
    let ctx = h.ctx().await;
    let read = eval("alice", "read", "x", 1);
    assert!(!decide(&h, &read).await.allowed);
    // A role held through a group counts too.
    let group = serde_json::from_value(json!({"name": "staff"})).unwrap();
    let group = h.app.create_group(&ctx, group).await.unwrap();
    assign(&h.app, &ctx, "group:staff", None).await;
    let member = serde_json::from_value(json!({"member": "alice"})).unwrap();
    h.app.add_member(&ctx, group.id, member).await.unwrap();
    assert!(decide(&h, &read).await.allowed);

    // Suspending her denies at once, with a note rather than a policy.
    let suspend = serde_json::from_value(json!({"status": "suspended"})).unwrap();
    h.app
        .update_user(&ctx, users[0].id, suspend, None)
        .await
        .unwrap();
    let decided = decide(&h, &read).await;
    assert!(!decided.allowed);
    assert_eq!(decided.note.as_deref(), Some("the subject is not active"));

    let nobody = decide(&h, &eval("mallory", "read", "x", 1)).await;
    assert!(!nobody.allowed);
    assert_eq!(nobody.note.as_deref(), Some("unknown subject"));
}

#[tokio::test]
async fn a_group_as_the_resource_keeps_its_parents_when_the_subject_is_in_it() {
    let schema = r#"namespace Teams {
  action manage appliesTo { principal: [Idplane::User], resource: [Idplane::Group] };
}"#;
    let policies = r#"@id("company-groups")
permit (principal, action == Teams::Action::"manage", resource in Idplane::Group::"company");"#;
    // bob is in no group.
    let (h, ..) = setup_with_teams("Teams", schema, policies, &["other"]).await;
    let manage = |subject: &str, group: &str| -> Evaluation {
        serde_json::from_value(json!({
            "subject": {"type": "user", "id": subject},
            "action": {"name": "manage"},
            "resource": {"type": "group", "id": group},
        }))
        .unwrap()
    };
    // The subject's own view of engineering (one of her groups) has no
    // parents: the resource's must be the one decided on.
    for subject in ["alice", "bob"] {
        assert!(
            decide(&h, &manage(subject, "engineering")).await.allowed,
            "{subject} on engineering"
        );
        assert!(!decide(&h, &manage(subject, "other")).await.allowed);
    }
}

#[tokio::test]
async fn nested_groups_their_roles_and_action_groups_grant_on_an_application_resource() {
    let schema = r#"namespace Wiki {
  entity Page;
  action contribute;
  action comment in [contribute] appliesTo { principal: [Idplane::User], resource: [Page] };
  action view appliesTo { principal: [Idplane::User], resource: [Page] };
}"#;
    let policies = r#"@id("company-contributes")
permit (principal in Idplane::Group::"company", action in Wiki::Action::"contribute", resource);
@id("readers-view")
permit (principal in Idplane::Role::"reader", action == Wiki::Action::"view", resource);"#;
    let (h, ctx, groups) = setup_with_teams("Wiki", schema, policies, &[]).await;
    assign(&h.app, &ctx, "group:company", None).await;
    let on_page = |subject: &str, action: &str| -> Evaluation {
        serde_json::from_value(json!({
            "subject": {"type": "user", "id": subject},
            "action": {"name": action},
            "resource": {"type": "Page", "id": "home"},
        }))
        .unwrap()
    };
    for action in ["comment", "view"] {
        let alice = decide(&h, &on_page("alice", action)).await;
        assert!(alice.allowed, "alice may {action}: {alice:?}");
        assert!(!decide(&h, &on_page("bob", action)).await.allowed);
    }
    // A resource from the request cannot claim a place in the hierarchy:
    // its properties are attributes only, and `Page` declares none.
    let mut claiming = on_page("bob", "comment");
    claiming.resource.properties.insert(
        "parents".to_owned(),
        json!([{"type": "Idplane::Group", "id": "company"}]),
    );
    let refused = h.app.evaluate(&ctx, &claiming).await.unwrap();
    assert!(refused.is_err(), "evaluated: {refused:?}");
    // Leaving engineering takes both away at the next decision.
    h.app
        .remove_member(&ctx, groups[1].id, "alice")
        .await
        .unwrap();
    for action in ["comment", "view"] {
        assert!(!decide(&h, &on_page("alice", action)).await.allowed);
    }
}

#[tokio::test]
async fn attribute_conditions_read_the_directory() {
    let (h, users) = setup_with_users().await;
    assert!(
        decide(&h, &eval("bob", "write", "bob@example.com", 1))
            .await
            .allowed
    );
    assert!(
        !decide(&h, &eval("alice", "write", "bob@example.com", 1))
            .await
            .allowed
    );
    // The subject can be named by its principal id too.
    let by_id = eval(&users[1].id.to_string(), "write", "bob@example.com", 1);
    assert!(decide(&h, &by_id).await.allowed);
}

#[tokio::test]
async fn bad_requests_are_errors_never_allows() {
    let h = setup().await;
    let ctx = h.ctx().await;
    let bad = |e: Value| serde_json::from_value::<Evaluation>(e).unwrap();
    let cases = [
        // An action no schema declares.
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "delete"},
               "resource": {"type": "Doc", "id": "d", "properties": {"owner": "a", "classification": 1}}}),
        // A type that is neither the directory's nor the application's.
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
               "resource": {"type": "Folder", "id": "f"}}),
        // A missing attribute.
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
               "resource": {"type": "Doc", "id": "d", "properties": {"owner": "a"}}}),
        // An attribute of the wrong type.
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
               "resource": {"type": "Doc", "id": "d", "properties": {"owner": "a", "classification": "high"}}}),
        // A context key the schema does not declare.
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
               "resource": {"type": "Doc", "id": "d", "properties": {"owner": "a", "classification": 1}},
               "context": {"unknown": 1}}),
        // No context where the action requires a key.
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "approve"},
               "resource": {"type": "Doc", "id": "d", "properties": {"owner": "a", "classification": 1}}}),
        // Directory attributes cannot be supplied by the caller.
        json!({"subject": {"type": "user", "id": "alice", "properties": {"email": "bob@example.com"}},
               "action": {"name": "write"},
               "resource": {"type": "Doc", "id": "d", "properties": {"owner": "bob@example.com", "classification": 1}}}),
    ];
    for case in cases {
        let result = h.app.evaluate(&ctx, &bad(case.clone())).await.unwrap();
        assert!(result.is_err(), "{case} was evaluated: {result:?}");
    }
    // Deeply nested context is refused before Cedar sees it.
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let mut nested = eval("alice", "read", "a", 1);
    nested.context.insert("mfa".into(), deep);
    let refused = h.app.evaluate(&ctx, &nested).await.unwrap().unwrap_err();
    assert!(refused.0.contains("nested deeper"), "{}", refused.0);
}

#[tokio::test]
async fn an_evaluation_error_is_a_deny_and_is_explained() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let cmd = serde_json::from_value(json!({"username": "carol"})).unwrap();
    h.app.create_user(&ctx, cmd).await.unwrap();
    // `principal.email` without a `has` check fails strict validation...
    let unchecked = r#"@id("by-email") permit (principal, action == Docs::Action::"write", resource) when { resource.owner == principal.email };"#;
    let refused = h
        .app
        .put_policies(&ctx, bundle(unchecked), "unchecked")
        .await;
    assert!(matches!(refused, Err(AppError::Invalid(_))), "{refused:?}");
    // ...and overflow is a runtime error strict validation cannot see.
    let overflow = r#"@id("overflow") permit (principal, action == Docs::Action::"read", resource) when { resource.classification * 9223372036854775807 > 0 };"#;
    h.app
        .put_policies(&ctx, bundle(overflow), "overflow")
        .await
        .unwrap();
    let decided = decide(&h, &eval("carol", "read", "x", 2)).await;
    assert!(!decided.allowed);
    assert!(decided.policies.is_empty());
    assert_eq!(decided.errors.len(), 1, "{:?}", decided.errors);
    assert!(
        decided.errors[0].contains("overflow"),
        "{:?}",
        decided.errors
    );
}

#[tokio::test]
async fn invalid_bundles_and_failing_tests_are_refused_whole() {
    let h = setup().await;
    let ctx = h.ctx().await;
    let mut failing = bundle(POLICIES);
    failing.tests = vec![serde_json::from_value(json!({
        "name": "bob may read his own doc",
        "principal": "Idplane::User::\"bob\"",
        "action": "Docs::Action::\"read\"",
        "resource": "Docs::Doc::\"d\"",
        "entities": [
            {"uid": {"type": "Idplane::User", "id": "bob"}, "attrs": {"name": "bob", "status": "active"}, "parents": []},
            {"uid": {"type": "Docs::Doc", "id": "d"}, "attrs": {"owner": "bob", "classification": 1}, "parents": []}
        ],
        "expect": "allow",
    }))
    .unwrap()];
    let mut nested_schema = bundle(POLICIES);
    nested_schema.schemas.insert(
        "Deep".into(),
        format!(
            "namespace Deep {{ entity E = {}{}; }}",
            "{ a: ".repeat(3_000),
            " Long }".repeat(3_000)
        ),
    );
    let mut reserved = bundle(POLICIES);
    reserved
        .schemas
        .insert("Idplane".into(), "namespace Idplane {}".into());
    let cases = [
        (
            "does not parse",
            bundle("permit (principal, action, resource"),
        ),
        (
            "has no @id",
            bundle("permit (principal, action, resource);"),
        ),
        (
            "duplicate @id",
            bundle(
                r#"@id("a") permit (principal, action, resource); @id("a") forbid (principal, action, resource);"#,
            ),
        ),
        (
            "does not validate",
            bundle(
                r#"@id("a") permit (principal, action, resource) when { resource.colour == "red" };"#,
            ),
        ),
        ("fails a test", failing),
        (
            "is over the size bound",
            bundle(&format!("// {}\n{POLICIES}", "x".repeat(1 << 20))),
        ),
        ("redefines the directory", reserved),
        (
            "nests 3,000 parentheses deep",
            bundle(&format!(
                "{POLICIES}\n@id(\"deep\") permit (principal, action, resource) when {{ {}true{} }};",
                "(".repeat(3_000),
                ")".repeat(3_000)
            )),
        ),
        (
            "chains 3,000 conditions",
            bundle(&format!(
                "{POLICIES}\n@id(\"long\") permit (principal, action, resource) when {{ {} }};",
                vec!["true"; 3_000].join(" && ")
            )),
        ),
        ("nests a schema 3,000 records deep", nested_schema),
    ];
    for (why, refused) in cases {
        let result = h.app.put_policies(&ctx, refused, why).await;
        assert!(
            matches!(result, Err(AppError::Invalid(_))),
            "{why}: {result:?}"
        );
    }
    let versions = h.app.policy_versions(&ctx, 10).await.unwrap();
    assert_eq!(
        versions.len(),
        1,
        "nothing but the first version was stored"
    );
    assert!(h.app.policy_version(&ctx, None).await.unwrap().active);
}

/// Deep enough to overflow an ordinary thread's stack in Cedar's parser
/// and printer, yet inside the nesting bound.
#[tokio::test]
async fn policies_as_deep_as_the_bound_allows_compile_decide_and_print() {
    let h = setup().await;
    let ctx = h.ctx().await;
    let deep = format!(
        "{POLICIES}\n@id(\"deep\") permit (principal, action == Docs::Action::\"write\", resource) \
         when {{ {}resource.owner == \"deep@example.com\"{} }};\n\
         @id(\"long\") permit (principal, action == Docs::Action::\"write\", resource) \
         when {{ resource.classification == 1 && {} }};",
        "(".repeat(200),
        ")".repeat(200),
        (0..200)
            .map(|i| format!("resource.owner != \"nobody-{i}\""))
            .collect::<Vec<_>>()
            .join(" && ")
    );
    let deep = bundle(&deep);
    let markdown = idplane_app::policy::doc::render(&deep, "Deep").unwrap();
    assert!(markdown.contains("### `deep` (permit)"), "{markdown}");
    h.app.put_policies(&ctx, deep, "deep").await.unwrap();
    // Deciding with the long chain needs the server's deeper worker stacks
    // in an unoptimised build: the HTTP test decides with it.
    for (owner, classification, allowed) in [
        ("deep@example.com", 2, true),
        ("carol@example.com", 2, false),
    ] {
        let write = eval("alice", "write", owner, classification);
        let decided = decide(&h, &write).await;
        assert_eq!(decided.allowed, allowed, "{owner}: {decided:?}");
    }
}

/// The test policies and one more: everyone may write.
fn open_writes() -> PolicyBundle {
    bundle(&format!(
        "{POLICIES}\n@id(\"everyone-writes\") permit (principal, action == Docs::Action::\"write\", resource);"
    ))
}

#[tokio::test]
async fn rolling_back_restores_the_earlier_decisions() {
    let h = setup().await;
    let ctx = h.ctx().await;
    let write = eval("alice", "write", "bob@example.com", 1);
    assert!(!decide(&h, &write).await.allowed);
    let v2 = h
        .app
        .put_policies(&ctx, open_writes(), "open writes")
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert!(decide(&h, &write).await.allowed);

    h.app.activate_policies(&ctx, 1).await.unwrap();
    let decided = decide(&h, &write).await;
    assert!(!decided.allowed);
    assert_eq!(decided.version, Some(1));
    let active = h.app.policy_version(&ctx, None).await.unwrap();
    assert_eq!(active.info.version, 1);
    assert!(matches!(
        h.app.activate_policies(&ctx, 9).await,
        Err(AppError::NotFound(_))
    ));
}

/// A version activated on another node (a rollback there, say) applies
/// here within `ENGINE_POLL`; until then the compiled engine answers.
#[tokio::test]
async fn a_policy_change_on_another_node_applies_within_a_poll() {
    let h = setup().await;
    let (other, ctx) = other_node(&h).await;
    let write = eval("alice", "write", "bob@example.com", 1);
    assert!(!decide(&h, &write).await.allowed);

    h.app.audit_writer().flush().await;
    other
        .put_policies(&ctx, open_writes(), "open writes")
        .await
        .unwrap();
    h.advance(ENGINE_POLL - SignedDuration::from_millis(1));
    let decided = decide(&h, &write).await;
    assert_eq!(decided.version, Some(1), "not read again yet");
    assert!(!decided.allowed);
    h.advance(SignedDuration::from_millis(1));
    let decided = decide(&h, &write).await;
    assert_eq!(decided.version, Some(2), "the new version was not seen");
    assert!(decided.allowed);

    // Rolled back there: the earlier version decides here a poll later.
    h.app.audit_writer().flush().await;
    other.activate_policies(&ctx, 1).await.unwrap();
    h.advance(ENGINE_POLL);
    let decided = decide(&h, &write).await;
    assert_eq!(decided.version, Some(1), "the rollback was not seen");
    assert!(!decided.allowed);
}

#[tokio::test]
async fn batches_follow_the_evaluation_semantic() {
    let (h, ctx) = setup_with_alice_reading().await;
    let batch = |semantic: &str| {
        alice_batch(
            semantic,
            json!([
                {"action": {"name": "read"}},
                {"action": {"name": "write"}},
                {"action": {"name": "nope"}},
                {"action": {"name": "read"}, "subject": {"type": "user", "id": "bob"}},
            ]),
        )
    };
    let decisions = |r: EvaluationsResponse| -> Vec<bool> {
        r.evaluations.iter().map(|e| e.decision).collect()
    };
    let all = h
        .app
        .evaluate_batch(&ctx, &batch("execute_all"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        all.evaluations[2].context.is_some(),
        "the bad item carries its error"
    );
    assert_eq!(decisions(all), [true, false, false, false]);
    let first_deny = h
        .app
        .evaluate_batch(&ctx, &batch("deny_on_first_deny"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decisions(first_deny), [true, false]);
    let first_permit = h
        .app
        .evaluate_batch(&ctx, &batch("permit_on_first_permit"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decisions(first_permit), [true]);

    // A long batch is decided on two threads and answered in order.
    let mut long: Evaluations = batch("execute_all");
    let items: Vec<Value> = (0..41)
        .map(|i| match i {
            20 => json!({"action": {"name": "nope"}}),
            i if i % 3 == 0 => json!({"action": {"name": "read"}}),
            _ => json!({"action": {"name": "write"}}),
        })
        .collect();
    long.evaluations = Some(serde_json::from_value(Value::Array(items)).unwrap());
    let answered = h.app.evaluate_batch(&ctx, &long).await.unwrap().unwrap();
    assert!(answered.evaluations[20].context.is_some());
    let expected: Vec<bool> = (0..41).map(|i| i != 20 && i % 3 == 0).collect();
    assert_eq!(decisions(answered), expected);

    let mut over: Evaluations = batch("execute_all");
    over.evaluations = Some(vec![Default::default(); 257]);
    assert!(h.app.evaluate_batch(&ctx, &over).await.unwrap().is_err());
}

#[tokio::test]
async fn denies_are_always_logged_and_allows_as_sampled() {
    let (h, ctx) = setup_with_alice_reading().await;
    decide(&h, &eval("alice", "read", "x", 1)).await;
    decide(&h, &eval("bob", "read", "x", 1)).await;
    let logged = decision_events(&h).await;
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0]["decision"], "allow");
    assert_eq!(logged[0]["policies"], json!(["readers-read"]));
    assert_eq!(logged[0]["version"], 1);
    assert_eq!(logged[1]["decision"], "deny");
    assert_eq!(logged[1]["request"]["subject"]["id"], "bob");

    let mut quiet = bundle(POLICIES);
    quiet.decision_log.allow_sample_rate = 0.0;
    h.app
        .put_policies(&ctx, quiet, "no allow logging")
        .await
        .unwrap();
    decide(&h, &eval("alice", "read", "x", 1)).await;
    decide(&h, &eval("bob", "read", "x", 1)).await;
    let logged = decision_events(&h).await;
    assert_eq!(logged.len(), 3, "only the deny was added");
    assert_eq!(logged[2]["decision"], "deny");
}

#[tokio::test]
async fn impact_analysis_reports_the_flips_by_policy() {
    let (h, ctx) = setup_with_alice_reading().await;
    for e in [
        eval("alice", "read", "x", 1),
        eval("bob", "read", "x", 1),
        eval("bob", "write", "bob@example.com", 3),
    ] {
        decide(&h, &e).await;
    }
    h.app.audit_writer().flush().await;
    // Proposed: readers lose secret docs entirely; bob may read too.
    let proposed = format!(
        "{POLICIES}\n@id(\"bob-reads\") permit (principal == Idplane::User::\"bob\", action == Docs::Action::\"read\", resource);"
    );
    let impact = h
        .app
        .policy_impact(&ctx, &bundle(&proposed), None)
        .await
        .unwrap();
    assert_eq!(impact.live_version, Some(1));
    assert_eq!(impact.replayed, 3, "the logged decisions were replayed");
    assert_eq!(impact.flips.len(), 1);
    assert_eq!(impact.flips[0].request.subject.id, "bob");
    assert!(!impact.flips[0].live.decision && impact.flips[0].proposed.decision);
    assert_eq!(impact.by_policy.get("bob-reads"), Some(&1));

    // Given requests instead of the log; nothing was stored or logged.
    let requests = vec![eval("alice", "read", "x", 1)];
    let none = h
        .app
        .policy_impact(&ctx, &bundle(&proposed), Some(requests))
        .await
        .unwrap();
    assert_eq!((none.replayed, none.flips.len()), (1, 0));
    assert_eq!(h.app.policy_versions(&ctx, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_batch_is_logged_as_one_event_per_subject_and_replayed_item_by_item() {
    let (h, ctx) = setup_with_alice_reading().await;
    let batch = |semantic: &str| {
        alice_batch(
            semantic,
            json!([
                {"action": {"name": "read"}},
                {"action": {"name": "write"}},
                {"action": {"name": "read"}, "subject": {"type": "user", "id": "bob"}},
                {"action": {"name": "write"}, "resource": {"type": "Doc", "id": "e", "properties": {"owner": "x", "classification": 2}}},
            ]),
        )
    };
    h.app
        .evaluate_batch(&ctx, &batch("execute_all"))
        .await
        .unwrap()
        .unwrap();
    let logged = decision_records(&h).await;
    let by_subject: Vec<(Option<&str>, &str, Vec<&str>)> = logged
        .iter()
        .map(|r| {
            let decisions = r.event.details["decisions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["decision"].as_str().unwrap())
                .collect();
            (
                r.event.target.as_deref(),
                r.event.outcome.as_str(),
                decisions,
            )
        })
        .collect();
    assert_eq!(
        by_subject,
        [
            (Some("user:alice"), "failure", vec!["allow", "deny", "deny"]),
            (Some("user:bob"), "failure", vec!["deny"]),
        ],
        "one event per subject, its decisions in order"
    );
    let alice = &logged[0].event.details["decisions"];
    assert_eq!(alice[0]["policies"], json!(["readers-read"]));
    assert_eq!(alice[2]["request"]["resource"]["id"], "e");

    // One by one (stopping at the first deny) logs the same way.
    h.app
        .evaluate_batch(&ctx, &batch("deny_on_first_deny"))
        .await
        .unwrap()
        .unwrap();
    let logged = decision_records(&h).await;
    assert_eq!(logged.len(), 3);
    assert_eq!(
        logged[2].event.details["decisions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Impact analysis replays each item of a logged batch.
    let proposed = format!(
        "{POLICIES}\n@id(\"bob-reads\") permit (principal == Idplane::User::\"bob\", action == Docs::Action::\"read\", resource);"
    );
    let impact = h
        .app
        .policy_impact(&ctx, &bundle(&proposed), None)
        .await
        .unwrap();
    assert_eq!(impact.replayed, 6, "4 + 2 logged decisions");
    assert_eq!(impact.flips.len(), 1);
    assert_eq!(impact.flips[0].request.subject.id, "bob");
}

#[tokio::test]
async fn a_pdp_token_decides_only_and_stops_at_revocation_or_expiry() {
    let h = setup().await;
    let ctx = h.ctx().await;
    let cmd: CreateToken =
        serde_json::from_value(json!({"name": "pep", "scope": "pdp", "expires_in": "1h"})).unwrap();
    let issued = h.app.issue_token(&ctx, &Caller::root(), cmd).await.unwrap();
    let meta = RequestMeta::default();
    let caller = h
        .app
        .authenticate(&issued.secret, ctx.tenant, &meta)
        .await
        .unwrap();
    assert_eq!(caller.scope, Scope::Pdp);
    assert!(caller.may_decide(ctx.tenant));
    assert!(
        !caller.may(ctx.tenant, false),
        "a pdp token reads nothing else"
    );
    // Served from memory now, yet expiry still applies...
    h.advance(SignedDuration::from_mins(61));
    let expired = h.app.authenticate(&issued.secret, ctx.tenant, &meta).await;
    assert!(
        matches!(expired, Err(AppError::Unauthenticated)),
        "{expired:?}"
    );

    // ...and so does revocation, at once.
    let cmd: CreateToken = serde_json::from_value(json!({"name": "pep2", "scope": "pdp"})).unwrap();
    let ctx = h.ctx().await;
    let issued = h.app.issue_token(&ctx, &Caller::root(), cmd).await.unwrap();
    h.app
        .authenticate(&issued.secret, ctx.tenant, &meta)
        .await
        .unwrap();
    h.app
        .revoke_token(&ctx, issued.token.stored.id)
        .await
        .unwrap();
    let revoked = h.app.authenticate(&issued.secret, ctx.tenant, &meta).await;
    assert!(
        matches!(revoked, Err(AppError::Unauthenticated)),
        "{revoked:?}"
    );
}
