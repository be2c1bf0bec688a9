//! Principal search conformance: predicates, sorting and pages give the same
//! answers on SQLite and PostgreSQL, over one seeded directory.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

#[allow(
    dead_code,
    reason = "the harness is shared with conformance.rs, which uses all of it"
)]
#[macro_use]
mod support;

use std::collections::HashMap;

use idplane_core::directory::{Membership, PrincipalKind, Status, UserType};
use idplane_core::{PrincipalId, TenantId};
use idplane_store::principal_query::{
    ElementField, ElementPredicate as E, Field, Op, Operand, Predicate as P, Sort, query,
};
use idplane_store::{Store, StoreError, principals};
use serde_json::{Value, json};

use support::{TestDb, at, commit, create_principals, create_tenant, principal, read, t0};

conformance! {
    text_operators_on_columns_and_attributes
        => sqlite_text_operators_on_columns_and_attributes, postgres_text_operators_on_columns_and_attributes;
    numbers_booleans_and_times_compare_by_type
        => sqlite_numbers_booleans_and_times_compare_by_type, postgres_numbers_booleans_and_times_compare_by_type;
    logic_and_presence_are_two_valued
        => sqlite_logic_and_presence_are_two_valued, postgres_logic_and_presence_are_two_valued;
    any_element_matches_one_element_of_an_array
        => sqlite_any_element_matches_one_element_of_an_array, postgres_any_element_matches_one_element_of_an_array;
    memberships_in_force_count
        => sqlite_memberships_in_force_count, postgres_memberships_in_force_count;
    sorting_and_offset_pages
        => sqlite_sorting_and_offset_pages, postgres_sorting_and_offset_pages;
    hostile_values_are_only_data
        => sqlite_hostile_values_are_only_data, postgres_hostile_values_are_only_data;
}

/// The seeded directory: its tenant and each principal's id by name.
struct Dir {
    store: Store,
    tenant: TenantId,
    ids: HashMap<String, PrincipalId>,
}

const FILLERS: usize = 20;

/// The hand-made users: name, display name, status, attributes.
fn people() -> Vec<(&'static str, Option<&'static str>, Status, Value)> {
    vec![
        (
            "ada",
            Some("Ada Lovelace"),
            Status::Active,
            json!({
                "name": {"givenName": "Ada", "familyName": "Lovelace"},
                "emails": [
                    {"value": "ada@example.com", "type": "work", "primary": true},
                    {"value": "ada@home.org", "type": "home"}
                ],
                "department": "Engineering", "employeeNumber": "100",
                "costCenter": "50%_off\\", "loginCount": 12, "verified": true
            }),
        ),
        (
            "bob",
            Some("Bob"),
            Status::Suspended,
            json!({
                "emails": [{"value": "Bob@Example.org", "type": "work", "primary": false}],
                "department": "Sales", "loginCount": 3, "verified": false
            }),
        ),
        ("carol", None, Status::Active, json!({})),
        (
            "dave",
            Some("Dave"),
            Status::Active,
            json!({
                "emails": ["dave@plain.example"], "department": "engineering",
                "title": "", "name": {}
            }),
        ),
        (
            "eve",
            Some("Eve O'Brien"),
            Status::Active,
            json!({
                "emails": [], "department": "O'Brien's", "nickName": "Evie",
                "verified": "true", "loginCount": "12"
            }),
        ),
        (
            "frank",
            Some("Frank"),
            Status::Active,
            json!({
                "costCenter": "50 gets 1off\\", "department": "Ops",
                "name": {"givenName": "Frank", "familyName": "Zappa"}, "title": null
            }),
        ),
        (
            "grace",
            Some("grace hopper"),
            Status::Deprovisioned,
            json!({
                "department": "Engineering", "employeeNumber": "099", "loginCount": 12.0,
                "name": {"givenName": "Grace", "familyName": "Hopper"},
                "manager": {"value": "ada"}
            }),
        ),
    ]
}

