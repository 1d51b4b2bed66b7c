//! Spread preferences.

use std::collections::{BTreeMap, BTreeSet};

use swarm_core::model::{Availability, PlacementPreference, Resources};

use super::*;

fn spread(descriptors: &[&str]) -> Vec<PlacementPreference> {
    descriptors
        .iter()
        .map(|d| PlacementPreference::Spread {
            descriptor: (*d).into(),
        })
        .collect()
}

/// Assigned tasks per value of the node label `key`.
fn per_label(nodes: &[NodeInfo], decisions: &[Decision], key: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (node, n) in per_node(decisions) {
        let info = nodes
            .iter()
            .find(|i| i.node.meta.id.as_str() == node)
            .unwrap();
        let value = info.node.spec.labels.get(key).cloned().unwrap_or_default();
        *out.entry(value).or_default() += n;
    }
    out
}

fn zones(sizes: &[(&str, usize)]) -> Vec<NodeInfo> {
    sizes
        .iter()
        .flat_map(|&(zone, n)| {
            (0..n).map(move |k| labelled(&format!("{zone}-{k}"), &[("zone", zone)]))
        })
        .collect()
}

#[test]
fn tasks_spread_evenly_over_zones_of_unequal_sizes() {
    let nodes = zones(&[("a", 1), ("b", 2), ("c", 4)]);
    let svc = service("s", |s| {
        s.task.placement.preferences = spread(&["node.labels.zone"])
    });
    let d = schedule(&nodes, &tasks(&svc, 9));
    assert_eq!(
        per_label(&nodes, &d, "zone"),
        BTreeMap::from([("a".into(), 3), ("b".into(), 3), ("c".into(), 3)])
    );
    // Within a zone, ranking spreads over the nodes.
    let counts = per_node(&d);
    assert_eq!((counts["b-0"], counts["b-1"]), (2, 1));
    let in_c: BTreeSet<_> = counts.keys().filter(|n| n.starts_with("c-")).collect();
    assert_eq!(in_c.len(), 3);
}

#[test]
fn existing_tasks_count_towards_their_zone() {
    let mut nodes = zones(&[("a", 1), ("b", 1), ("c", 1)]);
    nodes[0].tasks_by_service.insert("s".into(), 3);
    let svc = service("s", |s| {
        s.task.placement.preferences = spread(&["node.labels.zone"])
    });
    let d = schedule(&nodes, &tasks(&svc, 6));
    assert_eq!(
        per_label(&nodes, &d, "zone"),
        BTreeMap::from([("b".into(), 3), ("c".into(), 3)])
    );
    let d = schedule(&nodes, &tasks(&svc, 3));
    assert_eq!(
        nodes_of(&d),
        ["b-0", "c-0", "b-0"],
        "ties go to the smaller value"
    );
}

#[test]
fn nodes_without_the_label_form_a_group_of_their_own() {
    let nodes = vec![
        labelled("a-1", &[("zone", "a")]),
        labelled("a-2", &[("zone", "a")]),
        labelled("none-1", &[]),
    ];
    let svc = service("s", |s| {
        s.task.placement.preferences = spread(&["node.labels.zone"])
    });
    let d = schedule(&nodes, &tasks(&svc, 4));
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("a-1".into(), 1), ("a-2".into(), 1), ("none-1".into(), 2)])
    );
}

#[test]
fn nested_preferences_spread_within_each_outer_group() {
    let nodes = vec![
        labelled("a-r1-0", &[("zone", "a"), ("rack", "r1")]),
        labelled("a-r2-0", &[("zone", "a"), ("rack", "r2")]),
        labelled("a-r2-1", &[("zone", "a"), ("rack", "r2")]),
        labelled("a-r2-2", &[("zone", "a"), ("rack", "r2")]),
        labelled("b-r1-0", &[("zone", "b"), ("rack", "r1")]),
        labelled("b-r1-1", &[("zone", "b"), ("rack", "r1")]),
    ];
    let svc = service("s", |s| {
        s.task.placement.preferences = spread(&["node.labels.zone", "node.labels.rack"])
    });
    let d = schedule(&nodes, &tasks(&svc, 8));
    let counts = per_node(&d);
    assert_eq!(
        per_label(&nodes, &d, "zone"),
        BTreeMap::from([("a".into(), 4), ("b".into(), 4)])
    );
    assert_eq!(
        counts["a-r1-0"], 2,
        "rack r1 of zone a gets half of the zone"
    );
    let in_r2: Vec<usize> = ["a-r2-0", "a-r2-1", "a-r2-2"]
        .iter()
        .map(|n| counts.get(*n).copied().unwrap_or(0))
        .collect();
    assert_eq!(
        in_r2,
        [1, 1, 0],
        "rack r2 of zone a gets the other half, one per node"
    );
    assert_eq!((counts["b-r1-0"], counts["b-r1-1"]), (2, 2));
}

#[test]
fn only_eligible_nodes_form_groups() {
    let mut nodes = zones(&[("a", 1), ("b", 1), ("c", 2)]);
    for n in &mut nodes[2..] {
        *n = edit(n.clone(), |n| n.spec.availability = Availability::Drain);
    }
    let svc = service("s", |s| {
        s.task.placement.preferences = spread(&["node.labels.zone"])
    });
    let d = schedule(&nodes, &tasks(&svc, 4));
    assert_eq!(
        per_label(&nodes, &d, "zone"),
        BTreeMap::from([("a".into(), 2), ("b".into(), 2)])
    );
}

#[test]
fn a_full_group_leaves_the_rest_to_the_others() {
    let nodes = vec![
        edit(labelled("a", &[("zone", "a")]), |n| {
            n.description.resources = Resources::new(1.0, GIB)
        }),
        labelled("b", &[("zone", "b")]),
    ];
    let svc = service("s", |s| {
        s.task.placement.preferences = spread(&["node.labels.zone"]);
        s.task.resources.reservations = Resources::new(1.0, 0);
    });
    let d = schedule(&nodes, &tasks(&svc, 6));
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("a".into(), 1), ("b".into(), 4)])
    );
    assert_eq!(
        reasons(&d),
        ["no suitable node (insufficient resources on 2 nodes)"]
    );
}

#[test]
fn an_invalid_descriptor_makes_the_tasks_unplaceable() {
    let svc = service("s", |s| {
        s.task.placement.preferences = spread(&["node.colour"])
    });
    let d = schedule(&[node("n")], &tasks(&svc, 1));
    assert!(
        reasons(&d)[0].starts_with("invalid spread preference: unknown attribute"),
        "{:?}",
        reasons(&d)
    );
}
