//! Every filter, and the reasons it gives.

use std::collections::{BTreeMap, BTreeSet};

use swarm_core::model::{
    Availability, NodeRole, NodeState, Platform, PortConfig, Protocol, PublishMode, Resources,
};

use super::*;

/// The nodes that can take a task constrained by `constraints`: schedules
/// one task per node, at most one per node, and lists where they went.
fn eligible(nodes: &[NodeInfo], constraints: &[&str]) -> BTreeSet<String> {
    let svc = service("web", |s| {
        s.task.placement.constraints = constraints.iter().map(|c| (*c).to_owned()).collect();
        s.task.placement.max_replicas_per_node = 1;
    });
    let d = schedule(nodes, &tasks(&svc, nodes.len() as u64));
    per_node(&d).into_keys().collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn host_port(port: u32, protocol: Protocol) -> PortConfig {
    PortConfig {
        proxy_protocol: false,
        protocol,
        target_port: 80,
        published_port: port,
        publish_mode: PublishMode::Host,
    }
}

#[test]
fn nodes_not_ready_drained_or_paused_are_never_chosen_and_counted_apart() {
    let nodes = vec![
        edit(node("down"), |n| n.status.state = NodeState::Down),
        edit(node("unknown"), |n| n.status.state = NodeState::Unknown),
        edit(node("gone-and-drained"), |n| {
            n.status.state = NodeState::Disconnected;
            n.spec.availability = Availability::Drain;
        }),
        edit(node("drained"), |n| {
            n.spec.availability = Availability::Drain
        }),
        edit(node("paused"), |n| {
            n.spec.availability = Availability::Pause
        }),
    ];
    let d = schedule(&nodes, &tasks(&service("s", |_| {}), 2));
    assert_eq!(
        reasons(&d),
        vec!["no suitable node (3 nodes not ready; 1 node drained; 1 node paused)"; 2]
    );

    let mut with_one = nodes.clone();
    with_one.push(node("ok"));
    let d = schedule(&with_one, &tasks(&service("s", |_| {}), 3));
    assert_eq!(nodes_of(&d), ["ok", "ok", "ok"]);
}

#[test]
fn an_empty_cluster_says_so() {
    let d = schedule(&[], &tasks(&service("s", |_| {}), 1));
    assert_eq!(reasons(&d), ["no suitable node (no nodes in the cluster)"]);
}

#[test]
fn reservations_must_fit_what_is_not_yet_reserved() {
    let mut half_full = with_cpus("half-full", 2.0);
    half_full.reserved = Resources::new(1.5, 0);
    let small_memory = edit(node("small-memory"), |n| {
        n.description.resources.memory_bytes = GIB / 2
    });
    let svc = service("s", |s| {
        s.task.resources.reservations = Resources::new(1.0, GIB)
    });
    let d = schedule(&[half_full.clone(), small_memory.clone()], &tasks(&svc, 1));
    assert_eq!(
        reasons(&d),
        ["no suitable node (insufficient resources on 2 nodes)"]
    );

    // Without reservations, any node will do, however full.
    let d = schedule(&[half_full, small_memory], &tasks(&service("s", |_| {}), 2));
    assert_eq!(reasons(&d), Vec::<&str>::new());
}

#[test]
fn a_batch_counts_its_own_reservations() {
    let nodes = [with_cpus("two", 2.0), with_cpus("one", 1.0)];
    let svc = service("s", |s| {
        s.task.resources.reservations = Resources::new(1.0, 0)
    });
    let d = schedule(&nodes, &tasks(&svc, 4));
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("one".into(), 1), ("two".into(), 2)])
    );
    assert_eq!(
        reasons(&d),
        ["no suitable node (insufficient resources on 2 nodes)"]
    );
}

