//! `swarmd`: the swarm node daemon. `init` creates a cluster, `join`
//! joins one, no subcommand resumes the node in the data directory, and
//! `leave` takes it out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use swarm_core::model::{ClusterSpec, NodeRole};
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

async fn run(node: Node, setup: Setup) -> anyhow::Result<()> {
    setup.settings.save(&setup.config.data_dir)?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("stopping");
        stop.cancel();
    });
    let api = CancellationToken::new();
    if let Some((path, named)) = &setup.engine_socket {
        match serve_engine(&node, path, api.clone()) {
            Ok(()) => {}
            Err(e) if !named => tracing::warn!(error = %e, "no Docker Engine API"),
            Err(e) => return Err(e),
        }
    }
    let _api = api.drop_guard();
    let config = node.config();
    match setup.runtime {
        RuntimeKind::Process => {
            let runtime = ProcessRuntime::new(
                ProcessRuntimeConfig::default()
                    .with_hostname(config.hostname())
                    .with_state_dir(config.data_dir.join("tasks")),
            )?;
            node.run(runtime, shutdown).await?;
        }
        RuntimeKind::Docker => {
            // Scoped to this node, so that nodes sharing an engine keep
            // to their own containers.
            let runtime = DockerRuntime::connect(
                DockerRuntimeConfig::default()
                    .with_node_id(node.id().clone())
                    .with_hostname(config.hostname()),
            )
            .await?;
            node.run(runtime, shutdown).await?;
        }
    }
    Ok(())
}

async fn main_inner(cli: Cli) -> anyhow::Result<()> {
    let args = cli.node;
    match cli.command {
        None => {
            let setup = args.setup(true)?;
            let node = setup.builder().resume()?;
            eprintln!(
                "swarmd: node {} resumes as a {}",
                node.id(),
                role_name(node.role())
            );
            run(node, setup).await
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
            run(node, setup).await
        }
        Some(Command::Join { token, manager }) => {
            let setup = args.setup(false)?;
            setup.check_runtime().await?;
            let node = setup.builder().join(&with_port(&manager), &token).await?;
            say(&format!(
                "This node joined a swarm as a {}.",
                role_name(node.role())
            ));
            run(node, setup).await
        }
        Some(Command::Leave) => {
            let node = Node::resume(args.setup(true)?.config)?;
            node.leave().await?;
            say("Node left the swarm.");
            Ok(())
        }
    }
}

/// Serves the Docker Engine API for `node` on the unix socket `path`
/// (owner and group only, as docker.sock), until `stop`.
fn serve_engine(
    node: &Node,
    path: &std::path::Path,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    // A socket left by an earlier run.
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("--engine-socket {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let addr = node
        .config()
        .advertised()
        .ok()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let backend = swarm_examples::engine::NodeBackend::new(node.id().clone(), addr, node.stores());
    let shown = path.display().to_string();
    tokio::spawn(async move {
        if let Err(e) = swarm_engine::serve(listener, std::sync::Arc::new(backend), stop).await {
            tracing::error!(error = %e, socket = %shown, "the Engine API stopped");
        }
    });
    tracing::info!(socket = %path.display(), "serving the Docker Engine API");
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn,h2=warn,tower=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match main_inner(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("swarmd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
