//! `LocalDispatcher`: the dispatcher served from a store in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    Assignment, AssignmentStream, Assignments, Dispatcher, DispatcherError, Registration,
    StatusUpdate,
};
use crate::Id;
use crate::model::{
    Node, NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus, Object, Task, TaskState,
};
use crate::runtime::{FileKind, TaskFile};
use crate::store::{Change, ErrorKind, State, Store, StoreError};

/// Settings of a [`LocalDispatcher`].
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// How often workers send heartbeats.
    pub heartbeat_period: Duration,
    /// Missed periods after which a node is marked down.
    pub heartbeat_misses: u32,
}

impl Default for DispatcherConfig {
    /// One heartbeat a second, down after three missed: a node is replaced
    /// within about 3 s (Docker Swarm: 5 s and ~15 s).
    fn default() -> Self {
        Self {
            heartbeat_period: Duration::from_secs(1),
            heartbeat_misses: 3,
        }
    }
}

impl DispatcherConfig {
    /// Sets the heartbeat period.
    #[must_use]
    pub fn heartbeat_period(mut self, d: Duration) -> Self {
        self.heartbeat_period = d;
        self
    }

    /// Sets how many missed periods mark a node down (at least 1).
    #[must_use]
    pub fn heartbeat_misses(mut self, n: u32) -> Self {
        self.heartbeat_misses = n.max(1);
        self
    }

    fn deadline(&self) -> Duration {
        self.heartbeat_period * self.heartbeat_misses
    }
}

/// Serves workers from a store: registration creates or revives the node,
/// heartbeats keep it ready, assignments are computed from the store, and
/// reports are written to it. Run [`LocalDispatcher::monitor`] on the
/// leading manager to mark silent nodes down.
#[derive(Debug)]
pub struct LocalDispatcher<S> {
    store: S,
    config: DispatcherConfig,
    last_seen: Mutex<HashMap<Id, Instant>>,
    views: ViewCache,
    following: Following,
}

/// How far each node's data plane follows the store.
#[derive(Clone, Debug, Default)]
struct Following {
    nodes: Arc<Mutex<HashMap<Id, Follow>>>,
    /// Told of every change, for [`Dispatcher::await_views`].
    changed: Arc<tokio::sync::watch::Sender<()>>,
}

/// One node's: the index of the last set its session was sent, the index
/// up to which that set stayed the same, and the index of the set it last
/// applied. It follows index `i` when it applied the last set it was sent
/// and that set still held at `i`.
#[derive(Clone, Copy, Debug, Default)]
struct Follow {
    sent: u64,
    holds: u64,
    applied: u64,
}

impl Following {
    fn with(&self, node: &Id, f: impl FnOnce(&mut Follow)) {
        let mut nodes = self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = nodes.entry(node.clone()).or_default();
        let before = (entry.sent, entry.holds, entry.applied);
        f(entry);
        if before != (entry.sent, entry.holds, entry.applied) {
            self.changed.send_replace(());
        }
    }

    fn sent(&self, node: &Id, index: u64) {
        self.with(node, |f| {
            f.sent = f.sent.max(index);
            f.holds = f.holds.max(index);
        });
    }

    fn holds(&self, node: &Id, index: u64) {
        self.with(node, |f| f.holds = f.holds.max(index));
    }

    fn applied(&self, node: &Id, index: u64) {
        self.with(node, |f| f.applied = f.applied.max(index));
    }

    fn follows(&self, node: &Id, index: u64) -> bool {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(node)
            .is_some_and(|f| f.applied >= f.sent && f.holds >= index)
    }
}

/// The network view of the latest state: computed once per commit for
/// every session, not once per session.
#[derive(Clone, Default, Debug)]
struct ViewCache(Arc<Mutex<Option<(u64, SharedView)>>>);

type SharedView = Option<Arc<crate::network::NetworkView>>;

impl ViewCache {
    fn of(&self, state: &State) -> Option<Arc<crate::network::NetworkView>> {
        let mut cached = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((index, view)) = &*cached
            && *index == state.index()
        {
            return view.clone();
        }
        let view = network_view(state);
        *cached = Some((state.index(), view.clone()));
        view
    }
}

