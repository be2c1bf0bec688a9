//! Use-case tests on a temporary SQLite store with a manual clock: expiry is
//! tested by moving the clock, never by sleeping.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use idplane_app::directory::Expiry;
use idplane_app::directory::groups::{AddMember, CreateGroup};
use idplane_app::directory::principals::{CreateNonHuman, CreateUser, UpdateUser};
use idplane_app::directory::roles::{AssignRole, CreateRole};
use idplane_app::tokens::{Caller, CreateToken, Scope};
use idplane_app::{AppError, Field};
use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Entitlement, PrincipalKind, Status, UserType};
use idplane_core::{RequestMeta, Timestamp};
use jiff::SignedDuration;
use support::Harness;

fn user(name: &str) -> CreateUser {
    CreateUser {
        username: name.into(),
        display_name: None,
        email: None,
        external_id: None,
        user_type: None,
        start_date: None,
        end_date: None,
        sponsor: None,
        status: None,
        attributes: None,
    }
}

fn expires_in(span: &str) -> Expiry {
    Expiry {
        expires_at: None,
        expires_in: Some(span.into()),
    }
}

fn payroll() -> Entitlement {
    Entitlement {
        resource: "payroll".into(),
        permission: "read".into(),
    }
}

async fn setup_role(h: &Harness) {
    let ctx = h.ctx().await;
    h.app
        .create_role(
            &ctx,
            CreateRole {
                name: "payroll-reader".into(),
                description: None,
                entitlements: vec![payroll()],
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_expired_assignment_stops_granting_at_that_instant() {
    let h = Harness::new().await;
    setup_role(&h).await;
    let ctx = h.ctx().await;
    let alice = h.app.create_user(&ctx, user("alice")).await.unwrap();
    h.app
        .assign_role(
            &ctx,
            AssignRole {
                role: "payroll-reader".into(),
                principal: "alice".into(),
                expiry: expires_in("4h"),
            },
        )
        .await
        .unwrap();

    h.advance(SignedDuration::from_hours(4) - SignedDuration::from_millis(1));
    let access = h.app.access(&h.ctx().await, alice.id).await.unwrap();
    assert!(
        access.entitlements.contains(&payroll()),
        "still granted a millisecond before expiry"
    );

    h.advance(SignedDuration::from_millis(1));
    let access = h.app.access(&h.ctx().await, alice.id).await.unwrap();
    assert!(
        access.entitlements.is_empty(),
        "granted at the instant of expiry"
    );
}

#[tokio::test]
async fn nested_group_grants_until_the_membership_expires() {
    let h = Harness::new().await;
    setup_role(&h).await;
    let ctx = h.ctx().await;
    let bob = h.app.create_user(&ctx, user("bob")).await.unwrap();
    let group = |name: &str| CreateGroup {
        name: name.into(),
        display_name: None,
        external_id: None,
        attributes: None,
    };
    let finance = h.app.create_group(&ctx, group("finance")).await.unwrap();
    let payroll_team = h
        .app
        .create_group(&ctx, group("payroll-team"))
        .await
        .unwrap();
    h.app
        .add_member(
            &ctx,
            finance.id,
            AddMember {
                member: "group:payroll-team".into(),
                expiry: Expiry::default(),
            },
        )
        .await
        .unwrap();
    h.app
        .add_member(
            &ctx,
            payroll_team.id,
            AddMember {
                member: "bob".into(),
                expiry: expires_in("1d"),
            },
        )
        .await
        .unwrap();
    h.app
        .assign_role(
            &ctx,
            AssignRole {
                role: "payroll-reader".into(),
                principal: "group:finance".into(),
                expiry: Expiry::default(),
            },
        )
        .await
        .unwrap();

    let access = h.app.access(&h.ctx().await, bob.id).await.unwrap();
    assert_eq!(access.groups.len(), 2);
    assert!(access.entitlements.contains(&payroll()));
    assert_eq!(access.roles.first().map(|r| r.via), Some(finance.id));

    h.advance(SignedDuration::from_hours(24));
    let access = h.app.access(&h.ctx().await, bob.id).await.unwrap();
    assert!(access.groups.is_empty());
    assert!(access.entitlements.is_empty());
}

#[tokio::test]
async fn group_cycles_are_refused() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let g = h
            .app
            .create_group(
                &ctx,
                CreateGroup {
                    name: name.into(),
                    display_name: None,
                    external_id: None,
                    attributes: None,
                },
            )
            .await
            .unwrap();
        ids.push(g.id);
    }
    let add = |group, member: &str| {
        let app = h.app.clone();
        let ctx = ctx.clone();
        let member = member.to_owned();
        async move {
            app.add_member(
                &ctx,
                group,
                AddMember {
                    member,
                    expiry: Expiry::default(),
                },
            )
            .await
        }
    };
    add(ids[0], "group:b").await.unwrap(); // b ∈ a
    add(ids[1], "group:c").await.unwrap(); // c ∈ b
    assert!(matches!(
        add(ids[2], "group:a").await,
        Err(AppError::Conflict(_))
    )); // a ∈ c closes a→b→c→a
    assert!(matches!(
        add(ids[0], "group:a").await,
        Err(AppError::Conflict(_))
    )); // a ∈ a
}

#[tokio::test]
async fn a_contractor_is_inactive_after_the_end_date_without_any_job() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    h.app.create_user(&ctx, user("sponsor")).await.unwrap();
    let missing_sponsor = CreateUser {
        user_type: Some(UserType::Contractor),
        start_date: None,
        end_date: Some(ctx.now + SignedDuration::from_hours(48)),
        ..user("carol")
    };
    assert!(matches!(
        h.app.create_user(&ctx, missing_sponsor.clone()).await,
        Err(AppError::Invalid(e)) if e.field == "sponsor_id"
    ));
    let carol = h
        .app
        .create_user(
            &ctx,
            CreateUser {
                sponsor: Some("sponsor".into()),
                ..missing_sponsor
            },
        )
        .await
        .unwrap();
    assert!(carol.is_active_at(ctx.now));
    h.advance(SignedDuration::from_hours(48));
    let access = h.app.access(&h.ctx().await, carol.id).await.unwrap();
    assert!(!access.active);
}

