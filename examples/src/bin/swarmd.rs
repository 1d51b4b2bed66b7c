//! `swarmd`: the swarm node daemon. `init` creates a cluster, `join`
//! joins one, no subcommand resumes the node in the data directory (or,
//! in an empty one, serves the Engine API in no swarm, for `docker swarm
//! init|join`), and `leave` takes it out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use swarm_core::model::{ClusterSpec, GenericResource, NodeRole};
use swarm_engine::ApiError;
use swarm_engine::wire::{InitRequest, JoinRequest};
use swarm_examples::engine::{Daemon, Lifecycle, LogsFrom, Member};
use swarm_node::{DEFAULT_PORT, Node, NodeBuilder, NodeConfig, NodeSettings};
use swarm_runtime_docker::{DockerRuntime, DockerRuntimeConfig};
use swarm_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use swarm_sched::{SchedulerConfig, Strategy, SwarmScheduler};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "swarmd",
    about = "The swarm node daemon: create a cluster, join one, or resume this node",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    node: NodeArgs,
    /// How log lines are written: text, or json (one object per line).
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: swarm_examples::log_format::LogFormat,
    /// The least severe lines logged: debug, info, warn, error or fatal
    /// (default: info, or what RUST_LOG says).
    #[arg(short = 'l', long, value_enum, global = true)]
    log_level: Option<swarm_examples::log_format::LogLevel>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new cluster with this node as its first manager.
    Init(InitArgs),
    /// Join a cluster as a worker or a manager (the token decides).
    Join {
        /// The join token (`swarmctl swarm join-token worker|manager`).
        #[arg(long)]
        token: String,
        /// A manager's address, HOST:PORT.
        manager: String,
    },
    /// Leave the cluster and forget it (the daemon must be stopped).
    Leave,
}

/// `init`'s cluster settings, as `docker swarm init` takes them.
#[derive(Args, Clone)]
struct InitArgs {
    /// Address pools the networks' subnets are cut from, in CIDR form
    /// (repeatable; default 10.0.0.0/8).
    #[arg(long = "default-addr-pool")]
    default_addr_pool: Vec<String>,
    /// The prefix length of the subnets cut from the pools.
    #[arg(long = "default-addr-pool-mask-length", default_value_t = 24)]
    default_addr_pool_mask_length: u8,
    /// The UDP port of the overlay (VXLAN) traffic between nodes.
    #[arg(long = "data-path-port", default_value_t = 4789)]
    data_path_port: u16,
    /// Keep managers' data keys wrapped by an unlock key: a restarted
    /// manager serves nothing until `swarmctl swarm unlock`.
    #[arg(long)]
    autolock: bool,
}

