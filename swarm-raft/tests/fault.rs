//! Concurrent clients write while the leader is killed and restarted in a
//! loop. Every write's outcome is recorded; then the history is checked:
//! no acknowledged write is lost, none is applied twice, and every member
//! ends with the same state.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{Cluster, WAIT, secret};
use swarm_core::store::{ErrorKind, Store};
use tokio::sync::Mutex;

const CLIENTS: usize = 8;
/// Leader kills (each followed by a restart) while the clients write.
const KILLS: usize = 5;

#[derive(Debug, Clone)]
enum Outcome {
    /// Acknowledged at this store index.
    Acked(u64),
    /// Failed with this kind: may or may not have been applied.
    Failed(ErrorKind, String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_or_applied_twice_while_leaders_die() {
    fn tune(c: swarm_raft::RaftConfig) -> swarm_raft::RaftConfig {
        // Snapshots and purges happen during the test, too.
        c.snapshot_threshold(100).logs_kept_after_snapshot(20)
    }
    let cluster = Arc::new(Mutex::new(Cluster::start(3, Some(tune)).await));
    let history: Arc<std::sync::Mutex<Vec<(String, Outcome)>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let cluster = cluster.clone();
        let history = history.clone();
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let name = format!("c{c}-w{n}");
                // Each write goes to some running member, leader or not.
                let store = {
                    let cluster = cluster.lock().await;
                    let running: Vec<_> = cluster.running().map(|m| m.store.clone()).collect();
                    running[(c + n) % running.len()].clone()
                };
                let outcome = match store.apply(vec![secret(&name, 8)]).await {
                    Ok(index) => Outcome::Acked(index),
                    Err(e) => Outcome::Failed(e.kind(), e.to_string()),
                };
                history.lock().unwrap().push((name, outcome));
            }
        }));
    }

    let killer = tokio::spawn({
        let cluster = cluster.clone();
        let done = done.clone();
        async move {
            for _ in 0..KILLS {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let leader = { cluster.lock().await.leader().await };
                let addr = cluster.lock().await.kill(leader).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
                cluster.lock().await.restart(leader, addr).await;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });

    tokio::time::timeout(WAIT * 3, killer)
        .await
        .expect("the kill loop ends")
        .unwrap();
    for c in clients {
        tokio::time::timeout(WAIT, c)
            .await
            .expect("clients finish")
            .unwrap();
    }
    let kills = KILLS;

    let cluster = cluster.lock().await;
    let leader = cluster.store(cluster.leader().await);
    let index = leader.state_linearizable().await.unwrap().index();
    cluster.converge(index).await;
    let history = history.lock().unwrap().clone();
    let states: Vec<_> = {
        let mut v = Vec::new();
        for m in cluster.running() {
            v.push((m.id, m.store.state().await.unwrap()));
        }
        v
    };
    let reference = &states[0].1;

    let mut acked = 0;
    let mut by_index: HashMap<u64, &str> = HashMap::new();
    for (name, outcome) in &history {
        match outcome {
            Outcome::Acked(index) => {
                acked += 1;
                let s = reference.secret_by_name(name).unwrap_or_else(|| {
                    panic!("acknowledged write {name} (index {index}) was lost")
                });
                assert_eq!(
                    s.meta.version, *index,
                    "{name} was acknowledged at {index} but committed at {}",
                    s.meta.version
                );
                if let Some(other) = by_index.insert(*index, name) {
                    panic!("{name} and {other} were both acknowledged at index {index}");
                }
            }
            Outcome::Failed(kind, message) => {
                // A retry that found its own earlier write would say it
                // exists: that would be a double application.
                assert_ne!(
                    *kind,
                    ErrorKind::AlreadyExists,
                    "{name} was applied twice: {message}"
                );
            }
        }
    }
    // Each object is created by exactly one commit: its version.
    let count = reference.secrets().count();
    assert!(
        count >= acked,
        "{count} objects for {acked} acknowledged writes"
    );
    for (id, state) in &states[1..] {
        assert_eq!(state.index(), reference.index(), "member {id} index");
        for s in reference.secrets() {
            let other = state
                .secret(&s.meta.id)
                .unwrap_or_else(|| panic!("member {id} lacks {}", s.spec.name));
            assert_eq!(
                other.meta.version, s.meta.version,
                "member {id} disagrees on {}",
                s.spec.name
            );
        }
        assert_eq!(
            state.secrets().count(),
            count,
            "member {id} holds other objects"
        );
    }
    eprintln!(
        "{} writes, {acked} acknowledged, {} failed, {kills} leader kills",
        history.len(),
        history.len() - acked
    );
    assert!(
        history.len() >= 200,
        "several hundred writes: {}",
        history.len()
    );
    assert!(
        acked * 2 >= history.len(),
        "most writes succeed: {acked}/{}",
        history.len()
    );
}
