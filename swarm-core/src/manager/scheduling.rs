//! The scheduling loop: keeps a picture of every node's load, feeds
//! pending tasks to a [`Scheduler`] in batches, and writes its decisions.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Id;
use crate::manager::control_loop::{ControlLoop, Dirty, Next};
use crate::model::{Node, Object, PublishMode, Task, TaskState};
use crate::sched::{Decision, NodeInfo, Scheduler};
use crate::store::{Change, Commit, Event, State, Store};

/// Failures of a service's tasks on a node are remembered this long.
const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Decisions are written in batches of at most this many tasks, so that a
/// conflict on one task only retries its own batch.
const WRITE_BATCH: usize = 5_000;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub(crate) struct SchedulingLoop<S, Sch> {
    store: S,
    scheduler: Sch,
    nodes: Vec<NodeInfo>,
    node_index: FastMap<Id, usize>,
    /// Pending tasks not decided yet, as last seen.
    pending: FastMap<Id, Arc<Task>>,
    /// Pending tasks no node could take; tried again when nodes or loads change.
    unplaceable: FastMap<Id, Arc<Task>>,
    /// How many tasks use each host-mode port of each node.
    port_users: FastMap<(Id, crate::model::Protocol, u32), u32>,
    failures: VecDeque<(Instant, Id, Id)>,
    /// Nodes changed since the scheduler last saw them.
    nodes_changed: bool,
}

fn wants_scheduling(t: &Task) -> bool {
    t.status.state == TaskState::Pending && t.desired_state <= TaskState::Running
}

/// Whether a task counts against its node's capacity: from its assignment
/// until it has actually finished (a task being stopped still holds its
/// ports and memory).
fn holds_node(t: &Task) -> bool {
    t.node_id.is_some() && t.status.state >= TaskState::Assigned && !t.status.state.is_terminal()
}

impl<S: Store, Sch: Scheduler> SchedulingLoop<S, Sch> {
    pub(crate) fn new(store: S, scheduler: Sch) -> Self {
        Self {
            store,
            scheduler,
            nodes: Vec::new(),
            node_index: FastMap::default(),
            pending: FastMap::default(),
            unplaceable: FastMap::default(),
            port_users: FastMap::default(),
            failures: VecDeque::new(),
            nodes_changed: true,
        }
    }

    /// Keeps `nodes` sorted by id (a scheduler reads a sorted list
    /// fastest); a new node shifts the ones after it, which is rare.
    fn upsert_node(&mut self, node: &Arc<Node>) {
        match self.node_index.get(&node.meta.id) {
            Some(&i) => self.nodes[i].node = node.clone(),
            None => {
                let at = self
                    .nodes
                    .partition_point(|n| n.node.meta.id < node.meta.id);
                self.nodes.insert(at, NodeInfo::new(node.clone()));
                self.reindex(at);
            }
        }
    }

    fn remove_node(&mut self, id: &Id) {
        if let Some(i) = self.node_index.remove(id) {
            self.nodes.remove(i);
            self.reindex(i);
        }
    }

    /// Records the positions of the nodes from `from` on.
    fn reindex(&mut self, from: usize) {
        for (i, n) in self.nodes.iter().enumerate().skip(from) {
            self.node_index.insert(n.node.meta.id.clone(), i);
        }
    }

