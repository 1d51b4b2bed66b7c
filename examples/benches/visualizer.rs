//! What the web visualizer and `/metrics` cost the manager that serves
//! them: a swarm of 100 services of 10 tasks (1,000 tasks) on 10 nodes,
//! one task replaced every 100 ms, measured in four phases of
//! `--seconds` each, side by side in one run: nothing watching; a
//! Prometheus scrape every second; `--clients` browser tabs (headless
//! Chromium) on `/ui`; both. For each: the manager process's CPU (% of
//! one core) and resident memory, and the browsers' CPU.
//!
//! The manager runs in this process, over swarm-core's `Control` on a
//! memory store, with the UI and metrics routers on a loopback listener:
//! the process's CPU is the store's, the churn's and what is served, so
//! the phases' differences are the UI's and the metrics' cost.
//!
//! Each tab opens the page at a loopback address of its own (127.0.0.N):
//! a browser keeps at most 6 HTTP/1.1 connections to one host, and each
//! tab holds one for its event stream.
//!
//! `cargo bench -p swarm-examples --bench visualizer -- --seconds 20 --clients 10`

use std::sync::Arc;
use std::time::{Duration, Instant};

use swarm_core::control::Control;
use swarm_core::model::{Object, ServiceSpec, Task, TaskState, TaskStatus};
use swarm_core::store::{Change, MemoryStore, Store};
use swarm_core::testing::fixtures::NodeFixture;
use swarm_examples::browser::Chromium;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Manager(Control<Arc<dyn Store>>);

#[async_trait::async_trait]
impl swarm_ui::Source for Manager {
    async fn control(&self) -> Option<Control<Arc<dyn Store>>> {
        Some(self.0.clone())
    }
    async fn leader(&self) -> Option<String> {
        Some("node-00".into())
    }
}

#[async_trait::async_trait]
impl swarm_metrics::Source for Manager {
    async fn state(&self) -> Option<swarm_core::store::State> {
        self.0.store().state().await.ok()
    }
}

/// `nodes` nodes and `services` services of `replicas` running tasks.
async fn populate(control: &Control<Arc<dyn Store>>, nodes: usize, services: usize, replicas: u64) {
    let store = control.store();
    let mut made = Vec::new();
    for i in 0..nodes {
        let mut node = NodeFixture::new(&format!("node-{i:02}"));
        if i == 0 {
            node = node.manager();
        }
        made.push(node.build());
    }
    let ids: Vec<_> = made.iter().map(|n| n.meta.id.clone()).collect();
    store
        .apply(made.into_iter().map(|n| Change::Create(n.into())).collect())
        .await
        .unwrap();
    for s in 0..services {
        let spec = ServiceSpec::replicated(
            format!("web-{s}"),
            replicas,
            vec!["sleep".into(), "1000".into()],
        );
        let service = control.create_service(spec).await.unwrap();
        let tasks: Vec<Change> = (1..=replicas)
            .map(|slot| {
                let node = ids[usize::try_from(slot).unwrap() % ids.len()].clone();
                let mut t = Task::new(&service, slot, Some(node), Vec::new());
                t.status = TaskStatus::new(TaskState::Running, "started");
                Change::Create(t.into())
            })
            .collect();
        store.apply(tasks).await.unwrap();
    }
}

/// Every `every`, one running task fails and a new one takes its slot,
/// as the orchestrator replaces a crashed task.
async fn churn(store: Arc<dyn Store>, every: Duration, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(every);
    let mut n = 0_usize;
    while !stop.is_cancelled() {
        tick.tick().await;
        let state = store.state().await.unwrap();
        let running: Vec<_> = state
            .tasks()
            .filter(|t| t.status.state == TaskState::Running)
            .collect();
        if running.is_empty() {
            continue;
        }
        let old = running[n % running.len()];
        n += 1;
        let service = state.service(&old.service_id).unwrap();
        let mut failed = (**old).clone();
        failed.desired_state = TaskState::Shutdown;
        failed.status = TaskStatus::new(TaskState::Failed, "exited").with_err("killed");
        let mut new = Task::new(service, old.slot, old.node_id.clone(), Vec::new());
        new.status = TaskStatus::new(TaskState::Running, "started");
        // Dead tasks go, as the reaper keeps a slot's history short.
        let mut changes = vec![
            Change::Update(Object::from(failed)),
            Change::Create(new.into()),
        ];
        changes.extend(
            state
                .tasks_of_service(&old.service_id)
                .filter(|t| t.slot == old.slot && t.status.state == TaskState::Failed)
                .map(|t| Change::Delete {
                    kind: swarm_core::model::Kind::Task,
                    id: t.meta.id.clone(),
                    version: None,
                }),
        );
        let _ = store.apply(changes).await;
    }
}

/// CPU seconds (user + system) of process `pid`, and its resident bytes.
fn usage(pid: &str) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(i) = stat.rfind(')') else {
        return (0.0, 0);
    };
    let f: Vec<&str> = stat[i + 2..].split_whitespace().collect();
    let ticks = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let rss_pages = f
        .get(24 - 3)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    ((ticks(14) + ticks(15)) / 100.0, rss_pages * 4096)
}

