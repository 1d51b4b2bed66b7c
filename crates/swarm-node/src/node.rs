//! A node's life: init, join, resume, run, leave.

use std::fs::File;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use swarm_api::ca::{JoinToken, NodeKey, PeerRole};
use swarm_api::logs::{LogBroker, LogChunk, LogRequest, LogsService, RemoteLogs};
use swarm_api::membership::{Admitted, JoinRequest, MembershipService, RemoteMembership};
use swarm_api::tls::{Credentials, RequireRole, anonymous_endpoint, fetch_root_ca};
use swarm_api::{ControlService, DispatcherService, bootstrap};
use swarm_core::Id;
use swarm_core::agent::{Agent, AgentConfig, AgentError};
use swarm_core::control::Control;
use swarm_core::dispatcher::{DispatcherConfig, DispatcherError, LocalDispatcher};
use swarm_core::manager::{Manager, ManagerConfig, run_while_leading};
use swarm_core::model::NodeRole;
use swarm_core::runtime::{LogOptions, Runtime};
use swarm_raft::{Connector, RaftConfig, RaftStore};
use swarm_sched::{SchedulerConfig, SwarmScheduler};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};

use crate::Error;
use crate::authority::{self, Authority};
use crate::config::{NodeConfig, NodeState, raft_id};
use crate::dispatch::{FailoverDispatcher, LeaderDispatcher};

/// The credentials a node's clients use; renewal replaces them.
type SharedCreds = Arc<RwLock<Option<Credentials>>>;

/// Raft channels over mutual TLS with the node's current certificate.
struct TlsConnector(SharedCreds);

impl Connector for TlsConnector {
    fn channel(&self, addr: &str) -> Result<Channel, String> {
        let creds = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let creds = creds
            .as_ref()
            .ok_or("this manager has no certificate yet")?;
        Ok(creds
            .endpoint(addr)?
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy())
    }
}

/// A member of a cluster: its identity, certificates and (a manager) its
/// raft store. Make one with [`Node::init`], [`Node::join`] or
/// [`Node::resume`], then [`Node::run`] it.
pub struct Node {
    config: NodeConfig,
    state: NodeState,
    creds: SharedCreds,
    store: Option<RaftStore>,
    _lock: File,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Holds the data directory for this process (a second `swarmd` on the
/// same directory is refused).
fn lock_dir(config: &NodeConfig) -> Result<File, Error> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))?;
    // It holds the node's key and, on a manager, the CA key and every
    // secret: its owner's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::Io(format!("cannot make {} private: {e}", dir.display())))?;
    }
    let path = dir.join("swarmd.lock");
    let file = File::create(&path)
        .map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Config(format!(
            "another swarmd runs on {}: stop it first, or pick another --data-dir",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::Io(format!("cannot lock {}: {e}", path.display())))
        }
    }
}

fn raft_config(config: &NodeConfig, node: &Id) -> Result<RaftConfig, Error> {
    Ok(RaftConfig::new(
        raft_id(node),
        config.advertised()?,
        config.raft_dir(),
    ))
}

fn shared(creds: Option<Credentials>) -> SharedCreds {
    Arc::new(RwLock::new(creds))
}

fn save_creds(config: &NodeConfig, creds: &Credentials) -> Result<(), Error> {
    creds.save(&config.certs_dir()).map_err(|e| {
        Error::Io(format!(
            "cannot write the certificates into {}: {e}",
            config.certs_dir().display()
        ))
    })
}

