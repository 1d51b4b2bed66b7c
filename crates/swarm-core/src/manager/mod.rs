//! The manager's control loops, and the [`Manager`] that runs them.
//!
//! Each loop watches the store, plans from a fresh snapshot and writes its
//! actions back; none calls another. They are level-triggered and
//! idempotent: stop one anywhere, start it again, and it carries on.
//!
//! | loop | moves |
//! |---|---|
//! | orchestrator (replicated, global, restart supervisor, node-down handling) | creates tasks (`new`), sets desired state `shutdown` |
//! | allocator | `new` → `pending` once secrets, configs and networks exist |
//! | scheduler | `pending` → `assigned` |
//! | reaper | deletes old finished tasks, marks `orphaned` |
//! | heartbeat monitor ([`LocalDispatcher::monitor`]) | node `ready` → `down` |

mod allocator;
mod driver;
pub mod orchestrator;
pub mod reaper;
mod scheduling;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use allocator::missing_reference;

use crate::dispatcher::LocalDispatcher;
use crate::sched::Scheduler;
use crate::store::Store;

/// Settings of a [`Manager`].
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Tasks on a node that has been down this long are marked orphaned.
    pub orphan_after: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            orphan_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl ManagerConfig {
    /// Sets [`Self::orphan_after`].
    #[must_use]
    pub fn orphan_after(mut self, d: Duration) -> Self {
        self.orphan_after = d;
        self
    }
}

/// Runs every control loop of a (leading) manager over a store.
pub struct Manager<S, Sch> {
    store: S,
    scheduler: Sch,
    dispatcher: Option<Arc<LocalDispatcher<S>>>,
    config: ManagerConfig,
}

impl<S: Store + Clone, Sch: Scheduler> Manager<S, Sch> {
    /// A manager over `store`, placing with `scheduler`.
    #[must_use]
    pub fn new(store: S, scheduler: Sch, config: ManagerConfig) -> Self {
        Self {
            store,
            scheduler,
            dispatcher: None,
            config,
        }
    }

    /// Also runs this dispatcher's heartbeat monitor.
    #[must_use]
    pub fn with_dispatcher(mut self, dispatcher: Arc<LocalDispatcher<S>>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Runs the loops until `shutdown` fires (e.g. when leadership moves).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut loops = JoinSet::new();
        loops.spawn(run_orchestrator(self.store.clone(), shutdown.clone()));
        loops.spawn(run_allocator(self.store.clone(), shutdown.clone()));
        loops.spawn(run_scheduler(
            self.store.clone(),
            self.scheduler,
            shutdown.clone(),
        ));
        loops.spawn(run_reaper(
            self.store.clone(),
            self.config.orphan_after,
            shutdown.clone(),
        ));
        if let Some(d) = self.dispatcher {
            let s = shutdown.clone();
            loops.spawn(async move { d.monitor(s).await });
        }
        while let Some(ended) = loops.join_next().await {
            if !shutdown.is_cancelled() {
                // Loops only end on shutdown; anything else is a bug.
                tracing::error!(result = ?ended, "a manager control loop stopped before shutdown");
            }
        }
    }
}

/// Runs the orchestrators (replicated, global, restarts, node-down
/// handling) until `shutdown`.
pub async fn run_orchestrator<S: Store + Clone>(store: S, shutdown: CancellationToken) {
    driver::drive(
        &store,
        orchestrator::Orchestrator {
            store: store.clone(),
        },
        shutdown,
    )
    .await;
}

/// Runs the allocator until `shutdown`.
pub async fn run_allocator<S: Store + Clone>(store: S, shutdown: CancellationToken) {
    driver::drive(
        &store,
        allocator::Allocator {
            store: store.clone(),
        },
        shutdown,
    )
    .await;
}

/// Runs the scheduling loop with `scheduler` until `shutdown`.
pub async fn run_scheduler<S: Store + Clone, Sch: Scheduler>(
    store: S,
    scheduler: Sch,
    shutdown: CancellationToken,
) {
    driver::drive(
        &store,
        scheduling::SchedulingLoop::new(store.clone(), scheduler),
        shutdown,
    )
    .await;
}

/// Runs the task reaper until `shutdown`.
pub async fn run_reaper<S: Store + Clone>(
    store: S,
    orphan_after: Duration,
    shutdown: CancellationToken,
) {
    driver::drive(
        &store,
        reaper::Reaper {
            store: store.clone(),
            orphan_after,
        },
        shutdown,
    )
    .await;
}
