//! The swarm-core `Store` conformance suite against raft stores of one and
//! three members. The three-member store is used through a follower, so
//! every write is forwarded to the leader.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::Cluster;
use swarm_core::store::{Change, State, Store, StoreError, WatchStream};
use swarm_raft::RaftStore;

/// A member's store that keeps its cluster alive.
struct Held {
    store: RaftStore,
    _cluster: Arc<Cluster>,
}

#[async_trait]
impl Store for Held {
    async fn state(&self) -> Result<State, StoreError> {
        self.store.state().await
    }
    async fn apply(&self, changes: Vec<Change>) -> Result<u64, StoreError> {
        self.store.apply(changes).await
    }
    async fn watch(&self, from: Option<u64>) -> Result<WatchStream, StoreError> {
        self.store.watch(from).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_passes_the_store_suite() {
    swarm_core::testing::store_suite(|| async {
        let cluster = Cluster::start(1, None).await;
        Held {
            store: cluster.store(1),
            _cluster: Arc::new(cluster),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_pass_the_store_suite_through_a_follower() {
    swarm_core::testing::store_suite(|| async {
        let cluster = Cluster::start(3, None).await;
        let leader = cluster.leader().await;
        let follower = (1..=3).find(|&i| i != leader).unwrap();
        Held {
            store: cluster.store(follower),
            _cluster: Arc::new(cluster),
        }
    })
    .await;
}
