//! The control API over gRPC: [`ControlService`] serves a manager's
//! [`Control`], and [`RemoteControl`] is a client with the same methods.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use swarm_core::control::{Control, ControlError};
use swarm_core::events::{EventFilter, Message};
use swarm_core::model::{
    Config, ConfigSpec, Network, NetworkSpec, Node, NodeRole, NodeSpec, Secret, SecretSpec,
    Service, ServiceSpec, Task,
};
use swarm_core::store::{Store, StoreError};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::wire::proto::control_client::ControlClient;
use crate::wire::proto::control_server::{self, ControlServer};
use crate::wire::{self, proto::Payload};

/// One control request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Create a service.
    CreateService(ServiceSpec),
    /// Replace a service's spec (by name or id).
    UpdateService {
        /// Its name or id.
        service: String,
        /// The new spec.
        spec: ServiceSpec,
        /// The service's version the spec was made from: a service written
        /// since is refused as "update out of sequence" (none: no check).
        #[serde(default)]
        version: Option<u64>,
    },
    /// Roll a service back to its previous spec, or to revision `to`.
    RollbackService {
        /// Its name or id.
        service: String,
        /// The revision to go back to; none for the one before the current.
        #[serde(default)]
        to: Option<u64>,
    },
    /// Promote the canaries of a service's update.
    PromoteService(String),
    /// Set a replicated service's replicas.
    Scale {
        /// Its name or id.
        service: String,
        /// The new count.
        replicas: u64,
    },
    /// Remove a service.
    RemoveService(String),
    /// One service.
    InspectService(String),
    /// Every service.
    ListServices,
    /// A service's tasks, slot by slot.
    ServiceTasks(String),
    /// Every node.
    ListNodes,
    /// One node.
    InspectNode(String),
    /// Replace a node's spec (availability, labels, role).
    UpdateNode {
        /// Its hostname or id.
        node: String,
        /// The new spec.
        spec: NodeSpec,
    },
    /// Remove a node (`force`: even while it is up).
    RemoveNode {
        /// Its hostname or id.
        node: String,
        /// Remove it even if it is ready.
        force: bool,
    },
    /// Create a secret.
    CreateSecret(SecretSpec),
    /// Update a secret: only its labels may change; the data may be
    /// sent as it is, or left empty.
    UpdateSecret {
        /// Its name or id.
        secret: String,
        /// The new spec.
        spec: SecretSpec,
    },
    /// Remove a secret by name.
    RemoveSecret(String),
    /// Every secret, without its data.
    ListSecrets,
    /// Create a config.
    CreateConfig(ConfigSpec),
    /// Update a config: only its labels may change, as a secret's.
    UpdateConfig {
        /// Its name or id.
        config: String,
        /// The new spec.
        spec: ConfigSpec,
    },
    /// Remove a config by name.
    RemoveConfig(String),
    /// Every config, without its data.
    ListConfigs,
    /// Create an overlay network.
    CreateNetwork(NetworkSpec),
    /// Remove a network (by name or id) that nothing uses.
    RemoveNetwork(String),
    /// One network.
    InspectNetwork(String),
    /// Every network.
    ListNetworks,
    /// The join token for a role, rotated first if `rotate`.
    JoinToken {
        /// Workers' or managers'.
        role: NodeRole,
        /// Replace it first: the old one stops admitting nodes.
        rotate: bool,
    },
    /// The managers and which one leads.
    Managers,
    /// Turn autolock on or off (`swarm update --autolock=BOOL`); the
    /// answer is the unlock key, or an empty token when off.
    SetAutolock(bool),
    /// The unlock key, replaced by a new one first if `rotate`.
    UnlockKey {
        /// Replace it first.
        rotate: bool,
    },
    /// Unlock a locked manager with the unlock key (`swarm unlock`).
    Unlock(String),
}

