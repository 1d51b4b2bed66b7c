//! Rollouts, simulated: the planner runs against a pretend cluster in
//! which workers start tasks when told and time moves by steps.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::go_duration;
use crate::Id;
use crate::manager::orchestrator::{Action, global, replicated};
use crate::model::{
    Availability, FailureAction, Meta, Node, NodeDescription, NodeSpec, NodeState, NodeStatus,
    Service, ServiceMode, ServiceSpec, Task, TaskState, UpdateOrder, UpdateState, UpdateStatus,
};

/// What the pretend workers do with a new task of a given image.
#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    /// Runs (healthy) one step after it is made.
    Runs,
    /// Fails one step after it is made.
    Fails,
    /// Stays pending (no node fits).
    Pends,
}

struct Sim {
    service: Service,
    tasks: Vec<Arc<Task>>,
    nodes: HashMap<Id, Arc<Node>>,
    now: SystemTime,
    outcome: HashMap<String, Outcome>,
    /// The fewest tasks seen running and wanted running, and the most.
    min_running: usize,
    max_running: usize,
}

fn ready_nodes(ids: &[&str]) -> HashMap<Id, Arc<Node>> {
    ids.iter()
        .map(|id| {
            let n = Node {
                meta: Meta::new((*id).into()),
                spec: NodeSpec {
                    availability: Availability::Active,
                    ..Default::default()
                },
                description: NodeDescription::default(),
                status: NodeStatus {
                    state: NodeState::Ready,
                    ..Default::default()
                },
            };
            (Id::from(*id), Arc::new(n))
        })
        .collect()
}

impl Sim {
    fn new(replicas: u64) -> Self {
        let mut spec = ServiceSpec::replicated("web", replicas, vec!["v1".into()]);
        spec.task.restart.delay = Duration::ZERO;
        spec.update.monitor = Duration::from_secs(2);
        let mut service = Service::new(spec);
        service.meta.id = "svc".into();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut sim = Self {
            service,
            tasks: Vec::new(),
            nodes: ready_nodes(&["a", "b", "c"]),
            now: start,
            outcome: HashMap::from([
                ("v1".into(), Outcome::Runs),
                ("v2".into(), Outcome::Runs),
                ("bad".into(), Outcome::Fails),
                ("stuck".into(), Outcome::Pends),
            ]),
            min_running: usize::MAX,
            max_running: 0,
        };
        sim.settle(10);
        sim.min_running = usize::MAX;
        sim.max_running = 0;
        sim
    }

    fn global() -> Self {
        let mut sim = Self::new(0);
        sim.service.spec.mode = ServiceMode::Global;
        sim.settle(10);
        sim.min_running = usize::MAX;
        sim.max_running = 0;
        sim
    }

    /// What `Control::update_service` does, without the store.
    fn update(&mut self, f: impl FnOnce(&mut ServiceSpec)) {
        let mut spec = self.service.spec.clone();
        f(&mut spec);
        let canary = spec.update.canary;
        self.service.push_spec(spec);
        let mut status = UpdateStatus::started(UpdateState::Updating, "update in progress");
        status.started_at = self.now;
        status.awaiting_promotion = canary > 0;
        self.service.update_status = Some(status);
    }

    /// What `Control::rollback_service` does.
    fn rollback(&mut self) {
        let previous = self.service.previous_spec().unwrap().clone();
        self.service.push_spec(previous);
        let mut status =
            UpdateStatus::started(UpdateState::RollbackStarted, "manually requested rollback");
        status.started_at = self.now;
        self.service.update_status = Some(status);
    }

    fn image(t: &Task) -> &str {
        &t.spec.image
    }

    fn running(&self) -> Vec<&Arc<Task>> {
        self.tasks
            .iter()
            .filter(|t| {
                t.status.state == TaskState::Running && t.desired_state == TaskState::Running
            })
            .collect()
    }

    fn running_images(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .running()
            .iter()
            .map(|t| Self::image(t).to_owned())
            .collect();
        v.sort();
        v
    }

    fn status(&self) -> Option<UpdateState> {
        self.service.update_status.as_ref().map(|s| s.state)
    }

