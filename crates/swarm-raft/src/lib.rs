//! # swarm-raft
//!
//! The managers' replicated store: [`RaftStore`] implements
//! [`swarm_core::store::Store`] on [openraft], so the control loops, the
//! scheduler and the API run unchanged on one manager or five.
//!
//! - **Consensus:** openraft **0.9.25**, pinned exactly. 0.9 is the stable
//!   line; with `storage-v2` we implement its log and state-machine traits
//!   directly. The 0.10 line is still alpha and breaks its API between
//!   alphas. openraft is used only inside this crate, so a later move to
//!   0.10 touches no other crate.
//! - **Durability:** the log and the vote live in a redb database
//!   (`<data_dir>/raft.redb`, pure Rust, fsync on commit; appends are group
//!   committed by one writer thread). The state machine lives in memory and
//!   is rebuilt on start from the snapshot (`<data_dir>/snapshots/`,
//!   written to a temp file, fsynced, renamed) and the log after it. A
//!   snapshot is taken every [`RaftConfig::snapshot_threshold`] entries,
//!   then the log before it is purged.
//! - **Transport:** raft RPCs over tonic gRPC, with no message size cap;
//!   snapshots travel in chunks. The [`Connector`] trait makes the channels,
//!   so mutual TLS plugs in without touching the raft code.
//! - **Writes** on a follower are forwarded to the leader. Each batch
//!   carries a request id; the state machine remembers recent answers, so
//!   a retry after a lost reply is answered, never applied twice.
//! - **Reads** come from the local replica ([`Store::state`]), or
//!   linearizably through the leader ([`RaftStore::state_linearizable`]).
//! - **Membership:** [`RaftStore::initialize`], [`RaftStore::add_learner`],
//!   [`RaftStore::promote`], [`RaftStore::demote`],
//!   [`RaftStore::remove_member`], [`RaftStore::status`], and
//!   [`RaftConfig::force_new_cluster`] to recover from a lost quorum.
//!
//! ```no_run
//! use swarm_core::model::{Meta, Secret, SecretSpec};
//! use swarm_core::store::{Change, Store};
//! use swarm_raft::{RaftConfig, RaftStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?.to_string();
//! let store = RaftStore::open(RaftConfig::new(1, addr, "/tmp/swarm-raft-doc")).await?;
//! tokio::spawn(swarm_raft::serve(store.clone(), listener, std::future::pending()));
//! store.initialize().await?;
//!
//! let secret = Secret {
//!     meta: Meta::new("s1".into()),
//!     spec: SecretSpec { name: "db-password".into(), data: b"hunter2".to_vec(), ..Default::default() },
//! };
//! let index = store.apply(vec![Change::Create(secret.into())]).await?;
//! assert!(store.state().await?.secret_by_name("db-password").is_some());
//! println!("committed at {index}; leader {:?}", store.status().await?.leader);
//! # Ok(()) }
//! ```
//!
//! [`Store::state`]: swarm_core::store::Store::state

mod config;
mod error;
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
