//! One task's controller on a worker: drives the runtime through prepare,
//! start, wait and stop, and reports each state change.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::Id;
use crate::dispatcher::{Dispatcher, StatusUpdate};
use crate::model::{Task, TaskState, TaskStatus};
use crate::network::{NetworkDriver, Sandbox};
use crate::runtime::{ExitStatus, Health, Runtime, RuntimeError, RuntimeState, TaskFile};

/// Reports go through this channel to the agent's reporter.
pub(crate) type Reports = mpsc::UnboundedSender<StatusUpdate>;

pub(crate) struct Controller<R> {
    pub runtime: Arc<R>,
    /// Gives the task its network namespace.
    pub network: Arc<dyn NetworkDriver>,
    /// Asked whether every node stopped sending a stopping task traffic.
    pub dispatcher: Arc<dyn Dispatcher>,
    /// How long a task on a network drains, once no node sends it new
    /// connections, before it is stopped.
    pub drain: Duration,
    pub task: watch::Receiver<(Arc<Task>, Vec<TaskFile>)>,
    pub reports: Reports,
    /// How often health is polled while starting and running.
    pub health_poll: Duration,
    /// The runtime's handle, once the task started: every later report
    /// carries it, so that a failed or shut-down task still names its
    /// container or process.
    pub runtime_id: std::sync::OnceLock<String>,
}

/// How long a stopping task waits for every node's data plane to follow
/// its leaving (about 50 ms on a healthy cluster); a node whose agent does
/// not answer costs at most this.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

enum Outcome {
    Exited(ExitStatus),
    Unhealthy,
    ShutDown,
}

impl<R: Runtime> Controller<R> {
    fn current(&self) -> Arc<Task> {
        self.task.borrow().0.clone()
    }

    fn id(&self) -> Id {
        self.current().meta.id.clone()
    }

    fn report(&self, mut status: TaskStatus) {
        match &status.runtime_id {
            Some(id) => {
                let _ = self.runtime_id.set(id.clone());
            }
            None => {
                status.runtime_id = self
                    .runtime_id
                    .get()
                    .cloned()
                    .or_else(|| self.current().status.runtime_id.clone());
            }
        }
        let _ = self.reports.send(StatusUpdate {
            task_id: self.id(),
            status,
        });
    }

    fn state(&self, state: TaskState, message: &'static str) {
        self.report(TaskStatus::new(state, message));
    }

    fn shutdown_wanted(&self) -> bool {
        self.current().desired_state > TaskState::Running
    }

    /// Drives the task to a final state, then frees its network namespace
    /// (its addresses may go to another task from then on).
    pub(crate) async fn run(self) {
        let (network, id) = (self.network.clone(), self.id());
        self.drive().await;
        if let Err(e) = network.detach(&id).await {
            tracing::warn!(task_id = %id, error = %e, "could not remove the task's network namespace");
        }
    }

    async fn drive(self) {
        let task = self.current();
        let initial = task.status.state;
        if initial.is_terminal() {
            return;
        }
        if initial >= TaskState::Starting {
            return self.adopt().await;
        }
        if self.shutdown_wanted() {
            return self.state(TaskState::Shutdown, "shut down before it started");
        }
        if initial < TaskState::Accepted {
            self.state(TaskState::Accepted, "accepted");
        }
        self.state(TaskState::Preparing, "preparing");
        let files = self.task.borrow().1.clone();
        let sandbox = match self.attach(&task).await {
            Ok(s) => s,
            Err(e) => {
                return self.report(
                    TaskStatus::new(TaskState::Rejected, "network attach failed").with_err(e),
                );
            }
        };
        let mut rx = self.task.clone();
        // A runtime that is briefly unavailable gets a few more tries; any
        // other error means the task cannot run here.
        let mut backoff = Duration::from_millis(200);
        let prepared = loop {
            let attempt = tokio::select! {
                r = async {
                    match &sandbox {
                        Some(sb) => self.runtime.prepare_in(&task, &files, sb).await,
                        None => self.runtime.prepare(&task, &files).await,
                    }
                } => r,
                () = shutdown_requested(&mut rx) => {
                    return self.state(TaskState::Shutdown, "shut down while preparing");
                }
            };
            match attempt {
                Err(RuntimeError::Unavailable(_)) if backoff < Duration::from_secs(5) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                other => break other,
            }
        };
        if let Err(e) = prepared {
            return self.report(
                TaskStatus::new(TaskState::Rejected, "preparing failed").with_err(e.to_string()),
            );
        }
        self.state(TaskState::Ready, "prepared");
        if self.shutdown_wanted() {
            return self.state(TaskState::Shutdown, "shut down before it started");
        }
        self.state(TaskState::Starting, "starting");
        if let Err(e) = self.runtime.start(&task.meta.id).await {
            return self.report(
                TaskStatus::new(TaskState::Failed, "starting failed").with_err(e.to_string()),
            );
        }
        self.run_started(true).await;
    }