#[test]
fn generic_resources_must_be_free_counting_this_calls_own() {
    use swarm_core::model::GenericResource;
    let gpus = |name: &str, values: &[&str]| {
        edit(node(name), |n| {
            n.description.generic_resources = values
                .iter()
                .map(|v| GenericResource::Named {
                    kind: "gpu".into(),
                    value: (*v).into(),
                })
                .collect();
        })
    };
    let mut busy = gpus("busy", &["a", "b"]);
    busy.generic_in_use = vec![GenericResource::Named {
        kind: "gpu".into(),
        value: "a".into(),
    }];
    let nodes = [gpus("two", &["c", "d"]), busy, node("none")];
    let svc = service("train", |s| {
        s.task.resources.generic.insert("gpu".into(), 1);
    });
    let d = schedule(&nodes, &tasks(&svc, 4));
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("busy".into(), 1), ("two".into(), 2)])
    );
    assert_eq!(
        reasons(&d),
        ["no suitable node (insufficient resources on 3 nodes)"]
    );
}

#[test]
fn batches_of_one_call_count_each_others_reservations() {
    let nodes = [with_cpus("two", 2.0)];
    let a = service("a", |s| {
        s.task.resources.reservations = Resources::new(1.5, 0)
    });
    let b = service("b", |s| {
        s.task.resources.reservations = Resources::new(1.0, 0)
    });
    let mut all = tasks(&a, 1);
    all.extend(tasks(&b, 1));
    let d = schedule(&nodes, &all);
    assert_eq!(nodes_of(&d), ["two", "-"]);
    assert_eq!(
        reasons(&d),
        ["no suitable node (insufficient resources on 1 node)"]
    );
}

#[test]
fn constraints_look_at_every_node_attribute() {
    let nodes = vec![
        edit(labelled("n1", &[("type", "web")]), |n| {
            n.spec.role = NodeRole::Manager;
            n.description.hostname = "Alpha".into();
            n.description
                .engine_labels
                .insert("storage".into(), "ssd".into());
        }),
        edit(labelled("n2", &[("type", "db")]), |n| {
            n.description.platform = Platform {
                os: "windows".into(),
                architecture: "amd64".into(),
            };
        }),
        edit(node("n3"), |n| {
            n.description.platform.architecture = "arm64".into();
            n.description
                .engine_labels
                .insert("storage".into(), "hdd".into());
        }),
    ];
    let cases: &[(&[&str], &[&str])] = &[
        (&["node.id==n2"], &["n2"]),
        (&["node.id!=n2"], &["n1", "n3"]),
        (&["node.hostname==alpha"], &["n1"]),
        (&["node.hostname!=alpha"], &["n2", "n3"]),
        (&["node.role==manager"], &["n1"]),
        (&["node.role!=manager"], &["n2", "n3"]),
        (&["node.platform.os==windows"], &["n2"]),
        (&["node.platform.os!=windows"], &["n1", "n3"]),
        (&["node.platform.arch==arm64"], &["n3"]),
        (&["node.platform.arch!=arm64"], &["n1", "n2"]),
        (&["node.labels.type==web"], &["n1"]),
        (&["node.labels.type!=web"], &["n2", "n3"]),
        (&["engine.labels.storage==ssd"], &["n1"]),
        (&["engine.labels.storage!=ssd"], &["n2", "n3"]),
        // A missing label compares as empty: it is not "web".
        (&["node.labels.type!=db"], &["n1", "n3"]),
        // All constraints must hold.
        (&["node.labels.type!=db", "node.role==worker"], &["n3"]),
        (
            &[
                "node.platform.os==linux",
                "engine.labels.storage!=hdd",
                "node.id!=n1",
            ],
            &[],
        ),
    ];
    for (constraints, expected) in cases {
        assert_eq!(
            eligible(&nodes, constraints),
            set(expected),
            "{constraints:?}"
        );
    }
}

