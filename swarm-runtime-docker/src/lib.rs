#![doc = include_str!("../README.md")]

mod config;
mod error;
mod image;
mod ingress;
mod logs;
mod spec;
#[cfg(feature = "testing")]
pub mod testing;
mod time;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum, SystemInfo,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use swarm_core::Id;
use swarm_core::model::{GenericResource, NodeDescription, Platform, Resources, Task};
use swarm_core::network::Sandbox;
use swarm_core::runtime::{
    Enforcement, ExitStatus, Health, LogOptions, LogStream, Runtime, RuntimeError, RuntimeInfo,
    RuntimeState, RuntimeStatus, TaskFile,
};
use tokio::task::JoinHandle;

pub use config::DockerRuntimeConfig;
pub use image::SANDBOX_IMAGE_REPO;
pub use spec::{
    LABEL_INGRESS, LABEL_NODE_ID, LABEL_SANDBOX, LABEL_SERVICE_ID, LABEL_SERVICE_NAME,
    LABEL_TASK_ID, LABEL_TASK_NAME, SECRETS_DIR,
};

use error::{daemon_down, engine_error, message, status, task_error, unreachable};
use ingress::Ingress;

/// How long a container may take to go after SIGKILL before `stop` gives
/// up.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long `wait` keeps asking an engine that stopped answering.
const ENGINE_PATIENCE: Duration = Duration::from_secs(30);