    fn message(&self) -> String {
        self.service
            .update_status
            .as_ref()
            .map(|s| s.message.clone())
            .unwrap_or_default()
    }

    /// One planning run, its actions applied; returns them.
    fn plan(&mut self) -> Vec<Action> {
        let p = if matches!(self.service.spec.mode, ServiceMode::Global) {
            global::plan(&self.service, &self.tasks, &self.nodes, self.now)
        } else {
            replicated::plan(&self.service, &self.tasks, &self.nodes, &|_| 0, self.now)
        };
        if let Some(s) = p.service {
            self.service = s;
        }
        for a in &p.actions {
            match a {
                Action::Create(t) => {
                    let mut t = (**t).clone();
                    t.meta.created_at = self.now;
                    t.status.state = TaskState::Pending;
                    self.tasks.push(Arc::new(t));
                }
                Action::Shutdown { task, .. } => {
                    let t = self.tasks.iter_mut().find(|t| &t.meta.id == task).unwrap();
                    Arc::make_mut(t).desired_state = TaskState::Shutdown;
                }
            }
        }
        p.actions
    }

    /// The workers act: stop what is to stop, start (or fail) what is
    /// new, as their image says.
    fn work(&mut self) {
        let now = self.now;
        let nodes: Vec<Id> = {
            let mut v: Vec<Id> = self.nodes.keys().cloned().collect();
            v.sort();
            v
        };
        let outcome = self.outcome.clone();
        for (i, t) in self.tasks.iter_mut().enumerate() {
            if t.status.state.is_terminal() {
                continue;
            }
            let t = Arc::make_mut(t);
            if t.desired_state > TaskState::Running {
                t.status.state = TaskState::Shutdown;
                t.status.timestamp = now;
                continue;
            }
            if t.status.state == TaskState::Running {
                continue;
            }
            match outcome[t.spec.image.as_str()] {
                Outcome::Pends => {}
                Outcome::Runs => {
                    t.node_id
                        .get_or_insert_with(|| nodes[i % nodes.len()].clone());
                    t.status.state = TaskState::Running;
                    t.status.timestamp = now;
                    t.started_at = Some(now);
                }
                Outcome::Fails => {
                    t.node_id
                        .get_or_insert_with(|| nodes[i % nodes.len()].clone());
                    t.status.state = TaskState::Failed;
                    t.status.timestamp = now;
                    t.status.err = Some("task: non-zero exit (1)".into());
                }
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn count(&mut self) {
        let n = self.running().len();
        self.min_running = self.min_running.min(n);
        self.max_running = self.max_running.max(n);
    }

    /// Plans, works and moves time on by 250 ms, `steps` times, noting the
    /// running counts after every plan.
    fn settle(&mut self, steps: usize) {
        for _ in 0..steps {
            self.plan();
            self.count();
            self.work();
            self.count();
            self.advance(Duration::from_millis(250));
        }
    }
}

#[test]
fn a_rolling_update_goes_two_at_a_time_and_completes_after_the_monitor_period() {
    let mut sim = Sim::new(6);
    assert_eq!(sim.running_images(), vec!["v1"; 6]);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.parallelism = 2;
        s.update.delay = Duration::from_secs(1);
    });
    // The first batch: two slots, no more.
    let first = sim.plan();
    let made = first
        .iter()
        .filter(|a| matches!(a, Action::Create(_)))
        .count();
    let stopped = first
        .iter()
        .filter(|a| matches!(a, Action::Shutdown { .. }))
        .count();
    assert_eq!((made, stopped), (2, 2), "parallelism 2: {first:?}");
    sim.work();
    sim.advance(Duration::from_millis(250));
    // Within the delay nothing more starts.
    assert!(sim.plan().is_empty(), "the delay holds the next batch");
    sim.settle(40);
    assert_eq!(sim.running_images(), vec!["v2"; 6]);
    assert!(
        sim.min_running >= 4,
        "never below 4 running: {}",
        sim.min_running
    );
    assert_eq!(
        sim.status(),
        Some(UpdateState::Completed),
        "{}",
        sim.message()
    );
    assert_eq!(sim.message(), "update completed");
}

#[test]
fn the_delay_spaces_the_batches() {
    let mut sim = Sim::new(6);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.parallelism = 2;
        s.update.delay = Duration::from_secs(1);
    });
    let start = sim.now;
    let mut made_at = Vec::new();
    for _ in 0..40 {
        let n = sim
            .plan()
            .iter()
            .filter(|a| matches!(a, Action::Create(_)))
            .count();
        made_at.extend(std::iter::repeat_n(
            sim.now.duration_since(start).unwrap(),
            n,
        ));
        sim.work();
        sim.advance(Duration::from_millis(250));
    }
    let ms: Vec<u128> = made_at.iter().map(Duration::as_millis).collect();
    // Batch 1 at 0; its tasks run at 0 (the workers act after the plan),
    // so the next batch waits the 1 s delay, and so on.
    assert_eq!(ms, vec![0, 0, 1000, 1000, 2000, 2000]);
}

