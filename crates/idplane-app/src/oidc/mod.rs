//! OpenID Connect and OAuth 2.0.

pub mod assertion;
pub mod authorize;
pub mod client_auth;
pub mod clients;
pub mod consent;
pub mod device;
pub mod dpop;
pub mod error;
pub mod exchange;
pub mod grant;
pub mod introspection;
pub mod keys;
pub mod logout;
pub mod registration;
pub mod resources;
pub mod token;
pub mod tokens;

pub use error::{ErrorCode, OAuthError, OAuthResult};
