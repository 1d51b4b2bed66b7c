//! The orchestrators: keep each service's tasks matching its spec.
//!
//! Planning is pure ([`replicated::plan`], [`global::plan`], the restart
//! supervisor's [`restart::decide`]); the `Orchestrator` loop executes
//! plans through the store.

pub mod global;
pub mod replicated;
pub mod restart;
pub mod update;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::Id;
use crate::manager::control_loop::{ControlLoop, Dirty, Next};
use crate::model::{Availability, Node, NodeState, Object, ServiceMode, Task, TaskState};
use crate::store::{Change, Commit, Event, State, Store};

/// One thing an orchestrator wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create this task.
    Create(Box<Task>),
    /// Set the task's desired state to `Shutdown`, for this reason.
    Shutdown {
        /// The task.
        task: Id,
        /// Why, for `service ps`.
        reason: String,
    },
}

/// What a planner decided for one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The actions, to apply in one batch.
    pub actions: Vec<Action>,
    /// Look again after this long (a restart delay is running).
    pub recheck_after: Option<Duration>,
    /// The service with its rollout status (or, on a rollback, its spec)
    /// changed, to write in the same batch.
    pub service: Option<crate::model::Service>,
    /// The first task made, whose spec the next ones share.
    template: Option<Arc<Task>>,
    /// `service` carries another spec.
    spec_changed: bool,
}

impl Plan {
    pub(crate) fn shutdown(&mut self, task: &Task, reason: &str) {
        self.actions.push(Action::Shutdown {
            task: task.meta.id.clone(),
            reason: reason.to_owned(),
        });
    }

    /// Plans a new task of `service`. Tasks made by one plan share one
    /// copy of the service's task spec and endpoint.
    pub(crate) fn create(
        &mut self,
        service: &crate::model::Service,
        slot: u64,
        node: Option<Id>,
        restarts: Vec<SystemTime>,
    ) {
        let template = self
            .template
            .get_or_insert_with(|| Arc::new(Task::new(service, 0, None, Vec::new())));
        let mut task = (**template).clone();
        task.meta = crate::model::Meta::new(Id::generate());
        task.slot = slot;
        task.node_id = node;
        task.restarts = restarts;
        self.actions.push(Action::Create(Box::new(task)));
    }

    /// Whether the plan puts another spec in place (a rollback): the
    /// next run plans with it.
    pub(crate) fn rolled_back(&self) -> bool {
        self.spec_changed
    }

    pub(crate) fn recheck(&mut self, after: Duration) {
        self.recheck_after = Some(self.recheck_after.map_or(after, |d| d.min(after)));
    }
}

/// Why a task on `node` must move elsewhere, if it must.
#[must_use]
pub fn node_lost(node: Option<&Node>) -> Option<&'static str> {
    match node {
        None => Some("node removed"),
        Some(n) if n.status.state == NodeState::Down => Some("node down"),
        Some(n) if n.status.state == NodeState::Disconnected => Some("node left the cluster"),
        Some(n) if n.spec.availability == Availability::Drain => Some("node drained"),
        Some(_) => None,
    }
}

/// What every service's plan shares in one run: the nodes, and the number
/// of active tasks on each.
struct View<'a> {
    state: &'a State,
    nodes: HashMap<Id, Arc<Node>>,
    /// Active tasks per node, counted on first use (only a scale-down
    /// needs them).
    load: std::sync::OnceLock<HashMap<Id, usize>>,
}

impl<'a> View<'a> {
    fn of(state: &'a State) -> Self {
        let nodes = state
            .nodes()
            .map(|n| (n.meta.id.clone(), n.clone()))
            .collect();
        Self {
            state,
            nodes,
            load: std::sync::OnceLock::new(),
        }
    }

    fn load(&self, node: &Id) -> usize {
        let load = self.load.get_or_init(|| {
            self.nodes
                .keys()
                .map(|id| {
                    (
                        id.clone(),
                        self.state
                            .tasks_on_node(id)
                            .filter(|t| t.is_active())
                            .count(),
                    )
                })
                .collect()
        });
        load.get(node).copied().unwrap_or(0)
    }
}

/// The orchestrator loop, for replicated and global services.
pub(crate) struct Orchestrator<S> {
    pub store: S,
}

