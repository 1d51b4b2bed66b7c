//! Task logs on demand (`swarmctl service logs [-f]`).
//!
//! Workers do not listen: each keeps a subscription open to the leading
//! manager ([`LogsService`]'s `Subscribe`), which sends it a [`LogRequest`]
//! per task whose logs a client wants. The worker reads them from its
//! runtime and publishes them back, chunk by chunk; the manager merges the
//! chunks of every task of the service into the client's stream. A client
//! that goes away ends the publishing, even when following.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use swarm_core::Id;
use swarm_core::control::Control;
use swarm_core::runtime::LogLine;
use swarm_core::store::Store;
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::ManagerRoster;
use crate::ca::PeerRole;
use crate::tls::peer_identity;
use crate::wire::proto::Payload;
use crate::wire::proto::logs_client::LogsClient;
use crate::wire::proto::logs_server::{self, LogsServer};
use crate::wire::{self};

/// A manager asks a node for a task's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    /// Names the answer.
    pub id: u64,
    /// The task.
    pub task_id: Id,
    /// Keep sending new lines until the task ends or the client leaves.
    pub follow: bool,
    /// Only the last this many lines of history.
    pub tail: Option<usize>,
}

/// Part of a node's answer to a [`LogRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The request answered.
    pub request: u64,
    /// Lines, oldest first.
    pub lines: Vec<LogLine>,
    /// The logs cannot be read: why.
    pub error: Option<String>,
}

/// A client asks for a service's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceLogsRequest {
    /// The service's name or id.
    pub service: String,
    /// Keep streaming new lines.
    pub follow: bool,
    /// Only the last this many lines of each task.
    pub tail: Option<usize>,
}

/// One item of a service's logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogItem {
    /// A line of a task.
    Line {
        /// The task's name (`web.1`).
        task: String,
        /// The node it runs on.
        node: String,
        /// The line.
        line: LogLine,
        /// The task's id.
        task_id: Id,
        /// Its service's id.
        service_id: Id,
        /// Its node's id.
        node_id: Id,
    },
    /// Some logs cannot be had (a node is not connected, say).
    Warning(String),
}

/// The leader's switchboard between clients and nodes. Keep one for the
/// manager's lifetime: subscriptions outlive a server restart.
#[derive(Debug, Default)]
pub struct LogBroker {
    nodes: Mutex<HashMap<Id, mpsc::Sender<LogRequest>>>,
    /// Open requests: the node asked, and where its chunks go.
    waiting: Mutex<HashMap<u64, (Id, mpsc::Sender<LogChunk>)>>,
    next: AtomicU64,
}

impl LogBroker {
    /// A node's subscription (replacing an older one of the same node).
    fn subscribe(&self, node: &Id) -> mpsc::Receiver<LogRequest> {
        let (tx, rx) = mpsc::channel(64);
        lock(&self.nodes).insert(node.clone(), tx);
        rx
    }

    /// Asks `node` for `task_id`'s logs: the request's id, and where its
    /// chunks arrive.
    async fn request(
        &self,
        node: &Id,
        task_id: Id,
        follow: bool,
        tail: Option<usize>,
    ) -> Result<(u64, mpsc::Receiver<LogChunk>), String> {
        let sender = lock(&self.nodes)
            .get(node)
            .cloned()
            .ok_or_else(|| format!("node {node} is not connected"))?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(64);
        lock(&self.waiting).insert(id, (node.clone(), tx));
        let sent = sender
            .send(LogRequest {
                id,
                task_id,
                follow,
                tail,
            })
            .await;
        if sent.is_err() {
            lock(&self.waiting).remove(&id);
            lock(&self.nodes).remove(node);
            return Err(format!("node {node} is not connected"));
        }
        Ok((id, rx))
    }

    /// Where `from`'s chunks for `request` go: only the node asked may
    /// answer.
    fn sink(&self, from: &Id, request: u64) -> Result<mpsc::Sender<LogChunk>, Status> {
        match lock(&self.waiting).get(&request) {
            Some((node, tx)) if node == from => Ok(tx.clone()),
            Some(_) => Err(Status::permission_denied(format!(
                "node {from} was not asked for these logs"
            ))),
            None => Err(Status::cancelled("nobody reads these logs any more")),
        }
    }

    fn done(&self, requests: &[u64]) {
        let mut waiting = lock(&self.waiting);
        for r in requests {
            waiting.remove(r);
        }
    }
}

/// Forgets requests when dropped: however a publish or a client's stream
/// ends, nothing is left waiting.
struct Forget {
    broker: Arc<LogBroker>,
    requests: Vec<u64>,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.broker.done(&self.requests);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves task logs from a manager: subscriptions and publishing while it
/// leads, and clients' requests (which a follower redirects).
pub struct LogsService<S> {
    broker: Arc<LogBroker>,
    control: Control<S>,
    leading: watch::Receiver<bool>,
    roster: Option<Arc<dyn ManagerRoster>>,
}

impl<S: Store> LogsService<S> {
    /// The tonic service over `broker`: `leading` says when this manager
    /// leads; a follower names the leader from `roster`.
    pub fn server(
        broker: Arc<LogBroker>,
        control: Control<S>,
        leading: watch::Receiver<bool>,
        roster: Option<Arc<dyn ManagerRoster>>,
    ) -> LogsServer<Self> {
        LogsServer::new(Self {
            broker,
            control,
            leading,
            roster,
        })
    }

