//! Lifecycle over time: contractors' end dates and reminders, joiners'
//! start dates, leavers, and the job runner that drives them. The clock is
//! a `ManualClock`: time moves only when a test moves it.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use idplane_app::Field;
use idplane_app::authn::Amr;
use idplane_app::directory::Expiry;
use idplane_app::directory::groups::{AddMember, CreateGroup};
use idplane_app::directory::principals::{CreateNonHuman, CreateUser, UpdateUser};
use idplane_app::directory::roles::{AssignRole, CreateRole};
use idplane_app::jobs::{JobKind, LEASE};
use idplane_app::lifecycle::{LeaverCause, LeaverReason, LifecycleSettings};
use idplane_core::directory::{Principal, PrincipalKind, Status, UserType};
use idplane_core::{Clock, Ctx, Timestamp};
use idplane_store::audit::AuditFilter;
use idplane_store::grants::{self, StoredRefreshToken};
use idplane_store::jobs::{self, Job, JobFilter, JobState};
use idplane_store::{Page, consents, principals, roles};
use jiff::SignedDuration;
use serde_json::json;
use support::Harness;

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn user(name: &str) -> CreateUser {
    CreateUser {
        username: name.into(),
        display_name: None,
        email: Some(format!("{name}@example.com")),
        external_id: None,
        user_type: None,
        start_date: None,
        end_date: None,
        sponsor: None,
        status: None,
        attributes: None,
    }
}

fn contractor(name: &str, sponsor: &str, end: Timestamp) -> CreateUser {
    CreateUser {
        user_type: Some(UserType::Contractor),
        end_date: Some(end),
        sponsor: Some(sponsor.into()),
        ..user(name)
    }
}

async fn run(h: &Harness, runner: &str) -> usize {
    h.app.run_due_jobs(runner, h.clock.now()).await.unwrap()
}

/// The tenant's jobs about `subject`, pending ones only unless `all`.
async fn jobs_of(h: &Harness, ctx: &Ctx, subject: &Principal) -> Vec<Job> {
    let filter = JobFilter {
        subject: Some(subject.id.to_string()),
        ..JobFilter::default()
    };
    let page = Page {
        after: None,
        limit: 100,
    };
    h.app.jobs(ctx, &filter, &page).await.unwrap().items
}

fn pending(jobs: &[Job], kind: JobKind) -> Vec<Timestamp> {
    let mut at: Vec<_> = jobs
        .iter()
        .filter(|j| j.kind == kind.as_str() && j.state == JobState::Pending)
        .map(|j| j.run_at)
        .collect();
    at.sort();
    at
}

async fn events(h: &Harness, action: &str) -> Vec<idplane_core::audit::AuditRecord> {
    let ctx = h.ctx().await;
    let filter = AuditFilter {
        action: Some(action.into()),
        limit: 1000,
        ..AuditFilter::default()
    };
    h.app.audit_events(&ctx, &filter).await.unwrap()
}

async fn reload(h: &Harness, p: &Principal) -> Principal {
    let ctx = h.ctx().await;
    h.app.principal(&ctx, p.kind, p.id).await.unwrap()
}

