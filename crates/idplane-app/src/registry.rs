//! The registrations the request paths read from memory: API tokens (the
//! `pdp` tokens decisions are asked with), OAuth clients, resource servers
//! and signing keys. A change on this node forgets what it touched at once;
//! a change on another node moves the store's registry generation in its
//! own transaction, which one request (or the server's watch, every
//! [`REGISTRY_POLL`], for a node no such request reaches) reads at most
//! every [`REGISTRY_POLL`] while the others go on, and then this node
//! forgets them all and reloads its signing keys.
//!
//! Each cache entry records the registry epoch in which its read began,
//! and is served only in that epoch: a read that raced a change brings
//! back something that is never served.

use std::sync::atomic::{AtomicU64, Ordering};

use idplane_core::Timestamp;
use idplane_store::generations;
use jiff::SignedDuration;

use crate::App;
use crate::watch::GenerationWatch;

/// How long a change made on another node may go unseen here.
pub const REGISTRY_POLL: SignedDuration = SignedDuration::from_secs(1);

/// What this node last learnt of the registry generation, and the epoch
/// cache entries are checked against.
#[derive(Debug, Default)]
pub(crate) struct RegistryWatch {
    watch: GenerationWatch,
    epoch: AtomicU64,
}

impl App {
    /// The registry epoch now, after reading the registry generation when
    /// it is due. A moved generation, or one that could not be read, starts
    /// a new epoch: nothing cached before is served again.
    pub(crate) async fn registry_epoch(&self, now: Timestamp) -> u64 {
        let read = async {
            let mut conn = self.store().read().await?;
            generations::registry(&mut conn).await
        };
        let registry = &self.inner.registry;
        if registry
            .watch
            .moved(now, REGISTRY_POLL, "registry", read)
            .await
        {
            self.registry_changed();
            // A key rotated elsewhere: sign with it and publish it here too.
            // Until this succeeds, the keys loaded before still sign and
            // verify, as they do on the node that rotated them.
            if let Err(e) = self.reload_signing_keys().await {
                tracing::warn!(error = %e, "reloading the signing keys failed");
            }
        }
        registry.epoch.load(Ordering::Acquire)
    }

    /// Reads the registry generation if it is due: the server calls this
    /// every [`REGISTRY_POLL`], so that a node whose requests never look at
    /// the registry (one serving only its JWKS) still learns of keys
    /// rotated on another node.
    pub async fn watch_registry(&self) {
        self.registry_epoch(self.clock().now()).await;
    }

    /// Starts a new epoch and forgets every cached registration.
    pub(crate) fn registry_changed(&self) {
        self.inner.registry.epoch.fetch_add(1, Ordering::AcqRel);
        self.forget_clients();
        self.forget_all_resources();
        self.forget_pdp_tokens();
    }
}
