//! Group commit for SQLite's single writer.
//!
//! SQLite allows one writer, and every commit costs an fsync. Rather than a
//! transaction per change, the writes of concurrent requests run one after
//! another inside one open transaction, each in its own savepoint, and a
//! committer task commits them together: one fsync for the group, and the
//! audit chain heads read once and written once per group.
//!
//! A unit keeps the guarantees of a transaction of its own. It sees the
//! database as it is (including the units before it in the group) and
//! nothing of it is visible to readers until its group commits. A unit
//! dropped without commit is rolled back to its savepoint before the next
//! unit starts, so it leaves nothing behind. [`crate::WriteTx::commit_all`]
//! returns only once the group's COMMIT is durable, with its outcome: if the
//! group's commit fails, every unit in it fails, and none of it was written.

use std::sync::Arc;
use std::time::Duration;

use idplane_core::TenantId;
use idplane_core::audit::{AuditEvent, AuditRecord, ChainHead};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot};

use crate::audit::Heads;
use crate::codec::ROWS_PER_STATEMENT;
use crate::{Result, StoreError};

/// How long a unit waits for its turn before giving up, like a pool
/// acquire timeout.
const TURN_TIMEOUT: Duration = Duration::from_secs(30);

const ROLLBACK_UNIT: &str = "ROLLBACK TO SAVEPOINT unit; RELEASE SAVEPOINT unit";

/// The open group transaction and what its units left for the committer.
pub(crate) struct GroupState {
    writer: AnyPool,
    tx: Option<Transaction<'static, Any>>,
    /// A unit was dropped without commit: its savepoint is still open and
    /// must be rolled back before anything else runs.
    abandoned: bool,
    /// A unit committed and its savepoint is still open: it is released in
    /// the same statement that opens the next unit's, or by COMMIT (which
    /// ends every savepoint). Each statement is a hand-off to SQLite's
    /// worker thread, so this saves one per change.
    unreleased: bool,
    /// Audit chain heads as this group has moved them, written at commit.
    pub(crate) heads: Heads,
    /// The heads as the last commit left them, for appends that need no
    /// read of them (see [`GroupState::commit_alone`]).
    known: Heads,
    /// Units that committed their savepoint, waiting for the group commit.
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
    /// Wakes the committer when the state goes away, so its thread ends.
    _stop: StopCommitter,
}

struct StopCommitter(Arc<Notify>);

impl Drop for StopCommitter {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

impl GroupState {
    /// The open transaction's connection; a unit only exists while there
    /// is one.
    #[expect(
        clippy::expect_used,
        reason = "units are only made with an open transaction"
    )]
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        self.tx
            .as_mut()
            .expect("a group unit always has an open transaction")
    }

    /// Ends an abandoned unit and opens the transaction if none is open.
    async fn open_transaction(&mut self) -> Result<()> {
        if let Some(tx) = &mut self.tx
            && std::mem::take(&mut self.abandoned)
        {
            tx.execute(ROLLBACK_UNIT).await?;
        }
        if self.tx.is_none() {
            self.tx = Some(self.writer.begin().await?);
        }
        Ok(())
    }

    /// Appends `events` and commits them in one hand-off to SQLite's worker
    /// thread, from BEGIN to COMMIT, when every tenant's head is known from
    /// the last commit: the way the audit log's writer appends when no
    /// change is waiting. Gives the events back for the general path when
    /// it cannot, or when the statements fail (a head another process moved
    /// is not where this writer left it).
    async fn commit_alone(
        &mut self,
        events: Vec<AuditEvent>,
    ) -> Result<Vec<AuditRecord>, Vec<AuditEvent>> {
        if events.len() > ROWS_PER_STATEMENT {
            return Err(events);
        }
        let from: Heads = events
            .iter()
            .filter_map(|e| self.known.get_key_value(&e.tenant_id))
            .map(|(tenant, head)| (*tenant, head.clone()))
            .collect();
        let mut heads = from.clone();
        let records = crate::audit::chain(&mut heads, events)?;
        let outcome = async {
            let statements = crate::audit::append_transaction(&records, &from, &heads)?.query()?;
            let mut conn = self.writer.acquire().await?;
            if let Err(e) = statements.execute(&mut *conn).await {
                // Closing the connection rolls back whatever the statements
                // left open; the pool opens a new one.
                let _ = conn.close().await;
                return Err(StoreError::from(e));
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                self.known.extend(heads);
                Ok(records)
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit append failed; retrying with the heads read afresh");
                self.known.clear();
                Err(records.into_iter().map(|r| r.event).collect())
            }
        }
    }

    /// Opens the transaction if needed and starts a unit's savepoint.
    async fn open_unit(&mut self) -> Result<()> {
        self.open_transaction().await?;
        let start = if std::mem::take(&mut self.unreleased) {
            "RELEASE SAVEPOINT unit; SAVEPOINT unit"
        } else {
            "SAVEPOINT unit"
        };
        self.conn().execute(start).await?;
        Ok(())
    }
}

