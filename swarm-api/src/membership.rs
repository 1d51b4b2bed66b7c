//! Joining and staying in the cluster over gRPC: [`MembershipService`]
//! serves a [`Membership`] (the node daemon implements it over its store
//! and raft), and [`RemoteMembership`] calls it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use swarm_core::Id;
use swarm_core::model::NodeRole;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::ca::{Identity, PeerRole};
use crate::tls::peer_identity;
use crate::wire::proto::Payload;
use crate::wire::proto::membership_client::MembershipClient;
use crate::wire::proto::membership_server::{self, MembershipServer};
use crate::wire::{self};

/// A node asks to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The join token (`SWMTKN-1-…`): it decides the role.
    pub token: String,
    /// A certificate request for the node's own key (PEM).
    pub csr_pem: String,
    /// The node's hostname, as `node ls` will show it.
    pub hostname: String,
}

/// What a member is told when it joins or renews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admitted {
    /// The node's id (new on a join, the same on a renewal).
    pub node_id: Id,
    /// Its role: the certificate says the same.
    pub role: NodeRole,
    /// Its certificate (PEM).
    pub cert_pem: String,
    /// The cluster CA certificate (PEM).
    pub ca_pem: String,
    /// The managers' addresses, to reach the cluster through any of them.
    pub managers: Vec<String>,
}

/// Why a membership call failed; it travels to the caller unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MembershipError {
    /// The request is refused: the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// The cluster cannot answer now (no leader, no quorum); retry.
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
}

/// The managers' side of joining: implemented by the node daemon.
#[async_trait]
pub trait Membership: Send + Sync + 'static {
    /// Admits a node that holds a current join token.
    async fn join(&self, request: JoinRequest) -> Result<Admitted, MembershipError>;

    /// Issues a new certificate to `caller` for a new request; the role
    /// is the one the cluster now holds for the node.
    async fn renew(&self, caller: Identity, csr_pem: String) -> Result<Admitted, MembershipError>;

    /// Makes the manager `caller`, reachable at `addr`, a raft voter.
    async fn add_manager(&self, caller: Identity, addr: String) -> Result<(), MembershipError>;

    /// Takes the manager `caller` out of the raft membership (it leaves,
    /// or it was demoted).
    async fn remove_manager(&self, caller: Identity) -> Result<(), MembershipError>;
}

/// Serves a [`Membership`]: join is open, the other calls need a
/// member's certificate (add and remove a manager's).
pub struct MembershipService<M> {
    inner: M,
}

impl<M: Membership> MembershipService<M> {
    /// The tonic service for `membership`.
    pub fn server(membership: M) -> MembershipServer<Self> {
        MembershipServer::new(Self { inner: membership })
    }
}

fn caller<T>(req: &Request<T>, roles: &[PeerRole]) -> Result<Identity, Status> {
    match peer_identity(req) {
        Some(who) if roles.contains(&who.role) => Ok(who),
        Some(who) => Err(Status::permission_denied(format!(
            "{} may not make this call with a {:?} certificate",
            who.node_id, who.role
        ))),
        None => Err(Status::unauthenticated(
            "this call needs the node's certificate from this cluster's CA",
        )),
    }
}

fn reply<T: Serialize>(result: &Result<T, MembershipError>) -> Result<Response<Payload>, Status> {
    Ok(Response::new(wire::encode(result)))
}

#[tonic::async_trait]
impl<M: Membership> membership_server::Membership for MembershipService<M> {
    async fn join(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let request: JoinRequest =
            wire::decode(&req.into_inner().data).map_err(Status::invalid_argument)?;
        reply(&self.inner.join(request).await)
    }

    async fn renew(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let who = caller(&req, &[PeerRole::Manager, PeerRole::Worker])?;
        let csr: String = wire::decode(&req.into_inner().data).map_err(Status::invalid_argument)?;
        reply(&self.inner.renew(who, csr).await)
    }

    async fn add_manager(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let who = caller(&req, &[PeerRole::Manager])?;
        let addr: String =
            wire::decode(&req.into_inner().data).map_err(Status::invalid_argument)?;
        reply(&self.inner.add_manager(who, addr).await)
    }

    async fn remove_manager(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let who = caller(&req, &[PeerRole::Manager])?;
        reply(&self.inner.remove_manager(who).await)
    }
}

/// A client of a manager's [`Membership`].
#[derive(Debug, Clone)]
pub struct RemoteMembership {
    client: MembershipClient<Channel>,
}

fn unavailable(s: &Status) -> MembershipError {
    match s.code() {
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
            MembershipError::Refused(s.message().to_owned())
        }
        _ => MembershipError::Unavailable(format!("cannot reach the manager: {}", s.message())),
    }
}

impl RemoteMembership {
    /// A client over `channel` (from [`crate::tls::Credentials::endpoint`],
    /// or [`crate::tls::anonymous_endpoint`] to join).
    #[must_use]
    pub fn with_channel(channel: Channel) -> Self {
        Self {
            client: MembershipClient::new(channel),
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        fut: impl std::future::Future<Output = Result<Response<Payload>, Status>>,
    ) -> Result<T, MembershipError> {
        let payload = tokio::time::timeout(std::time::Duration::from_secs(90), fut)
            .await
            .map_err(|_| MembershipError::Unavailable("the manager did not answer".into()))?
            .map_err(|s| unavailable(&s))?
            .into_inner();
        let result: Result<T, MembershipError> =
            wire::decode(&payload.data).map_err(MembershipError::Unavailable)?;
        result
    }

    /// Joins the cluster.
    pub async fn join(&self, request: JoinRequest) -> Result<Admitted, MembershipError> {
        let mut c = self.client.clone();
        self.call(c.join(wire::encode(&request))).await
    }

    /// Renews this node's certificate.
    pub async fn renew(&self, csr_pem: &str) -> Result<Admitted, MembershipError> {
        let mut c = self.client.clone();
        self.call(c.renew(wire::encode(&csr_pem))).await
    }

    /// Makes this manager, reachable at `addr`, a raft voter.
    pub async fn add_manager(&self, addr: &str) -> Result<(), MembershipError> {
        let mut c = self.client.clone();
        self.call(c.add_manager(wire::encode(&addr))).await
    }

    /// Takes this manager out of the raft membership.
    pub async fn remove_manager(&self) -> Result<(), MembershipError> {
        let mut c = self.client.clone();
        self.call(c.remove_manager(wire::encode(&()))).await
    }
}
