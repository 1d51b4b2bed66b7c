//! The seams of the scheduler: [`Filter`]s a node must pass and the
//! [`Rank`] that orders the nodes that pass, with the built-in filters
//! ([`Builtin`]) and rankings ([`Strategy`]) as their implementations.
//!
//! A filter or a ranking sees a node as a [`Candidate`]: the node as the
//! caller gave it, with what this call has already placed there counted
//! in (its unreserved resources, its tasks of the service and in all, its
//! host ports).

use std::fmt;
use std::sync::Arc;

use swarm_core::model::{Node, Protocol, Resources, Task};
use swarm_core::sched::NodeInfo;

use crate::cluster::Cluster;
use crate::filter::{Rejection, Requirements};

/// A node as a filter or a ranking sees it, during one scheduling call.
pub struct Candidate<'c> {
    pub(crate) cluster: &'c Cluster<'c>,
    pub(crate) req: &'c Requirements<'c>,
    pub(crate) p: usize,
}

impl fmt::Debug for Candidate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate")
            .field("node", &self.node().meta.id)
            .field("available", &self.available())
            .field("service_tasks", &self.service_tasks())
            .field("total_tasks", &self.total_tasks())
            .finish()
    }
}

impl<'c> Candidate<'c> {
    /// The node and its load, as the caller gave them (before this call).
    #[must_use]
    pub fn info(&self) -> &'c NodeInfo {
        self.cluster.node(self.p)
    }

    /// The node.
    #[must_use]
    pub fn node(&self) -> &'c Node {
        &self.cluster.node(self.p).node
    }

    /// CPU and memory not yet reserved, this call's placements included.
    #[must_use]
    pub fn available(&self) -> Resources {
        self.cluster.available(self.p)
    }

    /// Tasks of the task's service on the node, this call's included.
    #[must_use]
    pub fn service_tasks(&self) -> u32 {
        self.cluster.service_tasks(self.p, self.req.service)
    }

    /// Tasks of every service on the node, this call's included.
    #[must_use]
    pub fn total_tasks(&self) -> u32 {
        self.cluster.total(self.p)
    }

    /// Whether a host-mode port is taken on the node, by its tasks or by
    /// this call's placements.
    #[must_use]
    pub fn host_port_in_use(&self, protocol: Protocol, port: u32) -> bool {
        self.info().host_ports.contains(&(protocol, port))
            || self.cluster.port_taken(self.p, (protocol, port))
    }
}

/// A test a node must pass to take a task.
///
/// # Contract
/// - Pure: the same candidate and task give the same answer, with no I/O.
/// - `task` stands for its batch: the tasks of one service with the same
///   placement, reservations and ports are placed together, and the
///   filter runs once per node for the batch, and again for a node after
///   a task of the batch landed there.
/// - It is called for ready, active nodes only, after the filters before
///   it accepted the node.
pub trait Filter: Send + Sync + fmt::Debug + 'static {
    /// A short name, for reasons (`pick-me`).
    fn name(&self) -> &str;

    /// Whether `node` can take `task`.
    fn accepts(&self, node: &Candidate<'_>, task: &Task) -> bool;

    /// The part of an unplaceable task's reason about the nodes this
    /// filter turned away; `nodes` reads `1 node` or `3 nodes`.
    fn explain(&self, task: &Task, nodes: &str) -> String {
        let _ = task;
        format!("filter {} not passed on {nodes}", self.name())
    }
}

/// An order of the nodes that passed the filters.
///
/// # Contract
/// - Pure, as [`Filter`]'s.
/// - Smaller ranks are chosen first; ties go to the node with the smaller
///   id. Ranks at or above `2^(63 - b)`, for `b` the bits that number the
///   nodes (17 for 100k nodes), compare equal.
/// - Called once per eligible node for a batch, and again for a node after
///   each task of the batch landed there (the candidate counts it).
/// - Nodes where the service failed repeatedly rank after the others
///   whatever the rank says ([`SchedulerConfig::max_failures`](crate::SchedulerConfig::max_failures)).
pub trait Rank: Send + Sync + fmt::Debug + 'static {
    /// A short name, for logs.
    fn name(&self) -> &str;

    /// The rank of `node` for `task`.
    fn rank(&self, node: &Candidate<'_>, task: &Task) -> u64;
}

/// The built-in filters, in the order they run by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// The node is ready and active (not paused, not drained).
    Ready,
    /// Its unreserved CPU and memory, and its unassigned generic resources
    /// (GPUs...), cover the task's reservations.
    Resources,
    /// It satisfies every placement constraint.
    Constraints,
    /// Its platform is one of the task's platforms, if any are given.
    Platforms,
    /// None of the task's host-mode ports is taken there.
    HostPorts,
    /// It runs fewer than `max_replicas_per_node` tasks of the service.
    MaxReplicas,
}

impl Builtin {
    /// Every built-in filter, in order.
    pub const ALL: [Builtin; 6] = [
        Self::Ready,
        Self::Resources,
        Self::Constraints,
        Self::Platforms,
        Self::HostPorts,
        Self::MaxReplicas,
    ];
}

