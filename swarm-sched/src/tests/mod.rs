//! Behaviour of the scheduler on plain values.

mod batches;
mod filters;
mod plug;
mod properties;
mod ranking;
mod spread;

use std::collections::BTreeMap;
use std::sync::Arc;

use swarm_core::model::{Meta, Node, Resources, Service, ServiceSpec, Task};
use swarm_core::sched::{Decision, NodeInfo, Scheduler};
use swarm_core::testing::fixtures::{NodeFixture, pending_tasks};

use crate::SwarmScheduler;

const GIB: u64 = 1 << 30;

/// A ready, active worker `id` (also its hostname), linux/amd64, 4 CPUs and
/// 8 GiB, idle.
fn node(id: &str) -> NodeInfo {
    NodeFixture::new(id).info()
}

/// `info` with its node changed by `f`.
fn edit(mut info: NodeInfo, f: impl FnOnce(&mut Node)) -> NodeInfo {
    f(Arc::make_mut(&mut info.node));
    info
}

/// A node with `labels`.
fn labelled(id: &str, labels: &[(&str, &str)]) -> NodeInfo {
    edit(node(id), |n| {
        for (k, v) in labels {
            n.spec.labels.insert((*k).into(), (*v).into());
        }
    })
}

/// A node with `cpus` CPUs (and 8 GiB).
fn with_cpus(id: &str, cpus: f64) -> NodeInfo {
    edit(node(id), |n| {
        n.description.resources = Resources::new(cpus, 8 * GIB)
    })
}

/// A replicated service `id` with its spec changed by `f`.
fn service(id: &str, f: impl FnOnce(&mut ServiceSpec)) -> Service {
    let mut spec = ServiceSpec::replicated(id, 1, vec!["sleep".into(), "1000".into()]);
    f(&mut spec);
    Service {
        meta: Meta::new(id.into()),
        spec,
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    }
}

/// `n` pending tasks of `service`, in slots 1 to `n`.
fn tasks(service: &Service, n: u64) -> Vec<Arc<Task>> {
    pending_tasks(service, n)
}

/// Schedules with the default configuration, checking the contract's
/// shape: one decision per task, in order.
fn schedule(nodes: &[NodeInfo], tasks: &[Arc<Task>]) -> Vec<Decision> {
    schedule_with(&SwarmScheduler::default(), nodes, tasks)
}

fn schedule_with(s: &SwarmScheduler, nodes: &[NodeInfo], tasks: &[Arc<Task>]) -> Vec<Decision> {
    let decisions = s.schedule(nodes, tasks);
    assert_eq!(decisions.len(), tasks.len());
    for (d, t) in decisions.iter().zip(tasks) {
        assert_eq!(d.task(), &t.meta.id, "decisions come in task order");
    }
    decisions
}

/// The node of each decision, `-` for unplaceable tasks.
fn nodes_of(decisions: &[Decision]) -> Vec<String> {
    decisions
        .iter()
        .map(|d| match d {
            Decision::Assign { node, .. } => node.to_string(),
            Decision::Unplaceable { .. } => "-".to_owned(),
        })
        .collect()
}

/// Assigned tasks per node.
fn per_node(decisions: &[Decision]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for d in decisions {
        if let Decision::Assign { node, .. } = d {
            *out.entry(node.to_string()).or_default() += 1;
        }
    }
    out
}

/// The reasons of the unplaceable decisions.
fn reasons(decisions: &[Decision]) -> Vec<&str> {
    decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Unplaceable { reason, .. } => Some(reason.as_str()),
            Decision::Assign { .. } => None,
        })
        .collect()
}
