//! Planning an HR import: the snapshot compared with the directory, row by
//! row, into joiners, movers, leavers, rehires, the unchanged, and the row
//! errors that refuse the whole import. Pure: no I/O, so a dry run and the
//! apply (which plans again inside its transaction) agree.

use std::collections::{BTreeSet, HashMap};

use idplane_core::directory::{
    Principal, PrincipalKind, Status, UserType, name_key, normalize_email, normalize_external_id,
    normalize_name, normalize_text,
};
use idplane_core::{PrincipalId, TenantId, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::birthright::Birthright;
use super::hr::HrRow;

/// What an import would do (or did).
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
pub struct ImportPlan {
    /// Data rows in the file.
    pub rows: usize,
    /// HR-managed users active before the import.
    pub workforce: usize,
    /// Leavers as a share of the workforce.
    pub leaver_share: f64,
    pub max_leaver_share: f64,
    /// Why nothing was (or would be) written, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub joiners: Vec<PlannedJoiner>,
    pub movers: Vec<PlannedMover>,
    pub leavers: Vec<PlannedLeaver>,
    pub rehires: Vec<PlannedJoiner>,
    pub unchanged: usize,
    pub errors: Vec<RowError>,
}

/// A new (or returning) person.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PlannedJoiner {
    pub line: u64,
    pub employee_id: String,
    #[schema(value_type = String)]
    pub user_id: PrincipalId,
    pub username: String,
    pub user_type: UserType,
    /// When their access starts, if HR gave a start date.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub start_date: Option<Timestamp>,
    /// Birthright access they get.
    pub gains: Vec<String>,
}

/// A person whose HR data changed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PlannedMover {
    pub line: u64,
    pub employee_id: String,
    #[schema(value_type = String)]
    pub user_id: PrincipalId,
    pub username: String,
    /// Fields and attributes that change.
    pub changed: Vec<String>,
    pub gains: Vec<String>,
    pub losses: Vec<String>,
}

/// Why someone leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaverReason {
    /// Their termination date is reached.
    Terminated,
    /// An HR-managed user the snapshot no longer has.
    Missing,
}

/// A person to deprovision.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PlannedLeaver {
    /// The row, if the file has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub employee_id: String,
    #[schema(value_type = String)]
    pub user_id: PrincipalId,
    pub username: String,
    pub reason: LeaverReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub termination: Option<Timestamp>,
}

/// A row the import cannot take.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RowError {
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    pub message: String,
}

/// One change to write, in order: joiners (sponsors first), rehires,
/// movers, leavers.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    Join {
        user: Principal,
        employee_id: String,
    },
    Replace {
        current: Box<Principal>,
        next: Box<Principal>,
        employee_id: String,
        kind: &'static str,
    },
    Leave {
        current: Principal,
        employee_id: String,
        termination: Option<Timestamp>,
    },
}

/// The directory's users, indexed the ways a plan looks them up.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    users: Vec<Principal>,
    by_employee: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
}

impl Directory {
    pub(crate) fn new(users: Vec<Principal>) -> Self {
        let mut by_employee = HashMap::new();
        let mut by_name = HashMap::new();
        for (i, u) in users.iter().enumerate() {
            if let Some(e) = &u.external_id {
                by_employee.insert(e.clone(), i);
            }
            by_name.insert(name_key(&u.name), i);
        }
        Self {
            users,
            by_employee,
            by_name,
        }
    }

    fn by_employee(&self, employee_id: &str) -> Option<&Principal> {
        self.by_employee.get(employee_id).map(|&i| &self.users[i])
    }
}

/// HR-managed users carry their employee id as `employeeNumber` too.
pub(crate) fn hr_managed(user: &Principal) -> bool {
    user.kind == PrincipalKind::User
        && user.external_id.is_some()
        && user
            .attributes
            .get("employeeNumber")
            .and_then(Value::as_str)
            == user.external_id.as_deref()
}