#[test]
fn parallelism_zero_updates_every_slot_at_once() {
    let mut sim = Sim::new(5);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.parallelism = 0;
    });
    let made = sim
        .plan()
        .iter()
        .filter(|a| matches!(a, Action::Create(_)))
        .count();
    assert_eq!(made, 5);
}

#[test]
fn start_first_never_drops_below_the_replica_count() {
    let mut sim = Sim::new(6);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.parallelism = 2;
        s.update.order = UpdateOrder::StartFirst;
    });
    sim.settle(40);
    assert_eq!(sim.running_images(), vec!["v2"; 6]);
    assert_eq!(sim.min_running, 6, "start-first keeps every slot serving");
    assert_eq!(
        sim.max_running, 8,
        "two new tasks beside the old ones at most"
    );
    assert_eq!(sim.status(), Some(UpdateState::Completed));
}

#[test]
fn a_failing_update_pauses_with_the_failed_task_s_reason() {
    let mut sim = Sim::new(6);
    sim.update(|s| {
        s.task.image = "bad".into();
        s.update.parallelism = 2;
    });
    sim.settle(20);
    assert_eq!(sim.status(), Some(UpdateState::Paused));
    let msg = sim.message();
    assert!(
        msg.starts_with("update paused due to failure or early termination of task web.")
            && msg.ends_with("task: non-zero exit (1)"),
        "{msg}"
    );
    // Only the first batch was touched: 4 old tasks still serve.
    assert_eq!(sim.running_images(), vec!["v1"; 4]);
}

#[test]
fn a_failing_update_with_rollback_goes_back_to_the_old_spec_on_its_own() {
    let mut sim = Sim::new(6);
    sim.update(|s| {
        s.task.image = "bad".into();
        s.update.parallelism = 2;
        s.update.failure_action = FailureAction::Rollback;
    });
    sim.settle(40);
    assert_eq!(sim.service.spec.task.image, "v1", "the old spec is back");
    assert_eq!(sim.running_images(), vec!["v1"; 6]);
    assert_eq!(
        sim.status(),
        Some(UpdateState::RollbackCompleted),
        "{}",
        sim.message()
    );
    assert!(sim.min_running >= 4);
    // The history shows both steps: v1 (1), bad (2), and v1 again (3).
    assert_eq!(sim.service.revision(), 3);
    assert_eq!(sim.service.history.last().unwrap().spec.task.image, "bad");
}

#[test]
fn failures_within_the_ratio_do_not_stop_the_update() {
    let mut sim = Sim::new(4);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.parallelism = 1;
        s.update.max_failure_ratio = 0.5;
    });
    // The first new task fails once; its restart runs.
    sim.plan();
    let id = sim
        .tasks
        .iter()
        .find(|t| t.spec.image == "v2")
        .unwrap()
        .meta
        .id
        .clone();
    let t = sim.tasks.iter_mut().find(|t| t.meta.id == id).unwrap();
    let t = Arc::make_mut(t);
    t.status.state = TaskState::Failed;
    t.status.timestamp = sim.now;
    sim.work();
    sim.settle(60);
    assert_eq!(sim.running_images(), vec!["v2"; 4]);
    assert_eq!(
        sim.status(),
        Some(UpdateState::Completed),
        "{}",
        sim.message()
    );
}

