//! HR-driven lifecycle: birthright rules and the HR CSV import (joiners,
//! movers with and without grace, leavers, contractors, rehires), the
//! all-or-nothing refusals, the leaver threshold, and the leavers report.
//! Time moves only with the manual clock.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use idplane_app::AppError;
use idplane_app::directory::Expiry;
use idplane_app::directory::groups::{AddMember, CreateGroup};
use idplane_app::directory::principals::CreateUser;
use idplane_app::directory::roles::CreateRole;
use idplane_app::lifecycle::birthright::{BirthrightRule, LifecycleRules};
use idplane_app::lifecycle::hr::{HrMapping, ImportOutcome};
use idplane_core::Ctx;
use idplane_core::directory::{Principal, PrincipalKind, Status, UserType};
use idplane_store::principals::PrincipalFilter;
use idplane_store::{Page, audit, mail};
use jiff::SignedDuration;
use serde_json::json;
use support::Harness;

const HEADER: &str =
    "Employee ID,Login,Email,First,Last,Department,Manager,Type,Start,End,Terminated,Sponsor\n";

fn mapping() -> HrMapping {
    HrMapping {
        employee_id: "Employee ID".into(),
        username: "Login".into(),
        email: Some("Email".into()),
        given_name: Some("First".into()),
        family_name: Some("Last".into()),
        department: Some("Department".into()),
        manager_employee_id: Some("Manager".into()),
        user_type: Some("Type".into()),
        start_date: Some("Start".into()),
        end_date: Some("End".into()),
        termination_date: Some("Terminated".into()),
        sponsor_employee_id: Some("Sponsor".into()),
        user_types: BTreeMap::from([
            ("Permanent".into(), UserType::Employee),
            ("Contract".into(), UserType::Contractor),
        ]),
        ..HrMapping::default()
    }
}

