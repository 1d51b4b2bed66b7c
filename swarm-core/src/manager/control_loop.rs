//! The machinery under every control loop of the manager, the built-in
//! ones and an app's own: watch the store, collect what each commit
//! touched, run the loop on a fresh snapshot, repeat.
//!
//! Two levels, both public:
//!
//! - [`ControlLoop`] + [`drive`]: a loop sees each commit
//!   ([`ControlLoop::touched`]) and marks the keys to look at again
//!   ([`Dirty`]); a run gets a fresh snapshot and those keys, and says
//!   when to look again ([`Next`]). The orchestrators, the allocator, the
//!   scheduling loop and the reaper are `ControlLoop`s.
//! - [`Reconcile`] + [`Controller`], after kube-runtime's `Controller`: an
//!   app writes one `reconcile(key, state) -> Action`, and the controller
//!   runs it once per key that changed, collapses repeated triggers,
//!   requeues a key when asked, and requeues it with exponential backoff
//!   when it fails, without stopping the loop or the other keys.
//!
//! Loops are level-triggered: a trigger only says "look again"; whatever
//! happened is read from the state. A loop can stop anywhere and start
//! again from a fresh snapshot (it does when its watch breaks); an app
//! registers it on a manager as a [`LoopFactory`], and it runs on the
//! raft leader only, moving with leadership like the built-in ones.
//!
//! ```
//! use std::time::Duration;
//! use swarm_core::Id;
//! use swarm_core::manager::control_loop::{Action, Controller, Reconcile, drive};
//! use swarm_core::model::Object;
//! use swarm_core::store::{Commit, Event, MemoryStore, State};
//! use tokio_util::sync::CancellationToken;
//!
//! /// Logs each service's replica count, and looks again every minute.
//! struct Census;
//!
//! impl Reconcile for Census {
//!     const NAME: &'static str = "census";
//!     type Error = std::convert::Infallible;
//!
//!     fn keys(&self, event: &Event, keys: &mut Vec<Id>) {
//!         if let Object::Service(s) = event.object() {
//!             keys.push(s.meta.id.clone());
//!         }
//!     }
//!     fn all_keys(&self, state: &State) -> Vec<Id> {
//!         state.services().map(|s| s.meta.id.clone()).collect()
//!     }
//!     async fn reconcile(&mut self, key: &Id, state: &State) -> Result<Action, Self::Error> {
//!         if let Some(s) = state.service(key) {
//!             tracing::info!(service = %s.spec.name, "seen");
//!         }
//!         Ok(Action::RequeueAfter(Duration::from_secs(60)))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let store = MemoryStore::new();
//! let stop = CancellationToken::new();
//! stop.cancel(); // here: return at once
//! drive(&store, Controller::new(Census), stop).await;
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::Id;
use crate::store::{Commit, Event, State, Store};

/// The keys (service ids, task ids, ...) a loop must look at again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// Everything.
    pub all: bool,
    /// These keys.
    pub keys: HashSet<Id>,
}

impl Dirty {
    /// Every key.
    #[must_use]
    pub fn everything() -> Self {
        Self {
            all: true,
            keys: HashSet::new(),
        }
    }
    /// Marks `id`.
    pub fn add(&mut self, id: &Id) {
        if !self.all {
            self.keys.insert(id.clone());
        }
    }
    /// Marks what `other` marks too.
    pub fn merge(&mut self, other: Dirty) {
        if other.all {
            *self = Self::everything();
        } else if !self.all {
            self.keys.extend(other.keys);
        }
    }
    /// Whether nothing is marked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.all && self.keys.is_empty()
    }
}

/// What a run asks for next.
#[derive(Debug, Default)]
pub struct Next {
    /// Look at these keys again after this delay (restart delays, retries).
    pub recheck: Option<(Duration, Dirty)>,
}

impl Next {
    /// Nothing more until the store changes.
    #[must_use]
    pub fn done() -> Self {
        Self::default()
    }
    /// Look at `dirty` again after `delay`, whether or not the store changes.
    #[must_use]
    pub fn retry(delay: Duration, dirty: Dirty) -> Self {
        Self {
            recheck: Some((delay, dirty)),
        }
    }
    /// Keeps the earliest recheck of the two.
    pub fn merge(&mut self, other: Next) {
        match (&mut self.recheck, other.recheck) {
            (_, None) => {}
            (None, Some(r)) => self.recheck = Some(r),
            (Some((d, keys)), Some((d2, keys2))) => {
                *d = (*d).min(d2);
                keys.merge(keys2);
            }
        }
    }
}

