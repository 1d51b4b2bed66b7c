//! The task reaper: keeps a bounded history of finished tasks per slot
//! (per node for global services), removes the tasks of deleted services
//! and nodes, and marks tasks orphaned when their node has been down too
//! long.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::Id;
use crate::manager::control_loop::{ControlLoop, Dirty, Next};
use crate::model::{Kind, NodeState, Object, Task, TaskState};
use crate::store::{Change, Commit, State, Store};

pub(crate) struct Reaper<S> {
    pub store: S,
    /// Tasks on a node down this long are marked orphaned.
    pub orphan_after: Duration,
}

/// What the reaper does to one service's tasks.
#[must_use]
pub fn plan(
    state: &State,
    service_id: &Id,
    history: usize,
    orphan_after: Duration,
    now: SystemTime,
) -> Vec<Change> {
    let mut changes = Vec::new();
    let service_exists = state.service(service_id).is_some();
    let mut per_slot: HashMap<(u64, Option<&Id>), Vec<&Arc<Task>>> = HashMap::new();
    for t in state.tasks_of_service(service_id) {
        let node = t.node_id.as_ref().and_then(|n| state.node(n));
        // Orphaned: on a node down for too long, not finished.
        if !t.status.state.is_terminal()
            && let Some(n) = node
            && n.status.state == NodeState::Down
            && now.duration_since(n.status.since).unwrap_or_default() >= orphan_after
        {
            let mut o = (**t).clone();
            o.status = crate::model::TaskStatus::new(TaskState::Orphaned, "node down too long");
            changes.push(Change::Update(o.into()));
            continue;
        }
        if t.desired_state <= TaskState::Running {
            continue;
        }
        let gone = t.status.state.is_terminal()
            || t.status.state < TaskState::Assigned
            || (t.node_id.is_some() && node.is_none());
        if !gone {
            continue; // still stopping on its node
        }
        if !service_exists
            || t.status.state < TaskState::Assigned
            || (t.node_id.is_some() && node.is_none())
        {
            changes.push(delete(t));
            continue;
        }
        let key = if t.slot > 0 {
            (t.slot, None)
        } else {
            (0, t.node_id.as_ref())
        };
        per_slot.entry(key).or_default().push(t);
    }
    for (_, mut finished) in per_slot {
        if finished.len() <= history {
            continue;
        }
        finished.sort_by_key(|t| (t.meta.created_at, t.meta.id.clone()));
        let excess = finished.len() - history;
        changes.extend(finished.into_iter().take(excess).map(delete));
    }
    changes
}

fn delete(t: &Arc<Task>) -> Change {
    Change::Delete {
        kind: Kind::Task,
        id: t.meta.id.clone(),
        version: Some(t.meta.version),
    }
}

impl<S: Store> ControlLoop for Reaper<S> {
    const NAME: &'static str = "reaper";

    fn touched(&mut self, commit: &Commit, dirty: &mut Dirty) {
        for e in &commit.events {
            match e.object() {
                Object::Task(t) if t.desired_state > TaskState::Running => dirty.add(&t.service_id),
                Object::Service(s) => dirty.add(&s.meta.id),
                Object::Node(_) | Object::Cluster(_) => *dirty = Dirty::everything(),
                _ => {}
            }
        }
    }

    async fn run(&mut self, state: State, dirty: Dirty) -> Next {
        let history = state
            .cluster()
            .map_or(5, |c| c.spec.task_history_limit as usize);
        let ids: Vec<Id> = if dirty.all {
            state.services_with_tasks().cloned().collect()
        } else {
            dirty.keys.into_iter().collect()
        };
        let now = SystemTime::now();
        let mut changes = Vec::new();
        for id in &ids {
            changes.extend(plan(&state, id, history, self.orphan_after, now));
        }
        // Look again when the next down node reaches the orphan age.
        let mut next = Next::done();
        for n in state.nodes().filter(|n| n.status.state == NodeState::Down) {
            let age = now.duration_since(n.status.since).unwrap_or_default();
            if age < self.orphan_after
                && state
                    .tasks_on_node(&n.meta.id)
                    .any(|t| !t.status.state.is_terminal())
            {
                next.merge(Next::retry(self.orphan_after - age, Dirty::everything()));
            }
        }
        if let Err(e) = self.store.apply(changes).await {
            tracing::debug!(error = %e, "reaping not applied; retrying");
            next.merge(Next::retry(Duration::from_millis(200), Dirty::everything()));
        }
        next
    }
}
