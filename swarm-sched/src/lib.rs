#![doc = include_str!("../README.md")]

mod batch;
mod cluster;
mod config;
mod filter;
mod heap;
mod memo;
mod order;
mod place;
mod plug;
mod rank;
mod reason;
mod spread;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, TryLockError};

use swarm_core::model::Task;
use swarm_core::sched::{Decision, NodeInfo, Scheduler};

pub use config::{ConfigError, SchedulerConfig};
pub use plug::{Builtin, Candidate, Filter, Rank, Strategy};

use plug::{Filters, Ranking, Step};

/// The placement scheduler: filters, spread preferences and ranking, as
/// described in the [crate documentation](crate).
///
/// It remembers what it read of the nodes between calls (their readiness,
/// capacity and order by id, keyed by each node's `Arc`), so that a call
/// reads only the nodes that changed; clones share that memory.
///
/// [`SwarmScheduler::builder`] adds filters of an app's own, removes or
/// replaces built-in ones, and swaps the ranking.
#[derive(Debug, Clone)]
pub struct SwarmScheduler {
    config: SchedulerConfig,
    filters: Filters,
    ranking: Ranking,
    memo: Arc<Mutex<memo::Memo>>,
}

impl Default for SwarmScheduler {
    fn default() -> Self {
        Self::builder()
            .build()
            .expect("the default scheduler is valid")
    }
}

impl SwarmScheduler {
    /// A scheduler with `config` and the built-in filters, once it is
    /// valid.
    pub fn new(config: SchedulerConfig) -> Result<Self, ConfigError> {
        Self::builder().config(config).build()
    }

    /// A builder, starting from the defaults.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder {
            config: SchedulerConfig::default(),
            filters: Filters::default(),
            rank: None,
            error: None,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }
}

impl Scheduler for SwarmScheduler {
    /// Decides every task, returning the decisions in the order of `tasks`.
    fn schedule(&self, nodes: &[NodeInfo], tasks: &[Arc<Task>]) -> Vec<Decision> {
        if tasks.is_empty() {
            return Vec::new();
        }
        self.with_memo(|memo| {
            place::schedule(
                &self.config,
                &self.filters,
                &self.ranking,
                memo,
                nodes,
                tasks,
            )
        })
    }

    /// Reads the nodes that changed since the last call.
    fn observe(&self, nodes: &[NodeInfo]) {
        self.with_memo(|memo| memo.refresh(nodes));
    }
}

impl SwarmScheduler {
    /// Runs `f` with the memo, which `f` brings up to `nodes`.
    fn with_memo<T>(&self, f: impl FnOnce(&mut memo::Memo) -> T) -> T {
        let mut fresh;
        let mut guard;
        let memo: &mut memo::Memo = match self.memo.try_lock() {
            Ok(g) => {
                guard = g;
                &mut guard
            }
            // A call that panicked may have left it half-refreshed.
            Err(TryLockError::Poisoned(p)) => {
                self.memo.clear_poison();
                guard = p.into_inner();
                *guard = memo::Memo::default();
                &mut guard
            }
            // A clone busy in another thread: this call reads every node.
            Err(TryLockError::WouldBlock) => {
                fresh = memo::Memo::default();
                &mut fresh
            }
        };
        f(memo)
    }
}

/// Builds a [`SwarmScheduler`]: its settings, its filter chain and its
/// ranking.
///
/// ```
/// use swarm_core::model::Task;
/// use swarm_sched::{Builtin, Candidate, Filter, Strategy, SwarmScheduler};
///
/// /// Only nodes labelled `pick=me`.
/// #[derive(Debug)]
/// struct PickMe;
///
/// impl Filter for PickMe {
///     fn name(&self) -> &str {
///         "pick-me"
///     }
///     fn accepts(&self, node: &Candidate<'_>, _task: &Task) -> bool {
///         node.node().spec.labels.get("pick").is_some_and(|v| v == "me")
///     }
/// }
///
/// let scheduler = SwarmScheduler::builder()
///     .strategy(Strategy::Binpack)
///     .filter(PickMe)
///     .without(Builtin::Platforms)
///     .build()
///     .unwrap();
/// # let _ = scheduler;
/// ```
#[derive(Debug)]
#[must_use]
pub struct SchedulerBuilder {
    config: SchedulerConfig,
    filters: Filters,
    rank: Option<Arc<dyn Rank>>,
    error: Option<ConfigError>,
}

impl SchedulerBuilder {
    /// Takes the settings of `config` (its strategy included).
    pub fn config(mut self, config: SchedulerConfig) -> Self {
        self.config = config;
        self
    }

    /// Ranks with a built-in strategy (and drops a custom ranking).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.config.strategy = strategy;
        self.rank = None;
        self
    }

    /// Ranks with the app's own ranking instead of a built-in strategy.
    /// The stock spread ranking has a fast path that others do not: a
    /// batch ranks every eligible node, `O(N + k log N)`.
    pub fn rank(mut self, rank: impl Rank) -> Self {
        self.rank = Some(Arc::new(rank));
        self
    }

    /// Adds the app's filter at the end of the chain.
    pub fn filter(mut self, filter: impl Filter) -> Self {
        self.filters.steps.push(Step::Custom(Arc::new(filter)));
        self
    }

    /// Removes a built-in filter (not [`Builtin::Ready`]).
    pub fn without(mut self, builtin: Builtin) -> Self {
        self.check_removable(builtin);
        self.filters
            .steps
            .retain(|s| !matches!(s, Step::Builtin(b) if *b == builtin));
        self
    }

    /// Puts the app's `filter` where the built-in one ran (not
    /// [`Builtin::Ready`]).
    pub fn replace(mut self, builtin: Builtin, filter: impl Filter) -> Self {
        self.check_removable(builtin);
        let filter: Arc<dyn Filter> = Arc::new(filter);
        for step in &mut self.filters.steps {
            if matches!(step, Step::Builtin(b) if *b == builtin) {
                *step = Step::Custom(filter.clone());
            }
        }
        self
    }

    fn check_removable(&mut self, builtin: Builtin) {
        let error = if builtin == Builtin::Ready {
            Some(ConfigError::ReadyIsRequired)
        } else if !self.filters.has(builtin) {
            Some(ConfigError::NoSuchBuiltin(builtin))
        } else {
            None
        };
        if self.error.is_none() {
            self.error = error;
        }
    }

    /// The scheduler, or what is wrong with its settings.
    pub fn build(self) -> Result<SwarmScheduler, ConfigError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.config.validate()?;
        let mut filters = self.filters;
        filters.settle();
        let ranking = match self.rank {
            Some(r) => Ranking::Custom(r),
            None => Ranking::Strategy(self.config.strategy),
        };
        Ok(SwarmScheduler {
            config: self.config,
            filters,
            ranking,
            memo: Arc::default(),
        })
    }
}
