//! One task: its process group, its exit, its output and its health.

use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use futures::future::join_all;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use swarm_core::Id;
use swarm_core::model::HealthCheck;
use swarm_core::runtime::{
    ExitStatus, Health, LogOptions, LogSource, LogStream, RuntimeError, RuntimeState, RuntimeStatus,
};
use tokio::process::Child;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use crate::health;
use crate::launch::Launch;
use crate::logs::{LogBuffer, pump};

/// How long, after the task's process exited, its output is still read
/// before the exit is reported. Pipes normally close with the process
/// group; this only bounds the wait for a process that left the group
/// and kept them open.
const DRAIN: Duration = Duration::from_millis(250);

/// How a task ended, as its waiters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not ended: created or running.
    Pending,
    /// Its process exited.
    Exited(ExitStatus),
    /// Removed before it ever started.
    Removed,
}

/// Where a task is in its life.
#[derive(Debug)]
enum Phase {
    Created,
    Started {
        pid: Pid,
        started_at: SystemTime,
        health: Option<AbortHandle>,
    },
    Removed,
}

/// A prepared task and, once started, its process group (led by the
/// task's process, whose pid is the group's id).
#[derive(Debug)]
pub(crate) struct TaskProcess {
    id: Id,
    /// The runtime, for the task's record.
    owner: Arc<crate::reclaim::Owner>,
    launch: Arc<Launch>,
    healthcheck: Option<HealthCheck>,
    max_line_bytes: usize,
    phase: Mutex<Phase>,
    outcome: watch::Sender<Outcome>,
    health: Arc<Mutex<Option<Health>>>,
    logs: Arc<LogBuffer>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its state consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends `signal` to the process group `pid`; a group that is gone is not
/// an error.
pub(crate) fn signal_group(pid: Pid, signal: Signal) {
    match killpg(pid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(%pid, ?signal, error = %e, "failed to signal a task's process group")
        }
    }
}

/// The exit status of a process, as the trait reports it.
fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus { code, signal: None },
        (None, Some(signal)) => ExitStatus {
            code: 128 + signal,
            signal: Some(signal),
        },
        // `wait` reports neither only for stopped or continued processes,
        // which it does not return.
        (None, None) => ExitStatus {
            code: 255,
            signal: None,
        },
    }
}

impl TaskProcess {
    /// A prepared, unstarted task.
    pub(crate) fn new(
        id: Id,
        owner: Arc<crate::reclaim::Owner>,
        launch: Launch,
        healthcheck: Option<HealthCheck>,
        log_lines: usize,
        max_line_bytes: usize,
    ) -> Self {
        let healthcheck = healthcheck.filter(|h| health::check_command(&h.test).is_some());
        let health = healthcheck.as_ref().map(|_| Health::Starting);
        Self {
            id,
            owner,
            launch: Arc::new(launch),
            healthcheck,
            max_line_bytes,
            phase: Mutex::new(Phase::Created),
            outcome: watch::Sender::new(Outcome::Pending),
            health: Arc::new(Mutex::new(health)),
            logs: Arc::new(LogBuffer::new(log_lines)),
        }
    }

    fn not_found(&self) -> RuntimeError {
        RuntimeError::NotFound(self.id.clone())
    }

    fn outcome(&self) -> Outcome {
        *self.outcome.borrow()
    }