#[test]
fn the_reason_names_the_first_constraint_each_node_fails() {
    let nodes = vec![
        labelled("db-a", &[("type", "db"), ("zone", "a")]),
        labelled("db", &[("type", "db")]),
        labelled("web-b", &[("type", "web"), ("zone", "b")]),
        labelled("no-labels", &[]),
    ];
    let svc = service("s", |s| {
        s.task.placement.constraints =
            vec!["node.labels.type==web".into(), "node.labels.zone==a".into()];
    });
    let d = schedule(&nodes, &tasks(&svc, 1));
    assert_eq!(
        reasons(&d),
        [
            "no suitable node (constraint node.labels.type==web not satisfied on 3 nodes; \
          constraint node.labels.zone==a not satisfied on 1 node)"
        ]
    );
}

#[test]
fn invalid_constraints_make_the_tasks_unplaceable_with_the_parse_error() {
    let svc = service("s", |s| {
        s.task.placement.constraints = vec!["node.labels.type=web".into()]
    });
    let d = schedule(&[node("n1")], &tasks(&svc, 2));
    let r = reasons(&d);
    assert_eq!(r.len(), 2);
    assert!(
        r[0].contains("invalid constraint \"node.labels.type=web\""),
        "{}",
        r[0]
    );
}

#[test]
fn platforms_match_os_and_architecture_with_aliases() {
    let on = |id: &str, os: &str, arch: &str| {
        edit(node(id), |n| {
            n.description.platform = Platform {
                os: os.into(),
                architecture: arch.into(),
            }
        })
    };
    let nodes = vec![
        on("x86", "linux", "x86_64"),
        on("amd", "Linux", "amd64"),
        on("arm", "linux", "arm64"),
        on("aarch", "linux", "aarch64"),
        on("win", "windows", "amd64"),
    ];
    let placed_on = |platforms: Vec<Platform>| {
        let svc = service("s", |s| {
            s.task.placement.platforms = platforms;
            s.task.placement.max_replicas_per_node = 1;
        });
        let d = schedule(&nodes, &tasks(&svc, 5));
        (
            per_node(&d).into_keys().collect::<BTreeSet<_>>(),
            reasons(&d).first().map(|r| r.to_string()),
        )
    };
    let p = |os: &str, arch: &str| Platform {
        os: os.into(),
        architecture: arch.into(),
    };

    let (chosen, why) = placed_on(vec![p("linux", "amd64")]);
    assert_eq!(chosen, set(&["amd", "x86"]));
    assert_eq!(
        why.as_deref(),
        Some(
            "no suitable node (unsupported platform on 3 nodes; max replicas per node (1) reached on 2 nodes)"
        )
    );
    assert_eq!(
        placed_on(vec![p("linux", "aarch64")]).0,
        set(&["aarch", "arm"])
    );
    assert_eq!(
        placed_on(vec![p("windows", ""), p("linux", "arm64")]).0,
        set(&["aarch", "arm", "win"])
    );
    assert_eq!(
        placed_on(vec![]).0,
        set(&["aarch", "amd", "arm", "win", "x86"]),
        "no platforms: any"
    );
}

#[test]
fn host_mode_ports_conflict_with_existing_tasks_and_this_calls_placements() {
    let mut taken = node("taken");
    taken.host_ports.insert((Protocol::Tcp, 8080));
    let nodes = vec![taken, node("free-1"), node("free-2")];
    let svc = service("s", |s| {
        s.endpoint.ports = vec![host_port(8080, Protocol::Tcp)]
    });
    let d = schedule(&nodes, &tasks(&svc, 3));
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("free-1".into(), 1), ("free-2".into(), 1)])
    );
    assert_eq!(
        reasons(&d),
        ["no suitable node (host-mode port 8080/tcp in use on 3 nodes)"]
    );

    // Another service publishing the same port in the same call finds
    // every node taken; UDP on the same number and ingress ports do not
    // conflict.
    let other = service("other", |s| {
        s.endpoint.ports = vec![host_port(8080, Protocol::Tcp)]
    });
    let udp = service("udp", |s| {
        s.endpoint.ports = vec![host_port(8080, Protocol::Udp)]
    });
    let ingress = service("ingress", |s| {
        s.endpoint.ports = vec![PortConfig {
            proxy_protocol: false,
            publish_mode: PublishMode::Ingress,
            ..host_port(8080, Protocol::Tcp)
        }];
    });
    let mut all = tasks(&svc, 2);
    all.extend(tasks(&other, 1));
    all.extend(tasks(&udp, 3));
    all.extend(tasks(&ingress, 4));
    let d = schedule(&nodes, &all);
    assert_eq!(nodes_of(&d)[..3], ["free-1", "free-2", "-"]);
    assert_eq!(
        reasons(&d),
        ["no suitable node (host-mode port 8080/tcp in use on 3 nodes)"]
    );
}

