//! The handlers of the jobs a user's dates schedule. Each completes its job
//! in the transaction of its effect and is idempotent: run again (a crashed
//! runner's job taken over), it finds the work done and only completes.

use idplane_core::audit::AuditEvent;
use idplane_core::directory::{Principal, PrincipalKind, Status, UserType};
use idplane_core::time::in_force;
use idplane_core::{Ctx, Timestamp};
use idplane_store::jobs::Job;
use idplane_store::mail::{self, OutboxMail};
use idplane_store::{WriteTx, principals};
use serde_json::{Value, json};

use super::{LeaverCause, LeaverReason, stage_leaver};
use crate::authn::email::Mailer;
use crate::directory::principals::target;
use crate::jobs::{self, JobKind};
use crate::{App, AppError, Result};

/// The user the job is about, if they still exist as a user.
async fn load_user(
    tx: &mut impl idplane_store::Conn,
    ctx: &Ctx,
    job: &Job,
) -> Result<Option<Principal>> {
    let id = jobs::subject(job)?;
    Ok(principals::by_id(tx, ctx.tenant, id)
        .await?
        .filter(|p| p.kind == PrincipalKind::User))
}

/// Completes `job` without effect, recording why under the job's action.
async fn skip(
    mut tx: WriteTx,
    ctx: &Ctx,
    job: &Job,
    runner: &str,
    action: &str,
    user: Option<&Principal>,
    why: &str,
) -> Result<()> {
    jobs::complete(&mut tx, ctx, job, runner).await?;
    let target = user
        .map(target)
        .or_else(|| jobs::subject(job).ok().map(|id| format!("user:{id}")));
    tx.commit(
        AuditEvent::new(ctx, action, target).with_details(json!({ "job": job.id, "skipped": why })),
    )
    .await?;
    Ok(())
}

/// `user.end`: deprovisions a user whose end date has passed.
pub(crate) async fn user_end(app: &App, ctx: &Ctx, job: &Job, runner: &str) -> Result<()> {
    const ACTION: &str = "user.end";
    let mut tx = app.store().write().await?;
    let Some(user) = load_user(&mut tx, ctx, job).await? else {
        return skip(
            tx,
            ctx,
            job,
            runner,
            ACTION,
            None,
            "the user no longer exists",
        )
        .await;
    };
    if user.status == Status::Deprovisioned {
        return skip(
            tx,
            ctx,
            job,
            runner,
            ACTION,
            Some(&user),
            "already deprovisioned",
        )
        .await;
    }
    let Some(end) = user.end_date else {
        return skip(
            tx,
            ctx,
            job,
            runner,
            ACTION,
            Some(&user),
            "the user has no end date",
        )
        .await;
    };
    if in_force(Some(end), ctx.now) {
        // Claimed before the stored end date (a clock ahead on this node):
        // done for now, and due again at the end date.
        jobs::complete(&mut tx, ctx, job, runner).await?;
        jobs::schedule(
            &mut tx,
            ctx,
            JobKind::UserEnd,
            job.key.clone(),
            job.payload.clone(),
            end,
        )
        .await?;
        tx.commit(
            AuditEvent::new(ctx, ACTION, Some(target(&user))).with_details(
                json!({ "job": job.id, "skipped": "not yet ended", "end_date": end }),
            ),
        )
        .await?;
        return Ok(());
    }
    jobs::complete(&mut tx, ctx, job, runner).await?;
    let reason = match user.user_type {
        Some(UserType::Contractor) => LeaverReason::ContractorEnd,
        _ => LeaverReason::HrTermination,
    };
    let outcome = stage_leaver(app, &mut tx, ctx, &user, &LeaverCause::new(reason)).await?;
    tx.commit_all(outcome.events).await?;
    app.directory_changed();
    app.notify_logout(ctx, outcome.notices);
    Ok(())
}

/// `user.start`: records that a joiner's account took effect. (A welcome
/// notice would be sent from here.)
pub(crate) async fn user_start(app: &App, ctx: &Ctx, job: &Job, runner: &str) -> Result<()> {
    const ACTION: &str = "user.activate";
    let mut tx = app.store().write().await?;
    let Some(user) = load_user(&mut tx, ctx, job).await? else {
        return skip(
            tx,
            ctx,
            job,
            runner,
            ACTION,
            None,
            "the user no longer exists",
        )
        .await;
    };
    let Some(start) = user.start_date.filter(|s| *s <= ctx.now) else {
        return skip(
            tx,
            ctx,
            job,
            runner,
            ACTION,
            Some(&user),
            "no start date has come",
        )
        .await;
    };
    if user.status == Status::Deprovisioned {
        return skip(tx, ctx, job, runner, ACTION, Some(&user), "deprovisioned").await;
    }
    // Connected applications learn that the account is active now.
    crate::provisioning::enqueue_pushes(&mut tx, ctx, user.id).await?;
    jobs::complete(&mut tx, ctx, job, runner).await?;
    tx.commit(
        AuditEvent::new(ctx, ACTION, Some(target(&user))).with_details(json!({
            "job": job.id,
            "start_date": start,
            "status": user.status,
            "active": user.is_active_at(ctx.now),
        })),
    )
    .await?;
    app.directory_changed();
    Ok(())
}

