//! The `Runtime` trait: how a worker runs a task (a process, a container).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::Id;
use crate::model::{NodeDescription, Task};

/// What went wrong in a runtime, for the agent to branch on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime knows no such task (never prepared, or removed).
    #[error("task {0} is not known to the runtime")]
    NotFound(Id),
    /// The task cannot run as specified (missing program or image, bad
    /// user, bad working directory). The agent rejects the task.
    #[error("{0}")]
    InvalidSpec(String),
    /// The task is not in a state that allows the call (start before
    /// prepare, ...).
    #[error("{0}")]
    InvalidState(String),
    /// The runtime itself is unreachable or failing (daemon down, fork
    /// failed). The call may succeed later.
    #[error("runtime unavailable: {0}")]
    Unavailable(String),
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code; for a process killed by a signal, 128 + the signal.
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// Whether the task exited with code 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.code == 0 && self.signal.is_none()
    }
}

/// Health as the runtime's health check reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No verdict yet (within the start period, or before the first check).
    Starting,
    /// The last check passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

/// What the runtime knows about a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeState {
    /// Prepared, not started.
    Created,
    /// Running.
    Running,
    /// Exited.
    Exited(ExitStatus),
}

/// The result of [`Runtime::inspect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeStatus {
    /// Created, running or exited.
    pub state: RuntimeState,
    /// Health, if the task has a health check.
    pub health: Option<Health>,
    /// The runtime's handle: a process id, a container id.
    pub runtime_id: Option<String>,
    /// When it started.
    pub started_at: Option<SystemTime>,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a task's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When the runtime read it.
    pub timestamp: SystemTime,
    /// stdout or stderr.
    pub source: LogSource,
    /// The line, without its newline.
    pub line: String,
}

/// What [`Runtime::logs`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new lines until the task exits.
    pub follow: bool,
    /// Only the last this many lines of history (`None`: all).
    pub tail: Option<usize>,
}

/// A stream of log lines.
pub type LogStream = BoxStream<'static, LogLine>;

/// Which resource settings a runtime enforces and which it only reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforcement {
    /// CPU limits are enforced.
    pub cpu_limit: bool,
    /// Memory limits are enforced.
    pub memory_limit: bool,
    /// Reservations are set aside by the runtime (they are always honoured
    /// by the scheduler, which places against them).
    pub reservations: bool,
}

/// Whether a [`TaskFile`] holds a secret or a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A secret: exposed under `/run/secrets/` (containers) or the task's
    /// private secrets directory (processes), readable by the task alone.
    Secret,
    /// A config: exposed at its target path.
    Config,
}

/// A secret or config a task references, with its data, as the dispatcher
/// hands it to the node that runs the task (and to no other node).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFile {
    /// Secret or config.
    pub kind: FileKind,
    /// The secret's or config's name.
    pub name: String,
    /// The file name or path inside the task.
    pub target: String,
    /// File mode.
    pub mode: u32,
    /// The file's owner.
    pub uid: u32,
    /// The file's group.
    pub gid: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for TaskFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret bytes.
        f.debug_struct("TaskFile")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("target", &self.target)
            .field("mode", &self.mode)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// What a runtime reports of its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Hostname, platform, total resources, engine labels.
    pub description: NodeDescription,
    /// Which resource settings this runtime enforces.
    pub enforcement: Enforcement,
}