/// One control loop, run by [`drive`].
///
/// # Contract
/// - [`ControlLoop::reset`] then a first run with [`Dirty::everything`]
///   happen each time the loop (re)starts on a fresh snapshot: after
///   [`drive`] begins, and after the store's watch broke.
/// - [`ControlLoop::touched`] sees every commit, in order, and is cheap:
///   it only marks keys.
/// - Runs never overlap; the state a run gets holds at least every commit
///   `touched` has seen. Commits that arrive together lead to one run.
/// - A run that is cancelled (the manager stops leading) is not resumed:
///   the next leader's loop starts from a fresh snapshot.
pub trait ControlLoop: Send {
    /// The loop's name, for logs.
    const NAME: &'static str;

    /// Called on a fresh snapshot when the loop (re)starts, before the
    /// first run (which gets `Dirty::everything()`).
    fn reset(&mut self, _state: &State) {}

    /// Records what a commit touched.
    fn touched(&mut self, commit: &Commit, dirty: &mut Dirty);

    /// Looks at the dirty keys in `state` and acts.
    fn run(&mut self, state: State, dirty: Dirty) -> impl Future<Output = Next> + Send;
}

/// Runs `lp` against `store` until `shutdown` fires.
pub async fn drive<S: Store, L: ControlLoop>(store: &S, mut lp: L, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(50);
    'restart: loop {
        let (state, mut stream) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = store.subscribe() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(control_loop = L::NAME, error = %e, "cannot watch the store; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue 'restart;
                }
            },
        };
        backoff = Duration::from_millis(50);
        lp.reset(&state);
        let mut seen = state.index();
        let mut dirty = Dirty::everything();
        let mut state = Some(state);
        let mut recheck: Option<(tokio::time::Instant, Dirty)> = None;
        loop {
            if !dirty.is_empty() {
                let snapshot = match state.take() {
                    Some(s) if s.index() >= seen => s,
                    _ => match store.state().await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(control_loop = L::NAME, error = %e, "cannot read the store");
                            continue 'restart;
                        }
                    },
                };
                seen = seen.max(snapshot.index());
                let began = std::time::Instant::now();
                let next = lp.run(snapshot, std::mem::take(&mut dirty)).await;
                crate::metrics::loop_ran(L::NAME, began.elapsed());
                if let Some((delay, keys)) = next.recheck {
                    let at = tokio::time::Instant::now() + delay;
                    recheck = Some(match recheck.take() {
                        Some((t, mut k)) => {
                            k.merge(keys);
                            (t.min(at), k)
                        }
                        None => (at, keys),
                    });
                }
            }
            let timer = async {
                match &recheck {
                    Some((at, _)) => tokio::time::sleep_until(*at).await,
                    None => std::future::pending().await,
                }
            };
            // Biased: commits already waiting (the loop's own among them)
            // are read before a timer can start a run on older figures.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                item = stream.next() => {
                    let mut item = item;
                    // Take every commit that is already there, then run once.
                    loop {
                        match item {
                            Some(Ok(commit)) => {
                                seen = commit.index;
                                lp.touched(&commit, &mut dirty);
                            }
                            Some(Err(e)) => {
                                tracing::debug!(control_loop = L::NAME, error = %e, "watch broke; starting over");
                                continue 'restart;
                            }
                            None => continue 'restart,
                        }
                        match stream.next().now_or_never() {
                            Some(next) => item = next,
                            None => break,
                        }
                    }
                }
                () = timer => {
                    if let Some((_, keys)) = recheck.take() {
                        dirty.merge(keys);
                    }
                }
            }
        }
    }
}

/// What a [`Reconcile::reconcile`] asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the key changes again.
    Done,
    /// Look at the key again after this long, changed or not.
    RequeueAfter(Duration),
}

/// One reconciler: what an app writes to run its own control loop with a
/// [`Controller`].
///
/// # Contract
/// - `reconcile` is level-triggered and idempotent: it reads what it needs
///   from `state` (a snapshot holding every commit that triggered it),
///   writes through the store it holds, and may be called again for the
///   same key at any time.
/// - At most one `reconcile` runs at a time, so never two for one key.
/// - An error is logged and the key is requeued with exponential backoff
///   (100 ms doubling to 30 s); other keys go on.
pub trait Reconcile: Send + 'static {
    /// The loop's name, for logs.
    const NAME: &'static str;
    /// What `reconcile` fails with.
    type Error: std::fmt::Display + Send;

    /// The keys an event concerns (often the object's own id, or its
    /// service's); pushed onto `keys`.
    fn keys(&self, event: &Event, keys: &mut Vec<Id>);

    /// Every key there is in `state`: reconciled when the loop starts.
    fn all_keys(&self, state: &State) -> Vec<Id>;

    /// Makes the world right for `key`.
    fn reconcile(
        &mut self,
        key: &Id,
        state: &State,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;
}

