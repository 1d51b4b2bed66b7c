//! The client side of the raft transport: gRPC channels to the other
//! members, made by a [`Connector`] (plain TCP by default; the cluster's
//! mutual TLS plugs in here).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use crate::types::{Member, NodeId, TypeConfig};
use crate::wire::{self, proto::raft_client::RaftClient};

/// Makes the gRPC channel to another member. Implement it to add TLS (a
/// `ClientTlsConfig` on the endpoint, with tonic's TLS feature) or a custom
/// resolver.
pub trait Connector: Send + Sync + 'static {
    /// A channel to `addr` (`host:port`). Connecting lazily is fine: the
    /// first call reports an unreachable peer.
    fn channel(&self, addr: &str) -> Result<Channel, String>;
}

/// Plain TCP (`http://addr`), connecting lazily with a short timeout.
#[derive(Debug, Clone, Default)]
pub struct PlainConnector;

impl Connector for PlainConnector {
    fn channel(&self, addr: &str) -> Result<Channel, String> {
        Ok(Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("bad member address {addr:?}: {e}"))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .connect_lazy())
    }
}

/// A client of the raft service with no message size cap (a snapshot
/// chunk or a batch of entries may be large).
pub(crate) fn client(channel: Channel) -> RaftClient<Channel> {
    RaftClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// When each peer last answered, for the status report.
#[derive(Debug, Default)]
pub(crate) struct Contacts {
    last: Mutex<HashMap<NodeId, Instant>>,
}

impl Contacts {
    fn saw(&self, id: NodeId) {
        if let Ok(mut m) = self.last.lock() {
            m.insert(id, Instant::now());
        }
    }

    /// How long ago `id` last answered, if ever.
    pub(crate) fn since(&self, id: NodeId) -> Option<Duration> {
        self.last
            .lock()
            .ok()
            .and_then(|m| m.get(&id).map(Instant::elapsed))
    }
}

/// Makes one [`Peer`] per target.
pub(crate) struct Network {
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) contacts: Arc<Contacts>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        Peer {
            target,
            channel: self.connector.channel(&node.addr),
            connector: self.connector.clone(),
            addr: node.addr.clone(),
            stale: false,
            contacts: self.contacts.clone(),
        }
    }
}

/// The connection to one member.
pub(crate) struct Peer {
    target: NodeId,
    channel: Result<Channel, String>,
    /// Makes a new channel after a failure: the connector may hold newer
    /// credentials (a renewed certificate) than the channel was made with.
    connector: Arc<dyn Connector>,
    addr: String,
    stale: bool,
    contacts: Arc<Contacts>,
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, Member, RaftError<NodeId, E>>;

impl Peer {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        blob: Vec<u8>,
    ) -> Result<Resp, RpcError<E>>
    where
        Req: serde::Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        if std::mem::take(&mut self.stale) {
            self.channel = self.connector.channel(&self.addr);
        }
        let channel = self
            .channel
            .clone()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
        let mut client = client(channel);
        let mut payload = wire::encode(req);
        payload.blob = blob;
        let reply = match method {
            Method::Append => client.append_entries(payload).await,
            Method::Vote => client.vote(payload).await,
            Method::Snapshot => client.install_snapshot(payload).await,
        };
        let reply = reply.map_err(|status| {
            let e = std::io::Error::other(status.to_string());
            self.stale = true;
            if status.code() == tonic::Code::Unavailable {
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                RPCError::Network(NetworkError::new(&e))
            }
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> = wire::decode(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e))))?;
        // A member whose raft has stopped answers, but is not there.
        if !matches!(result, Err(RaftError::Fatal(_))) {
            self.contacts.saw(self.target);
        }
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        self.call(Method::Append, &rpc, Vec::new()).await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        // The chunk travels raw, beside the encoded request.
        let chunk = std::mem::take(&mut rpc.data);
        self.call(Method::Snapshot, &rpc, chunk).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        self.call(Method::Vote, &rpc, Vec::new()).await
    }
}
