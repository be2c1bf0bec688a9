//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID
//! Connect Core §9): the client proves itself with a JWT it signed with one
//! of the keys it registered, inline (`jwks`) or published (`jwks_uri`).
//!
//! The assertion must be a JWS with an asymmetric algorithm
//! ([`ASSERTION_ALGORITHMS`]; `none` and the HMAC algorithms are refused, so
//! a public key can never serve as a shared secret), signed by the client
//! key its `kid` names (or the only client key that fits the algorithm),
//! with `iss` and `sub` the `client_id`, an `aud` naming this issuer or the
//! endpoint, an `exp` in the future and at most [`MAX_ASSERTION_AHEAD`]
//! away, no `iat` or `nbf` in the future (beyond [`CLOCK_LEEWAY`]), and a
//! `jti` never seen before: the store remembers it until the assertion
//! expires, on every node. Times are checked with the injected clock,
//! jsonwebtoken only checks the signature.
//!
//! A `jwks_uri` is fetched over https ([`crate::outbound::OUTBOUND_TIMEOUT`],
//! [`MAX_JWKS_BYTES`], no redirects) and kept in memory for
//! [`JWKS_CACHE_TTL`]; an assertion whose key is not in the cached copy
//! causes one refetch, at most every [`JWKS_MIN_REFETCH`] per URI, so that
//! made-up `kid`s cannot turn the server against the client's web server.
//!
//! The JOSE checks shared with DPoP proofs ([`super::dpop`]) live here too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::Timestamp;
use idplane_store::seen_jtis;
use jiff::SignedDuration;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::clients::{AuthMethod, Client};
use super::error::{OAuthError, OAuthResult};
use crate::App;

pub use super::client_auth::JWT_BEARER_ASSERTION;

/// The signature algorithms accepted for client assertions and DPoP proofs.
pub const ASSERTION_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// How far in the future an assertion's `exp` may be: assertions are
/// single-use and short-lived.
pub const MAX_ASSERTION_AHEAD: SignedDuration = SignedDuration::from_mins(10);

/// Clock skew tolerated on `iat` and `nbf`.
pub const CLOCK_LEEWAY: SignedDuration = SignedDuration::from_secs(60);

/// How long a fetched `jwks_uri` document is used.
pub const JWKS_CACHE_TTL: SignedDuration = SignedDuration::from_mins(5);

/// The shortest time between two fetches of one `jwks_uri` caused by a key
/// missing from the cached copy.
pub const JWKS_MIN_REFETCH: SignedDuration = SignedDuration::from_secs(10);

/// The largest `jwks_uri` document read, in bytes.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// The longest JWT (assertion or DPoP proof) looked at, in bytes.
pub const MAX_JWT_LEN: usize = 16 * 1024;

/// Most `jwks_uri` documents kept in memory.
const MAX_CACHED_JWKS: usize = 1024;

/// Whether `assertion_type` is the `client_assertion_type` of
/// `private_key_jwt` (RFC 7523 §2.2), exactly.
pub fn is_jwt_bearer_assertion_type(assertion_type: &str) -> bool {
    assertion_type == JWT_BEARER_ASSERTION
}

impl App {
    /// Verifies the `client_assertion` of `client` (which must use
    /// `private_key_jwt`) presented at `token_endpoint` (the absolute URL
    /// the request was sent to): see the module documentation. The
    /// assertion's `jti` is spent: the same assertion is refused next time.
    /// Every failure is `invalid_client` with a precise description.
    pub async fn verify_client_assertion(
        &self,
        client: &Client,
        assertion: &str,
        token_endpoint: &str,
    ) -> OAuthResult<()> {
        if client.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
            return Err(refused(format!(
                "the client authenticates with {}, not private_key_jwt",
                client.token_endpoint_auth_method.as_str()
            )));
        }
        let header = JwsHeader::parse(assertion).map_err(|e| refused(format!("assertion: {e}")))?;
        let jwk = self
            .client_key(client, header.kid.as_deref(), header.alg)
            .await?;
        let claims = verify_jws(assertion, &jwk, header.alg)
            .map_err(|e| refused(format!("assertion: {e}")))?;

