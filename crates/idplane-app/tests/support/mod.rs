//! The App the use-case tests run against: a temporary SQLite store and a
//! manual clock, so time moves only when a test moves it.
#![allow(
    dead_code,
    reason = "each test crate compiles this module and uses only part of it"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly; clippy's in-test allowance covers only #[test] bodies"
)]

use std::sync::Arc;

use idplane_app::keyring::Keyring;
use idplane_app::{App, AppSettings};
use idplane_core::{Actor, Ctx, ManualClock, RequestMeta};
use idplane_store::{Store, StoreOptions};
use jiff::SignedDuration;

/// A manual clock at the instant every test starts from.
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2026-03-01T09:00:00Z".parse().unwrap()))
}

/// A fresh SQLite database: its URL, and the directory that holds it (the
/// database is deleted when that is dropped).
pub fn temp_sqlite() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (url, dir)
}

/// The root key of every test app, so a second node can share its keys.
const ROOT_KEY: [u8; 32] = [7; 32];

pub struct Harness {
    pub app: App,
    pub clock: Arc<ManualClock>,
    url: String,
    settings: AppSettings,
    /// Held so the database outlives the app.
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new() -> Self {
        Self::start_with(AppSettings::default()).await
    }

    /// For tests that need an issuer other than the default one.
    pub async fn start_with(settings: AppSettings) -> Self {
        let (url, dir) = temp_sqlite();
        let clock = clock();
        let app = node(&url, clock.clone(), settings.clone()).await;
        Self {
            app,
            clock,
            url,
            settings,
            _dir: dir,
        }
    }

    /// A second server on the same database and clock: another node,
    /// whose changes this one's caches do not hear of.
    pub async fn second_node(&self) -> App {
        node(&self.url, self.clock.clone(), self.settings.clone()).await
    }

    /// The root actor's context in the default tenant, now.
    pub async fn ctx(&self) -> Ctx {
        self.ctx_as(Actor::Root, RequestMeta::default()).await
    }

    /// `actor`'s context in the default tenant, now.
    pub async fn ctx_as(&self, actor: Actor, meta: RequestMeta) -> Ctx {
        let tenant = self.app.default_tenant_id().await.unwrap();
        self.app.ctx(tenant, actor, meta)
    }

    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }
}

async fn node(url: &str, clock: Arc<ManualClock>, settings: AppSettings) -> App {
    let store = Store::open(url, &StoreOptions::default()).await.unwrap();
    let keyring = Keyring::from_bytes(&ROOT_KEY).unwrap();
    App::start(store, clock, keyring, settings).await.unwrap()
}
