//! The runtime's configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use swarm_core::model::Resources;

/// What is wrong with a [`ProcessRuntimeConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The state directory is not an absolute path.
    #[error("invalid state directory {0:?}: it must be an absolute path")]
    RelativeStateDir(PathBuf),
    /// The log buffer would hold no lines.
    #[error("invalid log buffer size 0: keep at least one line per task")]
    NoLogLines,
    /// The hostname override is empty.
    #[error("invalid hostname \"\": give a name, or leave it unset to use the machine's")]
    EmptyHostname,
    /// The maximal line length is zero.
    #[error("invalid maximal log line length 0: allow at least one byte")]
    NoLineLength,
}

/// How a [`ProcessRuntime`](crate::ProcessRuntime) runs its tasks.
///
/// The default works: state under the system's temporary directory, the
/// machine's hostname and resources, 10 000 log lines kept per task.
///
/// ```
/// use swarm_runtime_process::ProcessRuntimeConfig;
///
/// let config = ProcessRuntimeConfig::default()
///     .with_hostname("worker-1")
///     .with_log_lines(1_000)
///     .with_engine_label("runtime", "process");
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRuntimeConfig {
    /// Where each task gets its private directory (`<state_dir>/<task id>`,
    /// holding `secrets/` and `configs/`). Created on first use.
    pub state_dir: PathBuf,
    /// Where tasks' secret and config files go (`<files_dir>/<task id>`,
    /// removed when the task ends): a memory filesystem, so that they never
    /// reach a disk. `None` (the default): `/dev/shm/swarm-files` where
    /// `/dev/shm` is a tmpfs, else `<state_dir>/files`.
    pub files_dir: Option<PathBuf>,
    /// The hostname reported by `info`; `None` reports the machine's. An
    /// in-process cluster gives each of its nodes its own.
    pub hostname: Option<String>,
    /// The resources reported by `info`; `None` reports the machine's CPUs
    /// and memory. An in-process cluster can make its nodes look smaller.
    pub resources: Option<Resources>,
    /// Labels reported as the engine's labels, for `engine.labels.*`
    /// constraints.
    pub engine_labels: BTreeMap<String, String>,
    /// How many lines of output are kept per task (stdout and stderr
    /// together); older lines are dropped.
    pub log_lines: usize,
    /// Longer lines are split into pieces of this many bytes.
    pub max_line_bytes: usize,
    /// Variables of the runtime's own environment passed on to tasks. A
    /// task gets these, then its spec's `env`, then the `SWARM_*`
    /// variables; nothing else of the runtime's environment leaks into it.
    pub inherited_env: Vec<String>,
}

impl Default for ProcessRuntimeConfig {
    fn default() -> Self {
        Self {
            state_dir: std::env::temp_dir()
                .join(format!("swarm-process-runtime-{}", std::process::id())),
            files_dir: None,
            hostname: None,
            resources: None,
            engine_labels: BTreeMap::new(),
            log_lines: 10_000,
            max_line_bytes: 64 * 1024,
            inherited_env: ["PATH", "HOME", "LANG", "TZ"].map(String::from).to_vec(),
        }
    }
}

impl ProcessRuntimeConfig {
    /// Sets [`state_dir`](Self::state_dir).
    #[must_use]
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Sets [`files_dir`](Self::files_dir).
    #[must_use]
    pub fn with_files_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.files_dir = Some(dir.into());
        self
    }

    /// Where tasks' secret and config files go: [`files_dir`](Self::files_dir)
    /// or its default.
    #[must_use]
    pub fn files_root(&self) -> PathBuf {
        self.files_dir.clone().unwrap_or_else(|| {
            let shm = std::path::Path::new("/dev/shm");
            if is_tmpfs(shm) {
                shm.join("swarm-files")
            } else {
                self.state_dir.join("files")
            }
        })
    }

    /// Sets [`hostname`](Self::hostname).
    #[must_use]
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// Sets [`resources`](Self::resources).
    #[must_use]
    pub fn with_resources(mut self, resources: Resources) -> Self {
        self.resources = Some(resources);
        self
    }

    /// Adds an engine label.
    #[must_use]
    pub fn with_engine_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.engine_labels.insert(key.into(), value.into());
        self
    }

    /// Sets [`log_lines`](Self::log_lines).
    #[must_use]
    pub fn with_log_lines(mut self, lines: usize) -> Self {
        self.log_lines = lines;
        self
    }

    /// Sets [`max_line_bytes`](Self::max_line_bytes).
    #[must_use]
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// Sets [`inherited_env`](Self::inherited_env).
    #[must_use]
    pub fn with_inherited_env<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inherited_env = names.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.state_dir.is_absolute() {
            return Err(ConfigError::RelativeStateDir(self.state_dir.clone()));
        }
        if self.log_lines == 0 {
            return Err(ConfigError::NoLogLines);
        }
        if self.max_line_bytes == 0 {
            return Err(ConfigError::NoLineLength);
        }
        if self.hostname.as_deref() == Some("") {
            return Err(ConfigError::EmptyHostname);
        }
        Ok(())
    }
}

/// Whether `path` is on a tmpfs (memory).
#[must_use]
pub fn is_tmpfs(path: &std::path::Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_settings_are_named() {
        ProcessRuntimeConfig::default().validate().unwrap();
        let err = ProcessRuntimeConfig::default()
            .with_state_dir("rel")
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid state directory \"rel\": it must be an absolute path"
        );
        assert_eq!(
            ProcessRuntimeConfig::default().with_log_lines(0).validate(),
            Err(ConfigError::NoLogLines)
        );
        assert_eq!(
            ProcessRuntimeConfig::default().with_hostname("").validate(),
            Err(ConfigError::EmptyHostname)
        );
        assert_eq!(
            ProcessRuntimeConfig::default()
                .with_max_line_bytes(0)
                .validate(),
            Err(ConfigError::NoLineLength)
        );
    }
}