        for claim in ["iss", "sub"] {
            match claims.get(claim).and_then(Value::as_str) {
                Some(v) if v == client.client_id => {}
                Some(_) => {
                    return Err(refused(format!(
                        "the assertion's `{claim}` must be the client_id"
                    )));
                }
                None => {
                    return Err(refused(format!(
                        "the assertion has no `{claim}` (it must be the client_id)"
                    )));
                }
            }
        }

        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let issuer = self.issuer();
        let ours =
            |aud: &&str| *aud == issuer || *aud == self.settings().issuer || *aud == token_endpoint;
        if !audiences.iter().any(ours) {
            return Err(refused(format!(
                "the assertion's `aud` must contain the issuer ({issuer}) or the endpoint URL \
                 ({token_endpoint})"
            )));
        }

        let now = self.clock().now();
        let exp = numeric_date(&claims, "exp")
            .map_err(refused)?
            .ok_or_else(|| refused("the assertion has no `exp`"))?;
        if exp <= now {
            return Err(refused("the assertion expired (`exp` is in the past)"));
        }
        if exp > now + MAX_ASSERTION_AHEAD {
            return Err(refused(format!(
                "the assertion's `exp` is more than {} minutes ahead; assertions must be \
                 short-lived",
                MAX_ASSERTION_AHEAD.as_mins()
            )));
        }
        for claim in ["nbf", "iat"] {
            if let Some(at) = numeric_date(&claims, claim).map_err(refused)?
                && at > now + CLOCK_LEEWAY
            {
                return Err(refused(format!(
                    "the assertion is not valid yet (`{claim}` is in the future)"
                )));
            }
        }
        let jti = jti(&claims).map_err(refused)?;

        let namespace = format!("assertion:{}:{}", client.tenant_id, client.client_id);
        if !seen_jtis::remember(self.store(), &namespace, jti, exp).await? {
            return Err(refused(
                "the assertion was already used (its `jti` was seen before)",
            ));
        }
        Ok(())
    }

    /// The client key that should have signed a JWT with `kid` and `alg`.
    async fn client_key(
        &self,
        client: &Client,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> OAuthResult<Value> {
        if let Some(jwks) = &client.jwks {
            let keys = jwks
                .get("keys")
                .and_then(Value::as_array)
                .ok_or_else(|| refused("the client's registered jwks holds no keys"))?;
            return select_key(keys, kid, alg)
                .cloned()
                .map_err(|miss| refused(miss.to_string()));
        }
        let Some(uri) = client.jwks_uri.as_deref() else {
            return Err(refused(
                "the client has no registered keys (jwks or jwks_uri) to check its assertion",
            ));
        };
        let cache = &self.inner.client_jwks;
        let now = self.clock().now();
        let (keys, just_fetched) = match cache.fresh(uri, now) {
            Some(keys) => (keys, false),
            None => (self.fetch_client_jwks(uri).await?, true),
        };
        match select_key(&keys, kid, alg) {
            Ok(jwk) => Ok(jwk.clone()),
            Err(miss @ (KeyMiss::UnknownKid(_) | KeyMiss::NoKeyFor(_)))
                if !just_fetched && cache.may_refetch(uri, now) =>
            {
                // The client may have rotated its keys since: look again.
                tracing::debug!(%uri, %miss, "refetching a client's jwks_uri");
                let keys = self.fetch_client_jwks(uri).await?;
                select_key(&keys, kid, alg)
                    .cloned()
                    .map_err(|miss| refused(miss.to_string()))
            }
            Err(miss) => Err(refused(miss.to_string())),
        }
    }

    /// Fetches a client's `jwks_uri` and caches the keys.
    async fn fetch_client_jwks(&self, uri: &str) -> OAuthResult<Arc<Vec<Value>>> {
        let keys = Arc::new(fetch_jwks(uri).await.map_err(refused)?);
        self.inner
            .client_jwks
            .put(uri, keys.clone(), self.clock().now());
        Ok(keys)
    }
}

