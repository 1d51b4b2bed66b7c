//! Where a manager keeps the cluster's state: a [`StoreProvider`] opens
//! the replicated store and serves it to the other managers.
//! [`RaftStores`] (the default) is swarm-raft's `RaftStore` on disk;
//! [`SoloStores`] is a group of one in memory, for tests and apps with a
//! single manager and no need to survive a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use swarm_api::ca::PeerRole;
use swarm_api::tls::RequireRole;
use swarm_core::store::{ReplicatedStore, SoloStore};
use swarm_raft::{Connector, RaftConfig, RaftStore};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::transport::server::Router;

use crate::Error;

/// Makes a channel to another manager, over mutual TLS with the node's
/// current certificate.
pub type Channels = Arc<dyn Fn(&str) -> Result<Channel, String> + Send + Sync>;

/// What a provider needs to open a manager's store.
#[derive(Clone)]
pub struct StoreMember {
    /// The member's id in the group (fixed by the node's id).
    pub id: u64,
    /// The address the other managers reach it at.
    pub addr: String,
    /// Its own directory, kept across restarts.
    pub dir: PathBuf,
    /// Channels to the other members.
    pub channels: Channels,
    /// Log entries between snapshots.
    pub snapshot_interval: u64,
    /// The unlock key an autolocked member's store needs, once given.
    pub unlock_key: Option<swarm_core::model::UnlockKey>,
}

impl std::fmt::Debug for StoreMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreMember")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Opens a manager's replicated store, and serves it to the other
/// managers on the manager's port.
///
/// A manager opens its store each time its manager part starts (at
/// start-up, and after a promotion), and shuts it down when it stops.
#[async_trait]
pub trait StoreProvider: Send + Sync + 'static {
    /// The store.
    type Store: ReplicatedStore;

    /// Opens (or creates) the store of `member`.
    async fn open(&self, member: &StoreMember) -> Result<Self::Store, Error>;

    /// Makes a new group with `store` its only member, and waits until it
    /// leads (`init`).
    async fn initialize(&self, store: &Self::Store) -> Result<(), Error>;

    /// Adds what the other members reach `store` through to the manager's
    /// server (nothing, for a store without peers).
    fn serve(&self, store: &Self::Store, router: Router) -> Router {
        let _ = store;
        router
    }

    /// Seals the member's data at rest with `key` (autolock), or with no
    /// unlock key (`None`). A store that keeps nothing on disk ignores it.
    fn set_unlock_key(
        &self,
        store: &Self::Store,
        key: Option<&swarm_core::model::UnlockKey>,
    ) -> Result<(), Error> {
        let _ = (store, key);
        Ok(())
    }
}

/// swarm-raft's `RaftStore`: an fsynced raft log and snapshots in the
/// member's directory, raft over the manager's port. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct RaftStores;

struct ChannelConnector(Channels);

impl Connector for ChannelConnector {
    fn channel(&self, addr: &str) -> Result<Channel, String> {
        (self.0)(addr)
    }
}

#[async_trait]
impl StoreProvider for RaftStores {
    type Store = RaftStore;

    async fn open(&self, member: &StoreMember) -> Result<RaftStore, Error> {
        RaftStore::open_with(
            RaftConfig::new(member.id, member.addr.clone(), member.dir.clone())
                .snapshot_threshold(member.snapshot_interval.max(1))
                .unlock_key(member.unlock_key.clone()),
            Arc::new(ChannelConnector(member.channels.clone())),
        )
        .await
        .map_err(|e| match e {
            swarm_raft::Error::Locked(why) => Error::Locked(why),
            e => e.into(),
        })
    }

    fn set_unlock_key(
        &self,
        store: &RaftStore,
        key: Option<&swarm_core::model::UnlockKey>,
    ) -> Result<(), Error> {
        Ok(store.set_unlock_key(key)?)
    }

    async fn initialize(&self, store: &RaftStore) -> Result<(), Error> {
        store.initialize().await?;
        store.wait_for_leader(Duration::from_secs(10)).await?;
        Ok(())
    }

    fn serve(&self, store: &RaftStore, router: Router) -> Router {
        router.add_service(InterceptedService::new(
            store.service(),
            RequireRole::new("raft", &[PeerRole::Manager]),
        ))
    }
}

/// A [`SoloStore`]: the cluster's state in memory, one manager, no peers.
/// It opens the same store every time, so a node keeps its state while
/// the provider lives (a promotion or a role change reopens it), and
/// loses it with the process. For tests and single-manager apps.
#[derive(Debug, Clone, Default)]
pub struct SoloStores {
    store: Arc<Mutex<Option<SoloStore>>>,
}

#[async_trait]
impl StoreProvider for SoloStores {
    type Store = SoloStore;

    async fn open(&self, member: &StoreMember) -> Result<SoloStore, Error> {
        let mut store = self
            .store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(store
            .get_or_insert_with(|| SoloStore::new(member.id, member.addr.clone()))
            .clone())
    }

    async fn initialize(&self, _store: &SoloStore) -> Result<(), Error> {
        Ok(())
    }
}
