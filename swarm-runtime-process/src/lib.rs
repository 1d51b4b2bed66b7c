#![doc = include_str!("../README.md")]

mod config;
mod health;
mod launch;
mod logs;
mod process;
mod reclaim;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use swarm_core::Id;
use swarm_core::model::{NodeDescription, Platform, Resources, Task};
use swarm_core::network::Sandbox;
use swarm_core::runtime::{
    Enforcement, ExitStatus, LogOptions, LogStream, Runtime, RuntimeError, RuntimeInfo,
    RuntimeStatus, TaskFile,
};

pub use config::{ConfigError, ProcessRuntimeConfig};

use launch::Launch;
use process::TaskProcess;

/// Runs tasks as plain processes of this machine; see the
/// [crate docs](crate) for how a task spec maps onto a process.
///
/// Cheap to clone: clones share their tasks.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ProcessRuntimeConfig,
    tasks: Mutex<HashMap<Id, Arc<TaskProcess>>>,
    /// This runtime, in the tasks' records; alive while it lives.
    owner: Arc<reclaim::Owner>,
}

/// How long a task left running by an earlier runtime gets to stop after
/// SIGTERM before it is killed.
const RECLAIM_GRACE: Duration = Duration::from_secs(3);

impl ProcessRuntime {
    /// A runtime with `config`, holding no tasks yet. The state directory
    /// is created when the first task is prepared.
    ///
    /// Tasks that an earlier runtime on the same state directory left
    /// behind when it stopped or died (its process no longer runs) are
    /// stopped first: SIGTERM to each one's process group, SIGKILL after
    /// 3 s. So a restarted node never runs a task twice; the agent reports
    /// them lost and the manager starts their replacements. Tasks of a
    /// runtime that still runs are left alone.
    pub fn new(config: ProcessRuntimeConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let reclaimed = reclaim::reclaim(&config.state_dir, RECLAIM_GRACE);
        if reclaimed.cleared > 0 {
            tracing::warn!(
                stopped = reclaimed.stopped,
                cleared = reclaimed.cleared,
                state_dir = %config.state_dir.display(),
                "stopped the tasks an earlier runtime left behind"
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                tasks: Mutex::new(HashMap::new()),
                owner: Arc::new(reclaim::Owner::register()),
            }),
        })
    }

    /// The runtime's configuration.
    #[must_use]
    pub fn config(&self) -> &ProcessRuntimeConfig {
        &self.inner.config
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<Id, Arc<TaskProcess>>> {
        // The map is consistent whenever the lock is released.
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: &Id) -> Result<Arc<TaskProcess>, RuntimeError> {
        self.tasks()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))
    }

    /// Stops every running task (SIGTERM, SIGKILL after `grace`) and
    /// returns once all have exited. The tasks stay known, so they can
    /// still be inspected, waited for and removed.
    pub async fn stop_all(&self, grace: Duration) {
        let tasks: Vec<_> = self.tasks().values().cloned().collect();
        futures::future::join_all(tasks.iter().map(|t| t.stop(grace))).await;
    }

    /// Kills every task at once (SIGKILL to each process group), forgets
    /// them and deletes their directories, without waiting. Synchronous, so
    /// that an in-process cluster can call it when dropped; the processes
    /// are reaped in the background while the tokio runtime lives.
    ///
    /// Dropping a `ProcessRuntime` does not stop its tasks: like a
    /// container engine's, they outlive the agent that started them.
    pub fn shutdown_all(&self) {
        let tasks: Vec<_> = self.tasks().drain().collect();
        let files = self.inner.config.files_root();
        for (id, task) in tasks {
            task.kill();
            remove_dir(task.dir());
            remove_dir(&files.join(id.as_str()));
            reclaim::forget(task.dir());
        }
    }
}

/// Deletes a task's directory; one that is already gone is fine.
pub(crate) fn remove_dir(dir: &std::path::Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "failed to delete a task's directory")
        }
    }
}

/// The machine's memory, from `/proc/meminfo`.
async fn total_memory() -> Result<u64, RuntimeError> {
    let unavailable =
        |why: String| RuntimeError::Unavailable(format!("cannot tell the node's memory: {why}"));
    let meminfo = tokio::fs::read_to_string("/proc/meminfo")
        .await
        .map_err(|e| unavailable(format!("failed to read /proc/meminfo: {e}")))?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| unavailable("no MemTotal line in /proc/meminfo".into()))
}