async fn seed(store: Store) -> Dir {
    let tenant = create_tenant(&store, "acme").await;
    let mut all = Vec::new();
    for (i, (name, display, status, attributes)) in people().into_iter().enumerate() {
        let mut p = principal(tenant.id, PrincipalKind::User, name);
        p.display_name = display.map(str::to_owned);
        p.status = status;
        p.external_id = Some(format!("EXT-{}", i + 1));
        p.email = Some(format!("{name}@example.com"));
        p.attributes = attributes.as_object().unwrap().clone();
        p.created_at = at(10 * i64::try_from(i).unwrap());
        p.updated_at = at(1000 - i64::try_from(i).unwrap());
        if name == "frank" {
            p.user_type = Some(UserType::Contractor);
            p.end_date = Some(at(86_400));
        } else if name != "carol" {
            p.user_type = Some(UserType::Employee);
        }
        all.push(p);
    }
    for i in 0..FILLERS {
        let mut p = principal(tenant.id, PrincipalKind::User, &format!("filler{i:02}"));
        p.display_name = Some(format!("Filler {i:02}"));
        p.attributes = json!({
            "department": format!("Dept{}", i % 3),
            "loginCount": i,
            "emails": [{
                "value": format!("f{i}@fill.example"),
                "type": if i % 2 == 0 { "home" } else { "work" },
                "primary": i % 4 == 0
            }]
        })
        .as_object()
        .unwrap()
        .clone();
        p.created_at = at(1000 + i64::try_from(i).unwrap());
        p.updated_at = at(2000 + i64::try_from(i).unwrap());
        all.push(p);
    }
    for name in ["Admins", "Staff", "Empty"] {
        all.push(principal(tenant.id, PrincipalKind::Group, name));
    }
    create_principals(&store, &all).await;
    let ids: HashMap<String, PrincipalId> = all.iter().map(|p| (p.name.clone(), p.id)).collect();

    let mut tx = store.write().await.unwrap();
    for (group, member, expires_at) in [
        ("Admins", "ada", None),
        ("Admins", "bob", Some(at(-1))),
        ("Staff", "ada", None),
        ("Staff", "carol", Some(at(3600))),
        ("Staff", "grace", Some(t0())),
        ("Staff", "Admins", None),
    ] {
        let m = Membership {
            group_id: ids[group],
            member_id: ids[member],
            expires_at,
            created_at: at(-100),
        };
        principals::upsert_membership(&mut tx, tenant.id, &m)
            .await
            .unwrap();
    }
    commit(tx, tenant.id, "group.members").await;
    Dir {
        store,
        tenant: tenant.id,
        ids,
    }
}

impl Dir {
    /// The names of the users matching `p`, sorted.
    async fn users(&self, p: &P) -> Vec<String> {
        self.names(PrincipalKind::User, p).await
    }

    async fn names(&self, kind: PrincipalKind, p: &P) -> Vec<String> {
        let mut conn = read(&self.store).await;
        let (total, found) = query(&mut conn, self.tenant, kind, p, None, 0, 1000, t0())
            .await
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(usize::try_from(total).unwrap(), found.len());
        let mut names: Vec<String> = found.into_iter().map(|p| p.name).collect();
        names.sort();
        names
    }

    /// The hand-made users matching `p` (fillers left out).
    async fn people(&self, p: &P) -> Vec<String> {
        let mut names = self.users(p).await;
        names.retain(|n| !n.starts_with("filler"));
        names
    }

    fn id(&self, name: &str) -> String {
        self.ids[name].to_string()
    }
}

fn text(field: Field, op: Op, value: &str) -> P {
    P::Compare {
        field,
        op,
        value: Operand::Text(value.into()),
        case_exact: true,
    }
}

fn text_ci(field: Field, op: Op, value: &str) -> P {
    P::Compare {
        field,
        op,
        value: Operand::Text(value.into()),
        case_exact: false,
    }
}

fn cmp(field: Field, op: Op, value: Operand) -> P {
    P::Compare {
        field,
        op,
        value,
        case_exact: true,
    }
}

const DEPT: Field = Field::Attr(&["department"]);
const GIVEN: Field = Field::Attr(&["name", "givenName"]);
const LOGINS: Field = Field::Attr(&["loginCount"]);
const VERIFIED: Field = Field::Attr(&["verified"]);
const COST: Field = Field::Attr(&["costCenter"]);

fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

