//! What a grant carries from the moment it is authorised to every token
//! issued under it: the subject, the scopes and audiences granted, how the
//! person authenticated, and the key the tokens are bound to (DPoP).

use idplane_core::{PrincipalId, Timestamp};
use serde::{Deserialize, Serialize};

/// How the person behind a grant authenticated (OIDC Core §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthFacts {
    pub auth_time: Timestamp,
    pub acr: String,
    pub amr: Vec<String>,
}

/// The grant: authorised once, carried by codes and refresh tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    /// The person (or other principal) the tokens act for; `None` when the
    /// client acts for itself (client credentials).
    pub subject: Option<PrincipalId>,
    /// The sign-in session behind the grant (for `sid` and logout).
    pub session_id: Option<String>,
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicators: the audiences of access tokens.
    pub resources: Vec<String>,
    pub auth: Option<AuthFacts>,
    /// OIDC `nonce`, echoed in the ID token of the code exchange only.
    pub nonce: Option<String>,
    /// RFC 9449: the thumbprint of the key the tokens are bound to.
    pub dpop_jkt: Option<String>,
    /// RFC 8693 `act`: who acts on the subject's behalf (delegation).
    pub actor: Option<serde_json::Value>,
}

impl Grant {
    /// The granted scopes as one space-separated string.
    pub fn scope(&self) -> String {
        self.scopes.join(" ")
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// An authorization code's grant plus what the exchange must match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub grant: Grant,
    pub redirect_uri: String,
    /// PKCE S256 challenge (RFC 7636).
    pub code_challenge: String,
}

/// Parses a space-separated scope parameter into distinct values, in order.
pub fn parse_scope(scope: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_split_on_spaces_and_deduplicated() {
        assert_eq!(
            parse_scope(Some("openid  email openid profile")),
            ["openid", "email", "profile"]
        );
        assert!(parse_scope(None).is_empty());
        assert!(parse_scope(Some("  ")).is_empty());
    }
}