fn network_view(state: &State) -> Option<Arc<crate::network::NetworkView>> {
    (state.networks().next().is_some()).then(|| Arc::new(crate::network::NetworkView::of(state)))
}

impl<S: Store + Clone> LocalDispatcher<S> {
    /// A dispatcher over `store`.
    #[must_use]
    pub fn new(store: S, config: DispatcherConfig) -> Self {
        Self {
            store,
            config,
            last_seen: Mutex::new(HashMap::new()),
            views: ViewCache::default(),
            following: Following::default(),
        }
    }

    fn session(&self, role: Option<NodeRole>) -> Registration {
        Registration {
            heartbeat_period: self.config.heartbeat_period,
            managers: Vec::new(),
            role,
        }
    }

    fn seen(&self, node: &Id) {
        self.last_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(node.clone(), Instant::now());
    }

    /// Writes `f(node)` for the node, retrying on conflicts.
    async fn update_node(
        &self,
        id: &Id,
        f: impl Fn(&mut Node) -> bool,
    ) -> Result<(), DispatcherError> {
        for _ in 0..10 {
            let state = self.store.state().await.map_err(unavailable)?;
            let Some(node) = state.node(id) else {
                return Err(DispatcherError::UnknownNode(id.clone()));
            };
            let mut n = (**node).clone();
            if !f(&mut n) {
                return Ok(());
            }
            match self.store.apply(vec![Change::Update(n.into())]).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(DispatcherError::Unavailable(format!(
            "node {id} keeps changing; try again"
        )))
    }

    /// Marks nodes down when they miss their heartbeats, until `shutdown`.
    ///
    /// Nodes already ready when the monitor starts get one full deadline to
    /// check in, so a new leader does not condemn its workers.
    pub async fn monitor(&self, shutdown: CancellationToken) {
        let started = Instant::now();
        let tick = self.config.heartbeat_period / 2;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
            let Ok(state) = self.store.state().await else {
                continue;
            };
            let now = Instant::now();
            let late: Vec<Id> = {
                let seen = self
                    .last_seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                state
                    .nodes()
                    .filter(|n| n.status.state == NodeState::Ready)
                    .filter(|n| {
                        let last = seen
                            .get(&n.meta.id)
                            .copied()
                            .unwrap_or(started)
                            .max(started);
                        now.duration_since(last) > self.config.deadline()
                    })
                    .map(|n| n.meta.id.clone())
                    .collect()
            };
            for id in late {
                crate::metrics::heartbeats_missed();
                tracing::info!(member_id = %id, "node missed its heartbeats; marking it down");
                let _ = self
                    .update_node(&id, |n| {
                        if n.status.state != NodeState::Ready {
                            return false;
                        }
                        n.status.state = NodeState::Down;
                        n.status.message = "heartbeat failure".into();
                        n.status.since = SystemTime::now();
                        true
                    })
                    .await;
            }
        }
    }
}

fn unavailable(e: StoreError) -> DispatcherError {
    DispatcherError::Unavailable(e.to_string())
}

/// The node's tasks, without the network view.
fn tasks_of(state: &State, node: &Id) -> Assignments {
    let mut tasks: Vec<Assignment> = state
        .tasks_on_node(node)
        .filter(|t| t.status.state >= TaskState::Assigned)
        .map(|t| Assignment {
            task: t.clone(),
            files: files_of(state, t),
        })
        .collect();
    tasks.sort_by(|a, b| a.task.meta.id.cmp(&b.task.meta.id));
    Assignments {
        tasks,
        network: None,
        index: state.index(),
    }
}

/// The assignment set of `node` in `state`; the network view comes from
/// `views`.
#[must_use]
fn assignments_cached(state: &State, node: &Id, views: &ViewCache) -> Assignments {
    Assignments {
        network: views.of(state),
        ..tasks_of(state, node)
    }
}

