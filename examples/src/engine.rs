//! The Engine API's [`Backend`] over a running node: what `swarmd` serves
//! on its socket (`docker -H unix://<data-dir>/swarmd.sock info`).

use std::collections::BTreeMap;
use std::sync::Arc;

use swarm_api::ManagerRoster as _;
use swarm_core::Id;
use swarm_core::control::Control;
use swarm_core::model::NodeRole;
use swarm_core::store::{ReplicatedStore, Store};
use swarm_engine::wire::{Host, LocalNodeState, ManagerStatus, SwarmInfo};
use swarm_engine::{ApiError, Backend};
use tokio::sync::watch;

/// A node's swarm state, from its manager's store while it has one.
pub struct NodeBackend<S> {
    id: Id,
    addr: String,
    stores: watch::Receiver<Option<S>>,
    host: Host,
}

impl<S> NodeBackend<S> {
    /// The backend of node `id`, reached at `addr`, whose manager's store
    /// `stores` follows.
    #[must_use]
    pub fn new(id: Id, addr: String, stores: watch::Receiver<Option<S>>) -> Self {
        Self {
            id,
            addr,
            stores,
            host: Host::this_machine(),
        }
    }
}

#[async_trait::async_trait]
impl<S: ReplicatedStore> Backend for NodeBackend<S> {
    async fn swarm(&self) -> SwarmInfo {
        let mut info = SwarmInfo {
            node_id: self.id.as_str().to_owned(),
            node_addr: self.addr.clone(),
            local_node_state: LocalNodeState::Active,
            ..SwarmInfo::default()
        };
        let store = self.stores.borrow().clone();
        let Some(store) = store else {
            return info; // a worker
        };
        let state = match store.state().await {
            Ok(s) => s,
            Err(e) => {
                info.local_node_state = LocalNodeState::Error;
                info.error = format!("the manager's store cannot be read: {e}");
                return info;
            }
        };
        info.control_available = true;
        info.nodes = state.nodes().count() as u64;
        info.managers = state
            .nodes()
            .filter(|n| n.spec.role == NodeRole::Manager)
            .count() as u64;
        info.cluster = state.cluster().map(|c| swarm_engine::convert::cluster(c));
        info
    }

    fn host(&self) -> Host {
        self.host.clone()
    }

    async fn control(&self) -> Result<Control<Arc<dyn Store>>, ApiError> {
        let store = self.stores.borrow().clone();
        match store {
            Some(store) => {
                let roster = Arc::new(swarm_node::Roster::new(store.clone()));
                let store: Arc<dyn Store> = Arc::new(store);
                Ok(Control::new(store)
                    .with_routes(swarm_net::host_routes())
                    .with_roster(roster))
            }
            None => Err(swarm_engine::error::not_a_manager(LocalNodeState::Active)),
        }
    }

    async fn managers(&self) -> BTreeMap<String, ManagerStatus> {
        let store = self.stores.borrow().clone();
        let Some(store) = store else {
            return BTreeMap::new();
        };
        let roster = swarm_node::Roster::new(store);
        let Ok(managers) = roster.managers().await else {
            return BTreeMap::new();
        };
        managers
            .into_iter()
            .map(|m| {
                let status = ManagerStatus {
                    leader: m.leader,
                    reachability: if m.reachable {
                        "reachable"
                    } else {
                        "unreachable"
                    }
                    .into(),
                    addr: m.addr,
                };
                (m.node_id.as_str().to_owned(), status)
            })
            .collect()
    }
}