impl Node {
    /// `swarmd init`: a new cluster with this node as its only manager: a
    /// root CA, join tokens, and this node's certificate.
    pub async fn init(config: NodeConfig) -> Result<Self, Error> {
        let lock = lock_dir(&config)?;
        if NodeState::load(&config.data_dir)?.is_some() {
            return Err(Error::Config(format!(
                "{} already holds a node of a cluster: run swarmd without init to resume it, \
                 or `swarmd leave` first",
                config.data_dir.display()
            )));
        }
        if config.raft_dir().exists() {
            return Err(Error::Config(format!(
                "{} holds a raft log but no node identity (an earlier init stopped half-way?): \
                 remove {} and run init again",
                config.data_dir.display(),
                config.raft_dir().display()
            )));
        }
        let node_id = Id::generate();
        let creds = shared(None);
        let store = RaftStore::open_with(
            raft_config(&config, &node_id)?,
            Arc::new(TlsConnector(creds.clone())),
        )
        .await?;
        store.initialize().await?;
        store.wait_for_leader(Duration::from_secs(10)).await?;
        let ca = bootstrap::init_cluster(&store, "default").await?;
        let key = NodeKey::generate()?;
        let cert = ca.ca.issue(
            &key.csr_pem()?,
            &node_id,
            NodeRole::Manager,
            config.cert_validity,
        )?;
        let own = Credentials::new(ca.ca.cert_pem(), cert, key.key_pem())?;
        save_creds(&config, &own)?;
        *creds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(own);
        authority::create_node(&store, &node_id, NodeRole::Manager, &config.hostname()).await?;
        let state = NodeState {
            node_id,
            role: NodeRole::Manager,
            managers: vec![config.advertised()?],
            raft_member: true,
        };
        state.save(&config.data_dir)?;
        tracing::info!(node = %state.node_id, "initialised a new cluster");
        Ok(Self {
            config,
            state,
            creds,
            store: Some(store),
            _lock: lock,
        })
    }

    /// `swarmd join --token TOKEN MANAGER`: checks the manager's CA
    /// against the token, proves the token and gets a certificate; the
    /// token decides the role.
    pub async fn join(config: NodeConfig, manager: &str, token: &str) -> Result<Self, Error> {
        let lock = lock_dir(&config)?;
        if NodeState::load(&config.data_dir)?.is_some() {
            return Err(Error::Config(format!(
                "{} already holds a node of a cluster: run swarmd without join to resume it, \
                 or `swarmd leave` first",
                config.data_dir.display()
            )));
        }
        let parsed: JoinToken = token.parse()?;
        let ca_pem = fetch_root_ca(manager, &parsed.ca_digest).await?;
        let key = NodeKey::generate()?;
        let channel = anonymous_endpoint(manager, &ca_pem)
            .map_err(Error::Config)?
            .connect_lazy();
        let admitted = RemoteMembership::with_channel(channel)
            .join(JoinRequest {
                token: token.to_owned(),
                csr_pem: key.csr_pem()?,
                hostname: config.hostname(),
            })
            .await?;
        let creds = Credentials::new(admitted.ca_pem, admitted.cert_pem, key.key_pem())?;
        save_creds(&config, &creds)?;
        let mut managers = admitted.managers;
        if managers.is_empty() {
            managers.push(manager.to_owned());
        }
        let state = NodeState {
            node_id: admitted.node_id,
            role: admitted.role,
            managers,
            raft_member: false,
        };
        state.save(&config.data_dir)?;
        tracing::info!(node = %state.node_id, role = ?state.role, "joined the cluster");
        Ok(Self {
            config,
            state,
            creds: shared(Some(creds)),
            store: None,
            _lock: lock,
        })
    }

    /// A node that joined before, from its data directory: the same id,
    /// role and certificate.
    pub fn resume(config: NodeConfig) -> Result<Self, Error> {
        let lock = lock_dir(&config)?;
        let state = NodeState::load(&config.data_dir)?.ok_or_else(|| {
            Error::Config(format!(
                "{} holds no node: create a cluster with `swarmd init`, or join one with \
                 `swarmd join --token TOKEN MANAGER`",
                config.data_dir.display()
            ))
        })?;
        let creds = Credentials::load(&config.certs_dir())?;
        let identity = creds.identity()?;
        if identity.not_after <= SystemTime::now() {
            return Err(Error::Config(format!(
                "this node's certificate expired (it was offline longer than its validity): \
                 remove {} and join again with a token",
                config.data_dir.display()
            )));
        }
        let mut state = state;
        // The certificate is written before node.json: after a crash in a
        // role change, the certificate says what the node now is.
        let certified = match identity.role {
            PeerRole::Manager => NodeRole::Manager,
            _ => NodeRole::Worker,
        };
        if certified != state.role {
            tracing::warn!(role = ?certified, "taking up the role the certificate names");
            state.role = certified;
            state.raft_member = false;
            if certified == NodeRole::Worker {
                let _ = std::fs::remove_dir_all(config.raft_dir());
            }
            state.save(&config.data_dir)?;
        }
        Ok(Self {
            config,
            state,
            creds: shared(Some(creds)),
            store: None,
            _lock: lock,
        })
    }

    /// The node's id.
    #[must_use]
    pub fn id(&self) -> &Id {
        &self.state.node_id
    }

