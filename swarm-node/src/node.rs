//! A node's life: init, join, resume, run, leave.

use std::fs::File;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use swarm_api::bootstrap;
use swarm_api::ca::{JoinToken, NodeKey, PeerRole};
use swarm_api::logs::LogBroker;
use swarm_api::membership::{JoinRequest, RemoteMembership};
use swarm_api::tls::{Credentials, anonymous_endpoint, fetch_root_ca};
use swarm_core::Id;
use swarm_core::agent::{Agent, AgentError};
use swarm_core::control::Control;
use swarm_core::dispatcher::{DispatcherConfig, DispatcherError, LocalDispatcher};
use swarm_core::manager::control_loop::LoopFactory;
use swarm_core::manager::{Manager, run_while_leading};
use swarm_core::model::{Kind, NodeRole};
use swarm_core::runtime::Runtime;
use swarm_core::sched::Scheduler;
use swarm_core::store::ReplicatedStore;
use swarm_sched::SwarmScheduler;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::authority;
use crate::config::{NodeConfig, NodeState, raft_id};
use crate::dispatch::FailoverDispatcher;
use crate::logs_agent::log_agent;
use crate::provider::{Channels, RaftStores, StoreMember, StoreProvider};
use crate::renewal::{Renewal, ensure_client_certs, renew};
use crate::serve::{Services, caught_up_leadership, serve};

/// The credentials a node's clients use; renewal replaces them.
pub(crate) type SharedCreds = Arc<RwLock<Option<Credentials>>>;

/// The manager's current certificate, to serve with.
pub(crate) fn server_creds(creds: &SharedCreds) -> Result<Credentials, Error> {
    creds
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .ok_or_else(|| Error::Config("this manager has no certificate".into()))
}

/// Channels to the other managers over mutual TLS with the node's current
/// certificate.
fn tls_channels(creds: SharedCreds) -> Channels {
    Arc::new(move |addr: &str| {
        let creds = creds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let creds = creds
            .as_ref()
            .ok_or("this manager has no certificate yet")?;
        Ok(creds
            .endpoint(addr)?
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy())
    })
}

/// A member of a cluster: its identity, certificates and (a manager) its
/// store. Make one with [`Node::init`], [`Node::join`] or
/// [`Node::resume`] (or a [`NodeBuilder`], to pick the store, the
/// scheduler and the app's own control loops), then [`Node::run`] or
/// [`Node::start`] it.
pub struct Node<P: StoreProvider = RaftStores, Sch = SwarmScheduler> {
    config: NodeConfig,
    state: NodeState,
    creds: SharedCreds,
    store: Option<P::Store>,
    provider: Arc<P>,
    scheduler: Sch,
    loops: Vec<LoopFactory<P::Store>>,
    /// The manager's store while the manager part runs, for the handle.
    current: watch::Sender<Option<P::Store>>,
    /// The unlock key `swarm unlock` gave this autolocked manager, kept in
    /// memory only (a role change reopens the store with it).
    unlock_key: Option<swarm_core::model::UnlockKey>,
    /// Whether the manager waits for its unlock key, for the handle.
    locked: watch::Sender<bool>,
    /// Unlock keys for a locked manager, from `swarm unlock` over the
    /// control API or from the handle ([`Unlocker`]).
    unlocks: (
        mpsc::Sender<swarm_api::UnlockAttempt>,
        mpsc::Receiver<swarm_api::UnlockAttempt>,
    ),
    _lock: File,
}

