//! Birthright rules as code: the groups and roles a user gets from who they
//! are (department, title, user type, ...), kept per tenant, recomputed at
//! every change of a user. Each grant a rule gives is recorded as such, so
//! recomputing removes only what a rule gave, never access granted by hand.

use std::collections::{BTreeMap, BTreeSet};

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{
    Membership, Principal, PrincipalKind, RoleAssignment, Status, name_key, normalize_name,
};
use idplane_core::{AssignmentId, Ctx, TenantId, Timestamp, ValidationError};
use idplane_store::lifecycle::{self as store, BirthrightGrant, GrantTarget};
use idplane_store::{Conn, WriteTx, mail, principals, roles, settings};
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::directory::parse_span;
use crate::{App, AppError, Result};

/// Share of the HR-managed workforce an import may deprovision unless forced.
pub const DEFAULT_MAX_LEAVER_SHARE: f64 = 0.10;

/// Longest accepted rule id.
const MAX_RULE_ID_LEN: usize = 64;

/// A tenant's lifecycle rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleRules {
    /// What each kind of person gets from the start.
    #[serde(default)]
    pub birthright: Vec<BirthrightRule>,
    /// How long the access a mover's old position gave is kept after the
    /// move, e.g. `7d` (absent or `0`: removed at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mover_grace: Option<String>,
    /// An HR import that would deprovision more than this share (0 to 1) of
    /// the HR-managed workforce is refused unless forced (default 0.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_leaver_share: Option<f64>,
}