/// The answer to a [`ControlRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlReply {
    /// Done, nothing to return.
    Done,
    /// A service.
    Service(Arc<Service>),
    /// Services.
    Services(Vec<Arc<Service>>),
    /// Tasks.
    Tasks(Vec<Arc<Task>>),
    /// A node.
    Node(Arc<Node>),
    /// Nodes.
    Nodes(Vec<Arc<Node>>),
    /// A secret (its data removed).
    Secret(Arc<Secret>),
    /// Secrets (their data removed).
    Secrets(Vec<Arc<Secret>>),
    /// A config (its data removed).
    Config(Arc<Config>),
    /// Configs (their data removed).
    Configs(Vec<Arc<Config>>),
    /// A network.
    Network(Arc<Network>),
    /// Networks.
    Networks(Vec<Arc<Network>>),
    /// A join token.
    Token(String),
    /// The managers.
    Managers(Vec<ManagerInfo>),
}

pub use swarm_core::control::{ManagerInfo, ManagerRoster};

/// Serves a manager's [`Control`] over gRPC.
pub struct ControlService<S> {
    control: Control<S>,
    roster: Option<Arc<dyn ManagerRoster>>,
}

impl<S: Store> ControlService<S> {
    /// The tonic service for `control`.
    pub fn server(control: Control<S>) -> ControlServer<Self> {
        Self::wrap(Self {
            control,
            roster: None,
        })
    }

    /// The tonic service for `control`, answering `Managers` from
    /// `roster`.
    pub fn with_roster(control: Control<S>, roster: Arc<dyn ManagerRoster>) -> ControlServer<Self> {
        Self::wrap(Self {
            control: control.with_roster(roster.clone()),
            roster: Some(roster),
        })
    }

