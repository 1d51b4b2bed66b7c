//! The Engine API's [`Backend`] over a running node: what `swarmd` serves
//! on its socket (`docker -H unix://<data-dir>/swarmd.sock info`).

use swarm_core::Id;
use swarm_core::model::NodeRole;
use swarm_core::store::Store;
use swarm_engine::Backend;
use swarm_engine::wire::{
    ClusterInfo, EncryptionConfig, Host, LocalNodeState, SwarmInfo, SwarmSpec,
};
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
impl<S: Store + Clone> Backend for NodeBackend<S> {
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
        info.cluster = state.cluster().map(|c| ClusterInfo {
            id: c.meta.id.as_str().to_owned(),
            version: swarm_engine::wire::Version {
                index: c.meta.version,
            },
            created_at: c.meta.created_at.into(),
            updated_at: c.meta.updated_at.into(),
            spec: SwarmSpec {
                name: "default".into(),
                encryption_config: EncryptionConfig {
                    auto_lock_managers: c.spec.autolock,
                },
                ..SwarmSpec::default()
            },
            default_addr_pool: c
                .spec
                .default_addr_pool
                .iter()
                .map(ToString::to_string)
                .collect(),
            subnet_size: c.spec.subnet_size.into(),
            data_path_port: c.spec.data_path_port.into(),
            ..ClusterInfo::default()
        });
        info
    }

    fn host(&self) -> Host {
        self.host.clone()
    }
}
