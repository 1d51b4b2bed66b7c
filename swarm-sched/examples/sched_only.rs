//! Times `SwarmScheduler::schedule` alone on large synthetic clusters.
//!
//! `cargo run --release -p swarm-sched --example sched_only [filter]`
//!
//! runs every shape whose name contains `filter` (all by default).
//! Each shape builds `nodes` idle NodeInfos (4 CPUs, 8 GiB) and `tasks`
//! pending tasks spread over `services` services (each reserving 0.01 CPU
//! and 1 MiB), then times `schedule` (the best of three calls). Peak memory is Linux's
//! VmHWM, reset after the inputs are built, so it shows what scheduling
//! adds on top of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use swarm_core::Id;
use swarm_core::model::{
    Meta, Node, NodeDescription, NodeSpec, NodeState, NodeStatus, PlacementPreference, Resources,
    Service, ServiceSpec, Task, TaskState,
};
use swarm_core::sched::{Decision, NodeInfo, Scheduler};
use swarm_sched::SwarmScheduler;

struct Shape {
    name: &'static str,
    nodes: usize,
    tasks: usize,
    services: usize,
    /// Label a third of the nodes `type=web` and constrain every task to them.
    constrained: bool,
    /// Spread over `node.labels.zone` (10 zones).
    spread: bool,
    /// Give every task its own copy of the spec, as `Task::new` does.
    own_specs: bool,
}

fn nodes(shape: &Shape) -> Vec<NodeInfo> {
    (0..shape.nodes)
        .map(|k| {
            let mut spec = NodeSpec::default();
            if k % 3 == 0 {
                spec.labels.insert("type".into(), "web".into());
            }
            spec.labels
                .insert("zone".into(), format!("zone-{}", k % 10));
            let node = Node {
                meta: Meta::new(Id::generate()),
                spec,
                description: NodeDescription {
                    data_addr: None,
                    hostname: format!("node-{k}"),
                    resources: Resources::new(4.0, 8 << 30),
                    ..Default::default()
                },
                status: NodeStatus {
                    state: NodeState::Ready,
                    ..Default::default()
                },
            };
            NodeInfo::new(Arc::new(node))
        })
        .collect()
}

fn tasks(shape: &Shape) -> Vec<Arc<Task>> {
    let per_service = shape.tasks / shape.services;
    let mut out = Vec::with_capacity(shape.tasks);
    for s in 0..shape.services {
        let mut spec =
            ServiceSpec::replicated(format!("svc-{s}"), per_service as u64, vec!["sleep".into()]);
        spec.task.resources.reservations = Resources::new(0.01, 1 << 20);
        if shape.constrained {
            spec.task.placement.constraints = vec!["node.labels.type==web".into()];
        }
        if shape.spread {
            spec.task.placement.preferences = vec![PlacementPreference::Spread {
                descriptor: "node.labels.zone".into(),
            }];
        }
        let service = Service {
            meta: Meta::new(Id::generate()),
            spec,
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        };
        let mut template = Task::new(&service, 1, None, vec![]);
        template.status.state = TaskState::Pending;
        for slot in 1..=per_service as u64 {
            let task = if shape.own_specs {
                let mut t = Task::new(&service, slot, None, vec![]);
                t.status.state = TaskState::Pending;
                t
            } else {
                Task {
                    meta: Meta::new(Id::generate()),
                    slot,
                    ..template.clone()
                }
            };
            out.push(Arc::new(task));
        }
    }
    out
}

/// A field of /proc/self/status, in MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let shape = |name, nodes, tasks, services| Shape {
        name,
        nodes,
        tasks,
        services,
        constrained: false,
        spread: false,
        own_specs: false,
    };
    let shapes = [
        shape("1k nodes x 100k tasks", 1_000, 100_000, 10),
        Shape {
            own_specs: true,
            ..shape("1k nodes x 100k tasks, own spec copies", 1_000, 100_000, 10)
        },
        Shape {
            constrained: true,
            ..shape(
                "5k nodes x 100k tasks, type==web on 1/3",
                5_000,
                100_000,
                10,
            )
        },
        shape(
            "10k nodes x 100k tasks, 10k services",
            10_000,
            100_000,
            10_000,
        ),
        shape("100k nodes x 1k tasks", 100_000, 1_000, 1),
        shape("100k nodes x 1M tasks", 100_000, 1_000_000, 10),
        shape("100k nodes x 1M tasks, 1 service", 100_000, 1_000_000, 1),
        Shape {
            spread: true,
            ..shape(
                "100k nodes x 1M tasks, spread over 10 zones",
                100_000,
                1_000_000,
                10,
            )
        },
    ];
    let filter = std::env::args().nth(1).unwrap_or_default();
    let scheduler = SwarmScheduler::default();
    for shape in shapes.iter().filter(|s| s.name.contains(&filter)) {
        let nodes = nodes(shape);
        let tasks = tasks(shape);
        let inputs = status_mib("VmRSS:");
        // Reset the peak to the current RSS (Linux >= 4.0).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        // The best of three runs: the machine may be busy.
        let mut took = Duration::MAX;
        let mut decisions = Vec::new();
        for _ in 0..3 {
            drop(decisions);
            let start = Instant::now();
            decisions = scheduler.schedule(&nodes, &tasks);
            took = took.min(start.elapsed());
        }
        let peak = status_mib("VmHWM:");
        let placed = decisions
            .iter()
            .filter(|d| matches!(d, Decision::Assign { .. }))
            .count();
        println!(
            "{:<45} {:>8.3} s   placed {placed:>7}/{:<7}   RSS with inputs {inputs:>6.0} MiB, peak while scheduling {peak:>6.0} MiB",
            shape.name,
            took.as_secs_f64(),
            tasks.len(),
        );
    }
}
