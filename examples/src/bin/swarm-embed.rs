//! An app that embeds a real manager node and plugs its own parts in: a
//! scheduler built from the stock one (binpack, plus a filter that keeps
//! managers free for the control plane) and a control loop of its own (a
//! service labelled `autoscale=per-worker` runs one replica per ready
//! worker). The manager listens on loopback with mutual TLS; its workers
//! are real `swarmd` processes that join it with a token.
//!
//! `cargo run -p swarm-examples --bin swarm-embed` (builds `swarmd` too:
//! `cargo build -p swarm-examples --bins` first, or pass `--swarmd`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use swarm_core::Id;
use swarm_core::control::Control;
use swarm_core::manager::control_loop::{Action, Controller, Reconcile, control_loop};
use swarm_core::model::{NodeRole, Object, ServiceMode, ServiceSpec, Task, TaskState};
use swarm_core::store::{Event, State, Store};
use swarm_node::{NodeBuilder, NodeConfig};
use swarm_raft::RaftStore;
use swarm_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use swarm_sched::{Candidate, Filter, Strategy, SwarmScheduler};

#[derive(Parser)]
#[command(
    about = "Embed a manager with the app's own scheduler and control loop; workers are swarmd processes"
)]
struct Args {
    /// Workers to start as `swarmd join` processes.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The swarmd binary (default: beside this program).
    #[arg(long)]
    swarmd: Option<PathBuf>,
}

/// Keeps managers free: tasks go to workers only.
#[derive(Debug)]
struct WorkersOnly;

impl Filter for WorkersOnly {
    fn name(&self) -> &str {
        "workers-only"
    }
    fn accepts(&self, node: &Candidate<'_>, _task: &Task) -> bool {
        node.node().spec.role == NodeRole::Worker
    }
    fn explain(&self, _task: &Task, nodes: &str) -> String {
        format!("{nodes} kept free as managers")
    }
}

/// The key under which node changes are reconciled: every autoscaled
/// service at once.
const NODES: &str = "@nodes";

/// One replica per ready worker, for services labelled
/// `autoscale=per-worker`.
struct PerWorker {
    control: Control<RaftStore>,
}

impl PerWorker {
    fn autoscaled(state: &State) -> Vec<Id> {
        state
            .services()
            .filter(|s| {
                s.spec
                    .labels
                    .get("autoscale")
                    .is_some_and(|v| v == "per-worker")
            })
            .map(|s| s.meta.id.clone())
            .collect()
    }
}

impl Reconcile for PerWorker {
    const NAME: &'static str = "per-worker";
    type Error = swarm_core::control::ControlError;

    fn keys(&self, event: &Event, keys: &mut Vec<Id>) {
        match event.object() {
            Object::Service(s) => keys.push(s.meta.id.clone()),
            Object::Node(_) => keys.push(NODES.into()),
            _ => {}
        }
    }

    fn all_keys(&self, state: &State) -> Vec<Id> {
        Self::autoscaled(state)
    }

    async fn reconcile(&mut self, key: &Id, state: &State) -> Result<Action, Self::Error> {
        let services = if key.as_str() == NODES {
            Self::autoscaled(state)
        } else {
            vec![key.clone()]
        };
        let workers = state
            .nodes()
            .filter(|n| n.spec.role == NodeRole::Worker && n.accepts_tasks())
            .count() as u64;
        for id in services {
            let Some(service) = state.service(&id) else {
                continue;
            };
            let autoscaled = service
                .spec
                .labels
                .get("autoscale")
                .is_some_and(|v| v == "per-worker");
            let replicas = match service.spec.mode {
                ServiceMode::Replicated { replicas } => replicas,
                ServiceMode::Global => continue,
            };
            if autoscaled && replicas != workers {
                tracing::info!(service = %service.spec.name, replicas = workers, "one replica per worker");
                self.control.scale(id.as_str(), workers).await?;
            }
        }
        Ok(Action::Done)
    }
}

