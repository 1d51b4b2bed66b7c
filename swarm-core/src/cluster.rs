//! `LocalCluster`: one manager and any number of workers in this process,
//! over the store, runtime and scheduler you choose ([`MemoryStore`] by
//! default).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Id;
use crate::agent::{Agent, AgentConfig, AgentError};
use crate::control::Control;
use crate::dispatcher::{DispatcherConfig, LocalDispatcher};
use crate::manager::{Manager, ManagerConfig};
use crate::runtime::Runtime;
use crate::sched::Scheduler;
use crate::store::{MemoryStore, State, Store};

/// Settings of a [`LocalCluster`].
#[derive(Debug, Clone, Default)]
pub struct LocalClusterConfig {
    /// Heartbeats.
    pub dispatcher: DispatcherConfig,
    /// The manager's loops.
    pub manager: ManagerConfig,
    /// Every worker's agent (the hostname is set per worker).
    pub agent: AgentConfig,
}

impl LocalClusterConfig {
    /// Fast failure detection, for tests and demos: heartbeats every
    /// `period`, a node down after 3 missed.
    #[must_use]
    pub fn heartbeat(mut self, period: Duration) -> Self {
        self.dispatcher = self.dispatcher.heartbeat_period(period);
        self
    }
}

struct Worker<R> {
    hostname: String,
    runtime: Arc<R>,
    agent: Option<(CancellationToken, JoinHandle<Result<(), AgentError>>)>,
}

/// A whole cluster in one process: a manager (store, control loops,
/// dispatcher) and workers whose agents run tasks through `R`. The store
/// is `S`: [`MemoryStore`] by default, or a durable one (the raft store of
/// swarm-raft) through [`LocalCluster::start_with_store`].
///
/// Workers talk to the manager through the same [`Dispatcher`] trait a
/// networked worker uses; only the transport differs.
///
/// [`Dispatcher`]: crate::dispatcher::Dispatcher
pub struct LocalCluster<R: Runtime, S: Store = MemoryStore> {
    store: Arc<S>,
    control: Control<Arc<S>>,
    dispatcher: Arc<LocalDispatcher<Arc<S>>>,
    config: LocalClusterConfig,
    manager: Option<(CancellationToken, JoinHandle<()>)>,
    workers: BTreeMap<Id, Worker<R>>,
}

/// Waiting for a condition took too long.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {0:?} waiting for the cluster to {1}")]
pub struct Timeout(pub Duration, pub String);