    /// Gives the task its sandbox when it is on networks, this node's
    /// driver isolates tasks and the runtime can run them there: in a
    /// namespace the runtime holds, if it holds one, else in one the
    /// driver makes. `None`: the task shares the host's network.
    async fn attach(&self, task: &Task) -> Result<Option<Sandbox>, String> {
        if task.networks.is_empty() || !self.runtime.runs_in_sandboxes() || !self.network.isolates()
        {
            return Ok(None);
        }
        let holder = self
            .runtime
            .hold_sandbox(task)
            .await
            .map_err(|e| format!("runtime: {e}"))?;
        self.network
            .attach(task, holder)
            .await
            .map_err(|e| format!("network: {e}"))
    }

    /// Picks up a task that was already started, after an agent restart.
    async fn adopt(self) {
        let id = self.id();
        match self.runtime.inspect(&id).await {
            Ok(s) if !matches!(s.state, RuntimeState::Exited(_)) => {
                // Its sandbox outlived the agent before, but not that
                // agent's DNS and VIP rules: the driver takes it up. A
                // failure leaves the task running, without them (and
                // logged).
                // The first view may not have reached the driver yet (it
                // then knows none of the task's networks): a few tries.
                let task = self.current();
                let mut tries = 0;
                while let Err(e) = self.attach(&task).await {
                    tries += 1;
                    if tries == 20 {
                        tracing::warn!(task_id = %id, error = %e, "could not take up the task's network sandbox");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                self.adopted(s.state).await;
            }
            Ok(s) => self.adopted(s.state).await,
            Err(RuntimeError::NotFound(_)) => self.report(
                TaskStatus::new(TaskState::Failed, "lost")
                    .with_err("the runtime no longer has this task (the node restarted?)"),
            ),
            Err(e) => {
                self.report(TaskStatus::new(TaskState::Failed, "lost").with_err(e.to_string()))
            }
        }
    }

    /// Goes on with an adopted task from the runtime's `state` of it.
    async fn adopted(self, state: RuntimeState) {
        let id = self.id();
        match state {
            RuntimeState::Exited(exit) => self.report_exit(exit),
            RuntimeState::Created => {
                // The agent stopped between `Starting` and the start.
                if let Err(e) = self.runtime.start(&id).await {
                    return self.report(
                        TaskStatus::new(TaskState::Failed, "starting failed")
                            .with_err(e.to_string()),
                    );
                }
                self.run_started(true).await;
            }
            RuntimeState::Running => {
                let starting = self.current().status.state < TaskState::Running;
                self.run_started(starting).await;
            }
        }
    }

    /// From a started task to its end: wait for health, then for the exit
    /// or a shutdown request.
    async fn run_started(self, starting: bool) {
        let task = self.current();
        let id = task.meta.id.clone();
        // The spec's check, or one the runtime applies of its own (an
        // image's HEALTHCHECK): either way the runtime reports health.
        let checked = match &task.spec.healthcheck {
            Some(h) if !h.is_disabled() => true,
            _ => self.runtime_checks_health(&id).await,
        };
        let mut running = !starting;
        if !checked && !running {
            self.report(running_status(&*self.runtime, &id).await);
            running = true;
        }
        let runtime = self.runtime.clone();
        let poll = self.health_poll;
        let mut rx = self.task.clone();
        let outcome = {
            let wait = runtime.wait(&id);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    r = &mut wait => break match r {
                        Ok(exit) => Outcome::Exited(exit),
                        Err(e) => {
                            return self.report(TaskStatus::new(TaskState::Failed, "lost").with_err(e.to_string()));
                        }
                    },
                    () = shutdown_requested(&mut rx) => break Outcome::ShutDown,
                    () = tokio::time::sleep(poll), if checked => {
                        match runtime.inspect(&id).await.ok().and_then(|s| s.health) {
                            Some(Health::Healthy) if !running => {
                                self.report(running_status(&*runtime, &id).await);
                                running = true;
                            }
                            Some(Health::Unhealthy) => break Outcome::Unhealthy,
                            _ => {}
                        }
                    }
                }
            }
        };
        match outcome {
            Outcome::Exited(exit) => self.report_exit(exit),
            Outcome::ShutDown => {
                if !task.networks.is_empty() && !self.drain.is_zero() {
                    // It left DNS and the balancers when it was told to
                    // stop: once every node follows that, let what is in
                    // flight finish.
                    let wait = self.runtime.wait(&id);
                    let _ = tokio::time::timeout(FOLLOW_WAIT + self.drain, async {
                        tokio::select! {
                            _ = wait => {}
                            () = self.drain_after_views() => {}
                        }
                    })
                    .await;
                }
                let grace = self.current().spec.stop_grace_period;
                let stopped = self.runtime.stop(&id, grace).await;
                let mut status = TaskStatus::new(TaskState::Shutdown, "shutdown");
                if let Err(e) = stopped {
                    status = status.with_err(e.to_string());
                }
                status.exit_code =
                    self.runtime
                        .inspect(&id)
                        .await
                        .ok()
                        .and_then(|s| match s.state {
                            RuntimeState::Exited(e) => Some(e.code),
                            _ => None,
                        });
                self.report(status);
            }
            Outcome::Unhealthy => {
                let grace = self.current().spec.stop_grace_period;
                let _ = self.runtime.stop(&id, grace).await;
                self.report(
                    TaskStatus::new(TaskState::Failed, "unhealthy")
                        .with_err("task: unhealthy (health check failed)"),
                );
            }
        }
    }