async fn text_operators_on_columns_and_attributes(store: Store, _db: &TestDb) {
    let d = seed(store).await;
    let dn = Field::DisplayName;
    assert_eq!(d.users(&text(dn, Op::Eq, "Bob")).await, names(&["bob"]));
    assert!(d.users(&text(dn, Op::Eq, "bob")).await.is_empty());
    assert_eq!(d.users(&text_ci(dn, Op::Eq, "bob")).await, names(&["bob"]));
    assert_eq!(
        d.people(&text(dn, Op::Co, "o")).await,
        names(&["ada", "bob", "grace"])
    );
    assert_eq!(
        d.people(&text_ci(dn, Op::Co, "O")).await,
        names(&["ada", "bob", "eve", "grace"])
    );
    assert_eq!(d.people(&text(dn, Op::Sw, "Ada")).await, names(&["ada"]));
    assert!(d.people(&text(dn, Op::Sw, "ada")).await.is_empty());
    assert_eq!(d.people(&text_ci(dn, Op::Sw, "ada")).await, names(&["ada"]));
    assert_eq!(d.people(&text(dn, Op::Ew, "per")).await, names(&["grace"]));
    assert_eq!(
        d.people(&text_ci(dn, Op::Ew, "PER")).await,
        names(&["grace"])
    );
    // The empty string starts, ends and is contained in every value.
    let with_display = names(&["ada", "bob", "dave", "eve", "frank", "grace"]);
    assert_eq!(d.people(&text(dn, Op::Ew, "")).await, with_display);
    assert_eq!(d.people(&text(dn, Op::Sw, "")).await, with_display);
    // Ordering by code point: upper case sorts before lower case.
    assert_eq!(
        d.people(&text(dn, Op::Gt, "Eve")).await,
        names(&["eve", "frank", "grace"])
    );
    assert_eq!(
        d.people(&text(dn, Op::Ge, "Eve O'Brien")).await,
        names(&["eve", "frank", "grace"])
    );
    assert_eq!(d.people(&text(dn, Op::Lt, "Bob")).await, names(&["ada"]));
    assert_eq!(
        d.people(&text(dn, Op::Le, "Bob")).await,
        names(&["ada", "bob"])
    );
    assert_eq!(
        d.people(&text_ci(dn, Op::Lt, "c")).await,
        names(&["ada", "bob"])
    );
    // `ne` is "not eq": principals without a display name match it.
    assert_eq!(
        d.people(&text(dn, Op::Ne, "Bob")).await,
        names(&["ada", "carol", "dave", "eve", "frank", "grace"])
    );

    assert_eq!(
        d.users(&text(Field::NameKey, Op::Eq, "ada")).await,
        names(&["ada"])
    );
    assert_eq!(
        d.users(&text(Field::ExternalId, Op::Eq, "EXT-2")).await,
        names(&["bob"])
    );
    assert_eq!(
        d.users(&text(Field::Email, Op::Ew, "@example.com")).await,
        names(&["ada", "bob", "carol", "dave", "eve", "frank", "grace"])
    );
    assert_eq!(
        d.users(&text(Field::Id, Op::Eq, &d.id("carol"))).await,
        names(&["carol"])
    );
    assert_eq!(
        d.users(&text(Field::Status, Op::Eq, "suspended")).await,
        names(&["bob"])
    );
    assert_eq!(
        d.users(&text(Field::UserType, Op::Eq, "contractor")).await,
        names(&["frank"])
    );

    assert_eq!(
        d.people(&text(DEPT, Op::Eq, "Engineering")).await,
        names(&["ada", "grace"])
    );
    assert_eq!(
        d.people(&text_ci(DEPT, Op::Eq, "ENGINEERING")).await,
        names(&["ada", "dave", "grace"])
    );
    assert_eq!(
        d.people(&text_ci(DEPT, Op::Sw, "eng")).await,
        names(&["ada", "dave", "grace"])
    );
    assert_eq!(d.people(&text(DEPT, Op::Co, "ale")).await, names(&["bob"]));
    assert_eq!(d.people(&text(DEPT, Op::Ew, "ps")).await, names(&["frank"]));
    assert_eq!(
        d.people(&text(GIVEN, Op::Lt, "G")).await,
        names(&["ada", "frank"])
    );
    assert_eq!(
        d.people(&text(GIVEN, Op::Gt, "Frank")).await,
        names(&["grace"])
    );
    assert_eq!(
        d.people(&text(Field::Attr(&["manager", "value"]), Op::Eq, "ada"))
            .await,
        names(&["grace"])
    );
}