fn rule(id: &str, when: serde_json::Value, groups: &[&str], roles: &[&str]) -> BirthrightRule {
    BirthrightRule {
        id: id.into(),
        description: None,
        when: serde_json::from_value(when).unwrap(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// The directory every test starts from: groups, a role, the rules.
async fn setup(h: &Harness, grace: Option<&str>) -> Ctx {
    let ctx = h.ctx().await;
    for name in ["sales", "eng", "contractors", "hand-picked"] {
        h.app
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
    }
    h.app
        .create_role(
            &ctx,
            CreateRole {
                name: "crm-user".into(),
                description: None,
                entitlements: vec![],
            },
        )
        .await
        .unwrap();
    h.app
        .set_lifecycle_rules(
            &ctx,
            LifecycleRules {
                birthright: vec![
                    rule(
                        "sales",
                        json!({"department": "Sales"}),
                        &["sales"],
                        &["crm-user"],
                    ),
                    rule("eng", json!({"department": "engineering"}), &["eng"], &[]),
                    rule(
                        "contractors",
                        json!({"user_type": "contractor"}),
                        &["contractors"],
                        &[],
                    ),
                ],
                mover_grace: grace.map(str::to_owned),
                max_leaver_share: None,
            },
        )
        .await
        .unwrap();
    ctx
}

/// The standard workforce: two Sales people, an engineer managed by ada,
/// a contractor sponsored by ada, and a joiner starting next week.
fn workforce() -> String {
    format!(
        "{HEADER}\
         E1,ada,ada@example.com,Ada,Lovelace,Sales,,Permanent,2020-01-06,,,\n\
         E2,bob,bob@example.com,Bob,Builder,Engineering,E1,Permanent,2021-05-03,,,\n\
         E3,cy,,Cy,Young,Sales,E1,Permanent,2026-03-09,,,\n\
         E4,cora,,Cora,Contract,Engineering,E1,Contract,,2026-06-30,,E1\n\
         E5,dan,,Dan,Dare,Sales,E1,Permanent,2019-01-01,,,\n"
    )
}

async fn import(h: &Harness, csv: &str, dry_run: bool, force: bool) -> ImportOutcome {
    let ctx = h.ctx().await;
    h.app
        .hr_import(&ctx, csv.as_bytes(), &mapping(), dry_run, force)
        .await
        .unwrap()
}

async fn user(h: &Harness, name: &str) -> Principal {
    let ctx = h.ctx().await;
    let found = h
        .app
        .principals(
            &ctx,
            &PrincipalFilter {
                kind: Some(PrincipalKind::User),
                name_key: Some(name.into()),
                ..PrincipalFilter::default()
            },
            &Page {
                after: None,
                limit: 1,
            },
        )
        .await
        .unwrap();
    found.items.into_iter().next().unwrap()
}

/// What `name` holds right now: group names and role names.
async fn holds(h: &Harness, name: &str) -> BTreeSet<String> {
    let ctx = h.ctx().await;
    let u = user(h, name).await;
    let access = h.app.access(&ctx, u.id).await.unwrap();
    let mut out = BTreeSet::new();
    for g in access.groups {
        let group = h
            .app
            .principal(&ctx, PrincipalKind::Group, g)
            .await
            .unwrap();
        out.insert(format!("group:{}", group.name));
    }
    for r in access.roles {
        out.insert(format!("role:{}", r.role_name));
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Principals and audit events, to show a refused import wrote nothing.
async fn footprint(h: &Harness) -> (usize, i64) {
    let ctx = h.ctx().await;
    let principals = h
        .app
        .principals(
            &ctx,
            &PrincipalFilter::default(),
            &Page {
                after: None,
                limit: 1000,
            },
        )
        .await
        .unwrap()
        .items
        .len();
    let mut conn = h.app.store().read().await.unwrap();
    let seq = audit::heads(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .find(|(t, _)| *t == ctx.tenant)
        .map_or(0, |(_, head)| head.seq);
    (principals, seq)
}

#[tokio::test]
async fn a_first_import_plans_then_creates_the_workforce_with_its_birthright() {
    let h = Harness::new().await;
    setup(&h, None).await;
    let before = footprint(&h).await;
    let dry = import(&h, &workforce(), true, false).await;
    assert!(!dry.applied);
    assert_eq!(dry.plan.joiners.len(), 5);
    assert!(dry.plan.errors.is_empty(), "{:?}", dry.plan.errors);
    let ada = dry
        .plan
        .joiners
        .iter()
        .find(|j| j.username == "ada")
        .unwrap();
    assert_eq!(ada.gains, vec!["group:sales", "role:crm-user"]);
    assert_eq!(footprint(&h).await, before, "a dry run writes nothing");

    let done = import(&h, &workforce(), false, false).await;
    assert!(done.applied, "{:?}", done.plan.refused);
    assert_eq!(
        holds(&h, "ada").await,
        set(&["group:sales", "role:crm-user"])
    );
    assert_eq!(holds(&h, "bob").await, set(&["group:eng"]));
    assert_eq!(
        holds(&h, "cora").await,
        set(&["group:contractors", "group:eng"])
    );

    let ada = user(&h, "ada").await;
    let bob = user(&h, "bob").await;
    assert_eq!(bob.external_id.as_deref(), Some("E2"));
    assert_eq!(bob.display_name.as_deref(), Some("Bob Builder"));
    assert_eq!(bob.attributes["manager"], json!(ada.id.to_string()));
    assert_eq!(bob.attributes["department"], json!("Engineering"));
    assert_eq!(
        bob.attributes["name"],
        json!({"givenName": "Bob", "familyName": "Builder"})
    );
    let cora = user(&h, "cora").await;
    assert_eq!(cora.user_type, Some(UserType::Contractor));
    assert_eq!(cora.sponsor_id, Some(ada.id));
    assert_eq!(
        cora.end_date.unwrap().to_string(),
        "2026-07-01T00:00:00Z",
        "the engagement includes its last day"
    );

    // The same snapshot again changes nothing.
    let again = import(&h, &workforce(), false, false).await;
    assert_eq!(again.plan.unchanged, 5);
    assert!(again.plan.joiners.is_empty() && again.plan.movers.is_empty());
}

#[tokio::test]
async fn a_mover_loses_what_the_old_position_gave_and_keeps_what_was_granted_by_hand() {
    let h = Harness::new().await;
    let ctx = setup(&h, None).await;
    import(&h, &workforce(), false, false).await;
    let hand = user(&h, "ada").await;
    let picked = h
        .app
        .principals(
            &ctx,
            &PrincipalFilter {
                kind: Some(PrincipalKind::Group),
                name_key: Some("hand-picked".into()),
                ..PrincipalFilter::default()
            },
            &Page {
                after: None,
                limit: 1,
            },
        )
        .await
        .unwrap()
        .items[0]
        .id;
    h.app
        .add_member(
            &ctx,
            picked,
            AddMember {
                member: hand.id.to_string(),
                expiry: Expiry::default(),
            },
        )
        .await
        .unwrap();

    let moved = workforce().replace(
        "E1,ada,ada@example.com,Ada,Lovelace,Sales,",
        "E1,ada,ada@example.com,Ada,Lovelace,Engineering,",
    );
    let plan = import(&h, &moved, true, false).await.plan;
    assert_eq!(plan.movers.len(), 1);
    let mover = &plan.movers[0];
    assert_eq!(mover.changed, vec!["attributes.department"]);
    assert_eq!(mover.gains, vec!["group:eng"]);
    assert_eq!(mover.losses, vec!["group:sales", "role:crm-user"]);

    assert!(import(&h, &moved, false, false).await.applied);
    assert_eq!(
        holds(&h, "ada").await,
        set(&["group:eng", "group:hand-picked"]),
        "the hand-granted group stays"
    );
}

#[tokio::test]
async fn with_a_grace_the_old_access_stays_until_it_ends_and_the_manager_hears_of_it() {
    let h = Harness::new().await;
    setup(&h, Some("7d")).await;
    import(&h, &workforce(), false, false).await;
    // dan (Sales, managed by ada) moves to Engineering.
    let moved = workforce().replace("E5,dan,,Dan,Dare,Sales,", "E5,dan,,Dan,Dare,Engineering,");
    assert!(import(&h, &moved, false, false).await.applied);
    assert_eq!(
        holds(&h, "dan").await,
        set(&["group:eng", "group:sales", "role:crm-user"])
    );
    let ctx = h.ctx().await;
    let mut conn = h.app.store().read().await.unwrap();
    let outbox = mail::outbox(&mut conn, ctx.tenant, 10).await.unwrap();
    drop(conn);
    let notice = outbox
        .iter()
        .find(|m| m.recipient == "ada@example.com")
        .unwrap();
    assert!(notice.subject.contains("Dan Dare"), "{}", notice.subject);
    assert!(
        notice
            .body
            .contains("group:sales: removed at 2026-03-08T09:00:00Z"),
        "{}",
        notice.body
    );
    assert!(notice.body.contains("role:crm-user"), "{}", notice.body);

    h.advance(SignedDuration::from_hours(7 * 24 + 1));
    assert_eq!(
        holds(&h, "dan").await,
        set(&["group:eng"]),
        "the grace ended"
    );
}

#[tokio::test]
async fn leavers_over_the_threshold_need_force_then_rehires_get_fresh_birthright() {
    let h = Harness::new().await;
    setup(&h, None).await;
    import(&h, &workforce(), false, false).await;
    let bob = user(&h, "bob").await;

    // bob is no longer in the snapshot: 1 of 5 is over the 10 % default.
    let without_bob: String = workforce()
        .lines()
        .filter(|l| !l.starts_with("E2,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let before = footprint(&h).await;
    let refused = import(&h, &without_bob, false, false).await;
    assert!(!refused.applied);
    assert!(
        refused.plan.refused.as_deref().unwrap().contains("20.0 %"),
        "{:?}",
        refused.plan.refused
    );
    assert_eq!(footprint(&h).await, before);
    assert_eq!(user(&h, "bob").await.status, Status::Active);

    let forced = import(&h, &without_bob, false, true).await;
    assert!(forced.applied);
    assert_eq!(forced.plan.leavers[0].user_id, bob.id);
    assert_eq!(user(&h, "bob").await.status, Status::Deprovisioned);
    assert!(holds(&h, "bob").await.is_empty(), "a leaver keeps nothing");

    // bob comes back, now in Sales: only what Sales gives.
    h.advance(SignedDuration::from_hours(24 * 30));
    let rehired = workforce().replace(
        "E2,bob,bob@example.com,Bob,Builder,Engineering,",
        "E2,bob,bob@example.com,Bob,Builder,Sales,",
    );
    let outcome = import(&h, &rehired, false, false).await;
    assert_eq!(outcome.plan.rehires.len(), 1);
    assert_eq!(
        outcome.plan.rehires[0].gains,
        vec!["group:sales", "role:crm-user"]
    );
    let bob = user(&h, "bob").await;
    assert_eq!(bob.status, Status::Active);
    assert_eq!(
        holds(&h, "bob").await,
        set(&["group:sales", "role:crm-user"])
    );
}

#[tokio::test]
async fn the_leavers_report_shows_how_soon_each_account_closed() {
    let h = Harness::new().await;
    setup(&h, None).await;
    import(&h, &workforce(), false, true).await;
    let since = h.ctx().await.now;
    h.advance(SignedDuration::from_hours(1));
    // dan's termination took effect three days ago; cy left today.
    let terminated = workforce()
        .replace(
            "E5,dan,,Dan,Dare,Sales,E1,Permanent,2019-01-01,,,",
            "E5,dan,,Dan,Dare,Sales,E1,Permanent,2019-01-01,,2026-02-26,",
        )
        .replace(
            "E3,cy,,Cy,Young,Sales,E1,Permanent,2026-03-09,,,",
            "E3,cy,,Cy,Young,Sales,E1,Permanent,2026-03-09,,2026-03-01T08:00:00Z,",
        );
    let outcome = import(&h, &terminated, false, true).await;
    assert_eq!(outcome.plan.leavers.len(), 2, "{:?}", outcome.plan);
    let ctx = h.ctx().await;
    let report = h.app.leavers_report(&ctx, since).await.unwrap();
    let dan = report.iter().find(|r| r.employee_id == "E5").unwrap();
    assert_eq!(
        dan.terminated_at.unwrap().to_string(),
        "2026-02-26T00:00:00Z"
    );
    assert_eq!(dan.deprovisioned_at, Some(ctx.now));
    assert!(dan.over_24h);
    let cy = report.iter().find(|r| r.employee_id == "E3").unwrap();
    assert_eq!(cy.elapsed_seconds, Some(2 * 3600));
    assert!(!cy.over_24h);

    // Every step of a leaver carries its HR change id.
    let mut conn = h.app.store().read().await.unwrap();
    let events = audit::query(
        &mut conn,
        ctx.tenant,
        &audit::AuditFilter {
            target: Some(format!("user:{}", dan.user_id)),
            limit: 100,
            ..audit::AuditFilter::default()
        },
    )
    .await
    .unwrap();
    let tagged: Vec<_> = events
        .iter()
        .filter(|r| r.event.details["hr_change"] == json!(dan.hr_change))
        .map(|r| r.event.action.as_str())
        .collect();
    // The whole leaver pipeline ran, every step linked to the HR change.
    assert!(tagged.contains(&"user.deprovision"), "{tagged:?}");
    assert!(tagged.contains(&"session.end_all"), "{tagged:?}");
}

#[tokio::test]
async fn every_bad_input_refuses_the_whole_import_and_writes_nothing() {
    let h = Harness::new().await;
    let ctx = setup(&h, None).await;
    let good = "E9,zed,,Zed,Zero,Sales,,Permanent,,,,\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{HEADER}{good}E9,zed2,,Z,Z,Sales,,Permanent,,,,\n"),
            "appears more than once",
        ),
        (
            format!("{HEADER}{good}E8,yan,,Y,Y,Sales,,Permanent,03/04/2026,,,\n"),
            "is not a date",
        ),
        (
            format!("{HEADER}{good}E8,yan,,Y,Y,Sales,E404,Permanent,,,,\n"),
            "manager `E404` is neither",
        ),
        (
            format!("{HEADER}{good}E8,yan,,Y,Y,Sales,,Contract,,2026-09-30,,E404\n"),
            "sponsor `E404` is neither",
        ),
        (
            format!("{HEADER}{good}E8,yan,,Y,Y,Sales,,Contract,,,,E9\n"),
            "always has an end date",
        ),
        (
            format!("{HEADER}{good}E8,yan,,Y,Y,Sales,,Contract,,2026-09-30,,\n"),
            "always has a sponsor",
        ),
        (
            format!("{HEADER}{good}E8,yan,,Y,Y,Sales,,Intern,,,,\n"),
            "not mapped to employee or contractor",
        ),
        (
            format!("{HEADER}{good}E8,zed,,Y,Y,Sales,,Permanent,,,,\n"),
            "is also on line 2",
        ),
    ];
    let before = footprint(&h).await;
    for (csv, expected) in cases {
        let outcome = import(&h, &csv, false, false).await;
        assert!(!outcome.applied, "{expected}");
        assert!(
            outcome
                .plan
                .errors
                .iter()
                .any(|e| e.message.contains(expected)),
            "{expected}: {:?}",
            outcome.plan.errors
        );
        assert!(outcome.plan.refused.is_some());
        assert_eq!(footprint(&h).await, before, "{expected}");
    }
    for (csv, expected) in [
        (
            b"Employee ID,Login\nE1,ada\n".to_vec(),
            "the header lacks column(s) the mapping names: `Email`",
        ),
        (
            [
                HEADER.as_bytes(),
                good.as_bytes(),
                b"E8,y\xe9n,,Y,Y,Sales,,Permanent,,,,\n",
            ]
            .concat(),
            "not UTF-8 at line 3: export the file as UTF-8",
        ),
    ] {
        let err = h
            .app
            .hr_import(&ctx, &csv, &mapping(), false, false)
            .await
            .unwrap_err();
        match err {
            AppError::Invalid(e) => assert!(e.message.contains(expected), "{}", e.message),
            other => panic!("{other:?}"),
        }
        assert_eq!(footprint(&h).await, before, "{expected}");
    }
}

#[tokio::test]
async fn rules_naming_unknown_access_are_refused_and_a_hand_made_user_gets_birthright() {
    let h = Harness::new().await;
    let ctx = setup(&h, None).await;
    let err = h
        .app
        .set_lifecycle_rules(
            &ctx,
            LifecycleRules {
                birthright: vec![rule("x", json!({}), &["nope"], &["nada"])],
                ..LifecycleRules::default()
            },
        )
        .await
        .unwrap_err();
    let AppError::Invalid(e) = err else {
        panic!("{err:?}")
    };
    assert!(e.message.contains("no group `nope`"), "{}", e.message);
    assert!(e.message.contains("no role `nada`"), "{}", e.message);

    // Birthright follows every source of change, not only HR.
    let created = h
        .app
        .create_user(
            &ctx,
            CreateUser {
                username: "native".into(),
                display_name: None,
                email: None,
                external_id: None,
                user_type: None,
                start_date: None,
                end_date: None,
                sponsor: None,
                status: None,
                attributes: Some(serde_json::from_value(json!({"department": "SALES"})).unwrap()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        holds(&h, "native").await,
        set(&["group:sales", "role:crm-user"])
    );
    let update = serde_json::from_value(json!({"status": "deprovisioned"})).unwrap();
    h.app
        .update_user(&ctx, created.id, update, None)
        .await
        .unwrap();
    assert!(
        holds(&h, "native").await.is_empty(),
        "deprovisioned users get nothing"
    );
}
