//! The agent against a mocked runtime and an in-process dispatcher.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Agent, AgentConfig};
use crate::dispatcher::{DispatcherConfig, LocalDispatcher};
use crate::model::{Meta, Object, Service, ServiceSpec, Task, TaskState};
use crate::runtime::{
    ExitStatus, MockRuntime, RuntimeError, RuntimeInfo, RuntimeState, RuntimeStatus,
};
use crate::store::{Change, MemoryStore, State, Store};

fn assigned_task(node: &str) -> Task {
    let service = Service {
        meta: Meta::new("svc".into()),
        spec: ServiceSpec::replicated("web", 1, vec!["prog".into()]),
        history: Vec::new(),
        update_status: None,
        endpoint: Default::default(),
    };
    let mut t = Task::new(&service, 1, Some(node.into()), vec![]);
    t.status.state = TaskState::Assigned;
    t
}

async fn until(store: &MemoryStore, cond: impl Fn(&State) -> bool) -> State {
    for _ in 0..500 {
        let s = store.state().await.unwrap();
        if cond(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "condition not reached: {:#?}",
        store.state().await.unwrap().tasks().collect::<Vec<_>>()
    );
}

fn runtime_with_info() -> MockRuntime {
    let mut rt = MockRuntime::new();
    rt.expect_info().returning(|| Ok(RuntimeInfo::default()));
    rt.expect_list().returning(|| Ok(vec![]));
    rt
}

/// A store, its dispatcher, and an agent for node `n1` over `runtime`.
struct Harness {
    store: Arc<MemoryStore>,
    shutdown: CancellationToken,
    agent: tokio::task::JoinHandle<Result<(), super::AgentError>>,
}

impl Harness {
    async fn start(runtime: MockRuntime) -> Self {
        Self::with(runtime, AgentConfig::default()).await
    }

    /// An agent over any runtime, with `config`.
    async fn with<R: crate::runtime::Runtime>(runtime: R, config: AgentConfig) -> Self {
        Self::networked(runtime, config, Arc::new(crate::network::HostNetwork)).await
    }

    /// An agent over any runtime and network driver, with `config`.
    async fn networked<R: crate::runtime::Runtime>(
        runtime: R,
        config: AgentConfig,
        network: Arc<dyn crate::network::NetworkDriver>,
    ) -> Self {
        let store = Arc::new(MemoryStore::new());
        let dispatcher = Arc::new(LocalDispatcher::new(
            store.clone(),
            DispatcherConfig::default(),
        ));
        dispatcher
            .admit(&"n1".into(), crate::model::NodeRole::Worker)
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        let agent = tokio::spawn(
            Agent::new("n1".into(), runtime, dispatcher, config)
                .with_network(network)
                .run(shutdown.clone()),
        );
        until(&store, |s| {
            s.node("n1")
                .is_some_and(|n| n.status.state == crate::model::NodeState::Ready)
        })
        .await;
        Self {
            store,
            shutdown,
            agent,
        }
    }

    /// Assigns a new task to `n1`; returns its id.
    async fn assign(&self) -> crate::Id {
        self.assign_task(assigned_task("n1")).await
    }

    /// Assigns `task` (given to `n1`); returns its id.
    async fn assign_task(&self, task: Task) -> crate::Id {
        let id = task.meta.id.clone();
        self.store
            .apply(vec![Change::Create(Object::from(task))])
            .await
            .unwrap();
        id
    }

    /// Waits until the task reaches `state`.
    async fn until_state(&self, id: &crate::Id, state: TaskState) -> Arc<Task> {
        until(&self.store, |s| s.task(id).unwrap().status.state == state)
            .await
            .task(id)
            .unwrap()
            .clone()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.agent.await.unwrap().unwrap();
    }
}

fn running_status() -> RuntimeStatus {
    RuntimeStatus {
        state: RuntimeState::Running,
        health: None,
        runtime_id: Some("4242".into()),
        started_at: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_the_runtime_cannot_prepare_is_rejected_with_the_reason() {
    let mut rt = runtime_with_info();
    rt.expect_prepare().times(1).returning(|_, _| {
        Err(RuntimeError::InvalidSpec(
            "program \"prog\" not found".into(),
        ))
    });
    rt.expect_start().never();
    let h = Harness::start(rt).await;
    let id = h.assign().await;
    let t = h.until_state(&id, TaskState::Rejected).await;
    assert_eq!(t.status.err.as_deref(), Some("program \"prog\" not found"));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_task_runs_then_its_exit_code_is_reported() {
    let mut rt = runtime_with_info();
    let mut seq = mockall::Sequence::new();
    rt.expect_prepare()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    rt.expect_start()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    rt.expect_inspect().returning(|_| Ok(running_status()));
    rt.expect_wait().times(1).returning(|_| {
        Ok(ExitStatus {
            code: 7,
            signal: None,
        })
    });
    let h = Harness::start(rt).await;
    let id = h.assign().await;
    let t = h.until_state(&id, TaskState::Failed).await;
    assert_eq!(t.status.exit_code, Some(7));
    assert_eq!(t.status.err.as_deref(), Some("task: non-zero exit (7)"));
    assert_eq!(
        t.status.runtime_id.as_deref(),
        Some("4242"),
        "a task that ended still names its container or process"
    );
    h.stop().await;
}

/// A runtime whose tasks run until stopped, for tests that script it:
/// its health verdict (as an image's HEALTHCHECK gives one), and whether
/// `stop` waits for the test's word (a long grace period).
struct Scripted {
    health: tokio::sync::watch::Receiver<Option<crate::runtime::Health>>,
    stopped: tokio::sync::Notify,
    hold_stops: bool,
    release: tokio::sync::Notify,
    held: std::sync::Mutex<std::collections::BTreeSet<crate::Id>>,
    removed: std::sync::Mutex<Vec<crate::Id>>,
}

impl Scripted {
    fn new(
        health: Option<crate::runtime::Health>,
        hold_stops: bool,
    ) -> (
        Self,
        tokio::sync::watch::Sender<Option<crate::runtime::Health>>,
    ) {
        let (tx, rx) = tokio::sync::watch::channel(health);
        let runtime = Self {
            health: rx,
            stopped: tokio::sync::Notify::new(),
            hold_stops,
            release: tokio::sync::Notify::new(),
            held: Default::default(),
            removed: Default::default(),
        };
        (runtime, tx)
    }
}

#[async_trait::async_trait]
impl crate::runtime::Runtime for Scripted {
    async fn info(&self) -> Result<RuntimeInfo, RuntimeError> {
        Ok(RuntimeInfo::default())
    }
    async fn prepare(
        &self,
        task: &Task,
        _: &[crate::runtime::TaskFile],
    ) -> Result<(), RuntimeError> {
        self.held.lock().unwrap().insert(task.meta.id.clone());
        Ok(())
    }
    async fn start(&self, _: &crate::Id) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn wait(&self, _: &crate::Id) -> Result<ExitStatus, RuntimeError> {
        self.stopped.notified().await;
        Ok(ExitStatus {
            code: 137,
            signal: None,
        })
    }
    async fn stop(&self, _: &crate::Id, _: Duration) -> Result<(), RuntimeError> {
        if self.hold_stops {
            self.release.notified().await;
        }
        self.stopped.notify_waiters();
        Ok(())
    }
    async fn remove(&self, id: &crate::Id) -> Result<(), RuntimeError> {
        self.held.lock().unwrap().remove(id);
        self.removed.lock().unwrap().push(id.clone());
        Ok(())
    }
    async fn inspect(&self, _: &crate::Id) -> Result<RuntimeStatus, RuntimeError> {
        Ok(RuntimeStatus {
            health: *self.health.borrow(),
            ..running_status()
        })
    }
    async fn logs(
        &self,
        _: &crate::Id,
        _: crate::runtime::LogOptions,
    ) -> Result<crate::runtime::LogStream, RuntimeError> {
        Ok(Box::pin(futures::stream::empty()))
    }
    async fn list(&self) -> Result<Vec<crate::Id>, RuntimeError> {
        Ok(self.held.lock().unwrap().iter().cloned().collect())
    }
}

#[tokio::test(start_paused = true)]
async fn sweeps_leave_a_task_that_is_being_stopped_alone() {
    let (runtime, _health) = Scripted::new(None, true);
    let runtime = Arc::new(runtime);
    let h = Harness::with(
        runtime.clone(),
        AgentConfig::default().stray_sweep(Duration::from_millis(20)),
    )
    .await;
    let id = h.assign().await;
    h.until_state(&id, TaskState::Running).await;
    // The task leaves the node's set: the agent stops it, and the stop
    // takes long (a long grace period) while sweeps come and go.
    h.store
        .apply(vec![Change::Delete {
            kind: crate::model::Kind::Task,
            id: id.clone(),
            version: None,
        }])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        runtime.removed.lock().unwrap().is_empty(),
        "no sweep removes a task that is being stopped"
    );
    runtime.release.notify_waiters();
    tokio::time::timeout(Duration::from_secs(5), async {
        while runtime.removed.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stopped task is removed");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*runtime.removed.lock().unwrap(), [id], "once");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_health_check_of_the_runtime_s_own_counts_like_the_spec_s() {
    use crate::runtime::Health;
    // No health check in the spec, but the runtime reports health.
    let (runtime, health) = Scripted::new(Some(Health::Starting), false);
    let h = Harness::with(
        runtime,
        AgentConfig::default().health_poll(Duration::from_millis(20)),
    )
    .await;
    let id = h.assign().await;
    let store = &h.store;
    let state_is = |state: TaskState| {
        let id = id.clone();
        move |s: &State| s.task(&id).is_some_and(|t| t.status.state == state)
    };
    until(store, state_is(TaskState::Starting)).await;
    // Several polls later, still waiting for a healthy verdict.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store.state().await.unwrap().task(&id).unwrap().status.state,
        TaskState::Starting,
        "the task waits for its first healthy verdict"
    );
    health.send_replace(Some(Health::Healthy));
    until(store, state_is(TaskState::Running)).await;
    health.send_replace(Some(Health::Unhealthy));
    let failed = until(store, state_is(TaskState::Failed)).await;
    assert_eq!(
        failed.task(&id).unwrap().status.err.as_deref(),
        Some("task: unhealthy (health check failed)")
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn strays_that_appear_later_are_swept_away() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // The runtime shows a task the agent never had, after the agent's
    // first look (as a container whose creation finished late does).
    let stray = crate::Id::from("stray");
    let mut rt = MockRuntime::new();
    rt.expect_info().returning(|| Ok(RuntimeInfo::default()));
    let lists = Arc::new(AtomicUsize::new(0));
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (listed, held) = (lists.clone(), gone.clone());
    let shown = stray.clone();
    rt.expect_list().returning(move || {
        let first = listed.fetch_add(1, Ordering::SeqCst) == 0;
        Ok(if first || held.load(Ordering::SeqCst) {
            vec![]
        } else {
            vec![shown.clone()]
        })
    });
    let removed = Arc::new(tokio::sync::Notify::new());
    let done = removed.clone();
    rt.expect_remove()
        .withf(move |id| *id == stray)
        .times(1)
        .returning(move |_| {
            gone.store(true, Ordering::SeqCst);
            done.notify_one();
            Ok(())
        });
    let h = Harness::with(
        rt,
        AgentConfig::default().stray_sweep(Duration::from_millis(30)),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(5), removed.notified())
        .await
        .expect("the stray is removed");
    assert!(
        lists.load(Ordering::SeqCst) >= 3,
        "only after it was seen in two sweeps"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_cannot_move_a_task_backwards_or_touch_another_node_s_task() {
    use crate::dispatcher::{Dispatcher, StatusUpdate};
    use crate::model::TaskStatus;
    let store = Arc::new(MemoryStore::new());
    let dispatcher = LocalDispatcher::new(store.clone(), DispatcherConfig::default());
    dispatcher
        .admit(&"n1".into(), crate::model::NodeRole::Worker)
        .await
        .unwrap();
    dispatcher
        .register(&"n1".into(), Default::default())
        .await
        .unwrap();
    let mut task = assigned_task("n1");
    task.status.state = TaskState::Running;
    let id = task.meta.id.clone();
    store
        .apply(vec![Change::Create(Object::from(task))])
        .await
        .unwrap();
    let back = StatusUpdate {
        task_id: id.clone(),
        status: TaskStatus::new(TaskState::Starting, "x"),
    };
    dispatcher.report(&"n1".into(), vec![back]).await.unwrap();
    let other = StatusUpdate {
        task_id: id.clone(),
        status: TaskStatus::new(TaskState::Complete, "x"),
    };
    dispatcher.report(&"n2".into(), vec![other]).await.unwrap();
    assert_eq!(
        store.state().await.unwrap().task(&id).unwrap().status.state,
        TaskState::Running
    );
    let done = StatusUpdate {
        task_id: id.clone(),
        status: TaskStatus::new(TaskState::Complete, "x"),
    };
    dispatcher.report(&"n1".into(), vec![done]).await.unwrap();
    assert_eq!(
        store.state().await.unwrap().task(&id).unwrap().status.state,
        TaskState::Complete
    );
}

#[tokio::test(start_paused = true)]
async fn a_removed_node_does_not_come_back_by_itself() {
    use crate::dispatcher::{Dispatcher, DispatcherError};
    let store = Arc::new(MemoryStore::new());
    let dispatcher = LocalDispatcher::new(store.clone(), DispatcherConfig::default());
    let e = dispatcher
        .register(&"stranger".into(), Default::default())
        .await
        .unwrap_err();
    assert!(matches!(e, DispatcherError::UnknownNode(_)), "{e}");
    assert!(store.state().await.unwrap().node("stranger").is_none());
}

#[tokio::test(start_paused = true)]
async fn a_finished_task_is_removed_from_the_runtime_once_reaped() {
    let mut rt = runtime_with_info();
    rt.expect_prepare().returning(|_, _| Ok(()));
    rt.expect_start().returning(|_| Ok(()));
    rt.expect_inspect().returning(|_| Ok(running_status()));
    rt.expect_wait().returning(|_| {
        Ok(ExitStatus {
            code: 0,
            signal: None,
        })
    });
    rt.expect_stop().returning(|_, _| Ok(()));
    let (removed_tx, mut removed_rx) = tokio::sync::mpsc::unbounded_channel();
    rt.expect_remove().returning(move |id| {
        let _ = removed_tx.send(id.clone());
        Ok(())
    });
    let h = Harness::start(rt).await;
    let id = h.assign().await;
    let version = h.until_state(&id, TaskState::Complete).await.meta.version;
    h.store
        .apply(vec![Change::Delete {
            kind: crate::model::Kind::Task,
            id: id.clone(),
            version: Some(version),
        }])
        .await
        .unwrap();
    let removed = tokio::time::timeout(Duration::from_secs(5), removed_rx.recv())
        .await
        .expect("remove is called");
    assert_eq!(removed, Some(id));
    h.stop().await;
}

/// Scripts `rt`'s started tasks: they run, exit 0, and are removed.
fn runs_then_succeeds(rt: &mut MockRuntime) {
    rt.expect_inspect().returning(|_| Ok(running_status()));
    rt.expect_wait().returning(|_| {
        Ok(ExitStatus {
            code: 0,
            signal: None,
        })
    });
    rt.expect_remove().returning(|_| Ok(()));
}

/// A task of `n1` with an address on one network.
fn networked_task() -> Task {
    let mut t = assigned_task("n1");
    t.networks = vec![crate::model::TaskNetwork {
        network_id: "net1".into(),
        addr: std::net::Ipv4Addr::new(10, 0, 1, 5),
        prefix: 24,
        aliases: vec![],
    }];
    t
}

#[tokio::test(start_paused = true)]
async fn a_runtime_that_holds_the_namespace_gets_the_driver_s_sandbox_of_it() {
    let netns = std::path::PathBuf::from("/run/netns/swarm-t");
    let mut rt = runtime_with_info();
    let mut seq = mockall::Sequence::new();
    rt.expect_runs_in_sandboxes().return_const(true);
    rt.expect_hold_sandbox()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Some(4242)));
    let want = netns.clone();
    rt.expect_prepare_in()
        .times(1)
        .in_sequence(&mut seq)
        .withf(move |_, _, sb| sb.netns == want)
        .returning(|_, _, _| Ok(()));
    rt.expect_prepare().never();
    rt.expect_start()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    runs_then_succeeds(&mut rt);
    let mut net = crate::network::MockNetworkDriver::new();
    net.expect_isolates().return_const(true);
    net.expect_update().returning(|_| Ok(()));
    let made = netns.clone();
    net.expect_attach()
        .times(1)
        .withf(|t, holder| t.networks.len() == 1 && *holder == Some(4242))
        .returning(move |_, _| {
            Ok(Some(crate::network::Sandbox {
                netns: made.clone(),
                resolv_conf: None,
            }))
        });
    net.expect_detach().returning(|_| Ok(()));
    let h = Harness::networked(rt, AgentConfig::default(), Arc::new(net)).await;
    let id = h.assign_task(networked_task()).await;
    h.until_state(&id, TaskState::Complete).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn on_the_host_s_network_no_sandbox_is_asked_for() {
    let mut rt = runtime_with_info();
    rt.expect_runs_in_sandboxes().return_const(true);
    rt.expect_hold_sandbox().never();
    rt.expect_prepare_in().never();
    rt.expect_prepare().times(1).returning(|_, _| Ok(()));
    rt.expect_start().returning(|_| Ok(()));
    runs_then_succeeds(&mut rt);
    let h = Harness::with(rt, AgentConfig::default()).await;
    let id = h.assign_task(networked_task()).await;
    h.until_state(&id, TaskState::Complete).await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_holder_the_runtime_cannot_start_rejects_the_task_with_the_reason() {
    let mut rt = runtime_with_info();
    rt.expect_runs_in_sandboxes().return_const(true);
    rt.expect_hold_sandbox()
        .returning(|_| Err(RuntimeError::InvalidSpec("no sandbox image".into())));
    rt.expect_prepare_in().never();
    rt.expect_prepare().never();
    rt.expect_remove().returning(|_| Ok(()));
    let mut net = crate::network::MockNetworkDriver::new();
    net.expect_isolates().return_const(true);
    net.expect_update().returning(|_| Ok(()));
    net.expect_attach().never();
    net.expect_detach().returning(|_| Ok(()));
    let h = Harness::networked(rt, AgentConfig::default(), Arc::new(net)).await;
    let id = h.assign_task(networked_task()).await;
    let t = h.until_state(&id, TaskState::Rejected).await;
    assert_eq!(t.status.err.as_deref(), Some("runtime: no sandbox image"));
    h.stop().await;
}
