//! The two sides of a worker's session across several managers.
//!
//! - [`LeaderDispatcher`]: a manager serves sessions only while it leads,
//!   because the heartbeat monitor runs on the leader; a follower refuses,
//!   and a session it served ends when it stops leading.
//! - [`FailoverDispatcher`]: a worker knows every manager and moves to the
//!   next one when its manager fails or refuses, so it finds the leader
//!   after an election without restarting its tasks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use swarm_api::tls::Credentials;
use swarm_api::{ManagerRoster, RemoteDispatcher};
use swarm_core::Id;
use swarm_core::dispatcher::{
    AssignmentStream, Dispatcher, DispatcherError, LocalDispatcher, Registration, StatusUpdate,
};
use swarm_core::model::{NodeDescription, NodeRole};
use swarm_core::store::Store;
use tokio::sync::watch;

/// A manager's dispatcher: its [`LocalDispatcher`] while it leads, a
/// refusal otherwise.
pub struct LeaderDispatcher<S> {
    inner: Arc<LocalDispatcher<S>>,
    leading: watch::Receiver<bool>,
    roster: Option<Arc<dyn ManagerRoster>>,
}

impl<S> LeaderDispatcher<S> {
    /// Serves `inner` while `leading` holds true.
    pub fn new(inner: Arc<LocalDispatcher<S>>, leading: watch::Receiver<bool>) -> Self {
        Self {
            inner,
            leading,
            roster: None,
        }
    }

    /// Tells each registering worker the managers' addresses from
    /// `roster`, so that it can find the next leader.
    #[must_use]
    pub fn with_roster(mut self, roster: Arc<dyn ManagerRoster>) -> Self {
        self.roster = Some(roster);
        self
    }

    /// Adds the managers' addresses, so that a worker always knows where
    /// to look for the next leader.
    async fn with_managers(&self, mut session: Registration) -> Registration {
        if let Some(roster) = &self.roster
            && let Ok(managers) = roster.managers().await
        {
            session.managers = managers.into_iter().map(|m| m.addr).collect();
        }
        session
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
        let registration = self.inner.register(node_id, description).await?;
        Ok(self.with_managers(registration).await)
    }

    async fn heartbeat(&self, node_id: &Id) -> Result<Registration, DispatcherError> {
        self.check()?;
        let session = self.inner.heartbeat(node_id).await?;
        Ok(self.with_managers(session).await)
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

    async fn view_applied(&self, node_id: &Id, index: u64) -> Result<(), DispatcherError> {
        self.check()?;
        self.inner.view_applied(node_id, index).await
    }

    async fn await_views(&self, index: u64, timeout: Duration) -> Result<bool, DispatcherError> {
        self.check()?;
        self.inner.await_views(index, timeout).await
    }
}

/// A worker's dispatcher over every known manager: it sticks to the one
/// that answered last and moves on when that one fails. Each registration
/// refreshes the list of managers.
pub struct FailoverDispatcher {
    creds: RwLock<Credentials>,
    managers: RwLock<Vec<(String, RemoteDispatcher)>>,
    current: AtomicUsize,
    on_change: Option<ManagersChanged>,
    role: watch::Sender<Option<NodeRole>>,
}

/// What to do when the managers' list changes.
type ManagersChanged = Box<dyn Fn(&[String]) + Send + Sync>;

/// How long a registration keeps trying when no manager leads (an
/// election is under way).
const FIND_LEADER: Duration = Duration::from_secs(3);

impl FailoverDispatcher {
    /// Sessions with the managers at `addrs`, over mutual TLS with `creds`.
    pub fn new(addrs: &[String], creds: &Credentials) -> Result<Self, DispatcherError> {
        if addrs.is_empty() {
            return Err(DispatcherError::Unavailable(
                "no manager address is known: join the cluster again".into(),
            ));
        }
        let me = Self {
            creds: RwLock::new(creds.clone()),
            managers: RwLock::new(Vec::new()),
            current: AtomicUsize::new(0),
            on_change: None,
            role: watch::Sender::new(None),
        };
        me.set_managers(addrs)?;
        Ok(me)
    }

    /// Calls `f` with the new list each time the managers' list changes
    /// (the node keeps it, to find the cluster after a restart).
    #[must_use]
    pub fn on_managers_changed(mut self, f: impl Fn(&[String]) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Box::new(f));
        self
    }

    /// The managers' addresses, as last learned.
    #[must_use]
    pub fn managers(&self) -> Vec<String> {
        self.list().iter().map(|(a, _)| a.clone()).collect()
    }

