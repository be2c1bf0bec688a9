//! SCIM 2.0 provisioning.

pub mod query;