/// Builds a [`Node`] from its parts: the store provider (default
/// [`RaftStores`]), the scheduler (default [`SwarmScheduler`]), and the
/// app's own control loops, which run beside the built-in ones on the
/// leader only. Then `init`, `join` or `resume`.
///
/// ```no_run
/// use swarm_core::manager::control_loop::{ControlLoop, Dirty, Next, control_loop};
/// use swarm_core::store::{Commit, State};
/// use swarm_node::{NodeBuilder, NodeConfig, SoloStores};
/// use swarm_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
/// use swarm_sched::{Strategy, SwarmScheduler};
///
/// struct Quiet;
/// impl ControlLoop for Quiet {
///     const NAME: &'static str = "quiet";
///     fn touched(&mut self, _: &Commit, _: &mut Dirty) {}
///     async fn run(&mut self, _: State, _: Dirty) -> Next { Next::done() }
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let node = NodeBuilder::with_store(NodeConfig::new("/tmp/m1"), SoloStores::default())
///     .scheduler(SwarmScheduler::builder().strategy(Strategy::Binpack).build()?)
///     .control_loop(control_loop(|_store| Quiet))
///     .init()
///     .await?;
/// let handle = node.start(ProcessRuntime::new(ProcessRuntimeConfig::default())?);
/// let control = handle.control().await?;
/// control.create_service(swarm_core::model::ServiceSpec::replicated("s", 1, vec!["sleep".into(), "9".into()])).await?;
/// handle.shutdown().await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct NodeBuilder<P: StoreProvider = RaftStores, Sch = SwarmScheduler> {
    config: NodeConfig,
    provider: P,
    scheduler: Sch,
    loops: Vec<LoopFactory<P::Store>>,
}

impl NodeBuilder {
    /// A node with `config`, on a raft store, placing with the stock
    /// scheduler.
    pub fn new(config: NodeConfig) -> Self {
        Self::with_store(config, RaftStores)
    }
}

impl<P: StoreProvider> NodeBuilder<P> {
    /// A node with `config` whose manager keeps its state in the stores
    /// `provider` opens.
    pub fn with_store(config: NodeConfig, provider: P) -> Self {
        Self {
            config,
            provider,
            scheduler: SwarmScheduler::default(),
            loops: Vec::new(),
        }
    }
}

impl<P: StoreProvider, Sch: Scheduler + Clone> NodeBuilder<P, Sch> {
    /// Places tasks with `scheduler` while this node leads.
    pub fn scheduler<S2: Scheduler + Clone>(self, scheduler: S2) -> NodeBuilder<P, S2> {
        NodeBuilder {
            config: self.config,
            provider: self.provider,
            scheduler,
            loops: self.loops,
        }
    }

    /// Runs the app's loop that `factory` makes beside the built-in ones,
    /// on the leader only, moving with leadership.
    pub fn control_loop(mut self, factory: LoopFactory<P::Store>) -> Self {
        self.loops.push(factory);
        self
    }

    fn into_node(
        self,
        state: NodeState,
        creds: SharedCreds,
        store: Option<P::Store>,
        lock: File,
    ) -> Node<P, Sch> {
        Node {
            config: self.config,
            state,
            creds,
            store,
            provider: Arc::new(self.provider),
            scheduler: self.scheduler,
            loops: self.loops,
            current: watch::Sender::new(None),
            unlock_key: None,
            locked: watch::Sender::new(false),
            unlocks: mpsc::channel(4),
            _lock: lock,
        }
    }
}

impl<P: StoreProvider, Sch> std::fmt::Debug for Node<P, Sch> {
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

/// [`lock_dir`] for a node that is about to be made by `verb` (`init`,
/// `join`): the directory must not hold one already.
fn lock_new_dir(config: &NodeConfig, verb: &str) -> Result<File, Error> {
    let lock = lock_dir(config)?;
    if NodeState::load(&config.data_dir)?.is_some() {
        return Err(Error::Config(format!(
            "{} already holds a node of a cluster: run swarmd without {verb} to resume it, \
             or `swarmd leave` first",
            config.data_dir.display()
        )));
    }
    Ok(lock)
}

/// What a store provider needs to open the store of manager `node`.
fn member(config: &NodeConfig, node: &Id, creds: &SharedCreds) -> Result<StoreMember, Error> {
    Ok(StoreMember {
        id: raft_id(node),
        addr: config.advertised()?,
        dir: config.raft_dir(),
        channels: tls_channels(creds.clone()),
        snapshot_interval: config.snapshot_interval,
        unlock_key: None,
    })
}

fn shared(creds: Option<Credentials>) -> SharedCreds {
    Arc::new(RwLock::new(creds))
}

pub(crate) fn save_creds(config: &NodeConfig, creds: &Credentials) -> Result<(), Error> {
    creds.save(&config.certs_dir()).map_err(|e| {
        Error::Io(format!(
            "cannot write the certificates into {}: {e}",
            config.certs_dir().display()
        ))
    })
}

impl Node {
    /// `swarmd init`: a new cluster with this node as its only manager: a
    /// root CA, join tokens, and this node's certificate. On a raft store,
    /// with the stock scheduler; see [`NodeBuilder`] for others.
    pub async fn init(config: NodeConfig) -> Result<Self, Error> {
        NodeBuilder::new(config).init().await
    }

