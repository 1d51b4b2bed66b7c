#![doc = include_str!("../README.md")]

mod config;
mod crypt;
mod error;
mod figures;
mod log;
mod network;
mod server;
mod sm;
mod store;
mod types;
pub mod wire;

pub use config::RaftConfig;
pub use error::{Error, ErrorKind};
pub use network::{Connector, PlainConnector};
pub use server::RaftService;
pub use store::{ClusterStatus, MemberStatus, RaftStore};
pub use types::{Member, NodeId};

/// Serves `store`'s raft service on `listener` over plain TCP until
/// `shutdown` completes; then it closes every connection. A node daemon
/// mounts [`RaftStore::service`] in its own server instead (with TLS and
/// its other services).
pub async fn serve(
    store: RaftStore,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    use tokio_stream::StreamExt;
    // Settings of the builder apply only to listeners it binds itself:
    // turn Nagle off here, or small replies wait for delayed ACKs.
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|s| {
        s.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    });
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(store.service())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| Error::Storage(format!("the raft server stopped: {e}")))
}
