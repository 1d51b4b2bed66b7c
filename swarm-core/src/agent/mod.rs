//! The worker's agent: registers with the managers, keeps heartbeating,
//! runs the tasks assigned to its node through a [`Runtime`], and reports
//! their states.

mod controller;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Id;
use crate::dispatcher::{Assignments, Dispatcher, DispatcherError, StatusUpdate};
use crate::model::Task;
use crate::network::{HostNetwork, NetworkDriver, NetworkView};
use crate::runtime::{Runtime, TaskFile};
use controller::Controller;

/// Settings of an [`Agent`].
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Overrides the hostname the runtime reports.
    pub hostname: Option<String>,
    /// The node's underlay address, reported to the managers: where the
    /// other nodes send its overlay traffic.
    pub data_addr: Option<std::net::IpAddr>,
    /// Status reports are gathered this long and sent in one batch.
    pub report_interval: Duration,
    /// How often health is looked at while a task starts and runs.
    pub health_poll: Duration,
    /// How often the runtime is searched for tasks the agent no longer
    /// has (a container whose creation finished after its task was taken
    /// away, say); one found twice in a row is removed.
    pub stray_sweep: Duration,
    /// How long a task on a network keeps running after it left DNS and
    /// the load balancers, before it is told to stop: connections in
    /// flight finish, and no new one reaches it meanwhile.
    pub drain: Duration,
    /// Generic resources the node advertises besides the runtime's own
    /// (`swarmd --node-generic-resource gpu=GPU-9f2c`): tasks that reserve
    /// them are placed here and told which they got.
    pub generic_resources: Vec<crate::model::GenericResource>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            hostname: None,
            data_addr: None,
            report_interval: Duration::from_millis(20),
            health_poll: Duration::from_millis(250),
            stray_sweep: Duration::from_secs(30),
            drain: Duration::from_secs(1),
            generic_resources: Vec::new(),
        }
    }
}

impl AgentConfig {
    /// Sets the hostname the node reports.
    #[must_use]
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.hostname = Some(name.into());
        self
    }

    /// Sets how often the runtime is searched for stray tasks.
    #[must_use]
    pub fn stray_sweep(mut self, every: Duration) -> Self {
        self.stray_sweep = every;
        self
    }

    /// Sets how long a task on a network drains before it is stopped.
    #[must_use]
    pub fn drain(mut self, d: Duration) -> Self {
        self.drain = d;
        self
    }

    /// Sets how often health is polled.
    #[must_use]
    pub fn health_poll(mut self, d: Duration) -> Self {
        self.health_poll = d;
        self
    }
}

/// What stops an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The managers do not know this node (it was removed).
    #[error(transparent)]
    Dispatcher(#[from] DispatcherError),
    /// The runtime cannot describe the node.
    #[error("the runtime cannot describe this node: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
}

/// A worker's agent.
///
/// ```no_run
/// # async fn demo<R: swarm_core::runtime::Runtime, D: swarm_core::dispatcher::Dispatcher>(runtime: R, dispatcher: D) {
/// use swarm_core::agent::{Agent, AgentConfig};
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// let agent = Agent::new("node-1".into(), runtime, dispatcher, AgentConfig::default());
/// agent.run(shutdown).await.unwrap();
/// # }
/// ```
pub struct Agent<R, D> {
    node_id: Id,
    runtime: Arc<R>,
    dispatcher: Arc<D>,
    config: AgentConfig,
    network: Arc<dyn NetworkDriver>,
    /// Tasks taken away that are still being stopped (with their grace
    /// period) and removed: no stray sweep touches them.
    stopping: Arc<std::sync::Mutex<std::collections::HashSet<Id>>>,
}

/// What the network follower is given: a set's index and its view.
type Followed = (u64, Option<Arc<NetworkView>>);

/// A task the agent knows, from its assignment until it leaves the set.
struct Running {
    tx: watch::Sender<(Arc<Task>, Vec<TaskFile>)>,
    /// Its controller; `None` for a task that was already finished when
    /// the agent first saw it.
    handle: Option<JoinHandle<()>>,
}

impl<R: Runtime, D: Dispatcher> Agent<R, D> {
    /// An agent for node `node_id`.
    #[must_use]
    pub fn new(node_id: Id, runtime: R, dispatcher: D, config: AgentConfig) -> Self {
        Self {
            node_id,
            runtime: Arc::new(runtime),
            stopping: Arc::default(),
            dispatcher: Arc::new(dispatcher),
            config,
            network: Arc::new(HostNetwork),
        }
    }

    /// Gives tasks their networks through `driver` (by default they share
    /// the host's network: [`HostNetwork`]).
    #[must_use]
    pub fn with_network(mut self, driver: Arc<dyn NetworkDriver>) -> Self {
        self.network = driver;
        self
    }

