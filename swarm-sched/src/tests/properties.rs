//! Properties of every schedule, on random clusters and services.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use swarm_core::constraint::Constraint;
use swarm_core::model::{
    Availability, NodeState, PlacementPreference, PortConfig, Protocol, PublishMode, Resources,
};

use super::*;

#[derive(Debug, Clone)]
struct NodeShape {
    cpus: u64,
    ready: bool,
    availability: u8,
    zone: u8,
    web: bool,
    existing: usize,
    port_taken: bool,
    failures: u32,
}

#[derive(Debug, Clone)]
struct ServiceShape {
    tasks: u64,
    half_cpus: u64,
    max_per_node: u64,
    host_port: bool,
    constraint: Option<&'static str>,
    spread: bool,
}

fn node_shape() -> impl Strategy<Value = NodeShape> {
    (
        0..5u64,
        prop::bool::weighted(0.85),
        0..6u8,
        0..4u8,
        any::<bool>(),
        0..3usize,
        prop::bool::weighted(0.2),
        0..7u32,
    )
        .prop_map(
            |(cpus, ready, availability, zone, web, existing, port_taken, failures)| NodeShape {
                cpus,
                ready,
                availability,
                zone,
                web,
                existing,
                port_taken,
                failures,
            },
        )
}

fn service_shape() -> impl Strategy<Value = ServiceShape> {
    let constraint = prop::option::of(prop::sample::select(vec![
        "node.labels.type==web",
        "node.labels.type!=web",
    ]));
    (
        0..16u64,
        0..3u64,
        0..4u64,
        prop::bool::weighted(0.3),
        constraint,
        any::<bool>(),
    )
        .prop_map(
            |(tasks, half_cpus, max_per_node, host_port, constraint, spread)| ServiceShape {
                tasks,
                half_cpus,
                max_per_node,
                host_port,
                constraint,
                spread,
            },
        )
}

fn build(nodes: &[NodeShape], services: &[ServiceShape]) -> (Vec<NodeInfo>, Vec<Arc<Task>>) {
    let infos = nodes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let mut info = edit(node(&format!("n{k}")), |n| {
                n.description.resources = Resources::new(s.cpus as f64, 8 * GIB);
                if !s.ready {
                    n.status.state = NodeState::Down;
                }
                n.spec.availability = match s.availability {
                    0 => Availability::Drain,
                    1 => Availability::Pause,
                    _ => Availability::Active,
                };
                if s.zone > 0 {
                    n.spec.labels.insert("zone".into(), format!("z{}", s.zone));
                }
                if s.web {
                    n.spec.labels.insert("type".into(), "web".into());
                }
            });
            info.tasks = s.existing;
            if s.existing > 0 {
                info.tasks_by_service.insert("s0".into(), s.existing);
            }
            if s.port_taken {
                info.host_ports.insert((Protocol::Tcp, 80));
            }
            if s.failures > 0 {
                info.recent_failures.insert("s1".into(), s.failures);
            }
            info
        })
        .collect();
    let mut tasks_out = Vec::new();
    for (k, s) in services.iter().enumerate() {
        let svc = service(&format!("s{k}"), |spec| {
            spec.task.resources.reservations = Resources {
                nano_cpus: s.half_cpus * 500_000_000,
                memory_bytes: 0,
            };
            spec.task.placement.max_replicas_per_node = s.max_per_node;
            spec.task.placement.constraints =
                s.constraint.iter().map(|c| (*c).to_owned()).collect();
            if s.spread {
                spec.task.placement.preferences = vec![PlacementPreference::Spread {
                    descriptor: "node.labels.zone".into(),
                }];
            }
            if s.host_port {
                spec.endpoint.ports = vec![PortConfig {
                    proxy_protocol: false,
                    protocol: Protocol::Tcp,
                    target_port: 80,
                    published_port: 80,
                    publish_mode: PublishMode::Host,
                }];
            }
        });
        tasks_out.extend(tasks(&svc, s.tasks));
    }
    (infos, tasks_out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Assigned tasks respect every filter; an unplaceable task had no
    /// node left that could take it; the result does not depend on the
    /// order of the nodes.
    #[test]
    fn decisions_respect_every_filter(
        nodes in prop::collection::vec(node_shape(), 0..10),
        services in prop::collection::vec(service_shape(), 1..4),
    ) {
        let (infos, all) = build(&nodes, &services);
        let decisions = schedule(&infos, &all);
        let index: HashMap<&str, usize> =
            infos.iter().enumerate().map(|(i, n)| (n.node.meta.id.as_str(), i)).collect();

        // Replay the assignments on an independent model of the nodes.
        let mut available: Vec<Resources> = infos.iter().map(NodeInfo::available).collect();
        let mut per_service: Vec<HashMap<String, usize>> = infos.iter().map(|n| {
            n.tasks_by_service.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        }).collect();
        let mut ports: Vec<HashSet<(Protocol, u32)>> = infos.iter().map(|n| n.host_ports.clone()).collect();
        let fits = |t: &Task, i: usize, available: &[Resources], per_service: &[HashMap<String, usize>], ports: &[HashSet<(Protocol, u32)>]| {
            let node = &infos[i].node;
            let constraints = Constraint::parse_all(&t.spec.placement.constraints).unwrap();
            let max = t.spec.placement.max_replicas_per_node;
            let count = per_service[i].get(t.service_id.as_str()).copied().unwrap_or(0);
            node.accepts_tasks()
                && available[i].fits(&t.spec.resources.reservations)
                && Constraint::all_match(&constraints, node)
                && t.endpoint.ports.iter().all(|p| !ports[i].contains(&(p.protocol, p.published_port)))
                && (max == 0 || (count as u64) < max)
        };
        for (d, t) in decisions.iter().zip(&all) {
            if let Decision::Assign { node, .. } = d {
                let i = index[node.as_str()];
                prop_assert!(fits(t, i, &available, &per_service, &ports), "{t:?} does not fit {node}");
                available[i] = available[i].saturating_sub(&t.spec.resources.reservations);
                *per_service[i].entry(t.service_id.to_string()).or_default() += 1;
                ports[i].extend(t.endpoint.ports.iter().map(|p| (p.protocol, p.published_port)));
            }
        }
        // Placements only ever use nodes up, so a node that could not take
        // a task then cannot take it now either.
        for (d, t) in decisions.iter().zip(&all) {
            if let Decision::Unplaceable { reason, .. } = d {
                prop_assert!(reason.starts_with("no suitable node ("), "{reason}");
                for i in 0..infos.len() {
                    prop_assert!(!fits(t, i, &available, &per_service, &ports), "{reason}, yet n{i} fits");
                }
            }
        }

        let reversed: Vec<NodeInfo> = infos.iter().rev().cloned().collect();
        prop_assert_eq!(schedule(&reversed, &all), decisions);
    }
}

