//! The allocator: moves new tasks to pending once what they reference
//! exists and their network addresses are recorded.
//!
//! The addresses themselves come from the network allocator (swarm-net's
//! `NetworkAllocator`, a loop the node adds): this loop only waits for
//! them, so that one loop alone moves a task out of `new`.

use std::sync::Arc;
use std::time::Duration;

use crate::manager::control_loop::{ControlLoop, Dirty, Next};
use crate::model::{EndpointSpec, Kind, Network, NetworkAttachment, Object, Task, TaskState};
use crate::store::{Change, Commit, Event, State, Store};

/// A network a task attaches to, with the task's aliases on it.
pub type Attachment = (Arc<Network>, Vec<String>);

/// The networks a task of `networks` and `endpoint` attaches to, with its
/// aliases on each: the ones its spec names (by name or id), and the
/// ingress network when it publishes a port through the routing mesh and
/// the cluster has one. Fails with what to do when a named network does
/// not exist.
pub fn required_networks(
    state: &State,
    networks: &[NetworkAttachment],
    endpoint: &EndpointSpec,
) -> Result<Vec<Attachment>, String> {
    let mut out: Vec<Attachment> = Vec::new();
    for n in networks {
        let found = state.network(&n.target).or_else(|| {
            state
                .by_name(Kind::Network, &n.target)
                .and_then(|id| state.network(id))
        });
        let Some(net) = found else {
            return Err(format!(
                "network {} not found: create it with `network create --driver overlay {}`, or remove it from the service",
                n.target, n.target
            ));
        };
        if !out.iter().any(|(o, _)| o.meta.id == net.meta.id) {
            out.push((net.clone(), n.aliases.clone()));
        }
    }
    if endpoint
        .ports
        .iter()
        .any(crate::model::PortConfig::is_ingress)
        && let Some(ingress) = state.networks().find(|n| n.spec.ingress)
        && !out.iter().any(|(o, _)| o.meta.id == ingress.meta.id)
    {
        out.push((ingress.clone(), Vec::new()));
    }
    Ok(out)
}

/// Whether every network `task` needs has its address recorded on it.
fn addressed(state: &State, task: &Task) -> bool {
    required_networks(state, &task.spec.networks, &task.endpoint).is_ok_and(|need| {
        need.iter()
            .all(|(n, _)| task.networks.iter().any(|a| a.network_id == n.meta.id))
    })
}

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
    required_networks(state, &task.spec.networks, &task.endpoint).err()
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
                Event::Created(Object::Secret(_) | Object::Config(_) | Object::Network(_))
                | Event::Updated {
                    new: Object::Network(_),
                    ..
                } => {
                    *dirty = Dirty::everything();
                }
                _ => {}
            }
        }
    }

    async fn run(&mut self, state: State, dirty: Dirty) -> Next {
        let new: Vec<&Arc<Task>> = if dirty.all {
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
                // The network allocator has yet to record its addresses.
                None if !addressed(&state, t) => continue,
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
