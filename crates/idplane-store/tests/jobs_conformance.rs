//! Store conformance for leased jobs: every body runs on SQLite, and on
//! PostgreSQL when `IDPLANE_TEST_DATABASE_URL` is set (see `conformance.rs`).

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

use std::collections::HashSet;
use std::time::Duration;

use idplane_core::{TenantId, Timestamp};
use idplane_store::jobs::{self, Job, JobFilter, JobState, MAX_ATTEMPTS, NewJob};
use idplane_store::{Page, Store, StoreError};
use serde_json::json;

use support::{TestDb, at, commit, create_tenant, read};

conformance! {
    schedule_reschedules_and_cancels
        => sqlite_schedule_reschedules_and_cancels, postgres_schedule_reschedules_and_cancels;
    claim_takes_only_due_free_jobs
        => sqlite_claim_takes_only_due_free_jobs, postgres_claim_takes_only_due_free_jobs;
    concurrent_claimers_never_share_a_job
        => sqlite_concurrent_claimers_never_share_a_job,
           postgres_concurrent_claimers_never_share_a_job;
    an_expired_lease_is_taken_over
        => sqlite_an_expired_lease_is_taken_over, postgres_an_expired_lease_is_taken_over;
    fail_backs_off_and_dead_letters
        => sqlite_fail_backs_off_and_dead_letters, postgres_fail_backs_off_and_dead_letters;
    cancel_subject_spares_other_subjects
        => sqlite_cancel_subject_spares_other_subjects,
           postgres_cancel_subject_spares_other_subjects;
}

const LEASE: Duration = Duration::from_secs(60);

fn new_job(tenant: TenantId, key: &str, run_at: Timestamp) -> NewJob {
    NewJob {
        tenant_id: tenant,
        kind: "user.end".into(),
        key: key.into(),
        payload: json!({"key": key}),
        run_at,
        now: at(0),
    }
}

async fn schedule(store: &Store, jobs: &[NewJob]) {
    let mut tx = store.write().await.unwrap();
    for job in jobs {
        jobs::schedule(&mut tx, job).await.unwrap();
    }
    commit(tx, jobs[0].tenant_id, "job.schedule").await;
}

async fn get(store: &Store, tenant: TenantId, key: &str) -> Option<Job> {
    jobs::by_key(&mut read(store).await, tenant, "user.end", key)
        .await
        .unwrap()
}

async fn complete(
    store: &Store,
    job: &Job,
    runner: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut tx = store.write().await.unwrap();
    jobs::complete(&mut tx, job, runner, now).await?;
    commit(tx, job.tenant_id, "job.complete").await;
    Ok(())
}

async fn schedule_reschedules_and_cancels(store: Store, _db: &TestDb) {
    let t = create_tenant(&store, "acme").await;
    schedule(&store, &[new_job(t.id, "u1", at(100))]).await;
    let first = get(&store, t.id, "u1").await.unwrap();
    assert_eq!(first.state, JobState::Pending);
    assert_eq!(first.run_at, at(100));
    assert_eq!(first.attempts, 0);

    // The same key again moves the one job.
    let mut moved = new_job(t.id, "u1", at(500));
    moved.payload = json!({"moved": true});
    moved.now = at(10);
    schedule(&store, &[moved]).await;
    let second = get(&store, t.id, "u1").await.unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.run_at, at(500));
    assert_eq!(second.payload, json!({"moved": true}));
    assert_eq!(second.created_at, at(0));
    assert_eq!(second.updated_at, at(10));
    let all = jobs::list(
        &mut read(&store).await,
        t.id,
        &JobFilter::default(),
        &Page {
            after: None,
            limit: 10,
        },
    )
    .await
    .unwrap();
    assert_eq!(all.items.len(), 1);

    // Another tenant's job of the same key is another job.
    let other = create_tenant(&store, "other").await;
    schedule(&store, &[new_job(other.id, "u1", at(100))]).await;

    let mut tx = store.write().await.unwrap();
    assert!(jobs::cancel(&mut tx, t.id, "user.end", "u1").await.unwrap());
    assert!(!jobs::cancel(&mut tx, t.id, "user.end", "u1").await.unwrap());
    commit(tx, t.id, "job.cancel").await;
    assert!(get(&store, t.id, "u1").await.is_none());
    assert!(get(&store, other.id, "u1").await.is_some());

    // A done job is history: cancel leaves it, schedule revives it.
    let claimed = jobs::claim(&store, "r", at(100), LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    complete(&store, &claimed[0], "r", at(101)).await.unwrap();
    let mut tx = store.write().await.unwrap();
    assert!(
        !jobs::cancel(&mut tx, other.id, "user.end", "u1")
            .await
            .unwrap()
    );
    commit(tx, other.id, "job.cancel").await;
    assert_eq!(
        get(&store, other.id, "u1").await.unwrap().state,
        JobState::Done
    );
    schedule(&store, &[new_job(other.id, "u1", at(900))]).await;
    let revived = get(&store, other.id, "u1").await.unwrap();
    assert_eq!(revived.state, JobState::Pending);
    assert_eq!(revived.run_at, at(900));
}

