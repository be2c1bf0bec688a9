//! DPoP proofs (RFC 9449): a client proves that it holds the private key
//! an access token is bound to by signing, for each request, a short JWT
//! naming the request's method and URL.
//!
//! A proof is accepted when (RFC 9449 §4.3): its `typ` is `dpop+jwt`, its
//! algorithm asymmetric, its `jwk` header a public key that verifies its
//! signature; `htm` and `htu` match the request (the URL without query and
//! fragment, after RFC 3986 normalisation); `iat` is within
//! [`DPOP_IAT_WINDOW`] of now (the injected clock); `ath` is the hash of
//! the access token presented with it, if any; `nonce` is a server nonce
//! ([`App::dpop_nonce`]); and its `jti` was not used before with that key
//! (remembered in the store for [`DPOP_JTI_RETENTION`], on every node).
//!
//! Server nonces are stateless, so that any node can check them: the MAC
//! (keyring context `dpop-nonce`) of the current five-minute window. Nonces
//! of the current and the previous window are accepted. A proof without a
//! valid nonce is answered with `use_dpop_nonce`; the server then sends a
//! fresh nonce in the [`DPOP_NONCE_HEADER`] header.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::Timestamp;
use idplane_store::seen_jtis;
use jiff::SignedDuration;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::assertion::{JwsHeader, has_private_members, jti, numeric_date, verify_jws};
use super::error::{ErrorCode, OAuthError, OAuthResult};
use super::keys::jwk_thumbprint;
use crate::App;

/// The JWT `typ` of a DPoP proof.
pub const DPOP_TYP: &str = "dpop+jwt";

/// The HTTP header that carries a fresh server nonce.
pub const DPOP_NONCE_HEADER: &str = "DPoP-Nonce";

/// How far a proof's `iat` may be from now, either way.
pub const DPOP_IAT_WINDOW: SignedDuration = SignedDuration::from_secs(60);

/// How long a proof's `jti` is remembered: longer than any proof stays
/// acceptable (`iat` at most [`DPOP_IAT_WINDOW`] ahead, then as long again).
pub const DPOP_JTI_RETENTION: SignedDuration = SignedDuration::from_mins(2);

/// The length of a nonce window, in seconds: a nonce lives 5 to 10 minutes.
pub const DPOP_NONCE_WINDOW_SECS: i64 = 300;

/// The keyring context of server nonces.
const NONCE_MAC_CONTEXT: &str = "dpop-nonce";

/// A verified DPoP proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopProof {
    /// The RFC 7638 thumbprint of the proof's key (`cnf.jkt`, `dpop_jkt`).
    pub jkt: String,
    pub jti: String,
    pub iat: Timestamp,
}

/// `ath`: base64url of the SHA-256 of an access token (RFC 9449 §4.2).
pub fn dpop_ath(access_token: &str) -> String {
    B64.encode(Sha256::digest(access_token.as_bytes()))
}

