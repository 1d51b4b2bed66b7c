use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::plan;
use crate::Id;
use crate::manager::orchestrator::{Action, Plan, global};
use crate::model::{
    Availability, Meta, Node, NodeDescription, NodeSpec, NodeState, NodeStatus, RestartCondition,
    Service, ServiceSpec, Task, TaskState,
};

fn service(replicas: u64) -> Service {
    let mut spec = ServiceSpec::replicated("web", replicas, vec!["sleep".into(), "9".into()]);
    spec.task.restart.delay = Duration::ZERO;
    Service {
        meta: Meta::new("svc".into()),
        spec,
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    }
}

fn node(id: &str, state: NodeState, availability: Availability) -> (Id, Arc<Node>) {
    let n = Node {
        meta: Meta::new(id.into()),
        spec: NodeSpec {
            availability,
            ..Default::default()
        },
        description: NodeDescription::default(),
        status: NodeStatus {
            state,
            ..Default::default()
        },
    };
    (id.into(), Arc::new(n))
}

fn nodes(list: &[(&str, NodeState, Availability)]) -> HashMap<Id, Arc<Node>> {
    list.iter().map(|(id, s, a)| node(id, *s, *a)).collect()
}

fn ready(ids: &[&str]) -> HashMap<Id, Arc<Node>> {
    nodes(
        &ids.iter()
            .map(|id| (*id, NodeState::Ready, Availability::Active))
            .collect::<Vec<_>>(),
    )
}

fn task(s: &Service, id: &str, slot: u64, node: Option<&str>, state: TaskState) -> Arc<Task> {
    let mut t = Task::new(s, slot, node.map(Id::from), vec![]);
    t.meta.id = id.into();
    t.status.state = state;
    Arc::new(t)
}

fn creates(p: &Plan) -> Vec<(u64, Option<Id>)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Create(t) => Some((t.slot, t.node_id.clone())),
            Action::Shutdown { .. } => None,
        })
        .collect()
}

fn shutdowns(p: &Plan) -> Vec<(String, String)> {
    let mut v: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Shutdown { task, reason } => Some((task.to_string(), reason.clone())),
            Action::Create(_) => None,
        })
        .collect();
    v.sort();
    v
}

fn no_load(_: &Id) -> usize {
    0
}

fn now() -> SystemTime {
    SystemTime::now()
}

#[test]
fn creates_missing_slots_with_the_lowest_numbers() {
    let s = service(4);
    let tasks = vec![task(&s, "t2", 2, Some("a"), TaskState::Running)];
    let p = plan(&s, &tasks, &ready(&["a"]), &no_load, now());
    assert_eq!(creates(&p), vec![(1, None), (3, None), (4, None)]);
    assert!(shutdowns(&p).is_empty());
}

#[test]
fn a_converged_service_needs_nothing() {
    let s = service(2);
    let tasks = vec![
        task(&s, "t1", 1, Some("a"), TaskState::Running),
        task(&s, "t2", 2, None, TaskState::Pending),
        // history: an older, finished task of slot 1
        {
            let mut t = (*task(&s, "old", 1, Some("a"), TaskState::Failed)).clone();
            t.desired_state = TaskState::Shutdown;
            Arc::new(t)
        },
    ];
    let p = plan(&s, &tasks, &ready(&["a"]), &no_load, now());
    assert_eq!(p, Plan::default());
}

#[test]
fn scales_down_from_the_most_loaded_nodes_first() {
    let s = service(2);
    let tasks = vec![
        task(&s, "a1", 1, Some("a"), TaskState::Running),
        task(&s, "a2", 2, Some("a"), TaskState::Running),
        task(&s, "a3", 3, Some("a"), TaskState::Running),
        task(&s, "b1", 4, Some("b"), TaskState::Running),
        task(&s, "c1", 5, Some("c"), TaskState::Running),
    ];
    let load: HashMap<Id, usize> = [("a".into(), 3), ("b".into(), 1), ("c".into(), 9)].into();
    let p = plan(
        &s,
        &tasks,
        &ready(&["a", "b", "c"]),
        &|n: &Id| load.get(n).copied().unwrap_or(0),
        now(),
    );
    let gone: Vec<String> = shutdowns(&p).into_iter().map(|(t, _)| t).collect();
    // Node a holds 3 of the service's tasks: two of them go first; then the
    // tie between b and c (one each) goes to c, the busier node overall.
    assert_eq!(gone, ["a2", "a3", "c1"]);
    assert!(creates(&p).is_empty());
}

#[test]
fn scale_down_prefers_tasks_that_are_not_running() {
    let s = service(1);
    let tasks = vec![
        task(&s, "run", 1, Some("a"), TaskState::Running),
        task(&s, "pend", 2, None, TaskState::Pending),
    ];
    let p = plan(&s, &tasks, &ready(&["a"]), &no_load, now());
    assert_eq!(
        shutdowns(&p),
        [("pend".to_string(), "service scaled down".to_string())]
    );
}

#[test]
fn replaces_tasks_of_lost_nodes_in_their_slot() {
    let s = service(3);
    let tasks = vec![
        task(&s, "t1", 1, Some("down"), TaskState::Running),
        task(&s, "t2", 2, Some("drained"), TaskState::Running),
        task(&s, "t3", 3, Some("gone"), TaskState::Running),
    ];
    let ns = nodes(&[
        ("down", NodeState::Down, Availability::Active),
        ("drained", NodeState::Ready, Availability::Drain),
    ]);
    let p = plan(&s, &tasks, &ns, &no_load, now());
    assert_eq!(
        shutdowns(&p),
        [
            ("t1".to_string(), "node down".to_string()),
            ("t2".to_string(), "node drained".to_string()),
            ("t3".to_string(), "node removed".to_string()),
        ]
    );
    let mut c = creates(&p);
    c.sort();
    assert_eq!(c, vec![(1, None), (2, None), (3, None)]);
}

