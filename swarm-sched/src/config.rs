//! The scheduler's configuration.

use crate::plug::{Builtin, Strategy};

/// How [`SwarmScheduler`](crate::SwarmScheduler) ranks nodes.
///
/// ```
/// use swarm_sched::SchedulerConfig;
///
/// let config = SchedulerConfig::default().max_failures(3);
/// assert!(config.validate().is_ok());
/// assert!(SchedulerConfig::default().max_failures(0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub(crate) max_failures: u32,
    pub(crate) strategy: Strategy,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            strategy: Strategy::Spread,
        }
    }
}

impl SchedulerConfig {
    /// How eligible nodes are ranked (default [`Strategy::Spread`], as
    /// Docker; [`Strategy::Binpack`] fills nodes one by one, as Nomad).
    #[must_use]
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The number of recent failures of a service's tasks on a node
    /// ([`NodeInfo::recent_failures`](swarm_core::sched::NodeInfo::recent_failures))
    /// from which the node ranks after every other eligible node for that
    /// service. It is still used when no other node fits. Default 5, as
    /// Docker; `u32::MAX` practically turns the penalty off.
    #[must_use]
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_failures == 0 {
            return Err(ConfigError::ZeroMaxFailures);
        }
        Ok(())
    }
}

/// What is wrong with a [`SchedulerConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `max_failures` was 0, which would rank every node last.
    #[error(
        "invalid scheduler config: max_failures is 0, which would rank every node last; \
         use at least 1 (default 5), or u32::MAX to ignore failures"
    )]
    ZeroMaxFailures,
    /// The readiness filter was removed or replaced.
    #[error(
        "invalid scheduler: the built-in ready filter cannot be removed or replaced (a task \
         must never go to a node that is down, paused or drained); add a filter of your own \
         instead"
    )]
    ReadyIsRequired,
    /// A built-in filter was removed or replaced twice.
    #[error("invalid scheduler: the built-in {0:?} filter is not in the chain any more")]
    NoSuchBuiltin(Builtin),
}