    /// `swarmd join --token TOKEN MANAGER`: checks the manager's CA
    /// against the token, proves the token and gets a certificate; the
    /// token decides the role.
    pub async fn join(config: NodeConfig, manager: &str, token: &str) -> Result<Self, Error> {
        NodeBuilder::new(config).join(manager, token).await
    }

    /// A node that joined before, from its data directory: the same id,
    /// role and certificate.
    pub fn resume(config: NodeConfig) -> Result<Self, Error> {
        NodeBuilder::new(config).resume()
    }
}

impl<P: StoreProvider, Sch: Scheduler + Clone> NodeBuilder<P, Sch> {
    /// `init`: a new cluster with this node as its only manager.
    pub async fn init(self) -> Result<Node<P, Sch>, Error> {
        let config = &self.config;
        let lock = lock_new_dir(config, "init")?;
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
        let store = self
            .provider
            .open(&member(config, &node_id, &creds)?)
            .await?;
        self.provider.initialize(&store).await?;
        let ca = bootstrap::init_cluster(&store, config.cluster.clone()).await?;
        let key = NodeKey::generate()?;
        let cert = ca.ca.issue(
            &key.csr_pem()?,
            &node_id,
            NodeRole::Manager,
            config.cert_validity,
        )?;
        let own = Credentials::new(ca.ca.cert_pem(), cert, key.key_pem())?;
        save_creds(config, &own)?;
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
        tracing::info!(node_id = %state.node_id, "initialised a new cluster");
        Ok(self.into_node(state, creds, Some(store), lock))
    }

    /// `join`: checks the manager's CA against the token, proves the token
    /// and gets a certificate; the token decides the role.
    pub async fn join(self, manager: &str, token: &str) -> Result<Node<P, Sch>, Error> {
        let config = &self.config;
        let lock = lock_new_dir(config, "join")?;
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
        save_creds(config, &creds)?;
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
        tracing::info!(node_id = %state.node_id, role = ?state.role, "joined the cluster");
        Ok(self.into_node(state, shared(Some(creds)), None, lock))
    }