    /// Waits until no node sends the task new connections (it stopped
    /// serving at its current version), then for the drain period.
    async fn drain_after_views(&self) {
        let task = self.current();
        let index = task.meta.version;
        let began = tokio::time::Instant::now();
        match self.dispatcher.await_views(index, FOLLOW_WAIT).await {
            Ok(true) => tracing::debug!(
                task_id = %task.meta.id, waited = ?began.elapsed(),
                "no node sends the stopping task new connections"
            ),
            Ok(false) => tracing::warn!(
                task_id = %task.meta.id,
                "not every node's data plane followed the task's stop within {FOLLOW_WAIT:?}; stopping it anyway"
            ),
            Err(e) => tracing::warn!(
                task_id = %task.meta.id, error = %e,
                "cannot learn whether every node stopped sending the task traffic; stopping it anyway"
            ),
        }
        tokio::time::sleep(self.drain).await;
    }

    /// Whether the runtime reports health for a task whose spec has no
    /// check; a few tries, so that one failed `inspect` does not make it
    /// ignore an image's check for the task's whole life.
    async fn runtime_checks_health(&self, id: &Id) -> bool {
        for _ in 0..3 {
            match self.runtime.inspect(id).await {
                Ok(s) => return s.health.is_some(),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        false
    }

    fn report_exit(&self, exit: ExitStatus) {
        let mut status = if exit.success() {
            TaskStatus::new(TaskState::Complete, "finished")
        } else {
            let why = match exit.signal {
                Some(sig) => format!("task: killed by signal {sig}"),
                None => format!("task: non-zero exit ({})", exit.code),
            };
            TaskStatus::new(TaskState::Failed, "failed").with_err(why)
        };
        status.exit_code = Some(exit.code);
        self.report(status);
    }
}

/// Resolves when the manager wants the task shut down (never, if the agent
/// drops the controller first).
async fn shutdown_requested(rx: &mut watch::Receiver<(Arc<Task>, Vec<TaskFile>)>) {
    loop {
        if rx.borrow_and_update().0.desired_state > TaskState::Running {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn running_status<R: Runtime>(runtime: &R, id: &Id) -> TaskStatus {
    let mut s = TaskStatus::new(TaskState::Running, "started");
    s.runtime_id = runtime.inspect(id).await.ok().and_then(|i| i.runtime_id);
    s
}