fn files_of(state: &State, t: &Task) -> Vec<TaskFile> {
    if t.desired_state > TaskState::Running || t.status.state.is_terminal() {
        return Vec::new();
    }
    let file = |kind, r: &crate::model::FileReference, data: Option<&Vec<u8>>| {
        data.map(|data| TaskFile {
            kind,
            name: r.name.clone(),
            target: r.target.clone(),
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            data: data.clone(),
        })
    };
    let secrets = t.spec.secrets.iter().filter_map(|r| {
        file(
            FileKind::Secret,
            r,
            state.secret_by_name(&r.name).map(|s| &s.spec.data),
        )
    });
    let configs = t.spec.configs.iter().filter_map(|r| {
        file(
            FileKind::Config,
            r,
            state.config_by_name(&r.name).map(|c| &c.spec.data),
        )
    });
    secrets.chain(configs).collect()
}

/// What tells two sets apart: each task's version, and the network view.
fn fingerprint(a: &Assignments) -> (Vec<(Id, u64)>, Option<Arc<crate::network::NetworkView>>) {
    (
        a.tasks
            .iter()
            .map(|x| (x.task.meta.id.clone(), x.task.meta.version))
            .collect(),
        a.network.clone(),
    )
}

#[async_trait]
impl<S: Store + Clone> Dispatcher for LocalDispatcher<S> {
    async fn register(
        &self,
        node_id: &Id,
        description: NodeDescription,
    ) -> Result<Registration, DispatcherError> {
        // Only a node admitted to the cluster may register: a removed node
        // does not come back by itself.
        self.update_node(node_id, |n| {
            n.description = description.clone();
            n.status = NodeStatus {
                state: NodeState::Ready,
                message: String::new(),
                addr: description
                    .data_addr
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                since: SystemTime::now(),
            };
            true
        })
        .await?;
        self.seen(node_id);
        let state = self.store.state().await.map_err(unavailable)?;
        Ok(self.session(state.node(node_id).map(|n| n.spec.role)))
    }

    async fn heartbeat(&self, node_id: &Id) -> Result<Registration, DispatcherError> {
        self.seen(node_id);
        let state = self.store.state().await.map_err(unavailable)?;
        let Some(n) = state.node(node_id) else {
            return Err(DispatcherError::UnknownNode(node_id.clone()));
        };
        crate::metrics::heartbeat();
        if n.status.state != NodeState::Ready {
            self.update_node(node_id, |n| {
                n.status.state = NodeState::Ready;
                n.status.message = String::new();
                n.status.since = SystemTime::now();
                true
            })
            .await?;
        }
        Ok(self.session(Some(n.spec.role)))
    }

    async fn assignments(&self, node_id: &Id) -> Result<AssignmentStream, DispatcherError> {
        let (state, commits) = self.store.subscribe().await.map_err(unavailable)?;
        if state.node(node_id).is_none() {
            return Err(DispatcherError::UnknownNode(node_id.clone()));
        }
        let store = self.store.clone();
        let node = node_id.clone();
        let views = self.views.clone();
        let following = self.following.clone();
        let first = assignments_cached(&state, &node, &views);
        let last = fingerprint(&first);
        following.sent(&node, first.index);
        let session = crate::metrics::Session::open();
        let rest = futures::stream::unfold(
            (commits, store, node, last, views, session),
            move |(mut commits, store, node, mut last, views, session)| {
                let following = following.clone();
                async move {
                    loop {
                        let commit = match commits.next().await? {
                            Ok(c) => c,
                            Err(_) => return None, // lagged: the worker resubscribes
                        };
                        let relevant = commit.events.iter().any(|e| match e.object() {
                            // Any task on a network can change the view.
                            Object::Task(t) => {
                                t.node_id.as_ref() == Some(&node) || !t.networks.is_empty()
                            }
                            Object::Secret(_)
                            | Object::Config(_)
                            | Object::Network(_)
                            | Object::Service(_)
                            | Object::Cluster(_) => true,
                            Object::Node(_) => true,
                        });
                        if !relevant {
                            following.holds(&node, commit.index);
                            continue;
                        }
                        let state = store.state().await.ok()?;
                        state.node(&node)?;
                        let set = assignments_cached(&state, &node, &views);
                        let fp = fingerprint(&set);
                        if fp != last {
                            last = fp;
                            following.sent(&node, set.index);
                            return Some((set, (commits, store, node, last, views, session)));
                        }
                        following.holds(&node, state.index());
                    }
                }
            },
        );
        Ok(futures::stream::once(async move { first })
            .chain(rest)
            .boxed())
    }