/// Runs tasks as Docker containers; see the [crate docs](crate) for how a
/// task maps onto a container.
///
/// Cheap to clone: clones share the engine connection, the ingress
/// listeners and the cache of container ids.
#[derive(Clone)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    config: DockerRuntimeConfig,
    /// Task id → container id, for the containers seen so far. The engine
    /// is the truth: a miss asks it, and a container that is gone is
    /// forgotten.
    containers: Mutex<HashMap<Id, String>>,
    ingress: Option<(Arc<Ingress>, JoinHandle<()>)>,
    /// The sandbox image made on first need.
    sandbox_image: tokio::sync::OnceCell<String>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.ingress {
            task.abort();
        }
    }
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// Connects to the engine the way the `docker` CLI does (`DOCKER_HOST`,
    /// else `/var/run/docker.sock`) and agrees on an API version with it.
    pub async fn connect(config: DockerRuntimeConfig) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_defaults().map_err(|e| daemon_down(&e))?;
        Self::with_client(docker, config).await
    }

    /// A runtime over an engine connection of the caller's.
    pub async fn with_client(
        docker: Docker,
        config: DockerRuntimeConfig,
    ) -> Result<Self, RuntimeError> {
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| daemon_down(&e))?;
        let ingress = config.ingress.then(|| {
            Ingress::start(
                docker.clone(),
                config.node_id.clone(),
                config.ingress_refresh,
            )
        });
        Ok(Self {
            inner: Arc::new(Inner {
                docker,
                config,
                containers: Mutex::new(HashMap::new()),
                ingress,
                sandbox_image: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The runtime's configuration.
    #[must_use]
    pub fn config(&self) -> &DockerRuntimeConfig {
        &self.inner.config
    }

    /// The engine connection.
    #[must_use]
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }

    /// What `image`'s registry says of it, asked through this node's
    /// engine (its `/distribution`, with the engine's own registry access):
    /// the manifest's digest and every platform it serves, which `docker
    /// service create` pins the service to.
    ///
    /// # Errors
    /// Why the engine could not say (no registry reachable, an image
    /// built or imported here, an unknown name).
    pub async fn registry_digest(&self, image: &str) -> Result<RegistryDigest, RuntimeError> {
        let found = self
            .inner
            .docker
            .inspect_registry_image(image, None)
            .await
            .map_err(|e| engine_error("ask the registry about an image", &e))?;
        let d = found.descriptor;
        Ok(RegistryDigest {
            digest: d.digest.unwrap_or_default(),
            media_type: d.media_type.unwrap_or_default(),
            size: d.size.unwrap_or_default(),
            platforms: found
                .platforms
                .into_iter()
                .map(|p| ImagePlatform {
                    os: p.os.unwrap_or_default(),
                    architecture: p.architecture.unwrap_or_default(),
                    variant: p.variant.unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// The ingress ports this node serves now, each with the addresses of
    /// the containers behind it.
    #[must_use]
    pub fn ingress_ports(&self) -> BTreeMap<u16, Vec<SocketAddr>> {
        self.inner
            .ingress
            .as_ref()
            .map(|(i, _)| i.published())
            .unwrap_or_default()
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<Id, String>> {
        self.inner
            .containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn poke_ingress(&self) {
        if let Some((i, _)) = &self.inner.ingress {
            i.poke();
        }
    }

    /// The label filter naming this runtime's containers, plus `extra`.
    fn filters(&self, extra: Option<String>) -> HashMap<String, Vec<String>> {
        spec::scope_filter(LABEL_TASK_ID, self.inner.config.node_id.as_ref(), extra)
    }

    /// Removes a container with its anonymous volumes, killing it first if
    /// it runs.
    async fn force_remove(&self, container: &str) -> Result<(), bollard::errors::Error> {
        self.inner
            .docker
            .remove_container(
                container,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..RemoveContainerOptions::default()
                }),
            )
            .await
    }

    /// Copies the task's secret and config files into its container.
    async fn upload(&self, container: &str, files: &[TaskFile]) -> Result<(), RuntimeError> {
        let archive = spec::files_archive(files)?;
        // As a stream, so that the bytes are never logged (bollard traces
        // whole bodies).
        let body = bollard::body_stream(futures::stream::once(std::future::ready(
            bytes::Bytes::from(archive),
        )));
        self.inner
            .docker
            .upload_to_container(
                container,
                Some(UploadToContainerOptions {
                    path: "/".into(),
                    ..UploadToContainerOptions::default()
                }),
                body,
            )
            .await
            .map_err(|e| {
                if unreachable(&e) {
                    daemon_down(&e)
                } else {
                    RuntimeError::InvalidSpec(format!(
                        "cannot put the task's secret and config files into its container: {}",
                        message(&e)
                    ))
                }
            })
    }

    /// Asks the engine for the container of task `id`.
    async fn find(&self, id: &Id) -> Result<Option<String>, RuntimeError> {
        let found = self
            .inner
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(self.filters(Some(format!("{LABEL_TASK_ID}={id}")))),
                ..ListContainersOptions::default()
            }))
            .await
            .map_err(|e| engine_error("list containers", &e))?;
        let container = found.into_iter().find_map(|c| c.id);
        if let Some(c) = &container {
            self.cache().insert(id.clone(), c.clone());
        }
        Ok(container)
    }

    /// The container of task `id`, or `NotFound`.
    async fn container(&self, id: &Id) -> Result<String, RuntimeError> {
        if let Some(c) = self.cache().get(id) {
            return Ok(c.clone());
        }
        self.find(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))
    }

    /// Maps an error of a call on task `id`'s container; a container that
    /// is gone is forgotten.
    fn failed(&self, id: &Id, what: &str, e: &bollard::errors::Error) -> RuntimeError {
        let err = task_error(id, what, e);
        if matches!(err, RuntimeError::NotFound(_)) {
            self.cache().remove(id);
        }
        err
    }

    async fn inspect_container(
        &self,
        id: &Id,
        container: &str,
    ) -> Result<ContainerInspectResponse, RuntimeError> {
        self.inner
            .docker
            .inspect_container(container, None)
            .await
            .map_err(|e| self.failed(id, "inspect", &e))
    }

    /// Makes sure the engine has `image`, pulling it if allowed.
    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        let docker = &self.inner.docker;
        match docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) if status(&e) == Some(400) => {
                return Err(RuntimeError::InvalidSpec(format!(
                    "invalid image {image:?}: {}",
                    message(&e)
                )));
            }
            Err(e) => return Err(engine_error("inspect an image", &e)),
        }
        let reference = with_tag(image);
        let config = &self.inner.config;
        if !config.pull {
            return Err(RuntimeError::InvalidSpec(format!(
                "image {reference} not found locally, and this node does not pull images: load it with `docker load` or `docker import`"
            )));
        }
        let pull = docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(reference.clone()),
                ..CreateImageOptions::default()
            }),
            None,
            None,
        );
        // The first error the pull reports, if any: the registry's (a
        // message), or the engine's own (the call may work later).
        let first_error = async {
            let mut pull = std::pin::pin!(pull);
            while let Some(item) = pull.next().await {
                match item {
                    Ok(info) => {
                        if let Some(m) = info.error_detail.and_then(|d| d.message) {
                            return Some(Ok(m));
                        }
                    }
                    Err(e) if unreachable(&e) => return Some(Err(daemon_down(&e))),
                    Err(e) => return Some(Ok(message(&e))),
                }
            }
            None
        };
        match tokio::time::timeout(config.pull_timeout, first_error).await {
            Ok(None) => Ok(()),
            Ok(Some(Err(down))) => Err(down),
            Ok(Some(Ok(m))) if error::no_registry(&m) => Err(RuntimeError::InvalidSpec(format!(
                "image {reference} not found locally and no registry reachable ({m})"
            ))),
            Ok(Some(Ok(m))) => Err(RuntimeError::InvalidSpec(format!(
                "image {reference} not found locally, and pulling it failed: {m}"
            ))),
            Err(_) => Err(RuntimeError::InvalidSpec(format!(
                "image {reference} not found locally, and pulling it took longer than {:?}",
                config.pull_timeout
            ))),
        }
    }

    /// `prepare` of a task whose container exists (it may have gone
    /// since: `NotFound`): made by a concurrent `prepare`, or by one that
    /// stopped half-way, so its files are copied again while it has not
    /// started (copying is idempotent).
    async fn prepared(
        &self,
        id: &Id,
        container: &str,
        files: &[TaskFile],
    ) -> Result<(), RuntimeError> {
        let state = state_of(&self.inspect_container(id, container).await?);
        if files.is_empty() {
            return Ok(());
        }
        if self.inner.config.files_dir.is_some() {
            // Bound from the node: written again, as they may have gone
            // (a tmpfs does not outlive the machine).
            if state == RuntimeState::Created || state == RuntimeState::Running {
                self.write_files(id, files).await?;
            }
        } else if state == RuntimeState::Created {
            self.upload(container, files).await?;
        }
        Ok(())
    }

    /// The node directory of task `id`'s files, when they are bound.
    fn files_of(&self, id: &Id) -> Option<std::path::PathBuf> {
        self.inner
            .config
            .files_dir
            .as_ref()
            .map(|root| root.join(id.as_str()))
    }

    /// Writes task `id`'s files into its node directory.
    async fn write_files(&self, id: &Id, files: &[TaskFile]) -> Result<(), RuntimeError> {
        let (Some(root), Some(dir)) = (self.inner.config.files_dir.clone(), self.files_of(id))
        else {
            return Ok(());
        };
        let files = files.to_vec();
        tokio::task::spawn_blocking(move || spec::write_files(&root, &dir, &files))
            .await
            .map_err(|e| {
                RuntimeError::Unavailable(format!("failed to write the task's files: {e}"))
            })?
    }

    /// Removes task `id`'s files from the node.
    async fn remove_files(&self, id: &Id) {
        if let Some(dir) = self.files_of(id) {
            let _ = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a task's files")
                }
            })
            .await;
        }
    }

    /// Returns once the container is no longer running. An engine that
    /// stops answering gets [`ENGINE_PATIENCE`] to come back (its
    /// containers may outlive it).
    async fn exited(
        &self,
        id: &Id,
        container: &str,
    ) -> Result<ContainerInspectResponse, RuntimeError> {
        let mut down_since: Option<std::time::Instant> = None;
        loop {
            let state = match self.inspect_container(id, container).await {
                Ok(state) => state,
                Err(RuntimeError::Unavailable(why)) => {
                    let since = *down_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > ENGINE_PATIENCE {
                        return Err(RuntimeError::Unavailable(why));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            down_since = None;
            match state_of(&state) {
                RuntimeState::Exited(_) => return Ok(state),
                RuntimeState::Running => {
                    // Ends when the container stops (or the connection
                    // does); the state is read again either way.
                    let mut wait = self.inner.docker.wait_container(
                        container,
                        Some(WaitContainerOptions {
                            condition: "not-running".into(),
                        }),
                    );
                    let _ = wait.next().await;
                }
                // Not started yet: it exits only after it has run.
                RuntimeState::Created => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `prepare`, or `prepare_in` when `sandbox` is given: the container
    /// then joins the network namespace of the task's sandbox container
    /// (which [`Runtime::hold_sandbox`] started).
    async fn prepare_with(
        &self,
        task: &Task,
        files: &[TaskFile],
        sandbox: Option<&Sandbox>,
    ) -> Result<(), RuntimeError> {
        let id = &task.meta.id;
        let known = self.cache().get(id).cloned();
        let existing = match known {
            Some(c) => Some(c),
            None => self.find(id).await?,
        };
        if let Some(container) = existing {
            match self.prepared(id, &container, files).await {
                // Removed behind the runtime's back: made anew below.
                Err(RuntimeError::NotFound(_)) => {}
                done => return done,
            }
        }
        let mut body = spec::create_body(task, self.inner.config.node_id.as_ref())?;
        if let Some(sandbox) = sandbox {
            // The embedded DNS answers a task on the overlays, from the
            // resolv.conf the node's driver writes.
            if task
                .spec
                .dns
                .as_ref()
                .is_some_and(|d| *d != swarm_core::model::DnsConfig::default())
            {
                return Err(RuntimeError::InvalidSpec(
                    "--dns, --dns-search and --dns-option cannot apply to a task on an overlay network yet: its resolver is the swarm's embedded DNS, which answers service names and forwards the rest to the node's resolvers; leave them out".into(),
                ));
            }
            // The node's driver publishes its ports; the userspace
            // ingress leaves it alone.
            let holder = spec::sandbox_name(task);
            spec::join_sandbox(&mut body, &holder, sandbox.resolv_conf.as_deref());
        } else if let Some((ingress, _)) = &self.inner.ingress {
            ingress
                .check(task)
                .await
                .map_err(RuntimeError::InvalidSpec)?;
        }
        if let Some(dir) = self.files_of(id)
            && !files.is_empty()
        {
            self.write_files(id, files).await?;
            spec::bind_files(&mut body, &dir, files);
        }
        self.ensure_image(&task.spec.image).await?;
        let name = spec::container_name(task);
        let created = self.create_named(&name, body).await;
        let container = match created {
            Ok(c) => c.id,
            Err(e) if status(&e) == Some(409) => {
                // A concurrent prepare of this task made it, or a stranger
                // holds the name.
                return match self.find(id).await? {
                    Some(container) => self.prepared(id, &container, files).await,
                    None => Err(RuntimeError::InvalidSpec(format!(
                        "a container named {name} already exists and is not this task's: remove it (docker rm -f {name})"
                    ))),
                };
            }
            Err(e) if unreachable(&e) => return Err(daemon_down(&e)),
            Err(e) => {
                return Err(RuntimeError::InvalidSpec(format!(
                    "docker cannot create the container: {}",
                    message(&e)
                )));
            }
        };
        if !files.is_empty()
            && self.inner.config.files_dir.is_none()
            && let Err(e) = self.upload(&container, files).await
        {
            if let Err(rm) = self.force_remove(&container).await {
                tracing::warn!(task_id = %id, error = %rm, "cannot remove a container whose files could not be copied");
            }
            return Err(e);
        }
        self.cache().insert(id.clone(), container);
        Ok(())
    }

    /// Removes task `id`'s own container (not its sandbox).
    async fn remove_container(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let cached = self.cache().get(task_id).cloned();
        let container = match cached {
            Some(c) => c,
            None => match self.find(task_id).await? {
                Some(c) => c,
                None => return Ok(()),
            },
        };
        let removed = self.force_remove(&container).await;
        self.poke_ingress();
        match removed {
            Ok(()) => {}
            Err(e) if status(&e) == Some(404) => {}
            Err(e) if unreachable(&e) => return Err(daemon_down(&e)),
            // 409: a removal is already under way; wait for it.
            Err(e) if status(&e) == Some(409) => {
                let gone = async {
                    loop {
                        match self.inspect_container(task_id, &container).await {
                            Err(RuntimeError::NotFound(_)) => return Ok(()),
                            Err(other) => return Err(other),
                            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                };
                match tokio::time::timeout(KILL_WAIT, gone).await {
                    Ok(Ok(())) => {}
                    Ok(Err(other)) => return Err(other),
                    Err(_) => return Err(self.failed(task_id, "remove", &e)),
                }
            }
            Err(e) => return Err(self.failed(task_id, "remove", &e)),
        }
        self.cache().remove(task_id);
        Ok(())
    }

    /// Creates container `name` from `body`.
    async fn create_named(
        &self,
        name: &str,
        body: bollard::models::ContainerCreateBody,
    ) -> Result<bollard::models::ContainerCreateResponse, bollard::errors::Error> {
        self.inner
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_owned()),
                    ..CreateContainerOptions::default()
                }),
                body,
            )
            .await
    }

    /// The image of sandbox containers, run with its own command.
    async fn sandbox_image(&self) -> Result<String, RuntimeError> {
        if let Some(image) = &self.inner.config.sandbox_image {
            self.ensure_image(image).await?;
            return Ok(image.clone());
        }
        let made = self
            .inner
            .sandbox_image
            .get_or_try_init(|| image::sandbox_image(&self.inner.docker))
            .await
            .map_err(|e| {
                RuntimeError::Unavailable(format!(
                    "cannot make the image that holds tasks' network namespaces ({e}): set \
                     DockerRuntimeConfig::sandbox_image to one the engine has"
                ))
            })?;
        Ok(made.clone())
    }

    /// Starts (or finds running) the container that holds `task`'s network
    /// namespace, and returns its process id.
    async fn sandbox_holder(&self, task: &Task) -> Result<u32, RuntimeError> {
        let docker = &self.inner.docker;
        let name = spec::sandbox_name(task);
        let pid_of = |c: &ContainerInspectResponse| {
            c.state
                .as_ref()
                .filter(|s| s.running == Some(true))
                .and_then(|s| s.pid)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0)
        };
        // A task container that runs holds its namespace itself, whatever
        // became of its sandbox: that namespace is the task's.
        let container = match self.container(&task.meta.id).await {
            Ok(c) => Some(c),
            Err(RuntimeError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        if let Some(container) = container
            && let Ok(c) = docker.inspect_container(&container, None).await
            && let Some(pid) = pid_of(&c)
        {
            return Ok(pid);
        }
        let ours = |c: &ContainerInspectResponse| {
            c.config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(LABEL_SANDBOX))
                .is_some_and(|t| t.as_str() == task.meta.id.as_str())
        };
        let stranger = || {
            RuntimeError::InvalidSpec(format!(
                "a container named {name} already exists and is not this task's sandbox: remove it (docker rm -f {name})"
            ))
        };
        match docker.inspect_container(&name, None).await {
            Ok(c) if !ours(&c) => return Err(stranger()),
            Ok(c) => {
                if let Some(pid) = pid_of(&c) {
                    return Ok(pid);
                }
                // It stopped, and its namespace went with it (no task
                // container runs in it): it is made anew.
                if let Err(e) = self.force_remove(&name).await
                    && status(&e) != Some(404)
                {
                    return Err(engine_error("remove a stopped sandbox", &e));
                }
            }
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(engine_error("inspect a sandbox", &e)),
        }
        let image = self.sandbox_image().await?;
        let body = spec::sandbox_body(task, self.inner.config.node_id.as_ref(), &image);
        let created = self.create_named(&name, body).await;
        match created {
            Ok(_) => {}
            // A concurrent call made it.
            Err(e) if status(&e) == Some(409) => {}
            Err(e) if unreachable(&e) => return Err(daemon_down(&e)),
            Err(e) => {
                return Err(RuntimeError::InvalidSpec(format!(
                    "docker cannot create the task's sandbox container: {}",
                    message(&e)
                )));
            }
        }
        match docker.start_container(&name, None).await {
            // 304: already started.
            Ok(()) => {}
            Err(e) if status(&e) == Some(304) => {}
            Err(e) => return Err(engine_error("start the task's sandbox", &e)),
        }
        let c = docker
            .inspect_container(&name, None)
            .await
            .map_err(|e| engine_error("inspect a sandbox", &e))?;
        if !ours(&c) {
            return Err(stranger());
        }
        pid_of(&c).ok_or_else(|| {
            RuntimeError::InvalidSpec(format!(
                "the sandbox container {name} exited at once: its image must keep running \
                 (it only holds the network namespace)"
            ))
        })
    }

    /// Kills the sandboxes of a task that ended: they need not sleep on
    /// until the task is reaped (`remove` removes them then), holding a
    /// namespace nothing uses.
    async fn end_sandboxes(&self, task_id: &Id) {
        // Its secrets go too.
        self.remove_files(task_id).await;
        let Ok(sandboxes) = self.sandboxes(Some(task_id)).await else {
            return;
        };
        // Not through `kill`: a sandbox already gone is no reason to
        // forget the task's own container.
        for (_, sandbox) in sandboxes {
            let _ = self
                .inner
                .docker
                .kill_container(
                    &sandbox,
                    Some(KillContainerOptions {
                        signal: "SIGKILL".into(),
                    }),
                )
                .await;
        }
    }

    /// The sandbox containers of this runtime: their ids, by task.
    async fn sandboxes(&self, task: Option<&Id>) -> Result<Vec<(Id, String)>, RuntimeError> {
        let found = self
            .inner
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(spec::scope_filter(
                    LABEL_SANDBOX,
                    self.inner.config.node_id.as_ref(),
                    task.map(|t| format!("{LABEL_SANDBOX}={t}")),
                )),
                ..ListContainersOptions::default()
            }))
            .await
            .map_err(|e| engine_error("list containers", &e))?;
        Ok(found
            .into_iter()
            .filter_map(|c| {
                let task = Id::from(c.labels.as_ref()?.get(LABEL_SANDBOX)?.as_str());
                Some((task, c.id?))
            })
            .collect())
    }

    async fn kill(&self, id: &Id, container: &str, signal: &str) -> Result<(), RuntimeError> {
        match self
            .inner
            .docker
            .kill_container(
                container,
                Some(KillContainerOptions {
                    signal: signal.into(),
                }),
            )
            .await
        {
            // 409: it is not running (any more).
            Err(e) if status(&e) == Some(409) => Ok(()),
            Err(e) => Err(self.failed(id, "signal", &e)),
            Ok(()) => Ok(()),
        }
    }
}