/// Why a worker could not join.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The manager refused or failed to admit it.
    #[error("cannot admit the worker: {0}")]
    Admit(#[from] crate::dispatcher::DispatcherError),
    /// It did not become ready in time.
    #[error(transparent)]
    Timeout(#[from] Timeout),
}

impl<R: Runtime> LocalCluster<R> {
    /// Starts the manager over a new [`MemoryStore`] with `scheduler`; add
    /// workers with [`add_worker`](Self::add_worker).
    pub fn start<Sch: Scheduler>(scheduler: Sch, config: LocalClusterConfig) -> Self {
        Self::start_with_store(MemoryStore::new(), scheduler, config)
    }
}

impl<R: Runtime, S: Store> LocalCluster<R, S> {
    /// Starts the manager over `store` (which may already hold a cluster's
    /// state: the loops carry on from it) with `scheduler`.
    pub fn start_with_store<Sch: Scheduler>(
        store: S,
        scheduler: Sch,
        config: LocalClusterConfig,
    ) -> Self {
        let store = Arc::new(store);
        let dispatcher = Arc::new(LocalDispatcher::new(
            store.clone(),
            config.dispatcher.clone(),
        ));
        let token = CancellationToken::new();
        let manager = Manager::new(store.clone(), scheduler, config.manager.clone())
            .with_dispatcher(dispatcher.clone());
        let handle = tokio::spawn(manager.run(token.clone()));
        Self {
            control: Control::new(store.clone()),
            store,
            dispatcher,
            config,
            manager: Some((token, handle)),
            workers: BTreeMap::new(),
        }
    }

    /// The control API: services, nodes, secrets, configs.
    #[must_use]
    pub fn control(&self) -> &Control<Arc<S>> {
        &self.control
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The node ids of the workers, in id order.
    #[must_use]
    pub fn workers(&self) -> Vec<Id> {
        self.workers.keys().cloned().collect()
    }

    /// The runtime of a worker.
    #[must_use]
    pub fn runtime(&self, node: &Id) -> Option<&Arc<R>> {
        self.workers.get(node).map(|w| &w.runtime)
    }

    /// Joins a worker named `hostname` running tasks with `runtime`, and
    /// waits until the manager sees it ready.
    pub async fn add_worker(&mut self, hostname: &str, runtime: R) -> Result<Id, ClusterError> {
        let id = Id::generate();
        self.dispatcher
            .admit(&id, crate::model::NodeRole::Worker)
            .await?;
        self.workers.insert(
            id.clone(),
            Worker {
                hostname: hostname.into(),
                runtime: Arc::new(runtime),
                agent: None,
            },
        );
        self.start_agent(&id);
        let wait_id = id.clone();
        self.wait_until(
            Duration::from_secs(10),
            &format!("see worker {hostname} ready"),
            move |s| {
                s.node(&wait_id)
                    .is_some_and(|n| n.status.state == crate::model::NodeState::Ready)
            },
        )
        .await?;
        Ok(id)
    }

    fn start_agent(&mut self, id: &Id) {
        let Some(w) = self.workers.get_mut(id) else {
            return;
        };
        if w.agent.is_some() {
            return;
        }
        let token = CancellationToken::new();
        let config = self.config.agent.clone().hostname(w.hostname.clone());
        let agent = Agent::new(
            id.clone(),
            w.runtime.clone(),
            self.dispatcher.clone(),
            config,
        );
        w.agent = Some((token.clone(), tokio::spawn(agent.run(token))));
    }

    /// Stops a worker's agent as if its machine dropped off the network:
    /// its tasks keep running, its heartbeats stop, and the manager marks
    /// it down and replaces its tasks.
    pub async fn stop_worker(&mut self, node: &Id) {
        if let Some((token, handle)) = self.workers.get_mut(node).and_then(|w| w.agent.take()) {
            token.cancel();
            let _ = handle.await;
        }
    }

    /// Starts a stopped worker's agent again with its identity: it
    /// re-registers and stops the tasks that are no longer its own.
    pub fn restart_worker(&mut self, node: &Id) {
        self.start_agent(node);
    }

    /// A worker leaves: its agent stops, its tasks are stopped and removed,
    /// and the node is removed from the cluster.
    pub async fn remove_worker(&mut self, node: &Id) -> Result<(), crate::control::ControlError> {
        self.stop_worker(node).await;
        if let Some(w) = self.workers.remove(node) {
            stop_all(&*w.runtime).await;
        }
        self.control.remove_node(node, true).await
    }

    /// Waits until `cond` holds for the store's state; returns that state.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        cond: impl Fn(&State) -> bool,
    ) -> Result<State, Timeout> {
        wait_until(&*self.store, timeout, what, cond).await
    }

    /// Stops the manager, every agent, and every task on every worker.
    pub async fn shutdown(&mut self) {
        if let Some((token, handle)) = self.manager.take() {
            token.cancel();
            let _ = handle.await;
        }
        let ids: Vec<Id> = self.workers.keys().cloned().collect();
        for id in ids {
            self.stop_worker(&id).await;
            if let Some(w) = self.workers.get(&id) {
                stop_all(&*w.runtime).await;
            }
        }
    }
}

/// Waits until `cond` holds for `store`'s state (polling every 20 ms);
/// returns that state, or [`Timeout`] naming `what` it waited for.
pub async fn wait_until<S: Store + ?Sized>(
    store: &S,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&State) -> bool,
) -> Result<State, Timeout> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(state) = store.state().await
            && cond(&state)
        {
            return Ok(state);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Timeout(timeout, what.to_owned()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops and removes every task a runtime holds.
async fn stop_all<R: Runtime>(runtime: &R) {
    if let Ok(ids) = runtime.list().await {
        for id in ids {
            let _ = runtime.stop(&id, Duration::from_secs(2)).await;
            let _ = runtime.remove(&id).await;
        }
    }
}

impl<R: Runtime, S: Store> Drop for LocalCluster<R, S> {
    fn drop(&mut self) {
        if let Some((token, _)) = &self.manager {
            token.cancel();
        }
        for w in self.workers.values() {
            if let Some((token, _)) = &w.agent {
                token.cancel();
            }
        }
    }
}