    /// The node's id.
    #[must_use]
    pub fn node_id(&self) -> &Id {
        &self.node_id
    }

    /// The runtime the agent drives.
    #[must_use]
    pub fn runtime(&self) -> &Arc<R> {
        &self.runtime
    }

    /// Runs until `shutdown` fires, or the managers forget the node.
    ///
    /// When it stops, the agent leaves its tasks running, as a crashed
    /// worker would: the managers replace them if the node stays away, and
    /// an agent that comes back stops those that are no longer its own.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let mut info = self.runtime.info().await?;
        if let Some(h) = &self.config.hostname {
            info.description.hostname.clone_from(h);
        }
        if self.config.data_addr.is_some() {
            info.description.data_addr = self.config.data_addr;
        }
        info.description
            .generic_resources
            .extend(self.config.generic_resources.iter().cloned());
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let stop = shutdown.child_token();
        let reporter = tokio::spawn(report_loop(
            self.node_id.clone(),
            self.dispatcher.clone(),
            reports_rx,
            self.config.report_interval,
            stop.clone(),
        ));
        // The view can change often: the driver follows it one update at
        // a time, the newest winning, and the managers hear how far it got
        // (a task is stopped once every node stopped sending it traffic).
        let (views, mut views_rx) = watch::channel(None::<Followed>);
        let follower = tokio::spawn({
            let (network, stop) = (self.network.clone(), stop.clone());
            let (dispatcher, node) = (self.dispatcher.clone(), self.node_id.clone());
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        r = views_rx.changed() => if r.is_err() { return },
                    }
                    let Some((index, view)) = views_rx.borrow_and_update().clone() else {
                        continue;
                    };
                    if let Some(view) = view
                        && let Err(e) = network.update(view).await
                    {
                        tracing::warn!(error = %e, "the network driver could not follow the cluster's view");
                        continue;
                    }
                    if let Err(e) = dispatcher.view_applied(&node, index).await {
                        tracing::debug!(error = %e, index, "could not tell the managers the view was applied");
                    }
                }
            }
        });
        let result = self
            .session_loop(info.description, reports_tx, &views, &stop)
            .await;
        stop.cancel();
        let _ = reporter.await;
        let _ = follower.await;
        result
    }

    async fn session_loop(
        &self,
        description: crate::model::NodeDescription,
        reports: mpsc::UnboundedSender<StatusUpdate>,
        views: &watch::Sender<Option<Followed>>,
        shutdown: &CancellationToken,
    ) -> Result<(), AgentError> {
        let mut tasks: HashMap<Id, Running> = HashMap::new();
        let mut first = true;
        let mut backoff = Duration::from_millis(100);
        let result = loop {
            let session = async {
                let reg = self
                    .dispatcher
                    .register(&self.node_id, description.clone())
                    .await?;
                let stream = self.dispatcher.assignments(&self.node_id).await?;
                Ok::<_, DispatcherError>((reg, stream))
            };
            let (reg, mut stream) = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                r = session => match r {
                    Ok(x) => x,
                    Err(e @ DispatcherError::UnknownNode(_)) => break Err(e.into()),
                    Err(e) => {
                        tracing::warn!(node_id = %self.node_id, error = %e, "cannot reach the managers; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            backoff = Duration::from_millis(100);
            let mut heartbeat = tokio::time::interval(reg.heartbeat_period);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sweep = tokio::time::interval_at(
                tokio::time::Instant::now() + self.config.stray_sweep,
                self.config.stray_sweep,
            );
            sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // What the runtime holds comes back from a task of its own, so
            // that a slow engine never holds up the heartbeats.
            let (held_tx, mut held_rx) = mpsc::channel::<Vec<Id>>(1);
            let mut suspects = std::collections::HashSet::new();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = heartbeat.tick() => {
                        // A manager that does not answer must not hold up
                        // the agent's shutdown.
                        let beat = tokio::select! {
                            () = shutdown.cancelled() => break,
                            r = self.dispatcher.heartbeat(&self.node_id) => r,
                        };
                        if let Err(e) = beat {
                            tracing::warn!(node_id = %self.node_id, error = %e, "heartbeat failed");
                            if matches!(e, DispatcherError::UnknownNode(_)) {
                                break;
                            }
                        }
                    }
                    // Not before the first set: until then every task the
                    // runtime holds looks like a stray.
                    _ = sweep.tick(), if !first => {
                        let (runtime, tx) = (self.runtime.clone(), held_tx.clone());
                        let limit = self.config.stray_sweep;
                        tokio::spawn(async move {
                            if let Ok(Ok(held)) = tokio::time::timeout(limit, runtime.list()).await {
                                let _ = tx.try_send(held);
                            }
                        });
                    }
                    Some(held) = held_rx.recv() => {
                        suspects = self.sweep_strays(held, &tasks, suspects);
                    }
                    set = stream.next() => match set {
                        Some(set) => {
                            if std::mem::take(&mut first) {
                                self.clean_up_strays(&set).await;
                            }
                            views.send_replace(Some((set.index, set.network.clone())));
                            self.apply(set, &mut tasks, &reports);
                        }
                        None => break,
                    },
                }
            }
            if shutdown.is_cancelled() {
                break Ok(());
            }
        };
        // Controllers stop; their tasks keep running in the runtime.
        for (_, r) in tasks {
            if let Some(h) = r.handle {
                h.abort();
            }
        }
        result
    }

    /// Stops and removes what the runtime holds that is no longer ours.
    async fn clean_up_strays(&self, set: &Assignments) {
        let Ok(held) = self.runtime.list().await else {
            return;
        };
        for id in held {
            if !set.tasks.iter().any(|a| a.task.meta.id == id) {
                tracing::info!(task_id = %id, "removing a task that is no longer assigned to this node");
                let _ = self.runtime.remove(&id).await;
                let _ = self.network.detach(&id).await;
            }
        }
    }

    /// Removes, in the background, what the runtime holds (`held`) that
    /// the agent has not known for two sweeps in a row and is not
    /// stopping; returns the new suspects.
    fn sweep_strays(
        &self,
        held: Vec<Id>,
        tasks: &HashMap<Id, Running>,
        suspects: std::collections::HashSet<Id>,
    ) -> std::collections::HashSet<Id> {
        let stopping = self
            .stopping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut next = std::collections::HashSet::new();
        for id in held
            .into_iter()
            .filter(|id| !tasks.contains_key(id) && !stopping.contains(id))
        {
            if suspects.contains(&id) {
                tracing::info!(task_id = %id, "removing a stray task from the runtime");
                let runtime = self.runtime.clone();
                tokio::spawn(async move {
                    let _ = runtime.remove(&id).await;
                });
            } else {
                next.insert(id);
            }
        }
        next
    }

    fn apply(
        &self,
        set: Assignments,
        tasks: &mut HashMap<Id, Running>,
        reports: &mpsc::UnboundedSender<StatusUpdate>,
    ) {
        let mut seen = std::collections::HashSet::with_capacity(set.tasks.len());
        for a in set.tasks {
            let id = a.task.meta.id.clone();
            seen.insert(id.clone());
            if let Some(r) = tasks.get(&id) {
                r.tx.send_replace((a.task, a.files));
                continue;
            }
            let finished = a.task.status.state.is_terminal();
            let (tx, rx) = watch::channel((a.task, a.files));
            if finished {
                // Nothing to run, but the runtime may hold it: it is
                // removed when the task leaves the set.
                tasks.insert(id, Running { tx, handle: None });
                continue;
            }
            let controller = Controller {
                runtime: self.runtime.clone(),
                network: self.network.clone(),
                dispatcher: self.dispatcher.clone(),
                drain: self.config.drain,
                task: rx,
                reports: reports.clone(),
                health_poll: self.config.health_poll,
                runtime_id: std::sync::OnceLock::new(),
            };
            tasks.insert(
                id,
                Running {
                    tx,
                    handle: Some(tokio::spawn(controller.run())),
                },
            );
        }
        // Tasks no longer assigned (reaped, or given to another node): stop
        // them, free what the runtime holds, forget them.
        let gone: Vec<Id> = tasks
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Some(r) = tasks.remove(&id) {
                if let Some(h) = r.handle {
                    h.abort();
                }
                let runtime = self.runtime.clone();
                let network = self.network.clone();
                let grace = r.tx.borrow().0.spec.stop_grace_period;
                let stopping = self.stopping.clone();
                stopping
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id.clone());
                tokio::spawn(async move {
                    let _ = runtime.stop(&id, grace).await;
                    let _ = runtime.remove(&id).await;
                    if let Err(e) = network.detach(&id).await {
                        tracing::warn!(task_id = %id, error = %e, "could not remove the task's network namespace");
                    }
                    stopping
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&id);
                });
            }
        }
    }
}

async fn report_loop<D: Dispatcher>(
    node: Id,
    dispatcher: Arc<D>,
    mut rx: mpsc::UnboundedReceiver<StatusUpdate>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut pending: Vec<StatusUpdate> = Vec::new();
    loop {
        if pending.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                u = rx.recv() => match u {
                    Some(u) => pending.push(u),
                    None => return,
                },
            }
        }
        // Gather what arrives within the interval, then send in one batch.
        let deadline = tokio::time::sleep(interval);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => break,
                u = rx.recv() => match u {
                    Some(u) => pending.push(u),
                    None => break,
                },
            }
        }
        match dispatcher.report(&node, pending.clone()).await {
            Ok(()) => pending.clear(),
            Err(e) => {
                tracing::warn!(node_id = %node, error = %e, updates = pending.len(), "status report failed; will retry");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
