//! Three managers on one raft store: the control loops run on the leader
//! only, stop when it dies, and start on the new leader from the store's
//! state.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use swarm_core::control::Control;
use swarm_core::manager::{Manager, ManagerConfig, run_while_leading};
use swarm_core::model::ServiceSpec;
use swarm_core::store::State;
use swarm_raft::{RaftConfig, RaftStore};
use swarm_sched::{SchedulerConfig, SwarmScheduler};
use tokio_util::sync::CancellationToken;

struct ManagerNode {
    store: RaftStore,
    stop: CancellationToken,
    supervisor: tokio::task::JoinHandle<()>,
}

/// `running[i]` counts the control-loop runs of member `i + 1`.
async fn start(
    id: u64,
    dir: &std::path::Path,
    running: Arc<Vec<AtomicUsize>>,
) -> (ManagerNode, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let store = RaftStore::open(RaftConfig::new(
        id,
        addr.clone(),
        dir.join(format!("m{id}")),
    ))
    .await
    .unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(swarm_raft::serve(store.clone(), listener, {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    }));
    let supervisor = tokio::spawn(run_while_leading(store.leadership(), stop.clone(), {
        let store = store.clone();
        move |token: CancellationToken| {
            let manager = Manager::new(
                store.clone(),
                SwarmScheduler::new(SchedulerConfig::default()).unwrap(),
                ManagerConfig::default(),
            );
            let running = running.clone();
            async move {
                running[id as usize - 1].fetch_add(1, Ordering::SeqCst);
                manager.run(token).await;
                running[id as usize - 1].fetch_sub(1, Ordering::SeqCst);
            }
        }
    }));
    (
        ManagerNode {
            store,
            stop,
            supervisor,
        },
        addr,
    )
}

async fn wait_for(store: &RaftStore, what: &str, cond: impl Fn(&State) -> bool) {
    swarm_core::cluster::wait_until(store, Duration::from_secs(20), what, cond)
        .await
        .unwrap();
}

fn tasks_of(state: &State, name: &str) -> usize {
    state
        .service_by_name(name)
        .map_or(0, |s| state.tasks_of_service(&s.meta.id).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_loops_run_on_the_leader_only_and_move_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let running: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    // The members whose loops run now.
    let runners = |running: &[AtomicUsize]| -> Vec<u64> {
        (1..=3u64)
            .filter(|&id| running[id as usize - 1].load(Ordering::SeqCst) > 0)
            .collect()
    };
    let mut nodes = Vec::new();
    let mut addrs = Vec::new();
    for id in 1..=3 {
        let (n, a) = start(id, dir.path(), running.clone()).await;
        nodes.push(Some(n));
        addrs.push(a);
    }
    let first = nodes[0].as_ref().unwrap().store.clone();
    first.initialize().await.unwrap();
    first
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    for id in 2..=3u64 {
        first
            .add_learner(id, addrs[id as usize - 1].clone())
            .await
            .unwrap();
        first.promote(id).await.unwrap();
    }

    // The leader's orchestrator creates the tasks (no workers: they wait
    // pending).
    let control = Control::new(nodes[2].as_ref().unwrap().store.clone());
    control
        .create_service(ServiceSpec::replicated("web", 3, vec!["sleep".into()]))
        .await
        .unwrap();
    wait_for(&first, "create 3 tasks", |s| tasks_of(s, "web") == 3).await;
    let leader = first.status().await.unwrap().leader;
    assert_eq!(
        runners(&running),
        vec![leader],
        "the leader, and only it, runs the loops"
    );

    // The leader dies: a new one takes over the loops.
    let dead = nodes[leader as usize - 1].take().unwrap();
    dead.store.shutdown().await;
    dead.stop.cancel();
    dead.supervisor.await.unwrap();
    let survivor = nodes.iter().flatten().next().unwrap().store.clone();
    survivor
        .wait_for_leader(Duration::from_secs(10))
        .await
        .unwrap();
    Control::new(survivor.clone())
        .scale("web", 5)
        .await
        .unwrap();
    wait_for(&survivor, "create 2 more tasks on the new leader", |s| {
        tasks_of(s, "web") == 5
    })
    .await;
    let new_leader = survivor.status().await.unwrap().leader;
    assert_ne!(new_leader, leader);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while runners(&running) != vec![new_leader] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only the new leader runs the loops: {:?}",
            runners(&running)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in nodes.into_iter().flatten() {
        n.store.shutdown().await;
        n.stop.cancel();
        n.supervisor.await.unwrap();
    }
    assert!(runners(&running).is_empty());
}
