//! The global orchestrator's plan: one task on every eligible node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::Plan;
use super::replicated::repair;
use super::update::{Rollout, Slot};
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
/// - Nodes whose task runs an old spec are rolled to the current one.
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
    let rollout = Rollout::of(service, now);
    let mut slots: Vec<Slot<'_>> = Vec::with_capacity(by_node.len());
    let mut ids: Vec<&&Id> = by_node.keys().collect();
    ids.sort();
    for node_id in ids {
        let slot = rollout.resolve(by_node[*node_id].clone(), &mut plan);
        let leave = match nodes.get(*node_id) {
            None => Some("node removed"),
            Some(node) => keeps(node, &constraints),
        };
        match leave {
            Some(reason) => {
                plan.shutdown(slot.held, reason);
                if let Some(c) = slot.companion {
                    plan.shutdown(c, reason);
                }
            }
            None => {
                repair(service, slot.held, nodes, now, &mut plan);
                slots.push(slot);
            }
        }
    }
    rollout.step(&slots, tasks, &|t| t.node_id.clone(), &mut plan);
    if plan.rolled_back() {
        return plan;
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
