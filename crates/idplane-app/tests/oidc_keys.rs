//! Token signing keys against the injected clock: one active key per
//! algorithm with an RFC 7638 key id, JWTs that verify against the JWKS,
//! rotation that keeps the old key published for exactly the grace period,
//! scheduled rotation of keys past their age, and keys that outlive a
//! restart but only under the same root key.
//!
//! `sqlite_<name>` always runs; `postgres_<name>` runs on a schema of its own
//! on the server named by `IDPLANE_TEST_DATABASE_URL`, and is skipped when
//! that is not set. The app does not speak SQL, so the schema stays on the
//! (disposable) test server.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use idplane_app::keyring::{Keyring, random_bytes};
use idplane_app::oidc::keys::{
    KeyInfo, KeyStatus, RETIRED_KEY_GRACE, SigningAlgorithm, jwk_thumbprint,
};
use idplane_app::{App, AppError, AppSettings};
use idplane_core::{Actor, Ctx, ManualClock, RequestMeta, Timestamp};
use idplane_store::audit::AuditFilter;
use idplane_store::{Store, StoreOptions};
use jiff::SignedDuration;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Value, json};

const ISSUER: &str = "https://id.example.com";

/// Where a test's database is, to open it again after a restart.
struct Db {
    url: String,
    options: StoreOptions,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn sqlite() -> Self {
        let (url, dir) = support::temp_sqlite();
        Self {
            url,
            options: StoreOptions::default(),
            _dir: Some(dir),
        }
    }

    fn postgres() -> Option<Self> {
        let url = std::env::var("IDPLANE_TEST_DATABASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())?;
        Some(Self {
            url,
            options: StoreOptions {
                schema: Some(format!("t_{}", uuid::Uuid::now_v7().simple())),
                max_connections: Some(5),
                ..StoreOptions::default()
            },
            _dir: None,
        })
    }
}

struct Harness {
    app: App,
    clock: Arc<ManualClock>,
    root_key: [u8; 32],
    db: Db,
}

impl Harness {
    async fn new(db: Db) -> Self {
        let clock = support::clock();
        let root_key = random_bytes::<32>().unwrap();
        let app = start(&db, clock.clone(), &root_key).await.unwrap();
        Self {
            app,
            clock,
            root_key,
            db,
        }
    }

    async fn ctx(&self, actor: Actor) -> Ctx {
        let tenant = self.app.default_tenant_id().await.unwrap();
        self.app.ctx(tenant, actor, RequestMeta::default())
    }

    fn now(&self) -> Timestamp {
        self.app.clock().now()
    }

    async fn keys(&self) -> Vec<KeyInfo> {
        self.app.signing_keys(self.now()).await.unwrap()
    }

    fn active_kid(&self, algorithm: SigningAlgorithm) -> String {
        self.app.active_signing_key(algorithm).unwrap().kid.clone()
    }

    /// The kids the JWKS publishes now.
    fn published(&self) -> HashSet<String> {
        self.app.jwks(self.now())["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|jwk| jwk["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A JWT signed now with the active key of `algorithm`.
    fn sign(&self, algorithm: SigningAlgorithm) -> String {
        let claims = json!({"iss": ISSUER, "sub": "alice", "exp": 4_000_000_000u64});
        self.app
            .active_signing_key(algorithm)
            .unwrap()
            .sign("JWT", &claims)
            .unwrap()
    }

    /// Whether `token` verifies against the JWKS published now, as a
    /// relying party checks it: the key named by its `kid`, its `alg`.
    fn verifies(&self, token: &str) -> bool {
        let header = jsonwebtoken::decode_header(token).unwrap();
        let jwks = self.app.jwks(self.now());
        let Some(jwk) = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|jwk| jwk["kid"].as_str() == header.kid.as_deref())
        else {
            return false;
        };
        let jwk: Jwk = serde_json::from_value(jwk.clone()).unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[ISSUER]);
        jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
    }