impl InitArgs {
    /// The cluster settings, checked.
    fn cluster(&self) -> anyhow::Result<ClusterSpec> {
        let mut spec = ClusterSpec::default();
        if !self.default_addr_pool.is_empty() {
            spec.default_addr_pool = self
                .default_addr_pool
                .iter()
                .map(|p| {
                    p.parse()
                        .map_err(|e| anyhow::anyhow!("--default-addr-pool: {e}"))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        spec.subnet_size = self.default_addr_pool_mask_length;
        spec.autolock = self.autolock;
        let pools = swarm_net::PoolConfig {
            pools: spec
                .default_addr_pool
                .iter()
                .map(|p| (*p, spec.subnet_size))
                .collect(),
        };
        pools
            .validate()
            .map_err(|e| anyhow::anyhow!("--default-addr-pool-mask-length: {e}"))?;
        if !(1024..=49151).contains(&self.data_path_port) {
            anyhow::bail!(
                "--data-path-port {}: use a port from 1024 to 49151 (4789 is the VXLAN standard)",
                self.data_path_port
            );
        }
        spec.data_path_port = self.data_path_port;
        Ok(spec)
    }
}

#[derive(Args, Clone)]
struct NodeArgs {
    /// Where the node keeps its identity, certificates and raft log.
    #[arg(
        long,
        env = "SWARM_DATA_DIR",
        default_value = "/var/lib/swarm",
        global = true
    )]
    data_dir: PathBuf,
    /// Where a manager listens: ADDR[:PORT].
    #[arg(long, global = true)]
    listen_addr: Option<String>,
    /// The address other nodes reach this manager at: ADDR[:PORT].
    #[arg(long, global = true)]
    advertise_addr: Option<String>,
    /// The node's name in `node ls` (default: the machine's hostname).
    #[arg(long, global = true)]
    hostname: Option<String>,
    /// How tasks run: as processes of this machine (the default), or as
    /// containers of the Docker engine (DOCKER_HOST, else
    /// /var/run/docker.sock).
    #[arg(long, value_enum, global = true)]
    runtime: Option<RuntimeKind>,
    /// How a manager ranks the nodes a task may go to: spread (Docker's:
    /// the fewest tasks first) or binpack (Nomad's: the most reserved node
    /// that fits first).
    #[arg(long, global = true)]
    scheduler_strategy: Option<Strategy>,
    /// How tasks get their networks: linux (a namespace per task, VXLAN
    /// overlays, DNS, VIPs and the routing mesh; needs root) or host (the
    /// host's network). One linux node per host.
    #[arg(long, global = true)]
    data_plane: Option<swarm_node::DataPlane>,
    /// How often workers send heartbeats, e.g. 500ms or 2s.
    #[arg(long, value_parser = parse_duration, global = true)]
    heartbeat_period: Option<Duration>,
    /// Raft log entries between snapshots of a manager's store (Docker's
    /// `--snapshot-interval`, default 10000).
    #[arg(long, global = true)]
    snapshot_interval: Option<u64>,
    /// How long node certificates are valid, e.g. 2160h (90 days).
    #[arg(long, value_parser = parse_duration, global = true)]
    cert_expiry: Option<Duration>,
    /// The unix socket of the Docker Engine API, for the stock `docker`
    /// CLI (`docker -H unix://PATH info`); default: swarmd.sock in the
    /// data directory. `none` serves none.
    #[arg(long, global = true)]
    engine_socket: Option<PathBuf>,
    /// Also serve the Docker Engine API on TCP, [tcp://]HOST[:PORT]. On a
    /// loopback address it is plain HTTP (default port 2375); on any other
    /// it is mutual TLS from the cluster CA (default port 2376), served
    /// while this daemon is a manager: `DOCKER_HOST=tcp://HOST:2376
    /// DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=<data-dir>/client docker info`.
    #[arg(long, global = true)]
    engine_addr: Option<String>,
    /// Also serve Prometheus metrics at /metrics, in plain HTTP, on this
    /// IP:PORT (dockerd's flag; e.g. 127.0.0.1:9323). Every Engine API
    /// listener serves them too.
    #[arg(long, global = true)]
    metrics_addr: Option<String>,
    /// A resource beyond CPU and memory that this node offers tasks, as
    /// dockerd's flag: KIND=NAME for one named resource
    /// (`gpu=GPU-9f2c`), KIND=N for an amount (`ssd=3`). Repeat it for
    /// each; services reserve them with `--generic-resource gpu=1`, and
    /// each task is told its own in DOCKER_RESOURCE_GPU.
    #[arg(long = "node-generic-resource", value_parser = GenericResource::parse, global = true)]
    node_generic_resources: Vec<GenericResource>,
}

/// The task runtimes `swarmd` can drive.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    /// Plain processes (swarm-runtime-process); `image` is the program.
    Process,
    /// Docker containers (swarm-runtime-docker).
    Docker,
}

/// `500ms`, `2s`, `5m`, `3h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 500ms, 2s, 5m or 3h"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}: use ms, s, m or h"
            ));
        }
    })
}

fn with_port(addr: &str) -> String {
    if addr.contains(':') {
        addr.to_owned()
    } else {
        format!("{addr}:{DEFAULT_PORT}")
    }
}

impl RuntimeKind {
    fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Docker => "docker",
        }
    }
}

/// What a node runs with: its configuration, its scheduler, and the
/// runtime for its tasks.
struct Setup {
    config: NodeConfig,
    runtime: RuntimeKind,
    scheduler: SwarmScheduler,
    /// What to keep in the data directory once the node is made.
    settings: NodeSettings,
    /// Where the Engine API listens, if anywhere, and whether the flag
    /// named it (a default that cannot be bound is only warned of).
    engine_socket: Option<(PathBuf, bool)>,
}

