//! The jobs a user's dates call for: `user.start` at the start date,
//! `user.end` at the end date, and for contractors `contractor.reminder`
//! ahead of the end date. Called inside every transaction that creates or
//! changes a user (admin API, HR import, SCIM), so the jobs always follow
//! the stored dates: extending an end date moves them, leaving cancels them.

use idplane_core::directory::{Principal, PrincipalKind, Status, UserType};
use idplane_core::{Ctx, PrincipalId, Timestamp};
use idplane_store::WriteTx;
use idplane_store::jobs as store_jobs;
use jiff::SignedDuration;
use serde_json::json;

use crate::Result;
use crate::jobs::{self, JobKind};

/// Days before a contractor's end date their sponsor is reminded.
pub const REMINDER_DAYS: [i64; 2] = [14, 1];

/// The key of the reminder `days` before the end of `user`.
fn reminder_key(user: PrincipalId, days: i64) -> String {
    format!("{user}:{days}d")
}

/// Schedules, moves or cancels the jobs of `after` (a user; others have
/// none), given the stored state `before` it (`None` when just created).
pub(crate) async fn schedule_user_jobs(
    tx: &mut WriteTx,
    ctx: &Ctx,
    before: Option<&Principal>,
    after: &Principal,
) -> Result<()> {
    if after.kind != PrincipalKind::User {
        return Ok(());
    }
    if after.status == Status::Deprovisioned {
        store_jobs::cancel_subject(tx, ctx.tenant, &after.id.to_string()).await?;
        return Ok(());
    }
    // New, or back from deprovisioning (a rehire): every date counts anew.
    let fresh = before.is_none_or(|b| b.status == Status::Deprovisioned);
    let moved = |date: fn(&Principal) -> Option<Timestamp>| {
        fresh || before.is_some_and(|b| date(b) != date(after))
    };
    let retyped = before.is_some_and(|b| b.user_type != after.user_type);
    // A user just created has no jobs to cancel: only dates cost a write.
    let created = before.is_none();
    if (moved(|p| p.end_date) || retyped) && !(created && after.end_date.is_none()) {
        schedule_end(tx, ctx, after).await?;
    }
    if moved(|p| p.start_date) && !(created && after.start_date.is_none()) {
        schedule_start(tx, ctx, after).await?;
    }
    Ok(())
}

async fn schedule_end(tx: &mut WriteTx, ctx: &Ctx, user: &Principal) -> Result<()> {
    let key = user.id.to_string();
    let payload = json!({ "user": key });
    match user.end_date {
        // An end date already past runs at once: deprovisioning catches up.
        Some(end) => jobs::schedule(tx, ctx, JobKind::UserEnd, key, payload, end).await?,
        None => jobs::cancel(tx, ctx, JobKind::UserEnd, &key).await?,
    }
    let contractor_end = user
        .end_date
        .filter(|_| user.user_type == Some(UserType::Contractor));
    for days in REMINDER_DAYS {
        let key = reminder_key(user.id, days);
        // A reminder whose moment has passed is not sent late: the sponsor
        // who set so near an end date knows it.
        let at = contractor_end
            .and_then(|end| end.checked_sub(SignedDuration::from_hours(days * 24)).ok())
            .filter(|at| *at > ctx.now);
        match at {
            Some(at) => {
                let payload = json!({ "user": user.id.to_string(), "days_before": days });
                jobs::schedule(tx, ctx, JobKind::ContractorReminder, key, payload, at).await?;
            }
            None => jobs::cancel(tx, ctx, JobKind::ContractorReminder, &key).await?,
        }
    }
    Ok(())
}

async fn schedule_start(tx: &mut WriteTx, ctx: &Ctx, user: &Principal) -> Result<()> {
    let key = user.id.to_string();
    match user.start_date.filter(|start| *start > ctx.now) {
        Some(start) => {
            let payload = json!({ "user": key });
            jobs::schedule(tx, ctx, JobKind::UserStart, key, payload, start).await
        }
        None => jobs::cancel(tx, ctx, JobKind::UserStart, &key).await,
    }
}
