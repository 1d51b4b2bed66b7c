//! How fast the Engine API answers the stock `docker` CLI: `docker
//! service ls`, `docker service ps web-0` and `docker node ls` against a
//! manager's API with 100 services of 10 tasks (1,000 tasks) on 10 nodes,
//! each run `--runs` times, p50 and p99. Beside each command, the one
//! request behind its table (`GET /services?status=true`, `GET /tasks` of
//! a service, `GET /nodes`), sent `--requests` times over the socket, so
//! that the API's own share shows apart from the CLI's start-up.
//!
//! The API runs in process, over swarm-core's `Control` on a memory
//! store: what a manager's API does, without raft's reads in the way.
//!
//! `cargo bench -p swarm-examples --bench engine -- --runs 50 --requests 2000`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swarm_core::control::Control;
use swarm_core::model::{NodeRole, ServiceSpec, Task, TaskState, TaskStatus};
use swarm_core::store::{Change, MemoryStore, Store};
use swarm_core::testing::fixtures::NodeFixture;
use swarm_engine::ApiError;
use swarm_engine::wire::{Host, LocalNodeState, ManagerStatus, SwarmInfo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Manager {
    control: Control<Arc<dyn Store>>,
    me: String,
}

#[async_trait::async_trait]
impl swarm_engine::Backend for Manager {
    async fn swarm(&self) -> SwarmInfo {
        SwarmInfo {
            node_id: self.me.clone(),
            local_node_state: LocalNodeState::Active,
            control_available: true,
            ..SwarmInfo::default()
        }
    }
    fn host(&self) -> Host {
        Host::this_machine()
    }
    async fn control(&self) -> Result<Control<Arc<dyn Store>>, ApiError> {
        Ok(self.control.clone())
    }
    async fn managers(&self) -> std::collections::BTreeMap<String, ManagerStatus> {
        [(
            self.me.clone(),
            ManagerStatus {
                leader: true,
                reachability: "reachable".into(),
                addr: "127.0.0.1:2377".into(),
            },
        )]
        .into()
    }
}

/// 10 nodes, 100 services of 10 running tasks each.
async fn populate(control: &Control<Arc<dyn Store>>) -> String {
    let store = control.store();
    let mut nodes = Vec::new();
    for i in 0..10 {
        let mut node = NodeFixture::new(&format!("node-{i:02}"));
        if i == 0 {
            node = node.manager();
        }
        nodes.push(node.build());
    }
    let ids: Vec<_> = nodes.iter().map(|n| n.meta.id.clone()).collect();
    store
        .apply(
            nodes
                .into_iter()
                .map(|n| Change::Create(n.into()))
                .collect(),
        )
        .await
        .unwrap();
    for s in 0..100 {
        let spec =
            ServiceSpec::replicated(format!("web-{s}"), 10, vec!["sleep".into(), "1000".into()]);
        let service = control.create_service(spec).await.unwrap();
        let tasks: Vec<Change> = (1..=10)
            .map(|slot| {
                let node = ids[usize::try_from(slot).unwrap() % ids.len()].clone();
                let mut t = Task::new(&service, slot, Some(node), Vec::new());
                t.desired_state = TaskState::Running;
                t.status = TaskStatus::new(TaskState::Running, "started");
                Change::Create(t.into())
            })
            .collect();
        store.apply(tasks).await.unwrap();
    }
    let state = store.state().await.unwrap();
    assert_eq!(state.task_count(), 1000);
    assert_eq!(
        state
            .nodes()
            .filter(|n| n.spec.role == NodeRole::Manager)
            .count(),
        1
    );
    ids[0].as_str().to_owned()
}

fn percentile(xs: &mut [Duration], p: f64) -> Duration {
    xs.sort();
    let i = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[i.min(xs.len() - 1)]
}

fn report(name: &str, xs: &mut [Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<44} p50 {:>8.2} ms   p99 {:>8.2} ms   ({} runs)",
        ms(percentile(xs, 0.5)),
        ms(percentile(xs, 0.99)),
        xs.len()
    );
}

/// One request over the socket, answered whole (`Connection: close`).
async fn request(socket: &Path, path: &str) -> usize {
    let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).await.unwrap();
    assert!(
        body.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    body.len()
}

fn has_docker_cli() -> bool {
    std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::main]
async fn main() {
    let runs = arg("--runs", 30);
    let requests = arg("--requests", 1000);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let control = Control::new(store);
    let me = populate(&control).await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("engine.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(swarm_engine::serve(
        listener,
        Arc::new(Manager { control, me }),
        stop.clone(),
    ));
    println!("100 services, 1000 tasks, 10 nodes; the API in process on a unix socket");

    let tasks_of_web = format!(
        "/v1.49/tasks?filters={}",
        "%7B%22service%22%3A%7B%22web-0%22%3Atrue%7D%7D"
    );
    for (name, path) in [
        ("GET /services?status=true", "/v1.49/services?status=true"),
        ("GET /tasks?filters={service: web-0}", tasks_of_web.as_str()),
        ("GET /nodes", "/v1.49/nodes"),
    ] {
        let bytes = request(&socket, path).await;
        let mut xs = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            request(&socket, path).await;
            xs.push(t.elapsed());
        }
        report(&format!("{name} ({} KiB)", bytes / 1024), &mut xs);
    }

    if !has_docker_cli() {
        println!("SKIPPED the docker CLI rows: no docker CLI on PATH");
        stop.cancel();
        return;
    }
    let config = dir.path().join("docker-config");
    let cli = |args: &'static [&'static str]| {
        let mut cmd = tokio::process::Command::new("docker");
        cmd.arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(args)
            .env("DOCKER_CONFIG", &config)
            .env_remove("DOCKER_HOST");
        async move {
            let out = cmd.output().await.unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    for (name, args) in [
        ("docker service ls", &["service", "ls"][..]),
        ("docker service ps web-0", &["service", "ps", "web-0"][..]),
        ("docker node ls", &["node", "ls"][..]),
    ] {
        cli(args).await;
        let mut xs = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            cli(args).await;
            xs.push(t.elapsed());
        }
        report(name, &mut xs);
    }
    // The CLI's own start-up, for scale: `docker --version` asks nothing.
    let mut xs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        tokio::process::Command::new("docker")
            .arg("--version")
            .output()
            .await
            .unwrap();
        xs.push(t.elapsed());
    }
    report("docker --version (no request)", &mut xs);
    stop.cancel();
}
