//! The allocator: moves new tasks to pending once what they reference
//! exists. Network address allocation joins it with swarm-net.

use std::time::Duration;

use crate::manager::control_loop::{ControlLoop, Dirty, Next};
use crate::model::{Object, Task, TaskState};
use crate::store::{Change, Commit, Event, State, Store};

pub(crate) struct Allocator<S> {
    pub store: S,
}

/// Why the task cannot be allocated yet, if it cannot.
#[must_use]
pub fn missing_reference(state: &State, task: &Task) -> Option<String> {
    for s in &task.spec.secrets {
        if state.secret_by_name(&s.name).is_none() {
            return Some(format!(
                "secret {} not found: create it, or remove it from the service",
                s.name
            ));
        }
    }
    for c in &task.spec.configs {
        if state.config_by_name(&c.name).is_none() {
            return Some(format!(
                "config {} not found: create it, or remove it from the service",
                c.name
            ));
        }
    }
    for n in &task.spec.networks {
        let found = state.network(&n.target).is_some()
            || state
                .by_name(crate::model::Kind::Network, &n.target)
                .is_some();
        if !found {
            return Some(format!(
                "network {} not found: create it, or remove it from the service",
                n.target
            ));
        }
    }
    None
}

impl<S: Store> ControlLoop for Allocator<S> {
    const NAME: &'static str = "allocator";

    fn touched(&mut self, commit: &Commit, dirty: &mut Dirty) {
        for e in &commit.events {
            match e {
                Event::Created(Object::Task(t))
                | Event::Updated {
                    new: Object::Task(t),
                    ..
                } if t.status.state == TaskState::New => {
                    dirty.add(&t.meta.id);
                }
                Event::Created(Object::Secret(_) | Object::Config(_) | Object::Network(_)) => {
                    *dirty = Dirty::everything();
                }
                _ => {}
            }
        }
    }

    async fn run(&mut self, state: State, dirty: Dirty) -> Next {
        let new: Vec<&std::sync::Arc<Task>> = if dirty.all {
            state
                .tasks()
                .filter(|t| t.status.state == TaskState::New)
                .collect()
        } else {
            dirty
                .keys
                .iter()
                .filter_map(|id| state.task(id))
                .filter(|t| t.status.state == TaskState::New)
                .collect()
        };
        let mut changes = Vec::new();
        for t in new {
            let mut t2 = (**t).clone();
            if t.desired_state > TaskState::Running {
                continue; // the reaper removes it
            }
            match missing_reference(&state, t) {
                None => {
                    t2.status = crate::model::TaskStatus::new(
                        TaskState::Pending,
                        "pending task scheduling",
                    );
                }
                Some(why) => {
                    if t.status.err.as_deref() == Some(why.as_str()) {
                        continue;
                    }
                    t2.status.err = Some(why);
                }
            }
            changes.push(Change::Update(t2.into()));
        }
        match self.store.apply(changes).await {
            Ok(_) => Next::done(),
            Err(e) => {
                tracing::debug!(error = %e, "allocation not applied; retrying");
                Next::retry(Duration::from_millis(100), Dirty::everything())
            }
        }
    }
}
