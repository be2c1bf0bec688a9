//! Planning: the changes that make the live state match a document.
//!
//! Pure: it compares two [`Document`]s (the desired one as written, the live
//! one as read from the server) and never talks to the server. Desired values
//! are normalised the way the server normalises them, so that what the server
//! would store anyway is not a change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use idplane_core::Timestamp;
use idplane_core::directory::{
    PrincipalKind, name_key, normalize_email, normalize_external_id, normalize_name,
    normalize_tenant_name, normalize_text,
};
use serde_json::{Map, Value, json};

use super::doc::{
    Assignment, Document, Entitlement, Field, Group, Member, NonHuman, OAuthClient, Role, Tenant,
    User,
};
use crate::client::api::{parse_kind, reference};

/// The tenant that always exists and is never deleted.
pub const DEFAULT_TENANT: &str = "default";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    Tenant,
    User,
    Group,
    Role,
    ServiceAccount,
    Agent,
    /// A membership: `name` is the group, `other` the member.
    Member,
    /// A role assignment: `name` is the role, `other` the principal.
    Assignment,
    /// An OAuth client: `name` is its `client_id`.
    Client,
    /// The tenant's authorization policy (a new version).
    Policy,
}

impl Object {
    pub fn as_str(self) -> &'static str {
        match self {
            Object::Tenant => "tenant",
            Object::User => "user",
            Object::Group => "group",
            Object::Role => "role",
            Object::ServiceAccount => "service_account",
            Object::Agent => "agent",
            Object::Member => "member",
            Object::Assignment => "assignment",
            Object::Client => "client",
            Object::Policy => "policy",
        }
    }

    /// The principal kind of a principal object.
    pub fn principal_kind(self) -> Option<PrincipalKind> {
        match self {
            Object::User => Some(PrincipalKind::User),
            Object::Group => Some(PrincipalKind::Group),
            Object::ServiceAccount => Some(PrincipalKind::ServiceAccount),
            Object::Agent => Some(PrincipalKind::Agent),
            _ => None,
        }
    }
}

/// One change to make.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub op: Op,
    pub object: Object,
    pub tenant: String,
    /// The object's name; the group of a member, the role of an assignment.
    pub name: String,
    /// The member of a membership, the principal of an assignment.
    pub other: Option<String>,
    /// The fields an update changes.
    pub fields: Vec<&'static str>,
    /// The request body: the new object, the merge patch, or the grant.
    pub body: Value,
    /// The live object's id (for members and assignments to create: the
    /// group's id, if it exists; for members to remove: the member's id).
    pub id: Option<String>,
    /// The live object's version, for `If-Match`.
    pub version: Option<i64>,
    /// Whether a grant to remove has already expired.
    pub expired: bool,
}

impl Change {
    fn new(op: Op, object: Object, tenant: &str, name: &str) -> Self {
        Self {
            op,
            object,
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            other: None,
            fields: Vec::new(),
            body: Value::Null,
            id: None,
            version: None,
            expired: false,
        }
    }

    fn with_body(mut self, body: Value) -> Self {
        self.body = body;
        self
    }

    fn with_other(mut self, other: String) -> Self {
        self.other = Some(other);
        self
    }

    fn with_live(mut self, id: Option<&String>, version: Option<i64>) -> Self {
        self.id = id.cloned();
        self.version = version;
        self
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.op {
            Op::Create => '+',
            Op::Update => '~',
            Op::Delete => '-',
        };
        let other = self.other.as_deref().unwrap_or("?");
        match self.object {
            Object::Member => write!(f, "{sign} member {other} of group {}", self.name)?,
            Object::Assignment => write!(f, "{sign} assignment {} to {other}", self.name)?,
            object => write!(f, "{sign} {} {}", object.as_str(), self.name)?,
        }
        if !self.fields.is_empty() {
            write!(f, ": {}", self.fields.join(", "))?;
        }
        if self.expired {
            write!(f, " (expired)")?;
        }
        if self.object != Object::Tenant && self.tenant != DEFAULT_TENANT {
            write!(f, " (tenant {})", self.tenant)?;
        }
        Ok(())
    }
}

/// The changes, in the order to make them, that turn `live` into `desired`.
/// With `prune`, objects missing from the document's lists are deleted.
/// Every problem in the document is reported at once.
pub fn plan(desired: &Document, live: &Document, prune: bool) -> anyhow::Result<Vec<Change>> {
    let mut errors = Errors::default();
    let desired = normalize(desired, &mut errors);
    let live_tenants: BTreeMap<&str, &Tenant> =
        live.tenants.iter().map(|t| (t.name.as_str(), t)).collect();
    let empty = Tenant::default();
    let mut tenant_changes = Vec::new();
    let mut upserts = Vec::new();
    let mut deletions = Vec::new();
    let mut seen = BTreeSet::new();
    for tenant in &desired.tenants {
        if !seen.insert(tenant.name.as_str()) {
            errors.push(format!("tenant `{}` is described twice", tenant.name));
            continue;
        }
        let live_tenant = live_tenants.get(tenant.name.as_str()).copied();
        match live_tenant {
            None => {
                let mut body = json!({"name": tenant.name});
                if let (Some(map), Some(d)) = (body.as_object_mut(), tenant.display_name.value()) {
                    map.insert("display_name".into(), d.clone().into());
                }
                tenant_changes.push(
                    Change::new(Op::Create, Object::Tenant, &tenant.name, &tenant.name)
                        .with_body(body),
                );
            }
            Some(l) => {
                let mut diff = Diff::default();
                diff.text("display_name", &tenant.display_name, &l.display_name);
                if let Some(change) =
                    diff.into_update(Object::Tenant, &tenant.name, &tenant.name, None, None)
                {
                    tenant_changes.push(change);
                }
            }
        }
        let mut planner =
            TenantPlanner::new(tenant, live_tenant.unwrap_or(&empty), prune, &mut errors);
        planner.plan();
        upserts.extend(planner.upserts);
        deletions.extend(planner.deletion_phases.into_iter().rev().flatten());
    }
    let mut tenant_deletions = Vec::new();
    if prune {
        for l in &live.tenants {
            if l.name != DEFAULT_TENANT && !seen.contains(l.name.as_str()) {
                tenant_deletions.push(Change::new(Op::Delete, Object::Tenant, &l.name, &l.name));
            }
        }
    }
    errors.into_result()?;
    Ok(tenant_changes
        .into_iter()
        .chain(upserts)
        .chain(deletions)
        .chain(tenant_deletions)
        .collect())
}

/// Problems found in the document.
#[derive(Debug, Default)]
struct Errors(Vec<String>);

impl Errors {
    fn push(&mut self, message: String) {
        self.0.push(message);
    }

    fn into_result(self) -> anyhow::Result<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(anyhow::anyhow!("{}", self.0.join(""))),
            n => Err(anyhow::anyhow!("{n} problems: {}", self.0.join("; "))),
        }
    }
}

/// A reference to a principal: its kind and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub kind: PrincipalKind,
    pub name: String,
}

impl Ref {
    /// Parses `name` (a user), or `kind:name`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (kind, name) = match text.split_once(':') {
            Some((k, n)) => (
                parse_kind(k).ok_or_else(|| {
                    format!("`{text}`: `{k}` is not user, group, service_account or agent")
                })?,
                n,
            ),
            None => (PrincipalKind::User, text),
        };
        let name = normalize_name("name", name).map_err(|e| format!("`{text}`: {e}"))?;
        Ok(Self { kind, name })
    }

    /// What identifies the principal: kind and case-folded name.
    pub fn key(&self) -> RefKey {
        (self.kind.as_str(), name_key(&self.name))
    }

    /// The canonical text: a bare username, or `kind:name`.
    pub fn canonical(&self) -> String {
        reference(self.kind, &self.name)
    }
}

