//! SCIM filters answered by the database agree with the same filters
//! evaluated in memory (`Filter::matches`) on the resources' SCIM JSON:
//! random and/or/not combinations of atoms over a seeded directory.
//!
//! `sqlite_<name>` always runs; `postgres_<name>` runs on a schema of its own
//! on the server named by `IDPLANE_TEST_DATABASE_URL`, and is skipped when
//! that is not set. The app does not speak SQL, so the schema stays on the
//! (disposable) test server.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use std::collections::BTreeSet;

use idplane_app::scim::query::{ENTERPRISE_USER_SCHEMA, ResourceKind, to_predicate};
use idplane_core::audit::AuditEvent;
use idplane_core::directory::{
    Membership, Principal, PrincipalKind, Status, Tenant, UserType, name_key,
};
use idplane_core::scim::filter::{AttrPath, parse_filter};
use idplane_core::{Actor, Ctx, PrincipalId, RequestMeta, TenantId, Timestamp};
use idplane_store::principal_query::query;
use idplane_store::{Store, StoreOptions, principals, tenants};
use jiff::SignedDuration;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0().checked_add(SignedDuration::from_secs(secs)).unwrap()
}

/// A principal with its SCIM JSON, as the directory would show it.
struct Resource {
    principal: Principal,
    json: Value,
}

struct Directory {
    tenant: TenantId,
    users: Vec<Resource>,
    groups: Vec<Resource>,
    /// Ids by name, for the atoms that name them.
    ids: std::collections::HashMap<String, PrincipalId>,
}

fn principal(tenant: TenantId, kind: PrincipalKind, name: &str, i: i64) -> Principal {
    Principal {
        id: PrincipalId::generate(),
        tenant_id: tenant,
        kind,
        name: name.into(),
        display_name: None,
        email: None,
        external_id: None,
        status: Status::Active,
        user_type: None,
        start_date: None,
        end_date: None,
        sponsor_id: None,
        owner_id: None,
        purpose: None,
        expires_at: None,
        attributes: Map::new(),
        created_at: at(60 * i),
        updated_at: at(60 * i + 30),
        version: 1,
    }
}

const ENTERPRISE: [&str; 6] = [
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
    "manager",
];

