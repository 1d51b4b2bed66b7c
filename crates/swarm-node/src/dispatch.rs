//! The two sides of a worker's session across several managers.
//!
//! - [`LeaderDispatcher`]: a manager serves sessions only while it leads,
//!   because the heartbeat monitor runs on the leader; a follower refuses,
//!   and a session it served ends when it stops leading.
//! - [`FailoverDispatcher`]: a worker knows every manager and moves to the
//!   next one when its manager fails or refuses, so it finds the leader
//!   after an election without restarting its tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use swarm_api::RemoteDispatcher;
use swarm_api::tls::Credentials;
use swarm_core::Id;
use swarm_core::dispatcher::{
    AssignmentStream, Dispatcher, DispatcherError, LocalDispatcher, Registration, StatusUpdate,
};
use swarm_core::model::NodeDescription;
use swarm_core::store::Store;
use tokio::sync::watch;

/// A manager's dispatcher: its [`LocalDispatcher`] while it leads, a
/// refusal otherwise.
pub struct LeaderDispatcher<S> {
    inner: Arc<LocalDispatcher<S>>,
    leading: watch::Receiver<bool>,
}

impl<S> LeaderDispatcher<S> {
    /// Serves `inner` while `leading` holds true.
    pub fn new(inner: Arc<LocalDispatcher<S>>, leading: watch::Receiver<bool>) -> Self {
        Self { inner, leading }
    }

    fn check(&self) -> Result<(), DispatcherError> {
        if *self.leading.borrow() {
            Ok(())
        } else {
            Err(DispatcherError::Unavailable(
                "this manager is not the leader; try another".into(),
            ))
        }
    }
}

#[async_trait]
impl<S: Store + Clone> Dispatcher for LeaderDispatcher<S> {
    async fn register(
        &self,
        node_id: &Id,
        description: NodeDescription,
    ) -> Result<Registration, DispatcherError> {
        self.check()?;
        self.inner.register(node_id, description).await
    }

    async fn heartbeat(&self, node_id: &Id) -> Result<Duration, DispatcherError> {
        self.check()?;
        self.inner.heartbeat(node_id).await
    }

    async fn assignments(&self, node_id: &Id) -> Result<AssignmentStream, DispatcherError> {
        self.check()?;
        let stream = self.inner.assignments(node_id).await?;
        // The session ends with the leadership: the worker then finds the
        // new leader.
        let mut leading = self.leading.clone();
        let lost = async move {
            let _ = leading.wait_for(|l| !*l).await;
        };
        Ok(stream.take_until(Box::pin(lost)).boxed())
    }

    async fn report(
        &self,
        node_id: &Id,
        updates: Vec<StatusUpdate>,
    ) -> Result<(), DispatcherError> {
        self.check()?;
        self.inner.report(node_id, updates).await
    }
}

/// A worker's dispatcher over every known manager: it sticks to the one
/// that answered last and moves on when that one fails.
pub struct FailoverDispatcher {
    managers: Vec<RemoteDispatcher>,
    addrs: Vec<String>,
    current: AtomicUsize,
}

impl FailoverDispatcher {
    /// Sessions with the managers at `addrs`, over mutual TLS with `creds`.
    pub fn new(addrs: &[String], creds: &Credentials) -> Result<Self, DispatcherError> {
        if addrs.is_empty() {
            return Err(DispatcherError::Unavailable(
                "no manager address is known: join the cluster again".into(),
            ));
        }
        let managers = addrs
            .iter()
            .map(|a| {
                creds
                    .endpoint(a)
                    .map(|e| RemoteDispatcher::with_channel(e.connect_lazy()))
                    .map_err(DispatcherError::Unavailable)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            managers,
            addrs: addrs.to_vec(),
            current: AtomicUsize::new(0),
        })
    }

    fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.managers.len()
    }

    /// Moves on from `failed` (unless another call already did).
    fn next(&self, failed: usize) {
        let _ = self.current.compare_exchange(
            failed,
            (failed + 1) % self.managers.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Runs `call` on the current manager; on a failure, moves on.
    async fn on_current<T, F, Fut>(&self, call: F) -> Result<T, DispatcherError>
    where
        F: FnOnce(RemoteDispatcher) -> Fut,
        Fut: std::future::Future<Output = Result<T, DispatcherError>>,
    {
        let i = self.current();
        let result = call(self.managers[i].clone()).await;
        if matches!(result, Err(DispatcherError::Unavailable(_))) {
            self.next(i);
        }
        result
    }
}

#[async_trait]
impl Dispatcher for FailoverDispatcher {
    /// Tries each manager in turn, from the current one, until one
    /// accepts: after an election this finds the new leader at once.
    async fn register(
        &self,
        node_id: &Id,
        description: NodeDescription,
    ) -> Result<Registration, DispatcherError> {
        let start = self.current();
        let mut last = None;
        for k in 0..self.managers.len() {
            let i = (start + k) % self.managers.len();
            match self.managers[i]
                .register(node_id, description.clone())
                .await
            {
                Ok(r) => {
                    self.current.store(i, Ordering::Relaxed);
                    tracing::debug!(manager = %self.addrs[i], "session started");
                    return Ok(r);
                }
                Err(e @ DispatcherError::UnknownNode(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one manager"))
    }

    async fn heartbeat(&self, node_id: &Id) -> Result<Duration, DispatcherError> {
        self.on_current(|d| async move { d.heartbeat(node_id).await })
            .await
    }

    async fn assignments(&self, node_id: &Id) -> Result<AssignmentStream, DispatcherError> {
        self.on_current(|d| async move { d.assignments(node_id).await })
            .await
    }

    async fn report(
        &self,
        node_id: &Id,
        updates: Vec<StatusUpdate>,
    ) -> Result<(), DispatcherError> {
        self.on_current(|d| async move { d.report(node_id, updates).await })
            .await
    }
}
