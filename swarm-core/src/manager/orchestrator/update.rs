//! Rollouts: how a service's tasks move to a new spec (an update) or back
//! to an old one (a rollback), a few slots at a time.
//!
//! Planning is pure and level-triggered, as the rest of the orchestrator:
//! every run reads the service (its spec, its [`UpdateStatus`]) and its
//! tasks, and decides what to do now and when to look again. Nothing about
//! a rollout lives outside the store, so a new leader carries on where the
//! old one stopped.
//!
//! A slot (a replica number, or a node for a global service) is *dirty*
//! when the task holding it does not run the service's current template
//! ([`Service::is_current`]). A slot is *in flight* while its new task has
//! not reached `running` (healthy, with a health check), or for the
//! update's `delay` after it did. A rollout starts dirty slots while fewer
//! than `parallelism` are in flight (all of them for 0):
//! - `stop-first` shuts the old task down and makes the new one at once;
//!   the old task leaves DNS and the load balancers before it is stopped.
//! - `start-first` makes the new task beside the old one, which keeps
//!   serving until the new one runs.
//!
//! Failures are the rollout's own tasks (made since it started) that
//! ended, failed or were rejected within the `monitor` period of their
//! start, and those that did not reach `running` within `start_deadline`.
//! Once more than `max_failure_ratio` of the slots failed, the failure
//! action applies: pause, continue, or roll back. An update in which no new
//! task became running for `progress_deadline` fails the same way, with the
//! reason: it never hangs at "0 out of N".
//!
//! Canaries (`canary: N`): the first N new tasks run beside old ones, which
//! keep serving, and the rollout waits for a promotion (or promotes itself
//! once the canaries ran for the monitor period, with `auto_promote`). A
//! rollback then puts the old spec back without touching the old tasks: in
//! a slot that holds a running task of the current spec, that task stays
//! and the others go (so a start-first rollback keeps the healthy old
//! tasks, moby#34111).
//!
//! A rollback rolls out with the `rollback` settings of the spec it
//! undoes, where `service update --rollback-*` put them beside the change
//! (SwarmKit reads the restored spec's).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Plan;
use crate::Id;
use crate::model::{
    FailureAction, Service, Task, TaskState, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus,
};

/// One slot as a rollout sees it.
#[derive(Debug, Clone)]
pub(crate) struct Slot<'a> {
    /// The task holding the slot: the one the slot keeps.
    pub held: &'a Arc<Task>,
    /// An older task that keeps serving beside `held` until it runs
    /// (start-first), or until the canaries are promoted.
    pub companion: Option<&'a Arc<Task>>,
}

/// One service's rollout, for one planning run.
pub(crate) struct Rollout<'a> {
    service: &'a Service,
    status: Option<&'a UpdateStatus>,
    config: UpdateConfig,
    now: SystemTime,
}

fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or_default()
}

/// Whether a task ended (or was rejected) on its own, as opposed to being
/// shut down.
fn ended_early(t: &Task) -> bool {
    matches!(
        t.status.state,
        TaskState::Complete | TaskState::Failed | TaskState::Rejected
    )
}

impl<'a> Rollout<'a> {
    pub(crate) fn of(service: &'a Service, now: SystemTime) -> Self {
        let status = service.update_status.as_ref();
        let config = if status.is_some_and(|s| s.state.is_rollback()) {
            // The rollback settings of the spec being undone: where
            // `service update --rollback-*` put them beside the change.
            // (SwarmKit reads the restored spec's.)
            service
                .history
                .last()
                .map_or(service.spec.rollback, |h| h.spec.rollback)
        } else {
            service.spec.update
        };
        Self {
            service,
            status,
            config,
            now,
        }
    }

    fn awaiting_promotion(&self) -> bool {
        self.status
            .is_some_and(|s| s.state == UpdateState::Updating && s.awaiting_promotion)
    }

    fn current(&self, t: &Task) -> bool {
        self.service.is_current(t)
    }

