//! Outbound provisioning: idplane as a SCIM client of connected
//! applications. `targets` (the applications, their sealed tokens, scope
//! and mapping), `mapping` (target attribute -> idplane source), `outbox`
//! (pushes scheduled in the transaction of each change), `client` (SCIM
//! over the outbound HTTP client, errors sorted for retrying), `push` (the
//! job handler), `reconcile` (drift between idplane and a target).

pub mod client;
pub mod mapping;
pub(crate) mod outbox;
pub(crate) mod push;
pub mod reconcile;
pub mod targets;

pub(crate) use outbox::{before_delete, enqueue_member_pushes, enqueue_pushes, enqueue_pushes_all};
pub use reconcile::{DriftReport, DriftedUser, MissingUser, UnknownUser};
pub use targets::{CreateTarget, Target, UpdateTarget};
