//! The engine under every control loop: watch the store, collect what a
//! commit touched, run the loop on a fresh snapshot, repeat.
//!
//! A loop is level-triggered: a trigger only says "look again at these
//! keys"; duplicate triggers collapse; a failed run is retried after a
//! backoff; the loop restarts from a fresh snapshot if its watch breaks.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::Id;
use crate::store::{Commit, State, Store};

/// The keys (service ids, task ids, ...) a loop must look at again.
#[derive(Debug, Default, Clone)]
pub(crate) struct Dirty {
    /// Everything.
    pub all: bool,
    /// These keys.
    pub keys: HashSet<Id>,
}

impl Dirty {
    pub(crate) fn everything() -> Self {
        Self {
            all: true,
            keys: HashSet::new(),
        }
    }
    pub(crate) fn add(&mut self, id: &Id) {
        if !self.all {
            self.keys.insert(id.clone());
        }
    }
    pub(crate) fn merge(&mut self, other: Dirty) {
        if other.all {
            *self = Self::everything();
        } else if !self.all {
            self.keys.extend(other.keys);
        }
    }
    pub(crate) fn is_empty(&self) -> bool {
        !self.all && self.keys.is_empty()
    }
}

/// What a run asks for next.
#[derive(Debug, Default)]
pub(crate) struct Next {
    /// Look at these keys again after this delay (restart delays, retries).
    pub recheck: Option<(Duration, Dirty)>,
}

impl Next {
    pub(crate) fn done() -> Self {
        Self::default()
    }
    pub(crate) fn retry(delay: Duration, dirty: Dirty) -> Self {
        Self {
            recheck: Some((delay, dirty)),
        }
    }
    /// Keeps the earliest recheck of the two.
    pub(crate) fn merge(&mut self, other: Next) {
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

/// One control loop.
pub(crate) trait ControlLoop: Send {
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
pub(crate) async fn drive<S: Store, L: ControlLoop>(
    store: &S,
    mut lp: L,
    shutdown: CancellationToken,
) {
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
                let next = lp.run(snapshot, std::mem::take(&mut dirty)).await;
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
