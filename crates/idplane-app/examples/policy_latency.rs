//! In-process latency of Cedar decisions, indexed and full, over a generated
//! workload: 1,000 policies and 10,000 entities across three applications.
//!
//! `cargo run --release --example policy_latency -p idplane-app`

use std::collections::{BTreeSet, HashMap, HashSet};
use std::error::Error;
use std::fmt::Write as _;
use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{
    Context, Decision, Entities, Entity, EntityUid, Policy, PolicyId, PolicySet, Request, Response,
    RestrictedExpression,
};
use idplane_app::policy::index::IndexedPolicies;

/// The server's allocator, so these figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Outcome<T> = Result<T, Box<dyn Error>>;

const APPS: &[&str] = &["Crm", "Docs", "Billing"];
const ACTIONS_PER_APP: usize = 20;
const ROLES_PER_APP: usize = 20;
const FOLDERS_PER_APP: usize = 100;
const DOCUMENTS_PER_APP: usize = 400;
const GROUPS: usize = 200;
const ENTITIES: usize = 10_000;
const POLICIES: usize = 1_000;
const REQUESTS: usize = 20_000;
/// Requests also decided by the full set, to check that both agree.
const CHECKED: usize = 2_000;
const INDEXED_DECISIONS: usize = 200_000;
const FULL_DECISIONS: usize = 4_000;

/// SplitMix64: a reproducible workload without a random-number dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % bound as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn app(&mut self) -> &'static str {
        APPS[self.below(APPS.len())]
    }
}