    /// `resume`: a node that joined before, from its data directory: the
    /// same id, role and certificate.
    pub fn resume(self) -> Result<Node<P, Sch>, Error> {
        let config = &self.config;
        let lock = lock_dir(config)?;
        let state = NodeState::load(&config.data_dir)?.ok_or_else(|| {
            Error::Config(format!(
                "{} holds no node: create a cluster with `swarmd init`, or join one with \
                 `swarmd join --token TOKEN MANAGER`",
                config.data_dir.display()
            ))
        })?;
        Credentials::recover(&config.certs_dir()).map_err(|e| {
            Error::Io(format!(
                "cannot finish replacing the certificates in {}: {e}",
                config.certs_dir().display()
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
        Ok(self.into_node(state, shared(Some(creds)), None, lock))
    }
}

impl<P: StoreProvider, Sch: Scheduler + Clone> Node<P, Sch> {
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

    /// The cluster's unlock key, when autolock is on (a manager that holds
    /// its store: after [`Node::init`]).
    pub async fn unlock_key(&self) -> Result<Option<swarm_core::model::UnlockKey>, Error> {
        use swarm_core::store::Store as _;
        let store = self.store.as_ref().ok_or_else(|| {
            Error::Config("only a running manager can read the unlock key".into())
        })?;
        let state = store.state().await?;
        Ok(state
            .cluster()
            .filter(|c| c.spec.autolock)
            .and_then(|c| c.unlock_key.clone()))
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

    /// The manager's store as it comes and goes while the node runs
    /// (`node promote`/`demote`): `None` while it is a worker.
    #[must_use]
    pub fn stores(&self) -> watch::Receiver<Option<P::Store>> {
        self.current.subscribe()
    }

    /// What unlocks this node's manager while it is locked.
    #[must_use]
    pub fn unlocker(&self) -> Unlocker {
        Unlocker {
            locked: self.locked.subscribe(),
            keys: self.unlocks.0.clone(),
        }
    }

    /// Runs the node in the background with `runtime`, and returns the
    /// app's handle on it: its manager's [`Control`] and store (while it
    /// is a manager), and a clean shutdown.
    pub fn start<R: Runtime>(self, runtime: R) -> NodeHandle<P::Store> {
        let shutdown = CancellationToken::new();
        let current = self.current.subscribe();
        let id = self.state.node_id.clone();
        let unlocker = self.unlocker();
        let task = tokio::spawn(self.run(runtime, shutdown.clone()));
        NodeHandle {
            id,
            current,
            unlocker,
            shutdown,
            task,
        }
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
        let result = self.run_parts(runtime, shutdown).await;
        // However the run ended, the manager's store closes, and the
        // handle no longer offers it.
        self.current.send_replace(None);
        if let Some(store) = self.store.take() {
            store.shutdown().await;
        }
        result
    }

    /// [`Node::run_as_is`] but for closing the store.
    async fn run_parts<R: Runtime>(
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
        if let Some((store, _)) = &manager {
            self.current.send_replace(Some(store.clone()));
        }
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
        let data_addr = self.config.data_addr();
        let mut agent_config = self.config.agent.clone().hostname(self.config.hostname());
        agent_config.data_addr = agent_config.data_addr.or(data_addr);
        let network = data_plane(&self.config, &self.state.node_id, agent_config.data_addr).await;
        let agent = Agent::new(
            self.state.node_id.clone(),
            runtime,
            dispatcher.clone(),
            agent_config,
        )
        .with_network(network);
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
    ) -> impl std::future::Future<Output = NodeRole> + use<P, Sch> {
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
    ) -> Result<(P::Store, watch::Sender<()>), Error> {
        let store = match self.store.clone() {
            Some(s) => s,
            None => {
                let s = self.open_store(stop).await?;
                // Held from here, so that it closes however this ends.
                self.store = Some(s.clone());
                s
            }
        };
        background.spawn(follow_unlock_key(
            self.provider.clone(),
            store.clone(),
            stop.clone(),
        ));
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
            provider: self.provider.clone(),
            store: store.clone(),
            logs: Arc::new(LogBroker::default()),
            leading: leading.clone(),
            local: local.clone(),
            cert_validity: self.config.cert_validity,
            creds: self.creds.clone(),
        };
        let (reload, reloads) = watch::channel(());
        background.spawn(serve(Arc::new(listener), services, reloads, stop.clone()));
        let scheduler = self.scheduler.clone();
        let manager_config = self.config.manager.clone();
        let loops = self.loops.clone();
        let loops_store = store.clone();
        let routes = swarm_net::host_routes();
        background.spawn(run_while_leading(leading, stop.clone(), move |t| {
            Manager::new(
                loops_store.clone(),
                scheduler.clone(),
                manager_config.clone(),
            )
            .with_dispatcher(local.clone())
            .with_loop(swarm_net::network_allocator(routes.clone()))
            .with_loops(loops.clone())
            .run(t)
        }));
        if !self.state.raft_member {
            self.join_raft(&store, stop).await?;
        }
        if !stop.is_cancelled() {
            ensure_client_certs(&self.config, &store).await?;
        }
        Ok((store, reload))
    }

    /// Opens the manager's store; while it is locked (autolock), serves
    /// only `swarm unlock` on the manager's port, trying each key given
    /// until one opens it.
    async fn open_store(&mut self, stop: &CancellationToken) -> Result<P::Store, Error> {
        let mut m = member(&self.config, &self.state.node_id, &self.creds)?;
        m.unlock_key = self.unlock_key.clone();
        let why = match self.provider.open(&m).await {
            Ok(s) => return Ok(s),
            Err(Error::Locked(why)) => why,
            Err(e) => return Err(e),
        };
        tracing::warn!("{why}");
        self.locked.send_replace(true);
        let opened = self.wait_for_unlock(&mut m, why, stop).await;
        self.locked.send_replace(false);
        opened
    }

    /// Serves only `swarm unlock` on the manager's port, and tries each
    /// key given there or through the [`Unlocker`] until one opens the
    /// store.
    async fn wait_for_unlock(
        &mut self,
        m: &mut StoreMember,
        why: String,
        stop: &CancellationToken,
    ) -> Result<P::Store, Error> {
        let creds = server_creds(&self.creds)?;
        let listener = tokio::net::TcpListener::bind(self.config.listen_addr)
            .await
            .map_err(|e| Error::Io(format!("cannot listen on {}: {e}", self.config.listen_addr)))?;
        // Keys left from an earlier lock (sent as another unlocked it) are
        // answered, not tried against this one.
        while let Ok((_, answer)) = self.unlocks.1.try_recv() {
            let _ = answer.send(Err(
                "the manager was not locked when the key came: try again".into(),
            ));
        }
        let keys = self.unlocks.0.clone();
        let served = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .tls_config(creds.server_tls())
            .map_err(|e| Error::Config(format!("TLS settings: {e}")))?
            .add_service(tonic::service::interceptor::InterceptedService::new(
                swarm_api::LockedControl::server(keys),
                swarm_api::tls::RequireRole::new(
                    "control",
                    &[
                        swarm_api::ca::PeerRole::Manager,
                        swarm_api::ca::PeerRole::Client,
                    ],
                ),
            ))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                served.clone().cancelled_owned(),
            );
        let server = tokio::spawn(server);
        let opened = loop {
            let (key, answer) = tokio::select! {
                () = stop.cancelled() => break Err(Error::Locked(why.clone())),
                t = self.unlocks.1.recv() => match t {
                    Some(t) => t,
                    None => break Err(Error::Locked(why.clone())),
                },
            };
            m.unlock_key = Some(key.clone());
            match self.provider.open(m).await {
                Ok(s) => {
                    let _ = answer.send(Ok(()));
                    self.unlock_key = Some(key);
                    tracing::info!("unlocked");
                    break Ok(s);
                }
                Err(Error::Locked(msg)) => {
                    let _ = answer.send(Err(msg));
                }
                Err(e) => {
                    let _ = answer.send(Err(e.to_string()));
                    break Err(e);
                }
            }
        };
        // Give the answer a moment to leave, then free the port.
        tokio::time::sleep(Duration::from_millis(100)).await;
        served.cancel();
        let _ = server.await;
        opened
    }

    /// Asks the leader to make this manager a voter, trying each known
    /// manager until the leader answers, or until the group (as its
    /// current leader, reached through this member's store, sees it)
    /// holds it as a voter: the add committed, but its answer was lost
    /// when the leader that made it went away. A node stopped meanwhile
    /// tries again when it resumes.
    async fn join_raft(&mut self, store: &P::Store, stop: &CancellationToken) -> Result<(), Error> {
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
            let voter = store
                .membership()
                .await
                .is_ok_and(|m| m.members.iter().any(|x| x.addr == me && x.voter));
            if voter {
                self.state.raft_member = true;
                self.state.save(&self.config.data_dir)?;
                tracing::info!("this manager is a raft voter (the group says so)");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if stop.is_cancelled() {
            return Ok(());
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
        self.leave_with(false).await
    }

    /// [`Node::leave`]; with `force`, a manager that cannot leave the raft
    /// group (the last one, or one without a quorum) forgets the cluster
    /// anyway, as `docker swarm leave --force` does: the last manager's
    /// cluster is gone then.
    pub async fn leave_with(self, force: bool) -> Result<(), Error> {
        if self.state.role == NodeRole::Manager && self.state.raft_member {
            match self.leave_raft(false).await {
                Ok(()) => {}
                Err(e) if force => {
                    tracing::warn!(error = %e, "forced to leave without leaving the raft group");
                }
                Err(e) => return Err(e),
            }
        }
        for dir in [
            self.config.raft_dir(),
            self.config.certs_dir(),
            self.config.client_certs_dir(),
        ] {
            let _ = std::fs::remove_dir_all(dir);
        }
        // The kept settings were this membership's.
        let _ = std::fs::remove_file(self.config.data_dir.join("settings.json"));
        std::fs::remove_file(self.config.data_dir.join("node.json"))
            .map_err(|e| Error::Io(format!("cannot remove the node's identity: {e}")))?;
        Ok(())
    }
}

/// An app's handle on a node started with [`Node::start`].
#[derive(Debug)]
pub struct NodeHandle<S> {
    id: Id,
    current: watch::Receiver<Option<S>>,
    unlocker: Unlocker,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl<S: ReplicatedStore> NodeHandle<S> {
    /// The node's id.
    #[must_use]
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// The manager's store, while this node runs as a manager.
    #[must_use]
    pub fn store(&self) -> Option<S> {
        self.current.borrow().clone()
    }

    /// The manager's store as it comes and goes (`node promote`/`demote`):
    /// `None` while the node is a worker.
    #[must_use]
    pub fn stores(&self) -> watch::Receiver<Option<S>> {
        self.current.clone()
    }

    /// The manager's control API (what `swarmctl` reaches over gRPC),
    /// once its manager part runs and serves on its port (other nodes can
    /// join from then on): waits up to 30 s for it. A worker has none.
    pub async fn control(&self) -> Result<Control<S>, Error> {
        let mut current = self.current.clone();
        let store =
            tokio::time::timeout(Duration::from_secs(30), current.wait_for(Option::is_some))
                .await
                .map_err(|_| {
                    Error::Config(
                        "this node runs no manager (a worker, or its manager part did not start): \
                     reach the cluster through a manager's node"
                            .into(),
                    )
                })?
                .map_err(|_| Error::Agent("the node stopped".into()))?
                .clone()
                .expect("waited for a store");
        Ok(Control::new(store).with_routes(swarm_net::host_routes()))
    }

    /// Whether the manager waits for the cluster's unlock key (autolock,
    /// after a restart), and a way to give it.
    #[must_use]
    pub fn unlocker(&self) -> &Unlocker {
        &self.unlocker
    }

    /// Whether the node stopped (with an error, or when told to).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the node: its manager part and its agent (tasks go on, as
    /// they do when `swarmd` stops) and returns how it ended.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the node stops by itself (an error, or removal from the
    /// cluster).
    pub async fn wait(self) -> Result<(), Error> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(Error::Agent(format!("the node panicked: {e}"))),
        }
    }
}

/// The node's network driver: the Linux data plane where it may make
/// namespaces and interfaces, else the host's network, said plainly.
async fn data_plane(
    config: &NodeConfig,
    node_id: &Id,
    data_addr: Option<std::net::IpAddr>,
) -> Arc<dyn swarm_core::network::NetworkDriver> {
    use swarm_core::network::HostNetwork;
    if config.data_plane == crate::DataPlane::Host {
        return Arc::new(HostNetwork);
    }
    let Some(addr) = data_addr else {
        tracing::warn!(
            "this node has no address for overlay traffic (no default route, no --advertise-addr): tasks run on the host's network"
        );
        return Arc::new(HostNetwork);
    };
    let linux = swarm_net::LinuxConfig::new(node_id.clone(), addr, config.data_dir.join("net"));
    match swarm_net::LinuxDriver::new(linux).await {
        Ok(d) => {
            tracing::info!(mtu = d.mtu(), %addr, "overlay data plane ready");
            Arc::new(d)
        }
        Err(e) => {
            tracing::warn!(error = %e, "tasks run on the host's network: overlays, service DNS, VIPs and the routing mesh do not reach them");
            Arc::new(HostNetwork)
        }
    }
}

/// Keeps the member's data at rest sealed with the cluster's unlock key
/// while autolock is on, and plain while it is off: looks every second,
/// and seals again when the key changes (a rotation).
async fn follow_unlock_key<P: StoreProvider>(
    provider: Arc<P>,
    store: P::Store,
    stop: CancellationToken,
) {
    use swarm_core::store::Store as _;
    let mut applied: Option<Option<swarm_core::model::UnlockKey>> = None;
    let mut commits = None;
    loop {
        if commits.is_none() {
            commits = store.watch(None).await.ok();
        }
        if let Ok(state) = store.state().await
            && let Some(cluster) = state.cluster()
        {
            let want = if cluster.spec.autolock {
                cluster.unlock_key.clone()
            } else {
                None
            };
            if applied.as_ref() != Some(&want) {
                match provider.set_unlock_key(&store, want.as_ref()) {
                    Ok(()) => {
                        if applied.is_some() {
                            tracing::info!(autolock = want.is_some(), "sealed the data key anew");
                        }
                        applied = Some(want);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot seal the data key with the unlock key")
                    }
                }
            }
        }
        // Sealed as soon as the cluster object changes, so that a manager
        // restarted right after `swarm update --autolock=true` is locked;
        // a slow look every few seconds covers a watch that ended.
        tokio::select! {
            () = stop.cancelled() => return,
            () = cluster_changed(&mut commits) => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Waits for a commit that writes the cluster object; forgets a watch
/// that ended (it is made again at the next call).
async fn cluster_changed(commits: &mut Option<swarm_core::store::WatchStream>) {
    use futures::StreamExt as _;
    let Some(stream) = commits.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match stream.next().await {
            Some(Ok(c)) if c.events.iter().any(|e| e.object().kind() == Kind::Cluster) => return,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                *commits = None;
                return;
            }
        }
    }
}

/// Unlocks a node's autolocked manager, as `swarm unlock` does over the
/// control API: for an app, or the Engine API's `docker swarm unlock`.
#[derive(Debug, Clone)]
pub struct Unlocker {
    locked: watch::Receiver<bool>,
    keys: mpsc::Sender<swarm_api::UnlockAttempt>,
}

impl Unlocker {
    /// Whether the manager waits for the cluster's unlock key.
    #[must_use]
    pub fn is_locked(&self) -> bool {
        *self.locked.borrow()
    }

    /// Gives the locked manager `key` (`SWMKEY-1-...`); answers once its
    /// store opened with it, or why not (a wrong key leaves it locked).
    ///
    /// # Errors
    /// [`Error::Locked`] if the key is malformed or does not open the
    /// manager's data, [`Error::Config`] if the manager is not locked.
    pub async fn unlock(&self, key: &str) -> Result<(), Error> {
        if !self.is_locked() {
            return Err(Error::Config(
                "this node is not locked: only a restarted manager of an autolocked swarm waits for its unlock key"
                    .into(),
            ));
        }
        let key: swarm_core::model::UnlockKey = key.trim().parse().map_err(|e| {
            Error::Locked(format!(
                "{e}: give the key `swarm unlock-key` printed (SWMKEY-1-...)"
            ))
        })?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let gone = || Error::Agent("the node stopped".into());
        // A key sent just as the manager opened by another unlock waits
        // for a lock that does not come: the caller is told.
        let asked = async {
            self.keys.send((key, tx)).await.map_err(|_| gone())?;
            rx.await.map_err(|_| gone())
        };
        match tokio::time::timeout(Duration::from_secs(30), asked).await {
            Ok(answer) => answer?.map_err(Error::Locked),
            Err(_) => Err(Error::Config(
                "the manager did not take the key within 30 s: it is not locked any more".into(),
            )),
        }
    }
}
