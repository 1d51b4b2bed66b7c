//! The scheduler benchmark, after SwarmKit's: N ready nodes and T pending
//! tasks in a `MemoryStore`, timed from the commit of the tasks until all
//! are assigned in the store, through the real scheduling loop.
//!
//! ```sh
//! cargo bench -p swarm-sched --bench sched                         # every shape
//! cargo bench -p swarm-sched --bench sched -- --quick              # the small shapes
//! cargo bench -p swarm-sched --bench sched -- --shape 100000x1000000
//! cargo bench -p swarm-sched --bench sched -- --shape 5000x100000c # `c`: a constraint a third of the nodes satisfy
//! ```
//!
//! One line per shape, the median of 3 runs (1 run for the 1M-task shape):
//! `sched nodes=1000 tasks=100000 seconds=0.41 placements_per_s=243902`;
//! on stderr, each run with the process's peak memory (VmHWM) so far.
//!
//! The binary uses mimalloc, as the project's daemons will.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use swarm_core::Id;
use swarm_core::manager::run_scheduler;
use swarm_core::model::{
    Meta, Node, NodeDescription, NodeSpec, NodeState, NodeStatus, Object, Resources, Service,
    ServiceSpec, Task, TaskState,
};
use swarm_core::store::{Change, Event, MemoryStore, Store};
use swarm_sched::{SchedulerConfig, SwarmScheduler};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy)]
struct Shape {
    nodes: usize,
    tasks: usize,
    constrained: bool,
}

const ALL: &[Shape] = &[
    Shape {
        nodes: 1_000,
        tasks: 1_000,
        constrained: false,
    },
    Shape {
        nodes: 1_000,
        tasks: 10_000,
        constrained: false,
    },
    Shape {
        nodes: 1_000,
        tasks: 100_000,
        constrained: false,
    },
    Shape {
        nodes: 100_000,
        tasks: 1_000,
        constrained: false,
    },
    Shape {
        nodes: 5_000,
        tasks: 100_000,
        constrained: true,
    },
    Shape {
        nodes: 100_000,
        tasks: 1_000_000,
        constrained: false,
    },
];

