//! A raft cluster of members on loopback ports: failover, restarts,
//! snapshots, a large state, forced recovery, follower writes, membership.

mod common;

use std::time::Duration;

use common::{Cluster, WAIT, secret, write_secrets};
use swarm_core::store::Store;
use swarm_raft::{ErrorKind, RaftConfig};

/// Every member running holds `names`, with the same versions.
async fn assert_all_hold(cluster: &Cluster, names: &[String]) {
    let leader = cluster.store(cluster.leader().await);
    let index = leader.state_linearizable().await.unwrap().index();
    cluster.converge(index).await;
    let reference = leader.state().await.unwrap();
    for m in cluster.running() {
        let state = m.store.state().await.unwrap();
        for name in names {
            let got = state
                .secret_by_name(name)
                .unwrap_or_else(|| panic!("member {} lost acknowledged write {name}", m.id));
            assert_eq!(
                got.meta.version,
                reference.secret_by_name(name).unwrap().meta.version,
                "member {} disagrees on {name}",
                m.id
            );
        }
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_writes_after_the_leader_dies_and_the_old_one_catches_up() {
    let mut cluster = Cluster::start(3, None).await;
    let leader = cluster.leader().await;
    write_secrets(&cluster.store(leader), "before", 20).await;

    let addr = cluster.kill(leader).await;
    let survivor = (1..=3).find(|&i| i != leader).unwrap();
    let started = std::time::Instant::now();
    write_secrets(&cluster.store(survivor), "after", 20).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader, "a survivor leads");
    eprintln!("writes resumed {:?} after the kill", started.elapsed());

    cluster.restart(leader, addr).await;
    let mut all = names("before", 20);
    all.extend(names("after", 20));
    assert_all_hold(&cluster, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_missed_more_than_the_snapshot_threshold_catches_up_by_snapshot() {
    fn tune(c: RaftConfig) -> RaftConfig {
        c.snapshot_threshold(50).logs_kept_after_snapshot(0)
    }
    let mut cluster = Cluster::start(3, Some(tune)).await;
    let leader = cluster.leader().await;
    let lagging = (1..=3).find(|&i| i != leader).unwrap();
    let addr = cluster.kill(lagging).await;
    let last = write_secrets(&cluster.store(leader), "s", 200).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = cluster.store(leader).status().await.unwrap();
    let lag = status.members.iter().find(|m| m.id == lagging).unwrap();
    assert!(
        !lag.reachable,
        "the killed member is reported unreachable: {status:?}"
    );

    let store = cluster.restart(lagging, addr).await;
    cluster.converge(last).await;
    let state = store.state().await.unwrap();
    assert_eq!(state.secrets().count(), 200);
    assert_all_hold(&cluster, &names("s", 200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_of_state_replicate_to_a_new_member() {
    fn tune(c: RaftConfig) -> RaftConfig {
        c.snapshot_threshold(10).logs_kept_after_snapshot(0)
    }
    let mut cluster = Cluster::start(1, Some(tune)).await;
    let leader = cluster.store(1);
    // 110 secrets of 500 KiB (Docker's largest): the state is 55 MB.
    for batch in 0..22 {
        let changes = (0..5)
            .map(|i| secret(&format!("big{}", batch * 5 + i), 500 << 10))
            .collect();
        leader.apply(changes).await.unwrap();
    }
    let newcomer = cluster.spawn(2, None, false).await;
    let addr = cluster.member(2).addr.clone();
    tokio::time::timeout(WAIT * 3, leader.add_learner(2, addr))
        .await
        .expect("the learner caught up in time")
        .unwrap();
    leader.promote(2).await.unwrap();
    let state = newcomer.state().await.unwrap();
    let total: usize = state.secrets().map(|s| s.spec.data.len()).sum();
    assert!(total >= 50_000_000, "the new member holds {total} bytes");
    assert_eq!(state.secrets().count(), 110);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_new_cluster_keeps_every_committed_object() {
    fn tune(c: RaftConfig) -> RaftConfig {
        c.snapshot_threshold(30)
            .write_timeout(Duration::from_secs(1))
    }
    let mut cluster = Cluster::start(3, Some(tune)).await;
    let leader = cluster.leader().await;
    let last = write_secrets(&cluster.store(leader), "kept", 100).await;
    // Raft commits on a majority: the member to recover from must be one
    // that has every committed entry (as with docker, the most current).
    cluster.converge(last).await;
    let others: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    let survivor = others[0];
    cluster.kill(others[1]).await;
    cluster.kill(leader).await;
    // Quorum is lost: a write cannot commit.
    let err = cluster
        .store(survivor)
        .apply(vec![secret("lost", 1)])
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        swarm_core::store::ErrorKind::Unavailable,
        "{err}"
    );

    let addr = cluster.kill(survivor).await;
    let store = cluster.spawn(survivor, Some(addr), true).await;
    store.wait_for_leader(WAIT).await.unwrap();
    let state = store.state().await.unwrap();
    for name in names("kept", 100) {
        assert!(state.secret_by_name(&name).is_some(), "{name} was lost");
    }
    store.apply(vec![secret("new", 1)]).await.unwrap();
    let status = store.status().await.unwrap();
    assert_eq!(status.leader, survivor);
    assert_eq!(status.members.len(), 1, "{status:?}");

    // Left on by mistake, the flag does no harm on the next restart.
    let addr = cluster.kill(survivor).await;
    let store = cluster.spawn(survivor, Some(addr), true).await;
    store.wait_for_leader(WAIT).await.unwrap();
    let state = store.state_linearizable().await.unwrap();
    assert!(state.secret_by_name("new").is_some());
    assert!(state.secret_by_name("kept99").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_follower_lands_and_reads_are_linearizable_there() {
    let cluster = Cluster::start(3, None).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let f = cluster.store(follower);
    let index = f.apply(vec![secret("from-follower", 4)]).await.unwrap();
    assert!(
        f.state()
            .await
            .unwrap()
            .secret_by_name("from-follower")
            .is_some()
    );
    let on_leader = cluster.store(leader).state_linearizable().await.unwrap();
    assert_eq!(
        on_leader
            .secret_by_name("from-follower")
            .unwrap()
            .meta
            .version,
        index
    );
    // A write on the leader is seen by a linearizable read on a follower.
    cluster
        .store(leader)
        .apply(vec![secret("from-leader", 4)])
        .await
        .unwrap();
    assert!(
        f.state_linearizable()
            .await
            .unwrap()
            .secret_by_name("from-leader")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_and_status() {
    let mut cluster = Cluster::start(3, None).await;
    let leader = cluster.leader().await;
    let store = cluster.store(leader);
    // A member counts as reachable once the leader has heard from it, which
    // on a loaded machine may come a few heartbeats after the election.
    let deadline = tokio::time::Instant::now() + WAIT;
    let status = loop {
        let status = store.status().await.unwrap();
        let up = status
            .members
            .iter()
            .filter(|m| m.voter && m.reachable)
            .count();
        if up == 3 || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status.leader, leader);
    assert_eq!(
        status
            .members
            .iter()
            .filter(|m| m.voter && m.reachable)
            .count(),
        3,
        "{status:?}"
    );

    let other = (1..=3).find(|&i| i != leader).unwrap();
    store.demote(other).await.unwrap();
    let status = cluster.store(other).status().await.unwrap();
    let m = status.members.iter().find(|m| m.id == other).unwrap();
    assert!(!m.voter, "demoted to learner: {status:?}");
    store.promote(other).await.unwrap();

    // Promoting a stranger is refused with a reason.
    let e = store.promote(42).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("add it as a learner first"), "{e}");

    cluster.kill(other).await;
    store.remove_member(other).await.unwrap();
    let status = store.status().await.unwrap();
    assert_eq!(status.members.len(), 2, "{status:?}");
    // The two remaining members still commit.
    store.apply(vec![secret("after-removal", 1)]).await.unwrap();
}