/// One birthright rule: whoever matches `when` gets `groups` and `roles`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BirthrightRule {
    /// Unique within the rules; recorded with each grant.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// User fields and attributes that must all match: `user_type`, or an
    /// attribute name (`department`, `title`, `costCenter` or
    /// `cost_center`, ...). Strings compare case-insensitively; a list
    /// matches any of its values. Empty: everyone.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub when: BTreeMap<String, Value>,
    /// Group names.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl LifecycleRules {
    /// How long a mover keeps the access their old position gave.
    pub fn grace(&self) -> Result<SignedDuration, ValidationError> {
        match self.mover_grace.as_deref().map(str::trim) {
            None | Some("0" | "") => Ok(SignedDuration::ZERO),
            Some(span) => parse_span(span).map_err(|_| {
                ValidationError::new(
                    "mover_grace",
                    format!("`{span}` is not a duration such as 7d or 12h (or 0)"),
                )
            }),
        }
    }

    /// The leaver share above which an import needs `force`.
    pub fn leaver_share(&self) -> f64 {
        self.max_leaver_share.unwrap_or(DEFAULT_MAX_LEAVER_SHARE)
    }

    fn check_shape(&self) -> Result<(), ValidationError> {
        self.grace()?;
        if self
            .max_leaver_share
            .is_some_and(|s| !(0.0..=1.0).contains(&s))
        {
            return Err(ValidationError::new(
                "max_leaver_share",
                "must be between 0 and 1",
            ));
        }
        let mut ids = BTreeSet::new();
        for rule in &self.birthright {
            let id = rule.id.trim();
            if id.is_empty()
                || id.len() > MAX_RULE_ID_LEN
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(ValidationError::new(
                    "birthright",
                    format!(
                        "rule id `{id}`: 1 to {MAX_RULE_ID_LEN} letters, digits, `-`, `_` or `.`"
                    ),
                ));
            }
            if !ids.insert(id.to_owned()) {
                return Err(ValidationError::new(
                    "birthright",
                    format!("rule id `{id}` is used twice"),
                ));
            }
            if rule.groups.is_empty() && rule.roles.is_empty() {
                return Err(ValidationError::new(
                    "birthright",
                    format!("rule `{id}` grants nothing: give it groups or roles"),
                ));
            }
            for (key, value) in &rule.when {
                let scalar = |v: &Value| v.is_string() || v.is_number() || v.is_boolean();
                let ok = match value {
                    Value::Array(items) => !items.is_empty() && items.iter().all(scalar),
                    other => scalar(other),
                };
                if !ok {
                    return Err(ValidationError::new(
                        "birthright",
                        format!(
                            "rule `{id}`: `when.{key}` must be a string, number, boolean or a list of them"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The rules compiled against the directory: group and role names resolved.
#[derive(Clone, Debug, Default)]
pub(crate) struct Birthright {
    rules: Vec<Compiled>,
    grace: SignedDuration,
    max_leaver_share: f64,
    labels: BTreeMap<GrantTarget, String>,
}

#[derive(Clone, Debug)]
struct Compiled {
    id: String,
    when: Vec<(String, Value)>,
    targets: Vec<GrantTarget>,
}

/// A grant as it stands while one user's birthright is recomputed.
#[derive(Clone, Debug)]
struct Standing {
    target: GrantTarget,
    remove_after: Option<Timestamp>,
}

/// What a recomputation changed, for the audit event and the manager.
#[derive(Debug, Default)]
struct Changes {
    granted: BTreeSet<GrantTarget>,
    removed: BTreeSet<GrantTarget>,
    scheduled: BTreeMap<GrantTarget, Timestamp>,
    restored: BTreeSet<GrantTarget>,
}

impl Birthright {
    /// The tenant's rules, compiled. A group or role deleted since the rules
    /// were set is skipped (and logged) rather than blocking every change.
    pub(crate) async fn load(conn: &mut impl Conn, tenant: TenantId) -> Result<Self> {
        let rules = read_rules(conn, tenant).await?;
        let mut compiled = Vec::with_capacity(rules.birthright.len());
        let mut labels = BTreeMap::new();
        for rule in &rules.birthright {
            let mut targets = Vec::new();
            for (target, label) in resolve(conn, tenant, rule).await? {
                match target {
                    Some(t) => {
                        labels.insert(t, label);
                        targets.push(t);
                    }
                    None => {
                        tracing::warn!(rule = %rule.id, %label, "birthright rule names access that no longer exists")
                    }
                }
            }
            compiled.push(Compiled {
                id: rule.id.clone(),
                when: rule
                    .when
                    .iter()
                    .map(|(k, v)| (attribute_name(k).to_owned(), v.clone()))
                    .collect(),
                targets,
            });
        }
        Ok(Self {
            rules: compiled,
            grace: rules.grace()?,
            max_leaver_share: rules.leaver_share(),
            labels,
        })
    }

    /// The leaver share above which an import needs `force`.
    pub(crate) fn max_leaver_share(&self) -> f64 {
        self.max_leaver_share
    }

    /// `group:NAME` or `role:NAME`.
    pub(crate) fn label(&self, target: GrantTarget) -> String {
        self.labels
            .get(&target)
            .cloned()
            .unwrap_or_else(|| match target {
                GrantTarget::Group(g) => format!("group:{g}"),
                GrantTarget::Role(r) => format!("role:{r}"),
            })
    }

    /// The (rule, access) pairs `user` is owed; nothing for anyone not active
    /// or suspended.
    pub(crate) fn owed(&self, user: &Principal) -> BTreeSet<(String, GrantTarget)> {
        if user.kind != PrincipalKind::User || user.status == Status::Deprovisioned {
            return BTreeSet::new();
        }
        self.rules
            .iter()
            .filter(|rule| rule.when.iter().all(|(key, want)| matches(user, key, want)))
            .flat_map(|rule| rule.targets.iter().map(|t| (rule.id.clone(), *t)))
            .collect()
    }

    /// The access (labels) `user` is owed, whatever rule gives it.
    pub(crate) fn owed_labels(&self, user: &Principal) -> BTreeSet<String> {
        self.owed(user)
            .into_iter()
            .map(|(_, t)| self.label(t))
            .collect()
    }

    /// Recomputes `user`'s birthright inside `tx`; `before` is the user as
    /// it was (none for a new user). Returns the audit events to commit.
    pub(crate) async fn stage(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        user: &Principal,
        before: Option<&Principal>,
    ) -> Result<Vec<AuditEvent>> {
        if before.is_none() {
            let mut events = self.stage_new(tx, ctx, std::slice::from_ref(user)).await?;
            return Ok(events.pop().unwrap_or_default());
        }
        if user.kind != PrincipalKind::User {
            return Ok(Vec::new());
        }
        let existing = store::grants_of(tx, ctx.tenant, user.id).await?;
        if existing.is_empty() && self.rules.is_empty() {
            return Ok(Vec::new());
        }
        let owed = self.owed(user);
        // A move keeps the old position's access for the grace; a leaver or
        // a rehire (coming back from deprovisioned) never does.
        let grace = before.is_some_and(|b| b.status != Status::Deprovisioned)
            && user.status != Status::Deprovisioned
            && self.grace.is_positive();
        let remove_at = ctx.now.checked_add(self.grace).unwrap_or(ctx.now);

        let mut changes = Changes::default();
        let mut standing: Vec<Standing> = Vec::new();
        let mut touched: BTreeSet<GrantTarget> = BTreeSet::new();
        for grant in &existing {
            let key = (grant.rule_id.clone(), grant.target);
            let mut remove_after = grant.remove_after;
            if owed.contains(&key) {
                if remove_after.take().is_some() {
                    store::set_remove_after(tx, grant, None).await?;
                    changes.restored.insert(grant.target);
                    touched.insert(grant.target);
                }
            } else if !grace || remove_after.is_some_and(|at| at <= ctx.now) {
                store::delete_grant(tx, grant).await?;
                touched.insert(grant.target);
                continue;
            } else if remove_after.is_none() {
                store::set_remove_after(tx, grant, Some(remove_at)).await?;
                remove_after = Some(remove_at);
                touched.insert(grant.target);
            }
            standing.push(Standing {
                target: grant.target,
                remove_after,
            });
        }
        let held_by_hand = self
            .held_by_hand(tx, user, before, &existing, &owed)
            .await?;
        for (rule_id, target) in &owed {
            let recorded = existing
                .iter()
                .any(|g| &g.rule_id == rule_id && g.target == *target);
            if recorded || held_by_hand.contains(target) {
                continue;
            }
            store::insert_grant(
                tx,
                &BirthrightGrant {
                    tenant_id: ctx.tenant,
                    principal_id: user.id,
                    rule_id: rule_id.clone(),
                    target: *target,
                    granted_at: ctx.now,
                    remove_after: None,
                },
            )
            .await?;
            if !standing.iter().any(|s| s.target == *target) {
                changes.granted.insert(*target);
            }
            standing.push(Standing {
                target: *target,
                remove_after: None,
            });
            touched.insert(*target);
        }
        for target in touched {
            let grants = standing.iter().filter(|s| s.target == target);
            let live = grants.clone().any(|s| s.remove_after.is_none());
            let last = grants.filter_map(|s| s.remove_after).max();
            match (live, last) {
                (true, _) => set_access(tx, ctx, user, target, None).await?,
                (false, Some(at)) => {
                    set_access(tx, ctx, user, target, Some(at)).await?;
                    changes.scheduled.insert(target, at);
                }
                (false, None) => {
                    remove_access(tx, user, target).await?;
                    changes.removed.insert(target);
                }
            }
        }
        changes.restored.retain(|t| !changes.granted.contains(t));
        if changes.granted.is_empty()
            && changes.removed.is_empty()
            && changes.scheduled.is_empty()
            && changes.restored.is_empty()
        {
            return Ok(Vec::new());
        }
        let moved = before.is_some() && user.status != Status::Deprovisioned;
        if moved && (!changes.removed.is_empty() || !changes.scheduled.is_empty()) {
            self.notify_manager(tx, ctx, user, &changes).await?;
        }
        let labels = |set: &BTreeSet<GrantTarget>| -> Vec<String> {
            set.iter().map(|t| self.label(*t)).collect()
        };
        let scheduled: Vec<Value> = changes
            .scheduled
            .iter()
            .map(|(t, at)| json!({"access": self.label(*t), "remove_after": at}))
            .collect();
        Ok(vec![
            AuditEvent::new(ctx, "user.birthright", Some(format!("user:{}", user.id)))
                .with_details(json!({
                    "granted": labels(&changes.granted),
                    "removed": labels(&changes.removed),
                    "removal_scheduled": scheduled,
                    "restored": labels(&changes.restored),
                })),
        ])
    }

    /// Gives new users (just inserted inside `tx`, holding nothing yet) what
    /// the rules owe them, in a few statements for all of them. Returns each
    /// user's audit events, in order.
    pub(crate) async fn stage_new(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        users: &[Principal],
    ) -> Result<Vec<Vec<AuditEvent>>> {
        let mut grants = Vec::new();
        let mut memberships = Vec::new();
        let mut assignments = Vec::new();
        let mut events = Vec::with_capacity(users.len());
        for user in users {
            let owed = self.owed(user);
            let targets: BTreeSet<GrantTarget> = owed.iter().map(|(_, t)| *t).collect();
            grants.extend(owed.into_iter().map(|(rule_id, target)| BirthrightGrant {
                tenant_id: ctx.tenant,
                principal_id: user.id,
                rule_id,
                target,
                granted_at: ctx.now,
                remove_after: None,
            }));
            for target in &targets {
                match *target {
                    GrantTarget::Group(group_id) => memberships.push(Membership {
                        group_id,
                        member_id: user.id,
                        expires_at: None,
                        created_at: ctx.now,
                    }),
                    GrantTarget::Role(role_id) => assignments.push(RoleAssignment {
                        id: AssignmentId::generate(),
                        tenant_id: ctx.tenant,
                        role_id,
                        principal_id: user.id,
                        expires_at: None,
                        created_at: ctx.now,
                    }),
                }
            }
            events.push(if targets.is_empty() {
                Vec::new()
            } else {
                let granted: Vec<String> = targets.iter().map(|t| self.label(*t)).collect();
                vec![
                    AuditEvent::new(ctx, "user.birthright", Some(format!("user:{}", user.id)))
                        .with_details(json!({
                            "granted": granted,
                            "removed": [],
                            "removal_scheduled": [],
                            "restored": [],
                        })),
                ]
            });
        }
        store::insert_grants(tx, &grants).await?;
        principals::upsert_memberships(tx, ctx.tenant, &memberships).await?;
        roles::upsert_assignments(tx, &assignments).await?;
        Ok(events)
    }

    /// Owed access the user already holds without any birthright record:
    /// granted by hand, so no rule may take it away later.
    async fn held_by_hand(
        &self,
        tx: &mut WriteTx,
        user: &Principal,
        before: Option<&Principal>,
        existing: &[BirthrightGrant],
        owed: &BTreeSet<(String, GrantTarget)>,
    ) -> Result<BTreeSet<GrantTarget>> {
        let unrecorded: BTreeSet<GrantTarget> = owed
            .iter()
            .map(|(_, t)| *t)
            .filter(|t| !existing.iter().any(|g| g.target == *t))
            .collect();
        // A new user holds nothing yet.
        if before.is_none() || unrecorded.is_empty() {
            return Ok(BTreeSet::new());
        }
        let mut held = BTreeSet::new();
        for m in principals::memberships_of(tx, user.id).await? {
            held.insert(GrantTarget::Group(m.group_id));
        }
        for a in roles::assignments_of(tx, user.id).await? {
            held.insert(GrantTarget::Role(a.role_id));
        }
        Ok(unrecorded.intersection(&held).copied().collect())
    }

    /// Queues a notice to the user's manager listing what the move removes.
    async fn notify_manager(
        &self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        user: &Principal,
        changes: &Changes,
    ) -> Result<()> {
        let Some(manager) = user
            .attributes
            .get("manager")
            .and_then(Value::as_str)
            .and_then(|m| m.parse().ok())
        else {
            return Ok(());
        };
        let Some(email) = principals::by_id(tx, ctx.tenant, manager)
            .await?
            .and_then(|m| m.email)
        else {
            return Ok(());
        };
        let mut lines = Vec::new();
        for target in &changes.removed {
            lines.push(format!("- {}: removed now", self.label(*target)));
        }
        for (target, at) in &changes.scheduled {
            lines.push(format!("- {}: removed at {at}", self.label(*target)));
        }
        let who = user.display_name.as_deref().unwrap_or(&user.name);
        let body = format!(
            "{who} ({}) changed position. Access their previous position gave them goes:\n\n{}\n\n\
             If they still need any of it, grant it to them by hand before then.\n",
            user.name,
            lines.join("\n")
        );
        mail::put_outbox(
            tx,
            &mail::OutboxMail {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: ctx.tenant,
                recipient: email,
                subject: format!("Access change for {who}"),
                body,
                created_at: ctx.now,
            },
        )
        .await?;
        Ok(())
    }
}

/// Recomputes `user`'s birthright inside the caller's transaction, with the
/// tenant's rules as they stand in it; `before` is the user as it was (none
/// for a new one). Returns the audit events to commit with the change.
pub(crate) async fn stage_birthright(
    tx: &mut WriteTx,
    ctx: &Ctx,
    user: &Principal,
    before: Option<&Principal>,
) -> Result<Vec<AuditEvent>> {
    if user.kind != PrincipalKind::User {
        return Ok(Vec::new());
    }
    Birthright::load(tx, ctx.tenant)
        .await?
        .stage(tx, ctx, user, before)
        .await
}

/// Gives (or changes the expiry of) the access a grant stands for.
async fn set_access(
    tx: &mut WriteTx,
    ctx: &Ctx,
    user: &Principal,
    target: GrantTarget,
    expires_at: Option<Timestamp>,
) -> Result<()> {
    match target {
        GrantTarget::Group(group_id) => {
            let membership = Membership {
                group_id,
                member_id: user.id,
                expires_at,
                created_at: ctx.now,
            };
            principals::upsert_membership(tx, ctx.tenant, &membership).await?;
        }
        GrantTarget::Role(role_id) => {
            roles::upsert_assignment(
                tx,
                &RoleAssignment {
                    id: AssignmentId::generate(),
                    tenant_id: ctx.tenant,
                    role_id,
                    principal_id: user.id,
                    expires_at,
                    created_at: ctx.now,
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// Takes away the access a grant stood for.
async fn remove_access(tx: &mut WriteTx, user: &Principal, target: GrantTarget) -> Result<()> {
    match target {
        GrantTarget::Group(group) => {
            principals::delete_membership(tx, group, user.id).await?;
        }
        GrantTarget::Role(role) => {
            for a in roles::assignments_of(tx, user.id).await? {
                if a.role_id == role {
                    roles::delete_assignment(tx, user.tenant_id, a.id).await?;
                }
            }
        }
    }
    Ok(())
}

/// Whether `user`'s field or attribute `key` matches `want`.
fn matches(user: &Principal, key: &str, want: &Value) -> bool {
    let have = match key {
        "user_type" => user.user_type.map(|t| Value::from(t.as_str())),
        "status" => Some(Value::from(user.status.as_str())),
        _ => user.attributes.get(key).cloned(),
    };
    let Some(have) = have else { return false };
    let equal = |want: &Value| match (&have, want) {
        (Value::String(a), Value::String(b)) => name_key(a.trim()) == name_key(b.trim()),
        (a, b) => a == b,
    };
    match want {
        Value::Array(any) => any.iter().any(equal),
        one => equal(one),
    }
}

/// The attribute a rule key names: HR column names (snake case) are
/// accepted for the SCIM attribute names users carry.
pub(crate) fn attribute_name(key: &str) -> &str {
    match key {
        "cost_center" => "costCenter",
        "employee_number" | "employee_id" => "employeeNumber",
        other => other,
    }
}

/// Resolves a rule's group and role names: `(Some(target), label)` or
/// `(None, label)` for a name that does not exist.
async fn resolve(
    conn: &mut impl Conn,
    tenant: TenantId,
    rule: &BirthrightRule,
) -> Result<Vec<(Option<GrantTarget>, String)>> {
    let mut out = Vec::new();
    for group in &rule.groups {
        let found =
            principals::by_name(conn, tenant, PrincipalKind::Group, &name_key(group.trim()))
                .await?
                .map(|g| GrantTarget::Group(g.id));
        out.push((found, format!("group:{}", group.trim())));
    }
    for role in &rule.roles {
        let found = roles::by_name(conn, tenant, &name_key(role.trim()))
            .await?
            .map(|r| GrantTarget::Role(r.id));
        out.push((found, format!("role:{}", role.trim())));
    }
    Ok(out)
}

async fn read_rules(conn: &mut impl Conn, tenant: TenantId) -> Result<LifecycleRules> {
    match settings::document(conn, settings::Document::LifecycleRules, tenant).await? {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| AppError::Internal(format!("lifecycle rules: {e}"))),
        None => Ok(LifecycleRules::default()),
    }
}

impl App {
    /// The tenant's lifecycle rules (none if unset).
    pub async fn lifecycle_rules(&self, ctx: &Ctx) -> Result<LifecycleRules> {
        let mut conn = self.store().read().await?;
        read_rules(&mut conn, ctx.tenant).await
    }

    /// Replaces the tenant's lifecycle rules. Every group and role they
    /// name must exist. Applies from the next change of each user (or the
    /// next HR import); the audit event keeps each version.
    pub async fn set_lifecycle_rules(
        &self,
        ctx: &Ctx,
        mut rules: LifecycleRules,
    ) -> Result<LifecycleRules> {
        for rule in &mut rules.birthright {
            rule.id = rule.id.trim().to_owned();
            rule.description = idplane_core::directory::normalize_text(
                "description",
                rule.description.as_deref(),
            )?;
            for name in rule.groups.iter_mut().chain(rule.roles.iter_mut()) {
                *name = normalize_name("birthright", name)?;
            }
        }
        rules.check_shape()?;
        let mut tx = self.store().write().await?;
        let mut missing = Vec::new();
        for rule in &rules.birthright {
            for (target, label) in resolve(&mut tx, ctx.tenant, rule).await? {
                if target.is_none() {
                    missing.push(format!(
                        "rule `{}`: no {}",
                        rule.id,
                        label.replacen(':', " `", 1) + "`"
                    ));
                }
            }
        }
        if !missing.is_empty() {
            return Err(ValidationError::new("birthright", missing.join("; ")).into());
        }
        let text = serde_json::to_string(&rules).map_err(|e| AppError::Internal(e.to_string()))?;
        settings::put_document(
            &mut tx,
            settings::Document::LifecycleRules,
            ctx.tenant,
            &text,
            ctx.now,
        )
        .await?;
        let event = AuditEvent::new(
            ctx,
            "lifecycle.rules.update",
            Some(format!("tenant:{}", ctx.tenant)),
        )
        .with_details(json!({"rules": rules}));
        tx.commit(event).await?;
        Ok(rules)
    }
}
