#![doc = include_str!("../../README.md")]

pub mod browser;
pub mod daemons;
pub mod engine;
pub mod engine_tls;
pub mod events;
pub mod inspect;
pub mod log_format;
pub mod logs;
pub mod netns;
pub mod service_flags;
pub mod table;

use std::path::PathBuf;
use std::time::Duration;

use swarm_core::cluster::{LocalCluster, LocalClusterConfig};
use swarm_core::store::{MemoryStore, Store};
use swarm_raft::{RaftConfig, RaftStore};
use swarm_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use swarm_sched::{SchedulerConfig, SwarmScheduler};

/// A local swarm in memory: one manager with the stock scheduler, and
/// `workers` workers named `worker-1`, `worker-2`, ... running tasks as OS
/// processes, each with its own state directory under `state_dir`.
pub async fn local_swarm(
    workers: usize,
    state_dir: PathBuf,
    config: LocalClusterConfig,
) -> anyhow::Result<LocalCluster<ProcessRuntime>> {
    local_swarm_on(MemoryStore::new(), workers, state_dir, config).await
}

/// [`local_swarm`] over `store`.
pub async fn local_swarm_on<S: Store>(
    store: S,
    workers: usize,
    state_dir: PathBuf,
    config: LocalClusterConfig,
) -> anyhow::Result<LocalCluster<ProcessRuntime, S>> {
    let scheduler = SwarmScheduler::new(SchedulerConfig::default())?;
    let mut cluster = LocalCluster::start_with_store(store, scheduler, config);
    for i in 1..=workers {
        add_process_worker(&mut cluster, &format!("worker-{i}"), &state_dir).await?;
    }
    Ok(cluster)
}

/// The manager's durable store: a one-member raft cluster in `data_dir`
/// (created, or resumed with everything it held), serving raft on a
/// loopback port so that more managers could join it.
pub async fn single_manager_store(data_dir: &std::path::Path) -> anyhow::Result<RaftStore> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let store = RaftStore::open(RaftConfig::new(1, addr, data_dir)).await?;
    tokio::spawn(swarm_raft::serve(
        store.clone(),
        listener,
        std::future::pending(),
    ));
    store.initialize().await?;
    store.wait_for_leader(Duration::from_secs(10)).await?;
    // A resumed member applies its log again once it leads: read through
    // the leader so the loops start from everything it held.
    store.state_linearizable().await?;
    Ok(store)
}

/// Joins a process-runtime worker named `hostname` to `cluster`.
pub async fn add_process_worker<S: Store>(
    cluster: &mut LocalCluster<ProcessRuntime, S>,
    hostname: &str,
    state_dir: &std::path::Path,
) -> anyhow::Result<swarm_core::Id> {
    let runtime = ProcessRuntime::new(
        ProcessRuntimeConfig::default()
            .with_hostname(hostname)
            .with_state_dir(state_dir.join(hostname)),
    )?;
    Ok(cluster.add_worker(hostname, runtime).await?)
}

/// Settings for demos and tests: heartbeats every 200 ms (a lost node is
/// noticed within ~600 ms) and restarts after 200 ms.
#[must_use]
pub fn fast_config() -> LocalClusterConfig {
    LocalClusterConfig::default().heartbeat(Duration::from_millis(200))
}

/// What `swarmd init --autolock`, `swarm update --autolock=true` and
/// `swarm unlock-key` print with the unlock key (docker's words).
#[must_use]
pub fn unlock_key_text(key: &dyn std::fmt::Display) -> String {
    format!(
        "To unlock a swarm manager after it restarts, run the `swarmctl swarm unlock`\n\
         command and provide the following key:\n\n    {key}\n\n\
         Remember to store this key in a password manager, since without it you\n\
         will not be able to restart the manager."
    )
}