/// A principal's identity within a tenant.
pub type RefKey = (&'static str, String);

/// The identity of a principal reference as written (unparseable ones are
/// their own key, so that they only equal themselves).
fn ref_key(text: &str) -> RefKey {
    Ref::parse(text).map_or_else(|_| ("?", text.to_owned()), |r| r.key())
}

/// The desired document with names, texts, emails, references and instants
/// normalised as the server would store them.
fn normalize(doc: &Document, errors: &mut Errors) -> Document {
    let mut doc = doc.clone();
    for tenant in &mut doc.tenants {
        match normalize_tenant_name(&tenant.name) {
            Ok(n) => tenant.name = n,
            Err(e) => errors.push(format!("tenant `{}`: {e}", tenant.name)),
        }
        let t = tenant.name.clone();
        let mut check = |what: String, r: Result<(), String>| {
            if let Err(e) = r {
                errors.push(format!("tenant `{t}`: {what}: {e}"));
            }
        };
        check(
            "display_name".into(),
            text_field(&mut tenant.display_name, "display_name"),
        );
        for u in tenant.users.iter_mut().flatten() {
            let what = format!("user `{}`", u.username);
            check(what.clone(), name(&mut u.username, "username"));
            check(
                what.clone(),
                text_field(&mut u.display_name, "display_name"),
            );
            check(
                what.clone(),
                map_field(&mut u.email, |e| {
                    normalize_email(e).map(Some).map_err(|e| e.to_string())
                }),
            );
            check(
                what.clone(),
                map_field(&mut u.external_id, |e| {
                    normalize_external_id(Some(e)).map_err(|e| e.to_string())
                }),
            );
            check(
                what.clone(),
                map_field(&mut u.sponsor, |s| user_ref(s).map(Some)),
            );
            time_field(&mut u.end_date);
        }
        for g in tenant.groups.iter_mut().flatten() {
            let what = format!("group `{}`", g.name);
            check(what.clone(), name(&mut g.name, "name"));
            check(
                what.clone(),
                text_field(&mut g.display_name, "display_name"),
            );
            check(
                what.clone(),
                map_field(&mut g.external_id, |e| {
                    normalize_external_id(Some(e)).map_err(|e| e.to_string())
                }),
            );
            for m in g.members.iter_mut().flatten() {
                match Ref::parse(&m.member) {
                    Ok(r) => m.member = r.canonical(),
                    Err(e) => check(what.clone(), Err(format!("member {e}"))),
                }
                m.expires_at = m.expires_at.map(millis);
            }
        }
        for r in tenant.roles.iter_mut().flatten() {
            let what = format!("role `{}`", r.name);
            check(what.clone(), name(&mut r.name, "name"));
            check(what.clone(), text_field(&mut r.description, "description"));
            if let Some(list) = &mut r.entitlements {
                let mut set = BTreeSet::new();
                for e in list.iter() {
                    match (
                        normalize_name("resource", &e.resource),
                        normalize_name("permission", &e.permission),
                    ) {
                        (Ok(resource), Ok(permission)) => {
                            set.insert(Entitlement {
                                resource,
                                permission,
                            });
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            check(what.clone(), Err(format!("entitlement: {e}")))
                        }
                    }
                }
                *list = set.into_iter().collect();
            }
        }
        for a in tenant.assignments.iter_mut().flatten() {
            let what = format!("assignment of `{}` to `{}`", a.role, a.principal);
            check(what.clone(), name(&mut a.role, "role"));
            match Ref::parse(&a.principal) {
                Ok(r) => a.principal = r.canonical(),
                Err(e) => check(what.clone(), Err(format!("principal {e}"))),
            }
            a.expires_at = a.expires_at.map(millis);
        }
        for (kind, list) in [
            ("service account", &mut tenant.service_accounts),
            ("agent", &mut tenant.agents),
        ] {
            for n in list.iter_mut().flatten() {
                let what = format!("{kind} `{}`", n.name);
                check(what.clone(), name(&mut n.name, "name"));
                check(
                    what.clone(),
                    text_field(&mut n.display_name, "display_name"),
                );
                check(
                    what.clone(),
                    map_field(&mut n.external_id, |e| {
                        normalize_external_id(Some(e)).map_err(|e| e.to_string())
                    }),
                );
                match user_ref(&n.owner) {
                    Ok(o) => n.owner = o,
                    Err(e) => check(what.clone(), Err(format!("owner {e}"))),
                }
                match normalize_text("purpose", Some(&n.purpose)) {
                    Ok(Some(p)) => n.purpose = p,
                    Ok(None) => check(what.clone(), Err("purpose must not be empty".into())),
                    Err(e) => check(what.clone(), Err(e.to_string())),
                }
                time_field(&mut n.expires_at);
            }
        }
        for c in tenant.clients.iter_mut().flatten() {
            c.client_id = c.client_id.trim().to_owned();
            let what = format!("client `{}`", c.client_id);
            if c.client_id.is_empty() {
                check(what.clone(), Err("client_id must not be empty".into()));
            }
            match normalize_text("name", Some(&c.name)) {
                Ok(Some(n)) => c.name = n,
                Ok(None) => check(what.clone(), Err("name must not be empty".into())),
                Err(e) => check(what.clone(), Err(e.to_string())),
            }
            for uris in [&mut c.redirect_uris, &mut c.post_logout_redirect_uris]
                .into_iter()
                .flatten()
            {
                let mut unique: Vec<String> = Vec::new();
                for u in uris.iter() {
                    if !unique.contains(u) {
                        unique.push(u.clone());
                    }
                }
                *uris = unique;
            }
            if let Some(scopes) = &mut c.scopes {
                *scopes = sorted_set(scopes).into_iter().map(str::to_owned).collect();
            }
            if let Field::Set(uri) = &mut c.jwks_uri {
                *uri = uri.trim().to_owned();
            }
        }
    }
    doc
}

fn name(value: &mut String, field: &'static str) -> Result<(), String> {
    *value = normalize_name(field, value).map_err(|e| e.to_string())?;
    Ok(())
}

/// Normalises free text; empty text is `null`.
fn text_field(field: &mut Field<String>, name: &'static str) -> Result<(), String> {
    map_field(field, |t| {
        normalize_text(name, Some(t)).map_err(|e| e.to_string())
    })
}

/// Replaces a set value by `f` of it; `None` makes it `null`.
fn map_field<T>(
    field: &mut Field<T>,
    f: impl FnOnce(&T) -> Result<Option<T>, String>,
) -> Result<(), String> {
    if let Field::Set(v) = field {
        *field = f(v)?.map_or(Field::Null, Field::Set);
    }
    Ok(())
}

fn time_field(field: &mut Field<Timestamp>) {
    if let Field::Set(t) = field {
        *t = millis(*t);
    }
}

/// The server keeps instants to the millisecond.
fn millis(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

/// A reference that must name a user, canonicalised.
fn user_ref(text: &str) -> Result<String, String> {
    let r = Ref::parse(text)?;
    if r.kind != PrincipalKind::User {
        return Err(format!("`{text}` is not a user"));
    }
    Ok(r.canonical())
}

/// The names of one kind of object, desired and live.
#[derive(Debug, Default)]
struct Names {
    desired: BTreeSet<String>,
    live: BTreeSet<String>,
    /// Whether the document lists this kind (so unlisted ones may be pruned).
    managed: bool,
}

impl Names {
    fn new<'a>(
        desired: Option<impl Iterator<Item = &'a String>>,
        live: Option<impl Iterator<Item = &'a String>>,
    ) -> Self {
        Self {
            managed: desired.is_some(),
            desired: desired.into_iter().flatten().map(|n| name_key(n)).collect(),
            live: live.into_iter().flatten().map(|n| name_key(n)).collect(),
        }
    }

    /// Whether the object will be deleted.
    fn deleted(&self, key: &str, prune: bool) -> bool {
        prune && self.managed && self.live.contains(key) && !self.desired.contains(key)
    }

    /// Whether the object will exist after the changes.
    fn available(&self, key: &str, prune: bool) -> bool {
        self.desired.contains(key) || (self.live.contains(key) && !self.deleted(key, prune))
    }
}

/// Plans one tenant.
struct TenantPlanner<'a> {
    desired: &'a Tenant,
    live: &'a Tenant,
    prune: bool,
    errors: &'a mut Errors,
    users: Names,
    groups: Names,
    roles: Names,
    service_accounts: Names,
    agents: Names,
    upserts: Vec<Change>,
    /// Deletions, one list per kind in creation order (made in reverse).
    deletion_phases: Vec<Vec<Change>>,
}