#[test]
fn the_reason_names_the_first_host_port_in_use() {
    let mut a = node("a");
    a.host_ports.insert((Protocol::Udp, 53));
    let mut b = node("b");
    b.host_ports.insert((Protocol::Tcp, 80));
    b.host_ports.insert((Protocol::Udp, 53));
    let svc = service("s", |s| {
        s.endpoint.ports = vec![host_port(80, Protocol::Tcp), host_port(53, Protocol::Udp)]
    });
    let d = schedule(&[a, b], &tasks(&svc, 1));
    assert_eq!(
        reasons(&d),
        [
            "no suitable node (host-mode port 80/tcp in use on 1 node; host-mode port 53/udp in use on 1 node)"
        ]
    );
}

#[test]
fn max_replicas_per_node_counts_existing_and_placed_tasks() {
    let mut busy = node("busy");
    busy.tasks_by_service.insert("s".into(), 1);
    busy.tasks = 1;
    let svc = service("s", |s| s.task.placement.max_replicas_per_node = 2);
    let d = schedule(&[busy, node("idle")], &tasks(&svc, 5));
    assert_eq!(
        per_node(&d),
        BTreeMap::from([("busy".into(), 1), ("idle".into(), 2)])
    );
    assert_eq!(
        reasons(&d),
        vec!["no suitable node (max replicas per node (2) reached on 2 nodes)"; 2]
    );
}

#[test]
fn the_reason_lists_every_filter_in_order_with_plurals() {
    let mut nodes = vec![
        edit(node("down"), |n| n.status.state = NodeState::Down),
        edit(node("drained-1"), |n| {
            n.spec.availability = Availability::Drain
        }),
        edit(node("drained-2"), |n| {
            n.spec.availability = Availability::Drain
        }),
        edit(node("paused"), |n| {
            n.spec.availability = Availability::Pause
        }),
        with_cpus("tiny", 0.5),
        labelled("db", &[("type", "db")]),
        edit(node("arm"), |n| {
            n.description.platform.architecture = "arm64".into()
        }),
    ];
    let mut port = node("port");
    port.host_ports.insert((Protocol::Tcp, 443));
    nodes.push(port);
    let mut full = node("full");
    full.tasks_by_service.insert("s".into(), 3);
    nodes.push(full);
    let svc = service("s", |s| {
        s.task.resources.reservations = Resources::new(1.0, 0);
        s.task.placement.constraints = vec!["node.labels.type!=db".into()];
        s.task.placement.platforms = vec![Platform {
            os: "linux".into(),
            architecture: "x86_64".into(),
        }];
        s.task.placement.max_replicas_per_node = 3;
        s.endpoint.ports = vec![host_port(443, Protocol::Tcp)];
    });
    let d = schedule(&nodes, &tasks(&svc, 1));
    assert_eq!(
        reasons(&d),
        [
            "no suitable node (1 node not ready; 2 nodes drained; 1 node paused; \
          insufficient resources on 1 node; constraint node.labels.type!=db not satisfied on 1 node; \
          unsupported platform on 1 node; host-mode port 443/tcp in use on 1 node; \
          max replicas per node (3) reached on 1 node)"
        ]
    );
}