impl NodeArgs {
    fn data_dir(&self) -> anyhow::Result<PathBuf> {
        std::path::absolute(&self.data_dir)
            .map_err(|e| anyhow::anyhow!("--data-dir {}: {e}", self.data_dir.display()))
    }

    /// The settings these flags give.
    fn given(&self) -> anyhow::Result<NodeSettings> {
        let listen_addr = self
            .listen_addr
            .as_deref()
            .map(|l| {
                with_port(l)
                    .parse::<SocketAddr>()
                    .map_err(|e| anyhow::anyhow!("--listen-addr {l:?} is not IP[:PORT]: {e}"))
            })
            .transpose()?;
        swarm_core::model::check_node_generic(&self.node_generic_resources)
            .map_err(|e| anyhow::anyhow!("--node-generic-resource: {e}"))?;
        Ok(NodeSettings {
            hostname: self.hostname.clone(),
            listen_addr,
            advertise_addr: self.advertise_addr.clone(),
            heartbeat_period_ms: self
                .heartbeat_period
                .map(|h| u64::try_from(h.as_millis()).unwrap_or(u64::MAX)),
            runtime: self.runtime.map(|r| r.name().to_owned()),
            scheduler_strategy: self.scheduler_strategy.map(|s| s.to_string()),
            data_plane: self.data_plane.map(|d| d.to_string()),
            snapshot_interval: self.snapshot_interval,
            generic_resources: (!self.node_generic_resources.is_empty())
                .then(|| self.node_generic_resources.clone()),
        })
    }

    /// `init` and `join` take the flags alone; a resumed node takes the
    /// settings it kept, with the flags given now over them.
    fn setup(&self, resume: bool) -> anyhow::Result<Setup> {
        let dir = self.data_dir()?;
        let given = self.given()?;
        let settings = if resume {
            NodeSettings::kept(&dir)?.overlaid(&given)
        } else {
            given
        };
        let runtime = match settings.runtime.as_deref() {
            None | Some("process") => RuntimeKind::Process,
            Some("docker") => RuntimeKind::Docker,
            Some(other) => anyhow::bail!(
                "{} names the runtime {other:?}, which this swarmd does not know: pass --runtime process or --runtime docker",
                dir.join("settings.json").display()
            ),
        };
        let strategy = match settings.scheduler_strategy.as_deref() {
            None => Strategy::default(),
            Some(s) => s
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("settings.json").display()))?,
        };
        let scheduler = SwarmScheduler::new(SchedulerConfig::default().strategy(strategy))?;
        let mut config = NodeConfig::new(dir);
        // The daemon of a host owns its network: the Linux data plane
        // unless told otherwise.
        config.data_plane = swarm_node::DataPlane::Linux;
        settings.apply(&mut config);
        if let Some(v) = self.cert_expiry {
            config.cert_validity = v;
            config.renew_check = (v / 20).clamp(Duration::from_secs(1), Duration::from_secs(60));
        }
        let engine_socket = match &self.engine_socket {
            Some(p) if p.as_os_str() == "none" => None,
            Some(p) => Some((std::path::absolute(p)?, true)),
            None => Some((config.data_dir.join("swarmd.sock"), false)),
        };
        Ok(Setup {
            config,
            runtime,
            scheduler,
            settings,
            engine_socket,
        })
    }
}

impl Setup {
    /// A builder of the node, with its scheduler.
    fn builder(&self) -> NodeBuilder {
        NodeBuilder::new(self.config.clone()).scheduler(self.scheduler.clone())
    }

    /// Fails early, before a node is made, when the runtime cannot work.
    async fn check_runtime(&self) -> anyhow::Result<()> {
        if self.runtime == RuntimeKind::Docker {
            DockerRuntime::connect(DockerRuntimeConfig::default().with_ingress(false)).await?;
        }
        Ok(())
    }
}

/// The manager's store of swarmd's nodes.
type NodeStore = <swarm_node::RaftStores as swarm_node::StoreProvider>::Store;