/// Runs a [`Reconcile`] as a [`ControlLoop`]: once per changed key, with
/// requeues and backoff, each key on its own clock.
#[derive(Debug)]
pub struct Controller<R> {
    reconciler: R,
    /// Keys changed since the last run.
    changed: HashSet<Id>,
    /// When each requeued key is due.
    due: HashMap<Id, tokio::time::Instant>,
    /// The backoff of the keys whose last reconcile failed.
    failures: HashMap<Id, Duration>,
    scratch: Vec<Id>,
}

/// Why a reconcile did not succeed.
enum Failure<E> {
    Failed(E),
    Panicked,
}

/// The first delay after a failed reconcile.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest delay after failed reconciles.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl<R: Reconcile> Controller<R> {
    /// A controller of `reconciler`.
    pub fn new(reconciler: R) -> Self {
        Self {
            reconciler,
            changed: HashSet::new(),
            due: HashMap::new(),
            failures: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// The reconciler.
    pub fn reconciler(&self) -> &R {
        &self.reconciler
    }
}

impl<R: Reconcile> ControlLoop for Controller<R> {
    const NAME: &'static str = R::NAME;

    fn reset(&mut self, _state: &State) {
        // A fresh start reconciles every key; only failures keep their
        // backoff (and are retried with the rest).
        self.changed.clear();
        self.due.clear();
    }

    fn touched(&mut self, commit: &Commit, dirty: &mut Dirty) {
        for event in &commit.events {
            self.reconciler.keys(event, &mut self.scratch);
        }
        for key in self.scratch.drain(..) {
            dirty.add(&key);
            self.changed.insert(key);
        }
    }

    async fn run(&mut self, state: State, dirty: Dirty) -> Next {
        let now = tokio::time::Instant::now();
        let mut keys: Vec<Id> = if dirty.all {
            let mut all = self.reconciler.all_keys(&state);
            all.extend(self.failures.keys().cloned());
            all
        } else {
            Vec::new()
        };
        keys.extend(self.changed.drain());
        keys.extend(
            self.due
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone()),
        );
        let mut seen = HashSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        for key in keys {
            self.due.remove(&key);
            // A reconcile that panics counts as one that failed: the loop
            // and the other keys go on.
            let outcome = std::panic::AssertUnwindSafe(self.reconciler.reconcile(&key, &state))
                .catch_unwind()
                .await
                .map_err(|_| Failure::Panicked)
                .and_then(|r| r.map_err(Failure::Failed));
            let requeue = match outcome.map_err(|e| match e {
                Failure::Failed(e) => e.to_string(),
                Failure::Panicked => "reconcile panicked".to_owned(),
            }) {
                Ok(Action::Done) => {
                    self.failures.remove(&key);
                    None
                }
                Ok(Action::RequeueAfter(d)) => {
                    self.failures.remove(&key);
                    Some(d)
                }
                Err(e) => {
                    let backoff = self
                        .failures
                        .get(&key)
                        .map_or(FIRST_BACKOFF, |d| (*d * 2).min(MAX_BACKOFF));
                    self.failures.insert(key.clone(), backoff);
                    tracing::warn!(control_loop = R::NAME, %key, error = %e, ?backoff, "reconcile failed; requeued");
                    Some(backoff)
                }
            };
            // A delay past any clock (Duration::MAX) means never.
            if let Some(at) = requeue.and_then(|d| tokio::time::Instant::now().checked_add(d)) {
                self.due.insert(key, at);
            }
        }
        // Wake up when the next key is due (the key makes the driver run;
        // which keys are due is this controller's to tell).
        match self.due.iter().min_by_key(|(_, at)| **at) {
            Some((key, at)) => {
                let mut wake = Dirty::default();
                wake.add(key);
                Next::retry(
                    at.saturating_duration_since(tokio::time::Instant::now()),
                    wake,
                )
            }
            None => Next::done(),
        }
    }
}

/// Makes an app's control loop for a manager's store each time the
/// manager starts leading; see [`control_loop`].
pub type LoopFactory<S> = Arc<dyn Fn(S, CancellationToken) -> BoxFuture<'static, ()> + Send + Sync>;

