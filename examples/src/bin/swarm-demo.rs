//! A local swarm in one process: 1 manager on its on-disk raft store, 3
//! workers, the process runtime. It starts a service, shows it converge,
//! then heals it after a `kill -9` and after losing a worker, and scales
//! it down.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use swarm_core::Id;
use swarm_core::model::{NodeState, ServiceSpec, TaskState};
use swarm_core::runtime::Runtime as _;
use swarm_core::store::{State, Store as _};
use swarm_examples::{fast_config, local_swarm_on, single_manager_store, table};

#[derive(Parser)]
#[command(
    about = "Run a local swarm (1 manager, N workers, process runtime) and watch a service converge and heal"
)]
struct Args {
    /// Number of workers.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Replicas of the demo service.
    #[arg(long, default_value_t = 5)]
    replicas: u64,
    /// Where the manager keeps its store (`manager/`) and the workers their
    /// task directories (default: a new directory under the temp dir).
    #[arg(long)]
    state_dir: Option<std::path::PathBuf>,
    /// Keep the swarm running at the end until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
}

fn running(state: &State, service: &str) -> usize {
    state.service_by_name(service).map_or(0, |s| {
        state
            .tasks_of_service(&s.meta.id)
            .filter(|t| {
                t.desired_state == TaskState::Running && t.status.state == TaskState::Running
            })
            .count()
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let dir = args
        .state_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("swarm-demo-{}", std::process::id())));
    let started = Instant::now();
    let store = single_manager_store(&dir.join("manager")).await?;
    let mut cluster = local_swarm_on(store, args.workers, dir.clone(), fast_config()).await?;
    println!(
        "swarm up: 1 manager (raft store in {}), {} workers ({:?})\n",
        dir.join("manager").display(),
        args.workers,
        started.elapsed()
    );

    let spec = ServiceSpec::replicated("web", args.replicas, vec!["sleep".into(), "3600".into()]);
    let mut spec = spec;
    spec.task.restart.delay = Duration::from_millis(200);
    spec.task.stop_grace_period = Duration::from_secs(2);
    cluster.control().create_service(spec).await?;
    let want = usize::try_from(args.replicas)?;
    let t = Instant::now();
    let state = cluster
        .wait_until(Duration::from_secs(30), "run the service", |s| {
            running(s, "web") == want
        })
        .await?;
    println!(
        "> create service web: {} replicas of `sleep 3600`   (converged in {:?})",
        args.replicas,
        t.elapsed()
    );
    println!("{}", table::services(&state));
    println!("> service ps web\n{}", table::tasks(&state, "web"));

    // Heal 1: kill -9 one task's process.
    let victim = state
        .tasks()
        .find(|t| t.status.state == TaskState::Running)
        .cloned()
        .context("no running task")?;
    let node: Id = victim
        .node_id
        .clone()
        .context("running task without node")?;
    let pid = cluster
        .runtime(&node)
        .context("unknown worker")?
        .inspect(&victim.meta.id)
        .await?
        .runtime_id
        .context("no pid")?;
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()?;
    anyhow::ensure!(status.success(), "kill -9 {pid} failed");
    let t = Instant::now();
    let victim_id = victim.meta.id.clone();
    let state = cluster
        .wait_until(Duration::from_secs(30), "replace the killed task", |s| {
            running(s, "web") == want
                && s.task(&victim_id)
                    .is_some_and(|t| t.status.state.is_terminal())
        })
        .await?;
    println!(
        "> kill -9 {pid}   (the process of {}: replaced in {:?})",
        victim.name(),
        t.elapsed()
    );
    println!("{}", table::tasks(&state, "web"));

    // Heal 2: a worker drops off the network.
    let lost = cluster.workers()[0].clone();
    let lost_name = state
        .node(&lost)
        .map(|n| n.display_name().to_owned())
        .unwrap_or_default();
    cluster.stop_worker(&lost).await;
    let t = Instant::now();
    let state = cluster
        .wait_until(
            Duration::from_secs(30),
            "replace the lost worker's tasks",
            |s| {
                s.node(&lost)
                    .is_some_and(|n| n.status.state == NodeState::Down)
                    && running(s, "web") == want
                    && s.tasks_on_node(&lost)
                        .all(|t| t.desired_state > TaskState::Running)
            },
        )
        .await?;
    println!(
        "> worker {lost_name} stops heartbeating   (marked down, its tasks running elsewhere in {:?})",
        t.elapsed()
    );
    println!("{}", table::tasks(&state, "web"));
    cluster.restart_worker(&lost);

    // Scale down.
    cluster.control().scale("web", 2).await?;
    let t = Instant::now();
    let state = cluster
        .wait_until(Duration::from_secs(30), "scale down to 2", |s| {
            running(s, "web") == 2
                && s.tasks()
                    .filter(|t| t.status.state == TaskState::Running)
                    .count()
                    == 2
        })
        .await?;
    println!("> scale web to 2   (converged in {:?})", t.elapsed());
    println!("{}", table::services(&state));

    if args.keep_running {
        println!("swarm running; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    }
    let st = cluster.store().state().await?;
    println!(
        "store at index {}: {} nodes, {} tasks kept",
        st.index(),
        st.nodes().count(),
        st.task_count()
    );
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    println!("swarm stopped; all tasks stopped");
    Ok(())
}
