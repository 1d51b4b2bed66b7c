//! The raft member's figures, through the `metrics` facade (recorded only
//! where the app installed a recorder), under the names of
//! `swarm_core::metrics`:
//!
//! - `swarm_raft_commit_duration_seconds`: histogram of the time from a
//!   write's proposal on the leader to its commit;
//! - `swarm_raft_term`, `swarm_raft_applied_index`,
//!   `swarm_raft_last_log_index`: gauges;
//! - `swarm_raft_is_leader`: 1 on the leader, else 0;
//! - `swarm_raft_leader_changes_total`: how often this member saw a new
//!   leader.

use std::time::Duration;

use crate::types::{Member, NodeId};

use swarm_core::metrics::{
    RAFT_APPLIED_INDEX as APPLIED_INDEX, RAFT_COMMIT_DURATION as COMMIT_DURATION,
    RAFT_IS_LEADER as IS_LEADER, RAFT_LAST_LOG_INDEX as LAST_LOG_INDEX,
    RAFT_LEADER_CHANGES as LEADER_CHANGES, RAFT_TERM as TERM,
};

/// A write committed `took` after it was proposed.
pub(crate) fn committed(took: Duration) {
    metrics::histogram!(COMMIT_DURATION).record(took.as_secs_f64());
}

/// Follows the member's metrics until it shuts down.
#[allow(clippy::cast_precision_loss)] // indexes past 2^53 are centuries away
pub(crate) async fn follow(
    mut watch: tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, Member>>,
    me: NodeId,
) {
    let mut leader = None;
    loop {
        {
            let m = watch.borrow_and_update();
            metrics::gauge!(TERM).set(m.current_term as f64);
            let applied = m.last_applied.map_or(0, |l| l.index);
            metrics::gauge!(APPLIED_INDEX).set(applied as f64);
            metrics::gauge!(LAST_LOG_INDEX).set(m.last_log_index.unwrap_or(0) as f64);
            let leads = m.current_leader == Some(me) && m.state == openraft::ServerState::Leader;
            metrics::gauge!(IS_LEADER).set(if leads { 1.0 } else { 0.0 });
            if m.current_leader.is_some() && m.current_leader != leader {
                metrics::counter!(LEADER_CHANGES).increment(1);
            }
            if m.current_leader.is_some() {
                leader = m.current_leader;
            }
        }
        if watch.changed().await.is_err() {
            // The member stopped: it leads nothing any more.
            metrics::gauge!(IS_LEADER).set(0.0);
            return;
        }
    }
}