    async fn report(
        &self,
        node_id: &Id,
        updates: Vec<StatusUpdate>,
    ) -> Result<(), DispatcherError> {
        for _ in 0..10 {
            let state = self.store.state().await.map_err(unavailable)?;
            let mut latest: HashMap<&Id, Task> = HashMap::new();
            // Every state a report moves a task through, counted once written.
            let mut states = Vec::new();
            for u in &updates {
                let current = match latest.get(&u.task_id) {
                    Some(t) => t,
                    None => match state.task(&u.task_id) {
                        Some(t) if t.node_id.as_ref() == Some(node_id) => &**t,
                        _ => continue, // not this node's task (any more)
                    },
                };
                if !current.status.state.can_move_to(u.status.state)
                    || !u.status.state.is_worker_owned()
                {
                    continue;
                }
                let mut t = current.clone();
                t.status = u.status.clone();
                states.push(t.status.state);
                if t.status.state == TaskState::Running {
                    t.started_at = Some(t.status.timestamp);
                }
                latest.insert(&u.task_id, t);
            }
            let changes: Vec<Change> = latest
                .into_values()
                .map(|t| Change::Update(t.into()))
                .collect();
            match self.store.apply(changes).await {
                Ok(_) => {
                    crate::metrics::task_states(&states);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(DispatcherError::Unavailable(
            "task status kept changing; report again".into(),
        ))
    }

    async fn view_applied(&self, node_id: &Id, index: u64) -> Result<(), DispatcherError> {
        self.following.applied(node_id, index);
        Ok(())
    }

    /// Counts the nodes ready in the store; one that is ready but has no
    /// session here (yet) does not follow.
    async fn await_views(&self, index: u64, timeout: Duration) -> Result<bool, DispatcherError> {
        let deadline = Instant::now() + timeout;
        let mut changed = self.following.changed.subscribe();
        loop {
            let state = self.store.state().await.map_err(unavailable)?;
            let all = state
                .nodes()
                .filter(|n| n.status.state == NodeState::Ready)
                .all(|n| self.following.follows(&n.meta.id, index));
            if all {
                return Ok(true);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(false),
            }
        }
    }
}

impl<S: Store + Clone> LocalDispatcher<S> {
    /// Admits a node to the cluster, the join step: its record is created
    /// (state `unknown`) so that it may register. Admitting a member again
    /// is a no-op.
    pub async fn admit(&self, node_id: &Id, role: NodeRole) -> Result<(), DispatcherError> {
        let node = Node {
            meta: crate::model::Meta::new(node_id.clone()),
            spec: NodeSpec {
                role,
                ..NodeSpec::default()
            },
            description: NodeDescription::default(),
            status: NodeStatus::default(),
        };
        match self.store.apply(vec![Change::Create(node.into())]).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl<S> LocalDispatcher<S> {
    /// The dispatcher's settings.
    #[must_use]
    pub fn config(&self) -> &DispatcherConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FileReference, Meta, Secret, SecretSpec, Service, ServiceSpec};
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_secret_reaches_only_the_node_whose_task_references_it() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let secret = Secret {
            meta: Meta::new("sec".into()),
            spec: SecretSpec {
                name: "db-pass".into(),
                data: b"hunter2".to_vec(),
                ..Default::default()
            },
        };
        let mut spec = ServiceSpec::replicated("db", 1, vec!["x".into()]);
        spec.task.secrets.push(FileReference {
            name: "db-pass".into(),
            target: "pass".into(),
            mode: 0o400,
            uid: 0,
            gid: 0,
        });
        let service = Service {
            meta: Meta::new("s".into()),
            spec,
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let mut on_n1 = Task::new(&service, 1, Some("n1".into()), vec![]);
        on_n1.status.state = TaskState::Assigned;
        let plain = Service {
            meta: Meta::new("p".into()),
            spec: ServiceSpec::replicated("web", 1, vec!["x".into()]),
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let mut on_n2 = Task::new(&plain, 1, Some("n2".into()), vec![]);
        on_n2.status.state = TaskState::Assigned;
        store
            .apply(vec![
                Change::Create(secret.into()),
                Change::Create(on_n1.into()),
                Change::Create(on_n2.into()),
            ])
            .await
            .unwrap();
        let state = store.state().await.unwrap();
        let n1 = assignments_cached(&state, &"n1".into(), &ViewCache::default());
        assert_eq!(n1.tasks.len(), 1);
        assert_eq!(n1.tasks[0].files.len(), 1);
        assert_eq!(n1.tasks[0].files[0].data, b"hunter2");
        assert_eq!(n1.tasks[0].files[0].target, "pass");
        let n2 = assignments_cached(&state, &"n2".into(), &ViewCache::default());
        assert_eq!(n2.tasks.len(), 1);
        assert!(
            n2.tasks[0].files.is_empty(),
            "no other node gets the secret"
        );
    }

    /// Forwards a node's sets to a channel, as its agent's session would
    /// read them.
    async fn session(
        d: &Arc<LocalDispatcher<Arc<MemoryStore>>>,
        node: &str,
    ) -> tokio::sync::mpsc::UnboundedReceiver<Assignments> {
        d.register(&node.into(), NodeDescription::default())
            .await
            .unwrap();
        let mut stream = d.assignments(&node.into()).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(set) = stream.next().await {
                if tx.send(set).is_err() {
                    return;
                }
            }
        });
        rx
    }

    #[tokio::test]
    async fn a_stop_waits_until_every_ready_node_applied_its_view() {
        let store = Arc::new(MemoryStore::new());
        let d = Arc::new(LocalDispatcher::new(
            store.clone(),
            DispatcherConfig::default(),
        ));
        for n in ["n1", "n2", "idle"] {
            d.admit(&n.into(), NodeRole::Worker).await.unwrap();
        }
        let mut n1 = session(&d, "n1").await;
        let mut n2 = session(&d, "n2").await;
        let (first1, first2) = (n1.recv().await.unwrap(), n2.recv().await.unwrap());
        let at = store.state().await.unwrap().index();
        let short = Duration::from_millis(50);
        assert!(!d.await_views(at, short).await.unwrap(), "none applied");
        d.view_applied(&"n1".into(), first1.index).await.unwrap();
        assert!(!d.await_views(at, short).await.unwrap(), "n2 did not");
        // A waiter wakes when the last one applies; `idle` never
        // registered (not ready) and is not waited for.
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.await_views(at, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(short).await;
        d.view_applied(&"n2".into(), first2.index).await.unwrap();
        assert!(waiter.await.unwrap().unwrap());

        // A task for n1 changes n1's set, not n2's: n2 follows the new
        // index with the set it applied, n1 once it applies its new one.
        let service = Service {
            meta: Meta::new("s".into()),
            spec: ServiceSpec::replicated("web", 1, vec!["x".into()]),
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let mut task = Task::new(&service, 1, Some("n1".into()), vec![]);
        task.status.state = TaskState::Assigned;
        store
            .apply(vec![Change::Create(task.into())])
            .await
            .unwrap();
        let changed = n1.recv().await.unwrap();
        assert_eq!(changed.tasks.len(), 1);
        assert!(!d.await_views(changed.index, short).await.unwrap());
        d.view_applied(&"n1".into(), changed.index).await.unwrap();
        assert!(
            d.await_views(changed.index, short).await.unwrap(),
            "n2's set held at that index"
        );
        assert!(n2.try_recv().is_err(), "n2 was sent nothing new");
    }
}