/// A scheduler written for clarity: every task looks at every node.
/// Services must come one after the other in `all`, each with one spec.
fn naive(infos: &[NodeInfo], all: &[Arc<Task>]) -> Vec<String> {
    let n = infos.len();
    let mut available: Vec<Resources> = infos.iter().map(NodeInfo::available).collect();
    let mut total: Vec<usize> = infos.iter().map(|i| i.tasks).collect();
    let mut per_service: Vec<HashMap<String, usize>> = infos
        .iter()
        .map(|i| {
            i.tasks_by_service
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        })
        .collect();
    let mut ports: Vec<HashSet<(Protocol, u32)>> =
        infos.iter().map(|i| i.host_ports.clone()).collect();
    let zone = |i: usize| {
        infos[i]
            .node
            .spec
            .labels
            .get("zone")
            .cloned()
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for run in all.chunk_by(|a, b| a.service_id == b.service_id) {
        let t = &run[0];
        let service = t.service_id.to_string();
        let constraints = Constraint::parse_all(&t.spec.placement.constraints).unwrap();
        let max = t.spec.placement.max_replicas_per_node;
        let spread = !t.spec.placement.preferences.is_empty();
        let fits = |i: usize,
                    available: &[Resources],
                    per_service: &[HashMap<String, usize>],
                    ports: &[HashSet<(Protocol, u32)>]| {
            let count = per_service[i].get(&service).copied().unwrap_or(0);
            infos[i].node.accepts_tasks()
                && available[i].fits(&t.spec.resources.reservations)
                && Constraint::all_match(&constraints, &infos[i].node)
                && t.endpoint
                    .ports
                    .iter()
                    .all(|p| !ports[i].contains(&(p.protocol, p.published_port)))
                && (max == 0 || (count as u64) < max)
        };
        // The nodes eligible when the batch starts form the spread groups,
        // which count the tasks of the service on them.
        let eligible: Vec<usize> = (0..n)
            .filter(|&i| fits(i, &available, &per_service, &ports))
            .collect();
        let mut zone_tasks: HashMap<String, usize> = HashMap::new();
        for &i in &eligible {
            *zone_tasks.entry(zone(i)).or_default() +=
                per_service[i].get(&service).copied().unwrap_or(0);
        }
        for task in run {
            let alive: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&i| fits(i, &available, &per_service, &ports))
                .collect();
            let pool: Vec<usize> = if spread {
                let Some(z) = alive.iter().map(|&i| (zone_tasks[&zone(i)], zone(i))).min() else {
                    out.push("-".to_owned());
                    continue;
                };
                alive.into_iter().filter(|&i| zone(i) == z.1).collect()
            } else {
                alive
            };
            let rank = |i: usize| {
                let failing = infos[i]
                    .recent_failures
                    .get(service.as_str())
                    .is_some_and(|&f| f >= 5);
                let count = per_service[i].get(&service).copied().unwrap_or(0);
                (failing, count, total[i], infos[i].node.meta.id.clone())
            };
            let Some(i) = pool.into_iter().min_by_key(|&i| rank(i)) else {
                out.push("-".to_owned());
                continue;
            };
            available[i] = available[i].saturating_sub(&task.spec.resources.reservations);
            total[i] += 1;
            *per_service[i].entry(service.clone()).or_default() += 1;
            ports[i].extend(
                task.endpoint
                    .ports
                    .iter()
                    .map(|p| (p.protocol, p.published_port)),
            );
            *zone_tasks.entry(zone(i)).or_default() += 1;
            out.push(infos[i].node.meta.id.to_string());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The heaps, the load order and the spread tree choose exactly the
    /// node a scan of every node would.
    #[test]
    fn decisions_match_a_scheduler_that_looks_at_every_node(
        nodes in prop::collection::vec(node_shape(), 0..14),
        services in prop::collection::vec(service_shape(), 1..6),
    ) {
        let (infos, all) = build(&nodes, &services);
        prop_assert_eq!(nodes_of(&schedule(&infos, &all)), naive(&infos, &all));
    }
}