#[test]
fn an_update_whose_tasks_never_start_fails_at_the_start_deadline() {
    let mut sim = Sim::new(3);
    sim.update(|s| {
        s.task.image = "stuck".into();
        s.update.start_deadline = Duration::from_secs(3);
    });
    let before = sim.now;
    sim.settle(11);
    assert_eq!(
        sim.status(),
        Some(UpdateState::Updating),
        "not yet: {}",
        sim.message()
    );
    sim.settle(2);
    assert_eq!(sim.status(), Some(UpdateState::Paused));
    let msg = sim.message();
    assert!(
        msg.contains("not running 3s after it was made (still pending)"),
        "{msg}"
    );
    let paused = sim
        .service
        .update_status
        .as_ref()
        .unwrap()
        .completed_at
        .unwrap();
    assert!(paused.duration_since(before).unwrap() <= Duration::from_millis(3250));
    assert_eq!(
        sim.running_images(),
        vec!["v1"; 2],
        "one slot tried, two left"
    );
}

#[test]
fn an_update_without_progress_fails_at_the_progress_deadline() {
    let mut sim = Sim::new(3);
    sim.update(|s| {
        s.task.image = "stuck".into();
        s.update.start_deadline = Duration::ZERO;
        s.update.progress_deadline = Duration::from_secs(5);
    });
    sim.settle(19);
    assert_eq!(sim.status(), Some(UpdateState::Updating));
    sim.settle(2);
    assert_eq!(sim.status(), Some(UpdateState::Paused));
    let msg = sim.message();
    assert!(
        msg.contains("no task of the new spec became running in 5s: task web.")
            && msg.contains(" is pending"),
        "{msg}"
    );
}

#[test]
fn canaries_run_beside_the_old_tasks_until_promoted() {
    let mut sim = Sim::new(4);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.canary = 2;
    });
    sim.settle(40);
    assert_eq!(
        sim.running_images(),
        vec!["v1", "v1", "v1", "v1", "v2", "v2"]
    );
    assert_eq!(sim.status(), Some(UpdateState::Updating));
    assert!(
        sim.service
            .update_status
            .as_ref()
            .unwrap()
            .awaiting_promotion
    );
    // Promote: the rollout goes on, and the canaries' old tasks go.
    sim.service
        .update_status
        .as_mut()
        .unwrap()
        .awaiting_promotion = false;
    sim.settle(40);
    assert_eq!(sim.running_images(), vec!["v2"; 4]);
    assert_eq!(sim.status(), Some(UpdateState::Completed));
}

#[test]
fn canaries_promote_themselves_after_the_monitor_period_when_asked() {
    let mut sim = Sim::new(4);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.canary = 1;
        s.update.auto_promote = true;
    });
    sim.settle(4);
    assert!(
        sim.service
            .update_status
            .as_ref()
            .unwrap()
            .awaiting_promotion,
        "monitor is 2s"
    );
    sim.settle(40);
    assert_eq!(sim.running_images(), vec!["v2"; 4]);
    assert_eq!(sim.status(), Some(UpdateState::Completed));
}

#[test]
fn a_rollback_removes_the_canaries_and_touches_no_old_task() {
    let mut sim = Sim::new(4);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.canary = 2;
    });
    sim.settle(20);
    let old: Vec<Id> = sim
        .running()
        .iter()
        .filter(|t| t.spec.image == "v1")
        .map(|t| t.meta.id.clone())
        .collect();
    assert_eq!(old.len(), 4);
    sim.rollback();
    let actions = sim.plan();
    assert!(
        actions.iter().all(|a| matches!(a, Action::Shutdown { .. })),
        "{actions:?}"
    );
    assert_eq!(actions.len(), 2, "the two canaries go");
    sim.settle(20);
    let now: Vec<Id> = sim.running().iter().map(|t| t.meta.id.clone()).collect();
    assert_eq!(now, old, "the same old tasks serve");
    assert_eq!(sim.status(), Some(UpdateState::RollbackCompleted));
}

