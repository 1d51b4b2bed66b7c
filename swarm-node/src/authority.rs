//! What a manager answers to joining nodes and to `node ls`: the
//! [`Membership`] and [`ManagerRoster`] of the swarm-api services, over the
//! managers' replicated store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use swarm_api::ca::{Identity, PeerRole};
use swarm_api::membership::{Admitted, JoinRequest, Membership, MembershipError};
use swarm_api::{ManagerInfo, ManagerRoster, bootstrap};
use swarm_core::Id;
use swarm_core::control::ControlError;
use swarm_core::model::{Meta, Node, NodeDescription, NodeRole, NodeSpec, NodeStatus};
use swarm_core::store::{Change, ErrorKind, ReplicatedStore, Store, StoreError};

use crate::config::raft_id;

/// A manager's answers to membership calls.
#[derive(Clone)]
pub struct Authority<S> {
    store: S,
    cert_validity: Duration,
}

impl<S: ReplicatedStore> Authority<S> {
    /// Answers from `store`, issuing certificates valid for
    /// `cert_validity`.
    #[must_use]
    pub fn new(store: S, cert_validity: Duration) -> Self {
        Self {
            store,
            cert_validity,
        }
    }

    async fn managers(&self) -> Vec<String> {
        match self.store.membership().await {
            Ok(s) => s.members.into_iter().map(|m| m.addr).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn ca_of(e: bootstrap::BootstrapError) -> MembershipError {
        match e {
            bootstrap::BootstrapError::Store(e) => MembershipError::Unavailable(e.to_string()),
            other => MembershipError::Refused(other.to_string()),
        }
    }

    /// The raft group's status, if this manager leads it: membership
    /// changes are the leader's to make.
    async fn leading_status(&self) -> Result<swarm_core::store::Membership, MembershipError> {
        let status = self
            .store
            .membership()
            .await
            .map_err(|e| Self::raft_err(&e))?;
        if status.leader != self.store.member_id() {
            return Err(MembershipError::Unavailable(
                "this manager is not the leader; ask another".into(),
            ));
        }
        Ok(status)
    }

    fn raft_err(e: &StoreError) -> MembershipError {
        match e.kind() {
            ErrorKind::InvalidArgument => MembershipError::Refused(e.to_string()),
            _ => MembershipError::Unavailable(e.to_string()),
        }
    }
}

/// Creates the record of a node that joined (state `unknown` until it
/// registers).
pub(crate) async fn create_node<S: Store>(
    store: &S,
    id: &Id,
    role: NodeRole,
    hostname: &str,
) -> Result<(), StoreError> {
    let node = Node {
        meta: Meta::new(id.clone()),
        spec: NodeSpec {
            role,
            ..NodeSpec::default()
        },
        description: NodeDescription {
            data_addr: None,
            hostname: hostname.into(),
            ..NodeDescription::default()
        },
        status: NodeStatus {
            message: "joined; not registered yet".into(),
            since: SystemTime::now(),
            ..NodeStatus::default()
        },
    };
    match store.apply(vec![Change::Create(node.into())]).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl<S: ReplicatedStore> Membership for Authority<S> {
    async fn join(&self, request: JoinRequest) -> Result<Admitted, MembershipError> {
        let ca = bootstrap::load(&self.store).await.map_err(Self::ca_of)?;
        let role = ca.admit(&request.token).map_err(Self::ca_of)?;
        let node_id = Id::generate();
        let cert_pem = ca
            .ca
            .issue(&request.csr_pem, &node_id, role, self.cert_validity)
            .map_err(|e| MembershipError::Refused(e.to_string()))?;
        create_node(&self.store, &node_id, role, &request.hostname)
            .await
            .map_err(|e| MembershipError::Unavailable(e.to_string()))?;
        tracing::info!(member_id = %node_id, hostname = %request.hostname, ?role, "a node joined");
        Ok(Admitted {
            node_id,
            role,
            cert_pem,
            ca_pem: ca.ca.cert_pem().into(),
            managers: self.managers().await,
        })
    }

    async fn renew(&self, caller: Identity, csr_pem: String) -> Result<Admitted, MembershipError> {
        let state = self
            .store
            .state()
            .await
            .map_err(|e| MembershipError::Unavailable(e.to_string()))?;
        let Some(node) = state.node(&caller.node_id) else {
            return Err(MembershipError::Refused(format!(
                "node {} was removed from the cluster: join it again with a token",
                caller.node_id
            )));
        };
        let role = node.spec.role;
        let ca = bootstrap::load(&self.store).await.map_err(Self::ca_of)?;
        let cert_pem = ca
            .ca
            .issue(&csr_pem, &caller.node_id, role, self.cert_validity)
            .map_err(|e| MembershipError::Refused(e.to_string()))?;
        Ok(Admitted {
            node_id: caller.node_id,
            role,
            cert_pem,
            ca_pem: ca.ca.cert_pem().into(),
            managers: self.managers().await,
        })
    }

    async fn add_manager(&self, caller: Identity, addr: String) -> Result<(), MembershipError> {
        debug_assert_eq!(caller.role, PeerRole::Manager);
        // The certificate says manager; the cluster must still say so (a
        // demoted node keeps its old certificate until it expires).
        let state = self
            .store
            .state()
            .await
            .map_err(|e| MembershipError::Unavailable(e.to_string()))?;
        if !state.is_manager(&caller.node_id) {
            return Err(MembershipError::Refused(format!(
                "node {} is not a manager of this cluster: promote it first",
                caller.node_id
            )));
        }
        let id = raft_id(&caller.node_id);
        let status = self.leading_status().await?;
        if status.members.iter().any(|m| m.id == id && m.voter) {
            return Ok(());
        }
        self.store
            .add_voter(id, addr.clone())
            .await
            .map_err(|e| Self::raft_err(&e))?;
        tracing::info!(member_id = %caller.node_id, %addr, "a manager joined the raft group");
        Ok(())
    }

    async fn remove_manager(&self, caller: Identity) -> Result<(), MembershipError> {
        let id = raft_id(&caller.node_id);
        let status = self.leading_status().await?;
        let voters = status.members.iter().filter(|m| m.voter).count();
        if voters <= 1 && status.members.iter().any(|m| m.id == id) {
            return Err(MembershipError::Refused(
                "the last manager cannot leave: the cluster would lose its state".into(),
            ));
        }
        if status.members.iter().any(|m| m.id == id) {
            self.store
                .remove_member(id)
                .await
                .map_err(|e| Self::raft_err(&e))?;
            tracing::info!(member_id = %caller.node_id, "a manager left the raft group");
        }
        Ok(())
    }
}

/// The managers, for `node ls`: each member of the store's group mapped to
/// its node.
pub struct Roster<S> {
    pub(crate) store: S,
}

impl<S> Roster<S> {
    /// The managers of `store`'s group.
    #[must_use]
    pub fn new(store: S) -> Self {
        Self { store }
    }
}

#[async_trait]
impl<S: ReplicatedStore> ManagerRoster for Roster<S> {
    async fn managers(&self) -> Result<Vec<ManagerInfo>, ControlError> {
        let status = self.store.membership().await?;
        let state = self.store.state().await?;
        let by_raft: std::collections::HashMap<u64, Id> = state
            .nodes()
            .map(|n| (raft_id(&n.meta.id), n.meta.id.clone()))
            .collect();
        Ok(status
            .members
            .into_iter()
            .filter_map(|m| {
                Some(ManagerInfo {
                    node_id: by_raft.get(&m.id)?.clone(),
                    leader: status.leader == m.id,
                    reachable: m.reachable,
                    addr: m.addr,
                })
            })
            .collect())
    }
}

pub(crate) fn arc_roster<S: ReplicatedStore>(store: S) -> Arc<dyn ManagerRoster> {
    Arc::new(Roster { store })
}
