//! Behaviour of a whole local swarm with real processes: 1 manager and a
//! few workers in this process, tasks as OS processes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use swarm_core::Id;
use swarm_core::cluster::LocalCluster;
use swarm_core::model::{
    Availability, NodeState, PlacementPreference, RestartCondition, ServiceSpec, Task, TaskState,
};
use swarm_core::runtime::Runtime as _;
use swarm_core::store::{State, Store as _};
use swarm_examples::{add_process_worker, fast_config, local_swarm};
use swarm_runtime_process::ProcessRuntime;

const WAIT: Duration = Duration::from_secs(20);

struct Swarm {
    cluster: LocalCluster<ProcessRuntime>,
    dir: std::path::PathBuf,
}

impl Swarm {
    async fn new(workers: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("swarm-test-{}", Id::generate()));
        let cluster = local_swarm(workers, dir.clone(), fast_config())
            .await
            .expect("swarm starts");
        Self { cluster, dir }
    }

    async fn until(&self, what: &str, cond: impl Fn(&State) -> bool) -> State {
        match self.cluster.wait_until(WAIT, what, cond).await {
            Ok(s) => s,
            Err(e) => {
                let state = self.cluster.store().state().await.unwrap();
                let mut names: Vec<_> = state.services().map(|s| s.spec.name.clone()).collect();
                names.sort();
                let tables: String = names
                    .iter()
                    .map(|n| swarm_examples::table::tasks(&state, n))
                    .collect();
                panic!("{e}\n{tables}");
            }
        }
    }

    async fn node(&self, hostname: &str) -> Id {
        self.cluster
            .control()
            .node(hostname)
            .await
            .unwrap()
            .meta
            .id
            .clone()
    }

    async fn pid(&self, t: &Task) -> u32 {
        let node = t.node_id.as_ref().expect("assigned");
        let status = self
            .cluster
            .runtime(node)
            .unwrap()
            .inspect(&t.meta.id)
            .await
            .unwrap();
        status
            .runtime_id
            .expect("a pid")
            .parse()
            .expect("a numeric pid")
    }

    /// The pids of the service's running tasks on `node`.
    async fn pids_on(&self, state: &State, service: &str, node: &Id) -> Vec<u32> {
        let mut pids = vec![];
        for t in running(state, service)
            .into_iter()
            .filter(|t| t.node_id.as_ref() == Some(node))
        {
            pids.push(self.pid(t).await);
        }
        pids
    }

    async fn stop(mut self) {
        self.cluster.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Swarm {
    /// A failed test leaves no process behind.
    fn drop(&mut self) {
        for id in self.cluster.workers() {
            if let Some(rt) = self.cluster.runtime(&id) {
                rt.shutdown_all();
            }
        }
    }
}

fn sleeper(name: &str, replicas: u64) -> ServiceSpec {
    let mut spec = ServiceSpec::replicated(name, replicas, vec!["sleep".into(), "3600".into()]);
    spec.task.restart.delay = Duration::from_millis(100);
    spec.task.stop_grace_period = Duration::from_secs(2);
    spec
}

fn running<'a>(state: &'a State, service: &str) -> Vec<&'a Arc<Task>> {
    let Some(s) = state.service_by_name(service) else {
        return vec![];
    };
    let mut v: Vec<_> = state
        .tasks_of_service(&s.meta.id)
        .filter(|t| t.desired_state == TaskState::Running && t.status.state == TaskState::Running)
        .collect();
    v.sort_by_key(|t| t.slot);
    v
}

fn per_node(tasks: &[&Arc<Task>]) -> BTreeMap<Id, usize> {
    let mut m = BTreeMap::new();
    for t in tasks {
        *m.entry(t.node_id.clone().unwrap()).or_default() += 1;
    }
    m
}