impl<'a> TenantPlanner<'a> {
    fn new(desired: &'a Tenant, live: &'a Tenant, prune: bool, errors: &'a mut Errors) -> Self {
        let nh = |list: &'a Option<Vec<NonHuman>>| list.as_ref().map(|l| l.iter().map(|n| &n.name));
        Self {
            users: Names::new(
                desired
                    .users
                    .as_ref()
                    .map(|l| l.iter().map(|u| &u.username)),
                live.users.as_ref().map(|l| l.iter().map(|u| &u.username)),
            ),
            groups: Names::new(
                desired.groups.as_ref().map(|l| l.iter().map(|g| &g.name)),
                live.groups.as_ref().map(|l| l.iter().map(|g| &g.name)),
            ),
            roles: Names::new(
                desired.roles.as_ref().map(|l| l.iter().map(|r| &r.name)),
                live.roles.as_ref().map(|l| l.iter().map(|r| &r.name)),
            ),
            service_accounts: Names::new(nh(&desired.service_accounts), nh(&live.service_accounts)),
            agents: Names::new(nh(&desired.agents), nh(&live.agents)),
            desired,
            live,
            prune,
            errors,
            upserts: Vec::new(),
            deletion_phases: Vec::new(),
        }
    }

    fn tenant(&self) -> &'a str {
        &self.desired.name
    }

    fn error(&mut self, message: String) {
        self.errors
            .push(format!("tenant `{}`: {message}", self.desired.name));
    }

    fn names(&self, kind: PrincipalKind) -> &Names {
        match kind {
            PrincipalKind::User => &self.users,
            PrincipalKind::Group => &self.groups,
            PrincipalKind::ServiceAccount => &self.service_accounts,
            PrincipalKind::Agent => &self.agents,
        }
    }

    /// Checks that a (canonical) reference names a principal that will exist.
    fn check_ref(&mut self, what: &str, text: &str) {
        let Ok(r) = Ref::parse(text) else { return };
        if !self.names(r.kind).available(&name_key(&r.name), self.prune) {
            let why = if self.names(r.kind).deleted(&name_key(&r.name), self.prune) {
                "is deleted by --prune"
            } else {
                "does not exist and is not in the file"
            };
            self.error(format!("{what}: {} `{}` {why}", r.kind.as_str(), r.name));
        }
    }

    fn plan(&mut self) {
        self.check_duplicates();
        self.plan_users();
        self.plan_groups();
        self.plan_roles();
        self.plan_non_human(Object::ServiceAccount);
        self.plan_non_human(Object::Agent);
        self.plan_clients();
        self.plan_members();
        self.plan_assignments();
        self.plan_policy();
        self.check_dependants();
    }

    /// A bundle that differs from the active one is pushed as a new version
    /// (there is nothing to delete: versions are immutable).
    fn plan_policy(&mut self) {
        let Some(want) = self.desired.policy.as_ref().and_then(|p| p.bundle.as_ref()) else {
            return;
        };
        let have = self.live.policy.as_ref().and_then(|p| p.bundle.as_ref());
        if have == Some(want) {
            return;
        }
        let op = if have.is_some() {
            Op::Update
        } else {
            Op::Create
        };
        let tenant = self.tenant();
        self.upserts.push(
            Change::new(op, Object::Policy, tenant, "policy")
                .with_body(json!({"message": "idplane apply", "bundle": want})),
        );
    }

    fn check_duplicates(&mut self) {
        let d = self.desired;
        let lists: [(&str, Vec<&String>); 5] = [
            (
                "user",
                d.users.iter().flatten().map(|u| &u.username).collect(),
            ),
            (
                "group",
                d.groups.iter().flatten().map(|g| &g.name).collect(),
            ),
            ("role", d.roles.iter().flatten().map(|r| &r.name).collect()),
            (
                "service account",
                d.service_accounts
                    .iter()
                    .flatten()
                    .map(|n| &n.name)
                    .collect(),
            ),
            (
                "agent",
                d.agents.iter().flatten().map(|n| &n.name).collect(),
            ),
        ];
        for (what, names) in lists {
            let mut seen = BTreeSet::new();
            for n in names {
                if !seen.insert(name_key(n)) {
                    self.error(format!("{what} `{n}` is listed twice"));
                }
            }
        }
    }

    fn plan_users(&mut self) {
        let tenant = self.tenant();
        let live: BTreeMap<String, &User> = self
            .live
            .users
            .iter()
            .flatten()
            .map(|u| (name_key(&u.username), u))
            .collect();
        let mut upserts = Vec::new();
        for u in self.desired.users.iter().flatten() {
            if let Field::Set(s) = &u.sponsor {
                self.check_ref(&format!("user `{}`: sponsor", u.username), s);
            }
            let key = name_key(&u.username);
            let change = match live.get(&key) {
                None => Some(
                    Change::new(Op::Create, Object::User, tenant, &u.username)
                        .with_body(user_body(u)),
                ),
                Some(l) => {
                    let mut diff = Diff::default();
                    diff.value("username", u.username != l.username, || {
                        u.username.clone().into()
                    });
                    diff.text("display_name", &u.display_name, &l.display_name);
                    diff.text("email", &u.email, &l.email);
                    diff.text("external_id", &u.external_id, &l.external_id);
                    diff.option("user_type", &u.user_type, &l.user_type);
                    diff.time("end_date", &u.end_date, &l.end_date);
                    diff.reference("sponsor", &u.sponsor, &l.sponsor);
                    diff.option("status", &u.status, &l.status);
                    diff.attributes(&u.attributes, &l.attributes);
                    diff.into_update(
                        Object::User,
                        tenant,
                        &u.username,
                        l.meta.id.as_ref(),
                        l.meta.version,
                    )
                }
            };
            if let Some(change) = change {
                let after = u
                    .sponsor
                    .value()
                    .map(|s| ref_key(s).1)
                    .into_iter()
                    .collect();
                upserts.push((key, after, change));
            }
        }
        self.upserts.extend(in_dependency_order(upserts));
        if self.prune && self.users.managed {
            // Sponsored users go before their sponsors.
            let gone: Vec<&User> = live
                .iter()
                .filter(|(k, _)| self.users.deleted(k, true))
                .map(|(_, u)| *u)
                .collect();
            let deletions = gone
                .iter()
                .map(|u| {
                    let key = name_key(&u.username);
                    let after = gone
                        .iter()
                        .filter(|o| o.sponsor.value().is_some_and(|s| ref_key(s).1 == key))
                        .map(|o| name_key(&o.username))
                        .collect();
                    let change = Change::new(Op::Delete, Object::User, tenant, &u.username)
                        .with_live(u.meta.id.as_ref(), u.meta.version);
                    (key, after, change)
                })
                .collect();
            self.deletion_phases.push(in_dependency_order(deletions));
        }
    }

    fn plan_groups(&mut self) {
        let mut gone = Vec::new();
        let tenant = self.tenant();
        let live: BTreeMap<String, &Group> = self
            .live
            .groups
            .iter()
            .flatten()
            .map(|g| (name_key(&g.name), g))
            .collect();
        for g in self.desired.groups.iter().flatten() {
            match live.get(&name_key(&g.name)) {
                None => {
                    let mut body = json!({"name": g.name});
                    if let Some(map) = body.as_object_mut() {
                        put(map, "display_name", &g.display_name);
                        put(map, "external_id", &g.external_id);
                        if let Some(a) = &g.attributes {
                            map.insert("attributes".into(), Value::Object(a.clone()));
                        }
                    }
                    self.upserts.push(
                        Change::new(Op::Create, Object::Group, tenant, &g.name).with_body(body),
                    );
                }
                Some(l) => {
                    let mut diff = Diff::default();
                    diff.value("name", g.name != l.name, || g.name.clone().into());
                    diff.text("display_name", &g.display_name, &l.display_name);
                    diff.text("external_id", &g.external_id, &l.external_id);
                    diff.attributes(&g.attributes, &l.attributes);
                    self.upserts.extend(diff.into_update(
                        Object::Group,
                        tenant,
                        &g.name,
                        l.meta.id.as_ref(),
                        l.meta.version,
                    ));
                }
            }
        }
        if self.prune && self.groups.managed {
            for (key, l) in &live {
                if self.groups.deleted(key, true) {
                    gone.push(
                        Change::new(Op::Delete, Object::Group, tenant, &l.name)
                            .with_live(l.meta.id.as_ref(), l.meta.version),
                    );
                }
            }
        }
        self.deletion_phases.push(gone);
    }

    fn plan_roles(&mut self) {
        let mut gone = Vec::new();
        let tenant = self.tenant();
        let live: BTreeMap<String, &Role> = self
            .live
            .roles
            .iter()
            .flatten()
            .map(|r| (name_key(&r.name), r))
            .collect();
        for r in self.desired.roles.iter().flatten() {
            match live.get(&name_key(&r.name)) {
                None => {
                    let mut body = json!({"name": r.name, "entitlements": r.entitlements.clone().unwrap_or_default()
                        .iter().map(entitlement_json).collect::<Vec<_>>()});
                    if let Some(map) = body.as_object_mut() {
                        put(map, "description", &r.description);
                    }
                    self.upserts.push(
                        Change::new(Op::Create, Object::Role, tenant, &r.name).with_body(body),
                    );
                }
                Some(l) => {
                    let mut diff = Diff::default();
                    diff.value("name", r.name != l.name, || r.name.clone().into());
                    diff.text("description", &r.description, &l.description);
                    if let Some(want) = &r.entitlements {
                        let have = l.entitlements.clone().unwrap_or_default();
                        diff.value("entitlements", *want != have, || {
                            Value::Array(want.iter().map(entitlement_json).collect())
                        });
                    }
                    self.upserts.extend(diff.into_update(
                        Object::Role,
                        tenant,
                        &r.name,
                        l.meta.id.as_ref(),
                        l.meta.version,
                    ));
                }
            }
        }
        if self.prune && self.roles.managed {
            for (key, l) in &live {
                if self.roles.deleted(key, true) {
                    gone.push(
                        Change::new(Op::Delete, Object::Role, tenant, &l.name)
                            .with_live(l.meta.id.as_ref(), l.meta.version),
                    );
                }
            }
        }
        self.deletion_phases.push(gone);
    }

    fn plan_non_human(&mut self, object: Object) {
        let mut gone = Vec::new();
        let tenant = self.tenant();
        let (desired, live_list) = match object {
            Object::Agent => (&self.desired.agents, &self.live.agents),
            _ => (&self.desired.service_accounts, &self.live.service_accounts),
        };
        let live: BTreeMap<String, &NonHuman> = live_list
            .iter()
            .flatten()
            .map(|n| (name_key(&n.name), n))
            .collect();
        for n in desired.iter().flatten() {
            self.check_ref(
                &format!("{} `{}`: owner", object.as_str(), n.name),
                &n.owner,
            );
            match live.get(&name_key(&n.name)) {
                None => {
                    let mut body = json!({"name": n.name, "owner": n.owner, "purpose": n.purpose});
                    if let Some(map) = body.as_object_mut() {
                        put(map, "display_name", &n.display_name);
                        put(map, "external_id", &n.external_id);
                        if let Some(at) = n.expires_at.value() {
                            map.insert("expires_at".into(), at.to_string().into());
                        }
                        if let Some(s) = n.status {
                            map.insert("status".into(), json!(s));
                        }
                        if let Some(a) = &n.attributes {
                            map.insert("attributes".into(), Value::Object(a.clone()));
                        }
                    }
                    self.upserts
                        .push(Change::new(Op::Create, object, tenant, &n.name).with_body(body));
                }
                Some(l) => {
                    let mut diff = Diff::default();
                    diff.value("name", n.name != l.name, || n.name.clone().into());
                    diff.text("display_name", &n.display_name, &l.display_name);
                    diff.value("owner", ref_key(&n.owner) != ref_key(&l.owner), || {
                        n.owner.clone().into()
                    });
                    diff.value("purpose", n.purpose != l.purpose, || {
                        n.purpose.clone().into()
                    });
                    diff.time("expires_at", &n.expires_at, &l.expires_at);
                    diff.text("external_id", &n.external_id, &l.external_id);
                    diff.option("status", &n.status, &l.status);
                    diff.attributes(&n.attributes, &l.attributes);
                    self.upserts.extend(diff.into_update(
                        object,
                        tenant,
                        &n.name,
                        l.meta.id.as_ref(),
                        l.meta.version,
                    ));
                }
            }
        }
        let names = match object {
            Object::Agent => &self.agents,
            _ => &self.service_accounts,
        };
        if self.prune && names.managed {
            for (key, l) in &live {
                if names.deleted(key, true) {
                    gone.push(
                        Change::new(Op::Delete, object, tenant, &l.name)
                            .with_live(l.meta.id.as_ref(), l.meta.version),
                    );
                }
            }
        }
        self.deletion_phases.push(gone);
    }

    fn plan_clients(&mut self) {
        let mut gone = Vec::new();
        let tenant = self.tenant();
        let live: BTreeMap<&str, &OAuthClient> = self
            .live
            .clients
            .iter()
            .flatten()
            .map(|c| (c.client_id.as_str(), c))
            .collect();
        let mut seen = BTreeSet::new();
        let mut problems = Vec::new();
        for c in self.desired.clients.iter().flatten() {
            if !seen.insert(c.client_id.as_str()) {
                problems.push(format!("client `{}` is listed twice", c.client_id));
                continue;
            }
            let Some(l) = live.get(c.client_id.as_str()) else {
                self.upserts.push(
                    Change::new(Op::Create, Object::Client, tenant, &c.client_id)
                        .with_body(client_body(c)),
                );
                continue;
            };
            let mut diff = Diff::default();
            diff.value("name", c.name != l.name, || c.name.clone().into());
            diff.option("type", &c.client_type, &l.client_type);
            diff.option("redirect_uris", &c.redirect_uris, &l.redirect_uris);
            diff.option(
                "post_logout_redirect_uris",
                &c.post_logout_redirect_uris,
                &l.post_logout_redirect_uris,
            );
            // The server keeps grant types and scopes as sets.
            for (field, want, have) in [
                ("grant_types", &c.grant_types, &l.grant_types),
                ("scopes", &c.scopes, &l.scopes),
            ] {
                if let Some(want) = want {
                    let differs = sorted_set(want) != sorted_set(have.as_deref().unwrap_or(&[]));
                    diff.value(field, differs, || json!(want));
                }
            }
            diff.option(
                "token_endpoint_auth_method",
                &c.token_endpoint_auth_method,
                &l.token_endpoint_auth_method,
            );
            match &c.jwks {
                Field::Unset => {}
                Field::Null => diff.value("jwks", l.jwks.value().is_some(), || Value::Null),
                Field::Set(v) => diff.value("jwks", l.jwks.value() != Some(v), || v.clone()),
            }
            diff.text("jwks_uri", &c.jwks_uri, &l.jwks_uri);
            diff.option("first_party", &c.first_party, &l.first_party);
            diff.option(
                "access_token_format",
                &c.access_token_format,
                &l.access_token_format,
            );
            diff.option(
                "id_token_signed_response_alg",
                &c.id_token_signed_response_alg,
                &l.id_token_signed_response_alg,
            );
            diff.option(
                "require_pushed_authorization_requests",
                &c.require_pushed_authorization_requests,
                &l.require_pushed_authorization_requests,
            );
            diff.option(
                "access_token_lifetime_secs",
                &c.access_token_lifetime_secs,
                &l.access_token_lifetime_secs,
            );
            diff.option(
                "refresh_token_lifetime_secs",
                &c.refresh_token_lifetime_secs,
                &l.refresh_token_lifetime_secs,
            );
            diff.text(
                "backchannel_logout_uri",
                &c.backchannel_logout_uri,
                &l.backchannel_logout_uri,
            );
            diff.option(
                "dpop_bound_access_tokens",
                &c.dpop_bound_access_tokens,
                &l.dpop_bound_access_tokens,
            );
            self.upserts.extend(diff.into_update(
                Object::Client,
                tenant,
                &c.client_id,
                l.meta.id.as_ref(),
                l.meta.version,
            ));
        }
        if self.prune && self.desired.clients.is_some() {
            for (client_id, l) in &live {
                if !seen.contains(client_id) {
                    gone.push(
                        Change::new(Op::Delete, Object::Client, tenant, client_id)
                            .with_live(l.meta.id.as_ref(), l.meta.version),
                    );
                }
            }
        }
        for p in problems {
            self.error(p);
        }
        self.deletion_phases.push(gone);
    }

    fn plan_members(&mut self) {
        let tenant = self.tenant();
        let live_groups: BTreeMap<String, &Group> = self
            .live
            .groups
            .iter()
            .flatten()
            .map(|g| (name_key(&g.name), g))
            .collect();
        let mut upserts = Vec::new();
        let mut deletions = Vec::new();
        let mut problems = Vec::new();
        let mut references = Vec::new();
        for g in self.desired.groups.iter().flatten() {
            let Some(members) = &g.members else { continue };
            let live_group = live_groups.get(&name_key(&g.name));
            let group_id = live_group.and_then(|l| l.meta.id.as_ref());
            let live: BTreeMap<RefKey, &Member> = live_group
                .and_then(|l| l.members.as_ref())
                .into_iter()
                .flatten()
                .map(|m| (ref_key(&m.member), m))
                .collect();
            let mut seen = BTreeSet::new();
            for m in members {
                let key = ref_key(&m.member);
                if !seen.insert(key.clone()) {
                    problems.push(format!(
                        "group `{}`: member `{}` is listed twice",
                        g.name, m.member
                    ));
                    continue;
                }
                if key == ("group", name_key(&g.name)) {
                    problems.push(format!("group `{}` cannot be a member of itself", g.name));
                    continue;
                }
                references.push((format!("group `{}`: member", g.name), m.member.clone()));
                let mut body = json!({"member": m.member});
                if let (Some(map), Some(at)) = (body.as_object_mut(), m.expires_at) {
                    map.insert("expires_at".into(), at.to_string().into());
                }
                let change = match live.get(&key) {
                    None => Change::new(Op::Create, Object::Member, tenant, &g.name),
                    Some(l) if l.expires_at != m.expires_at => {
                        let mut c = Change::new(Op::Update, Object::Member, tenant, &g.name);
                        c.fields = vec!["expires_at"];
                        c
                    }
                    Some(_) => continue,
                };
                let mut change = change.with_body(body).with_other(m.member.clone());
                change.id = group_id.cloned();
                upserts.push(change);
            }
            if self.prune {
                for (key, l) in &live {
                    if !seen.contains(key) {
                        let mut change = Change::new(Op::Delete, Object::Member, tenant, &g.name)
                            .with_other(l.member.clone());
                        change.id = group_id.cloned();
                        change.body = json!({"member_id": l.meta.id});
                        change.expired = l.meta.expired;
                        deletions.push(change);
                    }
                }
            }
        }
        for p in problems {
            self.error(p);
        }
        for (what, member) in references {
            self.check_ref(&what, &member);
        }
        self.upserts.extend(upserts);
        self.deletion_phases.push(deletions);
    }

    fn plan_assignments(&mut self) {
        let mut gone = Vec::new();
        let tenant = self.tenant();
        let live: BTreeMap<(String, RefKey), &Assignment> = self
            .live
            .assignments
            .iter()
            .flatten()
            .map(|a| ((name_key(&a.role), ref_key(&a.principal)), a))
            .collect();
        let mut wanted = BTreeSet::new();
        for a in self.desired.assignments.iter().flatten() {
            let what = format!("assignment of `{}` to `{}`", a.role, a.principal);
            let role_key = name_key(&a.role);
            if !self.roles.available(&role_key, self.prune) {
                self.error(format!(
                    "{what}: role `{}` does not exist or is deleted by --prune",
                    a.role
                ));
            }
            self.check_ref(&what, &a.principal);
            let key = (role_key, ref_key(&a.principal));
            if !wanted.insert(key.clone()) {
                self.error(format!("{what} is listed twice"));
                continue;
            }
            let mut body = json!({"role": a.role, "principal": a.principal});
            if let (Some(map), Some(at)) = (body.as_object_mut(), a.expires_at) {
                map.insert("expires_at".into(), at.to_string().into());
            }
            let change = match live.get(&key) {
                None => Change::new(Op::Create, Object::Assignment, tenant, &a.role),
                Some(l) if l.expires_at != a.expires_at => {
                    let mut c = Change::new(Op::Update, Object::Assignment, tenant, &a.role);
                    c.fields = vec!["expires_at"];
                    c
                }
                Some(_) => continue,
            };
            self.upserts
                .push(change.with_body(body).with_other(a.principal.clone()));
        }
        let assignments_pruned = self.prune && self.desired.assignments.is_some();
        for (key, l) in &live {
            // Deleting a role needs its assignments gone first.
            let role_deleted = self.roles.deleted(&key.0, self.prune);
            if (assignments_pruned && !wanted.contains(key)) || role_deleted {
                let mut change = Change::new(Op::Delete, Object::Assignment, tenant, &l.role)
                    .with_other(l.principal.clone())
                    .with_live(l.meta.id.as_ref(), None);
                change.expired = l.meta.expired;
                gone.push(change);
            }
        }
        self.deletion_phases.push(gone);
    }

    fn check_dependants(&mut self) {
        if !(self.prune && self.users.managed) {
            return;
        }
        let live_users: BTreeMap<String, &User> = self
            .live
            .users
            .iter()
            .flatten()
            .map(|u| (name_key(&u.username), u))
            .collect();
        let mut problems = Vec::new();
        for u in self.desired.users.iter().flatten() {
            if !u.sponsor.is_unset() {
                continue;
            }
            let live_sponsor = live_users
                .get(&name_key(&u.username))
                .and_then(|l| l.sponsor.value());
            if let Some(s) = live_sponsor
                && self.users.deleted(&ref_key(s).1, true)
            {
                problems.push(format!(
                    "user `{s}` is deleted by --prune but still sponsors `{}`",
                    u.username
                ));
            }
        }
        for (object, desired, live) in [
            (
                Object::ServiceAccount,
                &self.desired.service_accounts,
                &self.live.service_accounts,
            ),
            (Object::Agent, &self.desired.agents, &self.live.agents),
        ] {
            if desired.is_some() {
                continue;
            }
            for n in live.iter().flatten() {
                if self.users.deleted(&ref_key(&n.owner).1, true) {
                    problems.push(format!(
                        "user `{}` is deleted by --prune but still owns {} `{}`",
                        n.owner,
                        object.as_str(),
                        n.name
                    ));
                }
            }
        }
        for p in problems {
            self.error(p);
        }
    }
}