impl Filter for Builtin {
    fn name(&self) -> &str {
        match self {
            Self::Ready => "ready",
            Self::Resources => "resources",
            Self::Constraints => "constraints",
            Self::Platforms => "platforms",
            Self::HostPorts => "host-ports",
            Self::MaxReplicas => "max-replicas",
        }
    }

    fn accepts(&self, node: &Candidate<'_>, _task: &Task) -> bool {
        // The candidate's requirements are the task's, parsed once per
        // batch.
        node.cluster
            .check_builtin(*self, node.p, node.req, node.service_tasks())
            .is_ok()
    }
}

/// The built-in rankings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Swarm's: the node with the fewest tasks of the service, then the
    /// fewest tasks, first. Tasks spread over the nodes.
    #[default]
    Spread,
    /// Nomad's default: the node with the least CPU and memory left once
    /// the task is placed first (the most reserved node that fits), then
    /// the one with the most tasks. Tasks fill one node before the next,
    /// leaving whole nodes free for big tasks (moby#24103).
    Binpack,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "spread" => Ok(Self::Spread),
            "binpack" => Ok(Self::Binpack),
            other => Err(format!(
                "unknown scheduling strategy {other:?}: use spread or binpack"
            )),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Counts saturate here, well inside a rank.
const COUNT_MAX: u64 = (1 << 20) - 1;

impl Rank for Strategy {
    fn name(&self) -> &str {
        match self {
            Self::Spread => "spread",
            Self::Binpack => "binpack",
        }
    }

    fn rank(&self, node: &Candidate<'_>, task: &Task) -> u64 {
        match self {
            Self::Spread => {
                (u64::from(node.service_tasks()).min(COUNT_MAX) << 20)
                    | u64::from(node.total_tasks()).min(COUNT_MAX)
            }
            Self::Binpack => {
                // What would be left, as a share of the node, in 1/2^16ths
                // per resource (0 to 2^17 for both together).
                let capacity = node.node().description.resources;
                let left = node
                    .available()
                    .saturating_sub(&task.spec.resources.reservations);
                let share = |left: u64, of: u64| {
                    if of == 0 {
                        0
                    } else {
                        ((u128::from(left) << 16) / u128::from(of)) as u64
                    }
                };
                let left = share(left.nano_cpus, capacity.nano_cpus)
                    + share(left.memory_bytes, capacity.memory_bytes);
                let fewer_tasks_last = COUNT_MAX - u64::from(node.total_tasks()).min(COUNT_MAX);
                (left << 20) | fewer_tasks_last
            }
        }
    }
}

/// One step of the filter chain.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Builtin(Builtin),
    Custom(Arc<dyn Filter>),
}

/// The filters a scheduler runs, in order.
#[derive(Debug, Clone)]
pub(crate) struct Filters {
    pub steps: Vec<Step>,
    /// The steps are the built-ins in their order: the fast path.
    pub stock: bool,
}

impl Default for Filters {
    fn default() -> Self {
        Self {
            steps: Builtin::ALL.iter().map(|b| Step::Builtin(*b)).collect(),
            stock: true,
        }
    }
}

impl Filters {
    pub(crate) fn settle(&mut self) {
        self.stock = self.steps.len() == Builtin::ALL.len()
            && self
                .steps
                .iter()
                .zip(Builtin::ALL)
                .all(|(s, b)| matches!(s, Step::Builtin(x) if *x == b));
    }

    /// Whether the built-in `b` runs.
    pub(crate) fn has(&self, b: Builtin) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Builtin(x) if *x == b))
    }
}

/// How the nodes are ranked.
#[derive(Debug, Clone)]
pub(crate) enum Ranking {
    Strategy(Strategy),
    Custom(Arc<dyn Rank>),
}

impl Ranking {
    /// The stock spread ranking, which has a fast path.
    pub(crate) fn is_spread(&self) -> bool {
        matches!(self, Self::Strategy(Strategy::Spread))
    }

    pub(crate) fn rank(&self, node: &Candidate<'_>, task: &Task) -> u64 {
        match self {
            Self::Strategy(s) => s.rank(node, task),
            Self::Custom(r) => r.rank(node, task),
        }
    }
}

impl Cluster<'_> {
    /// Runs the filter chain of `req` on the node at `p`, for a task that
    /// has `service_tasks` tasks there, and says which step failed first.
    pub(crate) fn check_steps(
        &self,
        p: usize,
        req: &Requirements<'_>,
        service_tasks: u32,
    ) -> Result<(), Rejection> {
        for (k, step) in req.filters.steps.iter().enumerate() {
            match step {
                Step::Builtin(b) => self.check_builtin(*b, p, req, service_tasks)?,
                Step::Custom(f) => {
                    let node = Candidate {
                        cluster: self,
                        req,
                        p,
                    };
                    if !f.accepts(&node, req.task) {
                        return Err(Rejection::Custom(k));
                    }
                }
            }
        }
        Ok(())
    }
}