fn parse(s: &str) -> Option<Shape> {
    let (constrained, s) = match s.strip_suffix('c') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (n, t) = s.split_once('x')?;
    Some(Shape {
        nodes: n.parse().ok()?,
        tasks: t.parse().ok()?,
        constrained,
    })
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn node(i: usize, labelled: bool) -> Change {
    let mut spec = NodeSpec::default();
    if labelled {
        spec.labels.insert("type".into(), "web".into());
    }
    let n = Node {
        meta: Meta::new(Id::from(format!("node-{i:06}"))),
        spec,
        description: NodeDescription {
            data_addr: None,
            hostname: format!("host-{i}"),
            resources: Resources::new(64.0, 256 << 30),
            ..Default::default()
        },
        status: NodeStatus {
            state: NodeState::Ready,
            ..Default::default()
        },
    };
    Change::Create(n.into())
}

/// One measurement: a fresh store, the nodes, the loop, then the tasks.
async fn run(shape: Shape) -> f64 {
    let store = Arc::new(MemoryStore::new());
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..shape.nodes {
        batch.push(node(i, !shape.constrained || i % 3 == 0));
        if batch.len() == 10_000 {
            store.apply(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    store.apply(batch).await.unwrap();

    let mut spec = ServiceSpec::replicated(
        "bench",
        shape.tasks as u64,
        vec!["sleep".into(), "1".into()],
    );
    if shape.constrained {
        spec.task.placement.constraints = vec!["node.labels.type==web".into()];
    }
    let service = Service {
        meta: Meta::new("bench".into()),
        spec,
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    };
    let mut template = Task::new(&service, 1, None, Vec::new());
    template.status.state = TaskState::Pending;
    let tasks: Vec<Change> = (0..shape.tasks)
        .map(|i| {
            let mut t = template.clone();
            t.meta.id = Id::generate();
            t.slot = i as u64 + 1;
            Change::Create(Object::from(t))
        })
        .collect();

    let shutdown = CancellationToken::new();
    let scheduler = SwarmScheduler::new(SchedulerConfig::default()).unwrap();
    let loop_handle = tokio::spawn(run_scheduler(store.clone(), scheduler, shutdown.clone()));
    // Let the loop read the nodes before the tasks arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut watch = store.watch(None).await.unwrap();

    let rss_before = rss_mb();
    let commit_start = Instant::now();
    store.apply(tasks).await.unwrap();
    let committed = Instant::now();
    let rss_committed = rss_mb();
    let mut assigned = 0usize;
    while assigned < shape.tasks {
        let commit = tokio::time::timeout(Duration::from_secs(60), watch.next())
            .await
            .expect("the scheduler stalled")
            .expect("watch ended")
            .expect("watch failed");
        assigned += commit
            .events
            .iter()
            .filter(|e| {
                matches!(e, Event::Updated { old: Object::Task(o), new: Object::Task(n) }
                    if o.status.state == TaskState::Pending && n.status.state == TaskState::Assigned)
            })
            .count();
    }
    let seconds = committed.elapsed().as_secs_f64();
    shutdown.cancel();
    loop_handle.await.unwrap();
    eprintln!(
        "  run: {seconds:.3} s (commit of the tasks took {:.3} s; RSS {rss_before:.0} MB before it, {rss_committed:.0} MB after, {:.0} MB when assigned; peak so far {:.0} MB)",
        (committed - commit_start).as_secs_f64(),
        rss_mb(),
        peak_rss_mb()
    );
    seconds
}

/// The floor to compare with, measured in the same run: a bare placement
/// loop (a binary heap of node loads, a hash map of tasks it builds; no
/// store, no constraints), as the issue describes it.
fn bare(shape: Shape) -> f64 {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap};
    let start = Instant::now();
    let mut tasks: HashMap<Id, Option<usize>> =
        (0..shape.tasks).map(|_| (Id::generate(), None)).collect();
    let mut heap: BinaryHeap<Reverse<(usize, usize)>> =
        (0..shape.nodes).map(|n| Reverse((0, n))).collect();
    for node in tasks.values_mut() {
        let Reverse((load, n)) = heap.pop().expect("nodes");
        *node = Some(n);
        heap.push(Reverse((load + 1, n)));
    }
    let seconds = start.elapsed().as_secs_f64();
    assert!(tasks.values().all(Option::is_some));
    seconds
}

/// Measures a shape `runs` times and prints the median.
async fn measure(shape: Shape, runs: usize) {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(run(shape).await);
    }
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    let floor = bare(shape);
    let constraint = if shape.constrained {
        " constraint=node.labels.type==web(1/3 of nodes)"
    } else {
        ""
    };
    println!(
        "sched nodes={} tasks={} seconds={:.3} placements_per_s={:.0}{constraint}",
        shape.nodes,
        shape.tasks,
        seconds,
        shape.tasks as f64 / seconds,
    );
    eprintln!(
        "  bare placement loop on this machine now: {floor:.3} s ({:.1}x of it)",
        seconds / floor
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<Shape> = if let Some(i) = args.iter().position(|a| a == "--shape") {
        let s = args.get(i + 1).and_then(|s| parse(s)).unwrap_or_else(|| {
            eprintln!("--shape takes NODESxTASKS, with a trailing c for the constrained shape, e.g. 5000x100000c");
            std::process::exit(2);
        });
        vec![s]
    } else if args.iter().any(|a| a == "--quick") {
        ALL[..3].to_vec()
    } else {
        ALL.to_vec()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for s in shapes {
            // The median of 3 runs; the 1M-task shape once.
            measure(s, if s.tasks >= 1_000_000 { 1 } else { 3 }).await;
        }
    });
}