    fn wrap(me: Self) -> ControlServer<Self> {
        ControlServer::new(me)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    async fn serve(&self, req: ControlRequest) -> Result<ControlReply, ControlError> {
        use ControlReply as R;
        let c = &self.control;
        let state = || async { c.store().state().await.map_err(ControlError::from) };
        Ok(match req {
            ControlRequest::CreateService(spec) => R::Service(c.create_service(spec).await?),
            ControlRequest::UpdateService {
                service,
                spec,
                version,
            } => R::Service(c.replace_service_spec(&service, spec, version).await?),
            ControlRequest::RollbackService { service, to } => {
                R::Service(c.rollback_service(&service, to).await?)
            }
            ControlRequest::PromoteService(service) => {
                R::Service(c.promote_service(&service).await?)
            }
            ControlRequest::Scale { service, replicas } => {
                R::Service(c.scale(&service, replicas).await?)
            }
            ControlRequest::RemoveService(s) => {
                c.remove_service(&s).await?;
                R::Done
            }
            ControlRequest::InspectService(s) => R::Service(c.service(&s).await?),
            ControlRequest::ListServices => {
                R::Services(state().await?.services().cloned().collect())
            }
            ControlRequest::ServiceTasks(s) => R::Tasks(c.service_tasks(&s).await?),
            ControlRequest::ListNodes => R::Nodes(state().await?.nodes().cloned().collect()),
            ControlRequest::InspectNode(n) => R::Node(c.node(&n).await?),
            ControlRequest::UpdateNode { node, spec } => R::Node(
                c.update_node(&node, |s| {
                    *s = spec.clone();
                })
                .await?,
            ),
            ControlRequest::RemoveNode { node, force } => {
                c.remove_node(&node, force).await?;
                R::Done
            }
            ControlRequest::CreateSecret(spec) => {
                R::Secret(without_data(&c.create_secret(spec).await?))
            }
            ControlRequest::UpdateSecret { secret, spec } => {
                R::Secret(without_data(&c.update_secret(&secret, None, spec).await?))
            }
            ControlRequest::RemoveSecret(name) => {
                c.remove_secret(&name).await?;
                R::Done
            }
            ControlRequest::ListSecrets => {
                R::Secrets(state().await?.secrets().map(without_data).collect())
            }
            ControlRequest::CreateConfig(spec) => {
                R::Config(config_without_data(&c.create_config(spec).await?))
            }
            ControlRequest::UpdateConfig { config, spec } => R::Config(config_without_data(
                &c.update_config(&config, None, spec).await?,
            )),
            ControlRequest::RemoveConfig(name) => {
                c.remove_config(&name).await?;
                R::Done
            }
            ControlRequest::ListConfigs => {
                R::Configs(state().await?.configs().map(config_without_data).collect())
            }
            ControlRequest::CreateNetwork(spec) => R::Network(c.create_network(spec).await?),
            ControlRequest::RemoveNetwork(n) => {
                c.remove_network(&n).await?;
                R::Done
            }
            ControlRequest::InspectNetwork(n) => R::Network(c.network(&n).await?),
            ControlRequest::ListNetworks => R::Networks(c.networks().await?),
            ControlRequest::JoinToken { role, rotate } => {
                let token = if rotate {
                    crate::bootstrap::rotate_token(c.store(), role).await
                } else {
                    crate::bootstrap::load(c.store())
                        .await
                        .and_then(|ca| ca.token(role))
                };
                R::Token(token.map_err(|e| match e {
                    crate::bootstrap::BootstrapError::Store(e) => ControlError::Store(e),
                    other => ControlError::Refused(other.to_string()),
                })?)
            }
            ControlRequest::Managers => match &self.roster {
                Some(r) => R::Managers(r.managers().await?),
                None => R::Managers(Vec::new()),
            },
            ControlRequest::SetAutolock(on) => R::Token(
                c.set_autolock(on)
                    .await?
                    .map(|k| k.to_string())
                    .unwrap_or_default(),
            ),
            ControlRequest::UnlockKey { rotate } => {
                R::Token(c.unlock_key(rotate).await?.to_string())
            }
            ControlRequest::Unlock(_) => {
                return Err(ControlError::Refused(
                    "this manager is not locked: there is nothing to unlock".into(),
                ));
            }
        })
    }
}

/// A secret as clients see it: never its data.
fn without_data(s: &Arc<Secret>) -> Arc<Secret> {
    let mut s = (**s).clone();
    s.spec.data.clear();
    Arc::new(s)
}

/// A config as listings show it: its data stays on the managers.
fn config_without_data(c: &Arc<Config>) -> Arc<Config> {
    let mut c = (**c).clone();
    c.spec.data.clear();
    Arc::new(c)
}

impl<S: Store> ControlService<S> {
    /// A manager's certificate counts only while the cluster still has
    /// its node as a manager: a demoted node keeps its old certificate
    /// until it expires.
    async fn check_caller<T>(&self, req: &Request<T>) -> Result<(), Status> {
        if let Some(who) = crate::tls::peer_identity(req)
            && who.role == crate::ca::PeerRole::Manager
        {
            let state = self
                .control
                .store()
                .state()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            if !state.is_manager(&who.node_id) {
                return Err(Status::permission_denied(format!(
                    "node {} is no longer a manager of this cluster",
                    who.node_id
                )));
            }
        }
        Ok(())
    }
}

/// What [`RemoteControl::events`] asks for: the events that pass
/// `filter`, replayed from `since` (none: only those to come), until
/// `until` (none: for ever).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsRequest {
    /// Replay the store's journal from here.
    pub since: Option<SystemTime>,
    /// End the stream here.
    pub until: Option<SystemTime>,
    /// Which events.
    pub filter: EventFilter,
}

type EventStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Payload, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl<S: Store> control_server::Control for ControlService<S> {
    async fn call(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        self.check_caller(&req).await?;
        let request: ControlRequest =
            wire::decode(&req.into_inner().data).map_err(Status::invalid_argument)?;
        let result = self.serve(request).await;
        Ok(Response::new(wire::encode(&result)))
    }

    type EventsStream = EventStream;

    async fn events(&self, req: Request<Payload>) -> Result<Response<EventStream>, Status> {
        self.check_caller(&req).await?;
        let ask: EventsRequest =
            wire::decode(&req.into_inner().data).map_err(Status::invalid_argument)?;
        ask.filter
            .check()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let messages =
            swarm_core::events::stream(self.control.store(), ask.since, ask.until, ask.filter)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(Box::pin(
            messages.map(|m| Ok(wire::encode(&m))),
        )))
    }
}

/// What a locked manager serves on its port until it is unlocked: every
/// request but [`ControlRequest::Unlock`] is refused with how to unlock it;
/// an unlock key goes to the node (through `keys`), which answers whether
/// it opens the manager's data key.
pub struct LockedControl {
    keys: tokio::sync::mpsc::Sender<UnlockAttempt>,
}

