//! The audit log: appending to per-tenant hash chains, querying, checkpoints.

use std::collections::{BTreeSet, HashMap};

use idplane_core::audit::{
    AuditEvent, AuditRecord, ChainHead, Checkpoint, DECISION_ACTION, GENESIS_HASH, Outcome,
};
use idplane_core::{TenantId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::codec::{Sql, Values, enum_col, id, insert_rows, millis, push_rows, time, to_json};
use crate::{Backend, Conn, Result, Store, StoreError};

macro_rules! columns {
    () => {
        "tenant_id, seq, id, time, actor, on_behalf_of, action, target, outcome, source_ip, \
         user_agent, request_id, details, prev_hash, hash"
    };
}

macro_rules! insert_head {
    () => {
        concat!("INSERT INTO audit_events (", columns!(), ") VALUES")
    };
}

/// Where events are appended: a connection inside a transaction, and the
/// chain heads that transaction has already moved (SQLite's group
/// transaction moves them for several changes before it writes them).
pub(crate) trait Chain: Conn {
    fn moved_head(&mut self, tenant: TenantId) -> Option<ChainHead>;
}

/// Appends events to their tenants' chains inside `tx`, in the order given,
/// and returns the records (in that order) with the heads they moved (for
/// the caller to write at commit). Heads are locked (PostgreSQL) or
/// serialised by the single writer (SQLite), in tenant-id order so
/// concurrent appenders cannot deadlock.
pub(crate) async fn append(
    tx: &mut impl Chain,
    events: Vec<AuditEvent>,
) -> Result<(Vec<AuditRecord>, Heads)> {
    let tenants: BTreeSet<TenantId> = events.iter().map(|e| e.tenant_id).collect();
    let mut heads = Heads::with_capacity(tenants.len());
    for tenant in tenants {
        let head = match tx.moved_head(tenant) {
            Some(head) => head,
            None => lock_head(tx, tenant).await?,
        };
        heads.insert(tenant, head);
    }
    let records = chain(&mut heads, events)
        .map_err(|_| StoreError::Corrupt("an audit chain head was not locked".into()))?;
    insert_records(tx, &records).await?;
    Ok((records, heads))
}

/// Chain heads by tenant.
pub(crate) type Heads = HashMap<TenantId, ChainHead>;

/// Chains `events`, in the order given, onto `heads`; gives them back
/// unchained unless `heads` holds the head of every tenant they name.
pub(crate) fn chain(
    heads: &mut Heads,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>, Vec<AuditEvent>> {
    if !events.iter().all(|e| heads.contains_key(&e.tenant_id)) {
        return Err(events);
    }
    // Every event finds its head: checked above.
    Ok(events
        .into_iter()
        .filter_map(|e| heads.get_mut(&e.tenant_id).map(|head| head.append(e)))
        .collect())
}

/// One transaction, as one run of statements, that appends `records` and
/// moves each head from where `from` says it is to where `to` says: SQLite
/// runs it in a single hand-off to its worker thread (its anonymous
/// parameters number on across statements). At most
/// [`ROWS_PER_STATEMENT`](crate::codec::ROWS_PER_STATEMENT) records. A head
/// that is not where `from` says fails the transaction.
pub(crate) fn append_transaction(records: &[AuditRecord], from: &Heads, to: &Heads) -> Result<Sql> {
    let mut sql = Sql::new(
        Backend::Sqlite,
        concat!("BEGIN IMMEDIATE; ", insert_head!()),
    );
    push_rows(&mut sql, records, bind_record)?;
    for (tenant, head) in to {
        let Some(old) = from.get(tenant) else {
            return Err(StoreError::Corrupt(format!("no head to move for {tenant}")));
        };
        let tenant = tenant.to_string();
        sql.push("; UPDATE audit_heads SET seq = ")
            .bind(head.seq)
            .push(", hash = ")
            .bind(head.hash.clone())
            .push(" WHERE tenant_id = ")
            .bind(tenant.clone())
            .push(" AND seq = ")
            .bind(old.seq)
            .push(" AND hash = ")
            .bind(old.hash.clone())
            // The head was elsewhere when that UPDATE changed no row: a
            // NOT NULL violation stops the run there, before COMMIT.
            .push("; INSERT INTO audit_heads (tenant_id, seq, hash) SELECT ")
            .bind(tenant)
            .push(", NULL, NULL WHERE changes() = 0");
    }
    sql.push("; COMMIT");
    Ok(sql)
}

/// Moves a tenant's chain head to `head`.
pub(crate) async fn write_head(
    conn: &mut sqlx::AnyConnection,
    tenant: TenantId,
    head: &ChainHead,
) -> Result<()> {
    sqlx::query("UPDATE audit_heads SET seq = $1, hash = $2 WHERE tenant_id = $3")
        .bind(head.seq)
        .bind(&head.hash)
        .bind(tenant.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

async fn lock_head(tx: &mut impl Conn, tenant: TenantId) -> Result<ChainHead> {
    // One statement creates the head if needed and returns it; on
    // PostgreSQL the DO UPDATE takes the row lock that serialises appenders
    // until commit (SQLite's single writer serialises them anyway).
    let row = sqlx::query(
        "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET seq = audit_heads.seq RETURNING seq, hash",
    )
    .bind(tenant.to_string())
    .bind(GENESIS_HASH)
    .fetch_one(tx.conn())
    .await?;
    Ok(ChainHead {
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
    })
}

async fn insert_records(tx: &mut impl Conn, records: &[AuditRecord]) -> Result<()> {
    insert_rows(tx, insert_head!(), "", records, bind_record).await?;
    Ok(())
}

fn bind_record(v: &mut Values<'_>, r: &AuditRecord) -> Result<()> {
    let e = &r.event;
    v.bind(e.tenant_id.to_string())
        .bind(r.seq)
        .bind(e.id.to_string())
        .bind(millis(e.time))
        .bind(e.actor.clone())
        .bind(e.on_behalf_of.clone())
        .bind(e.action.clone())
        .bind(e.target.clone())
        .bind(e.outcome.as_str())
        .bind(e.source_ip.clone())
        .bind(e.user_agent.clone())
        .bind(e.request_id.clone())
        .bind(to_json(&e.details)?)
        .bind(r.prev_hash.clone())
        .bind(r.hash.clone());
    Ok(())
}

fn from_row(row: &AnyRow) -> Result<AuditRecord> {
    let details: String = row.try_get("details")?;
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        event: AuditEvent {
            id: id(row, "id")?,
            tenant_id: id(row, "tenant_id")?,
            time: time(row, "time")?,
            actor: row.try_get("actor")?,
            on_behalf_of: row.try_get("on_behalf_of")?,
            action: row.try_get("action")?,
            target: row.try_get("target")?,
            outcome: enum_col(row, "outcome", Outcome::parse)?,
            source_ip: row.try_get("source_ip")?,
            user_agent: row.try_get("user_agent")?,
            request_id: row.try_get("request_id")?,
            details: serde_json::from_str(&details)
                .map_err(|e| StoreError::Corrupt(format!("details: {e}")))?,
        },
    })
}

/// What to look for in one tenant's log; all given filters must match.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub action: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Only records after this sequence number (the cursor).
    pub after_seq: Option<i64>,
    pub limit: u32,
}

/// Records of `tenant` matching `filter`, in sequence order.
pub async fn query(
    conn: &mut impl Conn,
    tenant: TenantId,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>> {
    let mut q = Sql::new(conn.backend(), "");
    let decisions = filter.action.as_deref().map(|a| a == DECISION_ACTION);
    match (&filter.target, decisions) {
        // The target index leaves the decision log out: each side of it
        // is read through its own index, merged in sequence order.
        (Some(_), None) => {
            select(&mut q, tenant, filter, Some(Side::NotDecisions));
            q.push(" UNION ALL ");
            select(&mut q, tenant, filter, Some(Side::Decisions));
        }
        (Some(_), Some(false)) => select(&mut q, tenant, filter, Some(Side::NotDecisions)),
        _ => select(&mut q, tenant, filter, None),
    }
    q.push(" ORDER BY seq LIMIT ")
        .bind(i64::from(filter.limit.clamp(1, 10_000)));
    let rows = q.query()?.fetch_all(conn.conn()).await?;
    rows.iter().map(from_row).collect()
}

/// Which side of the target index's condition a `SELECT` reads.
#[derive(Clone, Copy)]
enum Side {
    Decisions,
    NotDecisions,
}

/// One `SELECT` of [`query`]. A side is spelled out with the literal
/// action, so that the planner can prove the partial index applies.
fn select(q: &mut Sql, tenant: TenantId, filter: &AuditFilter, side: Option<Side>) {
    q.push(concat!(
        "SELECT ",
        columns!(),
        " FROM audit_events WHERE tenant_id = "
    ));
    q.bind(tenant.to_string());
    q.push(" AND seq > ").bind(filter.after_seq.unwrap_or(0));
    match side {
        Some(Side::Decisions) => q.push(&format!(" AND action = '{DECISION_ACTION}'")),
        Some(Side::NotDecisions) => q.push(&format!(" AND action <> '{DECISION_ACTION}'")),
        None => q,
    };
    if let Some(actor) = &filter.actor {
        q.push(" AND actor = ").bind(actor.clone());
    }
    if let Some(target) = &filter.target {
        q.push(" AND target = ").bind(target.clone());
    }
    if let Some(action) = &filter.action {
        q.push(" AND action = ").bind(action.clone());
    }
    if let Some(since) = filter.since {
        q.push(" AND time >= ").bind(millis(since));
    }
    if let Some(until) = filter.until {
        q.push(" AND time < ").bind(millis(until));
    }
}

/// The tenants that have an audit chain, with their heads.
pub async fn heads(conn: &mut impl Conn) -> Result<Vec<(TenantId, ChainHead)>> {
    let rows = sqlx::query("SELECT tenant_id, seq, hash FROM audit_heads ORDER BY tenant_id")
        .fetch_all(conn.conn())
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                id(row, "tenant_id")?,
                ChainHead {
                    seq: row.try_get("seq")?,
                    hash: row.try_get("hash")?,
                },
            ))
        })
        .collect()
}

