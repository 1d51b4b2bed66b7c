//! Create-to-running latency of tasks, Docker containers and plain
//! processes side by side: from the call to `prepare` (which creates the
//! container) until `inspect` reports the task running.
//!
//! - **one at a time**: each task is prepared, started and seen running
//!   before the next;
//! - **burst**: all tasks at once, each timed from the start of the burst.
//!
//! Every task runs `sleep 3600` (the machine's own, in the test image), and all are
//! removed at the end. It also prints the memory the burst's running tasks
//! took from the machine, per task. Without a Docker engine only the process runtime
//! is measured.
//!
//! `cargo bench -p swarm-examples --bench start -- --tasks 50`

use std::sync::Arc;
use std::time::{Duration, Instant};

use swarm_core::Id;
use swarm_core::model::{Meta, Service, ServiceSpec, Task, TaskSpec};
use swarm_core::runtime::{Runtime, RuntimeState};
use swarm_runtime_docker::testing::{NodeContainers, engine, test_image};
use swarm_runtime_docker::{DockerRuntime, DockerRuntimeConfig};
use swarm_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};

fn task(spec: &TaskSpec) -> Task {
    let service = Service {
        meta: Meta::new(Id::generate()),
        spec: ServiceSpec::replicated("bench", 1, Vec::new()),
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    };
    let mut task = Task::new(&service, 1, Some("bench-node".into()), Vec::new());
    task.spec = Arc::new(spec.clone());
    task
}

/// Prepares and starts `task`, and polls until it runs: the time until
/// `prepare` returned, and until it ran.
async fn to_running<R: Runtime>(runtime: &R, task: &Task, began: Instant) -> [Duration; 2] {
    let id = &task.meta.id;
    runtime.prepare(task, &[]).await.expect("prepare");
    let prepared = began.elapsed();
    runtime.start(id).await.expect("start");
    loop {
        if runtime.inspect(id).await.expect("inspect").state == RuntimeState::Running {
            return [prepared, began.elapsed()];
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// p50, p99 and max of `xs`, in milliseconds.
fn percentiles(mut xs: Vec<Duration>) -> (f64, f64, f64) {
    xs.sort();
    let at = |q: f64| {
        let i = ((xs.len() as f64 * q).ceil() as usize).clamp(1, xs.len()) - 1;
        xs[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99), at(1.0))
}

/// The machine's available memory (`MemAvailable`), in bytes.
fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|kb| kb.trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// What one runtime measured.
struct Measured {
    /// One at a time, then the burst: `[until prepared, until running]`
    /// per task.
    modes: [Vec<[Duration; 2]>; 2],
    /// The machine's available memory that the burst's running tasks took,
    /// per task (engine, shims and the tasks' own processes together).
    memory_per_task: f64,
}

/// Both modes for one runtime.
async fn measure<R: Runtime + Clone>(runtime: &R, spec: &TaskSpec, n: usize) -> Measured {
    let mut serial = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let t = task(spec);
        serial.push(to_running(runtime, &t, Instant::now()).await);
        ids.push(t.meta.id);
    }
    futures::future::join_all(ids.iter().map(|id| runtime.remove(id))).await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = available_memory();
    let tasks: Vec<Task> = (0..n).map(|_| task(spec)).collect();
    let began = Instant::now();
    let burst = futures::future::join_all(tasks.iter().map(|t| {
        let runtime = runtime.clone();
        async move { to_running(&runtime, t, began).await }
    }))
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = available_memory();
    futures::future::join_all(tasks.iter().map(|t| runtime.remove(&t.meta.id))).await;
    Measured {
        modes: [serial, burst],
        memory_per_task: before.saturating_sub(after) as f64 / n as f64,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--tasks")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(50), |s| s.parse())?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("swarm-start-bench-{}", std::process::id()));
        let process = ProcessRuntime::new(ProcessRuntimeConfig::default().with_state_dir(&dir))?;
        let sleep = TaskSpec::command(vec!["sleep".into(), "3600".into()]);
        let mut rows = vec![("process", measure(&process, &sleep, n).await)];
        let _ = std::fs::remove_dir_all(&dir);

        if let Some(docker) = engine("start bench").await {
            let image = test_image(&docker).await;
            let node = format!("bench-{}", std::process::id());
            let _cleanup = NodeContainers(node.clone());
            let config = DockerRuntimeConfig::default()
                .with_node_id(node.as_str().into())
                .with_ingress(false);
            let runtime = DockerRuntime::with_client(docker, config).await?;
            let spec = TaskSpec {
                image: image.into(),
                args: vec!["sleep".into(), "3600".into()],
                ..TaskSpec::default()
            };
            rows.push(("docker", measure(&runtime, &spec, n).await));
        }

        println!(
            "create-to-running latency over {n} tasks, in ms (prepare: until the container or process was made; with fewer than 100 tasks, p99 is the slowest)"
        );
        println!(
            "{:<8} {:<11} {:>8} {:>8} {:>8} {:>12}",
            "runtime", "mode", "p50", "p99", "max", "prepare p50"
        );
        for (name, measured) in &rows {
            for (mode, xs) in ["one-by-one", "burst"].iter().zip(&measured.modes) {
                let (prepared, _, _) = percentiles(xs.iter().map(|x| x[0]).collect());
                let (p50, p99, max) = percentiles(xs.iter().map(|x| x[1]).collect());
                println!("{name:<8} {mode:<11} {p50:>8.1} {p99:>8.1} {max:>8.1} {prepared:>12.1}");
            }
        }
        println!("memory taken per running task (MemAvailable before and after the burst):");
        for (name, measured) in &rows {
            println!("{name:<8} {:>8.2} MiB", measured.memory_per_task / (1024.0 * 1024.0));
        }
        Ok(())
    })
}
