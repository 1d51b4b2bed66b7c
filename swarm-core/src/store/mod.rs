//! The cluster store: the one source of truth every control loop reads and
//! writes.

mod journal;
mod memory;
mod replicated;
mod state;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use journal::Journal;
pub use memory::{MemoryStore, MemoryStoreConfig};
#[cfg(any(test, feature = "mocks"))]
pub use replicated::MockReplicatedStore;
pub use replicated::{Member, Membership, ReplicatedStore, SoloStore};
pub use state::State;

use crate::Id;
use std::time::SystemTime;

use crate::model::{Kind, Object, Version};

/// One change of a batch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// Create the object. Fails with [`StoreError::AlreadyExists`] if its id,
    /// or its unique name (services, networks, secrets, configs), is taken.
    Create(Object),
    /// Replace the object. Its `meta.version` must be the stored version,
    /// else the batch fails with [`StoreError::Conflict`].
    Update(Object),
    /// Delete the object; with `version`, only if it is still that version.
    Delete {
        /// The object's kind.
        kind: Kind,
        /// The object's id.
        id: Id,
        /// The version it must have, if any.
        version: Option<Version>,
    },
}

impl Change {
    /// The kind of object the change touches.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Self::Create(o) | Self::Update(o) => o.kind(),
            Self::Delete { kind, .. } => *kind,
        }
    }

    /// The id of the object the change touches.
    #[must_use]
    pub fn id(&self) -> &Id {
        match self {
            Self::Create(o) | Self::Update(o) => o.id(),
            Self::Delete { id, .. } => id,
        }
    }
}

/// What a commit did to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The object was created.
    Created(Object),
    /// The object was replaced.
    Updated {
        /// As it was before.
        old: Object,
        /// As it is now.
        new: Object,
    },
    /// The object was deleted; this is how it was.
    Deleted(Object),
}

impl Event {
    /// The object as it is after the commit (as it was, for deletions).
    #[must_use]
    pub fn object(&self) -> &Object {
        match self {
            Self::Created(o) | Self::Deleted(o) | Self::Updated { new: o, .. } => o,
        }
    }
}

/// One committed batch, as watchers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The commit's index: every object it wrote now has this version.
    pub index: u64,
    /// What the batch did, in the batch's order.
    pub events: Vec<Event>,
    /// When it was committed (the time its writes are stamped with; a
    /// removal's only record of its time).
    pub at: SystemTime,
}

/// A stream of commits in index order, without gaps. It ends with
/// [`StoreError::Compacted`] if the watcher falls too far behind; the
/// watcher then reads the state afresh.
pub type WatchStream = BoxStream<'static, Result<Arc<Commit>, StoreError>>;

/// What went wrong, for callers to branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// The id or name is taken.
    AlreadyExists,
    /// The object changed since it was read.
    Conflict,
    /// The request itself is wrong.
    InvalidArgument,
    /// The store cannot answer now (no leader, shut down); try again.
    Unavailable,
    /// The watcher asked for history the store no longer keeps.
    Compacted,
}

/// An error of a [`Store`]. It is serde-serialisable, so a replicated
/// store can carry it from the member that applied a batch to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// Its kind.
        kind: Kind,
        /// Its id (or name).
        id: String,
    },
    /// The id or unique name is taken.
    #[error(
        "{kind} {name} already exists: choose another name, or remove the existing {kind} first"
    )]
    AlreadyExists {
        /// Its kind.
        kind: Kind,
        /// The id or name in use.
        name: String,
    },
    /// The object's version is not the one the writer read.
    #[error(
        "{kind} {id} was changed by someone else (version {actual}, expected {expected}): read it again and retry"
    )]
    Conflict {
        /// Its kind.
        kind: Kind,
        /// Its id.
        id: Id,
        /// The version the writer read.
        expected: Version,
        /// The stored version.
        actual: Version,
    },
    /// The request is malformed.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// The store cannot serve now.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The requested history is gone.
    #[error(
        "watch from index {requested} is no longer possible: the oldest kept index is {oldest}; read the state again"
    )]
    Compacted {
        /// The index asked for.
        requested: u64,
        /// The oldest index still kept.
        oldest: u64,
    },
}

impl StoreError {
    /// The error's kind.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Compacted { .. } => ErrorKind::Compacted,
        }
    }
}

/// The cluster store.
///
/// # Contract
/// - [`Store::state`] returns a consistent snapshot: every commit up to its
///   [`State::index`] and nothing after. Taking one is cheap (structural
///   sharing) and it never changes afterwards. It reflects at least every
///   commit this handle has acknowledged.
/// - [`Store::apply`] applies a batch atomically: all changes or none. Each
///   written object gets the commit's index as its version. An `Update`
///   whose version is not the stored one fails the batch with
///   [`StoreError::Conflict`] (optimistic concurrency). An empty batch is a
///   no-op that returns the current index. A batch is acknowledged only
///   once committed; if the call is cancelled, the batch may or may not
///   have been applied, and the caller reads the state to find out.
/// - [`Store::watch`] streams every commit with an index above `from`
///   (`None`: from now), in order and without gaps, to every watcher.
///   A watcher that falls behind gets [`StoreError::Compacted`] and the
///   stream ends.
///
/// Implementations: [`MemoryStore`] here, the raft store in swarm-raft.
/// Both pass `testing::store_suite` (feature `testing`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A consistent snapshot of the whole state.
    async fn state(&self) -> Result<State, StoreError>;

    /// Applies a batch atomically; returns the commit index.
    async fn apply(&self, changes: Vec<Change>) -> Result<u64, StoreError>;

    /// Streams the commits after index `from` (`None`: after the current one).
    async fn watch(&self, from: Option<u64>) -> Result<WatchStream, StoreError>;

    /// A snapshot and the stream of every commit after it, with no gap
    /// between them.
    async fn subscribe(&self) -> Result<(State, WatchStream), StoreError> {
        loop {
            let state = self.state().await?;
            match self.watch(Some(state.index())).await {
                Ok(stream) => return Ok((state, stream)),
                Err(StoreError::Compacted { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl<S: Store + ?Sized> Store for Arc<S> {
    async fn state(&self) -> Result<State, StoreError> {
        (**self).state().await
    }
    async fn apply(&self, changes: Vec<Change>) -> Result<u64, StoreError> {
        (**self).apply(changes).await
    }
    async fn watch(&self, from: Option<u64>) -> Result<WatchStream, StoreError> {
        (**self).watch(from).await
    }
    async fn subscribe(&self) -> Result<(State, WatchStream), StoreError> {
        (**self).subscribe().await
    }
}