async fn numbers_booleans_and_times_compare_by_type(store: Store, _db: &TestDb) {
    let d = seed(store).await;
    let n = Operand::Number;
    // 12 and 12.0 are the same number; the string "12" is not a number.
    assert_eq!(
        d.people(&cmp(LOGINS, Op::Eq, n(12.0))).await,
        names(&["ada", "grace"])
    );
    assert_eq!(
        d.people(&cmp(LOGINS, Op::Ne, n(12.0))).await,
        names(&["bob", "carol", "dave", "eve", "frank"])
    );
    assert_eq!(
        d.users(&cmp(LOGINS, Op::Gt, n(17.5))).await,
        names(&["filler18", "filler19"])
    );
    assert_eq!(
        d.users(&cmp(LOGINS, Op::Ge, n(18.0))).await,
        names(&["filler18", "filler19"])
    );
    assert_eq!(
        d.users(&cmp(LOGINS, Op::Lt, n(1.0))).await,
        names(&["filler00"])
    );
    assert_eq!(
        d.users(&cmp(LOGINS, Op::Le, n(1.0))).await,
        names(&["filler00", "filler01"])
    );
    assert!(d.users(&cmp(LOGINS, Op::Co, n(1.0))).await.is_empty());
    // A number against a text field never matches.
    assert!(d.users(&cmp(DEPT, Op::Eq, n(100.0))).await.is_empty());

    // JSON booleans (SQLite's json_extract gives 1 and 0); the string "true" is not one.
    let b = Operand::Bool;
    assert_eq!(
        d.people(&cmp(VERIFIED, Op::Eq, b(true))).await,
        names(&["ada"])
    );
    assert_eq!(
        d.people(&cmp(VERIFIED, Op::Eq, b(false))).await,
        names(&["bob"])
    );
    assert_eq!(
        d.people(&cmp(VERIFIED, Op::Ne, b(true))).await,
        names(&["bob", "carol", "dave", "eve", "frank", "grace"])
    );
    assert!(d.users(&cmp(VERIFIED, Op::Gt, b(false))).await.is_empty());
    assert!(d.users(&cmp(LOGINS, Op::Eq, b(true))).await.is_empty());
    assert!(
        d.users(&text(VERIFIED, Op::Eq, "true")).await == names(&["eve"]),
        "a JSON string compares as text"
    );

    // Times compare with the millisecond columns; text does not.
    let t = |secs| Operand::Time(at(secs));
    assert_eq!(
        d.people(&cmp(Field::CreatedAt, Op::Lt, t(20))).await,
        names(&["ada", "bob"])
    );
    assert_eq!(
        d.people(&cmp(Field::CreatedAt, Op::Le, t(20))).await,
        names(&["ada", "bob", "carol"])
    );
    assert_eq!(
        d.users(&cmp(Field::CreatedAt, Op::Eq, t(30))).await,
        names(&["dave"])
    );
    assert_eq!(
        d.people(&cmp(Field::UpdatedAt, Op::Ge, t(999))).await,
        names(&["ada", "bob"])
    );
    assert_eq!(
        d.users(&cmp(Field::CreatedAt, Op::Gt, t(1017))).await,
        names(&["filler18", "filler19"])
    );
    assert!(
        d.users(&text(Field::CreatedAt, Op::Eq, "0"))
            .await
            .is_empty(),
        "text against a time column matches nothing"
    );
    assert!(d.users(&cmp(DEPT, Op::Eq, t(0))).await.is_empty());
    assert!(
        d.users(&cmp(Field::CreatedAt, Op::Co, t(0)))
            .await
            .is_empty()
    );
}