/// Orders changes so that each comes after the ones whose keys it names
/// (`after`); cycles keep their written order.
fn in_dependency_order(items: Vec<(String, Vec<String>, Change)>) -> Vec<Change> {
    let keys: BTreeSet<String> = items.iter().map(|(k, _, _)| k.clone()).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut pending = items;
    let mut out = Vec::new();
    while !pending.is_empty() {
        let (ready, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(k, after, _)| {
            after
                .iter()
                .all(|a| a == k || !keys.contains(a) || done.contains(a))
        });
        if ready.is_empty() {
            out.extend(rest.into_iter().map(|(_, _, c)| c));
            break;
        }
        for (k, _, c) in ready {
            done.insert(k);
            out.push(c);
        }
        pending = rest;
    }
    out
}

/// The fields of an update and its merge patch.
#[derive(Debug, Default)]
struct Diff {
    fields: Vec<&'static str>,
    patch: Map<String, Value>,
}

impl Diff {
    fn value(&mut self, field: &'static str, differs: bool, value: impl FnOnce() -> Value) {
        if differs {
            self.fields.push(field);
            self.patch.insert(field.to_owned(), value());
        }
    }

    fn text(&mut self, field: &'static str, want: &Field<String>, have: &Field<String>) {
        match want {
            Field::Unset => {}
            Field::Null => self.value(field, have.value().is_some(), || Value::Null),
            Field::Set(v) => self.value(field, have.value() != Some(v), || v.clone().into()),
        }
    }