    /// Starts the task's process in a new process group, with readers for
    /// its output, a reaper, and its health monitor. A no-op while it runs;
    /// an exited task does not start again.
    pub(crate) fn start(self: &Arc<Self>) -> Result<(), RuntimeError> {
        let mut phase = lock(&self.phase);
        match *phase {
            Phase::Created => {}
            Phase::Started { .. } if self.outcome() == Outcome::Pending => return Ok(()),
            Phase::Started { .. } => {
                return Err(RuntimeError::InvalidState(format!(
                    "task {} has exited and a task runs only once: create a new task to run it again",
                    self.id
                )));
            }
            Phase::Removed => return Err(self.not_found()),
        }
        let mut cmd = self.launch.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            let program = &self.launch.arg0;
            match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    RuntimeError::InvalidSpec(format!("cannot start program {program:?}: {e}"))
                }
                _ => RuntimeError::Unavailable(format!("failed to start program {program:?}: {e}")),
            }
        })?;
        let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
            let _ = child.start_kill();
            return Err(RuntimeError::Unavailable(
                "the started process has no pid".into(),
            ));
        };
        // Kept on disk, so that a runtime after this one can stop the task
        // if this one dies.
        if let Err(e) = crate::reclaim::write(
            &self.launch.dir,
            &self.owner,
            crate::reclaim::ProcessMark::of(pid),
        ) {
            tracing::warn!(task_id = %self.id, error = %e, "failed to record the task's process");
        }
        let pid = Pid::from_raw(pid);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(self.read(out, LogSource::Stdout));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(self.read(err, LogSource::Stderr));
        }
        let health = self.healthcheck.clone().map(|check| {
            let cell = Arc::clone(&self.health);
            let report = move |h| *lock(&cell) = Some(h);
            tokio::spawn(health::monitor(
                check,
                Arc::clone(&self.launch),
                self.outcome.subscribe(),
                report,
            ))
            .abort_handle()
        });
        tokio::spawn(Arc::clone(self).reap(child, pid, readers));
        *phase = Phase::Started {
            pid,
            started_at: SystemTime::now(),
            health,
        };
        tracing::debug!(task_id = %self.id, %pid, "started");
        Ok(())
    }

    fn read(
        &self,
        pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        source: LogSource,
    ) -> JoinHandle<()> {
        tokio::spawn(pump(
            pipe,
            source,
            Arc::clone(&self.logs),
            self.max_line_bytes,
        ))
    }

    /// Waits for the process, kills what is left of its group (a task's
    /// children end with it, as a container's do), lets the readers finish,
    /// and reports the exit.
    async fn reap(self: Arc<Self>, mut child: Child, pid: Pid, readers: Vec<JoinHandle<()>>) {
        let status = match child.wait().await {
            Ok(status) => exit_status(status),
            Err(e) => {
                tracing::error!(task_id = %self.id, error = %e, "failed to wait for a task's process");
                ExitStatus {
                    code: 255,
                    signal: None,
                }
            }
        };
        signal_group(pid, Signal::SIGKILL);
        // The task is over: its secrets go now, not when it is reaped.
        crate::remove_dir(&self.launch.files);
        let _ = tokio::time::timeout(DRAIN, join_all(readers)).await;
        self.logs.close();
        tracing::debug!(task_id = %self.id, ?status, "exited");
        self.outcome.send_modify(|o| *o = Outcome::Exited(status));
    }

    /// Resolves once the task has ended.
    async fn ended(&self) -> Outcome {
        let mut rx = self.outcome.subscribe();
        // The sender lives in `self`, so the channel cannot close.
        rx.wait_for(|o| *o != Outcome::Pending)
            .await
            .map_or(Outcome::Pending, |o| *o)
    }

    /// Waits for the task to exit.
    pub(crate) async fn wait(&self) -> Result<ExitStatus, RuntimeError> {
        match self.ended().await {
            Outcome::Exited(status) => Ok(status),
            Outcome::Removed | Outcome::Pending => Err(self.not_found()),
        }
    }

    /// The stop signal (SIGTERM unless the spec names another) to the
    /// group, SIGKILL after `grace`; returns once exited.
    pub(crate) async fn stop(&self, grace: Duration) -> Result<(), RuntimeError> {
        let pid = match *lock(&self.phase) {
            Phase::Created => return Ok(()),
            Phase::Started { pid, .. } => pid,
            Phase::Removed => return Err(self.not_found()),
        };
        if self.outcome() != Outcome::Pending {
            return Ok(());
        }
        signal_group(pid, self.launch.stop_signal);
        if tokio::time::timeout(grace, self.ended()).await.is_err() {
            tracing::debug!(task_id = %self.id, ?grace, "killing a task that outlived its grace period");
            signal_group(pid, Signal::SIGKILL);
            self.ended().await;
        }
        Ok(())
    }

    /// Sends SIGKILL to the group of a running task, without waiting.
    pub(crate) fn kill(&self) {
        if let Phase::Started { pid, health, .. } = &*lock(&self.phase) {
            if let Some(h) = health {
                h.abort();
            }
            if self.outcome() == Outcome::Pending {
                signal_group(*pid, Signal::SIGKILL);
            }
        }
    }

    /// Kills the task if it runs, waits for it to end, and ends its logs.
    /// Later calls on this task find it not found. Its directory is left
    /// to the caller.
    pub(crate) async fn remove(&self) {
        let previous = std::mem::replace(&mut *lock(&self.phase), Phase::Removed);
        match previous {
            Phase::Started { pid, health, .. } => {
                if let Some(h) = health {
                    h.abort();
                }
                if self.outcome() == Outcome::Pending {
                    signal_group(pid, Signal::SIGKILL);
                    self.ended().await;
                }
            }
            Phase::Created => {
                self.outcome.send_if_modified(|o| {
                    let pending = *o == Outcome::Pending;
                    if pending {
                        *o = Outcome::Removed;
                    }
                    pending
                });
            }
            Phase::Removed => {}
        }
        self.logs.close();
    }

    /// The task's private directory.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.launch.dir
    }

    /// State, health, pid and start time.
    pub(crate) fn inspect(&self) -> Result<RuntimeStatus, RuntimeError> {
        let phase = lock(&self.phase);
        let (state, runtime_id, started_at) = match (&*phase, self.outcome()) {
            (Phase::Removed, _) => return Err(self.not_found()),
            (Phase::Created, _) => (RuntimeState::Created, None, None),
            (
                Phase::Started {
                    pid, started_at, ..
                },
                outcome,
            ) => {
                let state = match outcome {
                    Outcome::Exited(status) => RuntimeState::Exited(status),
                    Outcome::Pending | Outcome::Removed => RuntimeState::Running,
                };
                (state, Some(pid.to_string()), Some(*started_at))
            }
        };
        Ok(RuntimeStatus {
            state,
            health: *lock(&self.health),
            runtime_id,
            started_at,
        })
    }

    /// The task's output.
    pub(crate) fn logs(&self, options: LogOptions) -> Result<LogStream, RuntimeError> {
        if matches!(*lock(&self.phase), Phase::Removed) {
            return Err(self.not_found());
        }
        Ok(self.logs.stream(options))
    }
}
