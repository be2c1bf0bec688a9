//! The audit log as the application uses it: a group-commit writer for
//! events that are not part of a state change, signed checkpoints of chain
//! heads, queries, offline verification and export.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idplane_core::audit::{AuditEvent, AuditRecord, ChainError, ChainVerifier, Checkpoint};
use idplane_core::{Ctx, TenantId};
use idplane_store::audit::AuditFilter;
use idplane_store::keys::StoredKey;
use idplane_store::{Store, StoreError, keys};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::keyring::{ed25519_sign, ed25519_verify};
use crate::{App, AppError, Result};

/// The purpose under which the checkpoint signing key is stored.
pub const CHECKPOINT_KEY_PURPOSE: &str = "audit-checkpoint";
/// Most events committed in one transaction by the writer.
const MAX_BATCH: usize = 4096;
/// Events that may wait for the writer before callers are slowed down.
const QUEUE_DEPTH: usize = 65_536;
/// How long a batch that nobody waits for (queued observations only) stays
/// open for more. Each commit has a fixed cost (an fsync, the chain heads,
/// a WAL checkpoint now and then) that a steady stream of decision-log
/// events otherwise pays every millisecond. The writer sleeps through it
/// rather than waking for each event; a caller that waits ends it at once.
const LINGER: Duration = Duration::from_millis(5);

type Ack = oneshot::Sender<std::result::Result<AuditRecord, String>>;

enum Message {
    /// An event, and the caller waiting for it to be durable, if any.
    Append(Box<AuditEvent>, Option<Ack>),
    /// Answered once everything queued before it is durable.
    Flush(oneshot::Sender<()>),
}

impl Message {
    /// Whether somebody waits for this message's outcome.
    fn awaited(&self) -> bool {
        match self {
            Message::Append(_, ack) => ack.is_some(),
            Message::Flush(_) => true,
        }
    }
}

/// Appends events in batches: each caller waits until its event is durable,
/// and many concurrent callers share one transaction (one fsync).
#[derive(Clone, Debug)]
pub struct AuditWriter {
    queue: mpsc::Sender<Message>,
    backlog: Arc<AtomicUsize>,
    /// Ends the writer's linger: somebody waits.
    urgent: Arc<Notify>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Append(..) => "Append",
            Message::Flush(_) => "Flush",
        })
    }
}

impl AuditWriter {
    /// Starts the writer on a thread of its own (see
    /// [`idplane_store::dedicated`]); it ends when the last writer handle is
    /// dropped.
    pub fn start(store: Store) -> Result<Self> {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let backlog = Arc::new(AtomicUsize::new(0));
        let urgent = Arc::new(Notify::new());
        let writer = run_writer(store, rx, backlog.clone(), urgent.clone());
        idplane_store::dedicated::spawn("idplane-audit", writer)
            .map_err(|e| AppError::Internal(format!("could not start the audit writer: {e}")))?;
        Ok(Self {
            queue,
            backlog,
            urgent,
        })
    }

    /// Appends `event` and returns once it is durable.
    pub async fn record(&self, event: AuditEvent) -> Result<AuditRecord> {
        let (ack, done) = oneshot::channel();
        self.send(event, Some(ack)).await?;
        self.urgent.notify_one();
        done.await
            .map_err(|_| AppError::Internal("the audit writer has stopped".into()))?
            .map_err(AppError::Internal)
    }

    /// Queues `event` without waiting for it to be durable (only for room
    /// in the queue, so a slow store still slows callers down). For
    /// observations answered before they are written, such as the
    /// decision log; never for a state change, whose event commits with it.
    pub async fn enqueue(&self, event: AuditEvent) -> Result<()> {
        self.send(event, None).await
    }

    async fn send(&self, event: AuditEvent, ack: Option<Ack>) -> Result<()> {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if self
            .queue
            .send(Message::Append(Box::new(event), ack))
            .await
            .is_err()
        {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            return Err(AppError::Internal("the audit writer has stopped".into()));
        }
        Ok(())
    }

