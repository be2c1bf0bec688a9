//! The idplane vocabulary and its rules.
//!
//! Pure types and functions: no I/O, no clock reads, no knowledge of HTTP or
//! SQL. Everything here can be tested with plain values.

pub mod audit;
pub mod ctx;
pub mod directory;
pub mod error;
pub mod ids;
pub mod scim;
pub mod time;

pub use ctx::{Actor, Ctx, RequestMeta};
pub use error::ValidationError;
pub use ids::{AssignmentId, PrincipalId, RoleId, TenantId, TokenId};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
