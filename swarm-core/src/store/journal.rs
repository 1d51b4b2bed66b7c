//! `Journal`: a [`State`] with its recent history and its watchers; the
//! part of a store that every implementation shares.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use tokio::sync::broadcast;

use super::{Change, Commit, State, StoreError, WatchStream};

/// What the journal tells its live watchers.
#[derive(Debug, Clone)]
enum Note {
    /// A new commit.
    Commit(Arc<Commit>),
    /// The state was replaced wholesale (a snapshot was installed): every
    /// watcher must read the state again.
    Reset {
        /// The index of the state that replaced the old one.
        index: u64,
    },
}

/// A [`State`], the commits that led to it, and the watchers that follow
/// it.
///
/// This is the single implementation of the [`super::Store`] contract's
/// commit numbering, history and watch rules: [`super::MemoryStore`] wraps
/// one in a mutex, and the raft store keeps one in its state machine, where
/// committed log entries are applied. The caller serialises access (a
/// `&mut self` commit never runs beside another).
#[derive(Debug)]
pub struct Journal {
    state: State,
    history: VecDeque<Arc<Commit>>,
    history_events: usize,
    max_history_events: usize,
    tx: broadcast::Sender<Note>,
}

impl Journal {
    /// An empty journal that keeps about `history_events` events for
    /// watchers starting from an older index (the newest commit is always
    /// kept), and buffers `watch_buffer` commits per live watcher before it
    /// counts as lagging.
    #[must_use]
    pub fn new(history_events: usize, watch_buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(watch_buffer.max(1));
        Self {
            state: State::default(),
            history: VecDeque::new(),
            history_events: 0,
            max_history_events: history_events,
            tx,
        }
    }

    /// The current state (an O(1) snapshot).
    #[must_use]
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Applies a batch as the next commit, stamped `now`. An empty batch
    /// commits nothing and returns the current index. On error nothing
    /// changes.
    pub fn commit(&mut self, changes: Vec<Change>, now: SystemTime) -> Result<u64, StoreError> {
        if changes.is_empty() {
            return Ok(self.state.index());
        }
        let index = self.state.index() + 1;
        let events = self.state.apply(changes, index, now)?;
        let commit = Arc::new(Commit {
            index,
            events,
            at: now,
        });
        self.history_events += commit.events.len();
        self.history.push_back(commit.clone());
        while self.history.len() > 1 && self.history_events > self.max_history_events {
            if let Some(old) = self.history.pop_front() {
                self.history_events -= old.events.len();
            }
        }
        // The caller holds the journal exclusively, so watchers receive
        // commits in index order.
        let _ = self.tx.send(Note::Commit(commit));
        Ok(index)
    }

    /// Replaces the state wholesale (a replica installing a snapshot). The
    /// history is dropped and every live watcher's stream ends with
    /// [`StoreError::Compacted`], so that it reads the state again.
    pub fn reset(&mut self, state: State) {
        let index = state.index();
        self.state = state;
        self.history.clear();
        self.history_events = 0;
        let _ = self.tx.send(Note::Reset { index });
    }

    /// Streams the commits after index `from` (`None`: after the current
    /// one), as [`super::Store::watch`] promises.
    pub fn watch(&self, from: Option<u64>) -> Result<WatchStream, StoreError> {
        let current = self.state.index();
        let from = from.unwrap_or(current);
        if from > current {
            return Err(StoreError::InvalidArgument(format!(
                "cannot watch from index {from}: the store is at index {current}"
            )));
        }
        let backlog: Vec<Arc<Commit>> = if from == current {
            Vec::new()
        } else {
            let oldest = self.history.front().map_or(current + 1, |c| c.index);
            if from + 1 < oldest {
                return Err(StoreError::Compacted {
                    requested: from,
                    oldest,
                });
            }
            self.history
                .iter()
                .filter(|c| c.index > from)
                .cloned()
                .collect()
        };
        let rx = self.tx.subscribe();
        let live = futures::stream::unfold((Some(rx), current), move |(rx, last)| async move {
            let mut rx = rx?;
            match rx.recv().await {
                Ok(Note::Commit(commit)) => {
                    let index = commit.index;
                    Some((Ok(commit), (Some(rx), index)))
                }
                Ok(Note::Reset { index }) => Some((
                    Err(StoreError::Compacted {
                        requested: last,
                        oldest: index + 1,
                    }),
                    (None, last),
                )),
                Err(broadcast::error::RecvError::Closed) => None,
                // The watcher missed `n` notes after the last commit it got.
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
pub(crate) mod tests {
    use super::*;
    use crate::model::{Meta, Node, NodeDescription, NodeSpec, NodeStatus};
    use crate::store::ErrorKind;

    /// A batch change creating an empty node `id` (for the store tests).
    pub(crate) fn node(id: &str) -> Change {
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
    async fn a_reset_ends_live_watches_with_compacted() {
        let mut j = Journal::new(100, 10);
        j.commit(vec![node("a")], SystemTime::now()).unwrap();
        let mut w = j.watch(None).unwrap();
        let mut other = Journal::new(100, 10);
        for i in 0..3 {
            other
                .commit(vec![node(&format!("n{i}"))], SystemTime::now())
                .unwrap();
        }
        j.reset(other.state().clone());
        assert_eq!(j.state().index(), 3);
        let e = w.next().await.unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Compacted);
        assert!(w.next().await.is_none());
        // After the reset, the next commit follows the new state.
        assert_eq!(j.commit(vec![node("b")], SystemTime::now()).unwrap(), 4);
    }
}