/// An unlock key given to a locked manager, and where to answer whether
/// it opened the manager's data key (or why not).
pub type UnlockAttempt = (
    swarm_core::model::UnlockKey,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

impl LockedControl {
    /// The tonic service; unlock attempts arrive on `keys`.
    pub fn server(keys: tokio::sync::mpsc::Sender<UnlockAttempt>) -> ControlServer<Self> {
        ControlServer::new(Self { keys })
    }

    async fn serve(&self, req: ControlRequest) -> Result<ControlReply, ControlError> {
        let ControlRequest::Unlock(key) = req else {
            return Err(ControlError::Refused(
                "this manager is locked (autolock): it serves nothing until `swarmctl swarm unlock` gives it the cluster's unlock key".into(),
            ));
        };
        let key: swarm_core::model::UnlockKey = key.parse()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let gone = || ControlError::Refused("the manager is stopping".into());
        self.keys.send((key, tx)).await.map_err(|_| gone())?;
        rx.await
            .map_err(|_| gone())?
            .map(|()| ControlReply::Done)
            .map_err(ControlError::Refused)
    }
}

#[tonic::async_trait]
impl control_server::Control for LockedControl {
    async fn call(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let request: ControlRequest =
            wire::decode(&req.into_inner().data).map_err(Status::invalid_argument)?;
        let result = self.serve(request).await;
        Ok(Response::new(wire::encode(&result)))
    }

    type EventsStream = EventStream;

    async fn events(&self, _req: Request<Payload>) -> Result<Response<EventStream>, Status> {
        Err(Status::unavailable(
            "this manager is locked (autolock): it serves no events until `swarmctl swarm unlock` gives it the cluster's unlock key",
        ))
    }
}

/// A client of a manager's control API, with the methods of [`Control`].
#[derive(Debug, Clone)]
pub struct RemoteControl {
    client: ControlClient<Channel>,
}

fn unreachable(e: impl std::fmt::Display) -> ControlError {
    ControlError::Store(StoreError::Unavailable(format!(
        "cannot reach the manager: {e}"
    )))
}

/// A status with the causes beneath it ("transport error" alone says
/// little).
fn error_chain(s: &Status) -> String {
    let mut text = s.message().to_owned();
    let mut cause = std::error::Error::source(s);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn unexpected(reply: &ControlReply) -> ControlError {
    ControlError::Refused(format!("the manager answered out of turn: {reply:?}"))
}

macro_rules! expect {
    ($reply:expr, $variant:ident) => {
        match $reply {
            ControlReply::$variant(x) => Ok(x),
            other => Err(unexpected(&other)),
        }
    };
}

impl RemoteControl {
    /// A client of the manager at `addr` (`host:port`) over plain TCP,
    /// connected on first use.
    pub fn connect_lazy(addr: &str) -> Result<Self, ControlError> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ControlError::Refused(format!("bad manager address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true);
        Ok(Self::with_channel(endpoint.connect_lazy()))
    }

    /// A client over `channel` (for TLS, or a custom connector).
    #[must_use]
    pub fn with_channel(channel: Channel) -> Self {
        Self {
            client: ControlClient::new(channel)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        }
    }

    /// Sends one request.
    pub async fn call(&self, request: ControlRequest) -> Result<ControlReply, ControlError> {
        let reply = self
            .client
            .clone()
            .call(wire::encode(&request))
            .await
            .map_err(|s| match s.code() {
                // Who may call is decided per certificate: say so plainly.
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
                    ControlError::Refused(s.message().to_owned())
                }
                _ => {
                    let chain = error_chain(&s);
                    if chain.contains("certificate") || chain.contains("Certificate") {
                        ControlError::Refused(format!(
                            "the TLS handshake with the manager failed ({chain}): this client's \
                             certificate is not from the manager's cluster, or has expired; take a \
                             current one from a manager's <data-dir>/client"
                        ))
                    } else {
                        unreachable(chain)
                    }
                }
            })?;
        let result: Result<ControlReply, ControlError> =
            wire::decode(&reply.into_inner().data).map_err(unreachable)?;
        result
    }

    /// The store's change events that `request` asks for, as they
    /// happen; the stream ends at `until`, or when the manager goes.
    ///
    /// # Errors
    /// If the manager cannot be reached, refuses the caller, or is locked.
    pub async fn events(
        &self,
        request: EventsRequest,
    ) -> Result<futures::stream::BoxStream<'static, Message>, ControlError> {
        let stream = self
            .client
            .clone()
            .events(wire::encode(&request))
            .await
            .map_err(|s| match s.code() {
                tonic::Code::PermissionDenied
                | tonic::Code::Unauthenticated
                | tonic::Code::InvalidArgument => ControlError::Refused(s.message().to_owned()),
                _ => unreachable(error_chain(&s)),
            })?
            .into_inner();
        Ok(stream
            .map(|p| p.ok().and_then(|p| wire::decode::<Message>(&p.data).ok()))
            .take_while(|m| futures::future::ready(m.is_some()))
            .filter_map(futures::future::ready)
            .boxed())
    }

    /// Creates a service.
    pub async fn create_service(&self, spec: ServiceSpec) -> Result<Arc<Service>, ControlError> {
        expect!(
            self.call(ControlRequest::CreateService(spec)).await?,
            Service
        )
    }

    /// Replaces a service's spec; with `version`, only if the service was
    /// not written since that version.
    pub async fn update_service(
        &self,
        service: &str,
        spec: ServiceSpec,
        version: Option<u64>,
    ) -> Result<Arc<Service>, ControlError> {
        let req = ControlRequest::UpdateService {
            service: service.into(),
            spec,
            version,
        };
        expect!(self.call(req).await?, Service)
    }

    /// Rolls a service back to its previous spec, or to revision `to`.
    pub async fn rollback_service(
        &self,
        service: &str,
        to: Option<u64>,
    ) -> Result<Arc<Service>, ControlError> {
        let req = ControlRequest::RollbackService {
            service: service.into(),
            to,
        };
        expect!(self.call(req).await?, Service)
    }

    /// Promotes the canaries of a service's update.
    pub async fn promote_service(&self, service: &str) -> Result<Arc<Service>, ControlError> {
        expect!(
            self.call(ControlRequest::PromoteService(service.into()))
                .await?,
            Service
        )
    }

    /// One service.
    pub async fn service(&self, service: &str) -> Result<Arc<Service>, ControlError> {
        expect!(
            self.call(ControlRequest::InspectService(service.into()))
                .await?,
            Service
        )
    }

    /// Sets a replicated service's replicas.
    pub async fn scale(&self, service: &str, replicas: u64) -> Result<Arc<Service>, ControlError> {
        let req = ControlRequest::Scale {
            service: service.into(),
            replicas,
        };
        expect!(self.call(req).await?, Service)
    }

    /// Removes a service.
    pub async fn remove_service(&self, service: &str) -> Result<(), ControlError> {
        match self
            .call(ControlRequest::RemoveService(service.into()))
            .await?
        {
            ControlReply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Every service.
    pub async fn services(&self) -> Result<Vec<Arc<Service>>, ControlError> {
        expect!(self.call(ControlRequest::ListServices).await?, Services)
    }

    /// A service's tasks.
    pub async fn service_tasks(&self, service: &str) -> Result<Vec<Arc<Task>>, ControlError> {
        expect!(
            self.call(ControlRequest::ServiceTasks(service.into()))
                .await?,
            Tasks
        )
    }

    /// Every node.
    pub async fn nodes(&self) -> Result<Vec<Arc<Node>>, ControlError> {
        expect!(self.call(ControlRequest::ListNodes).await?, Nodes)
    }

    /// Every secret, without its data.
    pub async fn secrets(&self) -> Result<Vec<Arc<Secret>>, ControlError> {
        expect!(self.call(ControlRequest::ListSecrets).await?, Secrets)
    }

    /// Creates a secret; the reply omits its data.
    pub async fn create_secret(&self, spec: SecretSpec) -> Result<Arc<Secret>, ControlError> {
        expect!(self.call(ControlRequest::CreateSecret(spec)).await?, Secret)
    }
}
