//! The seams: an app's filters and rankings, built-ins removed or
//! replaced, and the binpack strategy.

use swarm_core::model::PlacementPreference;

use crate::{Builtin, Candidate, ConfigError, Filter, Rank, SchedulerConfig, Strategy};

use super::*;

/// Only nodes labelled `pick=me`.
#[derive(Debug)]
struct PickMe;

impl Filter for PickMe {
    fn name(&self) -> &str {
        "pick-me"
    }
    fn accepts(&self, node: &Candidate<'_>, _task: &Task) -> bool {
        node.node()
            .spec
            .labels
            .get("pick")
            .is_some_and(|v| v == "me")
    }
    fn explain(&self, _task: &Task, nodes: &str) -> String {
        format!("not picked on {nodes}")
    }
}

/// At most `0` tasks in all on a node, this call's included.
#[derive(Debug)]
struct AtMost(u32);

impl Filter for AtMost {
    fn name(&self) -> &str {
        "at-most"
    }
    fn accepts(&self, node: &Candidate<'_>, _task: &Task) -> bool {
        node.total_tasks() < self.0
    }
}

#[test]
fn an_app_s_filter_decides_with_the_built_in_ones() {
    let nodes = [
        labelled("a", &[]),
        labelled("b", &[("pick", "me")]),
        labelled("c", &[("pick", "me")]),
    ];
    let s = SwarmScheduler::builder().filter(PickMe).build().unwrap();
    let d = schedule_with(&s, &nodes, &tasks(&service("s", |_| {}), 4));
    assert_eq!(per_node(&d), [("b".into(), 2), ("c".into(), 2)].into());

    // Its reason is part of the task's.
    let d = schedule_with(&s, &[labelled("a", &[])], &tasks(&service("s", |_| {}), 1));
    assert_eq!(reasons(&d), ["no suitable node (not picked on 1 node)"]);
}

#[test]
fn an_app_s_filter_sees_this_call_s_placements() {
    let nodes = [node("a"), node("b")];
    for strategy in [Strategy::Spread, Strategy::Binpack] {
        let s = SwarmScheduler::builder()
            .strategy(strategy)
            .filter(AtMost(2))
            .build()
            .unwrap();
        let d = schedule_with(&s, &nodes, &tasks(&service("s", |_| {}), 5));
        assert_eq!(
            per_node(&d),
            [("a".into(), 2), ("b".into(), 2)].into(),
            "{strategy}"
        );
        assert_eq!(
            reasons(&d),
            ["no suitable node (filter at-most not passed on 2 nodes)"],
            "{strategy}"
        );
    }
}

#[test]
fn built_in_filters_can_be_removed_or_replaced_but_not_readiness() {
    let svc = service("s", |s| {
        s.task.placement.constraints = vec!["node.labels.zone==x".into()];
    });
    let nodes = [labelled("a", &[("pick", "me")])];
    let stock = SwarmScheduler::default();
    assert_eq!(
        nodes_of(&schedule_with(&stock, &nodes, &tasks(&svc, 1))),
        ["-"]
    );
    let without = SwarmScheduler::builder()
        .without(Builtin::Constraints)
        .build()
        .unwrap();
    assert_eq!(
        nodes_of(&schedule_with(&without, &nodes, &tasks(&svc, 1))),
        ["a"]
    );
    let replaced = SwarmScheduler::builder()
        .replace(Builtin::Constraints, PickMe)
        .build()
        .unwrap();
    assert_eq!(
        nodes_of(&schedule_with(&replaced, &nodes, &tasks(&svc, 1))),
        ["a"]
    );
    let replaced_elsewhere = [labelled("b", &[("zone", "x")])];
    assert_eq!(
        reasons(&schedule_with(
            &replaced,
            &replaced_elsewhere,
            &tasks(&svc, 1)
        )),
        ["no suitable node (not picked on 1 node)"]
    );

    assert_eq!(
        SwarmScheduler::builder()
            .without(Builtin::Ready)
            .build()
            .unwrap_err(),
        ConfigError::ReadyIsRequired
    );
    assert_eq!(
        SwarmScheduler::builder()
            .replace(Builtin::Ready, PickMe)
            .build()
            .unwrap_err(),
        ConfigError::ReadyIsRequired
    );
    assert_eq!(
        SwarmScheduler::builder()
            .without(Builtin::HostPorts)
            .without(Builtin::HostPorts)
            .build()
            .unwrap_err(),
        ConfigError::NoSuchBuiltin(Builtin::HostPorts)
    );
    // The built-ins are filters an app can call, too.
    assert_eq!(Builtin::Constraints.name(), "constraints");
}