/// `image` with `:latest` when it names no tag or digest, as docker reads
/// it.
fn with_tag(image: &str) -> String {
    let name = image.rsplit('/').next().unwrap_or(image);
    if name.contains(':') || name.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// Docker's state as the runtime's.
fn state_of(c: &ContainerInspectResponse) -> RuntimeState {
    let state = c.state.as_ref();
    match state.and_then(|s| s.status) {
        Some(ContainerStateStatusEnum::CREATED) | None | Some(ContainerStateStatusEnum::EMPTY) => {
            RuntimeState::Created
        }
        Some(
            ContainerStateStatusEnum::RUNNING
            | ContainerStateStatusEnum::PAUSED
            | ContainerStateStatusEnum::RESTARTING
            | ContainerStateStatusEnum::STOPPING,
        ) => RuntimeState::Running,
        Some(
            ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::DEAD
            | ContainerStateStatusEnum::REMOVING,
        ) => RuntimeState::Exited(ExitStatus {
            code: state
                .and_then(|s| s.exit_code)
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(-1),
            // The engine gives 128 + the signal for a killed container,
            // and does not say whether a signal did it.
            signal: None,
        }),
    }
}

fn status_of(c: &ContainerInspectResponse) -> RuntimeStatus {
    let state = c.state.as_ref();
    let health = state
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .and_then(|h| match h {
            HealthStatusEnum::STARTING => Some(Health::Starting),
            HealthStatusEnum::HEALTHY => Some(Health::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
            HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
        });
    RuntimeStatus {
        state: state_of(c),
        health,
        runtime_id: c.id.as_ref().map(|id| id.chars().take(12).collect()),
        started_at: state
            .and_then(|s| s.started_at.as_deref())
            .and_then(time::parse),
    }
}

/// What the engine says of its machine.
fn describe(info: SystemInfo, hostname: Option<&str>) -> RuntimeInfo {
    let architecture = match info.architecture.as_deref() {
        Some("x86_64") => "amd64".to_owned(),
        Some("aarch64") => "arm64".to_owned(),
        Some(other) => other.to_owned(),
        None => Platform::current().architecture,
    };
    let positive = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
    RuntimeInfo {
        description: NodeDescription {
            data_addr: None,
            hostname: hostname
                .map(str::to_owned)
                .or(info.name)
                .unwrap_or_default(),
            platform: Platform {
                os: info.os_type.unwrap_or_else(|| "linux".into()),
                architecture,
            },
            resources: Resources {
                nano_cpus: positive(info.ncpu) * 1_000_000_000,
                memory_bytes: positive(info.mem_total),
            },
            engine_labels: info
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (l, String::new()),
                })
                .collect(),
            // dockerd's own `--node-generic-resource`s.
            generic_resources: info
                .generic_resources
                .unwrap_or_default()
                .into_iter()
                .filter_map(|r| {
                    if let Some(n) = r.named_resource_spec {
                        Some(GenericResource::Named {
                            kind: n.kind?,
                            value: n.value?,
                        })
                    } else {
                        let d = r.discrete_resource_spec?;
                        Some(GenericResource::Discrete {
                            kind: d.kind?,
                            value: u64::try_from(d.value?).ok()?,
                        })
                    }
                })
                .collect(),
        },
        enforcement: Enforcement {
            cpu_limit: info.cpu_cfs_quota.unwrap_or(false),
            memory_limit: info.memory_limit.unwrap_or(false),
            // A memory reservation is a soft limit, not set aside.
            reservations: false,
        },
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn info(&self) -> Result<RuntimeInfo, RuntimeError> {
        let info = self
            .inner
            .docker
            .info()
            .await
            .map_err(|e| engine_error("describe itself", &e))?;
        Ok(describe(info, self.inner.config.hostname.as_deref()))
    }

    async fn prepare(&self, task: &Task, files: &[TaskFile]) -> Result<(), RuntimeError> {
        self.prepare_with(task, files, None).await
    }

    fn runs_in_sandboxes(&self) -> bool {
        true
    }

    async fn hold_sandbox(&self, task: &Task) -> Result<Option<u32>, RuntimeError> {
        self.sandbox_holder(task).await.map(Some)
    }

    async fn prepare_in(
        &self,
        task: &Task,
        files: &[TaskFile],
        sandbox: &Sandbox,
    ) -> Result<(), RuntimeError> {
        self.prepare_with(task, files, Some(sandbox)).await
    }

    async fn start(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let container = self.container(task_id).await?;
        match state_of(&self.inspect_container(task_id, &container).await?) {
            RuntimeState::Running => return Ok(()),
            RuntimeState::Exited(_) => {
                return Err(RuntimeError::InvalidState(format!(
                    "task {task_id} already ran: a task runs only once (the manager makes a new task to run it again)"
                )));
            }
            RuntimeState::Created => {}
        }
        let started = self.inner.docker.start_container(&container, None).await;
        self.poke_ingress();
        match started {
            Ok(()) => Ok(()),
            Err(e) if unreachable(&e) => Err(daemon_down(&e)),
            Err(e) if status(&e) == Some(404) => Err(self.failed(task_id, "start", &e)),
            // A port in use, a bind source gone, a program missing from
            // the image: the container can never start as it is.
            Err(e) => Err(RuntimeError::InvalidSpec(format!(
                "docker cannot start the container: {}",
                message(&e)
            ))),
        }
    }

    async fn wait(&self, task_id: &Id) -> Result<ExitStatus, RuntimeError> {
        let container = self.container(task_id).await?;
        match state_of(&self.exited(task_id, &container).await?) {
            RuntimeState::Exited(status) => {
                self.end_sandboxes(task_id).await;
                Ok(status)
            }
            other => Err(RuntimeError::InvalidState(format!(
                "task {task_id} is {other:?} after it exited"
            ))),
        }
    }

    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError> {
        let container = self.container(task_id).await?;
        let state = self.inspect_container(task_id, &container).await?;
        if state_of(&state) != RuntimeState::Running {
            return Ok(());
        }
        let signal = state
            .config
            .as_ref()
            .and_then(|c| c.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into());
        self.kill(task_id, &container, &signal).await?;
        let polite = tokio::time::timeout(grace, self.exited(task_id, &container)).await;
        let result = match polite {
            Ok(done) => done.map(drop),
            Err(_) => {
                self.kill(task_id, &container, "SIGKILL").await?;
                match tokio::time::timeout(KILL_WAIT, self.exited(task_id, &container)).await {
                    Ok(done) => done.map(drop),
                    Err(_) => Err(RuntimeError::Unavailable(format!(
                        "the container of task {task_id} is still running {KILL_WAIT:?} after SIGKILL"
                    ))),
                }
            }
        };
        if result.is_ok() {
            self.end_sandboxes(task_id).await;
        }
        self.poke_ingress();
        result
    }

    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        self.remove_container(task_id).await?;
        self.remove_files(task_id).await;
        for (_, sandbox) in self.sandboxes(Some(task_id)).await? {
            match self.force_remove(&sandbox).await {
                Ok(()) => {}
                Err(e) if status(&e) == Some(404) || status(&e) == Some(409) => {}
                Err(e) => return Err(self.failed(task_id, "remove the sandbox of", &e)),
            }
        }
        Ok(())
    }

    async fn inspect(&self, task_id: &Id) -> Result<RuntimeStatus, RuntimeError> {
        let container = self.container(task_id).await?;
        Ok(status_of(
            &self.inspect_container(task_id, &container).await?,
        ))
    }

    async fn logs(&self, task_id: &Id, options: LogOptions) -> Result<LogStream, RuntimeError> {
        let container = self.container(task_id).await?;
        // Says NotFound now rather than ending the stream at once.
        self.inspect_container(task_id, &container).await?;
        let stream = self
            .inner
            .docker
            .logs(
                &container,
                Some(LogsOptions {
                    follow: options.follow,
                    stdout: true,
                    stderr: true,
                    timestamps: true,
                    tail: options
                        .tail
                        .map_or_else(|| "all".to_owned(), |n| n.to_string()),
                    ..LogsOptions::default()
                }),
            )
            .take_while(|frame| std::future::ready(frame.is_ok()))
            .flat_map(|frame| futures::stream::iter(frame.map(logs::lines).unwrap_or_default()));
        Ok(Box::pin(stream))
    }

    async fn list(&self) -> Result<Vec<Id>, RuntimeError> {
        let containers = self
            .inner
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(self.filters(None)),
                ..ListContainersOptions::default()
            }))
            .await
            .map_err(|e| engine_error("list containers", &e))?;
        // A sandbox whose task container was never made (or is gone)
        // still names its task, so that an agent cleans it up.
        let sandboxes = self.sandboxes(None).await?;
        let mut cache = self.cache();
        let mut ids: Vec<Id> = containers
            .into_iter()
            .filter_map(|c| {
                let id = Id::from(c.labels.as_ref()?.get(LABEL_TASK_ID)?.as_str());
                if let Some(container) = c.id {
                    cache.insert(id.clone(), container);
                }
                Some(id)
            })
            .collect();
        for (task, _) in sandboxes {
            if !ids.contains(&task) {
                ids.push(task);
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_without_a_tag_mean_latest() {
        assert_eq!(with_tag("busybox"), "busybox:latest");
        assert_eq!(with_tag("busybox:1.36"), "busybox:1.36");
        assert_eq!(with_tag("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(with_tag("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn the_engine_describes_the_node() {
        let info = SystemInfo {
            name: Some("host-1".into()),
            os_type: Some("linux".into()),
            architecture: Some("x86_64".into()),
            ncpu: Some(2),
            mem_total: Some(1 << 30),
            labels: Some(vec!["zone=a".into(), "ssd".into()]),
            memory_limit: Some(true),
            cpu_cfs_quota: Some(true),
            ..SystemInfo::default()
        };
        let r = describe(info.clone(), None);
        let d = &r.description;
        assert_eq!(d.hostname, "host-1");
        assert_eq!(
            (d.platform.os.as_str(), d.platform.architecture.as_str()),
            ("linux", "amd64")
        );
        assert_eq!(d.resources, Resources::new(2.0, 1 << 30));
        assert_eq!(d.engine_labels["zone"], "a");
        assert_eq!(d.engine_labels["ssd"], "");
        assert!(r.enforcement.cpu_limit && r.enforcement.memory_limit);
        assert_eq!(describe(info, Some("mine")).description.hostname, "mine");
    }
}

/// An image's manifest in its registry, and the platforms it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryDigest {
    /// `sha256:...`.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: i64,
    /// The platforms the image serves.
    pub platforms: Vec<ImagePlatform>,
}

/// One platform of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePlatform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`...
    pub architecture: String,
    /// `v8`, or empty.
    pub variant: String,
}
