//! The conformance suite every [`Scheduler`] passes: the promises of its
//! contract, each checked on small clusters.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::Id;
use crate::model::{Availability, NodeState, PublishMode, Resources, Task};
use crate::sched::{Decision, NodeInfo, Scheduler};
use crate::testing::fixtures::{GIB, NodeFixture, pending_tasks, service};

/// Runs every check on `scheduler`, panicking with the promise that was
/// broken.
///
/// ```
/// use swarm_core::sched::Scheduler;
///
/// // In a test of your scheduler (swarm-sched runs it for each strategy):
/// fn keeps_the_contract<S: Scheduler>(my_scheduler: &S) {
///     swarm_core::testing::scheduler_suite(my_scheduler);
/// }
/// ```
pub fn scheduler_suite<S: Scheduler>(scheduler: &S) {
    nothing_to_place_decides_nothing(scheduler);
    one_decision_per_task(scheduler);
    only_nodes_that_take_tasks(scheduler);
    the_same_inputs_give_the_same_decisions(scheduler);
    reservations_add_up_within_a_call(scheduler);
    host_ports_are_not_shared(scheduler);
    max_replicas_per_node_holds(scheduler);
    constraints_and_platforms_hold(scheduler);
    reasons_say_something(scheduler);
}

/// Checks the shape of the answer: one decision for each task, no more,
/// each naming a node of the list; returns task → node (`None`:
/// unplaceable).
fn decide<S: Scheduler>(
    scheduler: &S,
    what: &str,
    nodes: &[NodeInfo],
    tasks: &[Arc<Task>],
) -> BTreeMap<Id, Option<Id>> {
    let decisions = scheduler.schedule(nodes, tasks);
    assert_eq!(
        decisions.len(),
        tasks.len(),
        "{what}: one decision per task (got {} for {} tasks)",
        decisions.len(),
        tasks.len()
    );
    let known: HashSet<&Id> = nodes.iter().map(|n| &n.node.meta.id).collect();
    let wanted: HashSet<&Id> = tasks.iter().map(|t| &t.meta.id).collect();
    let mut out = BTreeMap::new();
    for d in decisions {
        assert!(
            wanted.contains(d.task()),
            "{what}: a decision for task {}, which was not asked for",
            d.task()
        );
        let node = match &d {
            Decision::Assign { node, .. } => {
                assert!(
                    known.contains(node),
                    "{what}: task {} assigned to node {node}, which is not in the list",
                    d.task()
                );
                Some(node.clone())
            }
            Decision::Unplaceable { .. } => None,
        };
        assert!(
            out.insert(d.task().clone(), node).is_none(),
            "{what}: two decisions for task {}",
            d.task()
        );
    }
    out
}

fn count_on(decided: &BTreeMap<Id, Option<Id>>, node: &str) -> usize {
    decided
        .values()
        .filter(|n| n.as_ref().is_some_and(|n| n.as_str() == node))
        .count()
}

fn nothing_to_place_decides_nothing<S: Scheduler>(s: &S) {
    let nodes = [NodeFixture::new("a").info()];
    assert!(s.schedule(&nodes, &[]).is_empty(), "no tasks: no decisions");
    let svc = service("lonely", 2, |_| {});
    let decided = decide(s, "no nodes", &[], &pending_tasks(&svc, 2));
    assert!(
        decided.values().all(Option::is_none),
        "no nodes: every task unplaceable"
    );
}

fn one_decision_per_task<S: Scheduler>(s: &S) {
    let nodes: Vec<NodeInfo> = (0..5)
        .map(|i| NodeFixture::new(&format!("n{i}")).info())
        .collect();
    let mut tasks = pending_tasks(&service("one", 20, |_| {}), 20);
    tasks.extend(pending_tasks(&service("two", 7, |_| {}), 7));
    let decided = decide(s, "27 tasks of two services on 5 nodes", &nodes, &tasks);
    assert_eq!(decided.len(), 27);
    assert!(
        decided.values().all(Option::is_some),
        "idle nodes without limits take every task"
    );
}

fn only_nodes_that_take_tasks<S: Scheduler>(s: &S) {
    let nodes = [
        NodeFixture::new("down").state(NodeState::Down).info(),
        NodeFixture::new("unknown").state(NodeState::Unknown).info(),
        NodeFixture::new("paused")
            .availability(Availability::Pause)
            .info(),
        NodeFixture::new("drained")
            .availability(Availability::Drain)
            .info(),
        NodeFixture::new("ok").info(),
    ];
    let decided = decide(
        s,
        "mixed nodes",
        &nodes,
        &pending_tasks(&service("s", 10, |_| {}), 10),
    );
    for (task, node) in &decided {
        if let Some(node) = node {
            assert_eq!(
                node.as_str(),
                "ok",
                "task {task} went to node {node}, which does not take tasks (down, unknown, paused or drained)"
            );
        }
    }
    let only_unready = &nodes[..4];
    let decided = decide(
        s,
        "no node takes tasks",
        only_unready,
        &pending_tasks(&service("s", 3, |_| {}), 3),
    );
    assert!(
        decided.values().all(Option::is_none),
        "no node takes tasks: every task unplaceable, got {decided:?}"
    );
}

fn the_same_inputs_give_the_same_decisions<S: Scheduler>(s: &S) {
    let nodes: Vec<NodeInfo> = (0..7)
        .map(|i| {
            let mut n = NodeFixture::new(&format!("n{i}")).info();
            n.tasks = i % 3;
            n
        })
        .collect();
    let tasks = pending_tasks(&service("s", 12, |_| {}), 12);
    let first = decide(s, "first call", &nodes, &tasks);
    let again = decide(s, "same call again", &nodes, &tasks);
    assert_eq!(first, again, "the same inputs must give the same decisions");
}