    fn time(&mut self, field: &'static str, want: &Field<Timestamp>, have: &Field<Timestamp>) {
        match want {
            Field::Unset => {}
            Field::Null => self.value(field, have.value().is_some(), || Value::Null),
            Field::Set(v) => self.value(field, have.value() != Some(v), || v.to_string().into()),
        }
    }

    fn reference(&mut self, field: &'static str, want: &Field<String>, have: &Field<String>) {
        match want {
            Field::Unset => {}
            Field::Null => self.value(field, have.value().is_some(), || Value::Null),
            Field::Set(v) => {
                let differs = have.value().map(|h| ref_key(h)) != Some(ref_key(v));
                self.value(field, differs, || v.clone().into());
            }
        }
    }

    fn option<T: PartialEq + serde::Serialize>(
        &mut self,
        field: &'static str,
        want: &Option<T>,
        have: &Option<T>,
    ) {
        if let Some(v) = want {
            self.value(field, have.as_ref() != Some(v), || json!(v));
        }
    }

    fn attributes(&mut self, want: &Option<Map<String, Value>>, have: &Option<Map<String, Value>>) {
        if let Some(v) = want {
            let empty = Map::new();
            let have = have.as_ref().unwrap_or(&empty);
            self.value("attributes", v != have, || {
                Value::Object(merge_diff(have, v))
            });
        }
    }