#[tokio::test]
async fn a_contractors_reminders_and_end_follow_the_end_date() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    h.app.create_user(&ctx, user("boss")).await.unwrap();
    let end = ctx.now + days(20);
    let temp = h
        .app
        .create_user(&ctx, contractor("temp", "boss", end))
        .await
        .unwrap();
    let scheduled = jobs_of(&h, &ctx, &temp).await;
    assert_eq!(pending(&scheduled, JobKind::UserEnd), [end]);
    assert_eq!(
        pending(&scheduled, JobKind::ContractorReminder),
        [end - days(14), end - days(1)]
    );
    assert_eq!(run(&h, "r").await, 0, "nothing is due yet");

    h.clock.set(end - days(14) - SignedDuration::from_millis(1));
    assert_eq!(run(&h, "r").await, 0, "the first reminder is not yet due");
    h.advance(SignedDuration::from_millis(1));
    assert_eq!(run(&h, "r").await, 1);
    let mail = h.app.outbox(&h.ctx().await, 10).await.unwrap();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].recipient, "boss@example.com");
    assert!(mail[0].subject.contains("temp"), "{}", mail[0].subject);
    assert!(mail[0].body.contains("14 day(s)"), "{}", mail[0].body);
    let reminded = events(&h, "contractor.reminder").await;
    assert_eq!(reminded.len(), 1);
    assert_eq!(reminded[0].event.details["days_before"], 14);
    assert_eq!(reminded[0].event.details["mail"], "outbox");
    assert_eq!(reminded[0].event.actor, "system");

    // The sponsor extends the engagement: every job moves.
    let ctx = h.ctx().await;
    let new_end = end + days(30);
    h.app
        .update_user(
            &ctx,
            temp.id,
            UpdateUser {
                end_date: Field::Set(new_end),
                ..UpdateUser::default()
            },
            None,
        )
        .await
        .unwrap();
    let moved = jobs_of(&h, &ctx, &temp).await;
    assert_eq!(pending(&moved, JobKind::UserEnd), [new_end]);
    assert_eq!(
        pending(&moved, JobKind::ContractorReminder),
        [new_end - days(14), new_end - days(1)]
    );
    h.clock.set(end + SignedDuration::from_hours(1));
    assert_eq!(run(&h, "r").await, 0, "the old end date means nothing now");
    assert_eq!(reload(&h, &temp).await.status, Status::Active);

    // Past the new end, two runners race: the contractor leaves once.
    h.clock.set(new_end - days(1));
    assert_eq!(run(&h, "r").await, 2, "both reminders");
    h.clock.set(new_end);
    let (a, b) = tokio::join!(run(&h, "a"), run(&h, "b"));
    assert_eq!(a + b, 1);
    assert_eq!(run(&h, "a").await, 0, "done is done");
    let gone = reload(&h, &temp).await;
    assert_eq!(gone.status, Status::Deprovisioned);
    let left = events(&h, "user.deprovision").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event.details["cause"], "contractor_end");
    assert_eq!(h.app.outbox(&h.ctx().await, 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_crashed_runners_job_is_taken_over_after_its_lease() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    h.app.create_user(&ctx, user("boss")).await.unwrap();
    let end = ctx.now + SignedDuration::from_hours(2);
    let temp = h
        .app
        .create_user(&ctx, contractor("temp", "boss", end))
        .await
        .unwrap();
    h.clock.set(end);
    // A runner claims the job and dies without completing it.
    let claimed = jobs::claim(h.app.store(), "crashed", h.clock.now(), LEASE, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(run(&h, "rescuer").await, 0, "the lease still holds");
    assert_eq!(reload(&h, &temp).await.status, Status::Active);
    h.advance(SignedDuration::try_from(LEASE).unwrap());
    assert_eq!(run(&h, "rescuer").await, 1);
    assert_eq!(reload(&h, &temp).await.status, Status::Deprovisioned);
    assert_eq!(events(&h, "user.deprovision").await.len(), 1);
}

#[tokio::test]
async fn one_run_catches_up_after_the_server_was_down() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    h.app.create_user(&ctx, user("boss")).await.unwrap();
    let mut leavers = Vec::new();
    for i in 0..3 {
        let end = ctx.now + days(30 + i);
        let c = contractor(&format!("temp{i}"), "boss", end);
        leavers.push(h.app.create_user(&ctx, c).await.unwrap());
    }
    // An employee with an HR termination date leaves too.
    let employee = CreateUser {
        end_date: Some(ctx.now + days(40)),
        ..user("emp")
    };
    leavers.push(h.app.create_user(&ctx, employee).await.unwrap());
    h.advance(days(365));
    // Three contractors × (two reminders + end), one employee's end.
    assert_eq!(run(&h, "r").await, 10);
    for p in &leavers {
        assert_eq!(reload(&h, p).await.status, Status::Deprovisioned);
    }
    // Reminders for engagements already over are not sent late.
    assert!(h.app.outbox(&h.ctx().await, 10).await.unwrap().is_empty());
    let causes: Vec<_> = events(&h, "user.deprovision")
        .await
        .iter()
        .map(|r| r.event.details["cause"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        causes,
        [
            "contractor_end",
            "contractor_end",
            "contractor_end",
            "hr_termination"
        ]
    );
}

#[tokio::test]
async fn a_failed_job_backs_off_and_retries() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    h.app.create_user(&ctx, user("boss")).await.unwrap();
    // Port 9 (discard) on loopback: nothing listens, the POST fails.
    h.app
        .set_lifecycle_settings(
            &ctx,
            LifecycleSettings {
                webhook_url: Some("http://127.0.0.1:9/hook".into()),
            },
        )
        .await
        .unwrap();
    let end = ctx.now + days(20);
    let temp = h
        .app
        .create_user(&ctx, contractor("temp", "boss", end))
        .await
        .unwrap();
    h.clock.set(end - days(14));
    assert_eq!(run(&h, "r").await, 0);
    let job = jobs_of(&h, &ctx, &temp)
        .await
        .into_iter()
        .find(|j| j.key.ends_with(":14d"))
        .unwrap();
    assert_eq!(job.attempts, 1);
    assert_eq!(job.state, JobState::Pending);
    assert!(job.last_error.unwrap().contains("webhook"));
    assert_eq!(job.run_at, h.clock.now() + SignedDuration::from_secs(30));
    assert!(h.app.outbox(&h.ctx().await, 10).await.unwrap().is_empty());
    // The webhook is removed; the retry goes through.
    h.app
        .set_lifecycle_settings(&h.ctx().await, LifecycleSettings::default())
        .await
        .unwrap();
    h.advance(SignedDuration::from_secs(29));
    assert_eq!(run(&h, "r").await, 0, "backed off");
    h.advance(SignedDuration::from_secs(1));
    assert_eq!(run(&h, "r").await, 1);
    assert_eq!(h.app.outbox(&h.ctx().await, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_joiner_grants_nothing_until_the_start_date() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let start = ctx.now + days(3);
    let joiner = h
        .app
        .create_user(
            &ctx,
            CreateUser {
                start_date: Some(start),
                ..user("new")
            },
        )
        .await
        .unwrap();
    assert!(!joiner.is_active_at(ctx.now));
    assert_eq!(
        pending(&jobs_of(&h, &ctx, &joiner).await, JobKind::UserStart),
        [start]
    );
    // A start date after the end date is refused.
    let bad = CreateUser {
        start_date: Some(start),
        end_date: Some(start - days(1)),
        ..user("bad")
    };
    assert!(h.app.create_user(&ctx, bad).await.is_err());
    h.clock.set(start);
    assert_eq!(run(&h, "r").await, 1);
    let activated = events(&h, "user.activate").await;
    assert_eq!(activated.len(), 1);
    assert_eq!(activated[0].event.details["active"], true);
    assert!(reload(&h, &joiner).await.is_active_at(h.clock.now()));
}

#[tokio::test]
async fn a_leaver_loses_everything_and_a_rehire_gets_nothing_back() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let manager = h.app.create_user(&ctx, user("manager")).await.unwrap();
    let leaver = h
        .app
        .create_user(
            &ctx,
            CreateUser {
                attributes: Some(
                    json!({"manager": manager.id.to_string()})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
                ..user("leaver")
            },
        )
        .await
        .unwrap();
    let orphan_owner = h.app.create_user(&ctx, user("loner")).await.unwrap();
    // Sessions, a refresh token family and a consent.
    h.app
        .create_session(&ctx, &leaver, &[Amr::Pwd], None)
        .await
        .unwrap();
    h.app
        .create_session(&ctx, &leaver, &[Amr::Pwd], None)
        .await
        .unwrap();
    let mut tx = h.app.store().write().await.unwrap();
    grants::insert_refresh_token(
        &mut tx,
        "hash-1",
        &StoredRefreshToken {
            family_id: "family-1".into(),
            tenant_id: ctx.tenant,
            client_id: "app".into(),
            principal_id: Some(leaver.id),
            session_id: None,
            grant: json!({}),
            access_jti: None,
            access_expires_at: None,
            created_at: ctx.now,
            expires_at: ctx.now + days(30),
            used_at: None,
            revoked_at: None,
        },
    )
    .await
    .unwrap();
    consents::put(
        &mut tx,
        ctx.tenant,
        leaver.id,
        &consents::StoredConsent {
            client_id: "app".into(),
            scopes: vec!["openid".into()],
            granted_at: ctx.now,
        },
    )
    .await
    .unwrap();
    tx.commit(idplane_core::audit::AuditEvent::new(
        &ctx,
        "test.setup",
        None,
    ))
    .await
    .unwrap();
    // Groups, roles, an owned agent, a sponsored contractor.
    for g in ["eng", "payroll"] {
        let group = CreateGroup {
            name: g.into(),
            display_name: None,
            external_id: None,
            attributes: None,
        };
        let group = h.app.create_group(&ctx, group).await.unwrap();
        let member = AddMember {
            member: "leaver".into(),
            expiry: Expiry::default(),
        };
        h.app.add_member(&ctx, group.id, member).await.unwrap();
    }
    let role = CreateRole {
        name: "admin".into(),
        description: None,
        entitlements: vec![],
    };
    h.app.create_role(&ctx, role).await.unwrap();
    let assign = AssignRole {
        role: "admin".into(),
        principal: "leaver".into(),
        expiry: Expiry::default(),
    };
    h.app.assign_role(&ctx, assign).await.unwrap();
    let agent = h
        .app
        .create_non_human(
            &ctx,
            PrincipalKind::Agent,
            CreateNonHuman {
                name: "bot".into(),
                display_name: None,
                owner: "leaver".into(),
                purpose: "triage".into(),
                expires_at: None,
                external_id: None,
                attributes: None,
            },
        )
        .await
        .unwrap();
    let temp = h
        .app
        .create_user(&ctx, contractor("temp", "leaver", ctx.now + days(90)))
        .await
        .unwrap();
    // An owned account whose owner has no manager stays put, flagged.
    let orphan = h
        .app
        .create_non_human(
            &ctx,
            PrincipalKind::ServiceAccount,
            CreateNonHuman {
                name: "ci".into(),
                display_name: None,
                owner: "loner".into(),
                purpose: "builds".into(),
                expires_at: None,
                external_id: None,
                attributes: None,
            },
        )
        .await
        .unwrap();

    let cause = LeaverCause {
        reason: LeaverReason::HrTermination,
        hr_change_id: Some("hr-42".into()),
    };
    let gone = h
        .app
        .deprovision_user(&ctx, leaver.id, cause.clone())
        .await
        .unwrap();
    assert_eq!(gone.status, Status::Deprovisioned);
    assert!(h.app.sessions_of(&ctx, leaver.id).await.unwrap().is_empty());
    let mut conn = h.app.store().read().await.unwrap();
    let token = grants::refresh_token(&mut conn, "hash-1")
        .await
        .unwrap()
        .unwrap();
    assert!(token.revoked_at.is_some());
    assert!(
        consents::of_principal(&mut conn, ctx.tenant, leaver.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        principals::memberships_of(&mut conn, leaver.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        roles::assignments_of(&mut conn, leaver.id)
            .await
            .unwrap()
            .is_empty()
    );
    drop(conn);
    let agent = reload(&h, &agent).await;
    assert_eq!(agent.owner_id, Some(manager.id));
    assert_eq!(agent.attributes["review_required"], true);
    let temp = reload(&h, &temp).await;
    assert_eq!(temp.sponsor_id, Some(manager.id));
    assert_eq!(temp.attributes["review_required"], true);
    assert!(
        jobs_of(&h, &ctx, &temp)
            .await
            .iter()
            .any(|j| j.kind == "user.end")
    );

    let record = h.app.leaver_record(&ctx, leaver.id).await.unwrap().unwrap();
    assert_eq!(record.cause, "hr_termination");
    assert_eq!(record.hr_change_id.as_deref(), Some("hr-42"));
    assert_eq!(record.removed["memberships"].as_array().unwrap().len(), 2);
    assert_eq!(record.removed["role_assignments"][0]["role"], "admin");
    assert_eq!(record.removed["consents"][0]["client_id"], "app");
    assert_eq!(record.removed["handed_over"].as_array().unwrap().len(), 2);
    // Every step of the leaver carries its cause.
    let stamped: Vec<_> = h
        .app
        .audit_events(
            &ctx,
            &AuditFilter {
                since: Some(h.clock.now()),
                limit: 1000,
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event.details.get("cause").is_some())
        .map(|r| {
            assert_eq!(r.event.details["hr_change"], "hr-42", "{:?}", r.event);
            r.event.action
        })
        .collect();
    for action in [
        "session.end_all",
        "agent.update",
        "user.update",
        "user.deprovision",
    ] {
        assert!(
            stamped.iter().any(|a| a == action),
            "{action} in {stamped:?}"
        );
    }
    // Deprovisioning again changes nothing.
    let again = h
        .app
        .deprovision_user(&ctx, leaver.id, cause)
        .await
        .unwrap();
    assert_eq!(again.version, gone.version);

    // The loner leaves without a manager: their account stays, flagged.
    h.app
        .deprovision_user(&ctx, orphan_owner.id, LeaverCause::new(LeaverReason::Admin))
        .await
        .unwrap();
    let orphan = reload(&h, &orphan).await;
    assert_eq!(orphan.owner_id, Some(orphan_owner.id));
    assert!(
        orphan.attributes["review_reason"]
            .as_str()
            .unwrap()
            .contains("no active manager")
    );

    // A rehire is active again with none of the old access.
    let rehired = h
        .app
        .update_user(
            &ctx,
            leaver.id,
            UpdateUser {
                status: Field::Set(Status::Active),
                ..UpdateUser::default()
            },
            None,
        )
        .await
        .unwrap();
    assert!(rehired.is_active_at(ctx.now));
    let access = h.app.access(&ctx, leaver.id).await.unwrap();
    assert!(access.active);
    assert!(
        access.groups.is_empty() && access.roles.is_empty(),
        "{access:?}"
    );
}

/// A one-shot webhook receiver on loopback: answers 204 to the first
/// request and hands over its body.
async fn webhook_receiver() -> (String, tokio::task::JoinHandle<serde_json::Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    socket
                        .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                        .await
                        .unwrap();
                    return serde_json::from_str(&body[..length]).unwrap();
                }
            }
            assert!(n > 0, "the connection closed before the body arrived");
        }
    });
    (url, task)
}

#[tokio::test]
async fn the_reminder_is_posted_to_the_tenants_webhook() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    let (url, received) = webhook_receiver().await;
    h.app
        .set_lifecycle_settings(
            &ctx,
            LifecycleSettings {
                webhook_url: Some(url),
            },
        )
        .await
        .unwrap();
    let boss = h.app.create_user(&ctx, user("boss")).await.unwrap();
    let end = ctx.now + days(20);
    let temp = h
        .app
        .create_user(&ctx, contractor("temp", "boss", end))
        .await
        .unwrap();
    h.clock.set(end - days(14));
    assert_eq!(run(&h, "r").await, 1);
    let notice = received.await.unwrap();
    assert_eq!(notice["type"], "contractor.reminder");
    assert_eq!(notice["contractor"]["id"], temp.id.to_string());
    assert_eq!(notice["sponsor"]["id"], boss.id.to_string());
    assert_eq!(notice["days_before"], 14);
    let reminded = events(&h, "contractor.reminder").await;
    assert_eq!(reminded[0].event.details["webhook"], 204);
}