    fn account(&mut self, t: &Task, add: bool) {
        if !holds_node(t) {
            return;
        }
        let Some(node_id) = t.node_id.as_ref() else {
            return;
        };
        let Some(&i) = self.node_index.get(node_id) else {
            return;
        };
        let info = &mut self.nodes[i];
        let reservation = t.spec.resources.reservations;
        let host_ports = t
            .endpoint
            .ports
            .iter()
            .filter(|p| p.publish_mode == PublishMode::Host && p.published_port != 0)
            .map(|p| (p.protocol, p.published_port));
        if add {
            info.tasks += 1;
            *info
                .tasks_by_service
                .entry(t.service_id.clone())
                .or_default() += 1;
            info.reserved = info.reserved.saturating_add(&reservation);
            info.generic_in_use
                .extend(t.assigned_generic_resources.iter().cloned());
            for (proto, port) in host_ports {
                *self
                    .port_users
                    .entry((node_id.clone(), proto, port))
                    .or_default() += 1;
                info.host_ports.insert((proto, port));
            }
        } else {
            info.tasks = info.tasks.saturating_sub(1);
            if let Some(n) = info.tasks_by_service.get_mut(&t.service_id) {
                *n -= 1;
                if *n == 0 {
                    info.tasks_by_service.remove(&t.service_id);
                }
            }
            info.reserved = info.reserved.saturating_sub(&reservation);
            for r in &t.assigned_generic_resources {
                if let Some(at) = info.generic_in_use.iter().position(|u| u == r) {
                    info.generic_in_use.swap_remove(at);
                }
            }
            for (proto, port) in host_ports {
                let key = (node_id.clone(), proto, port);
                let users = self.port_users.get_mut(&key).map(|n| {
                    *n = n.saturating_sub(1);
                    *n
                });
                if users.unwrap_or(0) == 0 {
                    self.port_users.remove(&key);
                    info.host_ports.remove(&(proto, port));
                }
            }
        }
    }

    fn note_failure(&mut self, t: &Task) {
        let Some(node) = &t.node_id else { return };
        if let Some(&i) = self.node_index.get(node) {
            *self.nodes[i]
                .recent_failures
                .entry(t.service_id.clone())
                .or_default() += 1;
            self.failures
                .push_back((Instant::now(), node.clone(), t.service_id.clone()));
        }
    }