#[test]
fn binpack_fills_the_most_reserved_node_that_fits_before_the_next() {
    // 4 CPUs each; tasks reserve 1 CPU.
    let svc = service("s", |s| {
        s.task.resources.reservations = Resources::new(1.0, 0);
    });
    let nodes = [node("a"), node("b"), node("c")];
    let binpack =
        SwarmScheduler::new(SchedulerConfig::default().strategy(Strategy::Binpack)).unwrap();
    let d = schedule_with(&binpack, &nodes, &tasks(&svc, 6));
    assert_eq!(nodes_of(&d), ["a", "a", "a", "a", "b", "b"]);
    // Spread, side by side: one each in turn.
    let d = schedule(&nodes, &tasks(&svc, 6));
    assert_eq!(
        per_node(&d),
        [("a".into(), 2), ("b".into(), 2), ("c".into(), 2)].into()
    );

    // A node already half reserved is filled first.
    let mut half = node("c");
    half.reserved = Resources::new(2.0, 0);
    let d = schedule_with(&binpack, &[node("a"), node("b"), half], &tasks(&svc, 3));
    assert_eq!(nodes_of(&d), ["c", "c", "a"]);

    // A task too big for the fullest node goes where it fits.
    let big = service("big", |s| {
        s.task.resources.reservations = Resources::new(3.0, 0);
    });
    let mut half = node("c");
    half.reserved = Resources::new(2.0, 0);
    let d = schedule_with(&binpack, &[node("a"), half], &tasks(&big, 1));
    assert_eq!(nodes_of(&d), ["a"]);
}

#[test]
fn binpack_without_reservations_packs_by_task_count() {
    let mut busy = node("b");
    busy.tasks = 3;
    let binpack = SwarmScheduler::builder()
        .strategy(Strategy::Binpack)
        .build()
        .unwrap();
    let d = schedule_with(
        &binpack,
        &[node("a"), busy],
        &tasks(&service("s", |_| {}), 2),
    );
    assert_eq!(nodes_of(&d), ["b", "b"]);
}

#[test]
fn binpack_honours_spread_preferences_first() {
    let svc = service("s", |s| {
        s.task.resources.reservations = Resources::new(1.0, 0);
        s.task.placement.preferences = vec![PlacementPreference::Spread {
            descriptor: "node.labels.zone".into(),
        }];
    });
    let nodes = [
        labelled("a1", &[("zone", "a")]),
        labelled("a2", &[("zone", "a")]),
        labelled("b1", &[("zone", "b")]),
        labelled("b2", &[("zone", "b")]),
    ];
    let binpack = SwarmScheduler::builder()
        .strategy(Strategy::Binpack)
        .build()
        .unwrap();
    let d = schedule_with(&binpack, &nodes, &tasks(&svc, 4));
    // Two per zone, packed on one node of each.
    assert_eq!(per_node(&d), [("a1".into(), 2), ("b1".into(), 2)].into());
}

/// The node with the largest id first.
#[derive(Debug)]
struct Last;

impl Rank for Last {
    fn name(&self) -> &str {
        "last"
    }
    fn rank(&self, node: &Candidate<'_>, _task: &Task) -> u64 {
        u64::from(u8::MAX - node.node().meta.id.as_str().as_bytes()[0])
    }
}

#[test]
fn an_app_s_ranking_replaces_the_strategy() {
    let s = SwarmScheduler::builder().rank(Last).build().unwrap();
    let d = schedule_with(
        &s,
        &[node("a"), node("c"), node("b")],
        &tasks(&service("s", |_| {}), 2),
    );
    assert_eq!(nodes_of(&d), ["c", "c"]);
    assert_eq!("binpack".parse::<Strategy>(), Ok(Strategy::Binpack));
    assert!(
        "pack"
            .parse::<Strategy>()
            .unwrap_err()
            .contains("spread or binpack")
    );
}

/// Any node takes any task: resources are overcommitted.
#[derive(Debug)]
struct Overcommit;

impl Filter for Overcommit {
    fn name(&self) -> &str {
        "overcommit"
    }
    fn accepts(&self, _: &Candidate<'_>, _: &Task) -> bool {
        true
    }
}

#[test]
fn a_replaced_or_removed_built_in_no_longer_applies_within_a_batch() {
    // 4 CPUs each, 2 CPUs per task: the stock chain takes 2 per node.
    let svc = service("s", |s| {
        s.task.resources.reservations = Resources::new(2.0, 0);
        s.task.placement.max_replicas_per_node = 1;
    });
    let nodes = [node("a"), node("b"), node("c")];
    for strategy in [Strategy::Spread, Strategy::Binpack] {
        let stock = SwarmScheduler::builder()
            .strategy(strategy)
            .build()
            .unwrap();
        let d = schedule_with(&stock, &nodes, &tasks(&svc, 9));
        assert_eq!(
            per_node(&d).values().sum::<usize>(),
            3,
            "{strategy}: one per node"
        );
        let loose = SwarmScheduler::builder()
            .strategy(strategy)
            .replace(Builtin::Resources, Overcommit)
            .without(Builtin::MaxReplicas)
            .build()
            .unwrap();
        let d = schedule_with(&loose, &nodes, &tasks(&svc, 9));
        assert!(reasons(&d).is_empty(), "{strategy}: {:?}", reasons(&d));
        assert_eq!(per_node(&d).values().sum::<usize>(), 9);
    }
}

#[test]
fn an_app_s_filter_is_asked_again_under_spread_preferences() {
    let svc = service("s", |s| {
        s.task.placement.preferences = vec![PlacementPreference::Spread {
            descriptor: "node.labels.zone".into(),
        }];
    });
    let nodes = [
        labelled("a", &[("zone", "x")]),
        labelled("b", &[("zone", "y")]),
    ];
    let s = SwarmScheduler::builder().filter(AtMost(2)).build().unwrap();
    let d = schedule_with(&s, &nodes, &tasks(&svc, 6));
    assert_eq!(per_node(&d), [("a".into(), 2), ("b".into(), 2)].into());
    assert_eq!(reasons(&d).len(), 2);
}
