//! Settings of a raft member.

use std::path::PathBuf;
use std::time::Duration;

use crate::types::NodeId;

/// Settings of one member of the raft group. `RaftConfig::new` gives
/// defaults that suit managers on one LAN, even on a loaded 2-core machine.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// This member's id: unique in the cluster, never reused.
    pub id: NodeId,
    /// The address the other members reach this one at (`host:port`).
    pub addr: String,
    /// Where the log (`raft.redb`) and the snapshot (`snapshots/`) live.
    pub data_dir: PathBuf,
    /// How often the leader sends heartbeats. Default 80 ms.
    pub heartbeat_interval: Duration,
    /// A follower that hears nothing from a leader for a random time in
    /// this range starts an election. Default 250–500 ms: a lost leader is
    /// replaced within a second (openraft 0.9 usually needs two election
    /// rounds, as the other follower's leader lease runs out), and a busy
    /// machine (a heartbeat late by 150 ms) does not flap.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is taken after this many log entries; then the log
    /// before it is purged. Default 10,000.
    pub snapshot_threshold: u64,
    /// Entries kept in the log after a snapshot, so that a briefly lagging
    /// member catches up from the log rather than the snapshot. Default
    /// 1,000.
    pub logs_kept_after_snapshot: u64,
    /// How long a write (or membership change) keeps trying to reach a
    /// leader with a quorum before it fails with `Unavailable`. Default 5 s.
    pub write_timeout: Duration,
    /// How long adding a learner may take: it returns once the learner has
    /// caught up (possibly through a large snapshot). Default 60 s.
    pub membership_timeout: Duration,
    /// Snapshots are streamed in chunks of this many bytes. Default 1 MiB.
    pub snapshot_chunk_size: u64,
    /// Events of recent commits kept for watchers that start from an older
    /// index. Default 65,536.
    pub history_events: usize,
    /// Commits buffered per watcher before it counts as lagging. Default
    /// 4,096.
    pub watch_buffer: usize,
    /// Start a new single-member cluster from this member's data, keeping
    /// every object of its snapshot and log: the way out of a lost quorum
    /// (`docker swarm init --force-new-cluster`). Raft commits an entry
    /// once a majority has it, so recover from the most up-to-date
    /// surviving manager. Default false.
    pub force_new_cluster: bool,
    /// The unlock key of an autolocked member: its data key is sealed with
    /// it. Default none.
    pub unlock_key: Option<swarm_core::model::UnlockKey>,
}

impl RaftConfig {
    /// Defaults for member `id`, reached at `addr`, storing in `data_dir`.
    #[must_use]
    pub fn new(id: NodeId, addr: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            id,
            addr: addr.into(),
            data_dir: data_dir.into(),
            heartbeat_interval: Duration::from_millis(80),
            election_timeout: (Duration::from_millis(250), Duration::from_millis(500)),
            snapshot_threshold: 10_000,
            logs_kept_after_snapshot: 1_000,
            write_timeout: Duration::from_secs(5),
            membership_timeout: Duration::from_secs(60),
            snapshot_chunk_size: 1 << 20,
            history_events: 65_536,
            watch_buffer: 4_096,
            force_new_cluster: false,
            unlock_key: None,
        }
    }

    /// Sets [`Self::unlock_key`].
    #[must_use]
    pub fn unlock_key(mut self, key: Option<swarm_core::model::UnlockKey>) -> Self {
        self.unlock_key = key;
        self
    }

    /// Sets [`Self::heartbeat_interval`].
    #[must_use]
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.heartbeat_interval = d;
        self
    }

    /// Sets [`Self::election_timeout`].
    #[must_use]
    pub fn election_timeout(mut self, min: Duration, max: Duration) -> Self {
        self.election_timeout = (min, max);
        self
    }

    /// Sets [`Self::snapshot_threshold`].
    #[must_use]
    pub fn snapshot_threshold(mut self, entries: u64) -> Self {
        self.snapshot_threshold = entries;
        self
    }

    /// Sets [`Self::logs_kept_after_snapshot`].
    #[must_use]
    pub fn logs_kept_after_snapshot(mut self, entries: u64) -> Self {
        self.logs_kept_after_snapshot = entries;
        self
    }

    /// Sets [`Self::write_timeout`].
    #[must_use]
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = d;
        self
    }

    /// Sets [`Self::force_new_cluster`].
    #[must_use]
    pub fn force_new_cluster(mut self, yes: bool) -> Self {
        self.force_new_cluster = yes;
        self
    }

    /// Checks the settings; the error names the bad one and the fix.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: String| Err(crate::Error::InvalidArgument(m));
        let (min, max) = self.election_timeout;
        if self.addr.is_empty() {
            return bad(
                "addr is empty: give the host:port other managers reach this one at".into(),
            );
        }
        if self.heartbeat_interval.is_zero() {
            return bad("heartbeat_interval is zero: use e.g. 100ms".into());
        }
        if min <= self.heartbeat_interval * 2 || max <= min {
            return bad(format!(
                "election timeout {min:?}..{max:?} must start above twice the heartbeat interval ({:?}) and end above its start",
                self.heartbeat_interval
            ));
        }
        if self.snapshot_threshold == 0 {
            return bad("snapshot_threshold is zero: use e.g. 10000 entries".into());
        }
        if self.snapshot_chunk_size == 0 {
            return bad("snapshot_chunk_size is zero: use e.g. 1 MiB".into());
        }
        Ok(())
    }

    pub(crate) fn openraft(&self) -> Result<openraft::Config, crate::Error> {
        self.validate()?;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let c = openraft::Config {
            cluster_name: "swarm".into(),
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout.0),
            election_timeout_max: ms(self.election_timeout.1),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_threshold),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            snapshot_max_chunk_size: self.snapshot_chunk_size,
            install_snapshot_timeout: 10_000,
            max_payload_entries: 1_000,
            ..Default::default()
        };
        c.validate()
            .map_err(|e| crate::Error::InvalidArgument(e.to_string()))
    }
}