/// Stores a checkpoint (once per tenant and sequence number). Checkpoints
/// describe the chain rather than change state, so they are the one write
/// that carries no audit event of its own (it would move the head it signs).
pub async fn insert_checkpoint(store: &Store, c: &Checkpoint) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (tenant_id, seq, hash, signed_at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, seq) DO NOTHING",
    )
    .bind(c.tenant_id.to_string())
    .bind(c.seq)
    .bind(&c.hash)
    .bind(millis(c.signed_at))
    .bind(&c.key_id)
    .bind(&c.signature)
    .execute(&store.writer)
    .await?;
    Ok(())
}

/// The newest checkpoint of `tenant`.
pub async fn latest_checkpoint(
    conn: &mut impl Conn,
    tenant: TenantId,
) -> Result<Option<Checkpoint>> {
    let row = sqlx::query(
        "SELECT tenant_id, seq, hash, signed_at, key_id, signature FROM audit_checkpoints \
         WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant.to_string())
    .fetch_optional(conn.conn())
    .await?;
    row.map(|row| {
        Ok(Checkpoint {
            tenant_id: id(&row, "tenant_id")?,
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
            signed_at: time(&row, "signed_at")?,
            key_id: row.try_get("key_id")?,
            signature: row.try_get("signature")?,
        })
    })
    .transpose()
}
