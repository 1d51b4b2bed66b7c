//! The dispatcher session over gRPC: [`DispatcherService`] serves any
//! [`Dispatcher`] (a manager's `LocalDispatcher`), and [`RemoteDispatcher`]
//! is a [`Dispatcher`] for a worker's agent in another process.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use swarm_core::Id;
use swarm_core::dispatcher::{
    AssignmentStream, Assignments, Dispatcher, DispatcherError, Registration, StatusUpdate,
};
use swarm_core::model::NodeDescription;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::wire::proto::dispatcher_client::DispatcherClient;
use crate::wire::proto::dispatcher_server::{self, DispatcherServer};
use crate::wire::{self, proto::Payload};

/// Serves a [`Dispatcher`] over gRPC: mount [`DispatcherService::server`]
/// in the manager's tonic server.
pub struct DispatcherService<D> {
    inner: D,
}

impl<D: Dispatcher> DispatcherService<D> {
    /// The tonic service for `dispatcher`.
    pub fn server(dispatcher: D) -> DispatcherServer<Self> {
        DispatcherServer::new(Self { inner: dispatcher })
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }
}

fn bad(e: String) -> Status {
    Status::invalid_argument(e)
}

/// Over mutual TLS, a node speaks only for itself: the node named in the
/// call must be the one its certificate names. (Without TLS there is no
/// identity to check; the node daemon always serves with TLS.)
fn speaks_for<T>(req: &Request<T>, node: &Id) -> Result<(), Status> {
    match crate::tls::peer_identity(req) {
        Some(who) if &who.node_id != node => Err(Status::permission_denied(format!(
            "node {} may not speak for node {node}",
            who.node_id
        ))),
        _ => Ok(()),
    }
}

/// A session error as a status whose details carry the error itself.
fn status_of(e: &DispatcherError) -> Status {
    let code = match e {
        DispatcherError::UnknownNode(_) => tonic::Code::NotFound,
        DispatcherError::Unavailable(_) => tonic::Code::Unavailable,
    };
    Status::with_details(code, e.to_string(), wire::encode(e).data.into())
}

#[tonic::async_trait]
impl<D: Dispatcher> dispatcher_server::Dispatcher for DispatcherService<D> {
    async fn register(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let (node, description): (Id, NodeDescription) =
            wire::decode(&req.get_ref().data).map_err(bad)?;
        speaks_for(&req, &node)?;
        let result = self.inner.register(&node, description).await;
        Ok(Response::new(wire::encode(&result)))
    }

    async fn heartbeat(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let node: Id = wire::decode(&req.get_ref().data).map_err(bad)?;
        speaks_for(&req, &node)?;
        let result = self.inner.heartbeat(&node).await;
        Ok(Response::new(wire::encode(&result)))
    }

    type AssignmentsStream = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send + 'static>>;

    async fn assignments(
        &self,
        req: Request<Payload>,
    ) -> Result<Response<Self::AssignmentsStream>, Status> {
        let node: Id = wire::decode(&req.get_ref().data).map_err(bad)?;
        speaks_for(&req, &node)?;
        let stream = self
            .inner
            .assignments(&node)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(
            stream.map(|set| Ok(wire::encode(&set))).boxed(),
        ))
    }

    async fn report(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let (node, updates): (Id, Vec<StatusUpdate>) =
            wire::decode(&req.get_ref().data).map_err(bad)?;
        speaks_for(&req, &node)?;
        let result = self.inner.report(&node, updates).await;
        Ok(Response::new(wire::encode(&result)))
    }

    async fn view_applied(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let (node, index): (Id, u64) = wire::decode(&req.get_ref().data).map_err(bad)?;
        speaks_for(&req, &node)?;
        let result = self.inner.view_applied(&node, index).await;
        Ok(Response::new(wire::encode(&result)))
    }

    async fn await_views(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let (index, timeout): (u64, Duration) = wire::decode(&req.get_ref().data).map_err(bad)?;
        // Within the caller's own deadline.
        let result = self
            .inner
            .await_views(index, timeout.min(MAX_VIEW_WAIT))
            .await;
        Ok(Response::new(wire::encode(&result)))
    }
}

/// The longest a manager waits in one `AwaitViews` call.
const MAX_VIEW_WAIT: Duration = Duration::from_secs(30);