impl ProcessRuntime {
    /// Prepares `task`, inside `sandbox` when it has one.
    async fn prepare_with(
        &self,
        task: &Task,
        files: &[TaskFile],
        sandbox: Option<Sandbox>,
    ) -> Result<(), RuntimeError> {
        let id = task.meta.id.clone();
        if self.tasks().contains_key(&id) {
            return Ok(());
        }
        let config = self.inner.config.clone();
        let owner = self.inner.owner.clone();
        let (task, files) = (task.clone(), files.to_vec());
        let launch = tokio::task::spawn_blocking(move || {
            let launch = Launch::prepare(&config, &task, &files, sandbox.as_ref())?;
            reclaim::write(&launch.dir, &owner, None).map_err(|e| {
                RuntimeError::Unavailable(format!(
                    "failed to record the task's owner in {}: {e}",
                    config.state_dir.display()
                ))
            })?;
            Ok((launch, task.spec.healthcheck.clone()))
        })
        .await
        .map_err(|e| RuntimeError::Unavailable(format!("failed to prepare the task: {e}")))?;
        let (launch, healthcheck) = launch?;
        let config = &self.inner.config;
        let process = TaskProcess::new(
            id.clone(),
            self.inner.owner.clone(),
            launch,
            healthcheck,
            config.log_lines,
            config.max_line_bytes,
        );
        // A concurrent prepare of the same task may have won; it wrote the
        // same files.
        self.tasks().entry(id).or_insert_with(|| Arc::new(process));
        Ok(())
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    async fn info(&self) -> Result<RuntimeInfo, RuntimeError> {
        let config = &self.inner.config;
        let hostname = match &config.hostname {
            Some(h) => h.clone(),
            None => nix::unistd::gethostname()
                .map_err(|e| {
                    RuntimeError::Unavailable(format!("failed to read the hostname: {e}"))
                })?
                .to_string_lossy()
                .into_owned(),
        };
        let resources = match config.resources {
            Some(r) => r,
            None => {
                let cpus = std::thread::available_parallelism().map_or(1, usize::from);
                Resources {
                    nano_cpus: cpus as u64 * 1_000_000_000,
                    memory_bytes: total_memory().await?,
                }
            }
        };
        Ok(RuntimeInfo {
            description: NodeDescription {
                data_addr: None,
                hostname,
                platform: Platform::current(),
                resources,
                engine_labels: config.engine_labels.clone(),
                generic_resources: Vec::new(),
            },
            // No cgroups: limits are not enforced and nothing is set aside.
            enforcement: Enforcement {
                cpu_limit: false,
                memory_limit: false,
                reservations: false,
            },
        })
    }

    async fn prepare(&self, task: &Task, files: &[TaskFile]) -> Result<(), RuntimeError> {
        self.prepare_with(task, files, None).await
    }

    fn runs_in_sandboxes(&self) -> bool {
        true
    }

    async fn prepare_in(
        &self,
        task: &Task,
        files: &[TaskFile],
        sandbox: &Sandbox,
    ) -> Result<(), RuntimeError> {
        self.prepare_with(task, files, Some(sandbox.clone())).await
    }

    async fn start(&self, task_id: &Id) -> Result<(), RuntimeError> {
        self.get(task_id)?.start()
    }

    async fn wait(&self, task_id: &Id) -> Result<ExitStatus, RuntimeError> {
        self.get(task_id)?.wait().await
    }

    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError> {
        self.get(task_id)?.stop(grace).await
    }

    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let files = self.inner.config.files_root().join(task_id.as_str());
        let Some(task) = self.tasks().remove(task_id) else {
            tokio::task::spawn_blocking(move || remove_dir(&files))
                .await
                .ok();
            return Ok(());
        };
        task.remove().await;
        let dir = task.dir().to_owned();
        tokio::task::spawn_blocking(move || {
            remove_dir(&dir);
            remove_dir(&files);
            reclaim::forget(&dir);
        })
        .await
        .map_err(|e| {
            RuntimeError::Unavailable(format!("failed to delete the task's directory: {e}"))
        })
    }

    async fn inspect(&self, task_id: &Id) -> Result<RuntimeStatus, RuntimeError> {
        self.get(task_id)?.inspect()
    }

    async fn logs(&self, task_id: &Id, options: LogOptions) -> Result<LogStream, RuntimeError> {
        self.get(task_id)?.logs(options)
    }

    async fn list(&self) -> Result<Vec<Id>, RuntimeError> {
        Ok(self.tasks().keys().cloned().collect())
    }
}
