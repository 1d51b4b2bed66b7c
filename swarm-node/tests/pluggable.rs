//! Real nodes in one test process over loopback, built from an app's own
//! parts: a scheduler of its own, a fake runtime, a store of one; and an
//! app's control loop that runs on the raft leader only and moves with it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarm_core::manager::control_loop::{ControlLoop, Dirty, Next, control_loop};
use swarm_core::model::{NodeRole, ServiceSpec, Task, TaskState};
use swarm_core::sched::{Decision, NodeInfo, Scheduler};
use swarm_core::store::{Commit, ReplicatedStore, State, Store};
use swarm_core::testing::FakeRuntime;
use swarm_node::{NodeBuilder, NodeConfig, NodeHandle, SoloStores};

const LIMIT: Duration = Duration::from_secs(60);

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn config(dir: &tempfile::TempDir, name: &str) -> NodeConfig {
    let mut c = NodeConfig::new(dir.path().join(name));
    c.listen_addr = free_addr();
    c.hostname = Some(name.into());
    c.heartbeat_period = Duration::from_millis(200);
    c
}

/// Waits up to [`LIMIT`] for `cond`.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every task on a ready node labelled `pick=me`, or nowhere.
#[derive(Clone)]
struct PickMe;

impl Scheduler for PickMe {
    fn schedule(&self, nodes: &[NodeInfo], tasks: &[Arc<Task>]) -> Vec<Decision> {
        let chosen = nodes.iter().find(|n| {
            n.node.accepts_tasks() && n.node.spec.labels.get("pick").is_some_and(|v| v == "me")
        });
        tasks
            .iter()
            .map(|t| match chosen {
                Some(n) => Decision::Assign {
                    task: t.meta.id.clone(),
                    node: n.node.meta.id.clone(),
                },
                None => Decision::Unplaceable {
                    task: t.meta.id.clone(),
                    reason: "no node is labelled pick=me".into(),
                },
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_built_from_an_app_s_parts_places_with_its_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let manager = NodeBuilder::with_store(config(&dir, "m1"), SoloStores::default())
        .scheduler(PickMe)
        .init()
        .await
        .unwrap();
    let token = manager.join_token(NodeRole::Worker).await.unwrap();
    let addr = manager.config().advertised().unwrap();
    let m1 = FakeRuntime::new("m1");
    let manager = manager.start(m1.clone());
    // The app reaches its manager through the handle, once it serves.
    let control = manager.control().await.unwrap();
    let mut workers = BTreeMap::new();
    for name in ["w1", "w2"] {
        let worker = NodeBuilder::new(config(&dir, name))
            .join(&addr, &token)
            .await
            .unwrap();
        let runtime = FakeRuntime::new(name);
        workers.insert(name, (worker.start(runtime.clone()), runtime));
    }

    until("three ready nodes", || async {
        let state = manager.store().unwrap().state().await.unwrap();
        state.nodes().filter(|n| n.accepts_tasks()).count() == 3
    })
    .await;
    control
        .update_node("w2", |spec| {
            spec.labels.insert("pick".into(), "me".into());
        })
        .await
        .unwrap();
    control
        .create_service(ServiceSpec::replicated(
            "picked",
            4,
            vec!["sleep".into(), "60".into()],
        ))
        .await
        .unwrap();
    until("4 running tasks", || async {
        let tasks = control.service_tasks("picked").await.unwrap();
        tasks
            .iter()
            .filter(|t| t.status.state == TaskState::Running)
            .count()
            == 4
    })
    .await;
    let w2 = control.node("w2").await.unwrap();
    for t in control.service_tasks("picked").await.unwrap() {
        assert_eq!(
            t.node_id.as_ref(),
            Some(&w2.meta.id),
            "the app's scheduler placed {}",
            t.meta.id
        );
    }
    assert_eq!(
        workers["w2"].1.running().len(),
        4,
        "the fake runtime runs them"
    );
    assert!(workers["w1"].1.running().is_empty());
    assert!(m1.running().is_empty());

    for (_, (handle, _)) in workers {
        handle.shutdown().await.unwrap();
    }
    manager.shutdown().await.unwrap();
}

/// Marks its node active while it runs.
struct Marker;

impl ControlLoop for Marker {
    const NAME: &'static str = "marker";
    fn touched(&mut self, _: &Commit, _: &mut Dirty) {}
    async fn run(&mut self, _: State, _: Dirty) -> Next {
        Next::done()
    }
}

type Active = Arc<Mutex<BTreeMap<String, bool>>>;

/// A builder whose app loop marks `name` active in `active` while it runs.
fn with_marker(config: NodeConfig, name: &str, active: &Active) -> NodeBuilder {
    let (name, active) = (name.to_owned(), active.clone());
    let make = control_loop(|_store| Marker);
    NodeBuilder::new(config).control_loop(Arc::new(move |store, stop| {
        let run = make(store, stop);
        let (name, active) = (name.clone(), active.clone());
        Box::pin(async move {
            active.lock().unwrap().insert(name.clone(), true);
            run.await;
            active.lock().unwrap().insert(name, false);
        })
    }))
}

fn leader(handles: &BTreeMap<String, NodeHandle<swarm_raft::RaftStore>>) -> Option<String> {
    handles
        .iter()
        .find(|(_, h)| {
            h.store()
                .is_some_and(|s| *ReplicatedStore::leadership(&s).borrow())
        })
        .map(|(n, _)| n.clone())
}

fn running(active: &Active) -> Vec<String> {
    active
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, on)| **on)
        .map(|(n, _)| n.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_s_loop_runs_on_the_leader_only_and_moves_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let active: Active = Arc::default();
    let first = with_marker(config(&dir, "m1"), "m1", &active)
        .init()
        .await
        .unwrap();
    let token = first.join_token(NodeRole::Manager).await.unwrap();
    let addr = first.config().advertised().unwrap();
    let mut handles = BTreeMap::new();
    handles.insert("m1".to_owned(), first.start(FakeRuntime::new("m1")));
    // Joins go to it once it serves.
    handles["m1"].control().await.unwrap();
    for name in ["m2", "m3"] {
        let node = with_marker(config(&dir, name), name, &active)
            .join(&addr, &token)
            .await
            .unwrap();
        handles.insert(name.to_owned(), node.start(FakeRuntime::new(name)));
    }
    until("three raft voters", || async {
        let store = handles["m1"].store();
        match store {
            Some(s) => s
                .membership()
                .await
                .is_ok_and(|m| m.members.iter().filter(|m| m.voter).count() == 3),
            None => false,
        }
    })
    .await;
    until("the loop on the leader alone", || async {
        leader(&handles).is_some_and(|l| running(&active) == [l])
    })
    .await;
    let old = leader(&handles).unwrap();

    // The leader dies; the loop moves to the new one.
    handles.remove(&old).unwrap().shutdown().await.unwrap();
    until("the loop on a new leader alone", || async {
        leader(&handles).is_some_and(|l| l != old && running(&active) == [l])
    })
    .await;
    for (_, h) in handles {
        h.shutdown().await.unwrap();
    }
}
