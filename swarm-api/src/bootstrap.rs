//! What `init`, `join-token` and a join do to the store: the cluster
//! object with its root CA and join tokens, kept in the replicated store
//! so that every manager can issue certificates and check tokens.

use std::sync::Arc;

use swarm_core::Id;
use swarm_core::model::{
    Cluster, ClusterSpec, INGRESS_NETWORK, JoinTokens, Meta, Network, NetworkSpec, NodeRole,
    Object, RootCaMaterial, UnlockKey,
};
use swarm_core::store::{Change, ErrorKind, Store, StoreError};

use crate::ca::{CaError, JoinToken, RootCa};

/// Why a bootstrap step failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A certificate or token problem.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The cluster has not been initialised.
    #[error("this cluster has no root CA yet: run `swarmd init` first")]
    NotInitialised,
}

/// The cluster object, its CA and its tokens.
#[derive(Debug)]
pub struct ClusterCa {
    /// The cluster object as stored.
    pub cluster: Arc<Cluster>,
    /// Its root CA.
    pub ca: RootCa,
}

impl ClusterCa {
    fn tokens(&self) -> Result<&JoinTokens, BootstrapError> {
        self.cluster
            .join_tokens
            .as_ref()
            .ok_or(BootstrapError::NotInitialised)
    }

    /// The current token for `role`.
    pub fn token(&self, role: NodeRole) -> Result<String, BootstrapError> {
        let t = self.tokens()?;
        Ok(match role {
            NodeRole::Worker => t.worker.clone(),
            NodeRole::Manager => t.manager.clone(),
        })
    }

    /// The role a presented token admits: it must be one of this
    /// cluster's current tokens.
    pub fn admit(&self, presented: &str) -> Result<NodeRole, BootstrapError> {
        let t = self.tokens()?;
        let worker: JoinToken = t.worker.parse()?;
        let manager: JoinToken = t.manager.parse()?;
        match self.ca.check_token(presented, &worker) {
            Ok(()) => return Ok(NodeRole::Worker),
            Err(e @ (CaError::WrongCluster | CaError::MalformedToken(_))) => return Err(e.into()),
            Err(_) => {}
        }
        self.ca.check_token(presented, &manager)?;
        Ok(NodeRole::Manager)
    }
}

/// Reads the cluster's CA and tokens from `store`.
pub async fn load<S: Store>(store: &S) -> Result<ClusterCa, BootstrapError> {
    let state = store.state().await?;
    let cluster = state
        .cluster()
        .cloned()
        .ok_or(BootstrapError::NotInitialised)?;
    let material = cluster
        .root_ca
        .as_ref()
        .ok_or(BootstrapError::NotInitialised)?;
    let ca = RootCa::load(&material.cert_pem, &material.key_pem)?;
    Ok(ClusterCa { cluster, ca })
}

/// `init`: creates the cluster object of `spec` with a new root CA and a
/// token per role, and the routing mesh's `ingress` network. If the store
/// already holds an initialised cluster, it is kept as it is (a restarted
/// manager re-runs this harmlessly).
pub async fn init_cluster<S: Store>(
    store: &S,
    spec: ClusterSpec,
) -> Result<ClusterCa, BootstrapError> {
    match load(store).await {
        Ok(existing) => return Ok(existing),
        Err(BootstrapError::NotInitialised) => {}
        // A stored CA that cannot be read must not be replaced silently.
        Err(e) => return Err(e),
    }
    let ca = RootCa::generate()?;
    let cluster = Cluster {
        meta: Meta::new(Id::generate()),
        root_ca: Some(RootCaMaterial {
            cert_pem: ca.cert_pem().into(),
            key_pem: ca.key_pem().into(),
        }),
        join_tokens: Some(JoinTokens {
            worker: ca.new_token().to_string(),
            manager: ca.new_token().to_string(),
        }),
        unlock_key: spec.autolock.then(UnlockKey::generate),
        spec,
    };
    let ingress = Network::new(NetworkSpec {
        ingress: true,
        ..NetworkSpec::overlay(INGRESS_NETWORK)
    });
    match store
        .apply(vec![
            Change::Create(Object::Cluster(Arc::new(cluster))),
            Change::Create(Object::Network(Arc::new(ingress))),
        ])
        .await
    {
        // Another manager initialised it first: use theirs.
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => load(store).await,
        Err(e) => Err(e.into()),
    }
}