async fn claim_takes_only_due_free_jobs(store: Store, _db: &TestDb) {
    let t = create_tenant(&store, "acme").await;
    schedule(
        &store,
        &[
            new_job(t.id, "late", at(300)),
            new_job(t.id, "early", at(100)),
            new_job(t.id, "middle", at(200)),
        ],
    )
    .await;
    assert!(
        jobs::claim(&store, "r", at(99), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Due at exactly run_at; earliest first; the limit holds.
    let claimed = jobs::claim(&store, "r", at(200), LEASE, 1).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].key, "early");
    assert_eq!(claimed[0].lease_owner.as_deref(), Some("r"));
    assert_eq!(claimed[0].lease_until, Some(at(260)));
    let claimed = jobs::claim(&store, "r2", at(200), LEASE, 10).await.unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.key.as_str()).collect::<Vec<_>>(),
        ["middle"],
        "a leased job is not claimed again, a future one not yet"
    );
    // Completed jobs are never claimed again.
    complete(&store, &claimed[0], "r2", at(201)).await.unwrap();
    assert!(
        jobs::claim(&store, "r3", at(10_000), LEASE, 10)
            .await
            .unwrap()
            .iter()
            .all(|j| j.key != "middle")
    );
}

async fn concurrent_claimers_never_share_a_job(store: Store, _db: &TestDb) {
    let t = create_tenant(&store, "acme").await;
    let batch: Vec<_> = (0..60)
        .map(|i| new_job(t.id, &format!("u{i}"), at(i)))
        .collect();
    schedule(&store, &batch).await;
    let tasks: Vec<_> = (0..12)
        .map(|r| {
            let store = store.clone();
            tokio::spawn(async move {
                let runner = format!("runner-{r}");
                let mut mine = Vec::new();
                loop {
                    let got = jobs::claim(&store, &runner, at(100), LEASE, 3)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    assert!(
                        got.iter()
                            .all(|j| j.lease_owner.as_deref() == Some(&runner))
                    );
                    mine.extend(got.into_iter().map(|j| j.key));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        for key in task.await.unwrap() {
            assert!(seen.insert(key.clone()), "{key} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 60, "every job was claimed once");
}

async fn an_expired_lease_is_taken_over(store: Store, _db: &TestDb) {
    let t = create_tenant(&store, "acme").await;
    schedule(&store, &[new_job(t.id, "u1", at(10))]).await;
    // A runner claims and "crashes".
    let crashed = jobs::claim(&store, "crashed", at(10), LEASE, 10)
        .await
        .unwrap();
    assert_eq!(crashed.len(), 1);
    // Not before the lease ends (exclusive).
    let before = at(70) - jiff::SignedDuration::from_millis(1);
    assert!(
        jobs::claim(&store, "rescuer", before, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let rescued = jobs::claim(&store, "rescuer", at(70), LEASE, 10)
        .await
        .unwrap();
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0].id, crashed[0].id);
    // The crashed runner comes back: its lease is gone, completion refused.
    assert!(matches!(
        complete(&store, &crashed[0], "crashed", at(71)).await,
        Err(StoreError::LeaseLost(_))
    ));
    // The same runner name with a stale lease is refused too.
    let mut stale = rescued[0].clone();
    stale.lease_until = crashed[0].lease_until;
    assert!(matches!(
        complete(&store, &stale, "rescuer", at(71)).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(matches!(
        jobs::fail(&store, &crashed[0], "crashed", "late", at(71), at(80)).await,
        Err(StoreError::LeaseLost(_))
    ));
    complete(&store, &rescued[0], "rescuer", at(72))
        .await
        .unwrap();
    assert_eq!(get(&store, t.id, "u1").await.unwrap().state, JobState::Done);
    // A rescheduled job voids the lease held on it.
    schedule(&store, &[new_job(t.id, "u2", at(10))]).await;
    let held = jobs::claim(&store, "r", at(80), LEASE, 10).await.unwrap();
    schedule(&store, &[new_job(t.id, "u2", at(500))]).await;
    assert!(matches!(
        complete(&store, &held[0], "r", at(81)).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(get(&store, t.id, "u2").await.unwrap().run_at, at(500));
}

async fn fail_backs_off_and_dead_letters(store: Store, _db: &TestDb) {
    let t = create_tenant(&store, "acme").await;
    schedule(&store, &[new_job(t.id, "u1", at(0))]).await;
    let mut now = at(0);
    for attempt in 1..=MAX_ATTEMPTS {
        let job = jobs::claim(&store, "r", now, LEASE, 10).await.unwrap();
        assert_eq!(job.len(), 1, "attempt {attempt}");
        let retry_at = now + jiff::SignedDuration::from_secs(30 * attempt);
        let state = jobs::fail(&store, &job[0], "r", &"e".repeat(5000), now, retry_at)
            .await
            .unwrap();
        let stored = get(&store, t.id, "u1").await.unwrap();
        assert_eq!(stored.attempts, attempt);
        assert_eq!(stored.last_error.as_deref().map(str::len), Some(1000));
        assert_eq!(stored.lease_owner, None);
        if attempt < MAX_ATTEMPTS {
            assert_eq!(state, JobState::Pending);
            // Backed off: not due until retry_at.
            let early = retry_at - jiff::SignedDuration::from_millis(1);
            assert!(
                jobs::claim(&store, "r", early, LEASE, 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            now = retry_at;
        } else {
            assert_eq!(state, JobState::Dead);
        }
    }
    assert!(
        jobs::claim(&store, "r", at(1_000_000), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let dead = jobs::list(
        &mut read(&store).await,
        t.id,
        &JobFilter {
            state: Some(JobState::Dead),
            kind: Some("user.end".into()),
            subject: None,
        },
        &Page {
            after: None,
            limit: 10,
        },
    )
    .await
    .unwrap();
    assert_eq!(dead.items.len(), 1);
}

async fn cancel_subject_spares_other_subjects(store: Store, _db: &TestDb) {
    let t = create_tenant(&store, "acme").await;
    let mut reminder = new_job(t.id, "u1:14d", at(10));
    reminder.kind = "contractor.reminder".into();
    schedule(
        &store,
        &[
            new_job(t.id, "u1", at(10)),
            reminder,
            new_job(t.id, "u10", at(10)),
            new_job(t.id, "u1x", at(10)),
        ],
    )
    .await;
    let mut tx = store.write().await.unwrap();
    assert_eq!(jobs::cancel_subject(&mut tx, t.id, "u1").await.unwrap(), 2);
    commit(tx, t.id, "job.cancel").await;
    let left = jobs::list(
        &mut read(&store).await,
        t.id,
        &JobFilter::default(),
        &Page {
            after: None,
            limit: 10,
        },
    )
    .await
    .unwrap();
    let mut keys: Vec<_> = left.items.iter().map(|j| j.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["u10", "u1x"]);
}