/// A [`Dispatcher`] reached over gRPC: what a worker's agent uses when the
/// managers run in other processes.
#[derive(Debug, Clone)]
pub struct RemoteDispatcher {
    client: DispatcherClient<Channel>,
}

impl RemoteDispatcher {
    /// A dispatcher at `addr` (`host:port`) over plain TCP, connected on
    /// first use (and again after a failure).
    pub fn connect_lazy(addr: &str) -> Result<Self, DispatcherError> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| {
                DispatcherError::Unavailable(format!("bad manager address {addr:?}: {e}"))
            })?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            // A manager that vanished without closing the connection is
            // noticed within seconds, not at the next TCP timeout.
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true);
        Ok(Self::with_channel(endpoint.connect_lazy()))
    }

    /// A dispatcher over `channel` (for TLS, or a custom connector).
    #[must_use]
    pub fn with_channel(channel: Channel) -> Self {
        Self {
            client: DispatcherClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        }
    }
}

/// How long one call may take before the worker counts the managers as
/// unreachable (and, for a heartbeat, tries again).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a call with [`CALL_TIMEOUT`].
async fn timed<T>(call: impl std::future::Future<Output = Result<T, Status>>) -> Result<T, Status> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(
                "the managers did not answer in time",
            ))
        })
}

fn unavailable(s: &Status) -> DispatcherError {
    if !s.details().is_empty()
        && let Ok(e) = wire::decode::<DispatcherError>(s.details())
    {
        return e;
    }
    DispatcherError::Unavailable(format!("cannot reach the managers: {}", s.message()))
}

fn answer<T: serde::de::DeserializeOwned>(
    reply: Result<Response<Payload>, Status>,
) -> Result<T, DispatcherError> {
    let payload = reply.map_err(|s| unavailable(&s))?.into_inner();
    let result: Result<T, DispatcherError> =
        wire::decode(&payload.data).map_err(DispatcherError::Unavailable)?;
    result
}

#[async_trait]
impl Dispatcher for RemoteDispatcher {
    async fn register(
        &self,
        node_id: &Id,
        description: NodeDescription,
    ) -> Result<Registration, DispatcherError> {
        let mut client = self.client.clone();
        let reply = timed(client.register(wire::encode(&(node_id, description)))).await;
        answer(reply)
    }

    async fn heartbeat(&self, node_id: &Id) -> Result<Registration, DispatcherError> {
        let mut client = self.client.clone();
        answer(timed(client.heartbeat(wire::encode(node_id))).await)
    }

    async fn assignments(&self, node_id: &Id) -> Result<AssignmentStream, DispatcherError> {
        let mut client = self.client.clone();
        let stream = timed(client.assignments(wire::encode(node_id)))
            .await
            .map_err(|s| unavailable(&s))?
            .into_inner();
        // The stream ends when the session breaks (the agent starts a new
        // one); a message that cannot be decoded ends it too.
        Ok(stream
            .map(|item| {
                let payload = item.ok()?;
                wire::decode::<Assignments>(&payload.data)
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "an assignment set could not be read"),
                    )
                    .ok()
            })
            .take_while(|set| futures::future::ready(set.is_some()))
            .filter_map(futures::future::ready)
            .boxed())
    }

    async fn report(
        &self,
        node_id: &Id,
        updates: Vec<StatusUpdate>,
    ) -> Result<(), DispatcherError> {
        let mut client = self.client.clone();
        answer(timed(client.report(wire::encode(&(node_id, updates)))).await)
    }

    async fn view_applied(&self, node_id: &Id, index: u64) -> Result<(), DispatcherError> {
        let mut client = self.client.clone();
        answer(timed(client.view_applied(wire::encode(&(node_id, index)))).await)
    }

    async fn await_views(&self, index: u64, timeout: Duration) -> Result<bool, DispatcherError> {
        let mut client = self.client.clone();
        let timeout = timeout.min(MAX_VIEW_WAIT);
        let call = client.await_views(wire::encode(&(index, timeout)));
        let reply = tokio::time::timeout(timeout + CALL_TIMEOUT, call)
            .await
            .unwrap_or_else(|_| {
                Err(Status::deadline_exceeded(
                    "the managers did not answer in time",
                ))
            });
        answer(reply)
    }
}