/// Whether the `htu` of a proof names `url`, ignoring query and fragment
/// (RFC 9449 §4.3, with RFC 3986 §6.2.2 and §6.2.3 normalisation).
pub fn htu_matches(htu: &str, url: &str) -> bool {
    let normal = |text: &str| {
        let mut parsed = url::Url::parse(text).ok()?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.cannot_be_a_base() {
            return None;
        }
        parsed.set_query(None);
        parsed.set_fragment(None);
        Some(parsed)
    };
    match (normal(htu), normal(url)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn invalid(why: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidDpopProof, why)
}

impl App {
    /// A fresh server nonce for DPoP proofs (the `DPoP-Nonce` header).
    pub fn dpop_nonce(&self) -> String {
        self.dpop_nonce_of(nonce_window(self.clock().now()))
    }

    fn dpop_nonce_of(&self, window: i64) -> String {
        self.keyring().mac(NONCE_MAC_CONTEXT, &window.to_be_bytes())
    }

    /// Whether `nonce` is a server nonce of the current or previous window.
    fn dpop_nonce_valid(&self, nonce: &str) -> bool {
        let window = nonce_window(self.clock().now());
        [window, window - 1]
            .into_iter()
            .any(|w| bool::from(self.dpop_nonce_of(w).as_bytes().ct_eq(nonce.as_bytes())))
    }

    /// Verifies the DPoP `proof` of a request with `method` to `url` (the
    /// absolute URL it was sent to), presenting `access_token` if any: see
    /// the module documentation. The proof's `jti` is spent. Failures are
    /// `invalid_dpop_proof`, or `use_dpop_nonce` when only the server nonce
    /// is missing or stale (answer with a fresh [`App::dpop_nonce`]).
    pub async fn verify_dpop_proof(
        &self,
        proof: &str,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> OAuthResult<DpopProof> {
        let header = JwsHeader::parse(proof).map_err(|e| invalid(format!("DPoP proof: {e}")))?;
        if header.typ.as_deref() != Some(DPOP_TYP) {
            return Err(invalid(format!(
                "the DPoP proof's `typ` must be `{DPOP_TYP}`"
            )));
        }
        let jwk = match header.raw.get("jwk") {
            Some(jwk @ Value::Object(_)) => jwk,
            Some(_) => return Err(invalid("the DPoP proof's `jwk` header is not a JWK")),
            None => return Err(invalid("the DPoP proof has no `jwk` header")),
        };
        if has_private_members(jwk) {
            return Err(invalid(
                "the DPoP proof's `jwk` must be a public key: it holds private or symmetric \
                 key material",
            ));
        }
        let claims =
            verify_jws(proof, jwk, header.alg).map_err(|e| invalid(format!("DPoP proof: {e}")))?;
        let jkt =
            jwk_thumbprint(jwk).map_err(|_| invalid("the DPoP proof's `jwk` has no thumbprint"))?;

        match claims.get("htm").and_then(Value::as_str) {
            Some(htm) if htm == method => {}
            Some(_) => {
                return Err(invalid(format!(
                    "the DPoP proof is for another HTTP method (`htm` must be {method})"
                )));
            }
            None => return Err(invalid("the DPoP proof has no `htm`")),
        }
        match claims.get("htu").and_then(Value::as_str) {
            Some(htu) if htu_matches(htu, url) => {}
            Some(_) => {
                return Err(invalid(format!(
                    "the DPoP proof is for another URL (`htu` must be {})",
                    url.split(['?', '#']).next().unwrap_or(url)
                )));
            }
            None => return Err(invalid("the DPoP proof has no `htu`")),
        }

        let now = self.clock().now();
        let iat = numeric_date(&claims, "iat")
            .map_err(|e| invalid(format!("DPoP proof: {e}")))?
            .ok_or_else(|| invalid("the DPoP proof has no `iat`"))?;
        if iat < now - DPOP_IAT_WINDOW || iat > now + DPOP_IAT_WINDOW {
            return Err(invalid(format!(
                "the DPoP proof's `iat` is more than {} seconds from the server's time; make a \
                 fresh proof",
                DPOP_IAT_WINDOW.as_secs()
            )));
        }

        if let Some(token) = access_token {
            match claims.get("ath").and_then(Value::as_str) {
                Some(ath) if ath == dpop_ath(token) => {}
                Some(_) => {
                    return Err(invalid(
                        "the DPoP proof's `ath` is not the hash of the access token presented",
                    ));
                }
                None => {
                    return Err(invalid(
                        "the DPoP proof has no `ath`; it is required with an access token",
                    ));
                }
            }
        }

        match claims.get("nonce") {
            None => {
                return Err(OAuthError::new(
                    ErrorCode::UseDpopNonce,
                    "a DPoP proof must carry the server's nonce (see the DPoP-Nonce header)",
                ));
            }
            Some(Value::String(nonce)) if self.dpop_nonce_valid(nonce) => {}
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UseDpopNonce,
                    "the DPoP proof's nonce is stale or not the server's; use the one in the \
                     DPoP-Nonce header",
                ));
            }
        }

        let jti = jti(&claims).map_err(|e| invalid(format!("DPoP proof: {e}")))?;
        let namespace = format!("dpop:{jkt}");
        if !seen_jtis::remember(self.store(), &namespace, jti, now + DPOP_JTI_RETENTION).await? {
            return Err(invalid(
                "the DPoP proof was already used (its `jti` was seen before)",
            ));
        }
        Ok(DpopProof {
            jkt,
            jti: jti.to_owned(),
            iat,
        })
    }
}

/// The nonce window `now` falls in.
fn nonce_window(now: Timestamp) -> i64 {
    now.as_second().div_euclid(DPOP_NONCE_WINDOW_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_ignores_query_and_fragment_and_normalises() {
        let url = "https://id.example.com/oauth2/token";
        for (htu, ok) in [
            ("https://id.example.com/oauth2/token", true),
            ("https://id.example.com/oauth2/token?x=1", true),
            ("https://id.example.com/oauth2/token#f", true),
            ("HTTPS://ID.EXAMPLE.COM/oauth2/token", true),
            ("https://id.example.com:443/oauth2/token", true),
            ("https://id.example.com/oauth2/./token", true),
            ("https://id.example.com/oauth2/userinfo", false),
            ("https://id.example.com/oauth2/token/", false),
            ("http://id.example.com/oauth2/token", false),
            ("https://id.example.com:8443/oauth2/token", false),
            ("https://evil.example/oauth2/token", false),
            ("/oauth2/token", false),
            ("", false),
        ] {
            assert_eq!(htu_matches(htu, url), ok, "{htu}");
        }
        assert!(htu_matches(
            "https://id.example.com/oauth2/token",
            "https://id.example.com/oauth2/token?q=1"
        ));
        assert!(!htu_matches("mailto:a@b.c", "mailto:a@b.c"));
    }

    #[test]
    fn ath_is_the_base64url_sha256_of_the_token() {
        // RFC 9449 §7.1's example access token and its `ath`.
        assert_eq!(
            dpop_ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn nonce_windows_are_five_minutes() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let w = nonce_window(t);
        assert_eq!(nonce_window(t + SignedDuration::from_secs(299)), w);
        assert_eq!(nonce_window(t + SignedDuration::from_secs(300)), w + 1);
        assert_eq!(nonce_window(t - SignedDuration::from_secs(1)), w - 1);
    }
}
