//! What the page is sent: the store's objects as the board draws them
//! ([`Snapshot`]), and the changes of a run of commits ([`Delta`]).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use swarm_core::model::{Node, Object, Service, ServiceMode, Task};
use swarm_core::store::{Commit, Event, State};

/// Milliseconds since the Unix epoch, as JavaScript's `Date` takes them.
fn millis(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX)
}

/// A node's column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    /// Its id.
    pub id: String,
    /// Its hostname (its id if it has none).
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, ...
    pub status: String,
    /// Why, when it is not ready.
    pub message: String,
    /// Its address.
    pub addr: String,
    /// The operator's labels (`node update --label-add`).
    pub labels: BTreeMap<String, String>,
    /// The engine's labels.
    pub engine_labels: BTreeMap<String, String>,
    /// CPUs, in billionths.
    pub nano_cpus: u64,
    /// Memory, in bytes.
    pub memory_bytes: u64,
    /// `os/architecture`.
    pub platform: String,
    /// Its generic resources (`gpu=GPU-a`, `ssd=3`).
    pub generic_resources: Vec<String>,
}

impl NodeView {
    fn of(n: &Node) -> Self {
        Self {
            id: n.meta.id.as_str().to_owned(),
            hostname: n.display_name().to_owned(),
            role: n.spec.role.to_string(),
            availability: n.spec.availability.to_string(),
            status: n.status.state.to_string(),
            message: n.status.message.clone(),
            addr: n.status.addr.clone(),
            labels: n.spec.labels.clone(),
            engine_labels: n.description.engine_labels.clone(),
            nano_cpus: n.description.resources.nano_cpus,
            memory_bytes: n.description.resources.memory_bytes,
            platform: format!(
                "{}/{}",
                n.description.platform.os, n.description.platform.architecture
            ),
            generic_resources: n
                .description
                .generic_resources
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }
}

/// A service: its colour's key, and what its panel shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `replicated` or `global`.
    pub mode: String,
    /// The replicas it wants (none for a global service).
    pub replicas: Option<u64>,
    /// Its image.
    pub image: String,
    /// Its last update or rollback, if any.
    pub update: Option<UpdateView>,
    /// Its whole spec, as the model serializes it (null where the client
    /// may not see it).
    pub spec: serde_json::Value,
}

/// A service's update status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateView {
    /// `updating`, `paused`, `completed`, `rollback_started`, ...
    pub state: String,
    /// What it says.
    pub message: String,
    /// When it started (ms).
    pub started_at: u64,
    /// When it ended (ms), if it did.
    pub completed_at: Option<u64>,
}

impl ServiceView {
    fn of(s: &Service, details: bool) -> Self {
        let (mode, replicas) = match s.spec.mode {
            ServiceMode::Replicated { replicas } => ("replicated", Some(replicas)),
            ServiceMode::Global => ("global", None),
        };
        Self {
            id: s.meta.id.as_str().to_owned(),
            name: s.spec.name.clone(),
            mode: mode.to_owned(),
            replicas,
            image: s.spec.task.image.clone(),
            update: s.update_status.as_ref().map(|u| UpdateView {
                state: u.state.as_str().to_owned(),
                message: u.message.clone(),
                started_at: millis(u.started_at),
                completed_at: u.completed_at.map(millis),
            }),
            spec: if details {
                serde_json::to_value(&s.spec).unwrap_or_default()
            } else {
                serde_json::Value::Null
            },
        }
    }
}

/// A task's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    /// Its id.
    pub id: String,
    /// Its service's id.
    pub service_id: String,
    /// Its service's name.
    pub service: String,
    /// `web.2` (or `web.<node>` for a global service).
    pub name: String,
    /// Its slot (0 for a global service's tasks).
    pub slot: u64,
    /// The node it is on, if it has one.
    pub node_id: Option<String>,
    /// Its image.
    pub image: String,
    /// The state the orchestrator wants.
    pub desired: String,
    /// The state it is in.
    pub state: String,
    /// What its state says.
    pub message: String,
    /// Why it failed or waits, if it did.
    pub error: Option<String>,
    /// Its exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Whether it holds (or will hold) its slot.
    pub active: bool,
    /// When it was made (ms).
    pub created_at: u64,
    /// When its state last changed (ms).
    pub since: u64,
}

