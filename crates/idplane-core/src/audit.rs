//! Audit events and the per-tenant hash chain that makes them tamper-evident.
//!
//! Each record commits to the previous record's hash: `hash = SHA-256(canonical
//! encoding of the record, including prev_hash and seq)`. Changing, removing
//! or reordering any record breaks every link after it, which
//! [`verify_chain`] finds. A chain cannot show that its newest records were cut
//! off; signed checkpoints of the chain head cover that.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{Ctx, TenantId, Timestamp};

/// The `prev_hash` of a tenant's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The action of the decision log's events. There are many, and a deny's
/// target is its subject, in random order, so the store leaves them out of
/// its index by target (a dirty index page per event): a search by target
/// reads them through the index by action instead.
pub const DECISION_ACTION: &str = "authz.decision";

/// Whether the audited action succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }
}

/// Something that happened, before it takes its place in the chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub time: Timestamp,
    /// Who acted, e.g. `root`, `token:<id>`, `system`.
    pub actor: String,
    /// On whose behalf, e.g. `principal:<id>`.
    pub on_behalf_of: Option<String>,
    /// What happened, dotted: `user.create`, `auth.admin_token`.
    pub action: String,
    /// What it happened to, e.g. `user:<id>`.
    pub target: Option<String>,
    pub outcome: Outcome,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Action-specific facts (never secrets).
    pub details: Value,
}

impl AuditEvent {
    /// A successful action by the context's actor, at the context's time.
    pub fn new(ctx: &Ctx, action: &str, target: Option<String>) -> Self {
        Self {
            id: Uuid::now_v7(),
            tenant_id: ctx.tenant,
            time: ctx.now,
            actor: ctx.actor.label(),
            on_behalf_of: ctx.actor.on_behalf_of(),
            action: action.to_owned(),
            target,
            outcome: Outcome::Success,
            source_ip: ctx.request.source_ip.clone(),
            user_agent: ctx.request.user_agent.clone(),
            request_id: ctx.request.request_id.clone(),
            details: Value::Null,
        }
    }

    /// The same event with facts attached.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The same event, marked as a failure.
    pub fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }
}

/// An event in its place in a tenant's chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    #[serde(flatten)]
    pub event: AuditEvent,
}

/// The newest link of a tenant's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    /// The head of a chain with no records.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }

    /// Appends `event` after this head, returning the record; `self` becomes
    /// the new head.
    pub fn append(&mut self, event: AuditEvent) -> AuditRecord {
        let seq = self.seq + 1;
        let hash = record_hash(seq, &self.hash, &event);
        let record = AuditRecord {
            seq,
            prev_hash: std::mem::replace(&mut self.hash, hash.clone()),
            hash,
            event,
        };
        self.seq = seq;
        record
    }
}

/// The hash of a record: SHA-256 over its canonical encoding, hex.
pub fn record_hash(seq: i64, prev_hash: &str, event: &AuditEvent) -> String {
    let mut hasher = Sha256::new();
    hasher.update(canonical_encoding(seq, prev_hash, event));
    hex::encode(hasher.finalize())
}

/// The canonical encoding: a JSON array in a fixed field order, with the
/// details object's keys sorted, times as integer milliseconds. Independent
/// of how the record was stored or serialised elsewhere.
pub fn canonical_encoding(seq: i64, prev_hash: &str, event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"[1,"); // encoding version
    let tenant = event.tenant_id.to_string();
    let id = event.id.to_string();
    write_str(Some(&tenant), &mut out);
    out.extend_from_slice(format!(",{seq},").as_bytes());
    write_str(Some(prev_hash), &mut out);
    out.push(b',');
    write_str(Some(&id), &mut out);
    out.extend_from_slice(format!(",{},", event.time.as_millisecond()).as_bytes());
    for field in [
        Some(event.actor.as_str()),
        event.on_behalf_of.as_deref(),
        Some(event.action.as_str()),
        event.target.as_deref(),
        Some(event.outcome.as_str()),
        event.source_ip.as_deref(),
        event.user_agent.as_deref(),
        event.request_id.as_deref(),
    ] {
        write_str(field, &mut out);
        out.push(b',');
    }
    write_canonical(&event.details, &mut out);
    out.push(b']');
    out
}