#[tokio::test]
async fn non_humans_need_an_active_human_owner() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let owner = h.app.create_user(&ctx, user("owner")).await.unwrap();
    let cmd = CreateNonHuman {
        name: "deploy-bot".into(),
        display_name: None,
        owner: "owner".into(),
        purpose: "deploys the web app".into(),
        expires_at: None,
        external_id: None,
        attributes: None,
    };
    let agent = h
        .app
        .create_non_human(&ctx, PrincipalKind::Agent, cmd.clone())
        .await
        .unwrap();
    assert_eq!(agent.owner_id, Some(owner.id));
    // The owner cannot be deleted while accountable for the agent.
    assert!(matches!(
        h.app
            .delete_principal(&ctx, PrincipalKind::User, owner.id, None)
            .await,
        Err(AppError::Conflict(_))
    ));
    // A suspended user cannot become an owner.
    h.app
        .update_user(
            &ctx,
            owner.id,
            UpdateUser {
                status: Field::Set(Status::Suspended),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let again = CreateNonHuman {
        name: "other-bot".into(),
        ..cmd
    };
    assert!(matches!(
        h.app.create_non_human(&ctx, PrincipalKind::ServiceAccount, again).await,
        Err(AppError::Invalid(e)) if e.field == "owner"
    ));
}

#[tokio::test]
async fn stale_versions_are_refused_and_null_clears() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let alice = h
        .app
        .create_user(
            &ctx,
            CreateUser {
                email: Some("Alice@Example.COM".into()),
                ..user("alice")
            },
        )
        .await
        .unwrap();
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    let cleared = h
        .app
        .update_user(
            &ctx,
            alice.id,
            UpdateUser {
                email: Field::Clear,
                ..Default::default()
            },
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(cleared.email, None);
    assert_eq!(cleared.version, 2);
    let stale = h
        .app
        .update_user(&ctx, alice.id, UpdateUser::default(), Some(1))
        .await;
    assert!(matches!(
        stale,
        Err(AppError::VersionMismatch { current: 2 })
    ));
}

#[tokio::test]
async fn tokens_expire_and_revoke_and_failures_are_audited() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let issued = h
        .app
        .issue_token(
            &ctx,
            &Caller::root(),
            CreateToken {
                name: "ci".into(),
                scope: Some(Scope::Read),
                tenant: None,
                expiry: expires_in("1h"),
            },
        )
        .await
        .unwrap();
    let meta = RequestMeta {
        source_ip: Some("203.0.113.7".into()),
        ..Default::default()
    };
    let caller = h
        .app
        .authenticate(&issued.secret, ctx.tenant, &meta)
        .await
        .unwrap();
    assert_eq!(caller.scope, Scope::Read);
    assert!(!caller.may(ctx.tenant, true));

    h.advance(SignedDuration::from_hours(1));
    assert!(matches!(
        h.app.authenticate(&issued.secret, ctx.tenant, &meta).await,
        Err(AppError::Unauthenticated)
    ));
    let failures = events_with_action(&h, &ctx, "auth.admin_token").await;
    let last = failures.last().unwrap();
    assert_eq!(last.event.details["reason"], "expired token");
    assert_eq!(last.event.source_ip.as_deref(), Some("203.0.113.7"));
}

#[tokio::test]
async fn every_change_is_in_a_chain_that_verifies_and_is_checkpointed() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    for i in 0..20 {
        h.app
            .create_user(&ctx, user(&format!("user{i}")))
            .await
            .unwrap();
    }
    let checkpoint = h.app.audit_checkpoint(ctx.tenant).await.unwrap().unwrap();
    let report = idplane_app::audit::verify_store(h.app.store(), Some(&checkpoint))
        .await
        .unwrap();
    let (_, records) = report
        .chains
        .iter()
        .find(|(t, _)| *t == ctx.tenant)
        .unwrap();
    assert_eq!(*records, checkpoint.seq);
    // A forged checkpoint is refused.
    let mut forged = checkpoint.clone();
    forged.seq += 1;
    assert!(
        idplane_app::audit::verify_store(h.app.store(), Some(&forged))
            .await
            .is_err()
    );
}