/// The SCIM JSON of a principal: columns under their SCIM names, the
/// enterprise attributes under their schema, memberships in force at t0.
fn scim_json(p: &Principal, links: &[Value]) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(p.id.to_string()));
    if let Some(ext) = &p.external_id {
        out.insert("externalId".into(), json!(ext));
    }
    let meta =
        json!({"created": p.created_at.to_string(), "lastModified": p.updated_at.to_string()});
    out.insert("meta".into(), meta);
    if p.kind == PrincipalKind::Group {
        out.insert("displayName".into(), json!(p.name));
        out.insert("members".into(), Value::Array(links.to_vec()));
        return Value::Object(out);
    }
    out.insert("userName".into(), json!(p.name));
    if let Some(dn) = &p.display_name {
        out.insert("displayName".into(), json!(dn));
    }
    out.insert("active".into(), json!(p.status == Status::Active));
    if let Some(t) = p.user_type {
        let scim = match t {
            UserType::Employee => "Employee",
            UserType::Contractor => "Contractor",
        };
        out.insert("userType".into(), json!(scim));
    }
    let mut enterprise = Map::new();
    for (key, value) in &p.attributes {
        match key.as_str() {
            "manager" => {
                enterprise.insert(key.clone(), json!({ "value": value }));
            }
            k if ENTERPRISE.contains(&k) => {
                enterprise.insert(key.clone(), value.clone());
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out.insert(ENTERPRISE_USER_SCHEMA.into(), Value::Object(enterprise));
    out.insert("groups".into(), Value::Array(links.to_vec()));
    Value::Object(out)
}

async fn seed(store: &Store) -> Directory {
    let tenant = Tenant {
        id: TenantId::generate(),
        name: "acme".into(),
        display_name: None,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    };
    let ctx = Ctx {
        tenant: tenant.id,
        actor: Actor::Root,
        now: t0(),
        request: RequestMeta::default(),
    };
    let u = |name: &str, i| principal(tenant.id, PrincipalKind::User, name, i);
    let mut users = vec![
        u("ada", 1),
        u("bob", 2),
        u("carol", 3),
        u("dave", 4),
        u("eve", 5),
        u("frank", 6),
    ];
    for i in 0..8 {
        users.push(u(&format!("user{i}"), 10 + i));
    }
    let (ada, bob) = (users[0].id.to_string(), users[1].id.to_string());
    let attrs = |v: Value| v.as_object().unwrap().clone();
    let people = [
        (
            Some("Ada Lovelace"),
            Status::Active,
            Some(UserType::Employee),
            Some("A-1"),
            attrs(json!({
                "name": {"givenName": "Ada", "familyName": "Lovelace"}, "title": "Countess",
                "emails": [{"value": "ada@example.com", "type": "work", "primary": true},
                           {"value": "ada@home.org", "type": "home"}],
                "department": "Engineering", "employeeNumber": "100", "manager": bob
            })),
        ),
        (
            Some("Bob Builder"),
            Status::Suspended,
            Some(UserType::Employee),
            Some("B-2"),
            attrs(json!({
                "emails": [{"value": "Bob@Example.org", "type": "work", "primary": false}],
                "department": "Sales", "title": "", "employeeNumber": "099"
            })),
        ),
        (None, Status::Active, None, None, Map::new()),
        (
            Some("dave"),
            Status::Active,
            Some(UserType::Contractor),
            Some("d-4"),
            attrs(json!({
                "name": {}, "emails": [], "nickName": "D", "costCenter": "50%_off"
            })),
        ),
        (
            Some("Eve O'Brien"),
            Status::Deprovisioned,
            Some(UserType::Employee),
            None,
            attrs(json!({
                "name": {"givenName": "Eve", "familyName": "O'Brien"}, "department": "engineering",
                "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}], "costCenter": "50 percent off"
            })),
        ),
        (
            Some("Frank"),
            Status::Active,
            Some(UserType::Employee),
            Some("F-6"),
            attrs(json!({
                "addresses": [{"country": "DE", "postalCode": "10115", "type": "work"},
                              {"country": "US", "type": "home"}],
                "manager": ada, "preferredLanguage": "de"
            })),
        ),
    ];
    for (p, (display, status, user_type, ext, attributes)) in users.iter_mut().zip(people) {
        p.display_name = display.map(str::to_owned);
        p.status = status;
        p.user_type = user_type;
        p.external_id = ext.map(str::to_owned);
        p.attributes = attributes;
    }
    for (i, p) in users.iter_mut().enumerate().skip(6) {
        p.display_name = Some(format!("User {i}"));
        p.user_type = Some(if i % 3 == 0 {
            UserType::Contractor
        } else {
            UserType::Employee
        });
        p.attributes = attrs(json!({
            "department": format!("Dept{}", i % 3),
            "title": format!("T{}", i % 2),
            "emails": [{"value": format!("u{i}@example.com"), "type": if i % 2 == 0 { "work" } else { "home" },
                        "primary": i % 4 == 0}]
        }));
    }
    let g = |name: &str, i| principal(tenant.id, PrincipalKind::Group, name, i);
    let mut groups = vec![g("Admins", 30), g("Staff", 31), g("Empty", 32)];
    groups[0].external_id = Some("G-1".into());

    let mut ids = std::collections::HashMap::new();
    let mut tx = store.write().await.unwrap();
    tenants::insert(&mut tx, &tenant).await.unwrap();
    for p in users.iter().chain(&groups) {
        principals::insert(&mut tx, p, &name_key(&p.name))
            .await
            .unwrap();
        ids.insert(p.name.clone(), p.id);
    }
    // (group, member, expiry): bob's membership of Admins has expired.
    let memberships = [
        ("Admins", "ada", None),
        ("Admins", "bob", Some(at(-1))),
        ("Staff", "ada", None),
        ("Staff", "carol", Some(at(3600))),
        ("Staff", "frank", None),
        ("Staff", "user7", None),
    ];
    for (group, member, expires_at) in memberships {
        let m = Membership {
            group_id: ids[group],
            member_id: ids[member],
            expires_at,
            created_at: t0(),
        };
        principals::upsert_membership(&mut tx, tenant.id, &m)
            .await
            .unwrap();
    }
    tx.commit(AuditEvent::new(&ctx, "seed", None))
        .await
        .unwrap();

    let live = |group: &str, member: &str| {
        memberships.iter().any(|&(g, m, exp)| {
            g == group && m == member && idplane_core::time::in_force(exp, t0())
        })
    };
    let link = |name: &str| json!({ "value": ids[name].to_string() });
    let users = users
        .into_iter()
        .map(|p| {
            let links: Vec<Value> = groups
                .iter()
                .filter(|g| live(&g.name, &p.name))
                .map(|g| link(&g.name))
                .collect();
            Resource {
                json: scim_json(&p, &links),
                principal: p,
            }
        })
        .collect();
    let groups = groups
        .into_iter()
        .map(|p| {
            let links: Vec<Value> = ids
                .keys()
                .filter(|m| live(&p.name, m))
                .map(|m| link(m))
                .collect();
            Resource {
                json: scim_json(&p, &links),
                principal: p,
            }
        })
        .collect();
    Directory {
        tenant: tenant.id,
        users,
        groups,
        ids,
    }
}

/// Filter atoms over every mapped attribute; `{name}` stands for that principal's id.
const USER_ATOMS: &[&str] = &[
    r#"userName eq "ada""#,
    r#"userName sw "B""#,
    r#"userName gt "carol""#,
    r#"userName co "a""#,
    r#"userName ew "E""#,
    r#"displayName co "o""#,
    r#"displayName eq "ADA LOVELACE""#,
    r#"displayName lt "E""#,
    r#"displayName le "dave""#,
    "displayName pr",
    r#"displayName ne "Frank""#,
    r#"externalId eq "A-1""#,
    r#"externalId eq "a-1""#,
    r#"externalId sw "d""#,
    r#"id eq "{ada}""#,
    r#"id ne "{bob}""#,
    "active eq true",
    "active eq false",
    "active ne true",
    r#"userType eq "Employee""#,
    r#"userType eq "contractor""#,
    r#"userType ne "Employee""#,
    r#"userType eq "Intern""#,
    "userType pr",
    "title pr",
    r#"title eq "Countess""#,
    "title eq null",
    r#"title sw "t""#,
    "name pr",
    r#"name.givenName sw "a""#,
    r#"name.familyName co "'""#,
    r#"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName gt "M""#,
    "emails pr",
    r#"emails co "EXAMPLE""#,
    r#"emails eq "ada@home.org""#,
    r#"emails.type eq "work""#,
    r#"emails.value ew ".ORG""#,
    r#"emails ne "ada@example.com""#,
    r#"emails[type eq "work" and primary eq true]"#,
    r#"emails[not (type eq "work")]"#,
    "emails[primary eq false]",
    "emails.primary pr",
    "phoneNumbers pr",
    r#"phoneNumbers.type eq "Mobile""#,
    r#"addresses[country eq "de" and postalCode pr]"#,
    r#"addresses.country eq "US""#,
    r#"addresses[type eq "home" and postalCode pr]"#,
    r#"nickName eq "d""#,
    "preferredLanguage pr",
    r#"department eq "Engineering""#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw "dept""#,
    r#"costCenter co "%_""#,
    r#"employeeNumber ge "100""#,
    r#"manager eq "{bob}""#,
    r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "{ada}""#,
    "manager pr",
    r#"meta.created gt "2026-01-01T00:02:00Z""#,
    r#"meta.lastModified le "2026-01-01T00:03:30Z""#,
    r#"meta.created eq "2026-01-01T01:00:00+01:00""#,
    r#"groups eq "{Admins}""#,
    r#"groups.value eq "{Staff}""#,
    r#"groups ne "{Staff}""#,
    r#"userName eq "x' OR '1'='1""#,
];

const GROUP_ATOMS: &[&str] = &[
    r#"displayName eq "admins""#,
    r#"displayName sw "S""#,
    r#"displayName gt "b""#,
    r#"members eq "{ada}""#,
    r#"members[value eq "{bob}"]"#,
    r#"members.value ne "{carol}""#,
    r#"members[value eq "{user7}"]"#,
    "externalId pr",
    r#"meta.created ge "2026-01-01T00:31:00Z""#,
    r#"id eq "{Empty}""#,
];

/// A random filter: atoms joined by and/or, negated, grouped.
#[derive(Clone, Debug)]
enum Tree {
    Atom(usize),
    And(Box<Tree>, Box<Tree>),
    Or(Box<Tree>, Box<Tree>),
    Not(Box<Tree>),
    Group(Box<Tree>),
}

impl Tree {
    /// The filter text; without parentheses around `and`/`or`, so the
    /// parser's precedence decides the shape (both sides see the same parse).
    fn render(&self, atoms: &[String]) -> String {
        match self {
            Tree::Atom(i) => atoms[*i].clone(),
            Tree::And(a, b) => format!("{} and {}", a.render(atoms), b.render(atoms)),
            Tree::Or(a, b) => format!("{} or {}", a.render(atoms), b.render(atoms)),
            Tree::Not(a) => format!("not ({})", a.render(atoms)),
            Tree::Group(a) => format!("({})", a.render(atoms)),
        }
    }
}

fn tree(atoms: usize) -> impl Strategy<Value = Tree> {
    (0..atoms)
        .prop_map(Tree::Atom)
        .prop_recursive(4, 16, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Tree::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Tree::Or(Box::new(a), Box::new(b))),
                inner.clone().prop_map(|a| Tree::Not(Box::new(a))),
                inner.prop_map(|a| Tree::Group(Box::new(a))),
            ]
        })
}