/// Keeps the settings `node` was made with, and starts it with its runtime.
async fn start(node: Node, setup: &Setup) -> anyhow::Result<Member<NodeStore>> {
    swarm_examples::log_format::set_node_id(Some(node.id().as_str()));
    setup.settings.save(&setup.config.data_dir)?;
    let config = node.config().clone();
    let manager = node.role() == NodeRole::Manager;
    let logs = LogsFrom {
        client_dir: config.client_certs_dir(),
        manager: config.advertised().unwrap_or_default(),
    };
    let addr = config
        .advertised()
        .ok()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let mut images = None;
    let handle = match setup.runtime {
        RuntimeKind::Process => node.start(ProcessRuntime::new(
            ProcessRuntimeConfig::default()
                .with_hostname(config.hostname())
                .with_state_dir(config.data_dir.join("tasks")),
        )?),
        RuntimeKind::Docker => {
            // Scoped to this node, so that nodes sharing an engine keep
            // to their own containers.
            let runtime = DockerRuntime::connect(
                DockerRuntimeConfig::default()
                    .with_node_id(node.id().clone())
                    .with_hostname(config.hostname()),
            )
            .await?;
            images = Some(runtime.clone());
            node.start(runtime)
        }
    };
    Ok(Member {
        handle,
        addr,
        manager,
        logs,
        images,
    })
}

/// How swarmd's Engine API makes and forgets its node: with the flags the
/// daemon was started with, under what the request asks.
struct Swarmd {
    args: NodeArgs,
}

fn refused(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("{e:#}"))
}