    async fn not_leader(&self) -> Status {
        let leader = match &self.roster {
            Some(r) => r
                .managers()
                .await
                .ok()
                .and_then(|ms| ms.into_iter().find(|m| m.leader))
                .map(|m| m.addr),
            None => None,
        };
        let mut status = Status::unavailable(match &leader {
            Some(a) => format!("this manager does not lead; the leader is {a}"),
            None => "this manager does not lead, and no leader is known".into(),
        });
        if let Some(a) = leader
            && let Ok(v) = a.parse()
        {
            status.metadata_mut().insert(LEADER_HEADER, v);
        }
        status
    }
}

/// The header a follower names the leader's address in.
pub const LEADER_HEADER: &str = "x-swarm-leader";

type BoxedStream = Pin<Box<dyn Stream<Item = Result<Payload, Status>> + Send + 'static>>;

fn node_caller<T>(req: &Request<T>) -> Result<Id, Status> {
    match peer_identity(req) {
        Some(who) if matches!(who.role, PeerRole::Manager | PeerRole::Worker) => Ok(who.node_id),
        Some(who) => Err(Status::permission_denied(format!(
            "{} is not a node of this cluster",
            who.node_id
        ))),
        None => Err(Status::unauthenticated(
            "log subscriptions need the node's certificate",
        )),
    }
}

#[tonic::async_trait]
impl<S: Store> logs_server::Logs for LogsService<S> {
    type SubscribeStream = BoxedStream;

    async fn subscribe(
        &self,
        req: Request<Payload>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let node = node_caller(&req)?;
        if !*self.leading.borrow() {
            return Err(self.not_leader().await);
        }
        let rx = self.broker.subscribe(&node);
        let mut leading = self.leading.clone();
        let lost = async move {
            let _ = leading.wait_for(|l| !*l).await;
        };
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx)
                .map(|r| Ok(wire::encode(&r)))
                .take_until(Box::pin(lost))
                .boxed(),
        ))
    }

    async fn publish(&self, req: Request<Streaming<Payload>>) -> Result<Response<Payload>, Status> {
        let node = node_caller(&req)?;
        let mut chunks = req.into_inner();
        let mut forget = Forget {
            broker: self.broker.clone(),
            requests: Vec::new(),
        };
        let mut sink: Option<mpsc::Sender<LogChunk>> = None;
        loop {
            // A client that leaves ends the publishing at once, even
            // while the task prints nothing.
            let closed = async {
                match &sink {
                    Some(tx) => tx.closed().await,
                    None => std::future::pending().await,
                }
            };
            let message = tokio::select! {
                m = chunks.message() => m?,
                () = closed => return Err(Status::cancelled("nobody reads these logs any more")),
            };
            let Some(p) = message else { break };
            let chunk: LogChunk = wire::decode(&p.data).map_err(Status::invalid_argument)?;
            if sink.is_none() {
                sink = Some(self.broker.sink(&node, chunk.request)?);
                forget.requests.push(chunk.request);
            }
            let tx = sink.as_ref().expect("set above");
            if tx.send(chunk).await.is_err() {
                return Err(Status::cancelled("nobody reads these logs any more"));
            }
        }
        Ok(Response::new(wire::encode(&())))
    }

    type ServiceLogsStream = BoxedStream;

    async fn service_logs(
        &self,
        req: Request<Payload>,
    ) -> Result<Response<Self::ServiceLogsStream>, Status> {
        match peer_identity(&req) {
            Some(who) if matches!(who.role, PeerRole::Manager | PeerRole::Client) => {}
            _ => {
                return Err(Status::permission_denied(
                    "service logs are for managers and clients",
                ));
            }
        }
        let ask: ServiceLogsRequest =
            wire::decode(&req.into_inner().data).map_err(Status::invalid_argument)?;
        if !*self.leading.borrow() {
            return Err(self.not_leader().await);
        }
        let tasks = self
            .control
            .service_tasks(&ask.service)
            .await
            .map_err(|e| Status::not_found(e.to_string()))?;
        let state = self
            .control
            .store()
            .state()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut streams: Vec<futures::stream::BoxStream<'static, LogItem>> = Vec::new();
        let mut forget = Forget {
            broker: self.broker.clone(),
            requests: Vec::new(),
        };
        for t in tasks {
            let Some(node) = t.node_id.clone() else {
                continue;
            };
            let host = state
                .node(&node)
                .map_or_else(|| node.to_string(), |n| n.display_name().to_owned());
            let name = t.name();
            let (task_id, service_id, node_id) =
                (t.meta.id.clone(), t.service_id.clone(), node.clone());
            match self
                .broker
                .request(&node, t.meta.id.clone(), ask.follow, ask.tail)
                .await
            {
                Ok((id, rx)) => streams.push({
                    forget.requests.push(id);
                    tokio_stream::wrappers::ReceiverStream::new(rx)
                        .flat_map(move |chunk| {
                            let mut items: Vec<LogItem> = chunk
                                .lines
                                .into_iter()
                                .map(|line| LogItem::Line {
                                    task: name.clone(),
                                    node: host.clone(),
                                    line,
                                    task_id: task_id.clone(),
                                    service_id: service_id.clone(),
                                    node_id: node_id.clone(),
                                })
                                .collect();
                            if let Some(e) = chunk.error {
                                items.push(LogItem::Warning(format!("{name}: {e}")));
                            }
                            futures::stream::iter(items)
                        })
                        .boxed()
                }),
                Err(e) => streams.push(
                    futures::stream::once(futures::future::ready(LogItem::Warning(format!(
                        "{name}: {e}: its logs are unavailable"
                    ))))
                    .boxed(),
                ),
            }
        }
        // The client's stream holds the guard: when it goes, so do its
        // requests, and the nodes stop publishing.
        Ok(Response::new(
            futures::stream::select_all(streams)
                .map(move |item| {
                    let _held = &forget;
                    Ok(wire::encode(&item))
                })
                .boxed(),
        ))
    }
}