    fn expire_failures(&mut self) {
        while let Some((at, _, _)) = self.failures.front() {
            if at.elapsed() < FAILURE_WINDOW {
                break;
            }
            let (_, node, service) = self.failures.pop_front().expect("front exists");
            if let Some(&i) = self.node_index.get(&node)
                && let Some(n) = self.nodes[i].recent_failures.get_mut(&service)
            {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn retry_unplaceable(&mut self) {
        self.pending.extend(self.unplaceable.drain());
    }

    fn track(&mut self, t: &Arc<Task>) {
        if wants_scheduling(t) {
            if !self.unplaceable.contains_key(&t.meta.id) {
                self.pending.insert(t.meta.id.clone(), t.clone());
            } else {
                self.unplaceable.insert(t.meta.id.clone(), t.clone());
            }
        } else {
            self.pending.remove(&t.meta.id);
            self.unplaceable.remove(&t.meta.id);
        }
    }

    /// Gives each task assigned by `decisions` that reserves generic
    /// resources which of its node's it gets (the task in `tasks` is
    /// replaced by one that carries them). A node that has too few left,
    /// `given` counting this run's, turns the decision into an
    /// unplaceable one: a scheduler that ignores generic resources cannot
    /// oversubscribe them.
    fn give_generic(
        &self,
        tasks: &mut VecDeque<Arc<Task>>,
        decisions: &mut [Decision],
        given: &mut FastMap<Id, Vec<crate::model::GenericResource>>,
    ) {
        if tasks.iter().all(|t| t.spec.resources.generic.is_empty()) {
            return;
        }
        let at: FastMap<Id, usize> = tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.spec.resources.generic.is_empty())
            .map(|(i, t)| (t.meta.id.clone(), i))
            .collect();
        for d in decisions.iter_mut() {
            let Decision::Assign { task, node } = d else {
                continue;
            };
            let Some(&i) = at.get(task) else { continue };
            let Some(&n) = self.node_index.get(node) else {
                *d = Decision::Unplaceable {
                    task: task.clone(),
                    reason: format!("node {} is not available", node.short()),
                };
                continue;
            };
            let info = &self.nodes[n];
            let mut taken = info.generic_in_use.clone();
            taken.extend(given.get(node).into_iter().flatten().cloned());
            match crate::model::claim_generic(
                &info.node.description.generic_resources,
                &taken,
                &tasks[i].spec.resources.generic,
            ) {
                Ok(claimed) => {
                    given
                        .entry(node.clone())
                        .or_default()
                        .extend(claimed.iter().cloned());
                    let mut t = (*tasks[i]).clone();
                    t.assigned_generic_resources = claimed;
                    tasks[i] = Arc::new(t);
                }
                Err(e) => {
                    *d = Decision::Unplaceable {
                        task: task.clone(),
                        reason: format!("no suitable node ({e} on node {})", node.short()),
                    };
                }
            }
        }
    }

    /// Counts the generic resources `given` in this run as in use on
    /// their nodes (`hold`), or no more: their tasks count them once their
    /// assignments are written.
    fn hold_given(&mut self, given: &FastMap<Id, Vec<crate::model::GenericResource>>, hold: bool) {
        for (node, list) in given {
            let Some(&n) = self.node_index.get(node) else {
                continue;
            };
            let in_use = &mut self.nodes[n].generic_in_use;
            for r in list {
                if hold {
                    in_use.push(r.clone());
                } else if let Some(at) = in_use.iter().rposition(|u| u == r) {
                    in_use.swap_remove(at);
                }
            }
        }
    }

    /// Writes `decisions`, made for the tasks of `order`, in batches.
    ///
    /// Each batch's changes are made while the previous batch is written
    /// (on a blocking thread: it is plain CPU work), and each task is let go
    /// once its change is made. A scheduler answering in input order (as
    /// swarm-sched does) needs no lookup; any other order is matched by id.
    async fn write(
        &mut self,
        order: VecDeque<Arc<Task>>,
        decisions: Vec<Decision>,
        next: &mut Next,
    ) {
        let mut pairs = Pairs {
            order,
            decisions: decisions.into_iter(),
            by_id: None,
        };
        // The first batch is built here: there is nothing to overlap it with.
        let mut built = Some(build(pairs.take(WRITE_BATCH)));
        let mut building: Option<tokio::task::JoinHandle<Built>> = None;
        loop {
            let (chunk, unplaceable) = match (built.take(), building.take()) {
                (Some(b), _) => b,
                (None, Some(handle)) => match handle.await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "building scheduler changes failed");
                        *next = Next::retry(Duration::from_millis(100), Dirty::everything());
                        return;
                    }
                },
                (None, None) => break,
            };
            for t in unplaceable {
                self.unplaceable.insert(t.meta.id.clone(), t);
            }
            let following = pairs.take(WRITE_BATCH);
            if !following.is_empty() {
                building = Some(tokio::task::spawn_blocking(move || build(following)));
            }
            if chunk.is_empty() {
                continue;
            }
            let ids: Vec<Id> = chunk.iter().map(|c| c.id().clone()).collect();
            if let Err(e) = self.store.apply(chunk).await {
                // Look again at these tasks as they are now.
                tracing::debug!(error = %e, tasks = ids.len(), "scheduler decisions not applied; retrying");
                if let Ok(state) = self.store.state().await {
                    for id in ids {
                        if let Some(t) = state.task(&id).filter(|t| wants_scheduling(t)) {
                            self.unplaceable.remove(&id);
                            self.pending.insert(id, t.clone());
                        }
                    }
                }
                *next = Next::retry(Duration::from_millis(100), Dirty::everything());
            }
        }
    }
}

/// Decisions paired with the tasks they were made for.
struct Pairs {
    order: VecDeque<Arc<Task>>,
    decisions: std::vec::IntoIter<Decision>,
    /// Built on the first decision that does not follow `order`.
    by_id: Option<FastMap<Id, Arc<Task>>>,
}

impl Pairs {
    fn take(&mut self, n: usize) -> Vec<(Arc<Task>, Decision)> {
        let mut out = Vec::with_capacity(n.min(self.decisions.len()));
        for d in self.decisions.by_ref().take(n) {
            let task = if self.order.front().is_some_and(|t| t.meta.id == *d.task()) {
                self.order.pop_front()
            } else {
                let order = &mut self.order;
                self.by_id
                    .get_or_insert_with(|| {
                        order.drain(..).map(|t| (t.meta.id.clone(), t)).collect()
                    })
                    .remove(d.task())
            };
            if let Some(t) = task {
                out.push((t, d));
            }
        }
        out
    }
}

