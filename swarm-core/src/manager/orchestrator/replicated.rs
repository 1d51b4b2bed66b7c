//! The replicated orchestrator's plan: `replicas` slots, each holding one
//! task wanted running.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use super::restart::{self, Restart};
use super::update::{Rollout, Slot};
use super::{Plan, node_lost};
use crate::Id;
use crate::model::{Node, Service, ServiceMode, Task, TaskState};

/// Plans one replicated service.
///
/// - A slot is held by its newest task wanted running (`desired_state` at
///   most `Running`), even a finished one the restart policy keeps, unless
///   a running task of the current spec is older (a rollback keeps it); a
///   rollout may keep an old task serving beside it (see [`super::update`]).
/// - A task on a lost node (down, drained, removed) is shut down and
///   replaced in its slot at once.
/// - A finished task is replaced when the restart policy says so.
/// - Too many slots: the surplus goes, tasks not running first, then those
///   on the nodes most loaded with this service, then with any task.
/// - Too few: new slots take the lowest free numbers.
/// - Slots whose task runs an old spec are rolled to the current one.
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
    let rollout = Rollout::of(service, now);
    let mut by_slot: BTreeMap<u64, Vec<&Arc<Task>>> = BTreeMap::new();
    for t in tasks
        .iter()
        .filter(|t| t.desired_state <= TaskState::Running)
    {
        by_slot.entry(t.slot).or_default().push(t);
    }
    let mut slots: HashMap<u64, Slot<'_>> = HashMap::with_capacity(by_slot.len());
    let mut held: Vec<&Arc<Task>> = Vec::with_capacity(by_slot.len());
    for (slot, candidates) in by_slot {
        let s = rollout.resolve(candidates, &mut plan);
        held.push(s.held);
        slots.insert(slot, s);
    }

    let replicas = usize::try_from(replicas).unwrap_or(usize::MAX);
    if held.len() > replicas {
        let surplus = held.len() - replicas;
        held = scale_down(std::mem::take(&mut held), surplus, nodes, load, &mut plan);
        let kept: std::collections::HashSet<u64> = held.iter().map(|t| t.slot).collect();
        slots.retain(|slot, s| {
            let keep = kept.contains(slot);
            if !keep && let Some(c) = s.companion {
                plan.shutdown(c, "service scaled down");
            }
            keep
        });
    }

    let mut kept: Vec<Slot<'_>> = Vec::with_capacity(slots.len());
    for t in &held {
        let mut s = slots.remove(&t.slot).expect("every held task has its slot");
        repair(service, t, nodes, now, &mut plan);
        if let Some(c) = s.companion
            && (c.status.state.is_terminal()
                || c.node_id
                    .as_ref()
                    .is_some_and(|n| node_lost(nodes.get(n).map(|n| &**n)).is_some()))
        {
            plan.shutdown(c, "its replacement is on its way");
            s.companion = None;
        }
        kept.push(s);
    }
    kept.sort_by_key(|s| s.held.slot);
    rollout.step(&kept, tasks, &|_| None, &mut plan);
    if plan.rolled_back() {
        // The spec just changed: the next run plans with it.
        return plan;
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