async fn logic_and_presence_are_two_valued(store: Store, _db: &TestDb) {
    let d = seed(store).await;
    let all = d.users(&P::True).await;
    assert_eq!(all.len(), 7 + FILLERS);
    assert!(d.users(&P::False).await.is_empty());
    assert_eq!(d.users(&P::And(vec![])).await, all);
    assert!(d.users(&P::Or(vec![])).await.is_empty());

    let eng = || text(DEPT, Op::Eq, "Engineering");
    let active = || text(Field::Status, Op::Eq, "active");
    assert_eq!(
        d.users(&P::And(vec![eng(), active()])).await,
        names(&["ada"])
    );
    assert_eq!(
        d.people(&P::Or(vec![eng(), text(DEPT, Op::Eq, "Sales")]))
            .await,
        names(&["ada", "bob", "grace"])
    );
    // NOT over a missing value: carol has no department, so she is "not Engineering".
    assert_eq!(
        d.people(&P::Not(Box::new(eng()))).await,
        names(&["bob", "carol", "dave", "eve", "frank"])
    );
    assert_eq!(
        d.people(&P::Not(Box::new(P::Not(Box::new(eng()))))).await,
        names(&["ada", "grace"])
    );
    assert_eq!(
        d.people(&P::Not(Box::new(P::Or(vec![eng(), active()]))))
            .await,
        names(&["bob"])
    );

    // Present: not null, not "", not [], not {}.
    assert_eq!(
        d.people(&P::Present(Field::DisplayName)).await,
        names(&["ada", "bob", "dave", "eve", "frank", "grace"])
    );
    assert_eq!(
        d.people(&P::Present(Field::UserType)).await,
        names(&["ada", "bob", "dave", "eve", "frank", "grace"])
    );
    assert_eq!(d.users(&P::Present(Field::CreatedAt)).await, all);
    assert!(
        d.users(&P::Present(Field::Attr(&["title"])))
            .await
            .is_empty()
    );
    assert_eq!(
        d.people(&P::Present(Field::Attr(&["name"]))).await,
        names(&["ada", "frank", "grace"])
    );
    assert_eq!(
        d.people(&P::Present(Field::Attr(&["emails"]))).await,
        names(&["ada", "bob", "dave"])
    );
    assert_eq!(
        d.people(&P::Present(VERIFIED)).await,
        names(&["ada", "bob", "eve"])
    );
    assert_eq!(
        d.people(&P::Present(GIVEN)).await,
        names(&["ada", "frank", "grace"])
    );
    assert_eq!(
        d.people(&P::Not(Box::new(P::Present(LOGINS)))).await,
        names(&["carol", "dave", "frank"])
    );
}

async fn any_element_matches_one_element_of_an_array(store: Store, _db: &TestDb) {
    let d = seed(store).await;
    let el = |field, op, value: &str, case_exact| E::Compare {
        field: ElementField(field),
        op,
        value: Operand::Text(value.into()),
        case_exact,
    };
    let any = |element| P::AnyElement {
        array: "emails",
        element: Box::new(element),
    };
    assert_eq!(
        d.users(&any(el("value", Op::Eq, "bob@example.org", false)))
            .await,
        names(&["bob"])
    );
    assert!(
        d.users(&any(el("value", Op::Eq, "bob@example.org", true)))
            .await
            .is_empty()
    );
    assert_eq!(
        d.people(&any(el("value", Op::Co, "example", false))).await,
        names(&["ada", "bob"])
    );
    // Both conditions on the same element: ada's work address is primary, bob's is not.
    let work_primary = E::And(vec![
        el("type", Op::Eq, "work", true),
        E::Compare {
            field: ElementField("primary"),
            op: Op::Eq,
            value: Operand::Bool(true),
            case_exact: true,
        },
    ]);
    assert_eq!(d.people(&any(work_primary.clone())).await, names(&["ada"]));
    assert_eq!(
        d.users(&any(work_primary)).await.len(),
        1 + (0..FILLERS).filter(|i| i % 4 == 0 && i % 2 == 1).count()
    );
    // ada has a home and a work address; "some element is not work" is true for her.
    assert_eq!(
        d.people(&any(E::Not(Box::new(el("type", Op::Eq, "work", true)))))
            .await,
        names(&["ada", "dave"])
    );
    assert_eq!(
        d.people(&P::Not(Box::new(any(el("type", Op::Eq, "work", true)))))
            .await,
        names(&["carol", "dave", "eve", "frank", "grace"])
    );
    assert_eq!(
        d.people(&any(E::Present(ElementField("primary")))).await,
        names(&["ada", "bob"])
    );
    assert_eq!(
        d.people(&any(E::Or(vec![
            el("value", Op::Sw, "ada@home", true),
            el("value", Op::Ew, ".org", false)
        ])))
        .await,
        names(&["ada", "bob"])
    );
    // An element that is not an object has no keys; `[]` and absence have no elements.
    assert_eq!(
        d.people(&any(E::True)).await,
        names(&["ada", "bob", "dave"])
    );
    assert!(d.users(&any(E::False)).await.is_empty());
    // An attribute that is an object, not an array, has no elements.
    assert!(
        d.users(&P::AnyElement {
            array: "name",
            element: Box::new(E::True)
        })
        .await
        .is_empty()
    );
}

