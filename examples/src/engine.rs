//! The Engine API's [`Backend`] of a daemon: what `swarmd` serves on its
//! socket (`docker -H unix://<data-dir>/swarmd.sock info`). [`Daemon`]
//! owns the node, which `docker swarm init|join|leave` make and remove;
//! [`NodeBackend`] answers for the node while it runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use swarm_api::ManagerRoster as _;
use swarm_core::Id;
use swarm_core::control::Control;
use swarm_core::model::NodeRole;
use swarm_core::store::{ReplicatedStore, Store};
use swarm_engine::logs::{LogEvent, LogsRequest};
use swarm_engine::wire::{
    Host, InitRequest, JoinRequest, LocalNodeState, ManagerStatus, SwarmInfo, SwarmUpdate,
};
use swarm_engine::{ApiError, Backend};
use swarm_node::NodeHandle;
use tokio::sync::watch;

/// A node's swarm state, from its manager's store while it has one.
pub struct NodeBackend<S> {
    id: Id,
    addr: String,
    stores: watch::Receiver<Option<S>>,
    host: Host,
    logs: Option<LogsFrom>,
    unlocker: Option<swarm_node::Unlocker>,
    images: Option<swarm_runtime_docker::DockerRuntime>,
}

/// Where a manager reads its service's logs: its client certificate's
/// directory, and its own address (`IP:PORT`).
#[derive(Debug, Clone)]
pub struct LogsFrom {
    /// `<data-dir>/client`, which a manager writes.
    pub client_dir: std::path::PathBuf,
    /// The manager's address.
    pub manager: String,
}

impl<S> NodeBackend<S> {
    /// The backend of node `id`, reached at `addr`, whose manager's store
    /// `stores` follows.
    #[must_use]
    pub fn new(id: Id, addr: String, stores: watch::Receiver<Option<S>>) -> Self {
        Self {
            id,
            addr,
            stores,
            host: Host::this_machine(),
            logs: None,
            unlocker: None,
            images: None,
        }
    }

    /// Answers `/distribution` through the Docker runtime's engine, which
    /// asks the image's registry.
    #[must_use]
    pub fn with_images(mut self, runtime: swarm_runtime_docker::DockerRuntime) -> Self {
        self.images = Some(runtime);
        self
    }

    /// Serves `docker swarm unlock`, and shows the manager locked while
    /// it waits for its key.
    #[must_use]
    pub fn with_unlocker(mut self, unlocker: swarm_node::Unlocker) -> Self {
        self.unlocker = Some(unlocker);
        self
    }

    fn is_locked(&self) -> bool {
        self.unlocker
            .as_ref()
            .is_some_and(swarm_node::Unlocker::is_locked)
    }

    /// Serves `docker service logs` with the manager's client certificate.
    #[must_use]
    pub fn with_logs(mut self, logs: LogsFrom) -> Self {
        self.logs = Some(logs);
        self
    }
}

/// How a daemon makes, runs and forgets its node: what `docker swarm
/// init|join|leave` ask of it. `swarmd` implements it with its flags.
#[async_trait::async_trait]
pub trait Lifecycle<S>: Send + Sync + 'static {
    /// Makes this daemon's node the first manager of a new swarm, and
    /// starts it.
    async fn init(&self, request: InitRequest) -> Result<Member<S>, ApiError>;

    /// Joins a swarm, and starts the node.
    async fn join(&self, request: JoinRequest) -> Result<Member<S>, ApiError>;

    /// Forgets the swarm once the node has stopped (with `force`, even as
    /// the last manager).
    async fn forget(&self, force: bool) -> Result<(), ApiError>;
}

/// A running node of the daemon: its handle, and the address other
/// nodes reach it at.
pub struct Member<S> {
    /// The running node.
    pub handle: NodeHandle<S>,
    /// Its advertised IP.
    pub addr: String,
    /// It joined as a manager: `join` answers once its manager serves.
    pub manager: bool,
    /// Where its logs are read while it is a manager.
    pub logs: LogsFrom,
    /// Its Docker runtime, if it runs containers: the images' registry
    /// digests are asked through its engine.
    pub images: Option<swarm_runtime_docker::DockerRuntime>,
}