    /// The node's role.
    #[must_use]
    pub fn role(&self) -> NodeRole {
        self.state.role
    }

    /// The current join token for `role` (a manager that holds its store:
    /// after [`Node::init`]).
    pub async fn join_token(&self, role: NodeRole) -> Result<String, Error> {
        let store = self.store.as_ref().ok_or_else(|| {
            Error::Config("only a running manager can read the join tokens".into())
        })?;
        Ok(bootstrap::load(store).await?.token(role)?)
    }

    /// The node's settings.
    #[must_use]
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    fn creds(&self) -> Credentials {
        self.creds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .expect("a node has credentials once made")
    }

    /// Runs the node until `shutdown`: a manager serves raft, the
    /// dispatcher, the control API and joins, and runs the control loops
    /// while it leads; every node runs an agent with `runtime`. When the
    /// cluster changes the node's role (`node promote`/`demote`), the node
    /// takes it up without stopping its tasks.
    pub async fn run<R: Runtime>(
        mut self,
        runtime: R,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let runtime = Arc::new(runtime);
        loop {
            match self.run_as_is(runtime.clone(), &shutdown).await? {
                None => return Ok(()),
                Some(role) => {
                    if let Err(e) = self.take_role(role).await {
                        // Keep the role it had; the next session says
                        // again what the cluster wants.
                        tracing::error!(error = %e, ?role, "cannot change this node's role");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }

    /// Runs the node in its current role until `shutdown` (`None`) or
    /// until the cluster wants another role (`Some`).
    async fn run_as_is<R: Runtime>(
        &mut self,
        runtime: Arc<R>,
        shutdown: &CancellationToken,
    ) -> Result<Option<NodeRole>, Error> {
        let stop = shutdown.child_token();
        // However this run ends, everything it started stops.
        let _stop_all = stop.clone().drop_guard();
        let mut background = tokio::task::JoinSet::new();
        let mut agent_managers = self.state.managers.clone();
        let mut manager = None;
        if self.state.role == NodeRole::Manager {
            let (store, reload) = self.start_manager(&stop, &mut background).await?;
            // Its own agent tries this manager first.
            let me = self.config.advertised()?;
            agent_managers.retain(|a| a != &me);
            agent_managers.insert(0, me);
            self.store = Some(store.clone());
            manager = Some((store, reload));
        }
        let dir = self.config.data_dir.clone();
        let dispatcher = Arc::new(
            FailoverDispatcher::new(&agent_managers, &self.creds())?.on_managers_changed(
                move |managers| {
                    // Kept at once: after a crash, the node must still
                    // find the managers that exist now.
                    if let Ok(Some(mut state)) = NodeState::load(&dir) {
                        state.managers = managers.to_vec();
                        if let Err(e) = state.save(&dir) {
                            tracing::warn!(error = %e, "cannot keep the managers' addresses");
                        }
                    }
                },
            ),
        );
        background.spawn(
            Renewal {
                config: self.config.clone(),
                creds: self.creds.clone(),
                sessions: dispatcher.clone(),
                manager,
            }
            .run(stop.clone()),
        );
        background.spawn(log_agent(
            runtime.clone(),
            dispatcher.clone(),
            self.creds.clone(),
            stop.clone(),
        ));
        let agent = Agent::new(
            self.state.node_id.clone(),
            runtime,
            dispatcher.clone(),
            AgentConfig::default().hostname(self.config.hostname()),
        );
        let mut agent = tokio::spawn(agent.run(stop.clone()));
        let mut new_role = Box::pin(self.role_change(&dispatcher));
        let (result, new_role) = loop {
            tokio::select! {
                r = &mut agent => break (r, None),
                role = &mut new_role => {
                    tracing::info!(?role, "the cluster changed this node's role");
                    // Out of the raft group while this manager still
                    // serves, in case it leads.
                    if role == NodeRole::Worker
                        && let Err(e) = self.leave_raft(true).await
                    {
                        // Refused (the last voter, say): it stays a
                        // manager, and asks again in a while.
                        tracing::error!(error = %e, "cannot leave the raft group; staying a manager");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        new_role = Box::pin(self.role_change(&dispatcher));
                        continue;
                    }
                    stop.cancel();
                    break (agent.await, Some(role));
                }
            }
        };
        stop.cancel();
        while background.join_next().await.is_some() {}
        if let Some(store) = self.store.take() {
            store.shutdown().await;
        }
        match result {
            Ok(Ok(())) => Ok(new_role),
            Ok(Err(AgentError::Dispatcher(DispatcherError::UnknownNode(id)))) => {
                Err(Error::Removed(id))
            }
            Ok(Err(e)) => Err(Error::Agent(e.to_string())),
            Err(e) => Err(Error::Agent(format!("the agent panicked: {e}"))),
        }
    }

    /// Resolves when the sessions say the cluster wants this node in
    /// another role that it can take (a manager needs an address the
    /// others can reach).
    fn role_change(
        &self,
        sessions: &FailoverDispatcher,
    ) -> impl std::future::Future<Output = NodeRole> + use<> {
        let mut desired = sessions.desired_role();
        let now = self.state.role;
        let can_manage = self.config.advertised();
        async move {
            let mut warned = false;
            loop {
                let wanted = *desired.borrow_and_update();
                match (wanted, &can_manage) {
                    (Some(r), _) if r == now => {}
                    (Some(NodeRole::Manager), Err(e)) => {
                        if !std::mem::replace(&mut warned, true) {
                            tracing::error!(error = %e, "this node was promoted but cannot manage");
                        }
                    }
                    (Some(r), _) => return r,
                    (None, _) => {}
                }
                if desired.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }

    /// Takes up `role`: a certificate for it, then the state that says so.
    /// A demoted manager has left the raft group already; its raft data
    /// goes.
    async fn take_role(&mut self, role: NodeRole) -> Result<(), Error> {
        let current = self.creds();
        let (admitted, fresh) = renew(&self.state.managers, &current).await?;
        if admitted.role != role {
            return Err(Error::Join(format!(
                "the managers issued a {:?} certificate; the role changed again",
                admitted.role
            )));
        }
        save_creds(&self.config, &fresh)?;
        *self
            .creds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fresh);
        if role == NodeRole::Worker {
            let _ = std::fs::remove_dir_all(self.config.raft_dir());
            let _ = std::fs::remove_dir_all(self.config.client_certs_dir());
        }
        self.state.role = role;
        self.state.raft_member = false;
        if !admitted.managers.is_empty() {
            self.state.managers = admitted.managers;
        }
        self.state.save(&self.config.data_dir)?;
        tracing::info!(?role, "this node took up its new role");
        Ok(())
    }

    /// Opens the raft store (unless init left it open), serves the
    /// manager's gRPC services, joins the raft group if this manager is
    /// new, and runs the control loops while it leads. Returns the store
    /// and the signal that makes the server take up a renewed certificate.
    async fn start_manager(
        &mut self,
        stop: &CancellationToken,
        background: &mut tokio::task::JoinSet<()>,
    ) -> Result<(RaftStore, watch::Sender<()>), Error> {
        let store = match self.store.take() {
            Some(s) => s,
            None => {
                RaftStore::open_with(
                    raft_config(&self.config, &self.state.node_id)?,
                    Arc::new(TlsConnector(self.creds.clone())),
                )
                .await?
            }
        };
        let listener = tokio::net::TcpListener::bind(self.config.listen_addr)
            .await
            .map_err(|e| {
                Error::Io(format!(
                    "cannot listen on {}: {e} (pick another with --listen-addr)",
                    self.config.listen_addr
                ))
            })?;
        let local = Arc::new(LocalDispatcher::new(
            store.clone(),
            DispatcherConfig::default()
                .heartbeat_period(self.config.heartbeat_period)
                .heartbeat_misses(self.config.heartbeat_misses),
        ));
        // Leading counts once this member's state holds everything
        // committed: a restarted member may lead before it has applied
        // its log again, and must not serve an empty state meanwhile.
        let leading = caught_up_leadership(&store, stop.clone());
        let services = Services {
            store: store.clone(),
            logs: Arc::new(LogBroker::default()),
            leading: leading.clone(),
            local: local.clone(),
            cert_validity: self.config.cert_validity,
            creds: self.creds.clone(),
        };
        let (reload, reloads) = watch::channel(());
        background.spawn(serve(Arc::new(listener), services, reloads, stop.clone()));
        let scheduler = SwarmScheduler::new(SchedulerConfig::default())
            .map_err(|e| Error::Config(e.to_string()))?;
        let loops_store = store.clone();
        background.spawn(run_while_leading(leading, stop.clone(), move |t| {
            Manager::new(
                loops_store.clone(),
                scheduler.clone(),
                ManagerConfig::default(),
            )
            .with_dispatcher(local.clone())
            .run(t)
        }));
        if !self.state.raft_member {
            self.join_raft(stop).await?;
        }
        ensure_client_certs(&self.config, &store).await?;
        Ok((store, reload))
    }

    /// Asks the leader to make this manager a voter, trying each known
    /// manager until the leader answers.
    async fn join_raft(&mut self, stop: &CancellationToken) -> Result<(), Error> {
        let me = self.config.advertised()?;
        let creds = self.creds();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline && !stop.is_cancelled() {
            for addr in self.state.managers.iter().filter(|a| **a != me) {
                let Ok(endpoint) = creds.endpoint(addr) else {
                    continue;
                };
                let remote = RemoteMembership::with_channel(endpoint.connect_lazy());
                match remote.add_manager(&me).await {
                    Ok(()) => {
                        self.state.raft_member = true;
                        self.state.save(&self.config.data_dir)?;
                        tracing::info!("this manager is a raft voter");
                        return Ok(());
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(Error::Join(format!(
            "no manager added this one to the raft group: {last}"
        )))
    }

    /// Asks the leader to take this manager out of the raft group, trying
    /// each manager (with `me_too`, this one as well: it may lead).
    async fn leave_raft(&self, me_too: bool) -> Result<(), Error> {
        let creds = self.creds();
        let me = self.config.advertised().unwrap_or_default();
        let candidates: Vec<&String> = self
            .state
            .managers
            .iter()
            .filter(|a| me_too || **a != me)
            .collect();
        let mut last = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !candidates.is_empty() && tokio::time::Instant::now() < deadline {
            for addr in &candidates {
                let Ok(endpoint) = creds.endpoint(addr) else {
                    continue;
                };
                match RemoteMembership::with_channel(endpoint.connect_lazy())
                    .remove_manager()
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(e @ swarm_api::membership::MembershipError::Refused(_)) => {
                        return Err(e.into());
                    }
                    Err(e) => last = Some(e),
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(Error::Join(match last {
            Some(e) => format!("the managers did not let this one leave: {e}"),
            None => "this is the only manager: the cluster would lose its state. \
                     Remove the data directory to destroy the cluster"
                .into(),
        }))
    }

    /// `swarmd leave`: a manager leaves the raft group (the last one may
    /// not); then the node forgets the cluster. The node must not be
    /// running.
    pub async fn leave(self) -> Result<(), Error> {
        if self.state.role == NodeRole::Manager && self.state.raft_member {
            self.leave_raft(false).await?;
        }
        for dir in [
            self.config.raft_dir(),
            self.config.certs_dir(),
            self.config.client_certs_dir(),
        ] {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::fs::remove_file(self.config.data_dir.join("node.json"))
            .map_err(|e| Error::Io(format!("cannot remove the node's identity: {e}")))?;
        Ok(())
    }
}

/// Answers the leader's requests for this node's task logs: keeps a
/// subscription open to whichever manager leads, and publishes each
/// requested task's lines from the runtime.
async fn log_agent<R: Runtime>(
    runtime: Arc<R>,
    sessions: Arc<FailoverDispatcher>,
    creds: SharedCreds,
    stop: CancellationToken,
) {
    use futures::StreamExt;
    while !stop.is_cancelled() {
        let current = creds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut subscribed = None;
        for addr in sessions.managers() {
            let Some(endpoint) = current.as_ref().and_then(|c| c.endpoint(&addr).ok()) else {
                continue;
            };
            let remote = RemoteLogs::with_channel(endpoint.connect_lazy());
            if let Ok(requests) = remote.subscribe().await {
                subscribed = Some((remote, requests));
                break;
            }
        }
        let Some((remote, mut requests)) = subscribed else {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => continue,
            }
        };
        loop {
            let request = tokio::select! {
                () = stop.cancelled() => return,
                r = requests.next() => r,
            };
            let Some(request) = request else { break };
            let runtime = runtime.clone();
            let remote = remote.clone();
            let stop = stop.clone();
            tokio::spawn(answer_logs(runtime, remote, request, stop));
        }
    }
}

/// Publishes one task's logs, as `request` asks.
async fn answer_logs<R: Runtime>(
    runtime: Arc<R>,
    remote: RemoteLogs,
    request: LogRequest,
    stop: CancellationToken,
) {
    use futures::StreamExt;
    let id = request.id;
    let options = LogOptions {
        follow: request.follow,
        tail: request.tail,
    };
    let rest: futures::stream::BoxStream<'static, LogChunk> =
        match runtime.logs(&request.task_id, options).await {
            Ok(lines) => lines
                .ready_chunks(256)
                .map(move |lines| LogChunk {
                    request: id,
                    lines,
                    error: None,
                })
                .boxed(),
            Err(e) => futures::stream::iter([LogChunk {
                request: id,
                lines: Vec::new(),
                error: Some(e.to_string()),
            }])
            .boxed(),
        };
    // A first chunk, even empty, tells the manager the answer has begun
    // (and ends it, for a task with no lines).
    let first = LogChunk {
        request: id,
        lines: Vec::new(),
        error: None,
    };
    let chunks = futures::stream::iter([first])
        .chain(rest)
        .take_until(stop.cancelled_owned())
        .boxed();
    let _ = remote.publish(chunks).await;
}

/// True while `store` leads and its state holds every committed write
/// (checked with a linearizable read at the start of each term).
fn caught_up_leadership(store: &RaftStore, stop: CancellationToken) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let mut leadership = store.leadership();
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                r = leadership.wait_for(|l| *l) => if r.is_err() { return },
            }
            // Until the read succeeds, or the term ends.
            while *leadership.borrow() && !stop.is_cancelled() {
                match store.state_linearizable().await {
                    Ok(_) => {
                        tx.send_replace(true);
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "leading, not caught up yet");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                r = leadership.wait_for(|l| !*l) => if r.is_err() { return },
            }
            tx.send_replace(false);
        }
    });
    rx
}

/// What a manager serves, on one port over mutual TLS.
struct Services {
    store: RaftStore,
    /// Outlives server restarts: workers' subscriptions stay with it.
    logs: Arc<LogBroker>,
    leading: watch::Receiver<bool>,
    local: Arc<LocalDispatcher<RaftStore>>,
    cert_validity: Duration,
    creds: SharedCreds,
}

impl Services {
    /// The server with the node's current certificate.
    fn router(&self) -> Result<tonic::transport::server::Router, Error> {
        let creds = self
            .creds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::Config("this manager has no certificate".into()))?;
        let store = &self.store;
        Ok(Server::builder()
            .tls_config(creds.server_tls())
            .map_err(|e| Error::Config(format!("TLS settings: {e}")))?
            .add_service(InterceptedService::new(
                store.service(),
                RequireRole::new("raft", &[PeerRole::Manager]),
            ))
            .add_service(InterceptedService::new(
                DispatcherService::server(
                    LeaderDispatcher::new(self.local.clone(), self.leading.clone())
                        .with_roster(authority::arc_roster(store.clone())),
                ),
                RequireRole::new("dispatcher", &[PeerRole::Manager, PeerRole::Worker]),
            ))
            .add_service(InterceptedService::new(
                ControlService::with_roster(
                    Control::new(store.clone()),
                    authority::arc_roster(store.clone()),
                ),
                RequireRole::new("control", &[PeerRole::Manager, PeerRole::Client]),
            ))
            .add_service(MembershipService::server(Authority::new(
                store.clone(),
                self.cert_validity,
            )))
            .add_service(LogsService::server(
                self.logs.clone(),
                Control::new(store.clone()),
                self.leading.clone(),
                Some(authority::arc_roster(store.clone())),
            )))
    }
}

/// Serves `services` on `listener` until `stop`. Each `reload` starts a
/// server with the current certificate; the previous one stops accepting
/// and ends with its last connection. On `stop`, servers get 2 s to
/// finish.
async fn serve(
    listener: Arc<tokio::net::TcpListener>,
    services: Services,
    mut reload: watch::Receiver<()>,
    stop: CancellationToken,
) {
    let mut servers = tokio::task::JoinSet::new();
    let mut running = Vec::new();
    loop {
        let router = match services.router() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the manager cannot serve");
                break;
            }
        };
        let listener = listener.clone();
        // Accepted streams, with Nagle off: the builder's setting does not
        // reach a custom incoming.
        let incoming = futures::stream::unfold(listener, |l| async move {
            let accepted = l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                s
            });
            Some((accepted, l))
        });
        let this = stop.child_token();
        running.push(this.clone());
        let done = this.clone();
        servers.spawn(async move {
            if let Err(e) = router
                .serve_with_incoming_shutdown(incoming, done.cancelled())
                .await
            {
                tracing::error!(error = %e, "the manager's server stopped");
            }
        });
        tokio::select! {
            () = stop.cancelled() => break,
            changed = reload.changed() => {
                this.cancel();
                if changed.is_err() {
                    break;
                }
                tracing::info!("serving with the renewed certificate");
            }
        }
    }
    for server in running {
        server.cancel();
    }
    if tokio::time::timeout(Duration::from_secs(2), async {
        while servers.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        servers.abort_all();
    }
}

/// Whether a certificate has a third or less of its validity left (or
/// cannot be read).
fn due(creds: &Credentials) -> bool {
    let Ok(who) = creds.identity() else {
        return true;
    };
    let issued = who.not_before + swarm_api::ca::CLOCK_SLACK;
    let total = who.not_after.duration_since(issued).unwrap_or_default();
    let left = who
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    left <= total / 3
}

/// What the renewal loop refreshes besides the node's own credentials.
struct Renewal {
    config: NodeConfig,
    creds: SharedCreds,
    /// The worker sessions: new channels with the new certificate.
    sessions: Arc<FailoverDispatcher>,
    /// A manager: its store (for the client certificate) and the signal
    /// that makes its server take up the new certificate.
    manager: Option<(RaftStore, watch::Sender<()>)>,
}

impl Renewal {
    /// Renews the node's certificate when a third of its validity
    /// remains, and a manager's client certificate likewise.
    async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.config.renew_check) => {}
            }
            if let Some((store, _)) = &self.manager
                && let Err(e) = ensure_client_certs(&self.config, store).await
            {
                tracing::warn!(error = %e, "cannot renew the client certificate");
            }
            let current = self
                .creds
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            let Some(current) = current.filter(due) else {
                continue;
            };
            if let Err(e) = self.renew(&current).await {
                tracing::warn!(error = %e, "cannot renew the node certificate; retrying");
            }
        }
    }

    async fn renew(&self, current: &Credentials) -> Result<(), Error> {
        let Some(mut state) = NodeState::load(&self.config.data_dir)? else {
            return Ok(());
        };
        let (admitted, fresh) = renew(&state.managers, current).await?;
        if admitted.role != state.role {
            // The role is changing: the node takes it up with its own
            // certificate (see `Node::take_role`).
            return Ok(());
        }
        save_creds(&self.config, &fresh)?;
        *self
            .creds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fresh.clone());
        self.sessions.set_credentials(fresh)?;
        if let Some((_, reload)) = &self.manager {
            reload.send_replace(());
        }
        if !admitted.managers.is_empty() {
            state.managers = admitted.managers;
            state.save(&self.config.data_dir)?;
        }
        tracing::info!("renewed the node certificate");
        Ok(())
    }
}

