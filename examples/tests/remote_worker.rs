//! A worker whose agent reaches the manager over gRPC (swarm-api) runs the
//! manager's tasks as real processes, exactly as an in-process worker
//! does; a client drives the manager through the control API over gRPC;
//! when the session breaks, the manager marks the node down.

use std::sync::Arc;
use std::time::Duration;

use swarm_api::{ControlService, DispatcherService, RemoteControl, RemoteDispatcher};
use swarm_core::Id;
use swarm_core::agent::{Agent, AgentConfig};
use swarm_core::control::Control;
use swarm_core::dispatcher::{DispatcherConfig, LocalDispatcher};
use swarm_core::manager::{Manager, ManagerConfig};
use swarm_core::model::{NodeRole, NodeState, SecretSpec, ServiceSpec, TaskState};
use swarm_core::runtime::Runtime as _;
use swarm_core::store::{MemoryStore, State};
use swarm_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use swarm_sched::{SchedulerConfig, SwarmScheduler};
use tokio_util::sync::CancellationToken;

async fn wait_for(store: &Arc<MemoryStore>, what: &str, cond: impl Fn(&State) -> bool) -> State {
    swarm_core::cluster::wait_until(&**store, Duration::from_secs(20), what, cond)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_grpc_runs_tasks_and_is_marked_down_when_the_session_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();

    // The manager, with its dispatcher served over gRPC.
    let store = Arc::new(MemoryStore::new());
    let dispatcher = Arc::new(LocalDispatcher::new(
        store.clone(),
        DispatcherConfig::default().heartbeat_period(Duration::from_millis(200)),
    ));
    let scheduler = SwarmScheduler::new(SchedulerConfig::default()).unwrap();
    let manager = Manager::new(store.clone(), scheduler, ManagerConfig::default())
        .with_dispatcher(dispatcher.clone());
    tokio::spawn(manager.run(shutdown.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server_stop = CancellationToken::new();
    let server = tokio::spawn({
        let stop = server_stop.clone();
        tonic::transport::Server::builder()
            .add_service(DispatcherService::server(dispatcher.clone()))
            .add_service(ControlService::server(Control::new(store.clone())))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move { stop.cancelled().await },
            )
    });

    // The worker: its agent only knows the manager's address.
    let node = Id::generate();
    dispatcher.admit(&node, NodeRole::Worker).await.unwrap();
    let runtime = Arc::new(
        ProcessRuntime::new(
            ProcessRuntimeConfig::default()
                .with_hostname("remote-1")
                .with_state_dir(dir.path().join("remote-1")),
        )
        .unwrap(),
    );
    let agent = Agent::new(
        node.clone(),
        runtime.clone(),
        RemoteDispatcher::connect_lazy(&addr).unwrap(),
        AgentConfig::default().hostname("remote-1"),
    );
    let agent_stop = CancellationToken::new();
    let agent_task = tokio::spawn(agent.run(agent_stop.clone()));

    wait_for(&store, "see the remote worker ready", |s| {
        s.node(&node)
            .is_some_and(|n| n.status.state == NodeState::Ready)
    })
    .await;
    // A client, through the control API over gRPC.
    let client = RemoteControl::connect_lazy(&addr).unwrap();
    let bad = ServiceSpec::replicated("Not A Name!", 2, vec!["sleep".into()]);
    let e = client.create_service(bad).await.unwrap_err();
    assert!(
        matches!(e, swarm_core::control::ControlError::Invalid(_)),
        "the validation error arrives whole: {e}"
    );
    let spec = ServiceSpec::replicated("remote", 2, vec!["sleep".into(), "3600".into()]);
    client.create_service(spec).await.unwrap();
    client
        .create_secret(SecretSpec {
            name: "pw".into(),
            data: b"hunter2".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    let secrets = client.secrets().await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert!(
        secrets[0].spec.data.is_empty(),
        "secret data never goes back to clients"
    );
    let state = wait_for(&store, "run 2 tasks on the remote worker", |s| {
        s.tasks()
            .filter(|t| t.status.state == TaskState::Running && t.node_id.as_ref() == Some(&node))
            .count()
            == 2
    })
    .await;
    assert_eq!(client.service_tasks("remote").await.unwrap().len(), 2);
    assert_eq!(client.nodes().await.unwrap().len(), 1);
    // They are real processes, known to the worker's runtime.
    let running = runtime.list().await.unwrap();
    for t in state.tasks() {
        assert!(
            running.contains(&t.meta.id),
            "task {} has no process",
            t.meta.id
        );
    }

    // The session breaks: the server goes away (it stops accepting, and
    // refuses new calls on open connections), and the manager stops
    // hearing heartbeats.
    server_stop.cancel();
    wait_for(&store, "mark the worker down", |s| {
        s.node(&node)
            .is_some_and(|n| n.status.state == NodeState::Down)
    })
    .await;

    agent_stop.cancel();
    let _ = agent_task.await;
    server.abort();
    for id in runtime.list().await.unwrap() {
        let _ = runtime.stop(&id, Duration::from_secs(1)).await;
        let _ = runtime.remove(&id).await;
    }
    shutdown.cancel();
}