fn reservations_add_up_within_a_call<S: Scheduler>(s: &S) {
    // Each 2-CPU node holds one task of 1.5 CPUs.
    let nodes = [
        NodeFixture::new("a").cpus(2.0).info(),
        NodeFixture::new("b").cpus(2.0).info(),
    ];
    let svc = service("big", 3, |spec| {
        spec.task.resources.reservations = Resources::new(1.5, GIB);
    });
    let decided = decide(
        s,
        "3 tasks of 1.5 CPUs on two 2-CPU nodes",
        &nodes,
        &pending_tasks(&svc, 3),
    );
    for node in ["a", "b"] {
        assert!(
            count_on(&decided, node) <= 1,
            "node {node} got more tasks than its CPUs hold: {decided:?}"
        );
    }
    assert!(
        decided.values().any(Option::is_none),
        "the third task fits nowhere: {decided:?}"
    );
    // Reservations already on the node count too.
    let mut half = NodeFixture::new("half").cpus(2.0).info();
    half.reserved = Resources::new(1.0, 0);
    let decided = decide(s, "a half-reserved node", &[half], &pending_tasks(&svc, 1));
    assert!(
        decided.values().all(Option::is_none),
        "1.5 CPUs do not fit in the 1 left: {decided:?}"
    );
}

fn host_ports_are_not_shared<S: Scheduler>(s: &S) {
    let svc = service("web", 3, |spec| {
        let mut port: crate::model::PortConfig = "8080:80".parse().expect("a port");
        port.publish_mode = PublishMode::Host;
        spec.endpoint.ports = vec![port];
    });
    // Tasks carry their service's endpoint.
    let tasks = pending_tasks(&svc, 3);
    let nodes = [NodeFixture::new("a").info(), NodeFixture::new("b").info()];
    let decided = decide(s, "3 tasks on host port 8080, 2 nodes", &nodes, &tasks);
    for node in ["a", "b"] {
        assert!(
            count_on(&decided, node) <= 1,
            "two tasks publish host port 8080 on node {node}: {decided:?}"
        );
    }
    let mut taken = NodeFixture::new("taken").info();
    taken.host_ports.insert((crate::model::Protocol::Tcp, 8080));
    let decided = decide(s, "host port already in use", &[taken], &tasks[..1]);
    assert!(
        decided.values().all(Option::is_none),
        "port 8080 is in use on the only node: {decided:?}"
    );
}

fn max_replicas_per_node_holds<S: Scheduler>(s: &S) {
    let svc = service("capped", 5, |spec| {
        spec.task.placement.max_replicas_per_node = 2;
    });
    let nodes = [NodeFixture::new("a").info(), NodeFixture::new("b").info()];
    let decided = decide(
        s,
        "5 tasks, 2 per node, 2 nodes",
        &nodes,
        &pending_tasks(&svc, 5),
    );
    for node in ["a", "b"] {
        assert!(
            count_on(&decided, node) <= 2,
            "node {node} runs more than max_replicas_per_node (2): {decided:?}"
        );
    }
    assert_eq!(
        decided.values().filter(|n| n.is_none()).count(),
        1,
        "one task fits nowhere: {decided:?}"
    );
}

fn constraints_and_platforms_hold<S: Scheduler>(s: &S) {
    let nodes = [
        NodeFixture::new("web").label("type", "web").info(),
        NodeFixture::new("db").label("type", "db").info(),
        NodeFixture::new("arm")
            .label("type", "web")
            .platform("linux", "arm64")
            .info(),
    ];
    let svc = service("site", 6, |spec| {
        spec.task.placement.constraints = vec!["node.labels.type==web".into()];
        spec.task.placement.platforms = vec![crate::model::Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
        }];
    });
    let decided = decide(
        s,
        "constrained to web nodes on amd64",
        &nodes,
        &pending_tasks(&svc, 6),
    );
    for (task, node) in &decided {
        assert_eq!(
            node.as_ref().map(Id::as_str),
            Some("web"),
            "task {task} must run on the amd64 web node: {decided:?}"
        );
    }
}

fn reasons_say_something<S: Scheduler>(s: &S) {
    let svc = service("nowhere", 1, |spec| {
        spec.task.placement.constraints = vec!["node.labels.type==none".into()];
    });
    let tasks = pending_tasks(&svc, 1);
    for d in s.schedule(&[NodeFixture::new("a").info()], &tasks) {
        match d {
            Decision::Unplaceable { reason, .. } => {
                assert!(!reason.trim().is_empty(), "an unplaceable task says why")
            }
            Decision::Assign { node, .. } => {
                panic!("no node satisfies node.labels.type==none, yet the task went to {node}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Puts every task on the first node, whatever it is.
    struct FirstNode;

    impl Scheduler for FirstNode {
        fn schedule(&self, nodes: &[NodeInfo], tasks: &[Arc<Task>]) -> Vec<Decision> {
            tasks
                .iter()
                .map(|t| match nodes.first() {
                    Some(n) => Decision::Assign {
                        task: t.meta.id.clone(),
                        node: n.node.meta.id.clone(),
                    },
                    None => Decision::Unplaceable {
                        task: t.meta.id.clone(),
                        reason: "no nodes".into(),
                    },
                })
                .collect()
        }
    }

    #[test]
    fn a_scheduler_that_ignores_the_nodes_fails_the_suite() {
        let broken = std::panic::catch_unwind(|| only_nodes_that_take_tasks(&FirstNode));
        assert!(
            broken.is_err(),
            "a down node was used and the suite said nothing"
        );
        let broken = std::panic::catch_unwind(|| reservations_add_up_within_a_call(&FirstNode));
        assert!(broken.is_err());
    }
}
