//! # swarm-node
//!
//! The node daemon as a library: what `swarmd` runs, for an app that
//! embeds a whole cluster member.
//!
//! - [`Node::init`] creates a cluster: a one-member raft store, a root CA,
//!   the worker and manager join tokens, and this node's certificate.
//! - [`Node::join`] joins one with a token: it reads the CA off a TLS
//!   handshake with the manager, checks it against the token's digest,
//!   and trades the token and a certificate request for its certificate
//!   (the token decides the role). A new manager then becomes a raft
//!   voter.
//! - [`Node::resume`] starts again from the data directory, with the same
//!   identity.
//! - [`Node::run`] runs it: a manager serves raft, the dispatcher, the
//!   control API and joins on one port (2377 by default) over mutual TLS,
//!   and runs the control loops while it leads; every node (managers too)
//!   runs an agent whose sessions fail over between managers.
//!   [`Node::start`] runs it in the background and returns a
//!   [`NodeHandle`]: the manager's `Control` and store, and a clean
//!   shutdown.
//!
//! Every part is the app's to pick with a [`NodeBuilder`]: the store (a
//! [`StoreProvider`]: [`RaftStores`], the default, or [`SoloStores`], a
//! group of one in memory), the scheduler (any `Scheduler`), the runtime
//! (any `Runtime`, given to `run`/`start`), and control loops of its own
//! (run beside the built-in ones, on the leader only). [`NodeConfig`]
//! carries the manager's and the agent's settings too.
//!
//! ```no_run
//! use swarm_node::{Node, NodeConfig};
//! use swarm_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = NodeConfig::new("/var/lib/swarm");
//! config.listen_addr = "127.0.0.1:2377".parse()?;
//! let node = Node::init(config).await?;
//! let runtime = ProcessRuntime::new(ProcessRuntimeConfig::default())?;
//! node.run(runtime, CancellationToken::new()).await?;
//! # Ok(()) }
//! ```

mod authority;
mod config;
mod dispatch;
mod logs_agent;
mod node;
mod provider;
mod renewal;
mod serve;

pub use authority::{Authority, Roster};
pub use config::{DEFAULT_PORT, DataPlane, NodeConfig, NodeSettings, NodeState, raft_id};
pub use dispatch::{FailoverDispatcher, LeaderDispatcher};
pub use node::{Node, NodeBuilder, NodeHandle, Unlocker};
pub use provider::{Channels, RaftStores, SoloStores, StoreMember, StoreProvider};

use swarm_api::ca::CaError;
use swarm_api::membership::MembershipError;

/// Why a node could not start, join or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting or the data directory is wrong; the message says how to
    /// fix it.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The raft store failed.
    #[error("raft: {0}")]
    Raft(#[from] swarm_raft::Error),
    /// The store refused a write.
    #[error("store: {0}")]
    Store(#[from] swarm_core::store::StoreError),
    /// A certificate or token problem.
    #[error("{0}")]
    Ca(#[from] CaError),
    /// Creating the cluster failed.
    #[error("{0}")]
    Bootstrap(#[from] swarm_api::bootstrap::BootstrapError),
    /// Joining (or leaving) failed.
    #[error("{0}")]
    Join(String),
    /// The node's agent stopped with an error.
    #[error("the agent stopped: {0}")]
    Agent(String),
    /// The manager is autolocked: its store opens only with the cluster's
    /// unlock key.
    #[error("{0}")]
    Locked(String),
    /// The cluster no longer knows this node.
    #[error(
        "node {0} was removed from the cluster: remove its data directory and join again with a token"
    )]
    Removed(swarm_core::Id),
}

impl From<MembershipError> for Error {
    fn from(e: MembershipError) -> Self {
        Self::Join(e.to_string())
    }
}

impl From<swarm_core::dispatcher::DispatcherError> for Error {
    fn from(e: swarm_core::dispatcher::DispatcherError) -> Self {
        Self::Agent(e.to_string())
    }
}
