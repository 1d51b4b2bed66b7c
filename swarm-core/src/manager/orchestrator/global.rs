//! The global orchestrator's plan: one task on every eligible node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::replicated::repair;
use super::{Plan, newest};
use crate::Id;
use crate::constraint::Constraint;
use crate::model::{Availability, Node, NodeState, Service, Task, TaskState};

/// Why a node may no longer run the service's task, if it may not. A
/// paused node keeps its task; a down node is handled by `repair`.
fn keeps(node: &Node, constraints: &[Constraint]) -> Option<&'static str> {
    if node.spec.availability == Availability::Drain {
        Some("node drained")
    } else if node.status.state == NodeState::Disconnected {
        Some("node left the cluster")
    } else if !Constraint::all_match(constraints, node) {
        Some("constraints no longer satisfied")
    } else {
        None
    }
}

/// Plans one global service.
///
/// - Every ready, active node that satisfies the constraints gets one task.
/// - A paused node keeps its task and gets none new.
/// - A down, drained or removed node, or one whose labels no longer
///   satisfy the constraints, loses its task; a node that comes back gets
///   a new one.
/// - A finished task is replaced on its node as the restart policy says.
#[must_use]
pub fn plan(
    service: &Service,
    tasks: &[Arc<Task>],
    nodes: &HashMap<Id, Arc<Node>>,
    now: SystemTime,
) -> Plan {
    let mut plan = Plan::default();
    let constraints = match Constraint::parse_all(&service.spec.task.placement.constraints) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(service = %service.spec.name, error = %e, "invalid constraints; placing nothing");
            return plan;
        }
    };
    let mut by_node: HashMap<&Id, Vec<&Arc<Task>>> = HashMap::new();
    for t in tasks
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running)
    {
        match &t.node_id {
            Some(n) => by_node.entry(n).or_default().push(t),
            None => plan.shutdown(t, "global task without a node"),
        }
    }
    for (node_id, candidates) in &by_node {
        let (current, extras) = newest(candidates.clone());
        for t in extras {
            plan.shutdown(t, "replaced by a newer task on its node");
        }
        match nodes.get(*node_id) {
            None => plan.shutdown(current, "node removed"),
            Some(node) => match keeps(node, &constraints) {
                Some(reason) => plan.shutdown(current, reason),
                None => repair(service, current, nodes, now, &mut plan),
            },
        }
    }
    let mut ids: Vec<&Id> = nodes.keys().collect();
    ids.sort();
    for id in ids {
        let node = &nodes[id];
        if by_node.contains_key(id)
            || !node.accepts_tasks()
            || !Constraint::all_match(&constraints, node)
        {
            continue;
        }
        plan.create(service, 0, Some(id.clone()), Vec::new());
    }
    plan
}