    /// Picks the task that holds a slot among its tasks wanted running
    /// (oldest first), and the ones that must go:
    /// - a running task of the current spec holds it, and the others go,
    ///   unless the canaries await promotion (the old task keeps serving);
    /// - else the newest task holds it, and an older running one stays
    ///   beside it while the newest is of the current spec and starting
    ///   (start-first, or a canary);
    /// - every other task goes.
    pub(crate) fn resolve(&self, mut tasks: Vec<&'a Arc<Task>>, plan: &mut Plan) -> Slot<'a> {
        tasks.sort_by(|a, b| (a.meta.created_at, &a.meta.id).cmp(&(b.meta.created_at, &b.meta.id)));
        let running = |t: &Task| t.status.state == TaskState::Running;
        let fresh_running = tasks.iter().rposition(|t| running(t) && self.current(t));
        let (held, companion) = match fresh_running {
            Some(i) => {
                let companion = self
                    .awaiting_promotion()
                    .then(|| {
                        tasks[..i]
                            .iter()
                            .rposition(|t| running(t) && !self.current(t))
                    })
                    .flatten();
                (i, companion)
            }
            None => {
                let last = tasks.len() - 1;
                let newest = tasks[last];
                let pair = self.current(newest)
                    && !newest.status.state.is_terminal()
                    && (self.config.order == UpdateOrder::StartFirst || self.awaiting_promotion());
                let companion = pair
                    .then(|| tasks[..last].iter().rposition(|t| running(t)))
                    .flatten();
                (last, companion)
            }
        };
        let held_task = tasks[held];
        for (i, t) in tasks.iter().enumerate() {
            if i != held && Some(i) != companion {
                plan.shutdown(t, "replaced by a newer task in its slot");
            }
        }
        Slot {
            held: held_task,
            companion: companion.map(|i| tasks[i]),
        }
    }

    /// Advances the rollout over `slots` (every slot the service keeps,
    /// after scaling and repairs): starts dirty slots, watches failures and
    /// deadlines, and records the status. `tasks` are all the service's
    /// tasks, ended ones included; `node_of` gives the node a slot's new
    /// task must go to (global services), or `None`.
    pub(crate) fn step(
        &self,
        slots: &[Slot<'a>],
        tasks: &[Arc<Task>],
        node_of: &dyn Fn(&Task) -> Option<Id>,
        plan: &mut Plan,
    ) {
        let dirty: Vec<&Slot<'a>> = slots.iter().filter(|s| !self.current(s.held)).collect();
        let status = match self.status {
            Some(s) if s.state.is_rolling() => s,
            Some(s) if matches!(s.state, UpdateState::Paused | UpdateState::RollbackPaused) => {
                return;
            }
            // No rollout running, yet tasks are out of date (the spec was
            // written around the control API): start one.
            _ => {
                if !dirty.is_empty() {
                    self.set_status(plan, |_| {
                        UpdateStatus::started(UpdateState::Updating, "update in progress")
                    });
                    plan.recheck(Duration::ZERO);
                }
                return;
            }
        };
        let ours = |t: &&Arc<Task>| self.current(t) && t.meta.created_at >= status.started_at;
        // Failures.
        let mut failed: Vec<(&Arc<Task>, String)> = Vec::new();
        for t in tasks.iter().filter(ours) {
            if ended_early(t)
                && t.started_at
                    .is_none_or(|s| elapsed(s, t.status.timestamp) < self.config.monitor)
            {
                let why = t
                    .status
                    .err
                    .clone()
                    .unwrap_or_else(|| format!("{} ({})", t.status.state, t.status.message));
                failed.push((t, why));
            } else if t.is_active()
                && t.status.state < TaskState::Running
                && !self.config.start_deadline.is_zero()
            {
                let age = elapsed(t.meta.created_at, self.now);
                if age >= self.config.start_deadline {
                    failed.push((
                        t,
                        format!(
                            "not running {} after it was made (still {}{})",
                            go_duration(self.config.start_deadline),
                            t.status.state,
                            t.status
                                .err
                                .as_deref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        ),
                    ));
                } else {
                    plan.recheck(self.config.start_deadline - age);
                }
            }
        }
        let total = slots.len().max(1);
        #[allow(clippy::cast_precision_loss)]
        let ratio = failed.len() as f64 / total as f64;
        if let Some((task, why)) = failed.first()
            && ratio > f64::from(self.config.max_failure_ratio)
            && self.config.failure_action != FailureAction::Continue
        {
            return self.fail(plan, &format!("task {}: {why}", task.name()));
        }

        // Progress.
        let last_progress = tasks
            .iter()
            .filter(ours)
            .filter_map(|t| t.started_at)
            .fold(status.started_at, SystemTime::max);
        let in_flight = |s: &Slot<'_>| {
            s.companion.is_some()
                || (self.current(s.held)
                    && (s.held.status.state != TaskState::Running
                        || s.held
                            .started_at
                            .is_some_and(|at| elapsed(at, self.now) < self.config.delay)))
        };
        let flying: Vec<&Slot<'a>> = slots.iter().filter(|s| in_flight(s)).collect();
        let waiting = self.awaiting_promotion();
        if !waiting
            && (!dirty.is_empty() || !flying.is_empty())
            && !self.config.progress_deadline.is_zero()
        {
            let idle = elapsed(last_progress, self.now);
            if idle >= self.config.progress_deadline {
                let stuck = flying
                    .iter()
                    .map(|s| s.held)
                    .find(|t| t.status.state != TaskState::Running)
                    .map(|t| {
                        format!(
                            ": task {} is {}{}",
                            t.name(),
                            t.status.state,
                            t.status
                                .err
                                .as_deref()
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                return self.fail(
                    plan,
                    &format!(
                        "no task of the new spec became running in {}{stuck}",
                        go_duration(self.config.progress_deadline)
                    ),
                );
            }
            plan.recheck(self.config.progress_deadline - idle);
        }
        for s in &flying {
            if let Some(at) = s.held.started_at {
                let age = elapsed(at, self.now);
                if age < self.config.delay {
                    plan.recheck(self.config.delay - age);
                }
            }
        }

        if waiting {
            return self.canaries(slots, &dirty, node_of, plan);
        }

        // Start dirty slots: those whose task is not running first.
        let room = if self.config.parallelism == 0 {
            usize::MAX
        } else {
            usize::try_from(self.config.parallelism)
                .unwrap_or(usize::MAX)
                .saturating_sub(flying.len())
        };
        let mut next = dirty.clone();
        next.sort_by_key(|s| (s.held.status.state == TaskState::Running, s.held.slot));
        for s in next.into_iter().take(room) {
            self.replace(s, self.config.order, node_of, plan);
        }
        if !dirty.is_empty() || !flying.is_empty() {
            return;
        }

        // Every slot runs the spec: done once the last new task ran for
        // the monitor period (a late failure still counts until then).
        let since_last = elapsed(last_progress, self.now);
        if since_last < self.config.monitor && last_progress > status.started_at {
            plan.recheck(self.config.monitor - since_last);
            return;
        }
        let (state, message) = if status.state.is_rollback() {
            (UpdateState::RollbackCompleted, "rollback completed")
        } else {
            (UpdateState::Completed, "update completed")
        };
        self.set_status(plan, |s| UpdateStatus {
            state,
            completed_at: Some(self.now),
            message: message.into(),
            awaiting_promotion: false,
            ..s.clone()
        });
    }

    /// The canary phase: start canaries until there are `canary` of them,
    /// then wait for the promotion, or promote once every canary ran for
    /// the monitor period (`auto_promote`).
    fn canaries(
        &self,
        slots: &[Slot<'a>],
        dirty: &[&Slot<'a>],
        node_of: &dyn Fn(&Task) -> Option<Id>,
        plan: &mut Plan,
    ) {
        let canaries: Vec<&Slot<'a>> = slots.iter().filter(|s| self.current(s.held)).collect();
        let wanted = usize::try_from(self.config.canary).unwrap_or(usize::MAX);
        let missing = wanted.saturating_sub(canaries.len());
        let mut next: Vec<&&Slot<'a>> = dirty.iter().collect();
        next.sort_by_key(|s| (s.held.status.state == TaskState::Running, s.held.slot));
        for s in next.into_iter().take(missing) {
            self.replace(s, UpdateOrder::StartFirst, node_of, plan);
        }
        if !self.config.auto_promote || missing > 0 && !dirty.is_empty() {
            return;
        }
        let mut ready_at = None;
        for s in &canaries {
            match s.held.started_at {
                Some(at) if s.held.status.state == TaskState::Running => {
                    ready_at = ready_at.max(Some(at + self.config.monitor));
                }
                _ => return,
            }
        }
        let Some(ready_at) = ready_at else { return };
        if let Ok(wait) = ready_at.duration_since(self.now)
            && !wait.is_zero()
        {
            plan.recheck(wait);
            return;
        }
        self.set_status(plan, |s| UpdateStatus {
            awaiting_promotion: false,
            message: format!(
                "canaries promoted: they ran healthy for {}",
                go_duration(self.config.monitor)
            ),
            ..s.clone()
        });
        plan.recheck(Duration::ZERO);
    }

    /// Starts one slot on the current spec.
    fn replace(
        &self,
        slot: &Slot<'a>,
        order: UpdateOrder,
        node_of: &dyn Fn(&Task) -> Option<Id>,
        plan: &mut Plan,
    ) {
        let old = slot.held;
        let keep_serving = order == UpdateOrder::StartFirst
            && old.status.state == TaskState::Running
            && slot.companion.is_none();
        if !keep_serving {
            plan.shutdown(old, "replaced by a task of the new spec");
            if let Some(c) = slot.companion {
                plan.shutdown(c, "replaced by a task of the new spec");
            }
        }
        plan.create(self.service, old.slot, node_of(old), Vec::new());
    }

    /// Applies the failure action to a rollout that failed for `why`.
    fn fail(&self, plan: &mut Plan, why: &str) {
        let rollback = self.status.is_some_and(|s| s.state.is_rollback());
        let action = match self.config.failure_action {
            FailureAction::Rollback if rollback => FailureAction::Pause,
            // Carry on, as asked: the failure shows in `service ps`.
            FailureAction::Continue => return,
            a => a,
        };
        if action == FailureAction::Rollback
            && let Some(previous) = self.service.previous_spec()
        {
            let mut service = plan.service.take().unwrap_or_else(|| self.service.clone());
            service.push_spec(previous.clone());
            service.update_status = Some(UpdateStatus::started(
                UpdateState::RollbackStarted,
                format!("update rolled back due to failure or early termination of {why}"),
            ));
            plan.service = Some(service);
            plan.spec_changed = true;
            plan.recheck(Duration::ZERO);
            return;
        }
        let (state, what) = if rollback {
            (UpdateState::RollbackPaused, "rollback")
        } else {
            (UpdateState::Paused, "update")
        };
        let no_previous = if action == FailureAction::Rollback {
            " (no previous spec to roll back to)"
        } else {
            ""
        };
        self.set_status(plan, |s| UpdateStatus {
            state,
            completed_at: Some(self.now),
            message: format!(
                "{what} paused due to failure or early termination of {why}{no_previous}"
            ),
            awaiting_promotion: false,
            ..s.clone()
        });
    }

    fn set_status(&self, plan: &mut Plan, f: impl FnOnce(&UpdateStatus) -> UpdateStatus) {
        let mut service = plan.service.take().unwrap_or_else(|| self.service.clone());
        let fallback = UpdateStatus::started(UpdateState::Updating, "");
        let next = f(service.update_status.as_ref().unwrap_or(&fallback));
        service.update_status = Some(next);
        plan.service = Some(service);
    }
}

/// A duration as Go prints it (`5m0s`, `1.5s`), as docker's messages do.
#[must_use]
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let frac = d.subsec_millis();
    let s = if frac == 0 {
        format!("{}s", secs % 60)
    } else {
        let t = format!("{}.{frac:03}", secs % 60);
        format!("{}s", t.trim_end_matches('0'))
    };
    match secs / 60 {
        0 => s,
        m if m < 60 => format!("{m}m{s}"),
        m => format!("{}h{}m{s}", m / 60, m % 60),
    }
}

#[cfg(test)]
mod tests;
