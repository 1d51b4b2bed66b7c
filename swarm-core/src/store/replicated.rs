//! What a node needs of its managers' store beyond [`Store`]: who leads,
//! reads that see every committed write, and the group's members.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::Change;
use super::{MemoryStore, State, Store, StoreError, WatchStream};

/// One member of a replicated store's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id in the group.
    pub id: u64,
    /// The address the other members reach it at.
    pub addr: String,
    /// A voter (counts for quorum), or a learner.
    pub voter: bool,
    /// Whether it answered the leader lately.
    pub reachable: bool,
}

/// The group, as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The leader's member id.
    pub leader: u64,
    /// Every member.
    pub members: Vec<Member>,
}

/// A [`Store`] replicated over a group of members (the managers), one of
/// which leads: what a node needs of it. swarm-raft's `RaftStore`
/// implements it over raft; [`SoloStore`] is a group of one in memory.
///
/// # Contract
/// - [`Store`]'s, on every member: writes on a member that does not lead
///   are forwarded to the leader.
/// - [`ReplicatedStore::leadership`] turns `true` while this member leads
///   and `false` when it stops; a member may lead before it has applied
///   every committed write, which [`ReplicatedStore::state_linearizable`]
///   waits for.
/// - Membership changes are made by the leader; elsewhere they fail with
///   `Unavailable`. Adding a member that is already a voter is a no-op.
#[async_trait]
pub trait ReplicatedStore: Store + Clone {
    /// This member's id in the group.
    fn member_id(&self) -> u64;

    /// Whether this member leads, as it changes.
    fn leadership(&self) -> watch::Receiver<bool>;

    /// The state, holding every write committed before the call.
    async fn state_linearizable(&self) -> Result<State, StoreError>;

    /// The members and the leader.
    async fn membership(&self) -> Result<Membership, StoreError>;

    /// Makes member `id`, reachable at `addr`, a voter.
    async fn add_voter(&self, id: u64, addr: String) -> Result<(), StoreError>;

    /// Takes member `id` out of the group.
    async fn remove_member(&self, id: u64) -> Result<(), StoreError>;

    /// Stops this member: its background work ends. Later calls fail.
    async fn shutdown(&self);
}

/// A group of one, in memory: a [`ReplicatedStore`] for tests and for
/// apps that want no raft. It always leads, every read is linearizable,
/// and it refuses other members. The state is lost with the process.
#[derive(Clone)]
pub struct SoloStore {
    store: Arc<MemoryStore>,
    member: u64,
    addr: String,
    leading: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for SoloStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoloStore")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SoloStore {
    /// An empty store whose only member, `member`, is reachable at `addr`.
    #[must_use]
    pub fn new(member: u64, addr: impl Into<String>) -> Self {
        Self::over(MemoryStore::new(), member, addr)
    }

    /// A group of one over `store`.
    #[must_use]
    pub fn over(store: MemoryStore, member: u64, addr: impl Into<String>) -> Self {
        Self {
            store: Arc::new(store),
            member,
            addr: addr.into(),
            leading: Arc::new(watch::Sender::new(true)),
        }
    }

    fn refuse() -> StoreError {
        StoreError::InvalidArgument(
            "this manager's store is a group of one (SoloStore): no other manager can join \
             or leave it; run the managers on a replicated store such as swarm-raft's RaftStore"
                .into(),
        )
    }
}

#[async_trait]
impl Store for SoloStore {
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

#[async_trait]
impl ReplicatedStore for SoloStore {
    fn member_id(&self) -> u64 {
        self.member
    }

    fn leadership(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    async fn state_linearizable(&self) -> Result<State, StoreError> {
        self.store.state().await
    }

    async fn membership(&self) -> Result<Membership, StoreError> {
        Ok(Membership {
            leader: self.member,
            members: vec![Member {
                id: self.member,
                addr: self.addr.clone(),
                voter: true,
                reachable: true,
            }],
        })
    }

    async fn add_voter(&self, id: u64, _addr: String) -> Result<(), StoreError> {
        if id == self.member {
            return Ok(());
        }
        Err(Self::refuse())
    }

    async fn remove_member(&self, _id: u64) -> Result<(), StoreError> {
        Err(Self::refuse())
    }

    async fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_group_of_one_leads_and_refuses_others() {
        let store = SoloStore::new(1, "127.0.0.1:2377");
        assert!(*store.leadership().borrow());
        let m = store.membership().await.unwrap();
        assert_eq!(m.leader, 1);
        assert_eq!(m.members.len(), 1);
        store.add_voter(1, String::new()).await.unwrap();
        let err = store.add_voter(7, "x:1".into()).await.unwrap_err();
        assert!(err.to_string().contains("group of one"), "{err}");
        assert!(store.remove_member(1).await.is_err());
        assert_eq!(store.state_linearizable().await.unwrap().index(), 0);
    }
}

#[cfg(any(test, feature = "mocks"))]
mockall::mock! {
    /// A mock [`ReplicatedStore`] (feature `mocks`): expectations for the
    /// store's calls and for leadership and membership.
    pub ReplicatedStore {}

    impl Clone for ReplicatedStore {
        fn clone(&self) -> Self;
    }

    #[async_trait]
    impl Store for ReplicatedStore {
        async fn state(&self) -> Result<State, StoreError>;
        async fn apply(&self, changes: Vec<Change>) -> Result<u64, StoreError>;
        async fn watch(&self, from: Option<u64>) -> Result<WatchStream, StoreError>;
    }

    #[async_trait]
    impl ReplicatedStore for ReplicatedStore {
        fn member_id(&self) -> u64;
        fn leadership(&self) -> watch::Receiver<bool>;
        async fn state_linearizable(&self) -> Result<State, StoreError>;
        async fn membership(&self) -> Result<Membership, StoreError>;
        async fn add_voter(&self, id: u64, addr: String) -> Result<(), StoreError>;
        async fn remove_member(&self, id: u64) -> Result<(), StoreError>;
        async fn shutdown(&self);
    }
}

#[cfg(test)]
mod mock_tests {
    use super::*;

    #[tokio::test]
    async fn the_mock_answers_as_told() {
        let mut store = MockReplicatedStore::new();
        store.expect_member_id().return_const(7u64);
        store
            .expect_add_voter()
            .withf(|id, addr| *id == 8 && addr == "m2:2377")
            .returning(|_, _| Err(StoreError::Unavailable("not the leader".into())));
        assert_eq!(store.member_id(), 7);
        assert!(store.add_voter(8, "m2:2377".into()).await.is_err());
    }
}