#[test]
fn a_start_first_rollback_keeps_the_healthy_old_tasks() {
    let mut sim = Sim::new(6);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.parallelism = 1;
        s.update.delay = Duration::from_secs(10);
        s.update.order = UpdateOrder::StartFirst;
        s.rollback.order = UpdateOrder::StartFirst;
        s.rollback.parallelism = 1;
    });
    sim.settle(4);
    let untouched: Vec<Id> = sim
        .running()
        .iter()
        .filter(|t| t.spec.image == "v1")
        .map(|t| t.meta.id.clone())
        .collect();
    assert_eq!(untouched.len(), 5, "one slot updated so far");
    sim.rollback();
    sim.settle(40);
    assert_eq!(sim.running_images(), vec!["v1"; 6]);
    let still: Vec<Id> = sim
        .running()
        .iter()
        .map(|t| t.meta.id.clone())
        .filter(|id| untouched.contains(id))
        .collect();
    assert_eq!(still, untouched, "the old tasks that never left stay");
    assert_eq!(sim.min_running, 6);
    assert_eq!(sim.status(), Some(UpdateState::RollbackCompleted));
}

#[test]
fn a_failing_rollback_pauses() {
    let mut sim = Sim::new(3);
    sim.update(|s| s.task.image = "v2".into());
    sim.settle(40);
    // v1 now fails (its program went away): rolling back to it pauses.
    sim.outcome.insert("v1".into(), Outcome::Fails);
    sim.rollback();
    sim.settle(10);
    assert_eq!(sim.status(), Some(UpdateState::RollbackPaused));
    assert!(
        sim.message().starts_with("rollback paused due to failure"),
        "{}",
        sim.message()
    );
}

#[test]
fn a_scale_change_alone_rolls_nothing() {
    let mut sim = Sim::new(3);
    let mut spec = sim.service.spec.clone();
    spec.mode = ServiceMode::Replicated { replicas: 5 };
    sim.service.push_spec(spec);
    let actions = sim.plan();
    assert_eq!(actions.len(), 2);
    assert!(actions.iter().all(|a| matches!(a, Action::Create(_))));
    assert_eq!(sim.status(), None);
}

#[test]
fn force_replaces_every_task_with_an_unchanged_spec() {
    let mut sim = Sim::new(3);
    sim.update(|s| s.task.force_update += 1);
    sim.settle(40);
    assert_eq!(sim.running().len(), 3);
    assert!(sim.running().iter().all(|t| t.spec.force_update == 1));
    assert_eq!(sim.status(), Some(UpdateState::Completed));
}

#[test]
fn a_global_service_rolls_node_by_node() {
    let mut sim = Sim::global();
    assert_eq!(sim.running_images(), vec!["v1"; 3]);
    sim.update(|s| {
        s.task.image = "v2".into();
        s.update.parallelism = 1;
    });
    let first = sim.plan();
    assert_eq!(first.len(), 2, "one node at a time: {first:?}");
    sim.settle(40);
    assert_eq!(sim.running_images(), vec!["v2"; 3]);
    let mut nodes: Vec<Id> = sim
        .running()
        .iter()
        .filter_map(|t| t.node_id.clone())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec![Id::from("a"), Id::from("b"), Id::from("c")]);
    assert!(sim.min_running >= 2);
    assert_eq!(sim.status(), Some(UpdateState::Completed));
}

#[test]
fn durations_read_as_go_prints_them() {
    assert_eq!(go_duration(Duration::ZERO), "0s");
    assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
    assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    assert_eq!(go_duration(Duration::from_secs(3725)), "1h2m5s");
}

#[test]
fn continue_carries_on_past_the_progress_deadline() {
    let mut sim = Sim::new(2);
    sim.update(|s| {
        s.task.image = "stuck".into();
        s.update.start_deadline = Duration::ZERO;
        s.update.progress_deadline = Duration::from_secs(2);
        s.update.failure_action = FailureAction::Continue;
    });
    sim.settle(20);
    assert_eq!(
        sim.status(),
        Some(UpdateState::Updating),
        "{}",
        sim.message()
    );
}