/// An `invalid_client` error.
fn refused(why: impl Into<String>) -> OAuthError {
    OAuthError::invalid_client(why)
}

/// The header members a JWS is checked by, read before its signature is.
#[derive(Clone, Debug)]
pub(crate) struct JwsHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
    /// The whole header, as sent.
    pub raw: Map<String, Value>,
}

impl JwsHeader {
    /// Parses the protected header of the compact JWS `token`, refusing
    /// unsigned and symmetric algorithms and critical extensions.
    pub(crate) fn parse(token: &str) -> Result<Self, String> {
        if token.len() > MAX_JWT_LEN {
            return Err(format!("the JWT is longer than {MAX_JWT_LEN} bytes"));
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            return Err("not a signed JWT (a compact JWS has three dot-separated parts)".into());
        };
        if header.is_empty() || payload.is_empty() {
            return Err("not a signed JWT (empty header or payload)".into());
        }
        let raw: Map<String, Value> = B64
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or("the JWT header is not base64url-encoded JSON")?;
        let alg = match raw.get("alg") {
            Some(Value::String(alg)) => asymmetric_algorithm(alg)?,
            _ => return Err("the JWT header has no `alg`".into()),
        };
        if signature.is_empty() {
            return Err("the JWT is not signed".into());
        }
        if raw.contains_key("crit") {
            return Err(
                "the JWT header has critical extensions (`crit`), which are not \
                        supported"
                    .into(),
            );
        }
        let text = |name: &str| -> Result<Option<String>, String> {
            match raw.get(name) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("the JWT header's `{name}` is not a string")),
            }
        };
        Ok(Self {
            alg,
            kid: text("kid")?,
            typ: text("typ")?,
            raw,
        })
    }
}

/// The algorithm called `name` if it is one of [`ASSERTION_ALGORITHMS`].
pub(crate) fn asymmetric_algorithm(name: &str) -> Result<Algorithm, String> {
    if let Some(alg) = ASSERTION_ALGORITHMS
        .into_iter()
        .find(|a| algorithm_name(*a) == name)
    {
        return Ok(alg);
    }
    Err(if name.eq_ignore_ascii_case("none") {
        "`alg: none` is refused: the JWT must be signed".to_owned()
    } else if name.starts_with("HS") {
        format!(
            "the symmetric algorithm `{name}` is refused: sign with an asymmetric key ({})",
            supported_algorithms()
        )
    } else {
        format!(
            "the algorithm `{}` is not supported; use one of {}",
            name.chars().take(32).collect::<String>(),
            supported_algorithms()
        )
    })
}

/// The JWS name of `alg`.
pub(crate) fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

fn supported_algorithms() -> String {
    ASSERTION_ALGORITHMS.map(algorithm_name).join(", ")
}

/// Members that only a private (or symmetric) JWK has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Whether `jwk` holds private or symmetric key material.
pub(crate) fn has_private_members(jwk: &Value) -> bool {
    PRIVATE_MEMBERS.iter().any(|m| jwk.get(m).is_some())
        || jwk.get("kty").and_then(Value::as_str) == Some("oct")
}

/// Whether the public key `jwk` can verify `alg` signatures: its type and
/// curve fit, and its `alg`, `use` and `key_ops`, when present, allow it.
pub(crate) fn key_fits(jwk: &Value, alg: Algorithm) -> bool {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    let kind = match alg {
        Algorithm::RS256 | Algorithm::PS256 => member("kty") == Some("RSA"),
        Algorithm::ES256 => member("kty") == Some("EC") && member("crv") == Some("P-256"),
        Algorithm::ES384 => member("kty") == Some("EC") && member("crv") == Some("P-384"),
        Algorithm::EdDSA => member("kty") == Some("OKP") && member("crv") == Some("Ed25519"),
        _ => false,
    };
    let declared_alg = jwk
        .get("alg")
        .is_none_or(|a| a.as_str() == Some(algorithm_name(alg)));
    let usage = jwk.get("use").is_none_or(|u| u.as_str() == Some("sig"));
    let ops = jwk.get("key_ops").is_none_or(|ops| {
        ops.as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")))
    });
    kind && declared_alg && usage && ops && !has_private_members(jwk)
}

