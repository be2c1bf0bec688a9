//! Reconciliation: reads every user a target holds (`GET /Users` page by
//! page) and compares it with what idplane would push: users missing
//! there, users there that are not idplane's, and mapped attributes that
//! differ. With `fix`, the drifted users' pushes are scheduled (the users
//! unknown to idplane are reported, never touched).

use std::collections::HashMap;

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind, Status};
use idplane_core::{Ctx, PrincipalId};
use idplane_store::principals::{self, PrincipalFilter};
use idplane_store::{Page, WriteTx};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::client::{CallError, ScimClient};
use super::mapping::Mapping;
use super::outbox::{receives, schedule_push};
use super::targets::{audit_target, resolve_target};
use crate::{App, AppError, Result};

/// Users asked for per page.
const PAGE: u64 = 100;
/// Most users read from one target: a bound against a target that pages
/// forever.
const MAX_REMOTE_USERS: u64 = 200_000;

/// A user idplane would push that the target lacks.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct MissingUser {
    #[schema(value_type = String)]
    pub id: PrincipalId,
    pub user_name: String,
}

/// A user the target holds that is not one idplane pushes to it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct UnknownUser {
    pub remote_id: Option<String>,
    pub user_name: Option<String>,
    pub external_id: Option<String>,
}

/// A user whose copy at the target differs from what idplane would push.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DriftedUser {
    #[schema(value_type = String)]
    pub id: PrincipalId,
    pub user_name: String,
    pub remote_id: Option<String>,
    /// The mapped attribute paths that differ.
    pub attributes: Vec<String>,
}

/// What a reconciliation found.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct DriftReport {
    pub target: String,
    /// Users read from the target.
    pub remote_users: u64,
    pub missing: Vec<MissingUser>,
    pub unknown: Vec<UnknownUser>,
    pub different: Vec<DriftedUser>,
    /// Pushes scheduled to repair the drift (`fix` only).
    pub pushes_scheduled: usize,
}

impl DriftReport {
    /// Whether the target holds exactly what idplane would push.
    pub fn in_sync(&self) -> bool {
        self.missing.is_empty() && self.different.is_empty()
    }
}

impl App {
    /// Compares what the target `reference` (id or name) holds with what
    /// idplane would push; with `fix`, schedules pushes for what drifted.
    pub async fn reconcile(&self, ctx: &Ctx, reference: &str, fix: bool) -> Result<DriftReport> {
        let mut conn = self.store().read().await?;
        let target = resolve_target(&mut conn, ctx, reference).await?;
        let mapping = Mapping::from_json(&target.mapping)?;
        let mut expected: HashMap<PrincipalId, Principal> = HashMap::new();
        let mut page = Page {
            after: None,
            limit: 500,
        };
        let filter = PrincipalFilter {
            kind: Some(PrincipalKind::User),
            ..PrincipalFilter::default()
        };
        loop {
            let batch = principals::list(&mut conn, ctx.tenant, &filter, &page).await?;
            page.after = batch.items.last().map(|p| p.id.to_string());
            for p in batch.items {
                if receives(&mut conn, ctx, &target, &p).await? {
                    expected.insert(p.id, p);
                }
            }
            if !batch.more {
                break;
            }
        }
        drop(conn);

        let client = ScimClient::new(&target.base_url, self.target_token(&target)?);
        let mut report = DriftReport {
            target: target.name.clone(),
            remote_users: 0,
            missing: Vec::new(),
            unknown: Vec::new(),
            different: Vec::new(),
            pushes_scheduled: 0,
        };
        let mut seen = std::collections::HashSet::new();
        let mut start = 1;
        loop {
            let (users, total) = client.list_users(start, PAGE).await.map_err(unreachable)?;
            if users.is_empty() {
                break;
            }
            start += users.len() as u64;
            report.remote_users += users.len() as u64;
            for remote in &users {
                compare(ctx, &mapping, &expected, remote, &mut seen, &mut report);
            }
            if start > total || report.remote_users >= MAX_REMOTE_USERS {
                break;
            }
        }
        for p in expected.values() {
            if !seen.contains(&p.id) && p.status != Status::Deprovisioned {
                report.missing.push(MissingUser {
                    id: p.id,
                    user_name: p.name.clone(),
                });
            }
        }
        report.missing.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        report
            .different
            .sort_by(|a, b| a.user_name.cmp(&b.user_name));

        let mut tx = self.store().write().await?;
        if fix {
            report.pushes_scheduled =
                schedule_repairs(&mut tx, ctx, &target, &expected, &report).await?;
        }
        let event = AuditEvent::new(
            ctx,
            "provisioning.reconcile",
            Some(audit_target(&target.id)),
        )
        .with_details(json!({
            "fix": fix,
            "remote_users": report.remote_users,
            "missing": report.missing.len(),
            "unknown": report.unknown.len(),
            "different": report.different.len(),
            "pushes_scheduled": report.pushes_scheduled,
        }));
        tx.commit(event).await?;
        Ok(report)
    }
}

/// Sorts one remote user into the report.
fn compare(
    ctx: &Ctx,
    mapping: &Mapping,
    expected: &HashMap<PrincipalId, Principal>,
    remote: &Value,
    seen: &mut std::collections::HashSet<PrincipalId>,
    report: &mut DriftReport,
) {
    let text = |key: &str| remote.get(key).and_then(Value::as_str).map(str::to_owned);
    let ours = text("externalId")
        .and_then(|x| x.parse::<PrincipalId>().ok())
        .and_then(|id| expected.get(&id));
    let Some(p) = ours else {
        report.unknown.push(UnknownUser {
            remote_id: text("id"),
            user_name: text("userName"),
            external_id: text("externalId"),
        });
        return;
    };
    seen.insert(p.id);
    let attributes = if p.status == Status::Deprovisioned {
        // A leaver's copy is only to be inactive.
        let active = remote
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if active {
            vec!["active".to_owned()]
        } else {
            Vec::new()
        }
    } else {
        mapping.differences(p, remote, ctx.now)
    };
    if !attributes.is_empty() {
        report.different.push(DriftedUser {
            id: p.id,
            user_name: p.name.clone(),
            remote_id: text("id"),
            attributes,
        });
    }
}

async fn schedule_repairs(
    tx: &mut WriteTx,
    ctx: &Ctx,
    target: &idplane_store::provisioning::Target,
    expected: &HashMap<PrincipalId, Principal>,
    report: &DriftReport,
) -> Result<usize> {
    let ids = report
        .missing
        .iter()
        .map(|m| m.id)
        .chain(report.different.iter().map(|d| d.id));
    let mut scheduled = 0;
    for id in ids {
        if let Some(p) = expected.get(&id) {
            schedule_push(tx, ctx, target, p, None).await?;
            scheduled += 1;
        }
    }
    Ok(scheduled)
}

/// A failed listing, told to the administrator who asked.
fn unreachable(err: CallError) -> AppError {
    AppError::Conflict(format!("the target could not be read: {err}"))
}
