//! The raft type configuration and the application data that travels in
//! the log.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use swarm_core::store::{Change, StoreError};

/// A manager's id in the raft group.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of the swarm store.
    pub TypeConfig:
        D = Proposal,
        R = Response,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// How the other managers reach a member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The address its raft service listens on, `host:port`.
    pub addr: String,
}

impl Member {
    /// A member reached at `addr`.
    #[must_use]
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into() }
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

/// A request id: chosen by the caller once, kept across retries, so that a
/// batch the leader committed but never acknowledged is not applied twice
/// when the caller tries again.
pub type RequestId = (u64, u64);

/// One write: a batch of changes, stamped once by the member that took it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique per batch; see [`RequestId`].
    pub id: RequestId,
    /// The batch.
    pub changes: Vec<Change>,
    /// The commit's time: part of the entry, so every replica stamps the
    /// same `created_at`/`updated_at`.
    pub now: SystemTime,
}

/// One log entry's data: the writes of one or more callers, gathered
/// while earlier entries were in flight (group commit). Each is applied as
/// its own commit, in order, with its own outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The writes.
    pub requests: Vec<Request>,
}

/// The outcome of applying one log entry: one result per request of its
/// [`Proposal`] (none for blank and membership entries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Each request's commit index, or why its batch was refused.
    pub results: Vec<Result<u64, StoreError>>,
}

/// The voters and learners of a membership, by id.
pub(crate) fn members_of(
    m: &openraft::StoredMembership<NodeId, Member>,
) -> BTreeMap<NodeId, (Member, bool)> {
    let voters: std::collections::BTreeSet<NodeId> = m.membership().voter_ids().collect();
    m.membership()
        .nodes()
        .map(|(id, node)| (*id, (node.clone(), voters.contains(id))))
        .collect()
}
