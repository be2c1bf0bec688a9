//! Authorization: Cedar policies behind the OpenID AuthZEN API.
//!
//! A tenant's policy is a sequence of immutable versions ([`bundle`]: the
//! applications' schemas, the policies, their tests); one is active and
//! compiled in memory ([`engine`], evaluated through the [`index`]). The
//! directory is projected into Cedar entities ([`entities`]) on demand and
//! cached, so a decision needs no database round trip.

pub mod authzen;
pub mod bundle;
pub mod decisions;
pub mod directory_schema;
pub mod doc;
pub mod engine;
pub(crate) mod entities;
pub mod impact;
pub mod index;
mod nesting;
pub mod shapes;
pub mod tests;
pub mod versions;

pub use entities::DIRECTORY_POLL;