/// A built write batch: the changes, and the tasks no node can take.
type Built = (Vec<Change>, Vec<Arc<Task>>);

/// The store changes for decisions: assignments, and the reason on tasks no
/// node can take (written only when it changed); also the unplaceable tasks.
fn build(pairs: Vec<(Arc<Task>, Decision)>) -> Built {
    let mut changes = Vec::with_capacity(pairs.len());
    let mut unplaceable = Vec::new();
    for (t, d) in pairs {
        match d {
            Decision::Assign { node, .. } => {
                let mut t = (*t).clone();
                t.node_id = Some(node);
                t.status.state = TaskState::Assigned;
                t.status.timestamp = std::time::SystemTime::now();
                t.status.message = "scheduler assigned task to node".into();
                t.status.err = None;
                changes.push(Change::Update(Object::from(t)));
            }
            Decision::Unplaceable { reason, .. } => {
                if t.status.err.as_deref() != Some(reason.as_str()) {
                    let mut changed = (*t).clone();
                    changed.status.err = Some(reason);
                    changes.push(Change::Update(Object::from(changed)));
                }
                unplaceable.push(t);
            }
        }
    }
    (changes, unplaceable)
}

impl<S: Store, Sch: Scheduler> ControlLoop for SchedulingLoop<S, Sch> {
    const NAME: &'static str = "scheduler";

    fn reset(&mut self, state: &State) {
        self.nodes.clear();
        self.node_index.clear();
        self.pending.clear();
        self.unplaceable.clear();
        self.port_users.clear();
        self.failures.clear();
        self.nodes = state.nodes().map(|n| NodeInfo::new(n.clone())).collect();
        self.nodes
            .sort_unstable_by(|a, b| a.node.meta.id.cmp(&b.node.meta.id));
        self.reindex(0);
        self.nodes_changed = true;
        for t in state.tasks() {
            self.account(t, true);
            if wants_scheduling(t) {
                self.pending.insert(t.meta.id.clone(), t.clone());
            }
        }
    }

    fn touched(&mut self, commit: &Commit, dirty: &mut Dirty) {
        let mut freed = false;
        for e in &commit.events {
            match e {
                Event::Created(Object::Node(n))
                | Event::Updated {
                    new: Object::Node(n),
                    ..
                } => {
                    self.upsert_node(n);
                    self.nodes_changed = true;
                    freed = true;
                }
                Event::Deleted(Object::Node(n)) => {
                    self.remove_node(&n.meta.id);
                    self.nodes_changed = true;
                }
                Event::Created(Object::Task(t)) => {
                    if self.pending.capacity() - self.pending.len() < commit.events.len() / 2 {
                        self.pending.reserve(commit.events.len());
                    }
                    self.account(t, true);
                    self.track(t);
                }
                Event::Updated {
                    old: Object::Task(old),
                    new: Object::Task(new),
                } => {
                    self.account(old, false);
                    self.account(new, true);
                    if holds_node(old) && !holds_node(new) {
                        freed = true;
                    }
                    if matches!(new.status.state, TaskState::Failed | TaskState::Rejected)
                        && old.status.state != new.status.state
                    {
                        self.note_failure(new);
                    }
                    self.track(new);
                }
                Event::Deleted(Object::Task(t)) => {
                    freed |= holds_node(t);
                    self.account(t, false);
                    self.pending.remove(&t.meta.id);
                    self.unplaceable.remove(&t.meta.id);
                }
                _ => {}
            }
        }
        if freed {
            self.retry_unplaceable();
        }
        if !self.pending.is_empty() || self.nodes_changed {
            *dirty = Dirty::everything();
        }
    }