/// Two servers sharing one PostgreSQL database (`IDPLANE_TEST_DATABASE_URL`)
/// run their jobs at once: every contractor leaves exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_postgres_deprovision_each_leaver_once() {
    use idplane_app::keyring::Keyring;
    use idplane_app::{App, AppSettings};
    use idplane_store::{Store, StoreOptions};
    use sqlx::{Connection, Executor};

    let Some(url) = std::env::var("IDPLANE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    else {
        eprintln!("skipped: IDPLANE_TEST_DATABASE_URL is not set (PostgreSQL lifecycle)");
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let options = StoreOptions {
        schema: Some(schema.clone()),
        max_connections: Some(6),
        ..StoreOptions::default()
    };
    let clock = support::clock();
    let mut apps = Vec::new();
    for _ in 0..2 {
        let store = Store::open(&url, &options).await.unwrap();
        let keyring = Keyring::from_bytes(&[7; 32]).unwrap();
        let app = App::start(store, clock.clone(), keyring, AppSettings::default())
            .await
            .unwrap();
        apps.push(app);
    }
    let tenant = apps[0].default_tenant_id().await.unwrap();
    let ctx = apps[0].ctx(tenant, idplane_core::Actor::Root, Default::default());
    apps[0].create_user(&ctx, user("boss")).await.unwrap();
    for i in 0..24 {
        let end = ctx.now + SignedDuration::from_hours(1);
        let c = contractor(&format!("temp{i}"), "boss", end);
        apps[0].create_user(&ctx, c).await.unwrap();
    }
    clock.advance(SignedDuration::from_hours(2));
    let now = clock.now();
    let (a, b) = tokio::join!(
        apps[0].run_due_jobs("server-a", now),
        apps[1].run_due_jobs("server-b", now)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 24);
    let filter = AuditFilter {
        action: Some("user.deprovision".into()),
        limit: 1000,
        ..AuditFilter::default()
    };
    let left = apps[1].audit_events(&ctx, &filter).await.unwrap();
    let targets: std::collections::HashSet<_> =
        left.iter().map(|r| r.event.target.clone()).collect();
    assert_eq!((left.len(), targets.len()), (24, 24));

    for app in &apps {
        app.shutdown().await;
    }
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .await
    .unwrap();
}

#[tokio::test]
async fn deleting_a_user_cancels_their_jobs() {
    let h = Harness::new().await;
    let ctx = h.ctx().await;
    h.app.create_user(&ctx, user("boss")).await.unwrap();
    let temp = h
        .app
        .create_user(&ctx, contractor("temp", "boss", ctx.now + days(20)))
        .await
        .unwrap();
    assert_eq!(jobs_of(&h, &ctx, &temp).await.len(), 3);
    h.app
        .delete_principal(&ctx, PrincipalKind::User, temp.id, None)
        .await
        .unwrap();
    assert!(jobs_of(&h, &ctx, &temp).await.is_empty());
}
