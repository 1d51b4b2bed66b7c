//! `MemoryStore`: the store of a single process.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{Change, Commit, State, Store, StoreError, WatchStream};

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
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Commit>>,
    config: MemoryStoreConfig,
}

#[derive(Debug, Default)]
struct Inner {
    state: State,
    history: VecDeque<Arc<Commit>>,
    history_events: usize,
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
        let (tx, _) = broadcast::channel(config.watch_buffer);
        Self {
            inner: Mutex::new(Inner::default()),
            tx,
            config,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        // A panic in the middle of a write could leave a batch half
        // applied: a poisoned store serves nothing rather than that.
        self.inner.lock().map_err(|_| {
            StoreError::Unavailable("the store was poisoned by a panic during a write".into())
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn state(&self) -> Result<State, StoreError> {
        Ok(self.lock()?.state.clone())
    }

    async fn apply(&self, changes: Vec<Change>) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        if changes.is_empty() {
            return Ok(inner.state.index());
        }
        let index = inner.state.index() + 1;
        let events = inner
            .state
            .apply(changes, index, std::time::SystemTime::now())?;
        let commit = Arc::new(Commit { index, events });
        inner.history_events += commit.events.len();
        inner.history.push_back(commit.clone());
        while inner.history.len() > 1 && inner.history_events > self.config.history_events {
            if let Some(old) = inner.history.pop_front() {
                inner.history_events -= old.events.len();
            }
        }
        // Sent under the lock so that watchers see commits in index order.
        let _ = self.tx.send(commit);
        Ok(index)
    }

    async fn watch(&self, from: Option<u64>) -> Result<WatchStream, StoreError> {
        let inner = self.lock()?;
        let current = inner.state.index();
        let from = from.unwrap_or(current);
        if from > current {
            return Err(StoreError::InvalidArgument(format!(
                "cannot watch from index {from}: the store is at index {current}"
            )));
        }
        let backlog: Vec<Arc<Commit>> = if from == current {
            Vec::new()
        } else {
            let oldest = inner.history.front().map_or(current + 1, |c| c.index);
            if from + 1 < oldest {
                return Err(StoreError::Compacted {
                    requested: from,
                    oldest,
                });
            }
            inner
                .history
                .iter()
                .filter(|c| c.index > from)
                .cloned()
                .collect()
        };
        let rx = self.tx.subscribe();
        drop(inner);
        let live = futures::stream::unfold((Some(rx), current), move |(rx, last)| async move {
            let mut rx = rx?;
            match rx.recv().await {
                Ok(commit) => {
                    let index = commit.index;
                    Some((Ok(commit), (Some(rx), index)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
                // The watcher missed `n` commits after the last it got.
                Err(broadcast::error::RecvError::Lagged(n)) => Some((
                    Err(StoreError::Compacted {
                        requested: last,
                        oldest: last + n + 1,
                    }),
                    (None, last),
                )),
            }
        });
        Ok(futures::stream::iter(backlog.into_iter().map(Ok))
            .chain(live)
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Meta, Node, NodeDescription, NodeSpec, NodeStatus};

    #[tokio::test]
    async fn passes_the_store_suite() {
        crate::testing::store_suite(|| async { MemoryStore::new() }).await;
    }

    fn node(id: &str) -> Change {
        Change::Create(
            Node {
                meta: Meta::new(id.into()),
                spec: NodeSpec::default(),
                description: NodeDescription::default(),
                status: NodeStatus::default(),
            }
            .into(),
        )
    }

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