    async fn run(&mut self, state: State, _dirty: Dirty) -> Next {
        // This loop works from its own picture; holding the snapshot while
        // writing would only make the store copy what it shares with it.
        drop(state);
        if self.pending.is_empty() {
            if std::mem::take(&mut self.nodes_changed) {
                self.scheduler.observe(&self.nodes);
            }
            return Next::done();
        }
        self.nodes_changed = false;
        self.expire_failures();
        let batch = std::mem::take(&mut self.pending);
        // Tasks of a global service come with their node: check it, do not
        // choose.
        let mut free: Vec<Arc<Task>> = Vec::with_capacity(batch.len());
        let mut bound = VecDeque::new();
        let mut bound_decisions = Vec::new();
        for (_, t) in batch {
            let Some(node) = t.node_id.clone() else {
                free.push(t);
                continue;
            };
            let ok = self
                .node_index
                .get(&node)
                .is_some_and(|&i| self.nodes[i].node.accepts_tasks());
            let task = t.meta.id.clone();
            bound_decisions.push(if ok {
                Decision::Assign { task, node }
            } else {
                let reason = format!("node {} is not available", node.short());
                Decision::Unplaceable { task, reason }
            });
            bound.push_back(t);
        }
        // The global tasks' generic resources are given first, and the
        // scheduler sees them taken.
        let mut given = FastMap::default();
        self.give_generic(&mut bound, &mut bound_decisions, &mut given);
        self.hold_given(&given, true);
        let began = std::time::Instant::now();
        let mut decisions = self.scheduler.schedule(&self.nodes, &free);
        let took = began.elapsed();
        self.hold_given(&given, false);
        let mut free: VecDeque<Arc<Task>> = free.into();
        self.give_generic(&mut free, &mut decisions, &mut given);
        crate::metrics::scheduled(bound_decisions.iter().chain(&decisions), took);
        let mut next = Next::done();
        self.write(bound, bound_decisions, &mut next).await;
        self.write(free, decisions, &mut next).await;
        next
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use crate::model::{
        Meta, Node, NodeDescription, NodeSpec, NodeState, NodeStatus, Object, Service, ServiceSpec,
        Task, TaskState,
    };
    use crate::sched::{Decision, MockScheduler};
    use crate::store::{Change, MemoryStore, Store};

    #[tokio::test]
    async fn writes_each_decision_to_its_own_task_whatever_the_order() {
        let store = Arc::new(MemoryStore::new());
        let node = Node {
            meta: Meta::new("n1".into()),
            spec: NodeSpec::default(),
            description: NodeDescription::default(),
            status: NodeStatus {
                state: NodeState::Ready,
                ..Default::default()
            },
        };
        store
            .apply(vec![Change::Create(node.into())])
            .await
            .unwrap();
        let service = Service {
            meta: Meta::new("s".into()),
            spec: ServiceSpec::replicated("web", 3, vec!["x".into()]),
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let tasks: Vec<Task> = (1..=3)
            .map(|slot| {
                let mut t = Task::new(&service, slot, None, vec![]);
                t.status.state = TaskState::Pending;
                t
            })
            .collect();
        let unplaceable = tasks[1].meta.id.clone();
        let mut scheduler = MockScheduler::new();
        scheduler.expect_observe().returning(|_| ());
        // Answers in reverse order: one task cannot go anywhere.
        scheduler.expect_schedule().returning(move |nodes, tasks| {
            assert_eq!(nodes.len(), 1);
            tasks
                .iter()
                .rev()
                .map(|t| {
                    if t.meta.id == unplaceable {
                        Decision::Unplaceable {
                            task: t.meta.id.clone(),
                            reason: "no suitable node (test)".into(),
                        }
                    } else {
                        Decision::Assign {
                            task: t.meta.id.clone(),
                            node: "n1".into(),
                        }
                    }
                })
                .collect()
        });
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(super::super::run_scheduler(
            store.clone(),
            scheduler,
            shutdown.clone(),
        ));
        let ids: Vec<_> = tasks.iter().map(|t| t.meta.id.clone()).collect();
        store
            .apply(
                tasks
                    .into_iter()
                    .map(|t| Change::Create(Object::from(t)))
                    .collect(),
            )
            .await
            .unwrap();
        let mut state = store.state().await.unwrap();
        for _ in 0..200 {
            state = store.state().await.unwrap();
            if state.task(&ids[1]).unwrap().status.err.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for i in [0, 2] {
            let t = state.task(&ids[i]).unwrap();
            assert_eq!(t.status.state, TaskState::Assigned);
            assert_eq!(t.node_id.as_deref(), Some("n1"));
        }
        let t = state.task(&ids[1]).unwrap();
        assert_eq!(t.status.state, TaskState::Pending);
        assert_eq!(t.node_id, None);
        assert_eq!(t.status.err.as_deref(), Some("no suitable node (test)"));
        shutdown.cancel();
        handle.await.unwrap();
    }

    /// The loop gives each task its own GPUs, and keeps a scheduler that
    /// ignores generic resources from handing out more than the node has;
    /// a task that ends gives its GPU back.
    #[tokio::test]
    async fn generic_resources_are_given_out_and_never_twice() {
        use crate::model::GenericResource;
        let store = Arc::new(MemoryStore::new());
        let gpu = |v: &str| GenericResource::Named {
            kind: "gpu".into(),
            value: v.into(),
        };
        let node = Node {
            meta: Meta::new("n1".into()),
            spec: NodeSpec::default(),
            description: NodeDescription {
                generic_resources: vec![gpu("GPU-b"), gpu("GPU-a")],
                ..NodeDescription::default()
            },
            status: NodeStatus {
                state: NodeState::Ready,
                ..Default::default()
            },
        };
        store
            .apply(vec![Change::Create(node.into())])
            .await
            .unwrap();
        let mut spec = ServiceSpec::replicated("train", 3, vec!["x".into()]);
        spec.task.resources.generic.insert("gpu".into(), 1);
        let service = Service {
            meta: Meta::new("s".into()),
            spec,
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let mut scheduler = MockScheduler::new();
        scheduler.expect_observe().returning(|_| ());
        scheduler.expect_schedule().returning(|_, tasks| {
            tasks
                .iter()
                .map(|t| Decision::Assign {
                    task: t.meta.id.clone(),
                    node: "n1".into(),
                })
                .collect()
        });
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(super::super::run_scheduler(
            store.clone(),
            scheduler,
            shutdown.clone(),
        ));
        let tasks: Vec<Task> = (1..=3)
            .map(|slot| {
                let mut t = Task::new(&service, slot, None, vec![]);
                t.status.state = TaskState::Pending;
                t
            })
            .collect();
        let ids: Vec<_> = tasks.iter().map(|t| t.meta.id.clone()).collect();
        store
            .apply(
                tasks
                    .into_iter()
                    .map(|t| Change::Create(t.into()))
                    .collect(),
            )
            .await
            .unwrap();
        let settled = |state: &crate::store::State| {
            ids.iter()
                .map(|id| state.task(id).unwrap())
                .filter(|t| t.status.state == TaskState::Assigned || t.status.err.is_some())
                .count()
                == 3
        };
        let mut state = store.state().await.unwrap();
        for _ in 0..200 {
            state = store.state().await.unwrap();
            if settled(&state) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut given: Vec<GenericResource> = Vec::new();
        let mut waiting = None;
        for id in &ids {
            let t = state.task(id).unwrap();
            if t.status.state == TaskState::Assigned {
                given.extend(t.assigned_generic_resources.iter().cloned());
            } else {
                assert!(
                    t.status.err.as_deref().is_some_and(|e| e
                        .contains("insufficient generic resource gpu: the task reserves 1, the node has 0 free")),
                    "{:?}",
                    t.status
                );
                waiting = Some(id.clone());
            }
        }
        given.sort();
        assert_eq!(given, [gpu("GPU-a"), gpu("GPU-b")]);

        // One ends: the waiting task gets its GPU.
        let done = ids.iter().find(|id| Some(*id) != waiting.as_ref()).unwrap();
        let mut t = (**state.task(done).unwrap()).clone();
        let freed = t.assigned_generic_resources.clone();
        t.status.state = TaskState::Complete;
        store.apply(vec![Change::Update(t.into())]).await.unwrap();
        let waiting = waiting.unwrap();
        for _ in 0..200 {
            state = store.state().await.unwrap();
            if state.task(&waiting).unwrap().status.state == TaskState::Assigned {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            state.task(&waiting).unwrap().assigned_generic_resources,
            freed
        );
        shutdown.cancel();
        handle.await.unwrap();
    }
}