/// A [`LoopFactory`] running the loop `make` builds, with [`drive`], until
/// its token is cancelled (leadership moved, or the manager stops).
pub fn control_loop<S, L, F>(make: F) -> LoopFactory<S>
where
    S: Store + Clone,
    L: ControlLoop + 'static,
    F: Fn(&S) -> L + Send + Sync + 'static,
{
    Arc::new(move |store: S, stop: CancellationToken| {
        let lp = make(&store);
        Box::pin(async move { drive(&store, lp, stop).await })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Meta, Object, Service, ServiceSpec};
    use crate::store::{Change, MemoryStore};
    use std::sync::Mutex;
    use tokio::time::Instant;

    type Calls = Arc<Mutex<Vec<(String, Instant)>>>;

    /// Records each call; fails `bad` twice.
    struct Recorder {
        calls: Calls,
        failures_left: u32,
    }

    impl Reconcile for Recorder {
        const NAME: &'static str = "recorder";
        type Error = String;

        fn keys(&self, event: &Event, keys: &mut Vec<Id>) {
            if let Object::Service(s) = event.object() {
                keys.push(s.meta.id.clone());
            }
        }
        fn all_keys(&self, state: &State) -> Vec<Id> {
            state.services().map(|s| s.meta.id.clone()).collect()
        }
        async fn reconcile(&mut self, key: &Id, _state: &State) -> Result<Action, String> {
            self.calls
                .lock()
                .unwrap()
                .push((key.to_string(), Instant::now()));
            match key.as_str() {
                "bad" if self.failures_left > 0 => {
                    self.failures_left -= 1;
                    Err("not yet".into())
                }
                "boom" if self.failures_left > 0 => {
                    self.failures_left -= 1;
                    panic!("a bug in the app's reconcile")
                }
                "never" => Ok(Action::RequeueAfter(Duration::MAX)),
                "ticking" => Ok(Action::RequeueAfter(Duration::from_secs(10))),
                _ => Ok(Action::Done),
            }
        }
    }

    fn service(id: &str) -> Object {
        Object::from(Service {
            meta: Meta::new(id.into()),
            spec: ServiceSpec::replicated(id, 1, vec!["true".into()]),
            history: Vec::new(),
            update_status: None,
            endpoint: Default::default(),
        })
    }

    /// A store holding services `ids`, and a controller of a [`Recorder`]
    /// failing `failures_left` times driven over it: the store, the calls,
    /// the stop token and the driver.
    async fn driven(
        ids: &[&str],
        failures_left: u32,
    ) -> (
        Arc<MemoryStore>,
        Calls,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let store = Arc::new(MemoryStore::new());
        for id in ids {
            store
                .apply(vec![Change::Create(service(id))])
                .await
                .unwrap();
        }
        let calls: Calls = Arc::default();
        let stop = CancellationToken::new();
        let lp = Controller::new(Recorder {
            calls: calls.clone(),
            failures_left,
        });
        let handle = tokio::spawn({
            let store = store.clone();
            let stop = stop.clone();
            async move { drive(&store, lp, stop).await }
        });
        (store, calls, stop, handle)
    }

    #[tokio::test(start_paused = true)]
    async fn reconciles_each_changed_key_once_and_backs_off_on_errors() {
        let began = Instant::now();
        let (store, calls, stop, driven) = driven(&["good", "bad", "ticking"], 2).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
        let at = |key: &str| -> Vec<Duration> {
            calls
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, t)| *t - began)
                .collect()
        };
        assert_eq!(at("good"), [Duration::ZERO], "once, at the start");
        let bad = at("bad");
        assert_eq!(bad.len(), 3, "twice failed, then done: {bad:?}");
        assert_eq!(bad[1] - bad[0], FIRST_BACKOFF);
        assert_eq!(bad[2] - bad[1], FIRST_BACKOFF * 2, "the backoff doubles");
        assert_eq!(
            at("ticking"),
            [Duration::ZERO, Duration::from_secs(10)],
            "requeued as asked"
        );

        // A change to one key reconciles that key alone.
        let mut good = store
            .state()
            .await
            .unwrap()
            .service("good")
            .unwrap()
            .as_ref()
            .clone();
        good.spec.labels.insert("k".into(), "v".into());
        store
            .apply(vec![Change::Update(Object::from(good))])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(at("good").len(), 2);
        assert_eq!(at("bad").len(), 3);
        stop.cancel();
        driven.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_reconcile_is_retried_and_never_means_never() {
        let (_store, calls, stop, driven) = driven(&["boom", "never"], 1).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let count = |key: &str| {
            calls
                .lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| k == key)
                .count()
        };
        assert_eq!(count("boom"), 2, "panicked once, retried after the backoff");
        assert_eq!(count("never"), 1);
        assert!(!driven.is_finished(), "the loop goes on");
        stop.cancel();
        driven.await.unwrap();
    }
}