    /// The audit records of `action`: (actor, target, details).
    async fn audited(&self, action: &str) -> Vec<(String, String, Value)> {
        let ctx = self.ctx(Actor::Root).await;
        let filter = AuditFilter {
            action: Some(action.into()),
            limit: 1000,
            ..AuditFilter::default()
        };
        self.app
            .audit_events(&ctx, &filter)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.event.actor,
                    r.event.target.unwrap_or_default(),
                    r.event.details,
                )
            })
            .collect()
    }

    /// Stops the app and starts another on the same database and root key.
    async fn restart(&mut self) {
        self.app.shutdown().await;
        self.app = start(&self.db, self.clock.clone(), &self.root_key)
            .await
            .unwrap();
    }
}

async fn start(db: &Db, clock: Arc<ManualClock>, root_key: &[u8]) -> idplane_app::Result<App> {
    let store = Store::open(&db.url, &db.options).await.unwrap();
    let settings = AppSettings {
        issuer: ISSUER.into(),
        ..AppSettings::default()
    };
    App::start(
        store,
        clock,
        Keyring::from_bytes(root_key).unwrap(),
        settings,
    )
    .await
}

/// For each `body => sqlite_name, postgres_name;` a test on SQLite and one
/// on PostgreSQL (when `IDPLANE_TEST_DATABASE_URL` is set).
macro_rules! on_both_stores {
    ($($body:ident => $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $body(Harness::new(Db::sqlite()).await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(db) = Db::postgres() else {
                eprintln!("skipped: IDPLANE_TEST_DATABASE_URL is not set");
                return;
            };
            $body(Harness::new(db).await).await;
        }
    )*};
}

on_both_stores! {
    every_algorithm_has_one_active_key_named_by_its_thumbprint
        => sqlite_every_algorithm_has_one_active_key_named_by_its_thumbprint,
           postgres_every_algorithm_has_one_active_key_named_by_its_thumbprint;
    tokens_signed_with_the_active_keys_verify_against_the_jwks
        => sqlite_tokens_signed_with_the_active_keys_verify_against_the_jwks,
           postgres_tokens_signed_with_the_active_keys_verify_against_the_jwks;
    a_rotated_key_stays_published_for_the_grace_period_only
        => sqlite_a_rotated_key_stays_published_for_the_grace_period_only,
           postgres_a_rotated_key_stays_published_for_the_grace_period_only;
    scheduled_rotation_replaces_only_keys_older_than_the_maximum_age
        => sqlite_scheduled_rotation_replaces_only_keys_older_than_the_maximum_age,
           postgres_scheduled_rotation_replaces_only_keys_older_than_the_maximum_age;
    keys_survive_a_restart_under_the_same_root_key_only
        => sqlite_keys_survive_a_restart_under_the_same_root_key_only,
           postgres_keys_survive_a_restart_under_the_same_root_key_only;
}