/// A JSON string, or `null`.
fn write_str(value: Option<&str>, out: &mut Vec<u8>) {
    match value {
        // Serialising a string into a Vec cannot fail.
        Some(s) => {
            let _ = serde_json::to_writer(&mut *out, s);
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::from(key.as_str()), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Serialising a scalar JSON value cannot fail.
    if let Ok(bytes) = serde_json::to_vec(value) {
        out.extend_from_slice(&bytes);
    }
}

/// A signed statement that a tenant's chain reached `seq` with `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub tenant_id: TenantId,
    pub seq: i64,
    pub hash: String,
    pub signed_at: Timestamp,
    pub key_id: String,
    /// Base64url Ed25519 signature over [`Checkpoint::signed_bytes`].
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes that are signed.
    pub fn signed_bytes(tenant: TenantId, seq: i64, hash: &str, signed_at: Timestamp) -> Vec<u8> {
        format!(
            "idplane-audit-checkpoint/v1\n{tenant}\n{seq}\n{hash}\n{}",
            signed_at.as_millisecond()
        )
        .into_bytes()
    }
}

/// Where and why a chain stops verifying.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error(
        "record {seq}: expected sequence number {expected} (a record was removed or reordered)"
    )]
    SequenceGap { seq: i64, expected: i64 },
    #[error("record {seq}: prev_hash does not match the hash of record {}", seq - 1)]
    BrokenLink { seq: i64 },
    #[error("record {seq}: content does not match its hash (the record was altered)")]
    Altered { seq: i64 },
    #[error(
        "the chain ends at record {last} but the checkpoint is at {checkpoint} (records were cut off)"
    )]
    Truncated { last: i64, checkpoint: i64 },
    #[error("record {seq}: hash differs from the checkpoint's")]
    CheckpointMismatch { seq: i64 },
}

/// Checks records in sequence order, from the start of a chain, one at a time.
#[derive(Debug)]
pub struct ChainVerifier {
    head: ChainHead,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            head: ChainHead::genesis(),
        }
    }
}

impl ChainVerifier {
    /// Checks the next record; the first error names the first broken link.
    pub fn check(&mut self, record: &AuditRecord) -> Result<(), ChainError> {
        let expected = self.head.seq + 1;
        if record.seq != expected {
            return Err(ChainError::SequenceGap {
                seq: record.seq,
                expected,
            });
        }
        if record.prev_hash != self.head.hash {
            return Err(ChainError::BrokenLink { seq: record.seq });
        }
        if record_hash(record.seq, &record.prev_hash, &record.event) != record.hash {
            return Err(ChainError::Altered { seq: record.seq });
        }
        self.head = ChainHead {
            seq: record.seq,
            hash: record.hash.clone(),
        };
        Ok(())
    }

    /// The head verified so far.
    pub fn head(&self) -> &ChainHead {
        &self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, RequestMeta};

    fn ctx() -> Ctx {
        Ctx {
            tenant: TenantId::generate(),
            actor: Actor::Root,
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
            request: RequestMeta::default(),
        }
    }

    fn chain(n: usize) -> Vec<AuditRecord> {
        let ctx = ctx();
        let mut head = ChainHead::genesis();
        (0..n)
            .map(|i| {
                head.append(AuditEvent::new(
                    &ctx,
                    "user.create",
                    Some(format!("user:{i}")),
                ))
            })
            .collect()
    }

    fn verify(records: &[AuditRecord]) -> Result<(), ChainError> {
        let mut verifier = ChainVerifier::default();
        records.iter().try_for_each(|r| verifier.check(r))
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(()));
    }

    #[test]
    fn altering_a_record_is_caught_at_that_record() {
        let mut records = chain(5);
        records[2].event.actor = "someone-else".into();
        assert_eq!(verify(&records), Err(ChainError::Altered { seq: 3 }));
    }

    #[test]
    fn removing_a_record_is_caught() {
        let mut records = chain(5);
        records.remove(1);
        assert_eq!(
            verify(&records),
            Err(ChainError::SequenceGap {
                seq: 3,
                expected: 2
            })
        );
    }

    #[test]
    fn reordering_records_is_caught() {
        let mut records = chain(5);
        records.swap(1, 2);
        assert!(verify(&records).is_err());
    }

    #[test]
    fn rehashing_one_altered_record_breaks_the_next_link() {
        let mut records = chain(3);
        records[0].event.action = "user.delete".into();
        records[0].hash = record_hash(1, GENESIS_HASH, &records[0].event);
        assert_eq!(verify(&records), Err(ChainError::BrokenLink { seq: 2 }));
    }

    #[test]
    fn canonical_encoding_is_pinned() {
        let mut event = AuditEvent::new(&ctx(), "user.create", Some("user:1".into()))
            .with_details(serde_json::json!({"b": 1, "a": "x\"y"}));
        event.id = Uuid::nil();
        event.tenant_id = TenantId::from(Uuid::nil());
        let text = String::from_utf8(canonical_encoding(7, "ab", &event)).unwrap();
        assert_eq!(
            text,
            r#"[1,"00000000-0000-0000-0000-000000000000",7,"ab","00000000-0000-0000-0000-000000000000",1767225600000,"root",null,"user.create","user:1","success",null,null,null,{"a":"x\"y","b":1}]"#
        );
    }

    #[test]
    fn canonical_encoding_ignores_key_order_of_details() {
        let ctx = ctx();
        let a = AuditEvent::new(&ctx, "x", None)
            .with_details(serde_json::json!({"a": 1, "b": {"d": 2, "c": 3}}));
        let mut b = a.clone();
        b.details = serde_json::from_str(r#"{"b": {"c": 3, "d": 2}, "a": 1}"#).unwrap();
        assert_eq!(
            record_hash(1, GENESIS_HASH, &a),
            record_hash(1, GENESIS_HASH, &b)
        );
    }
}