#[test]
fn a_paused_node_keeps_its_tasks() {
    let s = service(1);
    let tasks = vec![task(&s, "t1", 1, Some("p"), TaskState::Running)];
    let ns = nodes(&[("p", NodeState::Ready, Availability::Pause)]);
    assert_eq!(plan(&s, &tasks, &ns, &no_load, now()), Plan::default());
}

#[test]
fn restarts_finished_tasks_by_policy() {
    let mut s = service(2);
    s.spec.task.restart.condition = RestartCondition::OnFailure;
    let tasks = vec![
        task(&s, "failed", 1, Some("a"), TaskState::Failed),
        task(&s, "done", 2, Some("a"), TaskState::Complete),
    ];
    let p = plan(&s, &tasks, &ready(&["a"]), &no_load, now());
    assert_eq!(
        shutdowns(&p),
        [("failed".to_string(), "restarting".to_string())]
    );
    assert_eq!(
        creates(&p),
        vec![(1, None)],
        "the completed task keeps its slot"
    );
    match &p.actions[1] {
        Action::Create(t) => assert_eq!(t.restarts.len(), 1, "the replacement carries the restart"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn restart_delay_asks_for_a_recheck() {
    let mut s = service(1);
    s.spec.task.restart.delay = Duration::from_secs(5);
    let tasks = vec![task(&s, "failed", 1, Some("a"), TaskState::Failed)];
    let p = plan(&s, &tasks, &ready(&["a"]), &no_load, now());
    assert!(p.actions.is_empty());
    let d = p.recheck_after.expect("a recheck");
    assert!(
        d > Duration::from_secs(4) && d <= Duration::from_secs(5),
        "{d:?}"
    );
}

#[test]
fn duplicate_tasks_in_a_slot_keep_the_newest() {
    let s = service(1);
    let old = task(&s, "old", 1, Some("a"), TaskState::Running);
    let mut new = (*task(&s, "new", 1, Some("a"), TaskState::Running)).clone();
    new.meta.created_at = old.meta.created_at + Duration::from_secs(1);
    let p = plan(&s, &[old, Arc::new(new)], &ready(&["a"]), &no_load, now());
    assert_eq!(shutdowns(&p).len(), 1);
    assert_eq!(shutdowns(&p)[0].0, "old");
}

fn global_service(constraints: &[&str]) -> Service {
    let mut spec = ServiceSpec::global("agent", vec!["sleep".into(), "9".into()]);
    spec.task.placement.constraints = constraints.iter().map(|c| (*c).to_owned()).collect();
    Service {
        meta: Meta::new("g".into()),
        spec,
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    }
}

#[test]
fn global_runs_one_task_per_eligible_node() {
    let s = global_service(&[]);
    let ns = nodes(&[
        ("a", NodeState::Ready, Availability::Active),
        ("b", NodeState::Ready, Availability::Active),
        ("p", NodeState::Ready, Availability::Pause),
        ("d", NodeState::Down, Availability::Active),
        ("x", NodeState::Ready, Availability::Drain),
    ]);
    let tasks = vec![task(&s, "ta", 0, Some("a"), TaskState::Running)];
    let p = global::plan(&s, &tasks, &ns, now());
    assert_eq!(creates(&p), vec![(0, Some("b".into()))]);
    assert!(shutdowns(&p).is_empty());
}

#[test]
fn global_follows_drain_removal_and_labels() {
    let s = global_service(&["node.labels.type==web"]);
    let mut ns = nodes(&[
        ("drained", NodeState::Ready, Availability::Drain),
        ("relabelled", NodeState::Ready, Availability::Active),
        ("web", NodeState::Ready, Availability::Active),
    ]);
    let mut web = (*ns[&Id::from("web")]).clone();
    web.spec.labels.insert("type".into(), "web".into());
    ns.insert("web".into(), Arc::new(web));
    let tasks = vec![
        task(&s, "t1", 0, Some("drained"), TaskState::Running),
        task(&s, "t2", 0, Some("relabelled"), TaskState::Running),
        task(&s, "t3", 0, Some("removed"), TaskState::Running),
        task(&s, "t4", 0, Some("web"), TaskState::Running),
    ];
    let p = global::plan(&s, &tasks, &ns, now());
    assert_eq!(
        shutdowns(&p),
        [
            ("t1".to_string(), "node drained".to_string()),
            (
                "t2".to_string(),
                "constraints no longer satisfied".to_string()
            ),
            ("t3".to_string(), "node removed".to_string()),
        ]
    );
    assert!(creates(&p).is_empty());
}

#[test]
fn global_restarts_on_the_same_node() {
    let mut s = global_service(&[]);
    s.spec.task.restart.delay = Duration::ZERO;
    let tasks = vec![task(&s, "t", 0, Some("a"), TaskState::Failed)];
    let p = global::plan(&s, &tasks, &ready(&["a"]), now());
    assert_eq!(creates(&p), vec![(0, Some("a".into()))]);
    assert_eq!(shutdowns(&p), [("t".to_string(), "restarting".to_string())]);
}

#[test]
fn tasks_of_one_plan_share_one_copy_of_the_spec() {
    let s = service(3);
    let p = plan(&s, &[], &ready(&["a"]), &no_load, now());
    let specs: Vec<_> = p
        .actions
        .iter()
        .map(|a| match a {
            Action::Create(t) => t.spec.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(specs.len(), 3);
    assert!(specs.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
    let ids: std::collections::HashSet<_> = p
        .actions
        .iter()
        .map(|a| match a {
            Action::Create(t) => t.meta.id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 3, "each task has its own id");
}