/// Writes a client certificate for `swarmctl` into the manager's data
/// directory, unless a valid one is there; waits for the store to hold
/// the CA (a new manager catching up).
async fn ensure_client_certs(config: &NodeConfig, store: &RaftStore) -> Result<(), Error> {
    let dir = config.client_certs_dir();
    if Credentials::load(&dir).is_ok_and(|c| !due(&c)) {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let ca = loop {
        match bootstrap::load(store).await {
            Ok(ca) => break ca,
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let key = NodeKey::generate()?;
    let cert = ca
        .ca
        .issue_client(&key.csr_pem()?, "swarmctl", config.cert_validity)?;
    let client = Credentials::new(ca.ca.cert_pem(), cert, key.key_pem())?;
    client.save(&dir).map_err(|e| {
        Error::Io(format!(
            "cannot write the client certificate into {}: {e}",
            dir.display()
        ))
    })
}

async fn renew(
    managers: &[String],
    current: &Credentials,
) -> Result<(Admitted, Credentials), Error> {
    let key = NodeKey::generate()?;
    let csr = key.csr_pem()?;
    let mut last = Error::Join("no manager is known".into());
    for addr in managers {
        let Ok(endpoint) = current.endpoint(addr) else {
            continue;
        };
        match RemoteMembership::with_channel(endpoint.connect_lazy())
            .renew(&csr)
            .await
        {
            Ok(a) => {
                let fresh = Credentials::new(a.ca_pem.clone(), a.cert_pem.clone(), key.key_pem())?;
                return Ok((a, fresh));
            }
            Err(e) => last = e.into(),
        }
    }
    Err(last)
}
