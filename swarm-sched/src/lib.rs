#![doc = include_str!("../README.md")]

mod batch;
mod cluster;
mod config;
mod filter;
mod heap;
mod order;
mod place;
mod rank;
mod reason;
mod spread;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use swarm_core::model::Task;
use swarm_core::sched::{Decision, NodeInfo, Scheduler};

pub use config::{ConfigError, SchedulerConfig};

/// The placement scheduler: filters, spread preferences and ranking, as
/// described in the [crate documentation](crate).
#[derive(Debug, Clone, Default)]
pub struct SwarmScheduler {
    config: SchedulerConfig,
}

impl SwarmScheduler {
    /// A scheduler with `config`, once it is valid.
    pub fn new(config: SchedulerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config })
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
        place::schedule(&self.config, nodes, tasks)
    }
}