    fn into_update(
        self,
        object: Object,
        tenant: &str,
        name: &str,
        id: Option<&String>,
        version: Option<i64>,
    ) -> Option<Change> {
        if self.fields.is_empty() {
            return None;
        }
        let mut change = Change::new(Op::Update, object, tenant, name).with_live(id, version);
        change.fields = self.fields;
        change.body = Value::Object(self.patch);
        Some(change)
    }
}

/// The body that creates `u`.
fn user_body(u: &User) -> Value {
    let mut map = Map::new();
    map.insert("username".into(), u.username.clone().into());
    put(&mut map, "display_name", &u.display_name);
    put(&mut map, "email", &u.email);
    put(&mut map, "external_id", &u.external_id);
    if let Some(t) = u.user_type {
        map.insert("user_type".into(), json!(t));
    }
    if let Some(at) = u.end_date.value() {
        map.insert("end_date".into(), at.to_string().into());
    }
    put(&mut map, "sponsor", &u.sponsor);
    if let Some(s) = u.status {
        map.insert("status".into(), json!(s));
    }
    if let Some(a) = &u.attributes {
        map.insert("attributes".into(), Value::Object(a.clone()));
    }
    Value::Object(map)
}

/// The body that registers `c`: what the document gives.
fn client_body(c: &OAuthClient) -> Value {
    let mut map = Map::new();
    map.insert("client_id".into(), c.client_id.clone().into());
    map.insert("name".into(), c.name.clone().into());
    let mut opt = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            map.insert(key.to_owned(), v);
        }
    };
    opt("type", c.client_type.as_ref().map(|v| json!(v)));
    opt("redirect_uris", c.redirect_uris.as_ref().map(|v| json!(v)));
    opt(
        "post_logout_redirect_uris",
        c.post_logout_redirect_uris.as_ref().map(|v| json!(v)),
    );
    opt("grant_types", c.grant_types.as_ref().map(|v| json!(v)));
    opt("scopes", c.scopes.as_ref().map(|v| json!(v)));
    opt(
        "token_endpoint_auth_method",
        c.token_endpoint_auth_method.as_ref().map(|v| json!(v)),
    );
    opt("jwks", c.jwks.value().cloned());
    opt("jwks_uri", c.jwks_uri.value().map(|v| json!(v)));
    opt("first_party", c.first_party.map(Value::from));
    opt(
        "access_token_format",
        c.access_token_format.as_ref().map(|v| json!(v)),
    );
    opt(
        "id_token_signed_response_alg",
        c.id_token_signed_response_alg.as_ref().map(|v| json!(v)),
    );
    opt(
        "require_pushed_authorization_requests",
        c.require_pushed_authorization_requests.map(Value::from),
    );
    opt(
        "access_token_lifetime_secs",
        c.access_token_lifetime_secs.map(Value::from),
    );
    opt(
        "refresh_token_lifetime_secs",
        c.refresh_token_lifetime_secs.map(Value::from),
    );
    opt(
        "backchannel_logout_uri",
        c.backchannel_logout_uri.value().map(|v| json!(v)),
    );
    opt(
        "dpop_bound_access_tokens",
        c.dpop_bound_access_tokens.map(Value::from),
    );
    Value::Object(map)
}

fn sorted_set(list: &[String]) -> BTreeSet<&str> {
    list.iter().map(|s| s.trim()).collect()
}

/// Inserts a set text field.
fn put(map: &mut Map<String, Value>, key: &str, value: &Field<String>) {
    if let Some(v) = value.value() {
        map.insert(key.to_owned(), v.clone().into());
    }
}

