//! The server side of the raft transport: the gRPC service every manager
//! serves to the others.

use tonic::{Request, Response, Status};

use crate::store::RaftStore;
use crate::wire::proto::raft_server::{Raft, RaftServer};
use crate::wire::{self, Forward, proto::Payload};

/// The gRPC service of one member. Mount it in a tonic server with
/// [`RaftStore::service`], beside the node's other services.
pub struct RaftService {
    store: RaftStore,
}

impl RaftService {
    pub(crate) fn server(store: RaftStore) -> RaftServer<Self> {
        RaftServer::new(Self { store })
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }
}

fn bad(e: String) -> Status {
    Status::invalid_argument(e)
}

#[tonic::async_trait]
impl Raft for RaftService {
    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = wire::decode(&req.into_inner().data).map_err(bad)?;
        let result = self.store.raft().append_entries(rpc).await;
        Ok(Response::new(wire::encode(&result)))
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc = wire::decode(&req.into_inner().data).map_err(bad)?;
        let result = self.store.raft().vote(rpc).await;
        Ok(Response::new(wire::encode(&result)))
    }

    async fn install_snapshot(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let payload = req.into_inner();
        let mut rpc: openraft::raft::InstallSnapshotRequest<crate::types::TypeConfig> =
            wire::decode(&payload.data).map_err(bad)?;
        rpc.data = payload.blob;
        let result = self.store.raft().install_snapshot(rpc).await;
        Ok(Response::new(wire::encode(&result)))
    }

    async fn forward(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let forward: Forward = wire::decode(&req.into_inner().data).map_err(bad)?;
        let result = self.store.serve_forward(forward).await;
        Ok(Response::new(wire::encode(&result)))
    }
}