/// `join-token --rotate ROLE`: a new token for `role`; the old one stops
/// admitting new nodes (nodes that joined with it stay). Returns the new
/// token.
pub async fn rotate_token<S: Store>(store: &S, role: NodeRole) -> Result<String, BootstrapError> {
    loop {
        let current = load(store).await?;
        let mut cluster = (*current.cluster).clone();
        let mut tokens = current.tokens()?.clone();
        let fresh = current.ca.new_token().to_string();
        match role {
            NodeRole::Worker => tokens.worker.clone_from(&fresh),
            NodeRole::Manager => tokens.manager.clone_from(&fresh),
        }
        cluster.join_tokens = Some(tokens);
        match store
            .apply(vec![Change::Update(Object::Cluster(Arc::new(cluster)))])
            .await
        {
            Ok(_) => return Ok(fresh),
            Err(e) if e.kind() == ErrorKind::Conflict => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_core::store::MemoryStore;

    fn named(name: &str) -> ClusterSpec {
        ClusterSpec {
            name: name.into(),
            ..ClusterSpec::default()
        }
    }

    #[tokio::test]
    async fn init_then_join_tokens_admit_their_role_until_rotated() {
        let store = MemoryStore::new();
        let ca = init_cluster(&store, named("prod")).await.unwrap();
        let worker = ca.token(NodeRole::Worker).unwrap();
        let manager = ca.token(NodeRole::Manager).unwrap();
        assert_ne!(worker, manager);
        assert_eq!(ca.admit(&worker).unwrap(), NodeRole::Worker);
        assert_eq!(ca.admit(&manager).unwrap(), NodeRole::Manager);

        let state = store.state().await.unwrap();
        let ingress: Vec<_> = state.networks().collect();
        assert_eq!(ingress.len(), 1, "init makes the ingress network");
        assert!(ingress[0].spec.ingress && ingress[0].spec.name == "ingress");

        // init again keeps the same CA and tokens.
        let again = init_cluster(&store, named("prod")).await.unwrap();
        assert_eq!(again.ca.digest(), ca.ca.digest());
        assert_eq!(again.token(NodeRole::Worker).unwrap(), worker);

        let rotated = rotate_token(&store, NodeRole::Worker).await.unwrap();
        let now = load(&store).await.unwrap();
        assert!(matches!(
            now.admit(&worker),
            Err(BootstrapError::Ca(CaError::InvalidToken))
        ));
        assert_eq!(now.admit(&rotated).unwrap(), NodeRole::Worker);
        assert_eq!(
            now.admit(&manager).unwrap(),
            NodeRole::Manager,
            "the other role's token is kept"
        );

        // Another cluster's token is refused for what it is.
        let other = init_cluster(&MemoryStore::new(), named("other"))
            .await
            .unwrap();
        let foreign = other.token(NodeRole::Worker).unwrap();
        assert!(matches!(
            now.admit(&foreign),
            Err(BootstrapError::Ca(CaError::WrongCluster))
        ));
        // The store's cluster object never prints its secrets.
        let printed = format!("{:?}", now.cluster);
        assert!(
            !printed.contains("PRIVATE KEY") && !printed.contains(&rotated),
            "{printed}"
        );
    }

    #[tokio::test]
    async fn a_store_without_a_cluster_says_to_init() {
        let e = load(&MemoryStore::new()).await.unwrap_err();
        assert!(e.to_string().contains("swarmd init"), "{e}");
    }
}
