//! The manager's control loops run unchanged on the raft store, and what
//! they wrote survives a restart of the manager from its data directory.

use std::time::Duration;

use swarm_core::model::{ServiceSpec, TaskState};
use swarm_core::store::Store;
use swarm_examples::{fast_config, local_swarm_on, single_manager_store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_runs_on_the_raft_store_and_its_state_survives_a_manager_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("manager");
    let store = single_manager_store(&data).await.unwrap();
    let mut cluster = local_swarm_on(store, 2, dir.path().to_owned(), fast_config())
        .await
        .unwrap();
    let spec = ServiceSpec::replicated("web", 3, vec!["sleep".into(), "3600".into()]);
    cluster.control().create_service(spec).await.unwrap();
    let running = |s: &swarm_core::store::State| {
        s.tasks()
            .filter(|t| t.status.state == TaskState::Running)
            .count()
    };
    let state = cluster
        .wait_until(Duration::from_secs(20), "run 3 tasks", |s| running(s) == 3)
        .await
        .unwrap();
    let service = state.service_by_name("web").unwrap().clone();
    let tasks: Vec<_> = state
        .tasks_of_service(&service.meta.id)
        .map(|t| t.meta.id.clone())
        .collect();
    cluster.shutdown().await;
    cluster.store().shutdown().await;
    drop(cluster);

    // A new manager process would open the same directory.
    let store = single_manager_store(&data).await.unwrap();
    let state = store.state().await.unwrap();
    let again = state
        .service_by_name("web")
        .expect("the service survived the restart");
    assert_eq!(again.meta.version, service.meta.version);
    for id in &tasks {
        let t = state.task(id).expect("every task survived the restart");
        assert_eq!(t.desired_state, TaskState::Running);
    }
    assert_eq!(state.nodes().count(), 2, "both workers are still members");
    store.shutdown().await;
}