fn entitlement_json(e: &Entitlement) -> Value {
    json!({"resource": e.resource, "permission": e.permission})
}

#[cfg(test)]
mod tests {
    use super::super::doc::{Meta, parse};
    use super::*;

    fn lines(changes: &[Change]) -> Vec<String> {
        changes.iter().map(ToString::to_string).collect()
    }

    /// A live document: as the server would report the desired one after
    /// applying it (ids made up).
    fn live(text: &str) -> Document {
        let mut doc = parse(text).unwrap();
        let mut n = 0;
        let mut meta = || {
            n += 1;
            Meta {
                id: Some(format!("id-{n}")),
                version: Some(1),
                expired: false,
            }
        };
        for t in &mut doc.tenants {
            for u in t.users.get_or_insert_with(Vec::new) {
                u.meta = meta();
                u.user_type
                    .get_or_insert(idplane_core::directory::UserType::Employee);
                u.status
                    .get_or_insert(idplane_core::directory::Status::Active);
            }
            for g in t.groups.get_or_insert_with(Vec::new) {
                g.meta = meta();
                for m in g.members.get_or_insert_with(Vec::new) {
                    m.meta = meta();
                }
            }
            for r in t.roles.get_or_insert_with(Vec::new) {
                r.meta = meta();
                r.entitlements.get_or_insert_with(Vec::new);
            }
            for a in t.assignments.get_or_insert_with(Vec::new) {
                a.meta = meta();
            }
            for c in t.clients.get_or_insert_with(Vec::new) {
                c.meta = meta();
            }
            for list in [&mut t.service_accounts, &mut t.agents] {
                for s in list.get_or_insert_with(Vec::new) {
                    s.meta = meta();
                    s.status
                        .get_or_insert(idplane_core::directory::Status::Active);
                }
            }
        }
        doc
    }

    const FULL: &str = r#"
tenants:
  - name: default
    users:
      - {username: alice, email: alice@example.com}
      - {username: carol, user_type: contractor, end_date: "2030-01-01T00:00:00Z", sponsor: bob}
      - {username: bob}
    groups:
      - {name: eng, members: [alice, "group:sre", {member: carol, expires_at: "2030-01-01T00:00:00Z"}]}
      - {name: sre, members: ["service_account:ci"]}
    roles:
      - {name: payroll-reader, entitlements: ["payroll:read"]}
    assignments:
      - {role: payroll-reader, principal: "group:eng"}
    service_accounts:
      - {name: ci, owner: alice, purpose: deploys}
    agents: []
"#;

