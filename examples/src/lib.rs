#![doc = include_str!("../../README.md")]

pub mod table;

use std::path::PathBuf;
use std::time::Duration;

use swarm_core::cluster::{LocalCluster, LocalClusterConfig};
use swarm_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use swarm_sched::{SchedulerConfig, SwarmScheduler};

/// A local swarm: one manager with the stock scheduler, and `workers`
/// workers named `worker-1`, `worker-2`, ... running tasks as OS processes,
/// each with its own state directory under `state_dir`.
pub async fn local_swarm(
    workers: usize,
    state_dir: PathBuf,
    config: LocalClusterConfig,
) -> anyhow::Result<LocalCluster<ProcessRuntime>> {
    let scheduler = SwarmScheduler::new(SchedulerConfig::default())?;
    let mut cluster = LocalCluster::start(scheduler, config);
    for i in 1..=workers {
        add_process_worker(&mut cluster, &format!("worker-{i}"), &state_dir).await?;
    }
    Ok(cluster)
}

/// Joins a process-runtime worker named `hostname` to `cluster`.
pub async fn add_process_worker(
    cluster: &mut LocalCluster<ProcessRuntime>,
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