/// Attributes whose strings compare case-sensitively (RFC 7643: ids and references).
fn case_exact(path: &AttrPath) -> bool {
    let exact = ["id", "externalId", "manager", "members", "groups"];
    exact.iter().any(|a| path.attr.eq_ignore_ascii_case(a))
}

impl Directory {
    fn atoms(&self, templates: &[&str]) -> Vec<String> {
        templates
            .iter()
            .map(|t| {
                self.ids.iter().fold((*t).to_owned(), |s, (name, id)| {
                    s.replace(&format!("{{{name}}}"), &id.to_string())
                })
            })
            .collect()
    }

    /// The ids the database finds for `filter`, and those `Filter::matches` finds.
    async fn both(
        &self,
        store: &Store,
        kind: ResourceKind,
        filter: &str,
    ) -> (BTreeSet<PrincipalId>, BTreeSet<PrincipalId>) {
        let parsed = parse_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let predicate = to_predicate(kind, &parsed).unwrap_or_else(|e| panic!("{filter}: {e}"));
        let (principal_kind, resources) = match kind {
            ResourceKind::User => (PrincipalKind::User, &self.users),
            ResourceKind::Group => (PrincipalKind::Group, &self.groups),
        };
        let mut conn = store.read().await.unwrap();
        let (total, found) = query(
            &mut conn,
            self.tenant,
            principal_kind,
            &predicate,
            None,
            0,
            1000,
            t0(),
        )
        .await
        .unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(usize::try_from(total).unwrap(), found.len());
        let sql = found.into_iter().map(|p| p.id).collect();
        let memory = resources
            .iter()
            .filter(|r| parsed.matches(&r.json, &case_exact))
            .map(|r| r.principal.id)
            .collect();
        (sql, memory)
    }
}

