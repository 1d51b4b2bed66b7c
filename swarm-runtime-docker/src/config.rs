//! Settings of a [`DockerRuntime`](crate::DockerRuntime).

use std::time::Duration;

use swarm_core::Id;

/// Settings of a [`DockerRuntime`](crate::DockerRuntime).
///
/// ```
/// use std::time::Duration;
/// use swarm_runtime_docker::DockerRuntimeConfig;
///
/// let config = DockerRuntimeConfig::default()
///     .with_node_id("node-1".into())
///     .with_pull(false)
///     .with_ingress_refresh(Duration::from_millis(500));
/// assert_eq!(config.node_id.as_ref().map(|n| n.as_str()), Some("node-1"));
/// ```
#[derive(Debug, Clone)]
pub struct DockerRuntimeConfig {
    /// The node this runtime works for. Its containers carry it in the
    /// `swarm.node.id` label, and [`list`](swarm_core::runtime::Runtime::list)
    /// names only the containers that carry it, so that several nodes can
    /// share one engine without adopting or removing each other's
    /// containers. `None`: every container with a `swarm.task.id` label.
    pub node_id: Option<Id>,
    /// Overrides the hostname the engine reports.
    pub hostname: Option<String>,
    /// Pull an image that is not on the engine yet (default: true). When
    /// false, a missing image rejects the task at once.
    pub pull: bool,
    /// How long a pull may take before the task is rejected.
    pub pull_timeout: Duration,
    /// Serve the ingress-published ports of this runtime's containers on
    /// the node (default: true); see the [crate docs](crate).
    pub ingress: bool,
    /// How often the ingress listeners are matched to the running
    /// containers, besides after every start, stop and removal.
    pub ingress_refresh: Duration,
    /// The image of the containers that hold tasks' network namespaces
    /// when the node gives tasks networks (as Kubernetes' pause image,
    /// run with its own command). `None` (the default): `swarm/sandbox`,
    /// made on first use from this machine's `sleep`, with no registry.
    pub sandbox_image: Option<String>,
    /// Where the node keeps its tasks' secret and config files
    /// (`<files_dir>/<task id>`, removed when the task ends), to bind them
    /// read-only into the containers: a tmpfs, so that they reach neither
    /// a disk nor a container's writable layer. The engine must see this
    /// path as the runtime does, so it runs on this node. `None`: the files
    /// are copied into the container (its writable layer), for an engine
    /// on another machine. Default: `/dev/shm/swarm-files` when the engine
    /// is reached through its unix socket (`DOCKER_HOST` unset or
    /// `unix://`), else `None`.
    pub files_dir: Option<std::path::PathBuf>,
}

/// The default [`DockerRuntimeConfig::files_dir`].
fn default_files_dir() -> Option<std::path::PathBuf> {
    let local =
        std::env::var("DOCKER_HOST").map_or(true, |h| h.is_empty() || h.starts_with("unix://"));
    local.then(|| std::path::PathBuf::from("/dev/shm/swarm-files"))
}

impl Default for DockerRuntimeConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            hostname: None,
            pull: true,
            pull_timeout: Duration::from_secs(120),
            ingress: true,
            ingress_refresh: Duration::from_secs(1),
            sandbox_image: None,
            files_dir: default_files_dir(),
        }
    }
}

impl DockerRuntimeConfig {
    /// Scopes the runtime to node `id`.
    #[must_use]
    pub fn with_node_id(mut self, id: Id) -> Self {
        self.node_id = Some(id);
        self
    }

    /// Overrides the hostname the node reports.
    #[must_use]
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// Whether to pull images that are not on the engine.
    #[must_use]
    pub fn with_pull(mut self, pull: bool) -> Self {
        self.pull = pull;
        self
    }

    /// Whether to serve ingress-published ports.
    #[must_use]
    pub fn with_ingress(mut self, ingress: bool) -> Self {
        self.ingress = ingress;
        self
    }

    /// The image that holds tasks' network namespaces.
    #[must_use]
    pub fn with_sandbox_image(mut self, image: impl Into<String>) -> Self {
        self.sandbox_image = Some(image.into());
        self
    }

    /// How often the ingress listeners are refreshed.
    #[must_use]
    pub fn with_ingress_refresh(mut self, every: Duration) -> Self {
        self.ingress_refresh = every;
        self
    }
}