/// The shared half of group commit: the state and the committer's signal.
#[derive(Clone)]
pub(crate) struct Group {
    state: Arc<Mutex<GroupState>>,
    kick: Arc<Notify>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Group")
    }
}

impl Group {
    /// Starts the committer for `writer` (a pool of one connection) on a
    /// thread of its own.
    pub(crate) fn start(writer: AnyPool) -> Result<Self> {
        let kick = Arc::new(Notify::new());
        let group = Group {
            state: Arc::new(Mutex::new(GroupState {
                writer,
                tx: None,
                abandoned: false,
                unreleased: false,
                heads: Heads::new(),
                known: Heads::new(),
                waiters: Vec::new(),
                _stop: StopCommitter(kick.clone()),
            })),
            kick,
        };
        crate::dedicated::spawn(
            "idplane-committer",
            committer(Arc::downgrade(&group.state), group.kick.clone()),
        )?;
        Ok(group)
    }

    /// Waits for the writer's turn.
    async fn turn(&self) -> Result<OwnedMutexGuard<GroupState>> {
        tokio::time::timeout(TURN_TIMEOUT, self.state.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))
    }

    /// Waits for the writer, opens the group transaction if none is open,
    /// and starts a unit in a savepoint.
    pub(crate) async fn unit(&self) -> Result<Unit> {
        let mut guard = self.turn().await?;
        if let Err(e) = guard.open_unit().await {
            // Whatever is open is left for the committer to end.
            drop(guard);
            self.kick.notify_one();
            return Err(e);
        }
        Ok(Unit {
            guard,
            kick: self.kick.clone(),
            committed: false,
        })
    }

    /// Appends events that belong to no change and commits the group with
    /// them at once, on the caller's task. A writer with a thread of its
    /// own (the audit log's) so waits only for the statements and the
    /// fsync: no savepoint, and no hand-off to the committer's thread and
    /// back, each of which costs a wake-up on a busy machine.
    pub(crate) async fn append_and_commit(
        &self,
        events: Vec<AuditEvent>,
    ) -> Result<Vec<AuditRecord>> {
        let mut state = self.turn().await?;
        let events = if state.tx.is_none() {
            match state.commit_alone(events).await {
                Ok(records) => return Ok(records),
                Err(events) => events,
            }
        } else {
            events
        };
        let appended = async {
            state.open_transaction().await?;
            let (records, heads) = crate::audit::append(&mut *state, events).await?;
            state.heads.extend(heads);
            Ok::<_, StoreError>(records)
        }
        .await;
        match appended {
            Ok(records) => commit_group(&mut state)
                .await
                .map(|()| records)
                .map_err(StoreError::GroupCommit),
            Err(e) => {
                // Outside a savepoint, a failed statement may have left part
                // of its rows: the whole group goes, so nothing is half
                // written.
                abort_group(&mut state, &e).await;
                Err(e)
            }
        }
    }

    /// Commits whatever is open; for shutdown.
    pub(crate) async fn flush(&self) {
        let mut state = self.state.lock().await;
        let _ = commit_group(&mut state).await;
    }
}

