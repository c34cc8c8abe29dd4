//! The daemon's live configuration: the current generation and the API's
//! pauses, one handle that the scheduler, the API, the status page and the
//! cluster all read, and that a reload or a pause writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use super::generation::Shared;
use crate::store::Store;

pub struct LiveConfig {
    generation: RwLock<Shared>,
    /// Pauses and resumes from the API, `(system, check)` → paused; they
    /// win over the configuration.
    pauses: RwLock<HashMap<(String, String), bool>>,
    /// Rises with every API pause or resume, for caches of what they change.
    pause_version: AtomicU64,
    /// Told of every new generation.
    changed: Notify,
    /// Routes the notices of what the store derives: always the current
    /// configuration's targets.
    store: Arc<Store>,
}

impl LiveConfig {
    pub fn new(generation: Shared, store: Arc<Store>) -> Arc<LiveConfig> {
        store.set_router(generation.notifier.clone());
        Arc::new(LiveConfig {
            generation: RwLock::new(generation),
            pauses: RwLock::new(HashMap::new()),
            pause_version: AtomicU64::new(0),
            changed: Notify::new(),
            store,
        })
    }

    pub fn generation(&self) -> Shared {
        self.generation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps in a new configuration; the scheduler reconciles its slices.
    pub fn replace(&self, generation: Shared) {
        self.store.set_router(generation.notifier.clone());
        *self.generation.write().unwrap_or_else(|e| e.into_inner()) = generation;
        self.changed.notify_one();
    }

    /// Resolves at the next [`LiveConfig::replace`] (or at once if one came
    /// since the last wait).
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Applies an API pause or resume from the next tick on.
    pub fn set_paused(&self, system: &str, check: &str, paused: bool) {
        self.pauses
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((system.to_string(), check.to_string()), paused);
        self.pause_version.fetch_add(1, Ordering::Relaxed);
    }

    /// Changes whenever an API pause or resume does.
    pub fn pause_version(&self) -> u64 {
        self.pause_version.load(Ordering::Relaxed)
    }

    /// Whether an assignment is paused, the API's word winning over the file.
    pub fn is_paused(&self, system: &str, check: &str, configured: bool) -> bool {
        let pauses = self.pauses.read().unwrap_or_else(|e| e.into_inner());
        if pauses.is_empty() {
            return configured;
        }
        pauses
            .get(&(system.to_string(), check.to_string()))
            .copied()
            .unwrap_or(configured)
    }
}
