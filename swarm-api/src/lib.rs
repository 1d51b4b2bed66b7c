//! # swarm-api
//!
//! The wire protocol between swarm processes, on tonic gRPC. Protobuf
//! frames each message and the payload is MessagePack of the swarm-core
//! types, so the model is defined once, in Rust, and both ends share it.
//!
//! It carries the **control API** ([`ControlService`] serves a manager's
//! `Control`; [`RemoteControl`] is its client, with the same methods and
//! errors; secret and config data never travel back to clients), and the
//! **dispatcher session** between a worker's
//! agent and the managers: [`DispatcherService`] serves any
//! [`Dispatcher`](swarm_core::dispatcher::Dispatcher) (the manager's
//! `LocalDispatcher` over its store), and [`RemoteDispatcher`] is the
//! `Dispatcher` a worker in another process hands its agent. The agent
//! does not know which one it has.
//!
//! It also carries **joining** ([`membership`]: a token and a certificate
//! request for a certificate; renewal; raft membership) and **task logs**
//! on demand ([`logs`]). [`ca`] is the cluster's certificate authority and
//! its join tokens, and [`tls`] the mutual TLS every connection uses: the
//! example below runs without it for brevity; the node daemon
//! (swarm-node) always serves with [`tls::Credentials::server_tls`] and
//! checks each caller's role with [`tls::RequireRole`].
//!
//! ```no_run
//! use swarm_api::{DispatcherService, RemoteDispatcher};
//! use swarm_core::dispatcher::{DispatcherConfig, LocalDispatcher};
//! use swarm_core::store::MemoryStore;
//! use std::sync::Arc;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Manager side: serve the dispatcher of the manager's store.
//! let store = Arc::new(MemoryStore::new());
//! let dispatcher = Arc::new(LocalDispatcher::new(store, DispatcherConfig::default()));
//! tokio::spawn(
//!     tonic::transport::Server::builder()
//!         .add_service(DispatcherService::server(dispatcher))
//!         .serve("127.0.0.1:4243".parse()?),
//! );
//! // Worker side: the agent's dispatcher.
//! let remote = RemoteDispatcher::connect_lazy("127.0.0.1:4243")?;
//! # let _ = remote;
//! # Ok(()) }
//! ```

pub mod bootstrap;
pub mod ca;
mod control;
mod dispatcher;
pub mod logs;
pub mod membership;
pub mod tls;
pub mod wire;

pub use control::{
    ControlReply, ControlRequest, ControlService, EventsRequest, LockedControl, ManagerInfo,
    ManagerRoster, RemoteControl, UnlockAttempt,
};
pub use dispatcher::{DispatcherService, RemoteDispatcher};