fn user(n: usize) -> String {
    format!(r#"User::"u{n}""#)
}
fn group(n: usize) -> String {
    format!(r#"Group::"g{n}""#)
}
fn role(app: &str, n: usize) -> String {
    format!(r#"{app}::Role::"r{n}""#)
}
fn action(app: &str, n: usize) -> String {
    format!(r#"{app}::Action::"a{n}""#)
}
fn action_group(app: &str, name: &str) -> String {
    format!(r#"{app}::Action::"{name}""#)
}
fn folder(app: &str, n: usize) -> String {
    format!(r#"{app}::Folder::"f{n}""#)
}
fn document(app: &str, n: usize) -> String {
    format!(r#"{app}::Document::"d{n}""#)
}

fn uid(text: &str) -> Outcome<EntityUid> {
    Ok(EntityUid::from_str(text)?)
}

fn long(value: usize) -> RestrictedExpression {
    RestrictedExpression::new_long(value as i64)
}

fn entity(
    id: &str,
    attrs: Vec<(&str, RestrictedExpression)>,
    parents: &[String],
) -> Outcome<Entity> {
    let attrs: HashMap<String, RestrictedExpression> =
        attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let parents = parents
        .iter()
        .map(|p| uid(p))
        .collect::<Outcome<HashSet<_>>>()?;
    Ok(Entity::new(uid(id)?, attrs, parents)?)
}

/// Users in groups and roles, groups in roles, documents in a folder tree,
/// actions in read and write groups; some users lack `level` and most
/// documents lack `classification`, so some conditions error. Returns the
/// entities and the number of users.
fn entities(rng: &mut Rng) -> Outcome<(Entities, usize)> {
    let mut all = Vec::new();
    for app in APPS {
        let read = action_group(app, "read");
        let write = action_group(app, "write");
        all.push(entity(&read, vec![], &[])?);
        all.push(entity(&write, vec![], &[])?);
        for n in 0..ACTIONS_PER_APP {
            let parent = if n < ACTIONS_PER_APP / 2 {
                &read
            } else {
                &write
            };
            all.push(entity(
                &action(app, n),
                vec![],
                std::slice::from_ref(parent),
            )?);
        }
        for n in 0..ROLES_PER_APP {
            all.push(entity(&role(app, n), vec![], &[])?);
        }
        for n in 0..FOLDERS_PER_APP {
            let parents: Vec<String> = (n > 0).then(|| folder(app, n / 4)).into_iter().collect();
            all.push(entity(
                &folder(app, n),
                vec![("level", long(rng.below(5)))],
                &parents,
            )?);
        }
        for n in 0..DOCUMENTS_PER_APP {
            let mut attrs = vec![("level", long(rng.below(5)))];
            if rng.chance(20) {
                attrs.push((
                    "classification",
                    RestrictedExpression::new_string("secret".into()),
                ));
            }
            let parent = folder(app, rng.below(FOLDERS_PER_APP));
            all.push(entity(&document(app, n), attrs, &[parent])?);
        }
    }
    for n in 0..GROUPS {
        let parent = role(rng.app(), rng.below(ROLES_PER_APP));
        all.push(entity(&group(n), vec![], &[parent])?);
    }
    let users = ENTITIES - all.len();
    for n in 0..users {
        let mut parents: Vec<String> = (0..1 + rng.below(3))
            .map(|_| group(rng.below(GROUPS)))
            .collect();
        for _ in 0..1 + rng.below(2) {
            parents.push(role(rng.app(), rng.below(ROLES_PER_APP)));
        }
        let mut attrs = vec![("clearance", long(rng.below(4)))];
        if rng.chance(90) {
            attrs.push(("level", long(rng.below(6))));
        }
        all.push(entity(&user(n), attrs, &parents)?);
    }
    Ok((Entities::from_entities(all, None)?, users))
}

/// Mostly role grants on one action and resource type, per-user grants on
/// listed actions in a folder, conditional forbids on groups, and a few
/// grants on action groups.
fn policy_text(rng: &mut Rng, users: usize) -> String {
    let app = rng.app();
    let resource_type = if rng.chance(70) { "Document" } else { "Folder" };
    let some_action = |rng: &mut Rng| action(app, rng.below(ACTIONS_PER_APP));
    match rng.below(100) {
        0..55 => {
            let condition = if rng.chance(50) {
                "principal.level >= resource.level"
            } else {
                "context.mfa && resource.level < 4"
            };
            format!(
                "permit(principal in {}, action == {}, resource is {app}::{resource_type}) when {{ {condition} }};",
                role(app, rng.below(ROLES_PER_APP)),
                some_action(rng),
            )
        }
        55..80 => format!(
            "permit(principal == {}, action in [{}, {}], resource in {});",
            user(rng.below(users)),
            some_action(rng),
            some_action(rng),
            folder(app, rng.below(FOLDERS_PER_APP)),
        ),
        80..95 => format!(
            r#"forbid(principal in {}, action == {}, resource) when {{ resource.classification == "secret" && principal.clearance < 2 }};"#,
            group(rng.below(GROUPS)),
            some_action(rng),
        ),
        _ => format!(
            "permit(principal in {}, action in {}, resource in {}) unless {{ context.hour < 6 }};",
            role(app, rng.below(ROLES_PER_APP)),
            action_group(app, if rng.chance(50) { "read" } else { "write" }),
            folder(app, rng.below(FOLDERS_PER_APP / 4)),
        ),
    }
}

/// Evaluated for every request, indexed or not.
const UNCONSTRAINED: &[&str] = &[
    "forbid(principal, action, resource) when { principal has suspended && principal.suspended };",
    r#"forbid(principal, action, resource) when { context has network && context.network == "blocked" };"#,
    "permit(principal, action, resource) when { principal has superuser && principal.superuser };",
];

fn policies(rng: &mut Rng, users: usize) -> Outcome<PolicySet> {
    let texts = UNCONSTRAINED
        .iter()
        .map(|text| (*text).to_owned())
        .chain((UNCONSTRAINED.len()..POLICIES).map(|_| policy_text(rng, users)));
    let policies = texts
        .enumerate()
        .map(|(n, text)| Ok(Policy::parse(Some(PolicyId::new(format!("p{n}"))), text)?))
        .collect::<Outcome<Vec<_>>>()?;
    Ok(PolicySet::from_policies(policies)?)
}

/// A user acting on a document (or folder) of one application.
fn requests(rng: &mut Rng, users: usize) -> Outcome<Vec<Request>> {
    (0..REQUESTS)
        .map(|_| {
            let app = rng.app();
            let resource = if rng.chance(80) {
                document(app, rng.below(DOCUMENTS_PER_APP))
            } else {
                folder(app, rng.below(FOLDERS_PER_APP))
            };
            let context = Context::from_pairs([
                (
                    "mfa".to_owned(),
                    RestrictedExpression::new_bool(rng.chance(70)),
                ),
                ("hour".to_owned(), long(rng.below(24))),
            ])?;
            let principal = uid(&user(rng.below(users)))?;
            let action = uid(&action(app, rng.below(ACTIONS_PER_APP)))?;
            Ok(Request::new(
                principal,
                action,
                uid(&resource)?,
                context,
                None,
            )?)
        })
        .collect()
}

/// Decision, determining policies and erroring policies.
fn summary(response: &Response) -> (Decision, BTreeSet<String>, Vec<String>) {
    let diagnostics = response.diagnostics();
    let mut errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
    errors.sort();
    let reasons = diagnostics.reason().map(ToString::to_string).collect();
    (response.decision(), reasons, errors)
}

#[derive(Debug)]
struct Timing {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    per_second: f64,
}

/// Times `count` decisions, one at a time, after a tenth as many to warm up.
fn time(requests: &[Request], count: usize, decide: impl Fn(&Request) -> Response) -> Timing {
    for request in requests.iter().cycle().take(count / 10) {
        black_box(decide(request));
    }
    let mut latencies = Vec::with_capacity(count);
    let started = Instant::now();
    for request in requests.iter().cycle().take(count) {
        let before = Instant::now();
        black_box(decide(request));
        latencies.push(before.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |quantile: f64| {
        let rank = (latencies.len() as f64 * quantile) as usize;
        latencies[rank.min(latencies.len() - 1)]
    };
    Timing {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        per_second: count as f64 / elapsed.as_secs_f64(),
    }
}

fn main() -> Outcome<()> {
    let mut rng = Rng(5);
    let (entities, users) = entities(&mut rng)?;
    let index = IndexedPolicies::new(policies(&mut rng, users)?);
    let requests = requests(&mut rng, users)?;

    let mut allowed = 0;
    let mut with_errors = 0;
    for request in &requests[..CHECKED] {
        let indexed = summary(&index.is_authorized(request, &entities));
        if indexed != summary(&index.is_authorized_full(request, &entities)) {
            return Err(format!("indexed and full decisions differ for {request}").into());
        }
        allowed += usize::from(indexed.0 == Decision::Allow);
        with_errors += usize::from(!indexed.2.is_empty());
    }

    let indexed = time(&requests, INDEXED_DECISIONS, |r| {
        index.is_authorized(r, &entities)
    });
    let full = time(&requests, FULL_DECISIONS, |r| {
        index.is_authorized_full(r, &entities)
    });
    let mut report = format!(
        "{} policies, {} entities, {} distinct requests; of the first {CHECKED}, {allowed} allowed \
         and {with_errors} with evaluation errors, indexed and full agreeing on all\n\n",
        index.policies().num_of_policies(),
        entities.len(),
        requests.len(),
    );
    report.push_str("| evaluation | decisions timed | p50 | p99 | p99.9 | decisions/s |\n");
    report.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for (name, count, timing) in [
        ("indexed", INDEXED_DECISIONS, indexed),
        ("full", FULL_DECISIONS, full),
    ] {
        writeln!(
            report,
            "| {name} | {count} | {:.1} µs | {:.1} µs | {:.1} µs | {:.0} |",
            timing.p50.as_secs_f64() * 1e6,
            timing.p99.as_secs_f64() * 1e6,
            timing.p999.as_secs_f64() * 1e6,
            timing.per_second,
        )?;
    }
    print!("{report}");
    Ok(())
}
