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

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockWriteGuard};

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
        self.inner.clients.clear();
        self.inner.resources.clear();
        self.inner.pdp_tokens.clear();
    }
}

/// The most entries a [`RegistryCache`] keeps; a full cache starts over.
const MAX_CACHED: usize = 10_000;

/// Registrations read from the store, each kept with the registry epoch
/// its read began in and served only in that epoch. A read that raced a
/// change (which starts a new epoch) may still insert what it read, but
/// that entry is never served.
#[derive(Debug)]
pub(crate) struct RegistryCache<K, V>(RwLock<HashMap<K, (u64, V)>>);

impl<K, V> Default for RegistryCache<K, V> {
    fn default() -> Self {
        Self(RwLock::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, V: Clone> RegistryCache<K, V> {
    /// The entry for `key` if it was read in `epoch`.
    pub(crate) fn get<Q>(&self, key: &Q, epoch: u64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .filter(|(read_in, _)| *read_in == epoch)
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value`, whose read began in `epoch`.
    pub(crate) fn insert(&self, key: K, epoch: u64, value: V) {
        let mut entries = self.entries_mut();
        if entries.len() >= MAX_CACHED && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (epoch, value));
    }

    /// Forgets one entry after it changed on this node.
    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries_mut().remove(key);
    }

    /// Forgets every entry.
    pub(crate) fn clear(&self) {
        self.entries_mut().clear();
    }

    fn entries_mut(&self) -> RwLockWriteGuard<'_, HashMap<K, (u64, V)>> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_CACHED, RegistryCache};

    #[test]
    fn an_entry_read_before_a_change_is_never_served_after_it() {
        let cache = RegistryCache::<String, &str>::default();
        let read_began_in = 7;
        // The change lands while the read is under way: a new epoch.
        let now = read_began_in + 1;
        cache.insert(
            "client".to_owned(),
            read_began_in,
            "as read before the change",
        );
        assert_eq!(cache.get("client", now), None);
        // Read again in the new epoch, it is served.
        cache.insert("client".to_owned(), now, "as read after the change");
        assert_eq!(cache.get("client", now), Some("as read after the change"));
    }

    #[test]
    fn remove_and_clear_forget() {
        let cache = RegistryCache::<u32, u32>::default();
        cache.insert(1, 0, 10);
        cache.insert(2, 0, 20);
        cache.remove(&1);
        assert_eq!((cache.get(&1, 0), cache.get(&2, 0)), (None, Some(20)));
        cache.clear();
        assert_eq!(cache.get(&2, 0), None);
    }

    #[test]
    fn a_full_cache_starts_over_but_replacing_an_entry_keeps_the_rest() {
        let cache = RegistryCache::<usize, usize>::default();
        for key in 0..MAX_CACHED {
            cache.insert(key, 0, key);
        }
        cache.insert(0, 1, 0);
        assert_eq!(cache.get(&1, 0), Some(1), "a replaced entry takes no room");
        cache.insert(MAX_CACHED, 0, MAX_CACHED);
        assert_eq!(cache.get(&1, 0), None, "the full cache started over");
        assert_eq!(cache.get(&MAX_CACHED, 0), Some(MAX_CACHED));
    }
}