/// Plans `rows` against `dir` at `now`.
pub(crate) fn plan(
    tenant: TenantId,
    rows: &[HrRow],
    dir: &Directory,
    rules: &Birthright,
    now: Timestamp,
) -> (ImportPlan, Vec<Step>) {
    let mut out = ImportPlan {
        rows: rows.len(),
        max_leaver_share: rules.max_leaver_share(),
        ..ImportPlan::default()
    };
    let mut errors = Vec::new();
    // First pass: employee ids, duplicates, and the id each row will have.
    let mut ids: HashMap<&str, (PrincipalId, &HrRow)> = HashMap::new();
    for row in rows {
        if ids.contains_key(row.employee_id.as_str()) {
            errors.push(row.error(format!(
                "employee id `{}` appears more than once in the file",
                row.employee_id
            )));
            continue;
        }
        let id = dir
            .by_employee(&row.employee_id)
            .map_or_else(PrincipalId::generate, |u| u.id);
        ids.insert(&row.employee_id, (id, row));
    }
    let terminated = |row: &HrRow| row.termination.is_some_and(|t| t <= now);
    // Who a manager or sponsor id names, and whether they stay active.
    let lookup = |employee: &str| -> Option<(PrincipalId, bool)> {
        match ids.get(employee) {
            Some((id, row)) => Some((*id, !terminated(row))),
            None => dir
                .by_employee(employee)
                .map(|u| (u.id, u.is_active_at(now))),
        }
    };
    let mut joiners = Vec::new();
    let mut replaces = Vec::new();
    let mut leavers = Vec::new();
    let mut usernames: HashMap<String, u64> = HashMap::new();
    for row in rows {
        if ids
            .get(row.employee_id.as_str())
            .is_none_or(|(_, r)| !std::ptr::eq(*r, row))
        {
            continue;
        }
        let current = dir.by_employee(&row.employee_id);
        if terminated(row) {
            match current {
                Some(u) if u.status != Status::Deprovisioned => {
                    out.leavers.push(PlannedLeaver {
                        line: Some(row.line),
                        employee_id: row.employee_id.clone(),
                        user_id: u.id,
                        username: u.name.clone(),
                        reason: LeaverReason::Terminated,
                        termination: row.termination,
                    });
                    leavers.push(Step::Leave {
                        current: u.clone(),
                        employee_id: row.employee_id.clone(),
                        termination: row.termination,
                    });
                }
                _ => out.unchanged += 1,
            }
            continue;
        }
        let id = ids
            .get(row.employee_id.as_str())
            .map_or_else(PrincipalId::generate, |(id, _)| *id);
        let next = match build(tenant, row, id, current, &lookup, now) {
            Ok(next) => next,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let key = name_key(&next.name);
        if let Some(first) = usernames.insert(key.clone(), row.line) {
            errors.push(row.error(format!("username `{}` is also on line {first}", next.name)));
            continue;
        }
        if let Some(&i) = dir.by_name.get(&key)
            && dir.users[i].id != next.id
        {
            errors.push(row.error(format!(
                "username `{}` belongs to another user in the directory",
                next.name
            )));
            continue;
        }
        match current {
            None => {
                out.joiners.push(joiner(row, &next, rules));
                joiners.push((row, next));
            }
            Some(u) if u.status == Status::Deprovisioned => {
                out.rehires.push(joiner(row, &next, rules));
                replaces.push(Step::Replace {
                    current: Box::new(u.clone()),
                    next: Box::new(next),
                    employee_id: row.employee_id.clone(),
                    kind: "rehire",
                });
            }
            Some(u) => {
                let changed = changes(u, &next);
                if changed.is_empty() {
                    out.unchanged += 1;
                    continue;
                }
                let before = rules.owed_labels(u);
                let after = rules.owed_labels(&next);
                out.movers.push(PlannedMover {
                    line: row.line,
                    employee_id: row.employee_id.clone(),
                    user_id: u.id,
                    username: next.name.clone(),
                    changed,
                    gains: after.difference(&before).cloned().collect(),
                    losses: before.difference(&after).cloned().collect(),
                });
                replaces.push(Step::Replace {
                    current: Box::new(u.clone()),
                    next: Box::new(next),
                    employee_id: row.employee_id.clone(),
                    kind: "mover",
                });
            }
        }
    }
    // HR-managed users the snapshot no longer has.
    for u in &dir.users {
        if hr_managed(u)
            && u.status != Status::Deprovisioned
            && u.external_id
                .as_deref()
                .is_some_and(|e| !ids.contains_key(e))
        {
            let employee_id = u.external_id.clone().unwrap_or_default();
            out.leavers.push(PlannedLeaver {
                line: None,
                employee_id: employee_id.clone(),
                user_id: u.id,
                username: u.name.clone(),
                reason: LeaverReason::Missing,
                termination: None,
            });
            leavers.push(Step::Leave {
                current: u.clone(),
                employee_id,
                termination: None,
            });
        }
    }
    let (ordered, cycle) = sponsors_first(joiners);
    errors.extend(cycle);
    errors.sort_by_key(|e| e.line);
    out.errors = errors;
    out.workforce = dir
        .users
        .iter()
        .filter(|u| hr_managed(u) && u.status != Status::Deprovisioned)
        .count();
    #[expect(clippy::cast_precision_loss, reason = "head counts are far below 2^52")]
    if out.workforce > 0 {
        out.leaver_share = out.leavers.len() as f64 / out.workforce as f64;
    }
    let mut steps = ordered;
    steps.extend(replaces);
    steps.extend(leavers);
    (out, steps)
}

fn joiner(row: &HrRow, user: &Principal, rules: &Birthright) -> PlannedJoiner {
    PlannedJoiner {
        line: row.line,
        employee_id: row.employee_id.clone(),
        user_id: user.id,
        username: user.name.clone(),
        user_type: user.user_type.unwrap_or(UserType::Employee),
        start_date: row.start,
        gains: rules.owed_labels(user).into_iter().collect(),
    }
}

/// Joiners ordered so that a sponsor joining in the same file is created
/// before those they sponsor; a sponsorship cycle is a row error.
fn sponsors_first(joiners: Vec<(&HrRow, Principal)>) -> (Vec<Step>, Vec<RowError>) {
    let joining: HashMap<PrincipalId, usize> = joiners
        .iter()
        .enumerate()
        .map(|(i, (_, p))| (p.id, i))
        .collect();
    let mut placed = vec![false; joiners.len()];
    let mut order = Vec::with_capacity(joiners.len());
    let mut errors = Vec::new();
    for start in 0..joiners.len() {
        let mut chain = Vec::new();
        let mut at = Some(start);
        while let Some(i) = at {
            if placed[i] {
                break;
            }
            if chain.contains(&i) {
                let (row, _) = &joiners[i];
                errors.push(row.error("sponsors form a cycle among joiners".to_owned()));
                chain.clear();
                break;
            }
            chain.push(i);
            at = joiners[i]
                .1
                .sponsor_id
                .and_then(|s| joining.get(&s).copied());
        }
        for &i in chain.iter().rev() {
            placed[i] = true;
            order.push(i);
        }
    }
    let mut slots: Vec<Option<(&HrRow, Principal)>> = joiners.into_iter().map(Some).collect();
    let steps = order
        .into_iter()
        .filter_map(|i| slots[i].take())
        .map(|(row, user)| Step::Join {
            user,
            employee_id: row.employee_id.clone(),
        })
        .collect();
    (steps, errors)
}

/// The user a row describes, over what the directory has (`current`).
fn build(
    tenant: TenantId,
    row: &HrRow,
    id: PrincipalId,
    current: Option<&Principal>,
    lookup: &dyn Fn(&str) -> Option<(PrincipalId, bool)>,
    now: Timestamp,
) -> Result<Principal, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut check = |r: Result<Option<String>, idplane_core::ValidationError>| {
        r.map_err(|e| errors.push(row.error(e.to_string())))
            .ok()
            .flatten()
    };
    let name = check(normalize_name("username", &row.username).map(Some));
    let email = check(row.email.as_deref().map(normalize_email).transpose());
    let display = match (&row.display_name, &row.given_name, &row.family_name) {
        (Some(d), _, _) => Some(d.clone()),
        (None, g, f) if g.is_some() || f.is_some() => Some(
            [g.as_deref(), f.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    };
    let display = check(normalize_text("display_name", display.as_deref()));
    let employee = check(normalize_external_id(Some(&row.employee_id)));
    let mut attributes = current.map(|c| c.attributes.clone()).unwrap_or_default();
    let mut set = |key: &str, value: Option<Value>| match value {
        Some(v) => {
            attributes.insert(key.to_owned(), v);
        }
        None => {
            attributes.remove(key);
        }
    };
    set("employeeNumber", Some(Value::from(row.employee_id.clone())));
    if row.mapped.names {
        let mut names = Map::new();
        for (k, v) in [
            ("givenName", &row.given_name),
            ("familyName", &row.family_name),
        ] {
            if let Some(v) = v {
                names.insert(k.to_owned(), Value::from(v.clone()));
            }
        }
        set("name", (!names.is_empty()).then_some(Value::Object(names)));
    }
    for (key, value) in &row.attributes {
        set(key, value.clone().map(Value::from));
    }
    let resolve = |what: &str, employee: &Option<String>, errors: &mut Vec<RowError>| {
        let employee = employee.as_deref()?;
        match lookup(employee) {
            Some((id, active)) => {
                if what == "sponsor" && !active {
                    errors.push(row.error(format!("sponsor `{employee}` is not an active user")));
                }
                Some(id)
            }
            None => {
                errors.push(row.error(format!(
                    "{what} `{employee}` is neither in the file nor in the directory"
                )));
                None
            }
        }
    };
    if row.mapped.manager {
        let manager = resolve("manager", &row.manager, &mut errors);
        set("manager", manager.map(|m| Value::from(m.to_string())));
    }
    let sponsor = if row.mapped.sponsor {
        resolve("sponsor", &row.sponsor, &mut errors)
    } else {
        current.and_then(|c| c.sponsor_id)
    };
    // A known future termination ends access on time even before the next
    // import: expiry is evaluated on read.
    let end_date = if row.mapped.end_date {
        row.end
    } else {
        current.and_then(|c| c.end_date)
    };
    let end_date = match (end_date, row.termination.filter(|t| *t > now)) {
        (Some(e), Some(t)) => Some(e.min(t)),
        (e, t) => e.or(t),
    };
    let user_type = row
        .user_type
        .or(current.and_then(|c| c.user_type))
        .unwrap_or(UserType::Employee);
    let (Some(name), Some(external_id)) = (name, employee) else {
        return Err(errors);
    };
    let user = Principal {
        id,
        tenant_id: tenant,
        kind: PrincipalKind::User,
        name,
        display_name: if row.mapped.display_name {
            display
        } else {
            current.and_then(|c| c.display_name.clone())
        },
        email: if row.mapped.email {
            email
        } else {
            current.and_then(|c| c.email.clone())
        },
        external_id: Some(external_id),
        status: match current.map(|c| c.status) {
            Some(Status::Suspended) => Status::Suspended,
            _ => Status::Active,
        },
        user_type: Some(user_type),
        // Stored, so a joiner's access starts on the day HR says.
        start_date: row.start.or(current.and_then(|c| c.start_date)),
        end_date,
        sponsor_id: sponsor,
        owner_id: None,
        purpose: None,
        expires_at: None,
        attributes,
        created_at: current.map_or(now, |c| c.created_at),
        updated_at: current.map_or(now, |c| c.updated_at),
        version: current.map_or(1, |c| c.version),
    };
    if let Err(e) = user.check() {
        errors.push(row.error(e.to_string()));
    }
    if errors.is_empty() {
        Ok(user)
    } else {
        Err(errors)
    }
}

/// The fields and attributes that differ, by name.
fn changes(a: &Principal, b: &Principal) -> Vec<String> {
    let mut out = Vec::new();
    let fields = [
        ("username", a.name != b.name),
        ("display_name", a.display_name != b.display_name),
        ("email", a.email != b.email),
        ("user_type", a.user_type != b.user_type),
        ("end_date", a.end_date != b.end_date),
        ("sponsor", a.sponsor_id != b.sponsor_id),
        ("status", a.status != b.status),
    ];
    out.extend(
        fields
            .into_iter()
            .filter(|(_, differs)| *differs)
            .map(|(f, _)| f.to_owned()),
    );
    let keys: BTreeSet<&String> = a.attributes.keys().chain(b.attributes.keys()).collect();
    out.extend(
        keys.into_iter()
            .filter(|k| a.attributes.get(*k) != b.attributes.get(*k))
            .map(|k| format!("attributes.{k}")),
    );
    out
}