async fn memberships_in_force_count(store: Store, _db: &TestDb) {
    let d = seed(store).await;
    let group = PrincipalKind::Group;
    // bob's membership of Admins expired before now; grace's in Staff expires exactly now.
    assert_eq!(
        d.names(group, &P::HasMember(d.id("ada"))).await,
        names(&["Admins", "Staff"])
    );
    assert!(d.names(group, &P::HasMember(d.id("bob"))).await.is_empty());
    assert_eq!(
        d.names(group, &P::HasMember(d.id("carol"))).await,
        names(&["Staff"])
    );
    assert!(
        d.names(group, &P::HasMember(d.id("grace")))
            .await
            .is_empty()
    );
    assert_eq!(
        d.names(group, &P::HasMember(d.id("Admins"))).await,
        names(&["Staff"])
    );
    assert_eq!(
        d.names(group, &P::Not(Box::new(P::HasMember(d.id("ada")))))
            .await,
        names(&["Empty"])
    );
    assert!(
        d.names(group, &P::HasMember("nobody".into()))
            .await
            .is_empty()
    );
    assert_eq!(
        d.users(&P::MemberOf(d.id("Staff"))).await,
        names(&["ada", "carol"])
    );
    assert_eq!(d.users(&P::MemberOf(d.id("Admins"))).await, names(&["ada"]));
    assert!(d.users(&P::MemberOf(d.id("Empty"))).await.is_empty());
    // The kind scopes the search: groups are not users.
    assert!(
        d.users(&text(Field::NameKey, Op::Eq, "admins"))
            .await
            .is_empty()
    );
    assert_eq!(d.names(group, &P::True).await.len(), 3);
}

async fn sorting_and_offset_pages(store: Store, _db: &TestDb) {
    let d = seed(store).await;
    let page = |sort: Option<Sort>, offset, limit| {
        let d = &d;
        async move {
            let mut conn = read(&d.store).await;
            let (total, items) = query(
                &mut conn,
                d.tenant,
                PrincipalKind::User,
                &P::True,
                sort.as_ref(),
                offset,
                limit,
                t0(),
            )
            .await
            .unwrap();
            (total, items.into_iter().map(|p| p.name).collect::<Vec<_>>())
        }
    };
    let total = u64::try_from(7 + FILLERS).unwrap();
    let by = |field, descending| Some(Sort { field, descending });

    let (n, first) = page(by(Field::DisplayName, false), 0, 7).await;
    assert_eq!(n, total);
    // Case-insensitive order, missing values last.
    assert_eq!(
        first,
        [
            "ada", "bob", "dave", "eve", "filler00", "filler01", "filler02"
        ]
    );
    let (_, last) = page(by(Field::DisplayName, false), 24, 10).await;
    assert_eq!(last, ["frank", "grace", "carol"]);
    let (_, desc) = page(by(Field::DisplayName, true), 0, 3).await;
    assert_eq!(desc, ["grace", "frank", "filler19"]);
    let (_, desc_tail) = page(by(Field::DisplayName, true), 25, 5).await;
    assert_eq!(desc_tail, ["ada", "carol"]);

    // By a JSON attribute: the others have no given name, so they follow, in id order.
    let id_order = |names: &[String]| {
        let ids: Vec<PrincipalId> = names.iter().map(|n| d.ids[n]).collect();
        ids.is_sorted()
    };
    let (_, given) = page(by(GIVEN, false), 0, 100).await;
    assert_eq!(given[..3], ["ada", "frank", "grace"]);
    assert!(id_order(&given[3..]), "{given:?}");
    let (_, given_desc) = page(by(GIVEN, true), 0, 100).await;
    assert_eq!(given_desc[..3], ["grace", "frank", "ada"]);
    assert_eq!(given_desc[3..], given[3..]);
    let (_, created) = page(by(Field::CreatedAt, true), 0, 2).await;
    assert_eq!(created, ["filler19", "filler18"]);
    let (_, updated) = page(by(Field::UpdatedAt, false), 0, 2).await;
    assert_eq!(updated, ["grace", "frank"]);

    // Pages tile the result; past the end is empty but still counts.
    let mut walked = Vec::new();
    for offset in (0..total).step_by(4) {
        let (n, items) = page(by(Field::NameKey, false), offset, 4).await;
        assert_eq!(n, total);
        walked.extend(items);
    }
    let mut sorted = walked.clone();
    sorted.sort();
    assert_eq!(walked, sorted);
    assert_eq!(walked.len(), 7 + FILLERS);
    assert_eq!(page(None, 1000, 10).await, (total, vec![]));
    assert_eq!(page(None, 0, 0).await, (total, vec![]));
    // No sort: id order, which is creation order for UUIDv7 ids.
    let (_, unsorted) = page(None, 0, 3).await;
    let mut by_id: Vec<(PrincipalId, String)> = d
        .ids
        .iter()
        .filter(|(name, _)| !["Admins", "Staff", "Empty"].contains(&name.as_str()))
        .map(|(name, id)| (*id, name.clone()))
        .collect();
    by_id.sort();
    assert_eq!(
        unsorted,
        by_id
            .into_iter()
            .take(3)
            .map(|(_, n)| n)
            .collect::<Vec<_>>()
    );
}