/// Why no key was found for a JWT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyMiss {
    /// No key has the JWT's `kid`.
    UnknownKid(String),
    /// The key with the `kid` cannot verify the JWT's algorithm.
    WrongKey(String, &'static str),
    /// Several keys have the `kid`.
    DuplicateKid(String),
    /// No `kid`, and no key fits the algorithm.
    NoKeyFor(&'static str),
    /// No `kid`, and several keys fit the algorithm.
    Ambiguous(&'static str),
}

impl std::fmt::Display for KeyMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownKid(kid) => write!(f, "no key of the client has kid `{kid}`"),
            Self::WrongKey(kid, alg) => {
                write!(f, "the client's key `{kid}` cannot verify {alg} signatures")
            }
            Self::DuplicateKid(kid) => {
                write!(f, "several keys of the client have kid `{kid}`")
            }
            Self::NoKeyFor(alg) => write!(f, "the client has no {alg} signing key"),
            Self::Ambiguous(alg) => write!(
                f,
                "the client has several {alg} signing keys: name one with `kid` in the JWT \
                 header"
            ),
        }
    }
}

/// The key of `keys` that should verify a JWT with `kid` and `alg`: the key
/// with that `kid`, or without a `kid` the only key that fits `alg`.
pub(crate) fn select_key<'k>(
    keys: &'k [Value],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'k Value, KeyMiss> {
    let name = algorithm_name(alg);
    match kid {
        Some(kid) => {
            let shown: String = kid.chars().take(64).collect();
            let mut named = keys
                .iter()
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid));
            let key = named.next().ok_or(KeyMiss::UnknownKid(shown.clone()))?;
            if named.next().is_some() {
                return Err(KeyMiss::DuplicateKid(shown));
            }
            if !key_fits(key, alg) {
                return Err(KeyMiss::WrongKey(shown, name));
            }
            Ok(key)
        }
        None => {
            let mut fitting = keys.iter().filter(|k| key_fits(k, alg));
            let key = fitting.next().ok_or(KeyMiss::NoKeyFor(name))?;
            if fitting.next().is_some() {
                return Err(KeyMiss::Ambiguous(name));
            }
            Ok(key)
        }
    }
}

/// Verifies the signature of `token` with the public key `jwk` and returns
/// its claims. jsonwebtoken checks only the signature and the algorithm;
/// the caller checks the claims, times with the injected clock.
pub(crate) fn verify_jws(
    token: &str,
    jwk: &Value,
    alg: Algorithm,
) -> Result<Map<String, Value>, String> {
    if !key_fits(jwk, alg) {
        return Err(format!(
            "the key is not a public {} key",
            algorithm_name(alg)
        ));
    }
    let parsed: Jwk =
        serde_json::from_value(jwk.clone()).map_err(|_| "the key is not a usable JWK")?;
    let key = DecodingKey::from_jwk(&parsed).map_err(|_| "the key is not a usable JWK")?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            JwtErrorKind::InvalidSignature => "the signature does not verify".to_owned(),
            JwtErrorKind::InvalidAlgorithm | JwtErrorKind::InvalidKeyFormat => {
                "the key does not fit the algorithm".to_owned()
            }
            JwtErrorKind::Json(_) | JwtErrorKind::Base64(_) | JwtErrorKind::Utf8(_) => {
                "the JWT is malformed (its claims are not a JSON object)".to_owned()
            }
            _ => "the signature does not verify".to_owned(),
        }),
    }
}

/// The NumericDate (RFC 7519 §2) claim `name`, if present.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<Timestamp>, String> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let seconds = value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f.floor() as i64)
        })
        .ok_or_else(|| format!("`{name}` is not a NumericDate (seconds since 1970)"))?;
    Timestamp::from_second(seconds)
        .map(Some)
        .map_err(|_| format!("`{name}` is out of range"))
}