/// `n` concurrent callers, each recording one `action` event and waiting
/// until it is durable.
fn spawn_recorders(
    h: &Harness,
    ctx: &idplane_core::Ctx,
    action: &'static str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<idplane_app::Result<idplane_core::audit::AuditRecord>>> {
    (0..n)
        .map(|i| {
            let app = h.app.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                app.record(AuditEvent::new(&ctx, action, Some(format!("n:{i}"))))
                    .await
            })
        })
        .collect()
}

#[tokio::test]
async fn group_commit_batches_concurrent_events_into_one_chain() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let tasks = spawn_recorders(&h, &ctx, "test.event", 500);
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap().unwrap().seq);
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 500, "every event got its own place");
    idplane_app::audit::verify_store(h.app.store(), None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_keep_their_order_beside_awaited_ones_and_a_flush_waits_for_them() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let awaited = spawn_recorders(&h, &ctx, "test.awaited", 400);
    let writer = h.app.audit_writer();
    for i in 0..3_000 {
        writer
            .enqueue(AuditEvent::new(&ctx, "test.queued", Some(format!("n:{i}"))))
            .await
            .unwrap();
    }
    writer.flush().await;
    // Read before the awaited callers are joined: the flush alone must
    // have made every queued event durable.
    let queued = events_with_action(&h, &ctx, "test.queued").await;
    let targets: Vec<String> = queued
        .iter()
        .filter_map(|r| r.event.target.clone())
        .collect();
    let expected: Vec<String> = (0..3_000).map(|i| format!("n:{i}")).collect();
    assert_eq!(
        targets, expected,
        "one producer's events in the order queued"
    );
    for task in awaited {
        task.await.unwrap().unwrap();
    }
    idplane_app::audit::verify_store(h.app.store(), None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_events_nobody_waits_for_are_written_without_a_flush() {
    // The writer holds such a batch open for more; it must still end it on
    // its own, with no further traffic. A bounded wait for liveness, not a
    // timing assertion: it passes as soon as the events are there.
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let writer = h.app.audit_writer();
    for i in 0..5 {
        writer
            .enqueue(AuditEvent::new(
                &ctx,
                "test.lingering",
                Some(format!("n:{i}")),
            ))
            .await
            .unwrap();
    }
    let mut written = 0;
    for _ in 0..1_000 {
        written = events_with_action(&h, &ctx, "test.lingering").await.len();
        if written == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(written, 5, "queued events were left unwritten");
}

#[tokio::test]
async fn deleting_an_assigned_role_is_refused_and_nothing_changes() {
    let h = Harness::new().await;
    setup_role(&h).await;
    let ctx = h.ctx().await;
    h.app.create_user(&ctx, user("dave")).await.unwrap();
    h.app
        .assign_role(
            &ctx,
            AssignRole {
                role: "payroll-reader".into(),
                principal: "dave".into(),
                expiry: Expiry::default(),
            },
        )
        .await
        .unwrap();
    let before = h.app.audit_events(&ctx, &all_events()).await.unwrap().len();
    assert!(matches!(
        h.app.delete_role(&ctx, "payroll-reader", None).await,
        Err(AppError::Conflict(_))
    ));
    let after = h.app.audit_events(&ctx, &all_events()).await.unwrap().len();
    assert_eq!(before, after, "a refused change writes no audit event");
    assert!(h.app.role(&ctx, "payroll-reader").await.is_ok());
}

#[tokio::test]
async fn expiry_in_the_past_is_refused() {
    let h = Harness::new().await;
    setup_role(&h).await;
    let ctx = h.ctx().await;
    h.app.create_user(&ctx, user("erin")).await.unwrap();
    let past: Timestamp = "2020-01-01T00:00:00Z".parse().unwrap();
    let result = h
        .app
        .assign_role(
            &ctx,
            AssignRole {
                role: "payroll-reader".into(),
                principal: "erin".into(),
                expiry: Expiry {
                    expires_at: Some(past),
                    expires_in: None,
                },
            },
        )
        .await;
    assert!(matches!(result, Err(AppError::Invalid(_))));
}

/// The tenant's events of one action, in chain order.
async fn events_with_action(
    h: &Harness,
    ctx: &idplane_core::Ctx,
    action: &str,
) -> Vec<idplane_core::audit::AuditRecord> {
    let filter = idplane_store::audit::AuditFilter {
        action: Some(action.to_owned()),
        ..all_events()
    };
    h.app.audit_events(ctx, &filter).await.unwrap()
}

fn all_events() -> idplane_store::audit::AuditFilter {
    idplane_store::audit::AuditFilter {
        limit: 10_000,
        ..Default::default()
    }
}