/// The messages of a server stream, until it ends, fails or sends
/// something undecodable.
fn decoded<T: serde::de::DeserializeOwned + Send + 'static>(
    stream: Streaming<Payload>,
) -> futures::stream::BoxStream<'static, T> {
    stream
        .map(|p| p.ok().and_then(|p| wire::decode(&p.data).ok()))
        .take_while(|x| futures::future::ready(x.is_some()))
        .filter_map(futures::future::ready)
        .boxed()
}

/// A client of a manager's logs service: a node's subscription and
/// publishing, and a client's service logs.
#[derive(Debug, Clone)]
pub struct RemoteLogs {
    client: LogsClient<Channel>,
}

impl RemoteLogs {
    /// A client over `channel`.
    #[must_use]
    pub fn with_channel(channel: Channel) -> Self {
        Self {
            client: LogsClient::new(channel),
        }
    }

    /// This node's stream of log requests; it ends when the manager stops
    /// leading or goes away.
    pub async fn subscribe(
        &self,
    ) -> Result<futures::stream::BoxStream<'static, LogRequest>, Status> {
        let stream = self
            .client
            .clone()
            .subscribe(wire::encode(&()))
            .await?
            .into_inner();
        Ok(decoded(stream))
    }

    /// Publishes the chunks of one answer; ends when they do, or when the
    /// manager says nobody reads them any more.
    pub fn publish(
        &self,
        chunks: futures::stream::BoxStream<'static, LogChunk>,
    ) -> impl std::future::Future<Output = Result<(), Status>> + Send + 'static {
        let mut client = self.client.clone();
        // A concrete stream type: tonic's client-streaming future cannot
        // be shown `Send` over a boxed one.
        let (tx, rx) = mpsc::channel::<Payload>(4);
        let pump = tokio::spawn(async move {
            let mut chunks = chunks;
            while let Some(c) = chunks.next().await {
                if tx.send(wire::encode(&c)).await.is_err() {
                    break;
                }
            }
        });
        async move {
            let result = client
                .publish(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
                .map(|_| ());
            pump.abort();
            result
        }
    }

    /// A service's logs. A follower answers `Unavailable` with the
    /// leader's address in the [`LEADER_HEADER`] metadata.
    pub async fn service_logs(
        &self,
        request: ServiceLogsRequest,
    ) -> Result<futures::stream::BoxStream<'static, LogItem>, Status> {
        let stream = self
            .client
            .clone()
            .service_logs(wire::encode(&request))
            .await?
            .into_inner();
        Ok(decoded(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_node_asked_may_answer_and_a_gone_client_forgets_its_requests() {
        let broker = Arc::new(LogBroker::default());
        let (a, b): (Id, Id) = ("node-a".into(), "node-b".into());
        let mut requests = broker.subscribe(&a);
        let (id, _chunks) = broker.request(&a, "t1".into(), false, None).await.unwrap();
        assert_eq!(requests.recv().await.unwrap().id, id);
        // Node b cannot write into node a's answer.
        let refused = broker.sink(&b, id).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(broker.sink(&a, id).is_ok());
        // A node that is not subscribed cannot be asked.
        assert!(broker.request(&b, "t2".into(), false, None).await.is_err());
        // When the client's stream goes, its requests go with it.
        drop(Forget {
            broker: broker.clone(),
            requests: vec![id],
        });
        assert_eq!(
            broker.sink(&a, id).unwrap_err().code(),
            tonic::Code::Cancelled
        );
    }
}