/// The longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// The `jti` claim: required, a non-empty string of reasonable length.
pub(crate) fn jti(claims: &Map<String, Value>) -> Result<&str, String> {
    match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => Ok(jti),
        Some(Value::String(_)) => Err(format!("`jti` must have 1 to {MAX_JTI_LEN} characters")),
        Some(_) => Err("`jti` must be a string".into()),
        None => Err("the JWT has no `jti`; one is required to refuse replays".into()),
    }
}

/// `jwks_uri` documents, by URI, with when they were fetched (injected
/// clock). One per `App`.
#[derive(Debug, Default)]
pub(crate) struct JwksCache(Mutex<HashMap<String, CachedJwks>>);

#[derive(Clone, Debug)]
struct CachedJwks {
    keys: Arc<Vec<Value>>,
    fetched_at: Timestamp,
}

impl JwksCache {
    /// The keys of `uri` if fetched less than [`JWKS_CACHE_TTL`] ago.
    fn fresh(&self, uri: &str, now: Timestamp) -> Option<Arc<Vec<Value>>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uri)
            .filter(|c| c.fetched_at <= now && now < c.fetched_at + JWKS_CACHE_TTL)
            .map(|c| c.keys.clone())
    }

    /// Whether `uri` may be fetched again to look for a missing key.
    fn may_refetch(&self, uri: &str, now: Timestamp) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uri)
            .is_none_or(|c| now < c.fetched_at || c.fetched_at + JWKS_MIN_REFETCH <= now)
    }

    fn put(&self, uri: &str, keys: Arc<Vec<Value>>, now: Timestamp) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_CACHED_JWKS && !map.contains_key(uri) {
            map.retain(|_, c| c.fetched_at <= now && now < c.fetched_at + JWKS_CACHE_TTL);
            if map.len() >= MAX_CACHED_JWKS {
                map.clear();
            }
        }
        map.insert(
            uri.to_owned(),
            CachedJwks {
                keys,
                fetched_at: now,
            },
        );
    }
}

/// Fetches and checks the JWK Set at `uri` (https only, bounded in time
/// and size).
async fn fetch_jwks(uri: &str) -> Result<Vec<Value>, String> {
    let url = url::Url::parse(uri).map_err(|_| "the client's jwks_uri is not a URL")?;
    if url.scheme() != "https" {
        return Err("the client's jwks_uri must be an https URL".into());
    }
    let failed = |e: reqwest::Error| {
        tracing::warn!(%uri, error = %e, "fetching a client's jwks_uri failed");
        if e.is_timeout() {
            "fetching the client's jwks_uri timed out".to_owned()
        } else {
            "the client's jwks_uri could not be fetched".to_owned()
        }
    };
    let client = crate::outbound::client().map_err(|e| {
        tracing::error!(error = %e, "cannot build the outbound HTTP client");
        "the client's jwks_uri cannot be fetched now".to_owned()
    })?;
    let mut response = client
        .get(url)
        .header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "the client's jwks_uri answered HTTP {}",
            status.as_u16()
        ));
    }
    let too_large =
        || format!("the client's jwks_uri document is larger than {MAX_JWKS_BYTES} bytes");
    if response
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    parse_jwks(&body)
}