    /// Events queued but not yet durable.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Waits until everything queued before this call is durable.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Message::Flush(tx)).await.is_ok() {
            self.urgent.notify_one();
            let _ = rx.await;
        }
    }
}

async fn run_writer(
    store: Store,
    mut rx: mpsc::Receiver<Message>,
    backlog: Arc<AtomicUsize>,
    urgent: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if !batch.iter().any(Message::awaited) {
            linger(&mut rx, &mut batch, &urgent).await;
        }
        let mut events = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for message in batch.drain(..) {
            match message {
                Message::Append(event, ack) => {
                    events.push(*event);
                    acks.push(ack);
                }
                Message::Flush(done) => flushes.push(done),
            }
        }
        let n = events.len();
        if n > 0 {
            match store.append_events(events).await {
                Ok(records) => {
                    for (ack, record) in acks.into_iter().zip(records) {
                        if let Some(ack) = ack {
                            let _ = ack.send(Ok(record));
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, events = n, "audit batch failed; callers are told");
                    for ack in acks.into_iter().flatten() {
                        let _ = ack.send(Err(format!("audit write failed: {e}")));
                    }
                }
            }
            backlog.fetch_sub(n, Ordering::Relaxed);
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Waits [`LINGER`], or until somebody waits for the writer, then adds to
/// `batch` what has arrived meanwhile. Not listening to the queue while it
/// waits spares a wake-up per queued event.
async fn linger(rx: &mut mpsc::Receiver<Message>, batch: &mut Vec<Message>, urgent: &Notify) {
    tokio::select! {
        () = tokio::time::sleep(LINGER) => {}
        () = urgent.notified() => {}
    }
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(message) => batch.push(message),
            Err(_) => return,
        }
    }
}

impl App {
    /// Records an event that is not part of a state change (e.g. a failed
    /// authentication). Returns once durable.
    pub async fn record(&self, event: AuditEvent) -> Result<AuditRecord> {
        self.audit_writer().record(event).await
    }

    /// Events of the context's tenant matching `filter`.
    pub async fn audit_events(&self, ctx: &Ctx, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let mut conn = self.store().read().await?;
        Ok(idplane_store::audit::query(&mut conn, ctx.tenant, filter).await?)
    }

    /// The tenant's newest checkpoint, signing a new one first if the chain
    /// has grown since.
    pub async fn audit_checkpoint(&self, tenant: TenantId) -> Result<Option<Checkpoint>> {
        let mut conn = self.store().read().await?;
        let head = idplane_store::audit::heads(&mut conn)
            .await?
            .into_iter()
            .find(|(t, _)| *t == tenant)
            .map(|(_, head)| head);
        let latest = idplane_store::audit::latest_checkpoint(&mut conn, tenant).await?;
        drop(conn);
        match (head, latest) {
            (None, latest) => Ok(latest),
            (Some(head), Some(latest)) if latest.seq >= head.seq => Ok(Some(latest)),
            (Some(head), _) => {
                let key = self.checkpoint_key().await?;
                let pkcs8 = self.keyring().open(&key.id, &key.sealed_private_key)?;
                let signed_at = self.clock().now();
                let message = Checkpoint::signed_bytes(tenant, head.seq, &head.hash, signed_at);
                let checkpoint = Checkpoint {
                    tenant_id: tenant,
                    seq: head.seq,
                    hash: head.hash,
                    signed_at,
                    key_id: key.id,
                    signature: ed25519_sign(&pkcs8, &message)?,
                };
                idplane_store::audit::insert_checkpoint(self.store(), &checkpoint).await?;
                tracing::info!(
                    tenant = %checkpoint.tenant_id, seq = checkpoint.seq, hash = %checkpoint.hash,
                    key_id = %checkpoint.key_id, signature = %checkpoint.signature, "audit checkpoint signed"
                );
                Ok(Some(checkpoint))
            }
        }
    }

    /// Signs a checkpoint for every tenant whose chain grew. Run periodically.
    pub async fn checkpoint_all(&self) -> Result<usize> {
        let heads = {
            let mut conn = self.store().read().await?;
            idplane_store::audit::heads(&mut conn).await?
        };
        let mut signed = 0;
        for (tenant, head) in heads {
            if let Some(cp) = self.audit_checkpoint(tenant).await?
                && cp.seq == head.seq
            {
                signed += 1;
            }
        }
        Ok(signed)
    }

    async fn checkpoint_key(&self) -> Result<StoredKey> {
        let mut conn = self.store().read().await?;
        keys::current(&mut conn, CHECKPOINT_KEY_PURPOSE)
            .await?
            .ok_or_else(|| AppError::Internal("no checkpoint signing key".into()))
    }

    /// Creates the checkpoint signing key on first start.
    pub(crate) async fn ensure_signing_key(&self) -> Result<()> {
        loop {
            let mut conn = self.store().read().await?;
            if let Some(key) = keys::current(&mut conn, CHECKPOINT_KEY_PURPOSE).await? {
                // Fail at start, not at the first checkpoint, if the root key is wrong.
                self.keyring().open(&key.id, &key.sealed_private_key)?;
                return Ok(());
            }
            drop(conn);
            if self.create_checkpoint_key().await? {
                return Ok(());
            }
        }
    }

    /// False when another node stored its key first (nothing written).
    async fn create_checkpoint_key(&self) -> Result<bool> {
        let (id, public_key, pkcs8) = self.keyring().generate_ed25519()?;
        let key = StoredKey {
            sealed_private_key: self.keyring().seal(&id, &pkcs8)?,
            id,
            purpose: CHECKPOINT_KEY_PURPOSE.to_owned(),
            algorithm: "Ed25519".to_owned(),
            public_key,
            created_at: self.clock().now(),
            retired_at: None,
        };
        let ctx = self.ctx(
            self.default_tenant_id().await?,
            idplane_core::Actor::System,
            Default::default(),
        );
        let mut tx = self.store().write().await?;
        match keys::insert(&mut tx, &key).await {
            Ok(()) => {}
            Err(StoreError::Duplicate(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        tx.commit(
            AuditEvent::new(&ctx, "key.create", Some(format!("key:{}", key.id)))
                .with_details(json!({"purpose": key.purpose, "algorithm": key.algorithm})),
        )
        .await?;
        Ok(true)
    }
}

/// The outcome of verifying every chain in a store.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// (tenant, records verified) per chain.
    pub chains: Vec<(TenantId, i64)>,
}

/// A verification failure, naming the tenant and the first broken link.
#[derive(Debug, thiserror::Error)]
#[error("tenant {tenant}: {error}")]
pub struct VerifyError {
    pub tenant: TenantId,
    pub error: ChainError,
}

/// Why offline verification could not complete.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error(transparent)]
    Broken(#[from] VerifyError),
    #[error("checkpoint: {0}")]
    BadCheckpoint(String),
    #[error(transparent)]
    App(#[from] AppError),
}

/// Verifies every tenant's chain from its first record to its head, and,
/// given a checkpoint, that the chain still reaches it and its signature
/// holds. Reads only.
pub async fn verify_store(
    store: &Store,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport, VerifyFailure> {
    let mut conn = store.read().await.map_err(AppError::from)?;
    let heads = idplane_store::audit::heads(&mut conn)
        .await
        .map_err(AppError::from)?;
    if let Some(cp) = checkpoint {
        let key = keys::by_id(&mut conn, &cp.key_id)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| VerifyFailure::BadCheckpoint(format!("unknown key `{}`", cp.key_id)))?;
        let message = Checkpoint::signed_bytes(cp.tenant_id, cp.seq, &cp.hash, cp.signed_at);
        if !ed25519_verify(&key.public_key, &message, &cp.signature) {
            return Err(VerifyFailure::BadCheckpoint(
                "the signature does not verify".into(),
            ));
        }
    }
    let mut report = VerifyReport::default();
    for (tenant, head) in heads {
        let mut verifier = ChainVerifier::default();
        let broken = |error| VerifyError { tenant, error };
        loop {
            let filter = AuditFilter {
                after_seq: Some(verifier.head().seq),
                limit: 5000,
                ..Default::default()
            };
            let page = idplane_store::audit::query(&mut conn, tenant, &filter)
                .await
                .map_err(AppError::from)?;
            if page.is_empty() {
                break;
            }
            for record in &page {
                verifier.check(record).map_err(broken)?;
                if let Some(cp) =
                    checkpoint.filter(|cp| cp.tenant_id == tenant && cp.seq == record.seq)
                    && cp.hash != record.hash
                {
                    return Err(broken(ChainError::CheckpointMismatch { seq: record.seq }).into());
                }
            }
        }
        let last = verifier.head().clone();
        if last.seq != head.seq || last.hash != head.hash {
            return Err(broken(ChainError::Truncated {
                last: last.seq,
                checkpoint: head.seq,
            })
            .into());
        }
        if let Some(cp) = checkpoint.filter(|cp| cp.tenant_id == tenant)
            && last.seq < cp.seq
        {
            return Err(broken(ChainError::Truncated {
                last: last.seq,
                checkpoint: cp.seq,
            })
            .into());
        }
        report.chains.push((tenant, last.seq));
    }
    if let Some(cp) = checkpoint
        && !report.chains.iter().any(|(t, _)| *t == cp.tenant_id)
    {
        return Err(VerifyError {
            tenant: cp.tenant_id,
            error: ChainError::Truncated {
                last: 0,
                checkpoint: cp.seq,
            },
        }
        .into());
    }
    Ok(report)
}

/// An export format for audit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// One idplane record per line, as stored, with its hashes.
    Jsonl,
    /// One OCSF 1.x event per line (API Activity, class 6003).
    Ocsf,
}

/// One record in the chosen format.
pub fn export_line(record: &AuditRecord, format: ExportFormat) -> Value {
    match format {
        ExportFormat::Jsonl => serde_json::to_value(record).unwrap_or(Value::Null),
        ExportFormat::Ocsf => ocsf(record),
    }
}

/// Maps a record to an OCSF API Activity event: create/read/update/delete
/// activities by the action's verb, status by outcome, the chain position in
/// `metadata` so the export stays checkable.
fn ocsf(record: &AuditRecord) -> Value {
    let e = &record.event;
    let verb = e.action.rsplit('.').next().unwrap_or_default();
    let (activity_id, activity) = match verb {
        "create" | "add" | "assign" | "complete" => (1, "Create"),
        "read" | "list" => (2, "Read"),
        "update" | "suspend" | "restore" => (3, "Update"),
        "delete" | "remove" | "unassign" | "revoke" => (4, "Delete"),
        _ => (99, "Other"),
    };
    let (status_id, status) = match e.outcome {
        idplane_core::audit::Outcome::Success => (1, "Success"),
        idplane_core::audit::Outcome::Failure => (2, "Failure"),
    };
    json!({
        "category_uid": 6,
        "category_name": "Application Activity",
        "class_uid": 6003,
        "class_name": "API Activity",
        "type_uid": 6003 * 100 + activity_id,
        "activity_id": activity_id,
        "activity_name": activity,
        "severity_id": if status_id == 1 { 1 } else { 3 },
        "status_id": status_id,
        "status": status,
        "time": e.time.as_millisecond(),
        "message": e.action,
        "actor": {
            "user": { "uid": e.actor },
            "invoked_by": e.on_behalf_of,
        },
        "api": {
            "operation": e.action,
            "request": { "uid": e.request_id },
        },
        "src_endpoint": { "ip": e.source_ip },
        "http_request": { "user_agent": e.user_agent },
        "resources": [{ "uid": e.target }],
        "unmapped": e.details,
        "metadata": {
            "uid": e.id.to_string(),
            "sequence": record.seq,
            "tenant_uid": e.tenant_id.to_string(),
            "log_name": "idplane-audit",
            "product": { "name": "idplane", "vendor_name": "idplane" },
            "version": "1.3.0",
            "extension": { "hash": record.hash, "prev_hash": record.prev_hash },
        },
    })
}
