//! The job runner: claims due jobs from the store and dispatches each by
//! kind to its handler. A handler does its work in one write transaction
//! that also completes the job, so the effect, its audit event and the
//! completion commit together; a crashed runner's job is re-leased once its
//! lease expires, and every handler is idempotent. A failed handler is
//! retried with exponential back-off until the store dead-letters it.

use std::time::Duration;

use idplane_core::{Actor, Ctx, PrincipalId, RequestMeta, Timestamp};
use idplane_store::jobs::{self, Job, JobFilter, JobState, NewJob};
use idplane_store::{Page, Paged, StoreError, WriteTx};
use jiff::SignedDuration;
use serde_json::Value;

use crate::{App, AppError, Result};

/// How long a claimed job is a runner's before another may take it over.
pub const LEASE: Duration = Duration::from_secs(300);
/// Jobs claimed at a time.
const BATCH: u32 = 50;
/// The first retry waits this long; each further failure doubles it.
const BACKOFF_BASE: SignedDuration = SignedDuration::from_secs(30);
/// The longest wait between two attempts.
const BACKOFF_MAX: SignedDuration = SignedDuration::from_hours(6);

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobKind {
    /// A joiner's start date: records `user.activate`.
    UserStart,
    /// A user's end date: deprovisions them (cause `contractor_end` or
    /// `hr_termination`).
    UserEnd,
    /// Tells a contractor's sponsor that the engagement ends soon.
    ContractorReminder,
    /// Pushes a principal's latest state to a connected application.
    ScimPush,
}

impl JobKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserStart => "user.start",
            Self::UserEnd => "user.end",
            Self::ContractorReminder => "contractor.reminder",
            Self::ScimPush => "scim.push",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user.start" => Self::UserStart,
            "user.end" => Self::UserEnd,
            "contractor.reminder" => Self::ContractorReminder,
            "scim.push" => Self::ScimPush,
            _ => return None,
        })
    }
}

/// Schedules (or moves) the job of `kind` and `key` inside `tx`.
pub(crate) async fn schedule(
    tx: &mut WriteTx,
    ctx: &Ctx,
    kind: JobKind,
    key: String,
    payload: Value,
    run_at: Timestamp,
) -> Result<()> {
    let job = NewJob {
        tenant_id: ctx.tenant,
        kind: kind.as_str().to_owned(),
        key,
        payload,
        run_at,
        now: ctx.now,
    };
    Ok(jobs::schedule(tx, &job).await?)
}

/// Cancels the pending job of `kind` and `key` inside `tx`.
pub(crate) async fn cancel(tx: &mut WriteTx, ctx: &Ctx, kind: JobKind, key: &str) -> Result<()> {
    jobs::cancel(tx, ctx.tenant, kind.as_str(), key).await?;
    Ok(())
}

/// Completes `job` inside the transaction of its effect; refused when
/// `runner` lost the lease (the caller's transaction must then not commit).
pub(crate) async fn complete(tx: &mut WriteTx, ctx: &Ctx, job: &Job, runner: &str) -> Result<()> {
    lease_held(jobs::complete(tx, job, runner, ctx.now).await)
}

/// Dead-letters `job` at once inside `tx` (an error no retry can fix);
/// refused like [`complete`] when `runner` lost the lease.
pub(crate) async fn bury(
    tx: &mut WriteTx,
    ctx: &Ctx,
    job: &Job,
    runner: &str,
    error: &str,
) -> Result<()> {
    lease_held(jobs::bury(tx, job, runner, error, ctx.now).await)
}

fn lease_held(done: idplane_store::Result<()>) -> Result<()> {
    match done {
        Err(StoreError::LeaseLost(id)) => Err(AppError::Conflict(format!(
            "the lease on job {id} was lost; its new holder runs it"
        ))),
        other => Ok(other?),
    }
}

/// The user a job is about (its payload's `user`).
pub(crate) fn subject(job: &Job) -> Result<PrincipalId> {
    job.payload
        .get("user")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| AppError::Internal(format!("job {} names no user", job.id)))
}