/// The keys of a JWK Set document, which must hold public keys only.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<Vec<Value>, String> {
    let document: Value =
        serde_json::from_slice(body).map_err(|_| "the client's jwks_uri document is not JSON")?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the client's jwks_uri document is not a JWK Set (no `keys` array)")?;
    if keys.iter().any(has_private_members) {
        return Err(
            "the client's jwks_uri publishes private or symmetric key material; it must \
             publish public keys only"
                .into(),
        );
    }
    Ok(keys.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ec(kid: Option<&str>) -> Value {
        let mut k = json!({"kty": "EC", "crv": "P-256", "x": "a", "y": "b"});
        if let Some(kid) = kid {
            k["kid"] = kid.into();
        }
        k
    }

    #[test]
    fn only_asymmetric_algorithms_are_accepted() {
        for name in ["RS256", "PS256", "ES256", "ES384", "EdDSA"] {
            let alg = asymmetric_algorithm(name).unwrap();
            assert_eq!(algorithm_name(alg), name);
        }
        assert!(asymmetric_algorithm("none").unwrap_err().contains("none"));
        assert!(asymmetric_algorithm("NONE").unwrap_err().contains("none"));
        for hs in ["HS256", "HS384", "HS512"] {
            assert!(asymmetric_algorithm(hs).unwrap_err().contains("symmetric"));
        }
        assert!(
            asymmetric_algorithm("RS1")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(asymmetric_algorithm("es256").is_err());
        assert!(is_jwt_bearer_assertion_type(
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ));
        assert!(!is_jwt_bearer_assertion_type("jwt-bearer"));
    }

    #[test]
    fn headers_are_parsed_before_the_signature() {
        let enc = |v: Value| B64.encode(v.to_string());
        let token = |h: Value| format!("{}.{}.c2ln", enc(h), enc(json!({})));
        let h =
            JwsHeader::parse(&token(json!({"alg": "ES256", "kid": "k", "typ": "JWT"}))).unwrap();
        assert_eq!(
            (h.alg, h.kid.as_deref(), h.typ.as_deref()),
            (Algorithm::ES256, Some("k"), Some("JWT"))
        );
        let refused = |t: &str, needle: &str| {
            let e = JwsHeader::parse(t).unwrap_err();
            assert!(e.contains(needle), "{t}: {e}");
        };
        refused(&token(json!({"typ": "JWT"})), "no `alg`");
        refused(&token(json!({"alg": "none"})), "none");
        refused(&token(json!({"alg": "ES256", "crit": ["b64"]})), "crit");
        refused(&token(json!({"alg": "ES256", "kid": 7})), "not a string");
        refused(
            &format!("{}.{}.", enc(json!({"alg": "ES256"})), enc(json!({}))),
            "not signed",
        );
        refused("a.b", "three");
        refused("a.b.c.d.e", "three");
        refused("!!.e30.c2ln", "base64url");
        refused(&"a".repeat(MAX_JWT_LEN + 1), "longer");
    }

    #[test]
    fn keys_are_selected_by_kid_or_by_fit() {
        let rsa = json!({"kty": "RSA", "n": "n", "e": "AQAB", "kid": "r"});
        let keys = vec![ec(Some("e1")), rsa.clone(), ec(Some("e2"))];
        assert_eq!(select_key(&keys, Some("r"), Algorithm::RS256), Ok(&rsa));
        assert_eq!(select_key(&keys, Some("r"), Algorithm::PS256), Ok(&rsa));
        assert_eq!(
            select_key(&keys, Some("r"), Algorithm::ES256),
            Err(KeyMiss::WrongKey("r".into(), "ES256"))
        );
        assert_eq!(
            select_key(&keys, Some("x"), Algorithm::ES256),
            Err(KeyMiss::UnknownKid("x".into()))
        );
        assert_eq!(select_key(&keys, None, Algorithm::RS256), Ok(&rsa));
        assert_eq!(
            select_key(&keys, None, Algorithm::ES256),
            Err(KeyMiss::Ambiguous("ES256"))
        );
        assert_eq!(
            select_key(&keys, None, Algorithm::EdDSA),
            Err(KeyMiss::NoKeyFor("EdDSA"))
        );
        let twice = vec![ec(Some("e")), ec(Some("e"))];
        assert_eq!(
            select_key(&twice, Some("e"), Algorithm::ES256),
            Err(KeyMiss::DuplicateKid("e".into()))
        );
    }

    #[test]
    fn keys_fit_by_type_curve_alg_use_and_ops() {
        assert!(key_fits(&ec(None), Algorithm::ES256));
        assert!(!key_fits(&ec(None), Algorithm::ES384));
        assert!(!key_fits(&ec(None), Algorithm::HS256));
        let with = |member: &str, value: Value| {
            let mut k = ec(None);
            k[member] = value;
            k
        };
        assert!(key_fits(&with("alg", "ES256".into()), Algorithm::ES256));
        assert!(!key_fits(&with("alg", "ES384".into()), Algorithm::ES256));
        assert!(key_fits(&with("use", "sig".into()), Algorithm::ES256));
        assert!(!key_fits(&with("use", "enc".into()), Algorithm::ES256));
        assert!(key_fits(
            &with("key_ops", json!(["verify"])),
            Algorithm::ES256
        ));
        assert!(!key_fits(
            &with("key_ops", json!(["encrypt"])),
            Algorithm::ES256
        ));
        assert!(!key_fits(&with("d", "secret".into()), Algorithm::ES256));
        let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": "a"});
        assert!(key_fits(&okp, Algorithm::EdDSA));
        assert!(!key_fits(&okp, Algorithm::ES256));
        assert!(!key_fits(
            &json!({"kty": "oct", "k": "c2VjcmV0"}),
            Algorithm::HS256
        ));
    }

    #[test]
    fn jwks_documents_hold_public_keys_only() {
        let ok = json!({"keys": [ec(Some("a"))]}).to_string();
        assert_eq!(parse_jwks(ok.as_bytes()).unwrap().len(), 1);
        assert!(parse_jwks(b"not json").unwrap_err().contains("not JSON"));
        assert!(parse_jwks(b"[]").unwrap_err().contains("keys"));
        let private =
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}]});
        assert!(
            parse_jwks(private.to_string().as_bytes())
                .unwrap_err()
                .contains("private")
        );
        let symmetric = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]});
        assert!(parse_jwks(symmetric.to_string().as_bytes()).is_err());
    }

    #[test]
    fn the_jwks_cache_expires_and_limits_refetches() {
        let cache = JwksCache::default();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let uri = "https://client.example/jwks";
        assert!(cache.fresh(uri, t0).is_none());
        assert!(cache.may_refetch(uri, t0));
        cache.put(uri, Arc::new(vec![ec(Some("a"))]), t0);
        assert_eq!(cache.fresh(uri, t0).unwrap().len(), 1);
        assert!(!cache.may_refetch(uri, t0 + SignedDuration::from_secs(9)));
        assert!(cache.may_refetch(uri, t0 + JWKS_MIN_REFETCH));
        let almost = t0 + JWKS_CACHE_TTL - SignedDuration::from_secs(1);
        assert!(cache.fresh(uri, almost).is_some());
        assert!(cache.fresh(uri, t0 + JWKS_CACHE_TTL).is_none());
        // A copy "from the future" (another clock) is not trusted.
        assert!(
            cache
                .fresh(uri, t0 - SignedDuration::from_secs(1))
                .is_none()
        );
        assert!(cache.fresh("https://other.example/jwks", t0).is_none());
    }

    #[tokio::test]
    async fn jwks_uris_must_be_https() {
        assert!(
            fetch_jwks("http://127.0.0.1:9/jwks")
                .await
                .unwrap_err()
                .contains("https")
        );
        assert!(fetch_jwks("not a url").await.unwrap_err().contains("URL"));
    }

    #[test]
    fn numeric_dates_and_jtis_are_checked() {
        let claims =
            json!({"exp": 1_767_225_600, "iat": 1_767_225_600.7, "nbf": "soon", "jti": ""});
        let claims = claims.as_object().unwrap();
        assert_eq!(
            numeric_date(claims, "exp").unwrap().unwrap().as_second(),
            1_767_225_600
        );
        assert_eq!(
            numeric_date(claims, "iat").unwrap().unwrap().as_second(),
            1_767_225_600
        );
        assert!(numeric_date(claims, "nbf").is_err());
        assert_eq!(numeric_date(claims, "missing"), Ok(None));
        assert!(jti(claims).is_err());
        assert!(jti(json!({"jti": 5}).as_object().unwrap()).is_err());
        assert!(
            jti(json!({}).as_object().unwrap())
                .unwrap_err()
                .contains("no `jti`")
        );
        assert_eq!(jti(json!({"jti": "x"}).as_object().unwrap()), Ok("x"));
    }
}