/// One change inside the group transaction, holding the writer's turn.
pub(crate) struct Unit {
    guard: OwnedMutexGuard<GroupState>,
    kick: Arc<Notify>,
    committed: bool,
}

impl Unit {
    pub(crate) fn state(&mut self) -> &mut GroupState {
        &mut self.guard
    }

    /// Ends the unit with `heads` as the chain heads it moved (its
    /// savepoint is released with the next unit's start or the group's
    /// COMMIT), gives up the turn and waits for the group commit.
    pub(crate) async fn commit(mut self, heads: Heads) -> Result<()> {
        self.committed = true;
        self.guard.unreleased = true;
        self.guard.heads.extend(heads);
        let (done, outcome) = oneshot::channel();
        self.guard.waiters.push(done);
        drop(self);
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::GroupCommit(message)),
            Err(_) => Err(StoreError::GroupCommit("the committer stopped".into())),
        }
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if !self.committed {
            self.guard.abandoned = true;
        }
        // The committer ends the group once the units queued behind this
        // one have had their turn.
        self.kick.notify_one();
    }
}

/// Commits the open group whenever a unit asks. Taking the (fair) lock puts
/// the committer behind the units already waiting, so a busy writer commits
/// everything queued at once.
async fn committer(state: std::sync::Weak<Mutex<GroupState>>, kick: Arc<Notify>) {
    loop {
        kick.notified().await;
        let Some(state) = state.upgrade() else { return };
        let mut guard = state.lock().await;
        // Its units hear the outcome.
        let _ = commit_group(&mut guard).await;
    }
}

/// Commits the open group, if any, and tells its units the outcome.
async fn commit_group(state: &mut GroupState) -> Result<(), String> {
    let Some(mut tx) = state.tx.take() else {
        return Ok(());
    };
    let heads = std::mem::take(&mut state.heads);
    let abandoned = std::mem::take(&mut state.abandoned);
    state.unreleased = false;
    let outcome = async {
        if abandoned {
            tx.execute(ROLLBACK_UNIT).await?;
        }
        for (tenant, head) in &heads {
            crate::audit::write_head(&mut tx, *tenant, head).await?;
        }
        tx.commit().await?;
        Ok::<_, StoreError>(())
    }
    .await
    .map_err(|e| {
        tracing::error!(error = %e, units = state.waiters.len(), "group commit failed");
        e.to_string()
    });
    if outcome.is_ok() {
        state.known.extend(heads);
    } else {
        state.known.clear();
    }
    for waiter in state.waiters.drain(..) {
        // A unit whose request went away no longer listens.
        let _ = waiter.send(outcome.clone());
    }
    outcome
}

/// Rolls the open group back, failing every unit in it.
async fn abort_group(state: &mut GroupState, error: &StoreError) {
    if let Some(tx) = state.tx.take()
        && let Err(e) = tx.rollback().await
    {
        tracing::error!(error = %e, "group rollback failed");
    }
    state.heads.clear();
    state.known.clear();
    state.abandoned = false;
    state.unreleased = false;
    tracing::error!(error = %error, units = state.waiters.len(), "group aborted");
    for waiter in state.waiters.drain(..) {
        let _ = waiter.send(Err(format!("the group was rolled back: {error}")));
    }
}

impl crate::Conn for GroupState {
    fn conn(&mut self) -> &mut AnyConnection {
        GroupState::conn(self)
    }
    fn backend(&self) -> crate::Backend {
        crate::Backend::Sqlite
    }
}

impl crate::audit::Chain for GroupState {
    /// Only heads this group moved: the appends that reach here read the
    /// others afresh.
    fn moved_head(&mut self, tenant: TenantId) -> Option<ChainHead> {
        self.heads.get(&tenant).cloned()
    }
}
