//! The `Scheduler` trait: where pending tasks go.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::Id;
use crate::model::{GenericResource, Node, Protocol, Resources, Task, generic_free};

/// What the scheduler knows of a node: the node and the load on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node.
    pub node: Arc<Node>,
    /// Active tasks on the node (assigned and not finished), all services.
    pub tasks: usize,
    /// Active tasks on the node, per service.
    pub tasks_by_service: HashMap<Id, usize>,
    /// The sum of the reservations of the active tasks.
    pub reserved: Resources,
    /// Host-mode published ports in use.
    pub host_ports: HashSet<(Protocol, u32)>,
    /// Recent failures of tasks on this node, per service.
    pub recent_failures: HashMap<Id, u32>,
    /// The generic resources given to its active tasks.
    pub generic_in_use: Vec<GenericResource>,
}

impl NodeInfo {
    /// A node with no load.
    #[must_use]
    pub fn new(node: Arc<Node>) -> Self {
        Self {
            node,
            tasks: 0,
            tasks_by_service: HashMap::new(),
            reserved: Resources::default(),
            host_ports: HashSet::new(),
            recent_failures: HashMap::new(),
            generic_in_use: Vec::new(),
        }
    }

    /// Units of generic resource `kind` the node advertises and no active
    /// task was given.
    #[must_use]
    pub fn generic_free(&self, kind: &str) -> u64 {
        generic_free(
            &self.node.description.generic_resources,
            &self.generic_in_use,
            kind,
        )
    }

    /// CPU and memory not yet reserved.
    #[must_use]
    pub fn available(&self) -> Resources {
        self.node
            .description
            .resources
            .saturating_sub(&self.reserved)
    }

    /// Active tasks of `service` on this node.
    #[must_use]
    pub fn service_tasks(&self, service: &str) -> usize {
        self.tasks_by_service.get(service).copied().unwrap_or(0)
    }
}

/// A scheduling decision for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the task on the node.
    Assign {
        /// The task.
        task: Id,
        /// The node.
        node: Id,
    },
    /// No node can take the task now; it stays pending and is retried when
    /// nodes change.
    Unplaceable {
        /// The task.
        task: Id,
        /// Why, naming the filters and node counts:
        /// `no suitable node (1 node drained; constraint node.labels.type==web not satisfied on 3 nodes)`.
        reason: String,
    },
}

impl Decision {
    /// The task decided upon.
    #[must_use]
    pub fn task(&self) -> &Id {
        match self {
            Self::Assign { task, .. } | Self::Unplaceable { task, .. } => task,
        }
    }
}

/// Decides where pending tasks run.
///
/// # Contract
/// - Pure and synchronous: no I/O, no clock-dependent behaviour beyond what
///   the inputs carry. The same inputs give the same decisions.
/// - One decision per task in `tasks`, in any order.
/// - Decisions account for each other: placing several tasks in one call
///   counts each placement against the node's resources, ports and
///   per-service limits before the next.
/// - A node that does not accept tasks (not ready, paused, drained) is
///   never chosen.
///
/// Implementation: `swarm-sched`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Scheduler: Send + Sync + 'static {
    /// Decides a placement for each task.
    fn schedule(&self, nodes: &[NodeInfo], tasks: &[Arc<Task>]) -> Vec<Decision>;

    /// Sees the nodes when they changed and no task waits: a scheduler
    /// that remembers what it read of the nodes between calls can read
    /// them here, off the path of the next placement. The scheduling loop
    /// calls it after (re)starting and after nodes change while nothing is
    /// pending. It must not change what later calls decide. The default
    /// does nothing.
    fn observe(&self, nodes: &[NodeInfo]) {
        let _ = nodes;
    }
}

impl<S: Scheduler + ?Sized> Scheduler for Arc<S> {
    fn schedule(&self, nodes: &[NodeInfo], tasks: &[Arc<Task>]) -> Vec<Decision> {
        (**self).schedule(nodes, tasks)
    }

    fn observe(&self, nodes: &[NodeInfo]) {
        (**self).observe(nodes);
    }
}
