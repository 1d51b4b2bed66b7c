//! Tasks: one scheduled run of a service's template on one node.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{EndpointSpec, Meta, TaskSpec};
use crate::Id;

/// One run of a service's task template, in a slot, on a node.
///
/// A task never moves backwards through [`TaskState`]: a replacement is a
/// new task in the same slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// The service this task belongs to.
    pub service_id: Id,
    /// The service's name, for display (`web.3`); shared by the service's
    /// tasks.
    pub service_name: Arc<str>,
    /// The replica slot (1-based) of a replicated service; 0 for a global
    /// service, whose tasks are keyed by node.
    pub slot: u64,
    /// The node the task is assigned to; set by the scheduler (or at
    /// creation for global services).
    pub node_id: Option<Id>,
    /// What to run: a copy of the service's template when the task was made.
    pub spec: Arc<TaskSpec>,
    /// The service's published ports when the task was made.
    #[serde(default)]
    pub endpoint: Arc<EndpointSpec>,
    /// The version of the service the task was made from.
    pub service_version: u64,
    /// The state the manager wants the task in: `Running`, or `Shutdown`
    /// when it should stop.
    pub desired_state: TaskState,
    /// The observed state.
    pub status: TaskStatus,
    /// When the task reached `running` (healthy, with a health check), as
    /// its worker reported it; kept after it ends, for the rollout's
    /// monitor period.
    #[serde(default)]
    pub started_at: Option<SystemTime>,
    /// The task's address on each of its networks, once the allocator gave
    /// them.
    #[serde(default)]
    pub networks: Vec<TaskNetwork>,
    /// Times of the restarts that led to this task in its slot, newest last,
    /// kept for the restart policy's `max_attempts` within its `window`.
    #[serde(default)]
    pub restarts: Vec<SystemTime>,
    /// The generic resources of its node given to it, for its reservations
    /// (`spec.resources.generic`); set with its node by the scheduling loop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assigned_generic_resources: Vec<super::GenericResource>,
}

impl Task {
    /// A new task of a service in state `New`, desired `Running`.
    #[must_use]
    pub fn new(
        service: &super::Service,
        slot: u64,
        node_id: Option<Id>,
        restarts: Vec<SystemTime>,
    ) -> Self {
        Self {
            meta: Meta::new(Id::generate()),
            service_id: service.meta.id.clone(),
            service_name: service.spec.name.as_str().into(),
            slot,
            node_id,
            spec: Arc::new(service.spec.task.clone()),
            endpoint: Arc::new(service.spec.endpoint.clone()),
            service_version: service.meta.version,
            desired_state: TaskState::Running,
            status: TaskStatus::new(TaskState::New, "created"),
            started_at: None,
            networks: Vec::new(),
            restarts,
            assigned_generic_resources: Vec::new(),
        }
    }

    /// The task's display name, `service.slot` or `service.node` for
    /// global services.
    #[must_use]
    pub fn name(&self) -> String {
        if self.slot > 0 {
            format!("{}.{}", self.service_name, self.slot)
        } else {
            let node = self.node_id.as_ref().map_or("", |n| n.short());
            format!("{}.{}", self.service_name, node)
        }
    }

    /// Whether the task is, or will be, holding its slot: it is wanted
    /// running and has not finished.
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.desired_state <= TaskState::Running && !self.status.state.is_terminal()
    }
}

/// A task's attachment to one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskNetwork {
    /// The network.
    pub network_id: Id,
    /// The task's address on it.
    pub addr: std::net::Ipv4Addr,
    /// The network's prefix length (`10.0.1.5/24`).
    pub prefix: u8,
    /// Extra DNS names of the task on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// The states of a task, in order. A task only moves forwards.
///
/// The manager moves a task up to `Assigned` (and to `Orphaned`); the
/// worker moves it from `Accepted` on.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Created by an orchestrator.
    #[default]
    New,
    /// Resources allocated; waiting for the scheduler.
    Pending,
    /// Placed on a node.
    Assigned,
    /// The node's agent took it.
    Accepted,
    /// The runtime is preparing it (image, container).
    Preparing,
    /// Prepared, not started.
    Ready,
    /// Starting (or waiting for its first health check).
    Starting,
    /// Running.
    Running,
    /// Exited with status 0.
    Complete,
    /// Stopped because the manager asked.
    Shutdown,
    /// Exited with a non-zero status, or could not run.
    Failed,
    /// The node refused it (preparation failed).
    Rejected,
    /// Its node has been gone too long to know.
    Orphaned,
}

impl TaskState {
    /// Whether the task has finished: it will not run again.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        self > TaskState::Running
    }

    /// Whether the worker owns this state (the manager owns the earlier ones
    /// and `Orphaned`).
    #[must_use]
    pub fn is_worker_owned(self) -> bool {
        self >= TaskState::Accepted && self <= TaskState::Rejected
    }

    /// Whether a task may move from `self` to `next`: forwards only.
    #[must_use]
    pub fn can_move_to(self, next: TaskState) -> bool {
        next > self && !self.is_terminal()
    }

    /// The lowercase name, as `docker service ps` prints it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Pending => "pending",
            Self::Assigned => "assigned",
            Self::Accepted => "accepted",
            Self::Preparing => "preparing",
            Self::Ready => "ready",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Shutdown => "shutdown",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Orphaned => "orphaned",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task's observed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The state.
    pub state: TaskState,
    /// When it was entered.
    pub timestamp: SystemTime,
    /// A short human description ("started", "scheduler assigned task").
    #[serde(default)]
    pub message: Cow<'static, str>,
    /// Why the task failed or is stuck, for `service ps`'s ERROR column.
    #[serde(default)]
    pub err: Option<String>,
    /// The exit code, once it exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The runtime's handle (process id, container id).
    #[serde(default)]
    pub runtime_id: Option<String>,
}

impl TaskStatus {
    /// A status in `state` with `message`, stamped now.
    #[must_use]
    pub fn new(state: TaskState, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            state,
            timestamp: SystemTime::now(),
            message: message.into(),
            err: None,
            exit_code: None,
            runtime_id: None,
        }
    }

    /// This status with an error.
    #[must_use]
    pub fn with_err(mut self, err: impl Into<String>) -> Self {
        self.err = Some(err.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_and_never_move_backwards() {
        use TaskState::*;
        let order = [
            New, Pending, Assigned, Accepted, Preparing, Ready, Starting, Running, Complete,
            Shutdown, Failed, Rejected, Orphaned,
        ];
        for w in order.windows(2) {
            assert!(w[0] < w[1]);
        }
        assert!(Pending.can_move_to(Assigned));
        assert!(Pending.can_move_to(Running));
        assert!(!Running.can_move_to(Starting));
        assert!(!Running.can_move_to(Running));
        assert!(
            !Failed.can_move_to(Orphaned),
            "a finished task stays finished"
        );
        assert!(Running.is_worker_owned() && !Assigned.is_worker_owned());
        assert!(!Running.is_terminal() && Complete.is_terminal());
    }
}