fn alive(pid: u32) -> bool {
    // A zombie has exited: count it as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

async fn eventually_dead(pids: &[u32]) {
    for _ in 0..200 {
        if pids.iter().all(|p| !alive(*p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("processes {pids:?} should have stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_replicas_run_five_processes() {
    let swarm = Swarm::new(3).await;
    swarm
        .cluster
        .control()
        .create_service(sleeper("web", 5))
        .await
        .unwrap();
    let state = swarm
        .until("run 5 tasks", |s| running(s, "web").len() == 5)
        .await;
    let tasks = running(&state, "web");
    let mut pids = HashSet::new();
    for t in &tasks {
        let pid = swarm.pid(t).await;
        assert!(alive(pid), "task {} has no live process", t.name());
        assert!(
            cmdline(pid).starts_with("sleep 3600"),
            "pid {pid} runs {:?}",
            cmdline(pid)
        );
        pids.insert(pid);
    }
    assert_eq!(pids.len(), 5, "five distinct processes");
    let mut spread: Vec<usize> = per_node(&tasks).into_values().collect();
    spread.sort_unstable();
    assert_eq!(spread, [1, 2, 2], "replicas spread over the 3 workers");
    let slots: Vec<u64> = tasks.iter().map(|t| t.slot).collect();
    assert_eq!(slots, [1, 2, 3, 4, 5]);
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_is_replaced() {
    let swarm = Swarm::new(2).await;
    swarm
        .cluster
        .control()
        .create_service(sleeper("web", 3))
        .await
        .unwrap();
    let state = swarm
        .until("run 3 tasks", |s| running(s, "web").len() == 3)
        .await;
    let victim = running(&state, "web")[1].clone();
    let pid = swarm.pid(&victim).await;
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let id = victim.meta.id.clone();
    let state = swarm
        .until("replace the killed task", |s| {
            s.task(&id)
                .is_some_and(|t| t.status.state == TaskState::Failed)
                && running(s, "web").len() == 3
        })
        .await;
    let dead = state.task(&id).unwrap();
    assert_eq!(dead.status.exit_code, Some(137), "killed by SIGKILL");
    assert!(
        dead.status
            .err
            .as_deref()
            .unwrap_or("")
            .contains("signal 9"),
        "{:?}",
        dead.status.err
    );
    assert_eq!(dead.desired_state, TaskState::Shutdown);
    let replacement = running(&state, "web")
        .into_iter()
        .find(|t| t.slot == victim.slot)
        .unwrap()
        .clone();
    assert_ne!(
        replacement.meta.id, victim.meta.id,
        "a replacement is a new task in the same slot"
    );
    assert!(alive(swarm.pid(&replacement).await));
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_down_stops_exactly_three() {
    let swarm = Swarm::new(3).await;
    swarm
        .cluster
        .control()
        .create_service(sleeper("web", 5))
        .await
        .unwrap();
    let state = swarm
        .until("run 5 tasks", |s| running(s, "web").len() == 5)
        .await;
    let mut before = BTreeMap::new();
    for t in running(&state, "web") {
        before.insert(t.meta.id.clone(), swarm.pid(t).await);
    }
    swarm.cluster.control().scale("web", 2).await.unwrap();
    let state = swarm
        .until("scale down to 2", |s| {
            running(s, "web").len() == 2
                && s.tasks()
                    .filter(|t| t.status.state == TaskState::Shutdown)
                    .count()
                    == 3
        })
        .await;
    let kept: Vec<Id> = running(&state, "web")
        .iter()
        .map(|t| t.meta.id.clone())
        .collect();
    let stopped: Vec<u32> = before
        .iter()
        .filter(|(id, _)| !kept.contains(id))
        .map(|(_, p)| *p)
        .collect();
    assert_eq!(stopped.len(), 3);
    eventually_dead(&stopped).await;
    for id in &kept {
        assert!(alive(before[id]), "a kept task must keep its process");
    }
    // The two kept tasks are on different nodes: the most loaded lost most.
    assert_eq!(per_node(&running(&state, "web")).len(), 2);
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_node_moves_its_tasks_away() {
    let swarm = Swarm::new(3).await;
    swarm
        .cluster
        .control()
        .create_service(sleeper("web", 6))
        .await
        .unwrap();
    let state = swarm
        .until("run 6 tasks", |s| running(s, "web").len() == 6)
        .await;
    let drained = swarm.node("worker-1").await;
    let old_pids = swarm.pids_on(&state, "web", &drained).await;
    assert_eq!(old_pids.len(), 2);
    swarm
        .cluster
        .control()
        .update_node("worker-1", |n| n.availability = Availability::Drain)
        .await
        .unwrap();
    let d = drained.clone();
    let state = swarm
        .until("move tasks off the drained node", |s| {
            let r = running(s, "web");
            r.len() == 6 && r.iter().all(|t| t.node_id.as_ref() != Some(&d))
        })
        .await;
    eventually_dead(&old_pids).await;
    assert!(
        state
            .tasks_on_node(&drained)
            .all(|t| t.desired_state == TaskState::Shutdown)
    );
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_worker_s_tasks_are_replaced_and_stopped_when_it_returns() {
    let mut swarm = Swarm::new(3).await;
    swarm
        .cluster
        .control()
        .create_service(sleeper("web", 6))
        .await
        .unwrap();
    let state = swarm
        .until("run 6 tasks", |s| running(s, "web").len() == 6)
        .await;
    let lost = swarm.node("worker-2").await;
    let orphans = swarm.pids_on(&state, "web", &lost).await;
    swarm.cluster.stop_worker(&lost).await;
    let l = lost.clone();
    swarm
        .until("mark the worker down and replace its tasks", |s| {
            let r = running(s, "web");
            s.node(&l)
                .is_some_and(|n| n.status.state == NodeState::Down)
                && r.len() == 6
                && r.iter().all(|t| t.node_id.as_ref() != Some(&l))
        })
        .await;
    assert!(
        orphans.iter().all(|p| alive(*p)),
        "an unreachable worker's processes keep running"
    );
    // The worker comes back: it stops the tasks that are no longer its own.
    swarm.cluster.restart_worker(&lost);
    let l = lost.clone();
    swarm
        .until("see the worker ready again", |s| {
            s.node(&l)
                .is_some_and(|n| n.status.state == NodeState::Ready)
        })
        .await;
    eventually_dead(&orphans).await;
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_place_only_on_labelled_nodes() {
    let swarm = Swarm::new(3).await;
    let web = swarm.node("worker-2").await;
    swarm
        .cluster
        .control()
        .update_node("worker-2", |n| {
            n.labels.insert("type".into(), "web".into());
        })
        .await
        .unwrap();
    let mut spec = sleeper("front", 4);
    spec.task.placement.constraints = vec!["node.labels.type==web".into()];
    swarm.cluster.control().create_service(spec).await.unwrap();
    let state = swarm
        .until("run 4 tasks", |s| running(s, "front").len() == 4)
        .await;
    assert!(
        running(&state, "front")
            .iter()
            .all(|t| t.node_id.as_ref() == Some(&web))
    );

    let mut spec = sleeper("db", 1);
    spec.task.placement.constraints = vec!["node.labels.type==db".into()];
    swarm.cluster.control().create_service(spec).await.unwrap();
    let state = swarm
        .until("explain why db cannot be placed", |s| {
            s.tasks()
                .any(|t| &*t.service_name == "db" && t.status.err.is_some())
        })
        .await;
    let t = state.tasks().find(|t| &*t.service_name == "db").unwrap();
    assert_eq!(t.status.state, TaskState::Pending);
    assert_eq!(
        t.status.err.as_deref(),
        Some("no suitable node (constraint node.labels.type==db not satisfied on 3 nodes)")
    );
    // Retried when nodes change: label a node and the task lands there.
    swarm
        .cluster
        .control()
        .update_node("worker-3", |n| {
            n.labels.insert("type".into(), "db".into());
        })
        .await
        .unwrap();
    let db = swarm.node("worker-3").await;
    let state = swarm
        .until("place db once a node fits", |s| running(s, "db").len() == 1)
        .await;
    assert_eq!(running(&state, "db")[0].node_id.as_ref(), Some(&db));
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spread_balances_the_zones() {
    let swarm = Swarm::new(4).await;
    for (host, zone) in [
        ("worker-1", "a"),
        ("worker-2", "b"),
        ("worker-3", "b"),
        ("worker-4", "b"),
    ] {
        swarm
            .cluster
            .control()
            .update_node(host, |n| {
                n.labels.insert("zone".into(), zone.into());
            })
            .await
            .unwrap();
    }
    let zone_a = swarm.node("worker-1").await;
    let mut spec = sleeper("web", 6);
    spec.task.placement.preferences = vec![PlacementPreference::Spread {
        descriptor: "node.labels.zone".into(),
    }];
    swarm.cluster.control().create_service(spec).await.unwrap();
    let state = swarm
        .until("run 6 tasks", |s| running(s, "web").len() == 6)
        .await;
    let in_a = running(&state, "web")
        .iter()
        .filter(|t| t.node_id.as_ref() == Some(&zone_a))
        .count();
    assert_eq!(
        in_a, 3,
        "half the tasks go to zone a, although it has 1 node of 4"
    );
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_service_follows_nodes_joining_and_leaving() {
    let mut swarm = Swarm::new(2).await;
    let mut spec = ServiceSpec::global("agent", vec!["sleep".into(), "3600".into()]);
    spec.task.stop_grace_period = Duration::from_secs(2);
    swarm.cluster.control().create_service(spec).await.unwrap();
    swarm
        .until("run one task per node", |s| running(s, "agent").len() == 2)
        .await;

    let joined = add_process_worker(&mut swarm.cluster, "worker-3", &swarm.dir)
        .await
        .unwrap();
    let j = joined.clone();
    let state = swarm
        .until("run a task on the new node", |s| {
            running(s, "agent")
                .iter()
                .any(|t| t.node_id.as_ref() == Some(&j))
        })
        .await;
    assert_eq!(running(&state, "agent").len(), 3);
    let mut spread: Vec<usize> = per_node(&running(&state, "agent")).into_values().collect();
    spread.sort_unstable();
    assert_eq!(spread, [1, 1, 1], "exactly one task per node");

    let leaving = swarm.node("worker-1").await;
    let pid = {
        let t = running(&state, "agent")
            .into_iter()
            .find(|t| t.node_id.as_ref() == Some(&leaving))
            .unwrap()
            .clone();
        swarm.pid(&t).await
    };
    swarm.cluster.remove_worker(&leaving).await.unwrap();
    let l = leaving.clone();
    let state = swarm
        .until("drop the task of the node that left", |s| {
            s.node(&l).is_none()
                && running(s, "agent").len() == 2
                && s.tasks_on_node(&l).next().is_none()
        })
        .await;
    assert!(!alive(pid));
    let spread: Vec<usize> = per_node(&running(&state, "agent")).into_values().collect();
    assert_eq!(spread, [1, 1], "one task on each remaining node");
    // Draining a node removes its task too; making it active brings one back.
    swarm
        .cluster
        .control()
        .update_node("worker-2", |n| n.availability = Availability::Drain)
        .await
        .unwrap();
    swarm
        .until("drop the drained node's task", |s| {
            running(s, "agent").len() == 1
        })
        .await;
    swarm
        .cluster
        .control()
        .update_node("worker-2", |n| n.availability = Availability::Active)
        .await
        .unwrap();
    swarm
        .until("run a task on the node again", |s| {
            running(s, "agent").len() == 2
        })
        .await;
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_replicas_per_node_is_honoured() {
    let swarm = Swarm::new(3).await;
    let mut spec = sleeper("web", 5);
    spec.task.placement.max_replicas_per_node = 1;
    swarm.cluster.control().create_service(spec).await.unwrap();
    let state = swarm
        .until("run 3 and explain 2", |s| {
            running(s, "web").len() == 3
                && s.tasks()
                    .filter(|t| t.status.state == TaskState::Pending && t.status.err.is_some())
                    .count()
                    == 2
        })
        .await;
    let spread: Vec<usize> = per_node(&running(&state, "web")).into_values().collect();
    assert_eq!(spread, [1, 1, 1]);
    let pending = state
        .tasks()
        .find(|t| t.status.state == TaskState::Pending)
        .unwrap();
    assert_eq!(
        pending.status.err.as_deref(),
        Some("no suitable node (max replicas per node (1) reached on 3 nodes)")
    );
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_with_max_attempts_2_stops_after_2_restarts() {
    let swarm = Swarm::new(1).await;
    let mut spec =
        ServiceSpec::replicated("flaky", 1, vec!["sh".into(), "-c".into(), "exit 3".into()]);
    spec.task.restart.condition = RestartCondition::OnFailure;
    spec.task.restart.max_attempts = 2;
    spec.task.restart.delay = Duration::from_millis(50);
    swarm.cluster.control().create_service(spec).await.unwrap();
    let state = swarm
        .until("fail three times", |s| {
            s.tasks()
                .filter(|t| t.status.state == TaskState::Failed)
                .count()
                == 3
        })
        .await;
    assert!(state.tasks().all(|t| t.status.exit_code == Some(3)));
    // No fourth attempt comes, however long we wait for one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let state = swarm.cluster.store().state().await.unwrap();
    assert_eq!(
        state.task_count(),
        3,
        "the original run and 2 restarts, no more"
    );
    let last = state.tasks().max_by_key(|t| t.meta.created_at).unwrap();
    assert_eq!(
        last.desired_state,
        TaskState::Running,
        "the last failure keeps its slot"
    );
    assert_eq!(last.restarts.len(), 2);
    swarm.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let swarm = Swarm::new(1).await;
    swarm
        .cluster
        .control()
        .create_service(sleeper("web", 1))
        .await
        .unwrap();
    swarm
        .until("run 1 task", |s| running(s, "web").len() == 1)
        .await;
    let before = swarm.cluster.store().state().await.unwrap().index();
    let control = swarm.cluster.control();

    let mut bad = sleeper("web2", 1);
    bad.task.placement.constraints = vec!["node.labels.type=web".into()];
    let e = control.create_service(bad).await.unwrap_err().to_string();
    assert!(e.contains("expected == or !="), "{e}");
    let e = control
        .create_service(sleeper("_underscore_first", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("invalid name \"_underscore_first\""), "{e}");
    let e = control
        .create_service(sleeper("web", 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("service web already exists"), "{e}");
    let mut bad = sleeper("web3", 1);
    bad.task.secrets = vec![swarm_core::model::FileReference {
        name: "nope".into(),
        target: "nope".into(),
        mode: 0o400,
        uid: 0,
        gid: 0,
    }];
    let e = control.create_service(bad).await.unwrap_err().to_string();
    assert!(e.contains("secret nope not found"), "{e}");
    let e = control
        .update_service("web", |s| {
            s.endpoint.ports.push("8080:70000".parse()?);
            Ok(())
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid target port 70000"), "{e}");
    let e = control.scale("nosuch", 3).await.unwrap_err().to_string();
    assert_eq!(e, "service nosuch not found");
    let e = control
        .remove_node("worker-1", false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not down and can't be removed"), "{e}");

    let after = swarm.cluster.store().state().await.unwrap();
    assert_eq!(after.index(), before, "refused requests write nothing");
    assert_eq!(
        running(&after, "web").len(),
        1,
        "the running task is undisturbed"
    );
    swarm.stop().await;
}