async fn sql_agrees_with_in_memory_evaluation(store: Store) {
    let dir = seed(&store).await;
    let handle = tokio::runtime::Handle::current();
    for (kind, templates) in [
        (ResourceKind::User, USER_ATOMS),
        (ResourceKind::Group, GROUP_ATOMS),
    ] {
        let atoms = dir.atoms(templates);
        // Each atom alone, and none of them trivially empty or full overall.
        let mut nontrivial = 0;
        for atom in &atoms {
            let (sql, memory) = dir.both(&store, kind, atom).await;
            assert_eq!(sql, memory, "{atom}");
            let everyone = match kind {
                ResourceKind::User => dir.users.len(),
                ResourceKind::Group => dir.groups.len(),
            };
            if !sql.is_empty() && sql.len() < everyone {
                nontrivial += 1;
            }
        }
        assert!(
            nontrivial * 10 >= atoms.len() * 8,
            "most atoms should split the directory"
        );

        let config = Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        let result = runner.run(&tree(atoms.len()), |t| {
            let filter = t.render(&atoms);
            let (sql, memory) =
                tokio::task::block_in_place(|| handle.block_on(dir.both(&store, kind, &filter)));
            prop_assert_eq!(sql, memory, "{}", filter);
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sql_agrees_with_in_memory_evaluation() {
    let (url, _dir) = support::temp_sqlite();
    let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
    // On a worker thread: the property runner blocks in place for each case.
    tokio::spawn(sql_agrees_with_in_memory_evaluation(store))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sql_agrees_with_in_memory_evaluation() {
    let Some(url) = std::env::var("IDPLANE_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        eprintln!("skipped: IDPLANE_TEST_DATABASE_URL is not set (PostgreSQL)");
        return;
    };
    let options = StoreOptions {
        schema: Some(format!("t_{}", uuid::Uuid::now_v7().simple())),
        max_connections: Some(5),
        ..StoreOptions::default()
    };
    let store = Store::open(&url, &options).await.unwrap();
    // On a worker thread: the property runner blocks in place for each case.
    tokio::spawn(sql_agrees_with_in_memory_evaluation(store))
        .await
        .unwrap();
}
