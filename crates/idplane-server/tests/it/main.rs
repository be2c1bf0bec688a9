//! Black-box tests of the `idplane` binary: each test starts a real server
//! process on a free port with its own data directory and talks HTTP to it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

mod access;
mod audit;
mod auth;
mod authn;
mod authzen;
mod bad_input;
mod bootstrap;
mod browser;
mod clients;
mod crud;
mod device;
mod dpop;
mod exchange;
mod hr;
mod keys;
mod lifecycle;
mod oidc;
mod oidc_flows;
mod ops;
mod provisioning;
mod registration;
mod scim;
mod support;