    fn list(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, RemoteDispatcher)>> {
        self.managers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Uses `creds` from now on (a renewed certificate): new channels
    /// are made to every manager.
    pub fn set_credentials(&self, creds: Credentials) -> Result<(), DispatcherError> {
        let mut fresh = Vec::new();
        for addr in self.managers() {
            let channel = creds
                .endpoint(&addr)
                .map_err(DispatcherError::Unavailable)?
                .connect_lazy();
            fresh.push((addr, RemoteDispatcher::with_channel(channel)));
        }
        *self
            .creds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = creds;
        // One swap: a call in between sees the old list or the new one,
        // never an empty one.
        *self
            .managers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// Replaces the list, keeping the sessions to managers still in it.
    fn set_managers(&self, addrs: &[String]) -> Result<(), DispatcherError> {
        let old = self.list().clone();
        let creds = self
            .creds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut list = Vec::with_capacity(addrs.len());
        for a in addrs {
            let d = match old.iter().find(|(o, _)| o == a) {
                Some((_, d)) => d.clone(),
                None => creds
                    .endpoint(a)
                    .map(|e| RemoteDispatcher::with_channel(e.connect_lazy()))
                    .map_err(DispatcherError::Unavailable)?,
            };
            list.push((a.clone(), d));
        }
        *self
            .managers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = list;
        Ok(())
    }

    /// The role the cluster wants this node in, as the sessions last said.
    #[must_use]
    pub fn desired_role(&self) -> watch::Receiver<Option<NodeRole>> {
        self.role.subscribe()
    }

    /// Takes up what a session answered: the role the node should have,
    /// and the managers' list (if any, and if new), staying with
    /// `answered_by`.
    fn learn(&self, answered_by: &str, session: &Registration) -> Result<(), DispatcherError> {
        if session.role.is_some() {
            self.role.send_if_modified(|r| {
                let changed = *r != session.role;
                *r = session.role;
                changed
            });
        }
        let managers = &session.managers;
        if managers.is_empty() || *managers == self.managers() {
            return Ok(());
        }
        self.set_managers(managers)?;
        let at = managers.iter().position(|a| a == answered_by);
        self.current.store(at.unwrap_or(0), Ordering::Relaxed);
        if let Some(f) = &self.on_change {
            f(managers);
        }
        Ok(())
    }

    fn current(&self) -> (usize, RemoteDispatcher) {
        let list = self.list();
        let i = self.current.load(Ordering::Relaxed) % list.len();
        (i, list[i].1.clone())
    }

    /// Moves on from `failed` (unless another call already did).
    fn next(&self, failed: usize) {
        let n = self.list().len();
        let _ = self.current.compare_exchange(
            failed,
            (failed + 1) % n,
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
        let (i, d) = self.current();
        let result = call(d).await;
        if matches!(result, Err(DispatcherError::Unavailable(_))) {
            self.next(i);
        }
        result
    }
}

#[async_trait]
impl Dispatcher for FailoverDispatcher {
    /// Tries each manager in turn, from the current one, until one
    /// accepts; while none does (an election), tries again for a few
    /// seconds. After an election this finds the new leader at once.
    async fn register(
        &self,
        node_id: &Id,
        description: NodeDescription,
    ) -> Result<Registration, DispatcherError> {
        let deadline = tokio::time::Instant::now() + FIND_LEADER;
        loop {
            let list = self.list().clone();
            let start = self.current.load(Ordering::Relaxed) % list.len();
            let mut last = None;
            for k in 0..list.len() {
                let i = (start + k) % list.len();
                match list[i].1.register(node_id, description.clone()).await {
                    Ok(r) => {
                        tracing::debug!(manager = %list[i].0, "session started");
                        self.current.store(i, Ordering::Relaxed);
                        self.learn(&list[i].0, &r)?;
                        return Ok(r);
                    }
                    Err(e @ DispatcherError::UnknownNode(_)) => return Err(e),
                    Err(e) => last = Some(e),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(last.expect("at least one manager"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn heartbeat(&self, node_id: &Id) -> Result<Registration, DispatcherError> {
        let (i, d) = self.current();
        let result = d.heartbeat(node_id).await;
        match &result {
            Ok(session) => {
                let addr = self.list().get(i).map(|(a, _)| a.clone());
                if let Some(addr) = addr {
                    self.learn(&addr, session)?;
                }
            }
            Err(DispatcherError::Unavailable(_)) => self.next(i),
            Err(_) => {}
        }
        result
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

    async fn view_applied(&self, node_id: &Id, index: u64) -> Result<(), DispatcherError> {
        self.on_current(|d| async move { d.view_applied(node_id, index).await })
            .await
    }

    async fn await_views(&self, index: u64, timeout: Duration) -> Result<bool, DispatcherError> {
        self.on_current(|d| async move { d.await_views(index, timeout).await })
            .await
    }
}