fn failed(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{e:#}"))
}

impl Swarmd {
    /// The daemon's flags with the request's addresses over them. An
    /// advertised address without a port takes the listening one, as
    /// Docker's does.
    fn args_for(
        &self,
        listen: &str,
        advertise: &str,
        availability: &str,
    ) -> Result<NodeArgs, ApiError> {
        if !matches!(availability, "" | "active") {
            return Err(ApiError::bad_request(format!(
                "Availability: a node joins active here: leave out --availability {availability}, then `docker node update --availability {availability}`"
            )));
        }
        let mut args = self.args.clone();
        if !listen.is_empty() {
            args.listen_addr = Some(listen.to_owned());
        }
        if !advertise.is_empty() {
            let port = args
                .listen_addr
                .as_deref()
                .map(with_port)
                .and_then(|l| l.rsplit_once(':').map(|(_, p)| p.to_owned()))
                .unwrap_or_else(|| DEFAULT_PORT.to_string());
            args.advertise_addr = Some(if advertise.contains(':') {
                advertise.to_owned()
            } else {
                format!("{advertise}:{port}")
            });
        }
        Ok(args)
    }
}

#[async_trait::async_trait]
impl Lifecycle<NodeStore> for Swarmd {
    async fn init(&self, r: InitRequest) -> Result<Member<NodeStore>, ApiError> {
        if r.force_new_cluster {
            return Err(ApiError::bad_request(
                "ForceNewCluster: recovering a swarm from one manager's data is not supported yet",
            ));
        }
        if !r.data_path_addr.is_empty() {
            return Err(ApiError::bad_request(
                "DataPathAddr: the overlay traffic uses the advertised address here: leave out --data-path-addr",
            ));
        }
        let args = self.args_for(&r.listen_addr, &r.advertise_addr, &r.availability)?;
        let mut setup = args.setup(false).map_err(refused)?;
        let init = InitArgs {
            default_addr_pool: r.default_addr_pool,
            default_addr_pool_mask_length: match r.subnet_size {
                0 => 24,
                n => u8::try_from(n).map_err(|_| {
                    ApiError::bad_request(format!("SubnetSize: {n} is not a prefix length"))
                })?,
            },
            data_path_port: match r.data_path_port {
                0 => 4789,
                n => u16::try_from(n).map_err(|_| {
                    ApiError::bad_request(format!("DataPathPort: {n} is not a port"))
                })?,
            },
            autolock: r.auto_lock_managers || r.spec.encryption_config.auto_lock_managers,
        };
        setup.config.cluster = init.cluster().map_err(refused)?;
        if let Some(limit) = r.spec.orchestration.task_history_retention_limit {
            setup.config.cluster.task_history_limit = u32::try_from(limit).map_err(|_| {
                ApiError::bad_request(format!(
                    "Spec.Orchestration.TaskHistoryRetentionLimit: {limit} is not a count"
                ))
            })?;
        }
        setup.check_runtime().await.map_err(refused)?;
        let node = setup.builder().init().await.map_err(failed)?;
        tracing::info!(node_id = %node.id(), "swarm initialized through the Engine API");
        start(node, &setup).await.map_err(failed)
    }

    async fn join(&self, r: JoinRequest) -> Result<Member<NodeStore>, ApiError> {
        if !r.data_path_addr.is_empty() {
            return Err(ApiError::bad_request(
                "DataPathAddr: the overlay traffic uses the advertised address here: leave out --data-path-addr",
            ));
        }
        let args = self.args_for(&r.listen_addr, &r.advertise_addr, &r.availability)?;
        let setup = args.setup(false).map_err(refused)?;
        setup.check_runtime().await.map_err(refused)?;
        let mut last = None;
        for manager in &r.remote_addrs {
            match setup
                .builder()
                .join(&with_port(manager), &r.join_token)
                .await
            {
                Ok(node) => {
                    tracing::info!(node_id = %node.id(), "joined a swarm through the Engine API");
                    return start(node, &setup).await.map_err(failed);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(|| refused("no manager address"), refused))
    }

    async fn forget(&self, force: bool) -> Result<(), ApiError> {
        let setup = self.args.setup(true).map_err(failed)?;
        let node = Node::resume(setup.config).map_err(failed)?;
        node.leave_with(force).await.map_err(failed)?;
        swarm_examples::log_format::set_node_id(None);
        Ok(())
    }
}

async fn main_inner(cli: Cli) -> anyhow::Result<()> {
    let args = cli.node;
    let member = match cli.command {
        None => {
            let setup = args.setup(true)?;
            if setup.config.data_dir.join("node.json").exists() {
                let node = setup.builder().resume()?;
                swarm_examples::log_format::note(
                    &format!(
                        "swarmd: node {} resumes as a {}",
                        node.id(),
                        role_name(node.role())
                    ),
                    false,
                );
                Some(start(node, &setup).await?)
            } else {
                None
            }
        }
        Some(Command::Init(init)) => {
            let mut setup = args.setup(false)?;
            setup.config.cluster = init.cluster()?;
            setup.check_runtime().await?;
            let addr = setup.config.advertised()?;
            let node = setup.builder().init().await?;
            let worker = node.join_token(NodeRole::Worker).await?;
            let manager = node.join_token(NodeRole::Manager).await?;
            say(&format!(
                "Swarm initialized: current node ({}) is now a manager.\n\n\
                 To add a worker to this swarm, run the following command:\n\n    \
                 swarmd join --token {worker} {addr}\n\n\
                 To add a manager to this swarm, run the following command:\n\n    \
                 swarmd join --token {manager} {addr}\n",
                node.id()
            ));
            if let Some(key) = node.unlock_key().await? {
                say(&format!("{}\n", swarm_examples::unlock_key_text(&key)));
            }
            Some(start(node, &setup).await?)
        }
        Some(Command::Join { token, manager }) => {
            let setup = args.setup(false)?;
            setup.check_runtime().await?;
            let node = setup.builder().join(&with_port(&manager), &token).await?;
            say(&format!(
                "This node joined a swarm as a {}.",
                role_name(node.role())
            ));
            Some(start(node, &setup).await?)
        }
        Some(Command::Leave) => {
            let node = Node::resume(args.setup(true)?.config)?;
            node.leave().await?;
            say("Node left the swarm.");
            return Ok(());
        }
    };
    let in_swarm = member.is_some();
    let setup = args.setup(false)?;
    let socket = setup.engine_socket;
    let engine_certs = setup.config.data_dir.join("engine-tls");
    let engine_addr = args.engine_addr.clone();
    let metrics_addr = args.metrics_addr.clone();
    let daemon = Arc::new(Daemon::new(Box::new(Swarmd { args }), member));
    let api = CancellationToken::new();
    let _api = api.clone().drop_guard();
    match &socket {
        Some((path, named)) => match serve_engine(daemon.clone(), path, api.clone()) {
            Ok(()) => {}
            Err(e) if !named && in_swarm => tracing::warn!(error = %e, "no Docker Engine API"),
            Err(e) => return Err(e),
        },
        None if !in_swarm && !engine_addr.as_deref().is_some_and(loopback_addr) => anyhow::bail!(
            "this data directory holds no node, and --engine-socket none serves no API to make one: \
             run `swarmd init` or `swarmd join`, or serve the API"
        ),
        None => {}
    }
    if !in_swarm && let Some((path, _)) = &socket {
        swarm_examples::log_format::note(
            &format!(
                "swarmd: in no swarm yet: docker -H unix://{} swarm init (or join)",
                path.display()
            ),
            false,
        );
    }
    if let Some(addr) = &engine_addr {
        serve_engine_tcp(daemon.clone(), addr, engine_certs, api.clone()).await?;
    }
    if let Some(addr) = &metrics_addr {
        serve_metrics(&daemon, addr, api.clone()).await?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => match daemon.ended().await {
                Some(Ok(())) => tracing::info!("the node stopped: this daemon is in no swarm now"),
                Some(Err(e)) => return Err(e.into()),
                None => {}
            },
        }
    }
    tracing::info!("stopping");
    daemon.shutdown().await?;
    Ok(())
}

/// Serves the Docker Engine API of `daemon` on the unix socket `path`
/// (owner and group only, as docker.sock), until `stop`.
fn serve_engine(
    daemon: Arc<Daemon<NodeStore>>,
    path: &std::path::Path,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    // A bare daemon's data directory may not be made yet.
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("--engine-socket {}: {e}", path.display()))?;
    }
    // A socket left by an earlier run.
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("--engine-socket {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let shown = path.display().to_string();
    tokio::spawn(async move {
        if let Err(e) = swarm_engine::serve_app(listener, app(&daemon), stop).await {
            tracing::error!(error = %e, socket = %shown, "the Engine API stopped");
        }
    });
    tracing::info!(socket = %path.display(), "serving the Docker Engine API");
    Ok(())
}

/// `/metrics`, served beside the Engine API on each of its listeners and
/// alone on `--metrics-addr`.
fn metrics(daemon: &Arc<Daemon<NodeStore>>) -> axum::Router {
    match swarm_metrics::Exporter::install() {
        Ok(exporter) => swarm_metrics::router(exporter, daemon.clone()),
        Err(e) => {
            tracing::warn!(error = %e, "no /metrics");
            axum::Router::new()
        }
    }
}

/// The Engine API of `daemon` with `/metrics` and the visualizer at
/// `/ui`, read-only (the unix socket and loopback TCP, whose clients may
/// use the whole Engine API anyway).
fn app(daemon: &Arc<Daemon<NodeStore>>) -> axum::Router {
    // Only for a page that names this machine: one reached through a name
    // rebound to loopback (DNS rebinding) sees no specs.
    let local = |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
        let authority = request
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok()?.parse::<axum::http::uri::Authority>().ok());
        let name = authority.as_ref().map_or("", |a| a.host());
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let loopback = name == "localhost"
            || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            // The unix socket: no name, or the one the docker CLI sends.
            || name.is_empty()
            || name == "docker"
            || name == "api.moby.localhost";
        if loopback {
            request.extensions_mut().insert(swarm_ui::Access::ReadOnly);
        }
        next.run(request).await
    };
    let ui = swarm_ui::router(daemon.clone()).layer(axum::middleware::from_fn(local));
    swarm_engine::router_with(daemon.clone(), metrics(daemon).merge(ui))
}

