//! The session between a worker and the managers: registration,
//! heartbeats, assignments and status reports.
//!
//! The [`Dispatcher`] trait is the worker's view; the agent does not care
//! what carries it. [`LocalDispatcher`] serves it straight from a
//! [`Store`](crate::store::Store) in the same process; a network transport
//! wraps the same type.

mod local;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use local::{DispatcherConfig, LocalDispatcher};

use crate::Id;
use crate::model::{NodeDescription, Task, TaskStatus};
use crate::runtime::TaskFile;

/// What registration (and each heartbeat) tells a worker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    /// Send a heartbeat at least this often.
    pub heartbeat_period: Duration,
    /// Where the managers can be reached, when a transport knows (the
    /// worker tries them when its session breaks); empty in-process.
    #[serde(default)]
    pub managers: Vec<String>,
    /// The role the cluster wants the node in (`node promote`/`demote`
    /// change it); a node daemon takes it up.
    #[serde(default)]
    pub role: Option<crate::model::NodeRole>,
}

/// One task assigned to the worker, with the secret and config files it
/// references (and only those).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Assignment {
    /// The task, with its desired state.
    pub task: Arc<Task>,
    /// Its secrets and configs, with their data.
    pub files: Vec<TaskFile>,
}

/// The complete set of a worker's tasks. Each new set replaces the last:
/// a task missing from it is no longer the worker's.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Assignments {
    /// Every task assigned to the node that the worker must know about.
    pub tasks: Vec<Assignment>,
    /// The cluster's network view, for the node's DNS, load balancing and
    /// overlay peers; `None` when the cluster has no network.
    #[serde(default)]
    pub network: Option<Arc<crate::network::NetworkView>>,
    /// The store's index the set was read at. Once the node's data plane
    /// follows `network`, the agent says so with this index
    /// ([`Dispatcher::view_applied`]).
    #[serde(default)]
    pub index: u64,
}

/// A stream of assignment sets; it ends if the session breaks.
pub type AssignmentStream = BoxStream<'static, Assignments>;

/// A task status change seen by a worker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusUpdate {
    /// The task.
    pub task_id: Id,
    /// Its new status.
    pub status: TaskStatus,
}

/// What went wrong in a session. Serialisable, so that a network
/// transport carries it to the worker unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum DispatcherError {
    /// The node is not (or no longer) a member of the cluster.
    #[error("node {0} is not a member of the cluster: join it again")]
    UnknownNode(Id),
    /// The managers cannot be reached or have no leader; retry.
    #[error("dispatcher unavailable: {0}")]
    Unavailable(String),
}

/// The managers, as a worker sees them.
///
/// # Contract
/// - [`register`](Dispatcher::register) starts (or resumes) a session for
///   the node; the node is marked ready.
/// - [`heartbeat`](Dispatcher::heartbeat) must come at least every
///   `heartbeat_period`; a node that misses several is marked down and its
///   tasks are replaced elsewhere.
/// - [`assignments`](Dispatcher::assignments) streams complete sets; the
///   first arrives at once. Sets are level-triggered: a worker that misses
///   one loses nothing, as the next is complete.
/// - [`report`](Dispatcher::report) records status changes in order. A
///   change that would move a task backwards, or touches a task that is
///   not the node's, is ignored.
/// - [`view_applied`](Dispatcher::view_applied) says the node's data plane
///   (DNS, balancers, mesh) follows the set read at an index;
///   [`await_views`](Dispatcher::await_views) waits until every ready
///   node's does at a given index. A task that stops serving at index `i`
///   is stopped once `await_views(i)` holds, so that no node still sends it
///   new connections.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait Dispatcher: Send + Sync + 'static {
    /// Registers the node with its description.
    async fn register(
        &self,
        node_id: &Id,
        description: NodeDescription,
    ) -> Result<Registration, DispatcherError>;

    /// Tells the managers the node is alive; answers the session's
    /// current parameters, as registration does.
    async fn heartbeat(&self, node_id: &Id) -> Result<Registration, DispatcherError>;

    /// Streams the node's assignment sets.
    async fn assignments(&self, node_id: &Id) -> Result<AssignmentStream, DispatcherError>;

    /// Reports task status changes.
    async fn report(&self, node_id: &Id, updates: Vec<StatusUpdate>)
    -> Result<(), DispatcherError>;

    /// The node's data plane follows the network view of the assignment
    /// set read at `index` ([`Assignments::index`]).
    async fn view_applied(&self, node_id: &Id, index: u64) -> Result<(), DispatcherError>;

    /// Waits, at most `timeout`, until the data plane of every ready node
    /// follows the store at `index` or later; whether they all do.
    async fn await_views(&self, index: u64, timeout: Duration) -> Result<bool, DispatcherError>;
}

#[async_trait]
impl<D: Dispatcher + ?Sized> Dispatcher for Arc<D> {
    async fn register(
        &self,
        node_id: &Id,
        description: NodeDescription,
    ) -> Result<Registration, DispatcherError> {
        (**self).register(node_id, description).await
    }
    async fn heartbeat(&self, node_id: &Id) -> Result<Registration, DispatcherError> {
        (**self).heartbeat(node_id).await
    }
    async fn assignments(&self, node_id: &Id) -> Result<AssignmentStream, DispatcherError> {
        (**self).assignments(node_id).await
    }
    async fn report(
        &self,
        node_id: &Id,
        updates: Vec<StatusUpdate>,
    ) -> Result<(), DispatcherError> {
        (**self).report(node_id, updates).await
    }
    async fn view_applied(&self, node_id: &Id, index: u64) -> Result<(), DispatcherError> {
        (**self).view_applied(node_id, index).await
    }
    async fn await_views(&self, index: u64, timeout: Duration) -> Result<bool, DispatcherError> {
        (**self).await_views(index, timeout).await
    }
}
