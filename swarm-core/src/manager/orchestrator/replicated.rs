//! The replicated orchestrator's plan: `replicas` slots, each holding one
//! task wanted running.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use super::restart::{self, Restart};
use super::{Plan, newest, node_lost};
use crate::Id;
use crate::model::{Node, Service, ServiceMode, Task, TaskState};

/// Plans one replicated service.
///
/// - A slot is held by its newest task wanted running (`desired_state` at
///   most `Running`), even a finished one the restart policy keeps.
/// - A task on a lost node (down, drained, removed) is shut down and
///   replaced in its slot at once.
/// - A finished task is replaced when the restart policy says so.
/// - Too many slots: the surplus goes, tasks not running first, then those
///   on the nodes most loaded with this service, then with any task.
/// - Too few: new slots take the lowest free numbers.
///
/// `load` counts the active tasks on a node, all services; it is only
/// asked when the service scales down.
#[must_use]
pub fn plan(
    service: &Service,
    tasks: &[Arc<Task>],
    nodes: &HashMap<Id, Arc<Node>>,
    load: &dyn Fn(&Id) -> usize,
    now: SystemTime,
) -> Plan {
    let ServiceMode::Replicated { replicas } = service.spec.mode else {
        return Plan::default();
    };
    let mut plan = Plan::default();
    let mut by_slot: BTreeMap<u64, Vec<&Arc<Task>>> = BTreeMap::new();
    for t in tasks
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running)
    {
        by_slot.entry(t.slot).or_default().push(t);
    }
    let mut held: Vec<&Arc<Task>> = Vec::with_capacity(by_slot.len());
    for (_, candidates) in by_slot {
        let (current, extras) = newest(candidates);
        for t in extras {
            plan.shutdown(t, "replaced by a newer task in its slot");
        }
        held.push(current);
    }

    let replicas = usize::try_from(replicas).unwrap_or(usize::MAX);
    if held.len() > replicas {
        let surplus = held.len() - replicas;
        for t in scale_down(std::mem::take(&mut held), surplus, nodes, load, &mut plan) {
            held.push(t);
        }
    }

    for t in &held {
        repair(service, t, nodes, now, &mut plan);
    }

    let mut used: Vec<u64> = held.iter().map(|t| t.slot).collect();
    used.sort_unstable();
    let mut missing = replicas.saturating_sub(held.len());
    let mut slot = 1;
    let mut used = used.into_iter().peekable();
    while missing > 0 {
        if used.peek() == Some(&slot) {
            used.next();
        } else {
            plan.create(service, slot, None, Vec::new());
            missing -= 1;
        }
        slot += 1;
    }
    plan
}

/// Picks `surplus` tasks to remove and shuts them down; returns the rest.
/// Tasks that are not running go first (highest slot first); then, one at
/// a time, a task from the node with the most tasks of the service, ties
/// broken by the node's total load.
fn scale_down<'a>(
    held: Vec<&'a Arc<Task>>,
    mut surplus: usize,
    nodes: &HashMap<Id, Arc<Node>>,
    load: &dyn Fn(&Id) -> usize,
    plan: &mut Plan,
) -> Vec<&'a Arc<Task>> {
    let (mut running, mut idle): (Vec<&Arc<Task>>, Vec<&Arc<Task>>) =
        held.into_iter().partition(|t| {
            t.status.state == TaskState::Running
                && t.node_id
                    .as_ref()
                    .is_some_and(|n| node_lost(nodes.get(n).map(|n| &**n)).is_none())
        });
    idle.sort_by_key(|t| std::cmp::Reverse(t.slot));
    let mut keep = Vec::new();
    for t in idle {
        if surplus > 0 {
            plan.shutdown(t, "service scaled down");
            surplus -= 1;
        } else {
            keep.push(t);
        }
    }
    // Per node, its running tasks with the highest slot last.
    running.sort_by_key(|t| t.slot);
    let mut by_node: HashMap<&Id, Vec<&Arc<Task>>> = HashMap::new();
    for t in running {
        by_node
            .entry(t.node_id.as_ref().expect("running tasks have a node"))
            .or_default()
            .push(t);
    }
    let mut heap: std::collections::BinaryHeap<(usize, usize, &Id)> = by_node
        .iter()
        .map(|(n, ts)| (ts.len(), load(n), *n))
        .collect();
    while surplus > 0 {
        let Some((count, total, node)) = heap.pop() else {
            break;
        };
        let t = by_node
            .get_mut(node)
            .and_then(Vec::pop)
            .expect("heap entries have tasks");
        plan.shutdown(t, "service scaled down");
        surplus -= 1;
        if count > 1 {
            heap.push((count - 1, total.saturating_sub(1), node));
        }
    }
    keep.extend(by_node.into_values().flatten());
    keep
}

/// Keeps one held slot healthy: replace its task if its node is lost, or
/// if it finished and the restart policy says so. Shared with the global
/// orchestrator.
pub(crate) fn repair(
    service: &Service,
    t: &Arc<Task>,
    nodes: &HashMap<Id, Arc<Node>>,
    now: SystemTime,
    plan: &mut Plan,
) {
    let node = t.node_id.as_ref().map(|n| nodes.get(n).map(|n| &**n));
    let keep_node = matches!(service.spec.mode, ServiceMode::Global);
    if keep_node && let Some(Some(reason)) = node.map(node_lost) {
        // A global task is bound to its node: a lost node loses it, and
        // the node gets a new one if it comes back.
        plan.shutdown(t, reason);
        return;
    }
    if !t.status.state.is_terminal() {
        if let Some(Some(reason)) = node.map(node_lost) {
            plan.shutdown(t, reason);
            if !keep_node {
                plan.create(service, t.slot, None, t.restarts.clone());
            }
        }
        return;
    }
    match restart::decide(t, now) {
        Restart::Now { history } => {
            plan.shutdown(t, "restarting");
            let node = if keep_node { t.node_id.clone() } else { None };
            plan.create(service, t.slot, node, history);
        }
        Restart::After(d) => plan.recheck(d),
        Restart::Never => {}
    }
}

#[cfg(test)]
mod tests;