/// [`app`] for the TLS listener: the visualizer is read-write for a
/// client that showed a cluster client certificate (a browser that has
/// it imported), and public (no specs, no changes) for one that showed
/// none.
fn tls_app(daemon: &Arc<Daemon<NodeStore>>) -> axum::Router {
    use axum::extract::{ConnectInfo, Request};
    use swarm_engine::tls::TlsPeer;
    let grant = |ConnectInfo(peer): ConnectInfo<TlsPeer>,
                 mut request: Request,
                 next: axum::middleware::Next| async move {
        if peer.certified() {
            request.extensions_mut().insert(swarm_ui::Access::ReadWrite);
        }
        next.run(request).await
    };
    let ui = swarm_ui::router(daemon.clone()).layer(axum::middleware::from_fn(grant));
    swarm_engine::router_with(daemon.clone(), metrics(daemon).merge(ui))
}

/// Serves `/metrics` in plain HTTP on `flag` (dockerd's `--metrics-addr`).
async fn serve_metrics(
    daemon: &Arc<Daemon<NodeStore>>,
    flag: &str,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let addr: SocketAddr = flag.parse().map_err(|_| {
        anyhow::anyhow!("--metrics-addr {flag:?} is not IP:PORT: give e.g. 127.0.0.1:9323")
    })?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-addr {flag}: {e}"))?;
    let bound = tcp.local_addr()?;
    let served = metrics(daemon);
    tokio::spawn(async move {
        if let Err(e) = swarm_engine::serve_app(tcp, served, stop).await {
            tracing::error!(error = %e, %bound, "the metrics listener stopped");
        }
    });
    tracing::info!(%bound, "serving Prometheus metrics at /metrics");
    Ok(())
}