async fn hostile_values_are_only_data(store: Store, _db: &TestDb) {
    let d = seed(store).await;
    // LIKE metacharacters are plain characters: frank's "50 gets 1off\" would
    // match an unescaped LIKE '%50%_off\%'.
    for op in [Op::Eq, Op::Co, Op::Sw, Op::Ew] {
        let value = match op {
            Op::Sw => "50%_",
            Op::Ew => "%_off\\",
            _ => "50%_off\\",
        };
        assert_eq!(
            d.users(&text(COST, op, value)).await,
            names(&["ada"]),
            "{op:?} {value}"
        );
        assert_eq!(d.users(&text_ci(COST, op, value)).await, names(&["ada"]));
    }
    assert!(d.users(&text(COST, Op::Co, "%")).await == names(&["ada"]));
    assert!(d.users(&text(COST, Op::Co, "_")).await == names(&["ada"]));
    // Quotes.
    assert_eq!(
        d.users(&text(DEPT, Op::Eq, "O'Brien's")).await,
        names(&["eve"])
    );
    assert_eq!(
        d.users(&text(Field::DisplayName, Op::Co, "O'B")).await,
        names(&["eve"])
    );
    // An injection attempt is a value that matches nothing.
    for value in [
        "x' OR '1'='1",
        "x') OR ('1'='1",
        "'; DROP TABLE principals; --",
    ] {
        for field in [Field::NameKey, Field::DisplayName, DEPT] {
            for op in [Op::Eq, Op::Co, Op::Sw, Op::Ew] {
                let found = d.users(&text(field, op, value)).await;
                assert!(found.is_empty(), "{field:?} {op:?} {value}: {found:?}");
            }
        }
        assert!(d.users(&P::HasMember(value.into())).await.is_empty());
    }
    assert_eq!(d.users(&P::True).await.len(), 7 + FILLERS);
    // JSON keys are written into the statement, so anything but a plain name is refused.
    let mut conn = read(&d.store).await;
    for bad in [
        P::Present(Field::Attr(&["a') OR 1=1 --"])),
        P::Present(Field::Attr(&[])),
        P::Present(Field::Attr(&["name", "given.Name"])),
        P::AnyElement {
            array: "emails'",
            element: Box::new(E::True),
        },
        P::AnyElement {
            array: "emails",
            element: Box::new(E::Present(ElementField("x}"))),
        },
    ] {
        let result = query(
            &mut conn,
            d.tenant,
            PrincipalKind::User,
            &bad,
            None,
            0,
            10,
            t0(),
        )
        .await;
        assert!(
            matches!(result, Err(StoreError::InvalidQuery(_))),
            "{bad:?}: {result:?}"
        );
    }
}
