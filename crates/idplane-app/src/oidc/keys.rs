//! Token signing keys and the JSON Web Key Set (RFC 7517) that publishes
//! their public halves.
//!
//! One key per algorithm is active: ES256 (the default), RS256 (many relying
//! parties accept nothing else) and EdDSA (Ed25519). Keys are generated with
//! aws-lc-rs; their PKCS#8 private halves are sealed under the root key and
//! stored with purpose [`SIGNING_KEY_PURPOSE`] and the public JWK as JSON.
//! The key id (`kid`) is the RFC 7638 JWK thumbprint (SHA-256, base64url).
//!
//! Rotation creates a new key for an algorithm and retires the previous
//! one. A retired key no longer signs but stays in the JWKS for
//! [`RETIRED_KEY_GRACE`], so that every token it signed still verifies until
//! it expires; after that it drops out of the JWKS. That is evaluated when
//! the JWKS is read, with the injected clock.
//!
//! The active keys (unsealed, ready to sign) and the published JWKs are kept
//! in memory and reloaded from the store after a rotation on this node, and
//! within [`crate::registry::REGISTRY_POLL`] of one on another node.

use std::sync::{Arc, PoisonError, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_core::audit::AuditEvent;
use idplane_core::{Actor, Ctx, Timestamp};
use idplane_store::StoreError;
use idplane_store::keys::{self, StoredKey};
use jiff::SignedDuration;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::{App, AppError, Result};

/// The purpose under which token signing keys are stored.
pub const SIGNING_KEY_PURPOSE: &str = "oidc-signing";

/// How long a retired key stays in the JWKS: longer than any token lifetime
/// we issue (access and ID tokens live at most 24 hours), so every token a
/// key signed expires before its key leaves the JWKS.
pub const RETIRED_KEY_GRACE: SignedDuration = SignedDuration::from_hours(24);

/// RSA modulus size of new RS256 keys (NIST: acceptable through 2030).
const RSA_KEY_SIZE: KeySize = KeySize::Rsa2048;

/// A JWS algorithm we sign tokens with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum SigningAlgorithm {
    /// ECDSA with P-256 and SHA-256 (the default).
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
    /// EdDSA with Ed25519 (RFC 8037).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    /// Every algorithm, each with an active key.
    pub const ALL: [SigningAlgorithm; 3] = [Self::Es256, Self::Rs256, Self::EdDsa];

    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The algorithm called `name` (JWS `alg`, exact).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The jsonwebtoken algorithm.
    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Es256 => 0,
            Self::Rs256 => 1,
            Self::EdDsa => 2,
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An active signing key, ready to sign a JWT.
#[derive(Debug)]
pub struct SigningKey {
    /// The key id, to put in the JWS header.
    pub kid: String,
    pub algorithm: Algorithm,
    pair: KeyPair,
}

/// A private key parsed once, when the key set loads. jsonwebtoken parses
/// the PKCS#8 key on every signature, which for P-256 recomputes and checks
/// the public point: as costly as the signature itself.
#[derive(Debug)]
enum KeyPair {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl KeyPair {
    fn from_pkcs8(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self> {
        let bad = |e: aws_lc_rs::error::KeyRejected| {
            AppError::Internal(format!("bad {algorithm} key: {e}"))
        };
        Ok(match algorithm {
            SigningAlgorithm::Es256 => Self::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(bad)?,
            ),
            SigningAlgorithm::Rs256 => Self::Rs256(RsaKeyPair::from_pkcs8(pkcs8).map_err(bad)?),
            SigningAlgorithm::EdDsa => Self::EdDsa(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?),
        })
    }

    /// The public JWK members (those of the thumbprint).
    fn public_jwk(&self) -> Result<Value> {
        Ok(match self {
            Self::Es256(pair) => {
                // Uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                let (x, y) = point
                    .get(1..)
                    .filter(|xy| point.first() == Some(&4) && xy.len() == 64)
                    .map(|xy| xy.split_at(32))
                    .ok_or_else(|| AppError::Internal("unexpected EC public key form".into()))?;
                json!({"kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y)})
            }
            Self::Rs256(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Self::EdDsa(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref())})
            }
        })
    }

    /// The JWS signature of `message` (RFC 7518 §3: fixed-size R || S for
    /// ES256, PKCS#1 v1.5 with SHA-256 for RS256, plain Ed25519).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let failed = |_| AppError::Internal("signing failed".into());
        let rng = SystemRandom::new();
        Ok(match self {
            Self::Es256(pair) => pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec(),
            Self::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(failed)?;
                signature
            }
            Self::EdDsa(pair) => pair.sign(message).as_ref().to_vec(),
        })
    }
}

