#![doc = include_str!("../README.md")]

mod batch;
mod cluster;
mod config;
mod filter;
mod heap;
mod memo;
mod order;
mod place;
mod rank;
mod reason;
mod spread;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, TryLockError};

use swarm_core::model::Task;
use swarm_core::sched::{Decision, NodeInfo, Scheduler};

pub use config::{ConfigError, SchedulerConfig};

/// The placement scheduler: filters, spread preferences and ranking, as
/// described in the [crate documentation](crate).
///
/// It remembers what it read of the nodes between calls (their readiness,
/// capacity and order by id, keyed by each node's `Arc`), so that a call
/// reads only the nodes that changed; clones share that memory.
#[derive(Debug, Clone, Default)]
pub struct SwarmScheduler {
    config: SchedulerConfig,
    memo: Arc<Mutex<memo::Memo>>,
}

impl SwarmScheduler {
    /// A scheduler with `config`, once it is valid.
    pub fn new(config: SchedulerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            memo: Arc::default(),
        })
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
        self.with_memo(|memo| place::schedule(&self.config, memo, nodes, tasks))
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
