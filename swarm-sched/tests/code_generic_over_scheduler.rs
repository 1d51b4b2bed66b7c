//! Code generic over `Scheduler` is unit-tested with `MockScheduler`, and
//! runs unchanged on `SwarmScheduler`.

use std::sync::Arc;

use swarm_core::Id;
use swarm_core::model::{Meta, Service, ServiceSpec, Task, TaskState};
use swarm_core::sched::{Decision, MockScheduler, NodeInfo, Scheduler};
use swarm_sched::SwarmScheduler;

/// A caller's helper: the tasks that stay pending, with why.
fn left_pending<S: Scheduler>(
    scheduler: &S,
    nodes: &[NodeInfo],
    tasks: &[Arc<Task>],
) -> Vec<(Id, String)> {
    scheduler
        .schedule(nodes, tasks)
        .into_iter()
        .filter_map(|d| match d {
            Decision::Unplaceable { task, reason } => Some((task, reason)),
            Decision::Assign { .. } => None,
        })
        .collect()
}

fn pending_tasks(n: u64) -> Vec<Arc<Task>> {
    let service = Service {
        meta: Meta::new("web".into()),
        spec: ServiceSpec::replicated("web", n, vec!["nginx".into()]),
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    };
    (1..=n)
        .map(|slot| {
            let mut t = Task::new(&service, slot, None, vec![]);
            t.status.state = TaskState::Pending;
            Arc::new(t)
        })
        .collect()
}

#[test]
fn the_helper_keeps_only_unplaceable_tasks() {
    let tasks = pending_tasks(2);
    let (placed, stuck) = (tasks[0].meta.id.clone(), tasks[1].meta.id.clone());
    let mut mock = MockScheduler::new();
    let answer = vec![
        Decision::Assign {
            task: placed.clone(),
            node: "n1".into(),
        },
        Decision::Unplaceable {
            task: stuck.clone(),
            reason: "no suitable node (1 node paused)".into(),
        },
    ];
    mock.expect_schedule()
        .withf(move |nodes, ts| nodes.is_empty() && ts.len() == 2 && ts[0].meta.id == placed)
        .times(1)
        .return_const(answer);
    assert_eq!(
        left_pending(&mock, &[], &tasks),
        vec![(stuck, "no suitable node (1 node paused)".to_owned())]
    );
}

#[test]
fn the_same_helper_runs_on_the_real_scheduler() {
    let tasks = pending_tasks(3);
    let scheduler = Arc::new(SwarmScheduler::default());
    let pending = left_pending(&scheduler, &[], &tasks);
    assert_eq!(pending.len(), 3);
    assert!(
        pending
            .iter()
            .all(|(_, why)| why == "no suitable node (no nodes in the cluster)")
    );
}