impl SigningKey {
    /// A JWS header with this key's `alg` and `kid` and `typ`.
    pub fn header(&self, typ: &str) -> Header {
        Header {
            typ: Some(typ.to_owned()),
            alg: self.algorithm,
            kid: Some(self.kid.clone()),
            ..Header::default()
        }
    }

    /// Signs `claims` as a JWT of type `typ` (e.g. `JWT`, `at+jwt`): the
    /// JWS compact serialization (RFC 7515 §7.1), as jsonwebtoken writes it.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String> {
        let json = |e: serde_json::Error| AppError::Internal(format!("JWT encoding: {e}"));
        let header = serde_json::to_vec(&self.header(typ)).map_err(json)?;
        let claims = serde_json::to_vec(claims).map_err(json)?;
        let mut jws = B64.encode(header);
        jws.push('.');
        B64.encode_string(claims, &mut jws);
        let signature = self.pair.sign(jws.as_bytes())?;
        jws.push('.');
        B64.encode_string(signature, &mut jws);
        Ok(jws)
    }
}

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Signs new tokens; published.
    Active,
    /// No longer signs; still published so its tokens verify.
    Retired,
    /// Retired longer than the grace period; no longer published.
    Unpublished,
}

/// A signing key as administrators see it (never its private half).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub status: KeyStatus,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    /// When a retired key leaves the JWKS.
    pub published_until: Option<Timestamp>,
    /// The public JWK as published.
    pub public_jwk: Value,
}

impl KeyInfo {
    fn from_stored(key: &StoredKey, now: Timestamp) -> Result<Self> {
        let algorithm = SigningAlgorithm::parse(&key.algorithm).ok_or_else(|| {
            AppError::Internal(format!(
                "key {}: unknown algorithm {}",
                key.id, key.algorithm
            ))
        })?;
        let published_until = key.retired_at.map(|at| at + RETIRED_KEY_GRACE);
        let status = match published_until {
            None => KeyStatus::Active,
            Some(until) if now < until => KeyStatus::Retired,
            Some(_) => KeyStatus::Unpublished,
        };
        Ok(Self {
            kid: key.id.clone(),
            algorithm,
            status,
            created_at: key.created_at,
            retired_at: key.retired_at,
            published_until,
            public_jwk: parse_jwk(key)?,
        })
    }
}

/// The in-memory read model: active keys and published JWKs.
#[derive(Debug, Default)]
pub(crate) struct KeyCache(RwLock<Arc<KeySet>>);

#[derive(Debug, Default)]
struct KeySet {
    /// Indexed by [`SigningAlgorithm::index`].
    active: [Option<Arc<SigningKey>>; 3],
    /// Published keys, oldest first.
    published: Vec<PublishedKey>,
}

#[derive(Debug)]
struct PublishedKey {
    jwk: Value,
    kid: String,
    retired_at: Option<Timestamp>,
    /// Built once, so a verification parses no JWK.
    algorithm: Algorithm,
    decoding: DecodingKey,
}

impl PublishedKey {
    fn from_jwk(jwk: Value, retired_at: Option<Timestamp>) -> Result<Self> {
        let bad = |why: String| AppError::Internal(format!("published JWK: {why}"));
        let kid = jwk
            .get("kid")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no kid".into()))?
            .to_owned();
        let algorithm = jwk
            .get("alg")
            .and_then(Value::as_str)
            .and_then(SigningAlgorithm::parse)
            .ok_or_else(|| bad(format!("{kid}: unknown alg")))?
            .jwt_algorithm();
        let parsed: Jwk = serde_json::from_value(jwk.clone()).map_err(|e| bad(e.to_string()))?;
        let decoding = DecodingKey::from_jwk(&parsed).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            jwk,
            kid,
            retired_at,
            algorithm,
            decoding,
        })
    }

    fn published_at(&self, now: Timestamp) -> bool {
        self.retired_at
            .is_none_or(|at| now < at + RETIRED_KEY_GRACE)
    }
}

