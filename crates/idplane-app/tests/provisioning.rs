//! Outbound provisioning use cases: which changes put which pushes in the
//! outbox (in the change's own transaction), back-off against a target
//! that cannot be reached, and the target token sealed at rest. The SCIM
//! conversation itself is tested end to end in the server's suite.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use idplane_app::directory::Expiry;
use idplane_app::directory::groups::{AddMember, CreateGroup};
use idplane_app::directory::principals::{CreateUser, UpdateUser};
use idplane_app::lifecycle::{LeaverCause, LeaverReason};
use idplane_app::provisioning::{CreateTarget, Target, UpdateTarget};
use idplane_app::{AppError, Field};
use idplane_core::directory::Principal;
use idplane_core::{Clock, Ctx};
use idplane_store::audit::AuditFilter;
use idplane_store::jobs::{Job, JobFilter, JobState};
use idplane_store::{Page, provisioning};
use jiff::SignedDuration;
use serde_json::json;
use support::Harness;

const TOKEN: &str = "s3cr3t-target-token-0123456789";

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

fn group(name: &str) -> CreateGroup {
    CreateGroup {
        name: name.into(),
        display_name: None,
        external_id: None,
        attributes: None,
    }
}

fn target(name: &str, url: &str, group: Option<&str>, push_groups: bool) -> CreateTarget {
    CreateTarget {
        name: name.into(),
        base_url: url.into(),
        token: TOKEN.into(),
        group: group.map(str::to_owned),
        push_groups: Some(push_groups),
        mapping: None,
    }
}

async fn add(h: &Harness, ctx: &Ctx, group: &Principal, member: &str) {
    let cmd = AddMember {
        member: member.into(),
        expiry: Expiry::default(),
    };
    h.app.add_member(ctx, group.id, cmd).await.unwrap();
}

/// The pending pushes to `target`.
async fn pushes(h: &Harness, ctx: &Ctx, target: &Target) -> Vec<Job> {
    let filter = JobFilter {
        state: Some(JobState::Pending),
        kind: Some("scim.push".into()),
        subject: Some(target.id.clone()),
    };
    let page = Page {
        after: None,
        limit: 100,
    };
    h.app.jobs(ctx, &filter, &page).await.unwrap().items
}

fn has(jobs: &[Job], p: &Principal) -> bool {
    jobs.iter().any(|j| j.key.ends_with(&p.id.to_string()))
}

#[tokio::test]
async fn changes_enqueue_pushes_for_the_targets_that_receive_them() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let eng = h.app.create_group(&ctx, group("eng")).await.unwrap();
    // Port 9 (discard): these tests only look at the outbox.
    let scoped = h
        .app
        .create_target(
            &ctx,
            target("eng-app", "http://127.0.0.1:9/scim/v2", Some("eng"), true),
        )
        .await
        .unwrap();
    let everyone = h
        .app
        .create_target(
            &ctx,
            target("hr-app", "https://hr.example/scim/v2", None, false),
        )
        .await
        .unwrap();

    // A joiner reaches every-user targets only.
    let ada = h.app.create_user(&ctx, user("ada")).await.unwrap();
    assert!(has(&pushes(&h, &ctx, &everyone).await, &ada));
    assert!(!has(&pushes(&h, &ctx, &scoped).await, &ada));
    // Joining the group brings her and the group to the scoped target; the
    // every-user target takes no groups.
    add(&h, &ctx, &eng, "ada").await;
    let to_scoped = pushes(&h, &ctx, &scoped).await;
    assert!(has(&to_scoped, &ada) && has(&to_scoped, &eng));
    assert!(!has(&pushes(&h, &ctx, &everyone).await, &eng));

    // A burst of changes is one push of the latest state.
    for name in ["Ada", "Ada L.", "Ada Lovelace"] {
        let cmd = UpdateUser {
            display_name: Field::Set(name.into()),
            ..UpdateUser::default()
        };
        h.app.update_user(&ctx, ada.id, cmd, None).await.unwrap();
    }
    let ada_pushes = pushes(&h, &ctx, &everyone)
        .await
        .into_iter()
        .filter(|j| j.key.ends_with(&ada.id.to_string()))
        .count();
    assert_eq!(ada_pushes, 1);

    // Nesting counts: a group joining `eng` brings its members.
    let contractors = h
        .app
        .create_group(&ctx, group("contractors"))
        .await
        .unwrap();
    let carl = h.app.create_user(&ctx, user("carl")).await.unwrap();
    add(&h, &ctx, &contractors, "carl").await;
    assert!(!has(&pushes(&h, &ctx, &scoped).await, &carl));
    add(&h, &ctx, &eng, "group:contractors").await;
    let to_scoped = pushes(&h, &ctx, &scoped).await;
    assert!(has(&to_scoped, &carl) && has(&to_scoped, &contractors));

    // A refused change enqueues nothing.
    let before = pushes(&h, &ctx, &everyone).await.len();
    let dup = h.app.create_user(&ctx, user("ADA")).await;
    assert!(matches!(dup, Err(AppError::Conflict(_))), "{dup:?}");
    assert_eq!(pushes(&h, &ctx, &everyone).await.len(), before);

    // A leaver's job cancellation spares the pushes that carry it.
    h.app
        .deprovision_user(&ctx, carl.id, LeaverCause::new(LeaverReason::Admin))
        .await
        .unwrap();
    assert!(has(&pushes(&h, &ctx, &everyone).await, &carl));
    assert!(has(&pushes(&h, &ctx, &scoped).await, &carl));

    // A target's scope group cannot be deleted from under it.
    let refused = h.app.delete_principal(&ctx, eng.kind, eng.id, None).await;
    assert!(
        matches!(&refused, Err(AppError::Conflict(m)) if m.contains("eng-app")),
        "{refused:?}"
    );

    // Disconnecting a target cancels its pushes.
    h.app.delete_target(&ctx, "HR-APP").await.unwrap();
    assert!(pushes(&h, &ctx, &everyone).await.is_empty());
    assert_eq!(h.app.targets(&ctx).await.unwrap(), vec![scoped]);
}