impl TaskView {
    fn of(t: &Task) -> Self {
        Self {
            id: t.meta.id.as_str().to_owned(),
            service_id: t.service_id.as_str().to_owned(),
            service: t.service_name.to_string(),
            name: t.name(),
            slot: t.slot,
            node_id: t.node_id.as_ref().map(|n| n.as_str().to_owned()),
            image: t.spec.image.clone(),
            desired: t.desired_state.as_str().to_owned(),
            state: t.status.state.as_str().to_owned(),
            message: t.status.message.to_string(),
            error: t.status.err.clone(),
            exit_code: t.status.exit_code,
            active: t.is_active(),
            created_at: millis(t.meta.created_at),
            since: millis(t.status.timestamp),
        }
    }
}

/// The whole board at one index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// The store's index it was read at.
    pub index: u64,
    /// The leading manager's node id, if known.
    pub leader: Option<String>,
    /// What this client may see and do (`public`, `read-only`,
    /// `read-write`).
    pub access: &'static str,
    /// Every node.
    pub nodes: Vec<NodeView>,
    /// Every service.
    pub services: Vec<ServiceView>,
    /// Every task the store keeps (history included).
    pub tasks: Vec<TaskView>,
}

impl Snapshot {
    /// The board of `state`, with the services' specs if `details`.
    #[must_use]
    pub fn of(state: &State, leader: Option<String>, access: &'static str, details: bool) -> Self {
        Self {
            index: state.index(),
            leader,
            access,
            nodes: state.nodes().map(|n| NodeView::of(n)).collect(),
            services: state
                .services()
                .map(|s| ServiceView::of(s, details))
                .collect(),
            tasks: state.tasks().map(|t| TaskView::of(t)).collect(),
        }
    }
}

/// What changed over a run of commits: each object as it is now, and the
/// ids of those removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delta {
    /// The index of the last commit it covers.
    pub index: u64,
    /// The leading manager's node id, if known.
    pub leader: Option<String>,
    /// Nodes made or changed.
    pub nodes: Vec<NodeView>,
    /// Services made or changed.
    pub services: Vec<ServiceView>,
    /// Tasks made or changed.
    pub tasks: Vec<TaskView>,
    /// Ids of the nodes, services and tasks removed.
    pub removed: Vec<String>,
}

/// Collects commits into one [`Delta`], each object once, as its last
/// commit left it.
#[derive(Debug, Default)]
pub struct Collect {
    details: bool,
    index: u64,
    nodes: BTreeMap<String, Option<NodeView>>,
    services: BTreeMap<String, Option<ServiceView>>,
    tasks: BTreeMap<String, Option<TaskView>>,
}

impl Collect {
    /// A collector of deltas with the services' specs if `details`.
    #[must_use]
    pub fn new(details: bool) -> Self {
        Self {
            details,
            ..Self::default()
        }
    }

    /// Takes in `commit`.
    pub fn add(&mut self, commit: &Commit) {
        self.index = self.index.max(commit.index);
        for e in &commit.events {
            let gone = matches!(e, Event::Deleted(_));
            match e.object() {
                Object::Node(n) => {
                    let v = (!gone).then(|| NodeView::of(n));
                    self.nodes.insert(n.meta.id.as_str().to_owned(), v);
                }
                Object::Service(s) => {
                    let v = (!gone).then(|| ServiceView::of(s, self.details));
                    self.services.insert(s.meta.id.as_str().to_owned(), v);
                }
                Object::Task(t) => {
                    let v = (!gone).then(|| TaskView::of(t));
                    self.tasks.insert(t.meta.id.as_str().to_owned(), v);
                }
                _ => {}
            }
        }
    }

    /// Whether nothing the board shows changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.services.is_empty() && self.tasks.is_empty()
    }

    /// The delta of what was taken in, which starts afresh.
    pub fn take(&mut self, leader: Option<String>) -> Delta {
        let taken = std::mem::replace(self, Self::new(self.details));
        self.index = taken.index;
        let mut removed = Vec::new();
        Delta {
            index: taken.index,
            leader,
            nodes: split(taken.nodes, &mut removed),
            services: split(taken.services, &mut removed),
            tasks: split(taken.tasks, &mut removed),
            removed,
        }
    }
}

/// The views of what is still there; the ids of what is not go to
/// `removed`.
fn split<V>(changed: BTreeMap<String, Option<V>>, removed: &mut Vec<String>) -> Vec<V> {
    let mut kept = Vec::new();
    for (id, v) in changed {
        match v {
            Some(v) => kept.push(v),
            None => removed.push(id),
        }
    }
    kept
}