impl KeyCache {
    fn get(&self) -> Arc<KeySet> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, set: KeySet) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }
}

impl App {
    /// The active key for `algorithm`, from memory (no database read).
    pub fn active_signing_key(&self, algorithm: SigningAlgorithm) -> Result<Arc<SigningKey>> {
        self.inner
            .signing_keys
            .get()
            .active
            .get(algorithm.index())
            .cloned()
            .flatten()
            .ok_or_else(|| AppError::Internal(format!("no active {algorithm} signing key")))
    }

    /// The JSON Web Key Set at `now`: the active keys and the keys retired
    /// less than [`RETIRED_KEY_GRACE`] ago. Public halves only.
    pub fn jwks(&self, now: Timestamp) -> Value {
        let set = self.inner.signing_keys.get();
        let keys: Vec<Value> = set
            .published
            .iter()
            .filter(|key| key.published_at(now))
            .map(|key| key.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    /// The algorithm and public key that verify tokens with key id `kid`,
    /// while it is in the JWKS at `now`.
    pub(crate) fn verification_key(
        &self,
        kid: &str,
        now: Timestamp,
    ) -> Option<(Algorithm, DecodingKey)> {
        self.inner
            .signing_keys
            .get()
            .published
            .iter()
            .find(|key| key.kid == kid && key.published_at(now))
            .map(|key| (key.algorithm, key.decoding.clone()))
    }

    /// Whether the key `kid` is in the JWKS at `now`, so what it signed
    /// still verifies.
    pub(crate) fn is_verification_key(&self, kid: &str, now: Timestamp) -> bool {
        self.inner
            .signing_keys
            .get()
            .published
            .iter()
            .any(|key| key.kid == kid && key.published_at(now))
    }

    /// Every token signing key, newest last, with its status at `now`.
    pub async fn signing_keys(&self, now: Timestamp) -> Result<Vec<KeyInfo>> {
        let mut conn = self.store().read().await?;
        keys::list(&mut conn, SIGNING_KEY_PURPOSE)
            .await?
            .iter()
            .map(|key| KeyInfo::from_stored(key, now))
            .collect()
    }

    /// Creates a new key for `algorithm` and retires the active one, which
    /// stays published for [`RETIRED_KEY_GRACE`]. New tokens are signed with
    /// the new key at once on this node.
    pub async fn rotate_signing_key(
        &self,
        ctx: &Ctx,
        algorithm: SigningAlgorithm,
    ) -> Result<KeyInfo> {
        self.rotate(ctx, algorithm, None).await
    }

    /// Rotates the key of each of `algorithms` in turn, as
    /// [`App::rotate_signing_key`] does; the new keys.
    pub async fn rotate_signing_keys(
        &self,
        ctx: &Ctx,
        algorithms: &[SigningAlgorithm],
    ) -> Result<Vec<KeyInfo>> {
        let mut rotated = Vec::with_capacity(algorithms.len());
        for algorithm in algorithms {
            rotated.push(self.rotate(ctx, *algorithm, None).await?);
        }
        Ok(rotated)
    }

    /// Scheduled rotation: rotates every algorithm whose active key is
    /// older than `max_age` at `ctx.now` (the injected clock), so that no
    /// key signs for longer than the operator allows. Returns the new keys.
    ///
    /// A key another node (or an administrator) rotated in the meantime is
    /// left alone rather than rotated twice.
    pub async fn rotate_due_signing_keys(
        &self,
        ctx: &Ctx,
        max_age: SignedDuration,
    ) -> Result<Vec<KeyInfo>> {
        let mut due = Vec::new();
        let mut conn = self.store().read().await?;
        for algorithm in SigningAlgorithm::ALL {
            if let Some(key) = keys::active(&mut conn, SIGNING_KEY_PURPOSE, algorithm.as_str())
                .await?
                .filter(|key| ctx.now.duration_since(key.created_at) > max_age)
            {
                due.push((algorithm, key.id));
            }
        }
        drop(conn);
        let mut rotated = Vec::new();
        for (algorithm, kid) in due {
            match self.rotate(ctx, algorithm, Some(&kid)).await {
                Ok(key) => rotated.push(key),
                // Rotated by someone else meanwhile.
                Err(AppError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(rotated)
    }

    /// Rotates `algorithm`; with `replacing`, only if that key is still the
    /// active one (a conflict otherwise, and nothing changes).
    async fn rotate(
        &self,
        ctx: &Ctx,
        algorithm: SigningAlgorithm,
        replacing: Option<&str>,
    ) -> Result<KeyInfo> {
        let key = self.new_signing_key(algorithm, ctx.now).await?;
        let mut tx = self.store().write().await?;
        let retired =
            keys::retire_active(&mut tx, SIGNING_KEY_PURPOSE, algorithm.as_str(), ctx.now).await?;
        if replacing.is_some_and(|kid| retired != [kid]) {
            // Dropping the transaction un-retires what it retired.
            return Err(AppError::Conflict(format!(
                "the active {algorithm} key was rotated meanwhile"
            )));
        }
        keys::insert(&mut tx, &key).await.map_err(|e| match e {
            StoreError::Duplicate(_) => AppError::Conflict(
                "another rotation of this algorithm is in progress; retry".into(),
            ),
            other => other.into(),
        })?;
        tx.commit(
            AuditEvent::new(ctx, "key.rotate", Some(format!("key:{}", key.id))).with_details(
                json!({
                    "purpose": SIGNING_KEY_PURPOSE,
                    "algorithm": algorithm.as_str(),
                    "retired": retired,
                }),
            ),
        )
        .await?;
        tracing::info!(kid = %key.id, %algorithm, ?retired, "token signing key rotated");
        self.reload_signing_keys().await?;
        KeyInfo::from_stored(&key, ctx.now)
    }

    /// Creates the missing active signing keys (first start) and loads the
    /// keys into memory, failing if they do not unseal.
    pub(crate) async fn ensure_token_signing_keys(&self) -> Result<()> {
        while !self.create_missing_signing_keys().await? {}
        self.reload_signing_keys().await
    }

    /// Generates the missing keys side by side (RSA dominates a first
    /// start) and stores them in one transaction. False when another node
    /// stored one first: nothing was written, and the caller looks again.
    async fn create_missing_signing_keys(&self) -> Result<bool> {
        let mut missing = Vec::new();
        let mut conn = self.store().read().await?;
        for algorithm in SigningAlgorithm::ALL {
            if keys::active(&mut conn, SIGNING_KEY_PURPOSE, algorithm.as_str())
                .await?
                .is_none()
            {
                missing.push(algorithm);
            }
        }
        drop(conn);
        if missing.is_empty() {
            return Ok(true);
        }
        let created_at = self.clock().now();
        let generating: Vec<_> = missing
            .iter()
            .map(|&algorithm| (algorithm, spawn_generate(algorithm)))
            .collect();
        let mut created = Vec::new();
        for (algorithm, generated) in generating {
            created.push(
                self.seal_signing_key(algorithm, created_at, generated)
                    .await?,
            );
        }
        let ctx = self.ctx(
            self.default_tenant_id().await?,
            Actor::System,
            Default::default(),
        );
        let mut tx = self.store().write().await?;
        let mut events = Vec::new();
        for key in &created {
            match keys::insert(&mut tx, key).await {
                Ok(()) => {}
                // Dropping the transaction discards the others too.
                Err(StoreError::Duplicate(_)) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            events.push(
                AuditEvent::new(&ctx, "key.create", Some(format!("key:{}", key.id))).with_details(
                    json!({"purpose": SIGNING_KEY_PURPOSE, "algorithm": key.algorithm}),
                ),
            );
        }
        tx.commit_all(events).await?;
        Ok(true)
    }

    /// Rebuilds the in-memory keys from the store.
    pub(crate) async fn reload_signing_keys(&self) -> Result<()> {
        let now = self.clock().now();
        let stored = {
            let mut conn = self.store().read().await?;
            keys::published(&mut conn, SIGNING_KEY_PURPOSE, now - RETIRED_KEY_GRACE).await?
        };
        let mut set = KeySet::default();
        for key in &stored {
            let jwk = parse_jwk(key)?;
            if key.retired_at.is_none() {
                let algorithm = SigningAlgorithm::parse(&key.algorithm).ok_or_else(|| {
                    AppError::Internal(format!(
                        "key {}: unknown algorithm {}",
                        key.id, key.algorithm
                    ))
                })?;
                let pkcs8 = Zeroizing::new(self.keyring().open(&key.id, &key.sealed_private_key)?);
                let signing = signing_key(algorithm, &key.id, &pkcs8)?;
                if let Some(slot) = set.active.get_mut(algorithm.index()) {
                    *slot = Some(Arc::new(signing));
                }
            }
            set.published
                .push(PublishedKey::from_jwk(jwk, key.retired_at)?);
        }
        self.inner.signing_keys.set(set);
        Ok(())
    }

    /// Generates and seals a key (not yet stored).
    async fn new_signing_key(
        &self,
        algorithm: SigningAlgorithm,
        created_at: Timestamp,
    ) -> Result<StoredKey> {
        self.seal_signing_key(algorithm, created_at, spawn_generate(algorithm))
            .await
    }

    /// Seals a key pair being generated (not yet stored).
    async fn seal_signing_key(
        &self,
        algorithm: SigningAlgorithm,
        created_at: Timestamp,
        generating: JoinHandle<Result<NewKeyPair>>,
    ) -> Result<StoredKey> {
        let (kid, jwk, pkcs8) = generating
            .await
            .map_err(|e| AppError::Internal(format!("key generation failed: {e}")))??;
        Ok(StoredKey {
            sealed_private_key: self.keyring().seal(&kid, &pkcs8)?,
            id: kid,
            purpose: SIGNING_KEY_PURPOSE.to_owned(),
            algorithm: algorithm.as_str().to_owned(),
            public_key: jwk.to_string(),
            created_at,
            retired_at: None,
        })
    }
}

/// A new key pair: (kid, public JWK, PKCS#8 v1 private key).
type NewKeyPair = (String, Value, Zeroizing<Vec<u8>>);

/// Generates a key pair on the blocking pool: RSA takes a while, and must
/// not hold up an async worker.
fn spawn_generate(algorithm: SigningAlgorithm) -> JoinHandle<Result<NewKeyPair>> {
    tokio::task::spawn_blocking(move || generate(algorithm))
}

fn internal(what: &str) -> impl Fn(aws_lc_rs::error::Unspecified) -> AppError + '_ {
    move |_| AppError::Internal(format!("{what} failed"))
}

fn generate(algorithm: SigningAlgorithm) -> Result<NewKeyPair> {
    let rng = SystemRandom::new();
    let pkcs8 = Zeroizing::new(match algorithm {
        SigningAlgorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(internal("key generation"))?
                .as_ref()
                .to_vec()
        }
        SigningAlgorithm::Rs256 => RsaKeyPair::generate(RSA_KEY_SIZE)
            .map_err(internal("key generation"))?
            .as_der()
            .map_err(internal("key export"))?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8v1(&rng)
            .map_err(internal("key generation"))?
            .as_ref()
            .to_vec(),
    });
    let jwk = public_jwk(algorithm, &pkcs8)?;
    let kid = jwk_thumbprint(&jwk)?;
    Ok((kid.clone(), published_jwk(jwk, &kid, algorithm), pkcs8))
}

/// The public JWK members (those of the thumbprint) of a PKCS#8 key.
fn public_jwk(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<Value> {
    KeyPair::from_pkcs8(algorithm, pkcs8)?.public_jwk()
}

/// Adds `kid`, `alg` and `use` to the thumbprint members.
fn published_jwk(mut jwk: Value, kid: &str, algorithm: SigningAlgorithm) -> Value {
    if let Some(map) = jwk.as_object_mut() {
        map.insert("kid".into(), kid.into());
        map.insert("alg".into(), algorithm.as_str().into());
        map.insert("use".into(), "sig".into());
    }
    jwk
}

/// The RFC 7638 JWK thumbprint: base64url(SHA-256) of the required public
/// members of `jwk` in lexicographic order, as JSON without whitespace.
pub fn jwk_thumbprint(jwk: &Value) -> Result<String> {
    let invalid = |why: &str| AppError::Internal(format!("cannot take a JWK thumbprint: {why}"));
    let members: &[&str] = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        Some("oct") => &["k", "kty"],
        _ => return Err(invalid("unknown kty")),
    };
    let mut canonical = Map::new();
    for member in members {
        let value = jwk
            .get(*member)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("a required member is missing"))?;
        canonical.insert((*member).to_owned(), value.into());
    }
    // serde_json keeps a Map's keys sorted (no `preserve_order` here) and
    // writes no whitespace: exactly RFC 7638's canonical form, since the
    // member names and values are ASCII without characters to escape.
    let mut text = String::from("{");
    for (i, (name, value)) in canonical.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&Value::String(name.clone()).to_string());
        text.push(':');
        text.push_str(&value.to_string());
    }
    text.push('}');
    Ok(B64.encode(Sha256::digest(text.as_bytes())))
}

fn parse_jwk(key: &StoredKey) -> Result<Value> {
    serde_json::from_str(&key.public_key)
        .map_err(|e| AppError::Internal(format!("key {}: public JWK is not JSON: {e}", key.id)))
}

/// A ready-to-sign key from its PKCS#8 private half, checked against its
/// key id (the thumbprint of the public key it derives).
fn signing_key(algorithm: SigningAlgorithm, kid: &str, pkcs8: &[u8]) -> Result<SigningKey> {
    let pair = KeyPair::from_pkcs8(algorithm, pkcs8)?;
    if jwk_thumbprint(&pair.public_jwk()?)? != kid {
        return Err(AppError::Internal(format!(
            "key {kid}: the private key does not match its key id"
        )));
    }
    Ok(SigningKey {
        kid: kid.to_owned(),
        algorithm: algorithm.jwt_algorithm(),
        pair,
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Validation;

    use super::*;

    #[test]
    fn algorithms_round_trip_their_names() {
        for alg in SigningAlgorithm::ALL {
            assert_eq!(SigningAlgorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(
                serde_json::to_value(alg).unwrap(),
                Value::String(alg.as_str().into())
            );
        }
        assert_eq!(SigningAlgorithm::parse("es256"), None);
        assert_eq!(SigningAlgorithm::parse("HS256"), None);
    }

    #[test]
    fn generated_keys_load_and_match_their_kid() {
        for alg in SigningAlgorithm::ALL {
            let (kid, jwk, pkcs8) = generate(alg).unwrap();
            assert_eq!(jwk["kid"], kid.as_str());
            assert_eq!(jwk["alg"], alg.as_str());
            assert_eq!(
                jwk_thumbprint(&jwk).unwrap(),
                kid,
                "extra members are ignored"
            );
            let key = signing_key(alg, &kid, &pkcs8).unwrap();
            assert_eq!(key.algorithm, alg.jwt_algorithm());
            assert!(signing_key(alg, "other", &pkcs8).is_err());
        }
    }

    /// Our compact serialization is jsonwebtoken's: its decoder accepts
    /// every token we sign, and refuses it once a byte of the payload or
    /// the signature changes.
    #[test]
    fn signed_tokens_verify_with_jsonwebtoken_and_only_unaltered() {
        let claims = json!({"iss": "https://idp.example", "sub": "s", "exp": 4_102_444_800_i64});
        for alg in SigningAlgorithm::ALL {
            let (kid, jwk, pkcs8) = generate(alg).unwrap();
            let key = signing_key(alg, &kid, &pkcs8).unwrap();
            let token = key.sign("at+jwt", &claims).unwrap();
            let published = PublishedKey::from_jwk(jwk, None).unwrap();
            let validation = Validation::new(alg.jwt_algorithm());
            let decoded =
                jsonwebtoken::decode::<Value>(&token, &published.decoding, &validation).unwrap();
            assert_eq!(decoded.claims, claims, "{alg}");
            assert_eq!(decoded.header.kid.as_deref(), Some(kid.as_str()));
            assert_eq!(decoded.header.typ.as_deref(), Some("at+jwt"));

            let (signed, signature) = token.rsplit_once('.').unwrap();
            let other = key.sign("at+jwt", &json!({"sub": "t"})).unwrap();
            let (_, other_signature) = other.rsplit_once('.').unwrap();
            for forged in [
                format!("{signed}.{other_signature}"),
                format!("{}.{signature}", other.rsplit_once('.').unwrap().0),
            ] {
                assert!(
                    jsonwebtoken::decode::<Value>(&forged, &published.decoding, &validation)
                        .is_err(),
                    "{alg}"
                );
            }
        }
    }
}
