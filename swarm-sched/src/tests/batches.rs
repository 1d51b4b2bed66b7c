//! Tasks of one call are grouped by service and placed batch by batch,
//! each placement counting for the next.

use crate::batch;

use super::*;

#[test]
fn tasks_are_grouped_by_service_and_placement_requirements() {
    let web = service("web", |_| {});
    let web_v2 = service("web", |s| s.task.image = "other-image".into());
    let pinned = service("web", |s| {
        s.task.placement.constraints = vec!["node.id==a".into()]
    });
    let db = service("db", |_| {});
    let all = [
        tasks(&web, 2),
        tasks(&db, 1),
        tasks(&pinned, 1),
        tasks(&web_v2, 1),
        tasks(&db, 1),
    ]
    .concat();

    let groups = batch::group(&all);
    let shape: Vec<Vec<Vec<u32>>> = groups
        .iter()
        .map(|s| s.batches.iter().map(|b| b.tasks.clone()).collect())
        .collect();
    // web: tasks 0, 1 and 4 (another image, same placement), then the
    // pinned task 3; db: tasks 2 and 5.
    assert_eq!(shape, vec![vec![vec![0, 1, 4], vec![3]], vec![vec![2, 5]]]);
}

#[test]
fn decisions_follow_the_order_of_the_tasks_of_interleaved_services() {
    let x = tasks(&service("x", |_| {}), 2);
    let y = tasks(&service("y", |_| {}), 2);
    let all = vec![x[0].clone(), y[0].clone(), x[1].clone(), y[1].clone()];
    let d = schedule(&[node("a"), node("b")], &all);
    // x's batch goes first: a, b; then y: a, b.
    assert_eq!(nodes_of(&d), ["a", "a", "b", "b"]);
}

#[test]
fn batches_of_one_service_count_each_others_tasks() {
    let nodes = [
        labelled("web", &[("type", "web")]),
        labelled("db", &[("type", "db")]),
    ];
    let pinned = service("s", |s| {
        s.task.placement.constraints = vec!["node.labels.type==web".into()]
    });
    let free = service("s", |_| {});
    let all = [tasks(&pinned, 1), tasks(&free, 1)].concat();
    let d = schedule(&nodes, &all);
    assert_eq!(
        nodes_of(&d),
        ["web", "db"],
        "the free task avoids the node with a task of s"
    );
}

#[test]
fn another_service_starts_its_own_per_service_counts() {
    let mut loaded = node("loaded");
    loaded.tasks = 5;
    let nodes = [loaded, node("idle")];
    let first = service("first", |s| {
        s.task.placement.constraints = vec!["node.id==idle".into()]
    });
    let all = [tasks(&first, 1), tasks(&service("second", |_| {}), 1)].concat();
    let d = schedule(&nodes, &all);
    // idle has 1 task in all and none of "second": it still beats loaded.
    assert_eq!(nodes_of(&d), ["idle", "idle"]);
}

#[test]
fn no_tasks_no_decisions() {
    assert!(schedule(&[node("a")], &[]).is_empty());
}