#[tokio::test]
async fn an_unreachable_target_is_retried_with_back_off_and_audited() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    // Port 1 on loopback: connection refused.
    let t = h
        .app
        .create_target(
            &ctx,
            target("down", "http://127.0.0.1:1/scim/v2", None, true),
        )
        .await
        .unwrap();
    let ada = h.app.create_user(&ctx, user("ada")).await.unwrap();

    assert_eq!(h.app.run_due_jobs("r", h.clock.now()).await.unwrap(), 0);
    let job = pushes(&h, &ctx, &t).await.pop().unwrap();
    assert!(job.key.ends_with(&ada.id.to_string()));
    assert_eq!(job.attempts, 1);
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("could not be reached"),
        "{job:?}"
    );
    assert_eq!(job.run_at, h.clock.now() + SignedDuration::from_secs(30));
    // Not retried before its time; retried after it, backing off further.
    assert_eq!(h.app.run_due_jobs("r", h.clock.now()).await.unwrap(), 0);
    assert_eq!(pushes(&h, &ctx, &t).await[0].attempts, 1);
    h.advance(SignedDuration::from_secs(31));
    h.app.run_due_jobs("r", h.clock.now()).await.unwrap();
    let job = pushes(&h, &ctx, &t).await.pop().unwrap();
    assert_eq!(job.attempts, 2);
    assert_eq!(job.run_at, h.clock.now() + SignedDuration::from_secs(60));

    let mut conn = h.app.store().read().await.unwrap();
    let filter = AuditFilter {
        action: Some("provisioning.push".into()),
        limit: 100,
        ..AuditFilter::default()
    };
    let events = idplane_store::audit::query(&mut conn, ctx.tenant, &filter)
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "every attempt is audited");
    assert!(
        events
            .iter()
            .all(|e| e.event.details["outcome"] == "failed")
    );
    assert_eq!(
        events[0].event.details["principal"],
        json!(format!("user:{}", ada.id))
    );
}

#[tokio::test]
async fn the_target_token_is_sealed_and_never_shown() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let t = h
        .app
        .create_target(
            &ctx,
            target("crm", "https://crm.example/scim/v2/", None, true),
        )
        .await
        .unwrap();
    assert_eq!(t.base_url, "https://crm.example/scim/v2");
    assert!(!serde_json::to_string(&t).unwrap().contains(TOKEN));

    let mut conn = h.app.store().read().await.unwrap();
    let stored = provisioning::by_id(&mut conn, ctx.tenant, &t.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.token_sealed.contains(TOKEN));
    // Bound to the target: the sealed token does not open under another id.
    let context = format!("provisioning-token:{}", t.id);
    assert_eq!(
        h.app
            .keyring()
            .open(&context, &stored.token_sealed)
            .unwrap(),
        TOKEN.as_bytes()
    );
    assert!(
        h.app
            .keyring()
            .open("provisioning-token:other", &stored.token_sealed)
            .is_err()
    );
    drop(conn);

    // A new token is sealed anew; the change names it, not its value.
    let cmd = UpdateTarget {
        token: Field::Set("another-token".into()),
        ..UpdateTarget::default()
    };
    let updated = h
        .app
        .update_target(&ctx, "crm", cmd, Some(1))
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    let stale = h
        .app
        .update_target(
            &ctx,
            "crm",
            UpdateTarget {
                push_groups: Field::Set(false),
                ..UpdateTarget::default()
            },
            Some(1),
        )
        .await;
    assert!(
        matches!(stale, Err(AppError::VersionMismatch { current: 2 })),
        "{stale:?}"
    );

    let mut conn = h.app.store().read().await.unwrap();
    let filter = AuditFilter {
        limit: 1000,
        ..AuditFilter::default()
    };
    let all = idplane_store::audit::query(&mut conn, ctx.tenant, &filter)
        .await
        .unwrap();
    let text = format!("{all:?}");
    assert!(!text.contains(TOKEN) && !text.contains("another-token"));
    let update = all
        .iter()
        .find(|r| r.event.action == "provisioning.target.update")
        .unwrap();
    assert_eq!(update.event.details["changed"], json!(["token"]));
}
