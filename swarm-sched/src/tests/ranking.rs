//! Which of the eligible nodes a task goes to.

use crate::{ConfigError, SchedulerConfig};

use super::*;

fn loaded(id: &str, service_tasks: usize, total: usize) -> NodeInfo {
    let mut n = node(id);
    if service_tasks > 0 {
        n.tasks_by_service.insert("s".into(), service_tasks);
    }
    n.tasks = total;
    n
}

#[test]
fn prefers_fewer_tasks_of_the_service_then_fewer_tasks_overall() {
    let nodes = [loaded("a", 1, 1), loaded("b", 0, 5), loaded("c", 0, 2)];
    let d = schedule(&nodes, &tasks(&service("s", |_| {}), 6));
    // c (0 of s, 2 in all), b (0, 5), then a (1, 1), c (1, 3), b (1, 6),
    // a (2, 2).
    assert_eq!(nodes_of(&d), ["c", "b", "a", "c", "b", "a"]);
}

#[test]
fn tasks_of_other_services_in_the_same_call_count_in_the_total() {
    let nodes = [node("a"), node("b")];
    let mut all = tasks(&service("one", |_| {}), 1);
    all.extend(tasks(&service("two", |_| {}), 1));
    let d = schedule(&nodes, &all);
    assert_eq!(nodes_of(&d), ["a", "b"]);
}

#[test]
fn a_node_where_the_service_keeps_failing_ranks_last_but_is_used_alone() {
    let mut failing = node("failing");
    failing.recent_failures.insert("s".into(), 5);
    failing.recent_failures.insert("other".into(), 1);
    let busy = loaded("busy", 3, 10);
    let svc = service("s", |_| {});

    let d = schedule(&[failing.clone(), busy.clone()], &tasks(&svc, 1));
    assert_eq!(
        nodes_of(&d),
        ["busy"],
        "failing ranks after a node with more tasks"
    );

    let lenient = SwarmScheduler::new(SchedulerConfig::default().max_failures(6)).unwrap();
    let d = schedule_with(&lenient, &[failing.clone(), busy.clone()], &tasks(&svc, 1));
    assert_eq!(
        nodes_of(&d),
        ["failing"],
        "under the threshold, load decides"
    );

    let d = schedule(&[failing.clone()], &tasks(&svc, 2));
    assert_eq!(
        nodes_of(&d),
        ["failing", "failing"],
        "still used when it is the only node"
    );

    let d = schedule(&[failing, busy], &tasks(&service("other", |_| {}), 1));
    assert_eq!(
        nodes_of(&d),
        ["failing"],
        "failures of another service do not count"
    );
}

#[test]
fn ties_break_by_node_id_whatever_the_order_of_the_nodes() {
    let nodes = vec![node("n3"), node("n1"), node("n2")];
    let all = tasks(&service("s", |_| {}), 7);
    let d = schedule(&nodes, &all);
    assert_eq!(nodes_of(&d), ["n1", "n2", "n3", "n1", "n2", "n3", "n1"]);
    let reversed: Vec<_> = nodes.iter().rev().cloned().collect();
    assert_eq!(schedule(&reversed, &all), d);
    assert_eq!(
        schedule(&nodes, &all),
        d,
        "the same inputs give the same decisions"
    );
}

#[test]
fn the_configuration_is_validated() {
    assert_eq!(
        SchedulerConfig::default().max_failures(0).validate(),
        Err(ConfigError::ZeroMaxFailures)
    );
    assert_eq!(
        SwarmScheduler::new(SchedulerConfig::default().max_failures(0)).unwrap_err(),
        ConfigError::ZeroMaxFailures
    );
    let s = SwarmScheduler::new(SchedulerConfig::default().max_failures(2)).unwrap();
    assert_eq!(s.config(), &SchedulerConfig::default().max_failures(2));
    assert_eq!(
        SwarmScheduler::default().config(),
        &SchedulerConfig::default().max_failures(5)
    );
}