/// The Engine API's backend of a daemon that may be in no swarm yet, as
/// dockerd: `docker swarm init` or `join` makes it a member, `leave`
/// takes it out, and the API serves throughout.
pub struct Daemon<S> {
    host: Host,
    lifecycle: Box<dyn Lifecycle<S>>,
    /// The running node, if any (held across a whole init or leave).
    member: tokio::sync::Mutex<Option<NodeHandle<S>>>,
    /// What the API reads of it, without waiting for an init or leave.
    view: std::sync::RwLock<Option<Arc<NodeBackend<S>>>>,
}

impl<S: ReplicatedStore> Daemon<S> {
    /// A daemon that makes its nodes with `lifecycle`, running `member`
    /// already if it has one.
    #[must_use]
    pub fn new(lifecycle: Box<dyn Lifecycle<S>>, member: Option<Member<S>>) -> Self {
        let daemon = Self {
            host: Host::this_machine(),
            lifecycle,
            member: tokio::sync::Mutex::new(None),
            view: std::sync::RwLock::new(None),
        };
        if let Some(m) = member {
            daemon.adopt(m, &mut daemon.member.try_lock().expect("a new lock"));
        }
        daemon
    }

    fn adopt(&self, m: Member<S>, slot: &mut Option<NodeHandle<S>>) {
        let mut view = NodeBackend::new(m.handle.id().clone(), m.addr, m.handle.stores())
            .with_logs(m.logs)
            .with_unlocker(m.handle.unlocker().clone());
        if let Some(runtime) = m.images {
            view = view.with_images(runtime);
        }
        *self
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(view));
        *slot = Some(m.handle);
    }

    /// Whether the daemon's node is a manager waiting for its unlock key.
    #[must_use]
    pub fn is_locked(&self) -> bool {
        self.current().is_some_and(|v| v.is_locked())
    }

    /// The node's id, its advertised IP and its manager's store, while
    /// the daemon's node is a manager.
    #[must_use]
    pub fn manager_store(&self) -> Option<(Id, String, S)> {
        let view = self.current()?;
        let store = view.stores.borrow().clone()?;
        Some((view.id.clone(), view.addr.clone(), store))
    }

    fn current(&self) -> Option<Arc<NodeBackend<S>>> {
        self.view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// If the node stopped by itself (an error, or its removal from the
    /// swarm), takes it and says how it ended: the daemon is in no swarm
    /// then. `None` while it runs, while an init or leave is under way,
    /// or when there is none.
    pub async fn ended(&self) -> Option<Result<(), swarm_node::Error>> {
        // An init or leave under way holds the node: not ended, then.
        let Ok(mut slot) = self.member.try_lock() else {
            return None;
        };
        if !slot.as_ref().is_some_and(NodeHandle::is_finished) {
            return None;
        }
        let handle = slot.take()?;
        *self
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Some(handle.wait().await)
    }

    /// Stops the node, if one runs (its tasks go on, as when swarmd
    /// stops).
    pub async fn shutdown(&self) -> Result<(), swarm_node::Error> {
        let handle = self.member.lock().await.take();
        *self
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        match handle {
            Some(h) => h.shutdown().await,
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl<S: ReplicatedStore> swarm_ui::Source for Daemon<S> {
    async fn control(&self) -> Option<swarm_core::control::Control<Arc<dyn Store>>> {
        Backend::control(self).await.ok()
    }

    async fn leader(&self) -> Option<String> {
        Backend::managers(self)
            .await
            .into_iter()
            .find_map(|(id, m)| m.leader.then_some(id))
    }
}

#[async_trait::async_trait]
impl<S: ReplicatedStore> swarm_metrics::Source for Daemon<S> {
    async fn state(&self) -> Option<swarm_core::store::State> {
        let control = Backend::control(self).await.ok()?;
        control.store().state().await.ok()
    }
}

#[async_trait::async_trait]
impl<S: ReplicatedStore> Backend for Daemon<S> {
    async fn swarm(&self) -> SwarmInfo {
        match self.current() {
            Some(node) => node.swarm().await,
            None => SwarmInfo::default(),
        }
    }

    fn host(&self) -> Host {
        self.host.clone()
    }

    async fn control(&self) -> Result<Control<Arc<dyn Store>>, ApiError> {
        match self.current() {
            Some(node) => node.control().await,
            None => Err(swarm_engine::error::not_a_manager(LocalNodeState::Inactive)),
        }
    }

    async fn managers(&self) -> BTreeMap<String, ManagerStatus> {
        match self.current() {
            Some(node) => node.managers().await,
            None => BTreeMap::new(),
        }
    }

    async fn distribution(
        &self,
        image: &str,
    ) -> Result<swarm_engine::wire::DistributionInspect, ApiError> {
        match self.current() {
            Some(node) => node.distribution(image).await,
            None => Err(swarm_engine::error::no_digest(image)),
        }
    }

    async fn unlock(&self, key: String) -> Result<(), ApiError> {
        match self.current() {
            Some(node) => node.unlock(key).await,
            None => Err(ApiError::unavailable("This node is not part of a swarm")),
        }
    }

    async fn update_swarm(&self, update: SwarmUpdate) -> Result<(), ApiError> {
        match self.current() {
            Some(node) => node.update_swarm(update).await,
            None => Err(swarm_engine::error::not_a_manager(LocalNodeState::Inactive)),
        }
    }

    async fn logs(
        &self,
        request: LogsRequest,
    ) -> Result<futures::stream::BoxStream<'static, LogEvent>, ApiError> {
        match self.current() {
            Some(node) => node.logs(request).await,
            None => Err(swarm_engine::error::not_a_manager(LocalNodeState::Inactive)),
        }
    }

    async fn init(&self, request: InitRequest) -> Result<String, ApiError> {
        let mut slot = self.member.lock().await;
        if slot.is_some() {
            return Err(swarm_engine::error::already_in_swarm());
        }
        let member = self.lifecycle.init(request).await?;
        let id = member.handle.id().as_str().to_owned();
        // As Docker's: init answers once the manager serves.
        let ready = serving(member.handle.stores()).await;
        self.adopt(member, &mut slot);
        ready.map(|()| id)
    }

    async fn join(&self, request: JoinRequest) -> Result<(), ApiError> {
        let mut slot = self.member.lock().await;
        if slot.is_some() {
            return Err(swarm_engine::error::already_in_swarm());
        }
        let member = self.lifecycle.join(request).await?;
        let ready = if member.manager {
            serving(member.handle.stores()).await
        } else {
            Ok(())
        };
        self.adopt(member, &mut slot);
        ready
    }

    async fn leave(&self, force: bool) -> Result<(), ApiError> {
        let mut slot = self.member.lock().await;
        let Some(handle) = slot.as_ref() else {
            return Err(ApiError::unavailable("This node is not part of a swarm"));
        };
        if !force && let Some(store) = handle.store() {
            leaving_manager(&store, handle.id()).await?;
        }
        let handle = slot.take().expect("checked above");
        *self
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        if let Err(e) = handle.shutdown().await {
            tracing::warn!(error = %e, "the node ended with an error as it left");
        }
        self.lifecycle.forget(force).await
    }
}

/// Waits until the manager part of a node serves (its store comes, up to
/// 30 s).
async fn serving<S: ReplicatedStore>(
    mut stores: watch::Receiver<Option<S>>,
) -> Result<(), ApiError> {
    let ready = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stores.wait_for(Option::is_some),
    )
    .await;
    if matches!(ready, Ok(Ok(_))) {
        Ok(())
    } else {
        Err(ApiError::internal(
            "the manager did not start serving within 30 s: see the daemon's log",
        ))
    }
}

/// Docker's refusal to let a manager leave without `--force`: the last
/// one would erase the swarm, and others would lose the quorum.
async fn leaving_manager<S: ReplicatedStore>(store: &S, me: &Id) -> Result<(), ApiError> {
    const START: &str =
        "You are attempting to leave the swarm on a node that is participating as a manager. ";
    const END: &str = "The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.";
    let roster = swarm_node::Roster::new(store.clone());
    let managers = roster.managers().await.unwrap_or_default();
    let reachable = managers.iter().filter(|m| m.reachable).count();
    let unreachable = managers.len() - reachable;
    if managers.iter().all(|m| &m.node_id == me) {
        return Err(ApiError::unavailable(format!(
            "{START}Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. "
        )));
    }
    if reachable <= unreachable + 2 {
        return Err(ApiError::unavailable(format!(
            "{START}Removing this node leaves {} managers out of {}. Without a Raft quorum your swarm will be inaccessible. {END}",
            reachable.saturating_sub(1),
            managers.len()
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl<S: ReplicatedStore> Backend for NodeBackend<S> {
    async fn swarm(&self) -> SwarmInfo {
        let mut info = SwarmInfo {
            node_id: self.id.as_str().to_owned(),
            node_addr: self.addr.clone(),
            local_node_state: LocalNodeState::Active,
            ..SwarmInfo::default()
        };
        if self.is_locked() {
            info.local_node_state = LocalNodeState::Locked;
            return info;
        }
        let store = self.stores.borrow().clone();
        let Some(store) = store else {
            return info; // a worker
        };
        let state = match store.state().await {
            Ok(s) => s,
            Err(e) => {
                info.local_node_state = LocalNodeState::Error;
                info.error = format!("the manager's store cannot be read: {e}");
                return info;
            }
        };
        info.control_available = true;
        info.nodes = state.nodes().count() as u64;
        info.managers = state
            .nodes()
            .filter(|n| n.spec.role == NodeRole::Manager)
            .count() as u64;
        info.cluster = state.cluster().map(|c| swarm_engine::convert::cluster(c));
        info
    }

    fn host(&self) -> Host {
        self.host.clone()
    }

    async fn control(&self) -> Result<Control<Arc<dyn Store>>, ApiError> {
        if self.is_locked() {
            return Err(swarm_engine::error::not_a_manager(LocalNodeState::Locked));
        }
        let store = self.stores.borrow().clone();
        match store {
            Some(store) => {
                let roster = Arc::new(swarm_node::Roster::new(store.clone()));
                let store: Arc<dyn Store> = Arc::new(store);
                Ok(Control::new(store)
                    .with_routes(swarm_net::host_routes())
                    .with_roster(roster))
            }
            None => Err(swarm_engine::error::not_a_manager(LocalNodeState::Active)),
        }
    }

    async fn distribution(
        &self,
        image: &str,
    ) -> Result<swarm_engine::wire::DistributionInspect, ApiError> {
        use swarm_engine::wire::{Descriptor, DistributionInspect, OciPlatform};
        let Some(runtime) = &self.images else {
            return Err(swarm_engine::error::no_digest(image));
        };
        match runtime.registry_digest(image).await {
            Ok(d) if !d.digest.is_empty() => Ok(DistributionInspect {
                descriptor: Descriptor {
                    media_type: d.media_type,
                    digest: d.digest,
                    size: d.size,
                },
                platforms: d
                    .platforms
                    .into_iter()
                    .map(|p| OciPlatform {
                        architecture: p.architecture,
                        os: p.os,
                        variant: p.variant,
                    })
                    .collect(),
            }),
            Ok(_) => Err(swarm_engine::error::no_digest(image)),
            Err(e) => {
                tracing::debug!(%image, error = %e, "no registry digest");
                Err(swarm_engine::error::no_digest(image))
            }
        }
    }

    async fn unlock(&self, key: String) -> Result<(), ApiError> {
        let Some(unlocker) = self.unlocker.as_ref().filter(|u| u.is_locked()) else {
            return Err(swarm_engine::error::not_locked());
        };
        if key.trim().parse::<swarm_core::model::UnlockKey>().is_err() {
            return Err(ApiError::bad_request(
                "invalid unlock key: expected SWMKEY-1- and 43 characters, as `docker swarm unlock-key` prints it",
            ));
        }
        match unlocker.unlock(&key).await {
            // As `init`: answered once the manager serves.
            Ok(()) => serving(self.stores.clone()).await,
            Err(swarm_node::Error::Locked(why)) => {
                tracing::info!(reason = %why, "docker swarm unlock: the key does not open this manager");
                Err(swarm_engine::error::invalid_unlock_key())
            }
            Err(swarm_node::Error::Config(_)) => Err(swarm_engine::error::not_locked()),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    async fn update_swarm(&self, u: SwarmUpdate) -> Result<(), ApiError> {
        let control = self.control().await?;
        let state = control
            .store()
            .state()
            .await
            .map_err(|e| ApiError::from(swarm_core::control::ControlError::from(e)))?;
        let cluster = state.cluster().ok_or_else(|| {
            ApiError::unavailable("the swarm's cluster object is not written yet")
        })?;
        if u.version != cluster.meta.version {
            return Err(ApiError::internal(
                "update out of sequence: the swarm changed since it was read: read it again and retry",
            ));
        }
        let current = swarm_engine::convert::cluster(cluster).spec;
        let asked = &u.spec;
        for (field, same) in [
            ("Name", asked.name.is_empty() || asked.name == current.name),
            ("Labels", asked.labels == current.labels),
            ("Raft", asked.raft == current.raft),
            ("Dispatcher", asked.dispatcher == current.dispatcher),
            ("CAConfig", asked.ca_config == current.ca_config),
            ("TaskDefaults", asked.task_defaults == current.task_defaults),
        ] {
            if !same {
                return Err(ApiError::bad_request(format!(
                    "Spec.{field} cannot be changed on this swarm yet: only the task history limit and autolock can"
                )));
            }
        }
        if let Some(limit) = asked.orchestration.task_history_retention_limit
            && Some(limit) != current.orchestration.task_history_retention_limit
        {
            let limit = u32::try_from(limit).map_err(|_| {
                ApiError::bad_request(format!(
                    "Spec.Orchestration.TaskHistoryRetentionLimit: {limit} is not a count"
                ))
            })?;
            control.set_task_history_limit(limit).await?;
        }
        let autolock = asked.encryption_config.auto_lock_managers;
        if autolock != current.encryption_config.auto_lock_managers {
            control.set_autolock(autolock).await?;
        }
        if u.rotate_unlock_key && autolock {
            control.unlock_key(true).await?;
        }
        for (rotate, role) in [
            (u.rotate_worker_token, NodeRole::Worker),
            (u.rotate_manager_token, NodeRole::Manager),
        ] {
            if rotate {
                swarm_api::bootstrap::rotate_token(control.store(), role)
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
            }
        }
        Ok(())
    }

    async fn logs(
        &self,
        request: LogsRequest,
    ) -> Result<futures::stream::BoxStream<'static, LogEvent>, ApiError> {
        use futures::StreamExt as _;
        use swarm_api::logs::{LogItem, ServiceLogsRequest};
        self.control().await?;
        let from = self.logs.as_ref().ok_or_else(|| {
            ApiError::internal(
                "this daemon serves no logs: it was made without a client certificate",
            )
        })?;
        let creds = swarm_api::tls::Credentials::load(&from.client_dir).map_err(|e| {
            ApiError::internal(format!(
                "the manager's client certificate ({}) cannot be read: {e}",
                from.client_dir.display()
            ))
        })?;
        let ask = ServiceLogsRequest {
            service: request.service,
            follow: request.follow,
            tail: request.tail,
        };
        let items = crate::logs::service_logs(&creds, &from.manager, ask)
            .await
            .map_err(|e| ApiError::unavailable(format!("{e:#}")))?;
        Ok(items
            .map(|item| match item {
                LogItem::Line {
                    line,
                    task_id,
                    service_id,
                    node_id,
                    ..
                } => LogEvent::Line {
                    task_id: task_id.as_str().to_owned(),
                    service_id: service_id.as_str().to_owned(),
                    node_id: node_id.as_str().to_owned(),
                    line,
                },
                LogItem::Warning(w) => LogEvent::Warning(w),
            })
            .boxed())
    }

    async fn managers(&self) -> BTreeMap<String, ManagerStatus> {
        let store = self.stores.borrow().clone();
        let Some(store) = store else {
            return BTreeMap::new();
        };
        let roster = swarm_node::Roster::new(store);
        let Ok(managers) = roster.managers().await else {
            return BTreeMap::new();
        };
        managers
            .into_iter()
            .map(|m| {
                let status = ManagerStatus {
                    leader: m.leader,
                    reachability: if m.reachable {
                        "reachable"
                    } else {
                        "unreachable"
                    }
                    .into(),
                    addr: m.addr,
                };
                (m.node_id.as_str().to_owned(), status)
            })
            .collect()
    }
}
