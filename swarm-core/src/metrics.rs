//! What the manager's loops count and time, through the [`metrics`]
//! facade: nothing is recorded until the app installs a recorder (such as
//! swarm-metrics' Prometheus one), and then at the cost of an atomic add.
//!
//! Names follow Prometheus's conventions (a `swarm_` prefix, base units,
//! `_total` for counters); each is a constant here, so that a dashboard
//! or test can name them without typos:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | [`SCHEDULER_DECISIONS`] | counter | `decision`: `assign`, `unplaceable` |
//! | [`SCHEDULER_DURATION`] | histogram | |
//! | [`LOOP_RUNS`] | counter | `loop` |
//! | [`LOOP_DURATION`] | histogram | `loop` |
//! | [`DISPATCHER_SESSIONS`] | gauge | |
//! | [`HEARTBEATS`] | counter | |
//! | [`HEARTBEATS_MISSED`] | counter | |
//! | [`TASK_STATE_CHANGES`] | counter | `state`: as a worker reported it |
//! | [`RAFT_COMMIT_DURATION`] | histogram | |
//! | [`RAFT_TERM`], [`RAFT_APPLIED_INDEX`], [`RAFT_LAST_LOG_INDEX`], [`RAFT_IS_LEADER`] | gauge | |
//! | [`RAFT_LEADER_CHANGES`] | counter | |
//!
//! (A replicated store records the `RAFT_` ones: swarm-raft does.)
//!
//! ```
//! // With no recorder installed, recording is a no-op.
//! swarm_core::metrics::heartbeat();
//! assert_eq!(swarm_core::metrics::HEARTBEATS, "swarm_dispatcher_heartbeats_total");
//! ```

use std::time::Duration;

use crate::model::TaskState;
use crate::sched::Decision;

/// Scheduling decisions made, by `decision`.
pub const SCHEDULER_DECISIONS: &str = "swarm_scheduler_decisions_total";
/// How long the scheduler took to place one batch of tasks.
pub const SCHEDULER_DURATION: &str = "swarm_scheduler_duration_seconds";
/// Control-loop runs, by `loop` (its `NAME`).
pub const LOOP_RUNS: &str = "swarm_control_loop_runs_total";
/// How long each control-loop run took, by `loop`.
pub const LOOP_DURATION: &str = "swarm_control_loop_duration_seconds";
/// Workers' assignment sessions open on this manager.
pub const DISPATCHER_SESSIONS: &str = "swarm_dispatcher_sessions";
/// Heartbeats received.
pub const HEARTBEATS: &str = "swarm_dispatcher_heartbeats_total";
/// Nodes marked down for missing their heartbeats.
pub const HEARTBEATS_MISSED: &str = "swarm_dispatcher_missed_heartbeats_total";
/// Task states the workers reported, by `state`.
pub const TASK_STATE_CHANGES: &str = "swarm_task_state_changes_total";

/// Time from a write's proposal on the raft leader to its commit.
pub const RAFT_COMMIT_DURATION: &str = "swarm_raft_commit_duration_seconds";
/// The raft member's current term.
pub const RAFT_TERM: &str = "swarm_raft_term";
/// The last raft log index applied to the store.
pub const RAFT_APPLIED_INDEX: &str = "swarm_raft_applied_index";
/// The last raft log index the member holds.
pub const RAFT_LAST_LOG_INDEX: &str = "swarm_raft_last_log_index";
/// 1 while the member leads.
pub const RAFT_IS_LEADER: &str = "swarm_raft_is_leader";
/// New raft leaders the member saw.
pub const RAFT_LEADER_CHANGES: &str = "swarm_raft_leader_changes_total";

/// One control-loop run of `name` that took `took`.
pub fn loop_ran(name: &'static str, took: Duration) {
    metrics::counter!(LOOP_RUNS, "loop" => name).increment(1);
    metrics::histogram!(LOOP_DURATION, "loop" => name).record(took.as_secs_f64());
}

/// A scheduling pass: its decisions, and the scheduler's time.
pub fn scheduled<'a>(decisions: impl IntoIterator<Item = &'a Decision>, took: Duration) {
    let (mut assigned, mut unplaceable) = (0, 0);
    for d in decisions {
        match d {
            Decision::Assign { .. } => assigned += 1,
            Decision::Unplaceable { .. } => unplaceable += 1,
        }
    }
    if assigned + unplaceable == 0 {
        return;
    }
    metrics::counter!(SCHEDULER_DECISIONS, "decision" => "assign").increment(assigned);
    metrics::counter!(SCHEDULER_DECISIONS, "decision" => "unplaceable").increment(unplaceable);
    metrics::histogram!(SCHEDULER_DURATION).record(took.as_secs_f64());
}

/// A heartbeat came.
pub fn heartbeat() {
    metrics::counter!(HEARTBEATS).increment(1);
}

/// A node missed its heartbeats.
pub fn heartbeats_missed() {
    metrics::counter!(HEARTBEATS_MISSED).increment(1);
}

/// The states of tasks a worker's report moved.
pub fn task_states(states: &[TaskState]) {
    for s in states {
        metrics::counter!(TASK_STATE_CHANGES, "state" => s.as_str()).increment(1);
    }
}

/// An open assignment session: counted while it lives.
#[derive(Debug)]
pub struct Session(());

impl Session {
    /// Counts a session open.
    #[must_use]
    pub fn open() -> Self {
        metrics::gauge!(DISPATCHER_SESSIONS).increment(1.0);
        Self(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        metrics::gauge!(DISPATCHER_SESSIONS).decrement(1.0);
    }
}