/// Runs tasks on a worker.
///
/// # Contract
/// - Tasks are keyed by their task id. Every method is safe to call
///   concurrently for different tasks.
/// - [`prepare`](Runtime::prepare) makes the task ready to start (resolve
///   the program or image, create the container). It is idempotent. An
///   error of kind [`RuntimeError::InvalidSpec`] means the task can never
///   run here: the agent rejects it.
/// - [`start`](Runtime::start) starts a prepared task. Starting a running
///   task is a no-op.
/// - [`wait`](Runtime::wait) resolves when the task exits, with its status,
///   however often it is called; dropping the future has no effect on the
///   task (cancellation safe).
/// - [`stop`](Runtime::stop) asks the task to stop (SIGTERM or the
///   image's stop signal), kills it after `grace`, and returns once it has
///   exited. Stopping a task that is not running is a no-op.
/// - [`remove`](Runtime::remove) frees everything the task held; the task
///   is stopped first if needed (with no grace). Removing an unknown task
///   is a no-op.
/// - [`list`](Runtime::list) names every task this runtime holds, so an
///   agent that restarts can adopt or clean up what it left behind.
///
/// Implementations: `swarm-runtime-process` and `swarm-runtime-docker`;
/// both pass `testing::runtime_suite` (feature `testing`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Describes the node: hostname, platform, resources, engine labels,
    /// and which resource settings are enforced.
    async fn info(&self) -> Result<RuntimeInfo, RuntimeError>;

    /// Prepares a task to start, with the secret and config files it
    /// references. Idempotent.
    async fn prepare(&self, task: &Task, files: &[TaskFile]) -> Result<(), RuntimeError>;

    /// Whether [`Runtime::prepare_in`] works: the agent gives tasks their
    /// own network namespaces only then, and otherwise runs them on the
    /// host's network as before.
    fn runs_in_sandboxes(&self) -> bool {
        false
    }

    /// Starts what holds `task`'s network namespace when this runtime must
    /// own it, and returns the id of a process in that namespace: the
    /// network driver then gives that namespace the task's interfaces
    /// instead of making one, as a Kubernetes pause container holds a
    /// pod's. `None` (the default): the driver makes the namespace and
    /// [`Runtime::prepare_in`] puts the task into it. Idempotent;
    /// [`Runtime::remove`] frees the holder with the task.
    async fn hold_sandbox(&self, task: &Task) -> Result<Option<u32>, RuntimeError> {
        let _ = task;
        Ok(None)
    }

    /// Prepares a task to run inside `sandbox`: its own network namespace,
    /// made by the node's network driver, with the task's interfaces and
    /// DNS. A runtime that cannot run tasks there refuses, saying so (the
    /// default).
    async fn prepare_in(
        &self,
        task: &Task,
        files: &[TaskFile],
        sandbox: &crate::network::Sandbox,
    ) -> Result<(), RuntimeError> {
        let _ = (task, files);
        Err(RuntimeError::InvalidSpec(format!(
            "this runtime cannot run a task inside a network namespace ({}): take the service off its networks, or use a runtime that can",
            sandbox.netns.display()
        )))
    }

    /// Starts a prepared task.
    async fn start(&self, task_id: &Id) -> Result<(), RuntimeError>;

    /// Waits for the task to exit.
    async fn wait(&self, task_id: &Id) -> Result<ExitStatus, RuntimeError>;

    /// Stops the task: polite signal, then kill after `grace`.
    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes the task and what it held.
    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError>;

    /// The task's state, health and handle.
    async fn inspect(&self, task_id: &Id) -> Result<RuntimeStatus, RuntimeError>;

    /// The task's output.
    async fn logs(&self, task_id: &Id, options: LogOptions) -> Result<LogStream, RuntimeError>;

    /// The ids of every task this runtime holds.
    async fn list(&self) -> Result<Vec<Id>, RuntimeError>;
}

#[async_trait]
impl<R: Runtime + ?Sized> Runtime for std::sync::Arc<R> {
    async fn info(&self) -> Result<RuntimeInfo, RuntimeError> {
        (**self).info().await
    }
    async fn prepare(&self, task: &Task, files: &[TaskFile]) -> Result<(), RuntimeError> {
        (**self).prepare(task, files).await
    }
    fn runs_in_sandboxes(&self) -> bool {
        (**self).runs_in_sandboxes()
    }
    async fn hold_sandbox(&self, task: &Task) -> Result<Option<u32>, RuntimeError> {
        (**self).hold_sandbox(task).await
    }
    async fn prepare_in(
        &self,
        task: &Task,
        files: &[TaskFile],
        sandbox: &crate::network::Sandbox,
    ) -> Result<(), RuntimeError> {
        (**self).prepare_in(task, files, sandbox).await
    }
    async fn start(&self, task_id: &Id) -> Result<(), RuntimeError> {
        (**self).start(task_id).await
    }
    async fn wait(&self, task_id: &Id) -> Result<ExitStatus, RuntimeError> {
        (**self).wait(task_id).await
    }
    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError> {
        (**self).stop(task_id, grace).await
    }
    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        (**self).remove(task_id).await
    }
    async fn inspect(&self, task_id: &Id) -> Result<RuntimeStatus, RuntimeError> {
        (**self).inspect(task_id).await
    }
    async fn logs(&self, task_id: &Id, options: LogOptions) -> Result<LogStream, RuntimeError> {
        (**self).logs(task_id, options).await
    }
    async fn list(&self) -> Result<Vec<Id>, RuntimeError> {
        (**self).list().await
    }
}