/// Two nodes of a new cluster starting at once both generate keys; the one
/// that stores them second finds the other's and stores none of its own:
/// one active key per algorithm (and one audit checkpoint key), created
/// once, signing on both nodes.
async fn nodes_starting_together_share_one_key_per_algorithm(db: Db) {
    // The schema first: concurrent migrations are not what this races.
    Store::open(&db.url, &db.options)
        .await
        .unwrap()
        .close()
        .await;
    let clock = support::clock();
    let root_key = random_bytes::<32>().unwrap();
    let (first, second) = tokio::join!(
        start(&db, clock.clone(), &root_key),
        start(&db, clock.clone(), &root_key)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    for algorithm in SigningAlgorithm::ALL {
        assert_eq!(
            first.active_signing_key(algorithm).unwrap().kid,
            second.active_signing_key(algorithm).unwrap().kid,
            "{algorithm}"
        );
    }
    let h = Harness {
        app: first,
        clock,
        root_key,
        db,
    };
    assert_eq!(h.keys().await.len(), 3);
    assert_eq!(h.published().len(), 3);
    // The audit log's checkpoint key raced the same way.
    let mut purposes: Vec<_> = h
        .audited("key.create")
        .await
        .into_iter()
        .map(|(_, _, details)| details["purpose"].as_str().unwrap().to_owned())
        .collect();
    purposes.sort();
    assert_eq!(
        purposes,
        [
            "audit-checkpoint",
            "oidc-signing",
            "oidc-signing",
            "oidc-signing"
        ]
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_nodes_starting_together_share_one_key_per_algorithm() {
    nodes_starting_together_share_one_key_per_algorithm(Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_nodes_starting_together_share_one_key_per_algorithm() {
    let Some(db) = Db::postgres() else {
        eprintln!("skipped: IDPLANE_TEST_DATABASE_URL is not set");
        return;
    };
    nodes_starting_together_share_one_key_per_algorithm(db).await;
}

#[test]
fn thumbprints_follow_rfc_7638() {
    // RFC 7638 §3.1: the example RSA key and its thumbprint.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    });
    assert_eq!(
        jwk_thumbprint(&jwk).unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

async fn every_algorithm_has_one_active_key_named_by_its_thumbprint(h: Harness) {
    let keys = h.keys().await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    for algorithm in SigningAlgorithm::ALL {
        let key = keys.iter().find(|k| k.algorithm == algorithm).unwrap();
        assert_eq!(key.status, KeyStatus::Active);
        assert_eq!(key.retired_at, None);
        assert_eq!(key.published_until, None);
        assert_eq!(key.created_at, h.now());
        assert_eq!(key.kid, jwk_thumbprint(&key.public_jwk).unwrap());
        assert_eq!(key.kid, h.active_kid(algorithm));
        assert_eq!(key.public_jwk["kid"], key.kid.as_str());
        assert_eq!(key.public_jwk["alg"], algorithm.as_str());
        assert_eq!(key.public_jwk["use"], "sig");
    }
    let jwks = h.app.jwks(h.now());
    let published = jwks["keys"].as_array().unwrap();
    assert_eq!(published.len(), 3);
    for jwk in published {
        // Public halves only: none of the private members of RFC 7518 §6.
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(jwk.get(private).is_none(), "{private} published: {jwk}");
        }
    }
}

async fn tokens_signed_with_the_active_keys_verify_against_the_jwks(h: Harness) {
    for algorithm in SigningAlgorithm::ALL {
        let token = h.sign(algorithm);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, algorithm.jwt_algorithm());
        assert_eq!(header.kid, Some(h.active_kid(algorithm)));
        assert!(h.verifies(&token), "{algorithm} token does not verify");
        // Claims altered after signing do not.
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let (header, _) = signing_input.split_once('.').unwrap();
        let claims = json!({"iss": ISSUER, "sub": "mallory", "exp": 4_000_000_000u64});
        let forged = format!("{header}.{}.{signature}", B64.encode(claims.to_string()));
        assert!(!h.verifies(&forged), "{algorithm}: a forged token verifies");
    }
}

async fn a_rotated_key_stays_published_for_the_grace_period_only(h: Harness) {
    let old = h.active_kid(SigningAlgorithm::Es256);
    let others = [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa].map(|a| h.active_kid(a));
    let old_token = h.sign(SigningAlgorithm::Es256);
    h.clock.advance(SignedDuration::from_hours(1));
    let rotated_at = h.now();

    let ctx = h.ctx(Actor::Root).await;
    let new = h
        .app
        .rotate_signing_key(&ctx, SigningAlgorithm::Es256)
        .await
        .unwrap();
    assert_ne!(new.kid, old);
    assert_eq!(new.status, KeyStatus::Active);
    assert_eq!(h.active_kid(SigningAlgorithm::Es256), new.kid);
    assert_eq!(
        [SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa].map(|a| h.active_kid(a)),
        others,
        "only ES256 rotates"
    );
    let new_token = h.sign(SigningAlgorithm::Es256);
    assert_eq!(
        jsonwebtoken::decode_header(&new_token).unwrap().kid,
        Some(new.kid.clone())
    );
    assert_eq!(
        h.audited("key.rotate").await,
        [(
            "root".to_owned(),
            format!("key:{}", new.kid),
            json!({"purpose": "oidc-signing", "algorithm": "ES256", "retired": [&old]}),
        )]
    );

    // Within the grace period both keys are published.
    let retired = h.keys().await.into_iter().find(|k| k.kid == old).unwrap();
    assert_eq!(retired.status, KeyStatus::Retired);
    assert_eq!(retired.retired_at, Some(rotated_at));
    assert_eq!(
        retired.published_until,
        Some(rotated_at + RETIRED_KEY_GRACE)
    );
    h.clock
        .advance(RETIRED_KEY_GRACE - SignedDuration::from_secs(1));
    assert!(h.published().contains(&old));
    assert!(h.verifies(&old_token), "tokens of the old key still verify");
    assert!(h.verifies(&new_token));

    // After it, the old key is gone.
    h.clock.advance(SignedDuration::from_secs(1));
    assert!(!h.published().contains(&old));
    assert!(h.published().contains(&new.kid));
    assert_eq!(h.published().len(), 3);
    assert!(!h.verifies(&old_token));
    assert!(h.verifies(&new_token));
    let keys = h.keys().await;
    assert_eq!(keys.len(), 4, "retired keys stay listed");
    let gone = keys.iter().find(|k| k.kid == old).unwrap();
    assert_eq!(gone.status, KeyStatus::Unpublished);
}

async fn scheduled_rotation_replaces_only_keys_older_than_the_maximum_age(h: Harness) {
    let max_age = SignedDuration::from_hours(90 * 24);
    let started = [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa].map(|a| h.active_kid(a));
    // RS256 is rotated by hand ten days in.
    h.clock.advance(SignedDuration::from_hours(10 * 24));
    let rs256 = h
        .app
        .rotate_signing_key(&h.ctx(Actor::Root).await, SigningAlgorithm::Rs256)
        .await
        .unwrap();

    // Exactly 90 days after start nothing is older than 90 days yet.
    h.clock
        .advance(max_age - SignedDuration::from_hours(10 * 24));
    let system = h.ctx(Actor::System).await;
    let none = h
        .app
        .rotate_due_signing_keys(&system, max_age)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    h.clock.advance(SignedDuration::from_secs(1));
    let system = h.ctx(Actor::System).await;
    let rotated = h
        .app
        .rotate_due_signing_keys(&system, max_age)
        .await
        .unwrap();
    let algorithms: HashSet<_> = rotated.iter().map(|k| k.algorithm).collect();
    assert_eq!(
        algorithms,
        HashSet::from([SigningAlgorithm::Es256, SigningAlgorithm::EdDsa])
    );
    for key in &rotated {
        assert_eq!(key.status, KeyStatus::Active);
        assert_eq!(key.created_at, system.now);
        assert_eq!(h.active_kid(key.algorithm), key.kid);
        assert!(!started.contains(&key.kid));
    }
    assert_eq!(h.active_kid(SigningAlgorithm::Rs256), rs256.kid);
    // The old keys stay published through the grace period.
    for kid in &started {
        assert!(h.published().contains(kid));
    }
    let by_system: Vec<_> = h
        .audited("key.rotate")
        .await
        .into_iter()
        .filter(|(actor, _, _)| actor == "system")
        .map(|(_, target, _)| target)
        .collect();
    assert_eq!(by_system.len(), 2, "{by_system:?}");
    for key in &rotated {
        assert!(by_system.contains(&format!("key:{}", key.kid)));
    }

    // Nothing is due again right after.
    let again = h
        .app
        .rotate_due_signing_keys(&system, max_age)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

async fn keys_survive_a_restart_under_the_same_root_key_only(mut h: Harness) {
    let kids = SigningAlgorithm::ALL.map(|a| h.active_kid(a));
    let tokens = SigningAlgorithm::ALL.map(|a| h.sign(a));
    // A retired key is published after the restart too, within its grace.
    let ctx = h.ctx(Actor::Root).await;
    let rotated = h
        .app
        .rotate_signing_key(&ctx, SigningAlgorithm::EdDsa)
        .await
        .unwrap();
    let published = h.published();
    assert_eq!(published.len(), 4);

    h.restart().await;
    assert_eq!(
        SigningAlgorithm::ALL.map(|a| h.active_kid(a)),
        [kids[0].clone(), kids[1].clone(), rotated.kid.clone()]
    );
    assert_eq!(h.published(), published);
    for token in &tokens {
        assert!(h.verifies(token), "tokens signed before the restart verify");
    }
    let token = h.sign(SigningAlgorithm::Rs256);
    assert!(h.verifies(&token), "the reloaded key signs");

    // Under another root key the keys do not unseal: no start.
    h.app.shutdown().await;
    let other_root_key = random_bytes::<32>().unwrap();
    match start(&h.db, h.clock.clone(), &other_root_key).await {
        Err(AppError::Internal(why)) => assert!(why.contains("cannot unseal"), "{why}"),
        other => panic!("started under the wrong root key: {other:?}"),
    }
}
