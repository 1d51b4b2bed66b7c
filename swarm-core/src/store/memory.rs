//! `MemoryStore`: the store of a single process.

use std::sync::Mutex;

use async_trait::async_trait;

use super::{Change, Journal, State, Store, StoreError, WatchStream};

/// Settings of a [`MemoryStore`].
#[derive(Debug, Clone)]
pub struct MemoryStoreConfig {
    /// Events kept for watchers that start from an older index. The newest
    /// commit is always kept whatever its size.
    pub history_events: usize,
    /// Commits buffered per watcher before it counts as lagging.
    pub watch_buffer: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            history_events: 65_536,
            watch_buffer: 4_096,
        }
    }
}

impl MemoryStoreConfig {
    /// Sets [`Self::history_events`].
    #[must_use]
    pub fn history_events(mut self, n: usize) -> Self {
        self.history_events = n;
        self
    }

    /// Sets [`Self::watch_buffer`] (at least 1).
    #[must_use]
    pub fn watch_buffer(mut self, n: usize) -> Self {
        self.watch_buffer = n.max(1);
        self
    }
}

/// A [`Store`] held in this process's memory: fast, not durable, not
/// replicated. The right store for tests, benchmarks and embedding.
///
/// ```
/// use swarm_core::store::{Change, MemoryStore, Store};
/// use swarm_core::model::{Meta, Secret, SecretSpec};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let secret = Secret {
///     meta: Meta::new("s1".into()),
///     spec: SecretSpec { name: "db-password".into(), data: b"hunter2".to_vec(), ..Default::default() },
/// };
/// let index = store.apply(vec![Change::Create(secret.into())]).await.unwrap();
/// let state = store.state().await.unwrap();
/// assert_eq!(state.secret_by_name("db-password").unwrap().meta.version, index);
/// # });
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    journal: Mutex<Journal>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_config(MemoryStoreConfig::default())
    }
}

impl MemoryStore {
    /// An empty store with default settings.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with `config`.
    #[must_use]
    pub fn with_config(config: MemoryStoreConfig) -> Self {
        Self {
            journal: Mutex::new(Journal::new(config.history_events, config.watch_buffer)),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Journal>, StoreError> {
        // A panic in the middle of a write could leave a batch half
        // applied: a poisoned store serves nothing rather than that.
        self.journal.lock().map_err(|_| {
            StoreError::Unavailable("the store was poisoned by a panic during a write".into())
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn state(&self) -> Result<State, StoreError> {
        Ok(self.lock()?.state().clone())
    }

    async fn apply(&self, changes: Vec<Change>) -> Result<u64, StoreError> {
        self.lock()?.commit(changes, std::time::SystemTime::now())
    }

    async fn watch(&self, from: Option<u64>) -> Result<WatchStream, StoreError> {
        self.lock()?.watch(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn passes_the_store_suite() {
        crate::testing::store_suite(|| async { MemoryStore::new() }).await;
    }

    use crate::store::journal::tests::node;

    #[tokio::test]
    async fn old_history_is_compacted() {
        let store = MemoryStore::with_config(MemoryStoreConfig::default().history_events(2));
        for i in 0..5 {
            store.apply(vec![node(&format!("n{i}"))]).await.unwrap();
        }
        let e = store
            .watch(Some(1))
            .await
            .err()
            .expect("index 1 is compacted");
        assert_eq!(e.kind(), crate::store::ErrorKind::Compacted);
        let _kept = store.watch(Some(3)).await.expect("index 3 is kept");
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_told() {
        let store = MemoryStore::with_config(MemoryStoreConfig::default().watch_buffer(2));
        let mut w = store.watch(None).await.unwrap();
        for i in 0..5 {
            store.apply(vec![node(&format!("n{i}"))]).await.unwrap();
        }
        let first = w.next().await.unwrap();
        assert_eq!(
            first.unwrap_err().kind(),
            crate::store::ErrorKind::Compacted
        );
        assert!(
            w.next().await.is_none(),
            "the stream ends after the lag error"
        );
    }
}