/// `contractor.reminder`: tells the sponsor that a contractor's engagement
/// ends soon, by mail and, when the tenant configured one, by webhook.
///
/// Delivery happens before the completing transaction (the writer is not
/// held during network I/O), so a crash in between sends a notice twice:
/// webhook receivers deduplicate by the notice's `id` (the job id).
pub(crate) async fn contractor_reminder(
    app: &App,
    ctx: &Ctx,
    job: &Job,
    runner: &str,
) -> Result<()> {
    const ACTION: &str = "contractor.reminder";
    let (user, sponsor) = {
        let mut conn = app.store().read().await?;
        let user = load_user(&mut conn, ctx, job).await?;
        let sponsor = match user.as_ref().and_then(|u| u.sponsor_id) {
            Some(id) => principals::by_id(&mut conn, ctx.tenant, id).await?,
            None => None,
        };
        (user, sponsor)
    };
    let Some(user) = user else {
        let tx = app.store().write().await?;
        return skip(
            tx,
            ctx,
            job,
            runner,
            ACTION,
            None,
            "the user no longer exists",
        )
        .await;
    };
    let end = Some(&user)
        .filter(|u| u.status != Status::Deprovisioned)
        .and_then(|u| u.end_date)
        .filter(|end| in_force(Some(*end), ctx.now));
    let Some(end) = end else {
        let tx = app.store().write().await?;
        return skip(
            tx,
            ctx,
            job,
            runner,
            ACTION,
            Some(&user),
            "the engagement is over",
        )
        .await;
    };
    let days_before = job.payload.get("days_before").and_then(Value::as_i64);
    let recipient = sponsor.as_ref().and_then(|s| s.email.clone());
    let notice = json!({
        "type": ACTION,
        "id": job.id,
        "tenant": ctx.tenant.to_string(),
        "contractor": {
            "id": user.id.to_string(),
            "username": user.name,
            "display_name": user.display_name,
            "email": user.email,
            "end_date": end,
        },
        "sponsor": sponsor.as_ref().map(|s| json!({
            "id": s.id.to_string(),
            "username": s.name,
            "email": s.email,
        })),
        "days_before": days_before,
        "sent_at": ctx.now,
    });
    let webhook = match app.lifecycle_settings(ctx).await?.webhook_url {
        Some(url) => Some(post_notice(&url, &notice).await?),
        None => None,
    };
    let (subject, body) = reminder_mail(&user, end, ctx.now);
    if let (Some(to), Mailer::Smtp(smtp)) = (&recipient, &app.settings().mailer) {
        // Sent before the transaction; a failure retries the whole job.
        smtp.send(to, &subject, &body).await?;
    }
    let mut tx = app.store().write().await?;
    let via = match (&recipient, &app.settings().mailer) {
        (None, _) => None,
        (Some(to), Mailer::Outbox) => {
            mail::put_outbox(
                &mut tx,
                &OutboxMail {
                    id: uuid::Uuid::now_v7().to_string(),
                    tenant_id: ctx.tenant,
                    recipient: to.clone(),
                    subject,
                    body,
                    created_at: ctx.now,
                },
            )
            .await?;
            Some("outbox")
        }
        (Some(_), Mailer::Smtp(_)) => Some("smtp"),
    };
    jobs::complete(&mut tx, ctx, job, runner).await?;
    tx.commit(
        AuditEvent::new(ctx, ACTION, Some(target(&user))).with_details(json!({
            "job": job.id,
            "end_date": end,
            "days_before": days_before,
            "sponsor": sponsor.as_ref().map(target),
            "mail": via,
            "webhook": webhook,
        })),
    )
    .await?;
    Ok(())
}

/// The mail to a sponsor.
fn reminder_mail(user: &Principal, end: Timestamp, now: Timestamp) -> (String, String) {
    let who = user.display_name.as_deref().unwrap_or(&user.name);
    let days = (end.as_second() - now.as_second()).div_euclid(86_400);
    let subject = format!("Contractor access ends soon: {who}");
    let body = format!(
        "The engagement of {who} ({}) ends at {end}, in {days} day(s).\n\n\
         From then on their account grants nothing and is deprovisioned. \
         If the engagement goes on, extend their end date before then.\n",
        user.name
    );
    (subject, body)
}

/// POSTs `notice` to the tenant's webhook; returns the status. A refusal
/// or a failed connection is an error, so the job retries later.
async fn post_notice(url: &str, notice: &Value) -> Result<u16> {
    let response = crate::outbound::client()
        .map_err(|e| AppError::Internal(e.to_string()))?
        .post(url)
        .json(notice)
        .send()
        .await
        .map_err(|e| AppError::Internal(format!("lifecycle webhook: {e}")))?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(AppError::Internal(format!(
            "lifecycle webhook answered {status}"
        )))
    }
}