/// Whether `--engine-addr` names a loopback address (served without TLS,
/// so before any swarm).
fn loopback_addr(flag: &str) -> bool {
    engine_tcp_addr(flag).is_ok_and(|a| a.ip().is_loopback())
}

/// `--engine-addr`: `[tcp://]HOST[:PORT]`, with Docker's default port for
/// plain HTTP (loopback) or TLS.
fn engine_tcp_addr(flag: &str) -> anyhow::Result<SocketAddr> {
    let raw = flag.strip_prefix("tcp://").unwrap_or(flag);
    if let Ok(a) = raw.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: std::net::IpAddr = raw.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| {
        anyhow::anyhow!(
            "--engine-addr {flag:?} is not [tcp://]IP[:PORT]: give an address of this machine, e.g. 0.0.0.0:2376 or 127.0.0.1:2375"
        )
    })?;
    Ok(SocketAddr::new(
        ip,
        if ip.is_loopback() { 2375 } else { 2376 },
    ))
}

/// Serves the Docker Engine API of `daemon` on TCP too (`--engine-addr`):
/// plain on loopback, else mutual TLS from the cluster CA while the node
/// is a manager, until `stop`.
async fn serve_engine_tcp(
    daemon: Arc<Daemon<NodeStore>>,
    flag: &str,
    certs: std::path::PathBuf,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    use swarm_examples::engine_tls::{EngineTls, listener_names, managers_and_clients};
    let addr = engine_tcp_addr(flag)?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--engine-addr {flag}: {e}"))?;
    let bound = tcp.local_addr()?;
    if addr.ip().is_loopback() {
        tokio::spawn(async move {
            if let Err(e) = swarm_engine::serve_app(tcp, app(&daemon), stop).await {
                tracing::error!(error = %e, %bound, "the Engine API stopped");
            }
        });
        tracing::info!(%bound, "serving the Docker Engine API on TCP (loopback: no TLS)");
        return Ok(());
    }
    let (tls, configs) = EngineTls::new(listener_names(addr.ip()), certs);
    let listener = swarm_engine::tls::TlsListener::new(tcp, configs, managers_and_clients())?
        .open_to_anonymous(&["/ui"]);
    let served = tls_app(&daemon);
    let serving = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = swarm_engine::tls::serve_app(listener, served, serving).await {
            tracing::error!(error = %e, %bound, "the Engine API stopped");
        }
    });
    // The certificate follows the node's role: made when it is a manager,
    // dropped when it is not.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut last_error = String::new();
        while !stop.is_cancelled() {
            tick.tick().await;
            match tls.refresh(&daemon).await {
                Ok(()) => last_error.clear(),
                Err(e) if e != last_error => {
                    tracing::warn!(error = %e, "the Engine API's TLS certificate cannot be made yet");
                    last_error = e;
                }
                Err(_) => {}
            }
        }
    });
    tracing::info!(
        %bound,
        "serving the Docker Engine API on TCP with mutual TLS while this daemon is a manager \
         (DOCKER_TLS_VERIFY=1, DOCKER_CERT_PATH=<data-dir>/client)"
    );
    Ok(())
}

/// Prints a line for the user. A daemon must not die because whoever
/// read its output went away, so write errors are ignored.
fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn role_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Manager => "manager",
        NodeRole::Worker => "worker",
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    swarm_examples::log_format::init(cli.log_format, cli.log_level);
    // Before the node starts: what is recorded earlier is lost.
    if let Err(e) = swarm_metrics::Exporter::install() {
        tracing::warn!(error = %e, "no metrics");
    }
    match main_inner(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            swarm_examples::log_format::note(&format!("swarmd: {e:#}"), true);
            ExitCode::FAILURE
        }
    }
}