/// `swarmd` processes, killed when dropped.
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn wait_for(
    what: &str,
    limit: Duration,
    mut done: impl AsyncFnMut() -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done().await {
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "swarm_embed=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let swarmd = match args.swarmd {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("swarmd"),
    };
    if !swarmd.is_file() {
        bail!(
            "no swarmd at {}: build it (cargo build -p swarm-examples --bins) or pass --swarmd",
            swarmd.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut config = NodeConfig::new(dir.path().join("manager"));
    config.listen_addr = format!("127.0.0.1:{port}").parse()?;
    config.hostname = Some("manager".into());
    config.heartbeat_period = Duration::from_millis(250);

    // The app's scheduler and loop. The loop needs the manager's control
    // API, made from the store it is given when this manager leads.
    let scheduler = SwarmScheduler::builder()
        .strategy(Strategy::Binpack)
        .filter(WorkersOnly)
        .build()?;
    let node = NodeBuilder::new(config)
        .scheduler(scheduler)
        .control_loop(control_loop(|store: &RaftStore| {
            Controller::new(PerWorker {
                control: Control::new(store.clone()),
            })
        }))
        .init()
        .await?;
    let token = node.join_token(NodeRole::Worker).await?;
    let addr = node.config().advertised()?;
    let runtime = ProcessRuntime::new(
        ProcessRuntimeConfig::default()
            .with_hostname("manager")
            .with_state_dir(dir.path().join("manager-tasks")),
    )?;
    let manager = node.start(runtime);
    let control = manager.control().await?;
    println!("manager {} listens on {addr}", manager.id());

    let mut workers = Workers(Vec::new());
    for i in 1..=args.workers {
        let name = format!("worker-{i}");
        workers.0.push(
            Command::new(&swarmd)
                .args(["join", "--token", &token, &addr, "--hostname", &name])
                .args(["--heartbeat-period", "250ms"])
                .arg("--data-dir")
                .arg(dir.path().join(&name))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {}", swarmd.display()))?,
        );
    }
    let expected = args.workers;
    wait_for(
        "the workers to be ready",
        Duration::from_secs(60),
        async || {
            let state = control.store().state().await;
            state.is_ok_and(|s| {
                s.nodes()
                    .filter(|n| n.spec.role == NodeRole::Worker && n.accepts_tasks())
                    .count()
                    == expected
            })
        },
    )
    .await?;
    println!("{expected} workers joined as swarmd processes");

    let mut spec = ServiceSpec::replicated("web", 1, vec!["sleep".into(), "600".into()]);
    spec.labels.insert("autoscale".into(), "per-worker".into());
    control.create_service(spec).await?;
    wait_for(
        "one running replica per worker",
        Duration::from_secs(60),
        async || {
            let tasks = control.service_tasks("web").await.unwrap_or_default();
            tasks
                .iter()
                .filter(|t| t.status.state == TaskState::Running)
                .count()
                == expected
        },
    )
    .await?;
    let tasks = control.service_tasks("web").await?;
    let state = control.store().state().await?;
    let mut placed: Vec<String> = tasks
        .iter()
        .filter(|t| t.status.state == TaskState::Running)
        .filter_map(|t| state.node(t.node_id.as_ref()?.as_str()))
        .map(|n| n.description.hostname.clone())
        .collect();
    placed.sort();
    println!(
        "web: {expected} replicas (the app's loop), on {placed:?} (binpack, managers kept free)"
    );
    if placed.iter().any(|h| h == "manager") {
        bail!("a task ran on the manager, which the app's filter keeps free");
    }

    // Stop the tasks before their workers go.
    control.remove_service("web").await?;
    wait_for("the tasks to stop", Duration::from_secs(60), async || {
        control.store().state().await.is_ok_and(|s| {
            !s.tasks()
                .any(|t| &*t.service_name == "web" && !t.status.state.is_terminal())
        })
    })
    .await?;
    drop(workers);
    manager.shutdown().await?;
    println!("done");
    Ok(())
}