impl<S: Store> Orchestrator<S> {
    fn plan_service(state: &State, view: &View<'_>, service_id: &Id, now: SystemTime) -> Plan {
        let tasks: Vec<Arc<Task>> = state.tasks_of_service(service_id).cloned().collect();
        let Some(service) = state.service(service_id) else {
            // Deleted service: every task still wanted goes.
            let mut plan = Plan::default();
            for t in tasks
                .iter()
                .filter(|t| t.desired_state <= TaskState::Running)
            {
                plan.shutdown(t, "service removed");
            }
            return plan;
        };
        match service.spec.mode {
            ServiceMode::Replicated { .. } => {
                replicated::plan(service, &tasks, &view.nodes, &|n| view.load(n), now)
            }
            ServiceMode::Global => global::plan(service, &tasks, &view.nodes, now),
        }
    }

    async fn execute(&self, state: &State, plan: Plan) -> Result<(), crate::store::StoreError> {
        let mut changes = Vec::with_capacity(plan.actions.len() + 1);
        if let Some(service) = plan.service {
            if let Some(u) = &service.update_status {
                tracing::info!(service = %service.spec.name, state = %u.state, message = %u.message, "rollout");
            }
            changes.push(Change::Update(service.into()));
        }
        for action in plan.actions {
            match action {
                Action::Create(t) => changes.push(Change::Create(Object::from(*t))),
                Action::Shutdown { task, reason } => {
                    if let Some(t) = state.task(&task) {
                        // The status is the worker's to write; the reason
                        // goes to the log.
                        tracing::debug!(task_id = %task, %reason, "shutting down task");
                        let mut t = (**t).clone();
                        t.desired_state = TaskState::Shutdown;
                        changes.push(Change::Update(t.into()));
                    }
                }
            }
        }
        self.store.apply(changes).await.map(|_| ())
    }
}

impl<S: Store> ControlLoop for Orchestrator<S> {
    const NAME: &'static str = "orchestrator";

    fn touched(&mut self, commit: &Commit, dirty: &mut Dirty) {
        for e in &commit.events {
            match e.object() {
                Object::Service(s) => dirty.add(&s.meta.id),
                Object::Task(t) => {
                    // Only changes that can matter: state, desired state, node.
                    if let Event::Updated {
                        old: Object::Task(old),
                        ..
                    } = e
                        && old.status.state == t.status.state
                        && old.desired_state == t.desired_state
                        && old.node_id == t.node_id
                    {
                        continue;
                    }
                    dirty.add(&t.service_id);
                }
                Object::Node(n) => {
                    if let Event::Updated {
                        old: Object::Node(old),
                        ..
                    } = e
                        && old.spec == n.spec
                        && old.status.state == n.status.state
                    {
                        continue;
                    }
                    *dirty = Dirty::everything();
                }
                _ => {}
            }
        }
    }

    async fn run(&mut self, state: State, dirty: Dirty) -> Next {
        let now = SystemTime::now();
        let ids: Vec<Id> = if dirty.all {
            let mut ids: Vec<Id> = state.services().map(|s| s.meta.id.clone()).collect();
            ids.extend(
                state
                    .services_with_tasks()
                    .filter(|id| state.service(id).is_none())
                    .cloned(),
            );
            ids
        } else {
            dirty.keys.into_iter().collect()
        };
        let view = View::of(&state);
        let mut next = Next::done();
        for id in ids {
            let plan = Self::plan_service(&state, &view, &id, now);
            if let Some(after) = plan.recheck_after {
                let mut d = Dirty::default();
                d.add(&id);
                next.merge(Next::retry(after, d));
            }
            if plan.actions.is_empty() && plan.service.is_none() {
                continue;
            }
            tracing::debug!(service = %id, actions = plan.actions.len(), "orchestrator acting");
            if let Err(e) = self.execute(&state, plan).await {
                // A conflict means the state moved: a new commit is already
                // on its way and will trigger this service again.
                tracing::debug!(service = %id, error = %e, "orchestrator plan not applied; retrying");
                let mut d = Dirty::default();
                d.add(&id);
                next.merge(Next::retry(Duration::from_millis(200), d));
            }
        }
        next
    }
}
