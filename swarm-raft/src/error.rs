//! The errors of the raft store, with a kind to branch on.

use swarm_core::store::StoreError;

use crate::types::NodeId;

/// What went wrong, for callers to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// This member does not lead; the error names the leader if known.
    NotLeader,
    /// No leader, or the leader cannot reach a quorum: try again later.
    NoQuorum,
    /// The request conflicts with the current state (or membership).
    Conflict,
    /// The request itself is wrong.
    InvalidArgument,
    /// The disk failed: the member stops serving.
    Storage,
    /// The member has shut down.
    Stopped,
    /// The member's data key is sealed with an unlock key (autolock) that
    /// was not given, or was wrong.
    Locked,
}

/// An error of the raft store's own API (membership, linearizable reads,
/// opening). Store operations map it onto [`StoreError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// This member is not the leader.
    #[error("member {id} is not the leader{}", leader_text(*leader, leader_addr.as_deref()))]
    NotLeader {
        /// This member.
        id: NodeId,
        /// The leader, if known.
        leader: Option<NodeId>,
        /// The leader's address, if known: send the request there.
        leader_addr: Option<String>,
    },
    /// No leader is elected, or the leader cannot reach a quorum.
    #[error("no quorum: {0}; check that a majority of the managers is running and reachable")]
    NoQuorum(String),
    /// The request conflicts with the current state or membership.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// Reading or writing the data directory failed.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The member has shut down.
    #[error("the raft member has shut down")]
    Stopped,
    /// The member is autolocked: its data key needs the unlock key.
    #[error("{0}")]
    Locked(String),
}

fn leader_text(leader: Option<NodeId>, addr: Option<&str>) -> String {
    match (leader, addr) {
        (Some(id), Some(addr)) => format!("; the leader is member {id} at {addr}"),
        (Some(id), None) => format!("; the leader is member {id}"),
        _ => "; no leader is known yet".into(),
    }
}

impl Error {
    /// The error's kind.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotLeader { .. } => ErrorKind::NotLeader,
            Self::NoQuorum(_) => ErrorKind::NoQuorum,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::Storage(_) => ErrorKind::Storage,
            Self::Stopped => ErrorKind::Stopped,
            Self::Locked(_) => ErrorKind::Locked,
        }
    }

    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        Self::Storage(e.to_string())
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidArgument(m) => StoreError::InvalidArgument(m),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}
