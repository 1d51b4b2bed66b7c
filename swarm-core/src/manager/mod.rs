//! The manager's control loops, and the [`Manager`] that runs them.
//!
//! Each loop watches the store, plans from a fresh snapshot and writes its
//! actions back; none calls another. They are level-triggered and
//! idempotent: stop one anywhere, start it again, and it carries on.
//!
//! | loop | moves |
//! |---|---|
//! | orchestrator (replicated, global, restart supervisor, rollouts, node-down handling) | creates tasks (`new`), sets desired state `shutdown`, writes a service's rollout status (and, on an automatic rollback, its spec) |
//! | allocator | `new` → `pending` once secrets, configs and networks exist |
//! | scheduler | `pending` → `assigned` |
//! | reaper | deletes old finished tasks, marks `orphaned` |
//! | heartbeat monitor ([`LocalDispatcher::monitor`]) | node `ready` → `down` |
//!
//! All of them are [`control_loop::ControlLoop`]s run by
//! [`control_loop::drive`]; an app adds its own with
//! [`Manager::with_loop`], and they run beside these, on the leader only.

mod allocator;
pub mod control_loop;
pub mod orchestrator;
pub mod reaper;
mod scheduling;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use allocator::{Attachment, missing_reference, required_networks};

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

/// Runs every control loop of a (leading) manager over a store: the
/// built-in ones, and the app's own.
pub struct Manager<S, Sch> {
    store: S,
    scheduler: Sch,
    dispatcher: Option<Arc<LocalDispatcher<S>>>,
    config: ManagerConfig,
    loops: Vec<control_loop::LoopFactory<S>>,
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
            loops: Vec::new(),
        }
    }

    /// Also runs the app's loop that `factory` makes (see
    /// [`control_loop::control_loop`]).
    #[must_use]
    pub fn with_loop(mut self, factory: control_loop::LoopFactory<S>) -> Self {
        self.loops.push(factory);
        self
    }

    /// Also runs each of these loops.
    #[must_use]
    pub fn with_loops(
        mut self,
        factories: impl IntoIterator<Item = control_loop::LoopFactory<S>>,
    ) -> Self {
        self.loops.extend(factories);
        self
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
        for make in &self.loops {
            loops.spawn(make(self.store.clone(), shutdown.clone()));
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
    control_loop::drive(
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
    control_loop::drive(
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
    control_loop::drive(
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
    control_loop::drive(
        &store,
        reaper::Reaper {
            store: store.clone(),
            orphan_after,
        },
        shutdown,
    )
    .await;
}

/// Runs `start(token)` while `leading` holds true: each time this member
/// becomes the leader, a fresh run begins (reading the store's state, as a
/// level-triggered loop does); each time it stops leading, the run's token
/// is cancelled and the run awaited before anything else happens, so two
/// runs never overlap here. Returns when `shutdown` fires.
///
/// This is how a manager's control loops run on the raft leader only:
/// `leading` comes from the replicated store (swarm-raft's
/// `RaftStore::leadership`), `start` is `|t| Manager::new(..).run(t)`.
pub async fn run_while_leading<F, Fut>(
    mut leading: tokio::sync::watch::Receiver<bool>,
    shutdown: CancellationToken,
    mut start: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        // Wait to lead.
        tokio::select! {
            () = shutdown.cancelled() => return,
            r = leading.wait_for(|l| *l) => if r.is_err() { return },
        }
        let token = shutdown.child_token();
        let mut run = tokio::spawn(start(token.clone()));
        tracing::info!("leading: the control loops start");
        // Lead until told otherwise.
        let ended_early = tokio::select! {
            () = shutdown.cancelled() => false,
            _ = leading.wait_for(|l| !*l) => false,
            r = &mut run => {
                // A run must last as long as the leadership: one that
                // ended (or panicked) would leave the cluster without
                // loops. Say so and start another.
                tracing::error!(result = ?r, "the control loops ended while leading; restarting them");
                true
            }
        };
        token.cancel();
        if !ended_early {
            let _ = run.await;
            tracing::info!("not leading: the control loops stopped");
        }
        if shutdown.is_cancelled() {
            return;
        }
        if ended_early {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod leading_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn runs_only_while_leading_and_never_twice_at_once() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let shutdown = CancellationToken::new();
        let running = Arc::new(AtomicUsize::new(0));
        let starts = Arc::new(AtomicUsize::new(0));
        let supervisor = tokio::spawn(run_while_leading(rx, shutdown.clone(), {
            let running = running.clone();
            let starts = starts.clone();
            move |token: CancellationToken| {
                let running = running.clone();
                starts.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert_eq!(
                        running.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two runs at once"
                    );
                    token.cancelled().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }));
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));
        settle().await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            0,
            "not leading: nothing runs"
        );
        tx.send(true).unwrap();
        settle().await;
        assert_eq!(running.load(Ordering::SeqCst), 1);
        tx.send(false).unwrap();
        settle().await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            0,
            "stopped when leadership moved"
        );
        tx.send(true).unwrap();
        settle().await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "a fresh run on leading again"
        );
        shutdown.cancel();
        supervisor.await.unwrap();
        assert_eq!(running.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_ends_while_leading_is_started_again() {
        let (_tx, rx) = tokio::sync::watch::channel(true);
        let shutdown = CancellationToken::new();
        let starts = Arc::new(AtomicUsize::new(0));
        let supervisor = tokio::spawn(run_while_leading(rx, shutdown.clone(), {
            let starts = starts.clone();
            move |token: CancellationToken| {
                let first = starts.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if !first {
                        token.cancelled().await;
                    }
                    // The first run ends at once, as a crashed loop would.
                }
            }
        }));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while starts.load(Ordering::SeqCst) < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the run was not started again"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        supervisor.await.unwrap();
    }
}
