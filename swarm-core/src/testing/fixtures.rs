//! Nodes, services and tasks for tests, in a line each.
//!
//! ```
//! use swarm_core::testing::fixtures::{NodeFixture, pending_tasks, service};
//!
//! let web = NodeFixture::new("web-1").label("type", "web").cpus(2.0).info();
//! let svc = service("site", 3, |spec| spec.task.placement.constraints.push("node.labels.type==web".into()));
//! let tasks = pending_tasks(&svc, 3);
//! assert_eq!(tasks.len(), 3);
//! assert!(web.node.accepts_tasks());
//! ```

use std::sync::Arc;

use crate::model::{
    Availability, Meta, Node, NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus, Platform,
    Resources, Service, ServiceSpec, Task, TaskState,
};
use crate::sched::NodeInfo;

/// One GiB.
pub const GIB: u64 = 1 << 30;

/// A node, built up field by field: by default ready, active, a worker,
/// linux/amd64, with 4 CPUs and 8 GiB, named (hostname and id) as given.
#[derive(Debug, Clone)]
#[must_use]
pub struct NodeFixture(Node);

impl NodeFixture {
    /// The default node `id`.
    pub fn new(id: &str) -> Self {
        Self(Node {
            meta: Meta::new(id.into()),
            spec: NodeSpec::default(),
            description: NodeDescription {
                data_addr: None,
                hostname: id.into(),
                platform: Platform {
                    os: "linux".into(),
                    architecture: "amd64".into(),
                },
                resources: Resources::new(4.0, 8 * GIB),
                ..Default::default()
            },
            status: NodeStatus {
                state: NodeState::Ready,
                ..Default::default()
            },
        })
    }

    /// With the operator label `key=value`.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.spec.labels.insert(key.into(), value.into());
        self
    }

    /// With the engine label `key=value`.
    pub fn engine_label(mut self, key: &str, value: &str) -> Self {
        self.0
            .description
            .engine_labels
            .insert(key.into(), value.into());
        self
    }

    /// With `cpus` CPUs.
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.0.description.resources =
            Resources::new(cpus, self.0.description.resources.memory_bytes);
        self
    }

    /// With `bytes` of memory.
    pub fn memory(mut self, bytes: u64) -> Self {
        self.0.description.resources.memory_bytes = bytes;
        self
    }

    /// In state `state` (ready by default).
    pub fn state(mut self, state: NodeState) -> Self {
        self.0.status.state = state;
        self
    }

    /// With availability `availability` (active by default).
    pub fn availability(mut self, availability: Availability) -> Self {
        self.0.spec.availability = availability;
        self
    }

    /// A manager.
    pub fn manager(mut self) -> Self {
        self.0.spec.role = NodeRole::Manager;
        self
    }

    /// With the platform `os`/`arch`.
    pub fn platform(mut self, os: &str, arch: &str) -> Self {
        self.0.description.platform = Platform {
            os: os.into(),
            architecture: arch.into(),
        };
        self
    }

    /// The node.
    #[must_use]
    pub fn build(self) -> Node {
        self.0
    }

    /// The node, idle, as a scheduler sees it.
    #[must_use]
    pub fn info(self) -> NodeInfo {
        NodeInfo::new(Arc::new(self.0))
    }
}

/// A replicated service `name` (also its id) of `replicas` tasks running
/// `sleep 1000`, with its spec changed by `edit`.
pub fn service(name: &str, replicas: u64, edit: impl FnOnce(&mut ServiceSpec)) -> Service {
    let mut spec = ServiceSpec::replicated(name, replicas, vec!["sleep".into(), "1000".into()]);
    edit(&mut spec);
    Service {
        meta: Meta::new(name.into()),
        spec,
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    }
}

/// `n` pending tasks of `service`, in slots 1 to `n`, none assigned.
#[must_use]
pub fn pending_tasks(service: &Service, n: u64) -> Vec<Arc<Task>> {
    (1..=n)
        .map(|slot| {
            let mut t = Task::new(service, slot, None, vec![]);
            t.status.state = TaskState::Pending;
            Arc::new(t)
        })
        .collect()
}

/// A task of `service` in `slot`, assigned to `node`.
#[must_use]
pub fn assigned_task(service: &Service, slot: u64, node: &str) -> Task {
    let mut t = Task::new(service, slot, Some(node.into()), vec![]);
    t.status.state = TaskState::Assigned;
    t
}
