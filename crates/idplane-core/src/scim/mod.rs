//! SCIM 2.0 (RFC 7643, RFC 7644) vocabulary: filters and PATCH paths.

mod eval;
pub mod filter;
pub mod path;