    #[test]
    fn everything_is_created_in_dependency_order() {
        let changes = plan(&parse(FULL).unwrap(), &Document::default(), false).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "+ tenant default",
                "+ user alice",
                "+ user bob",
                "+ user carol",
                "+ group eng",
                "+ group sre",
                "+ role payroll-reader",
                "+ service_account ci",
                "+ member alice of group eng",
                "+ member group:sre of group eng",
                "+ member carol of group eng",
                "+ member service_account:ci of group sre",
                "+ assignment payroll-reader to group:eng",
            ]
        );
        let carol = &changes[3].body;
        assert_eq!(carol["sponsor"], "bob");
        assert_eq!(carol["user_type"], "contractor");
        assert_eq!(changes[11].body, json!({"member": "service_account:ci"}));
    }

    #[test]
    fn applying_the_same_state_changes_nothing() {
        let changes = plan(&parse(FULL).unwrap(), &live(FULL), true).unwrap();
        assert!(changes.is_empty(), "{:?}", lines(&changes));
    }

    #[test]
    fn values_are_compared_as_the_server_stores_them() {
        let desired = parse(
            r#"
tenants:
  - name: default
    users: [{username: Alice, email: " ALICE@example.com ", display_name: ""}]
    groups: [{name: ENG, members: [ALICE, "Group:SRE"]}, {name: sre}]
    roles: [{name: r, entitlements: ["b:read", "a:write", "b:read"]}]
"#,
        )
        .unwrap();
        let live = live(
            r#"
tenants:
  - name: default
    users: [{username: Alice, email: alice@example.com}]
    groups: [{name: ENG, members: [alice, "group:sre"]}, {name: sre}]
    roles: [{name: r, entitlements: ["a:write", "b:read"]}]
"#,
        );
        let changes = plan(&desired, &live, false).unwrap();
        assert!(changes.is_empty(), "{:?}", lines(&changes));
    }

    #[test]
    fn updates_name_only_the_changed_fields() {
        let desired = parse(
            r#"
tenants:
  - name: default
    users: [{username: alice, email: new@example.com, status: suspended, display_name: null}]
    roles: [{name: r, description: Readers, entitlements: ["a:read"]}]
    groups: [{name: eng, members: [{member: alice, expires_at: "2031-01-01T00:00:00.000123Z"}]}]
"#,
        )
        .unwrap();
        let live = live(
            r#"
tenants:
  - name: default
    users: [{username: alice, email: old@example.com, display_name: Alice}]
    roles: [{name: r, description: Readers, entitlements: ["a:read", "a:write"]}]
    groups: [{name: eng, members: [alice]}]
"#,
        );
        let changes = plan(&desired, &live, false).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "~ user alice: display_name, email, status",
                "~ role r: entitlements",
                "~ member alice of group eng: expires_at",
            ]
        );
        assert_eq!(
            changes[0].body,
            json!({"display_name": null, "email": "new@example.com", "status": "suspended"})
        );
        assert_eq!(changes[0].id.as_deref(), Some("id-1"));
        assert_eq!(changes[0].version, Some(1));
        assert_eq!(
            changes[1].body,
            json!({"entitlements": [{"resource": "a", "permission": "read"}]})
        );
        // Instants are kept to the millisecond, as the server does.
        assert_eq!(changes[2].body["expires_at"], "2031-01-01T00:00:00Z");
    }

    #[test]
    fn nothing_is_deleted_without_prune_and_only_listed_kinds_with_it() {
        let desired = parse("tenants: [{name: default, users: [{username: alice}], groups: [{name: eng, members: []}]}]").unwrap();
        let live = live(
            r#"
tenants:
  - name: default
    users: [{username: alice}, {username: bob}]
    groups: [{name: eng, members: [bob]}, {name: old}]
    roles: [{name: keep-me}]
  - name: acme
"#,
        );
        assert!(plan(&desired, &live, false).unwrap().is_empty());
        let changes = plan(&desired, &live, true).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "- member bob of group eng",
                "- group old",
                "- user bob",
                "- tenant acme"
            ]
        );
        assert_eq!(changes[0].body, json!({"member_id": "id-4"}));
    }

    #[test]
    fn deleting_a_role_revokes_its_assignments_first() {
        let desired = parse("tenants: [{name: default, roles: []}]").unwrap();
        let live = live(
            r#"
tenants:
  - name: default
    users: [{username: alice}]
    roles: [{name: old}]
    assignments: [{role: old, principal: alice}]
"#,
        );
        let changes = plan(&desired, &live, true).unwrap();
        assert_eq!(lines(&changes), ["- assignment old to alice", "- role old"]);
    }

    #[test]
    fn sponsors_are_created_first_and_deleted_last() {
        let doc = r#"
tenants:
  - name: default
    users:
      - {username: c, user_type: contractor, end_date: "2030-01-01T00:00:00Z", sponsor: b}
      - {username: b, user_type: contractor, end_date: "2030-01-01T00:00:00Z", sponsor: a}
      - {username: a}
"#;
        let changes = plan(&parse(doc).unwrap(), &Document::default(), false).unwrap();
        assert_eq!(lines(&changes)[1..], ["+ user a", "+ user b", "+ user c"]);
        let empty = parse("tenants: [{name: default, users: []}]").unwrap();
        let changes = plan(&empty, &live(doc), true).unwrap();
        assert_eq!(lines(&changes), ["- user c", "- user b", "- user a"]);
    }

    #[test]
    fn dangling_references_are_reported_together() {
        let desired = parse(
            r#"
tenants:
  - name: default
    users: [{username: carol, sponsor: nobody}, {username: carol}]
    groups: [{name: eng, members: ["group:ghost", "robot:x", "group:eng"]}]
    assignments: [{role: missing, principal: alice}]
    service_accounts: [{name: ci, owner: "group:eng", purpose: x}]
"#,
        )
        .unwrap();
        let error = plan(&desired, &Document::default(), false)
            .unwrap_err()
            .to_string();
        for needle in [
            "user `nobody` does not exist",
            "user `carol` is listed twice",
            "group `ghost` does not exist",
            "`robot` is not user",
            "cannot be a member of itself",
            "role `missing` does not exist",
            "user `alice` does not exist",
            "is not a user",
        ] {
            assert!(error.contains(needle), "{needle} not in {error}");
        }
    }

    #[test]
    fn pruning_a_sponsor_of_someone_who_stays_is_refused() {
        let desired = parse("tenants: [{name: default, users: [{username: c}]}]").unwrap();
        let live = live(
            r#"
tenants:
  - name: default
    users:
      - {username: a}
      - {username: c, user_type: contractor, end_date: "2030-01-01T00:00:00Z", sponsor: a}
"#,
        );
        let error = plan(&desired, &live, true).unwrap_err().to_string();
        assert!(error.contains("still sponsors `c`"), "{error}");
        assert!(plan(&desired, &live, false).unwrap().is_empty());
    }

    #[test]
    fn the_default_tenant_is_never_deleted_and_tenants_print_their_name() {
        let desired =
            parse("tenants: [{name: acme, display_name: ACME, users: [{username: x}]}]").unwrap();
        let live = live("tenants: [{name: default}]");
        let changes = plan(&desired, &live, true).unwrap();
        assert_eq!(lines(&changes), ["+ tenant acme", "+ user x (tenant acme)"]);
        assert_eq!(
            changes[0].body,
            json!({"name": "acme", "display_name": "ACME"})
        );
    }

    #[test]
    fn clients_are_created_diffed_and_pruned_by_client_id() {
        let doc = r#"
tenants:
  - name: default
    clients:
      - {client_id: web, name: Web, redirect_uris: ["https://a.example/cb"], scopes: [openid, email]}
      - {client_id: cli, name: CLI, type: public, redirect_uris: ["http://127.0.0.1/cb"]}
"#;
        let changes = plan(&parse(doc).unwrap(), &Document::default(), false).unwrap();
        assert_eq!(
            lines(&changes),
            ["+ tenant default", "+ client web", "+ client cli"]
        );
        assert_eq!(changes[1].body["scopes"], json!(["email", "openid"]));
        assert_eq!(changes[2].body["type"], "public");
        assert!(
            plan(&parse(doc).unwrap(), &live(doc), true)
                .unwrap()
                .is_empty()
        );

        let desired = parse(
            r#"
tenants:
  - name: default
    clients:
      - {client_id: web, name: Web, scopes: [email, openid, profile], first_party: true}
      - {client_id: web, name: Twice}
"#,
        )
        .unwrap();
        let error = plan(&desired, &live(doc), false).unwrap_err().to_string();
        assert!(error.contains("client `web` is listed twice"), "{error}");

        let desired = parse(
            r#"
tenants:
  - name: default
    clients:
      - {client_id: web, name: Web, scopes: [email, openid, profile], first_party: true}
"#,
        )
        .unwrap();
        let changes = plan(&desired, &live(doc), true).unwrap();
        assert_eq!(
            lines(&changes),
            ["~ client web: scopes, first_party", "- client cli"]
        );
        assert_eq!(
            changes[0].body,
            json!({"scopes": ["email", "openid", "profile"], "first_party": true})
        );
        assert_eq!(changes[0].version, Some(1));

        // Back-channel logout and DPoP binding are created, diffed and
        // cleared like the other settings.
        let with_logout = r#"
tenants:
  - name: default
    clients:
      - {client_id: web, name: Web, backchannel_logout_uri: "https://a.example/logout", dpop_bound_access_tokens: true}
"#;
        let changes = plan(&parse(with_logout).unwrap(), &live(doc), false).unwrap();
        assert_eq!(
            lines(&changes),
            ["~ client web: backchannel_logout_uri, dpop_bound_access_tokens"]
        );
        assert_eq!(
            changes[0].body,
            json!({"backchannel_logout_uri": "https://a.example/logout", "dpop_bound_access_tokens": true})
        );
        let created = plan(&parse(with_logout).unwrap(), &Document::default(), false).unwrap();
        assert_eq!(
            created[1].body["backchannel_logout_uri"],
            "https://a.example/logout"
        );
        assert_eq!(created[1].body["dpop_bound_access_tokens"], true);
        assert!(
            plan(&parse(with_logout).unwrap(), &live(with_logout), false)
                .unwrap()
                .is_empty()
        );
        let cleared = parse(
            "tenants: [{name: default, clients: [{client_id: web, name: Web, backchannel_logout_uri: null}]}]",
        )
        .unwrap();
        let changes = plan(&cleared, &live(with_logout), false).unwrap();
        assert_eq!(changes[0].body, json!({"backchannel_logout_uri": null}));
    }

    #[test]
    fn expired_grants_are_renewed_and_pruned() {
        let desired = parse("tenants: [{name: default, users: [{username: a}, {username: b}], groups: [{name: g, members: [a]}]}]").unwrap();
        let mut live = live(
            r#"
tenants:
  - name: default
    users: [{username: a}, {username: b}]
    groups: [{name: g, members: [{member: a, expires_at: "2020-01-01T00:00:00Z"}, {member: b, expires_at: "2020-01-01T00:00:00Z"}]}]
"#,
        );
        for m in live.tenants[0].groups.as_mut().unwrap()[0]
            .members
            .as_mut()
            .unwrap()
        {
            m.meta.expired = true;
        }
        let changes = plan(&desired, &live, true).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "~ member a of group g: expires_at",
                "- member b of group g (expired)"
            ]
        );
        assert_eq!(changes[0].body, json!({"member": "a"}));
    }
}

/// The JSON Merge Patch (RFC 7396) that turns `have` into `want` exactly:
/// keys to drop become `null`, nested objects are diffed recursively.
fn merge_diff(have: &Map<String, Value>, want: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for key in have.keys().filter(|k| !want.contains_key(*k)) {
        patch.insert(key.clone(), Value::Null);
    }
    for (key, value) in want {
        match (have.get(key), value) {
            (Some(old), new) if old == new => {}
            (Some(Value::Object(old)), Value::Object(new)) => {
                patch.insert(key.clone(), Value::Object(merge_diff(old, new)));
            }
            _ => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    patch
}

#[cfg(test)]
mod merge_diff_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_diff_turns_have_into_want_under_merge_patch() {
        let have = json!({"a": 1, "gone": true, "n": {"x": 1, "y": 2}});
        let want = json!({"a": 2, "n": {"x": 1}, "new": [1]});
        let (Value::Object(h), Value::Object(w)) = (have, want) else {
            unreachable!()
        };
        let patch = merge_diff(&h, &w);
        assert_eq!(
            Value::Object(patch),
            json!({"a": 2, "gone": null, "n": {"y": null}, "new": [1]})
        );
    }
}