/// The wait before retrying a job that failed `attempts` times before.
fn backoff(attempts: i64) -> SignedDuration {
    let doublings = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    BACKOFF_BASE
        .checked_mul(1 << doublings)
        .map_or(BACKOFF_MAX, |d| d.min(BACKOFF_MAX))
}

/// The error text kept on a failed job: internal details included, since
/// only administrators read it.
fn describe(err: &AppError) -> String {
    match err {
        AppError::Internal(detail) => detail.clone(),
        other => other.to_string(),
    }
}

impl App {
    /// Runs every job due at `now` as `runner` (unique per process, e.g.
    /// `host/pid/random`): claims them in batches, dispatches each to its
    /// handler, and schedules a retry for each that fails. Returns how many
    /// completed. Jobs that came due while no server ran are caught up.
    pub async fn run_due_jobs(&self, runner: &str, now: Timestamp) -> Result<usize> {
        let now = Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now);
        let mut completed = 0;
        loop {
            // A failed job is retried after `now`, so this loop ends.
            let batch = jobs::claim(self.store(), runner, now, LEASE, BATCH).await?;
            if batch.is_empty() {
                return Ok(completed);
            }
            for job in batch {
                match self.run_job(runner, now, &job).await {
                    Ok(()) => completed += 1,
                    Err(err) => self.job_failed(runner, now, &job, &err).await?,
                }
            }
        }
    }

    async fn run_job(&self, runner: &str, now: Timestamp, job: &Job) -> Result<()> {
        let ctx = Ctx {
            tenant: job.tenant_id,
            actor: Actor::System,
            now,
            request: RequestMeta {
                request_id: Some(format!("job:{}", job.id)),
                ..RequestMeta::default()
            },
        };
        let Some(kind) = JobKind::parse(&job.kind) else {
            return Err(AppError::Internal(format!(
                "unknown job kind `{}`",
                job.kind
            )));
        };
        use crate::lifecycle::dates;
        match kind {
            JobKind::UserStart => dates::user_start(self, &ctx, job, runner).await,
            JobKind::UserEnd => dates::user_end(self, &ctx, job, runner).await,
            JobKind::ContractorReminder => {
                dates::contractor_reminder(self, &ctx, job, runner).await
            }
            JobKind::ScimPush => crate::provisioning::push::push(self, &ctx, job, runner).await,
        }
    }

    async fn job_failed(
        &self,
        runner: &str,
        now: Timestamp,
        job: &Job,
        err: &AppError,
    ) -> Result<()> {
        let error = describe(err);
        let retry_at = now + backoff(job.attempts);
        match jobs::fail(self.store(), job, runner, &error, now, retry_at).await {
            Ok(JobState::Dead) => {
                tracing::error!(job = %job.id, kind = %job.kind, %error, "job failed for the last time; it is dead");
            }
            Ok(_) => {
                tracing::warn!(job = %job.id, kind = %job.kind, %error, %retry_at, "job failed; retrying later");
            }
            Err(StoreError::LeaseLost(_)) => {
                tracing::info!(job = %job.id, kind = %job.kind, "job lease lost; its new holder runs it");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// The tenant's jobs matching `filter`, in creation order (admin view).
    pub async fn jobs(&self, ctx: &Ctx, filter: &JobFilter, page: &Page) -> Result<Paged<Job>> {
        let mut conn = self.store().read().await?;
        Ok(jobs::list(&mut conn, ctx.tenant, filter, page).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_bound() {
        assert_eq!(backoff(0), SignedDuration::from_secs(30));
        assert_eq!(backoff(1), SignedDuration::from_secs(60));
        assert_eq!(backoff(3), SignedDuration::from_secs(240));
        assert_eq!(backoff(12), BACKOFF_MAX);
        assert_eq!(backoff(i64::MAX), BACKOFF_MAX);
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [
            JobKind::UserStart,
            JobKind::UserEnd,
            JobKind::ContractorReminder,
            JobKind::ScimPush,
        ] {
            assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(JobKind::parse("user.delete"), None);
    }
}