/// The CPU seconds of the browser's processes: its own and its helpers'.
fn browser_cpu(root: u32) -> f64 {
    std::iter::once(root)
        .chain(swarm_examples::browser::descendants(root))
        .map(|pid| usage(&pid.to_string()).0)
        .sum()
}

async fn scrape(addr: std::net::SocketAddr) -> (usize, Duration) {
    let began = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).await.unwrap();
    (body.len(), began.elapsed())
}

struct Phase {
    name: &'static str,
    cpu: f64,
    rss: u64,
    browsers: f64,
    scrapes: Vec<Duration>,
    scrape_bytes: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = arg("--seconds", 20) as u64;
    let clients = arg("--clients", 10);
    let services = arg("--services", 100);
    let replicas = arg("--replicas", 10) as u64;
    let nodes = arg("--nodes", 10);
    let churn_ms = arg("--churn-ms", 100) as u64;
    let Some(chromium) = Chromium::find() else {
        println!("SKIPPED: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let exporter = swarm_metrics::Exporter::install().unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let control = Control::new(store.clone());
    populate(&control, nodes, services, replicas).await;
    let manager = Arc::new(Manager(control));
    let app = swarm_ui::router(manager.clone()).merge(swarm_metrics::router(exporter, manager));
    // A browser opens at most 6 connections to one host over HTTP/1.1,
    // and each tab holds one for its event stream: each tab gets a host
    // of its own, 127.0.0.N (all loopback).
    let mut addrs = Vec::new();
    for n in 1..=clients.max(1) {
        let host = std::net::Ipv4Addr::new(127, 0, 0, u8::try_from(n).unwrap());
        let listener = tokio::net::TcpListener::bind((host, 0)).await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        let app = app.clone();
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    let addr = addrs[0];
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(churn(
        store.clone(),
        Duration::from_millis(churn_ms),
        stop.clone(),
    ));
    let me = std::process::id().to_string();
    let browser = Chromium::launch(&chromium, 1400, 900).unwrap();
    let tasks = services * usize::try_from(replicas).unwrap();
    println!(
        "{services} services, {tasks} tasks on {nodes} nodes, a task replaced every {churn_ms} ms; \
         {seconds} s per phase, {clients} browser tabs"
    );
    let mut pages = Vec::new();
    let mut phases = Vec::new();
    for (name, with_metrics, with_ui) in [
        ("nothing watching", false, false),
        ("metrics scraped every 1 s", true, false),
        ("browser tabs on /ui", false, true),
        ("both", true, true),
    ] {
        if with_ui && pages.is_empty() {
            for tab in addrs.iter().take(clients) {
                let mut page = browser.open(&format!("http://{tab}/ui")).await.unwrap();
                let want = format!("{tasks}/{tasks} tasks running");
                let began = Instant::now();
                loop {
                    let s = page
                        .eval("document.getElementById('summary').textContent")
                        .await
                        .unwrap();
                    if s.as_str().is_some_and(|s| s.contains(&want)) {
                        break;
                    }
                    assert!(
                        began.elapsed() < Duration::from_secs(60),
                        "a tab did not draw the board: {s}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                pages.push(page);
            }
        }
        let (cpu0, _) = usage(&me);
        let b0 = browser_cpu(browser.pid());
        let began = Instant::now();
        let mut scrapes = Vec::new();
        let mut scrape_bytes = 0;
        while began.elapsed() < Duration::from_secs(seconds) {
            if with_metrics {
                let (n, took) = scrape(addr).await;
                scrape_bytes = n;
                scrapes.push(took);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let elapsed = began.elapsed().as_secs_f64();
        let (cpu1, rss) = usage(&me);
        let b1 = browser_cpu(browser.pid());
        phases.push(Phase {
            name,
            cpu: (cpu1 - cpu0) / elapsed * 100.0,
            rss,
            browsers: (b1 - b0) / elapsed * 100.0,
            scrapes,
            scrape_bytes,
        });
    }
    stop.cancel();
    println!(
        "{:<28} {:>14} {:>12} {:>14} {:>16}",
        "phase", "manager CPU", "manager RSS", "browsers CPU", "scrape p50"
    );
    for p in &mut phases {
        p.scrapes.sort();
        let p50 = p
            .scrapes
            .get(p.scrapes.len() / 2)
            .map_or("-".to_owned(), |d| {
                format!(
                    "{:.2} ms ({} KiB)",
                    d.as_secs_f64() * 1000.0,
                    p.scrape_bytes / 1024
                )
            });
        println!(
            "{:<28} {:>12.1} % {:>8.1} MiB {:>12.1} % {:>16}",
            p.name,
            p.cpu,
            p.rss as f64 / (1 << 20) as f64,
            p.browsers,
            p50
        );
    }
}
