//! Services as Docker's API writes them: `ServiceSpec` (what `docker
//! service create` sends), and `Service` (what `inspect` answers).
//!
//! Go's rules, field by field: a pointer with `omitempty` is an `Option`
//! skipped when `None`; a slice or map with `omitempty` is skipped when
//! empty; durations are nanoseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::node::Platform;
use super::{Time, Version, is_false, is_zero, is_zero_i64};

/// What a user declares about a service (`POST /services/create`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceSpec {
    /// The service's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// What each task runs.
    pub task_template: TaskSpec,
    /// Replicated or global.
    pub mode: ServiceMode,
    /// How an update rolls out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    /// How a rollback rolls out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// Docker's old place for the networks (before `TaskTemplate.Networks`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachmentConfig>,
    /// Its ports and how its name resolves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpec>,
}

/// The template of the service's tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskSpec {
    /// A plugin to run instead of a container: refused (no plugins here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_spec: Option<serde_json::Value>,
    /// The container (or, with the process runtime, the program).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_spec: Option<ContainerSpec>,
    /// A network attachment task: refused (Docker's own, for attachable
    /// networks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_attachment_spec: Option<serde_json::Value>,
    /// Reservations and limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// When a task that ended is replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Where tasks may run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// The networks tasks join.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachmentConfig>,
    /// The log driver of the containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
    /// Raised by `service update --force`.
    pub force_update: u64,
    /// Docker's task kind (`container`, `plugin`, `attachment`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub runtime: String,
}

/// What a task's container runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSpec {
    /// The image (with the process runtime: the program).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The container's labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Overrides the image's entrypoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Its arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The hostname.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// `KEY=VALUE` each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The working directory.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dir: String,
    /// The user, name or uid.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Extra groups of the user.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Credential specs, SELinux labels, seccomp, AppArmor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Privileges>,
    /// Runs an init process as PID 1 (`None`: the daemon's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// The signal that asks the task to stop.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// A pseudo-terminal.
    #[serde(rename = "TTY", skip_serializing_if = "is_false")]
    pub tty: bool,
    /// Keeps stdin open.
    #[serde(skip_serializing_if = "is_false")]
    pub open_stdin: bool,
    /// A read-only root filesystem.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// Mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Between the stop signal and the kill, nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    /// The health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// Extra `/etc/hosts` lines, `IP HOST...` (or `HOST:IP`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The resolver's settings.
    #[serde(rename = "DNSConfig", skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DnsConfig>,
    /// Secrets as files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretReference>,
    /// Configs as files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ConfigReference>,
    /// Windows' isolation technology.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    /// Kernel parameters of the task's namespaces.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Capabilities added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capability_add: Vec<String>,
    /// Capabilities dropped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capability_drop: Vec<String>,
    /// Resource limits of the processes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<Ulimit>,
    /// The OOM killer's preference.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub oom_score_adj: i64,
}

/// A mount, as `--mount` gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, `npipe` or `cluster`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub r#type: String,
    /// The node's path, or the volume's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// The path inside the task.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// Read-only.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    /// macOS's consistency setting.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    /// Bind options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<serde_json::Value>,
    /// Volume options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<serde_json::Value>,
    /// Tmpfs options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<serde_json::Value>,
    /// Cluster volume options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_options: Option<serde_json::Value>,
}

/// A health check (`HEALTHCHECK` of an image, or `--health-*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]`, `["NONE"]`, or empty to
    /// inherit the image's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Between checks, nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub interval: i64,
    /// A check's limit, nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub timeout: i64,
    /// The grace time after the start, nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub start_period: i64,
    /// Between checks during the start period, nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub start_interval: i64,
    /// Failures in a row that make the task unhealthy.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub retries: i64,
}

/// The resolver's settings of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DnsConfig {
    /// Name servers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Search domains.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// `resolv.conf` options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// A process resource limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    /// Its name (`nofile`).
    pub name: String,
    /// The hard limit.
    pub hard: i64,
    /// The soft limit.
    pub soft: i64,
}

/// Where a secret's or config's file goes in the task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FileTarget {
    /// The file's name.
    pub name: String,
    /// Its owner, as a decimal string.
    #[serde(rename = "UID")]
    pub uid: String,
    /// Its group, as a decimal string.
    #[serde(rename = "GID")]
    pub gid: String,
    /// Its mode.
    pub mode: u32,
}

/// A secret given to the tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecretReference {
    /// The file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    /// The secret's id.
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    /// The secret's name.
    pub secret_name: String,
}

/// A config given to the tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigReference {
    /// The file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    /// A credential spec's source instead of a file (Windows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<serde_json::Value>,
    /// The config's id.
    #[serde(rename = "ConfigID")]
    pub config_id: String,
    /// The config's name.
    pub config_name: String,
}

/// Reservations and limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ResourceRequirements {
    /// The most a task may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limit>,
    /// What a task reserves on its node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Reservation>,
}

/// Limits of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Limit {
    /// CPU, billionths of a core.
    #[serde(rename = "NanoCPUs", skip_serializing_if = "is_zero_i64")]
    pub nano_cpus: i64,
    /// Memory, bytes.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub memory_bytes: i64,
    /// Processes.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub pids: i64,
}

/// Reservations of a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Reservation {
    /// CPU, billionths of a core.
    #[serde(rename = "NanoCPUs", skip_serializing_if = "is_zero_i64")]
    pub nano_cpus: i64,
    /// Memory, bytes.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub memory_bytes: i64,
    /// Amounts of generic resources (GPUs...), as `DiscreteResourceSpec`s.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<super::node::GenericResource>,
}

/// When a task that ended is replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `none`, `on-failure` or `any`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub condition: String,
    /// Between the end and the replacement, nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<i64>,
    /// Restarts before giving up; 0 is no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    /// The window the attempts count in, nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
}

/// Where tasks may run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Placement {
    /// `node.role==worker`...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Spread preferences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    /// Tasks per node at most; 0 is no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_replicas: u64,
    /// The image's platforms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
}

/// A placement preference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PlacementPreference {
    /// Spread over a node attribute's values.
    pub spread: Option<SpreadOver>,
}

/// What to spread over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SpreadOver {
    /// The attribute, `node.labels.zone`.
    pub spread_descriptor: String,
}

/// A network a task joins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkAttachmentConfig {
    /// The network's name or id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// The task's extra names on it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The driver's options for the attachment.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

/// A driver and its options (log drivers, network drivers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Driver {
    /// Its name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// Replicated, global, or a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceMode {
    /// A fixed number of tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated: Option<Replicated>,
    /// One task per eligible node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<Empty>,
    /// Tasks that run to completion, a number of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated_job: Option<serde_json::Value>,
    /// A task to completion on every eligible node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_job: Option<serde_json::Value>,
}

/// The replica count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Replicated {
    /// How many; `None` is 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
}

/// Go's `struct{}`: `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// How an update (or rollback) rolls out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateConfig {
    /// Tasks at once; 0 is all.
    pub parallelism: u64,
    /// Between batches, nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub delay: i64,
    /// `pause`, `continue` or `rollback`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub failure_action: String,
    /// How long a new task is watched, nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub monitor: i64,
    /// The failures tolerated, 0 to 1.
    pub max_failure_ratio: f32,
    /// `stop-first` or `start-first`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub order: String,
}

/// Ports and name resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSpec {
    /// `vip` or `dnsrr`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// The published ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

/// A published port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortConfig {
    /// Its name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `tcp`, `udp` or `sctp`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// The port inside the task.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub target_port: u32,
    /// The port on the nodes.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub published_port: u32,
    /// `ingress` or `host`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub publish_mode: String,
}

/// A service as `inspect` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Service {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its version, for `update?version=`.
    pub version: Version,
    /// When it was made.
    pub created_at: Time,
    /// When it last changed.
    pub updated_at: Time,
    /// What the user asked for.
    pub spec: ServiceSpec,
    /// The spec before the last change, which `rollback` restores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<ServiceSpec>,
    /// Its ports and virtual IPs.
    pub endpoint: Endpoint,
    /// How its last rollout went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatus>,
    /// Its tasks, counted (`?status=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_status: Option<ServiceStatus>,
}

/// A service's addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Endpoint {
    /// The spec they were made from.
    pub spec: EndpointSpec,
    /// The published ports, with the ports the cluster chose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
    /// One virtual IP per network.
    #[serde(rename = "VirtualIPs", skip_serializing_if = "Vec::is_empty")]
    pub virtual_ips: Vec<EndpointVirtualIp>,
}

/// A virtual IP on a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointVirtualIp {
    /// The network's id.
    #[serde(rename = "NetworkID", skip_serializing_if = "String::is_empty")]
    pub network_id: String,
    /// `10.0.1.2/24`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
}

/// A rollout's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateStatus {
    /// `updating`, `paused`, `completed`, `rollback_started`...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// When it began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// What happened.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A service's tasks, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceStatus {
    /// Running now.
    pub running_tasks: u64,
    /// Wanted running.
    pub desired_tasks: u64,
    /// Completed (jobs).
    pub completed_tasks: u64,
}

/// `POST /services/create`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceCreateResponse {
    /// The new service's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// What the user should know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `POST /services/{id}/update`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceUpdateResponse {
    /// What the user should know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Security settings of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Privileges {
    /// Windows' gMSA credential spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<CredentialSpec>,
    /// SELinux labels.
    #[serde(rename = "SELinuxContext", skip_serializing_if = "Option::is_none")]
    pub selinux_context: Option<SeLinuxContext>,
    /// The seccomp filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompOpts>,
    /// The AppArmor profile.
    #[serde(rename = "AppArmor", skip_serializing_if = "Option::is_none")]
    pub app_armor: Option<AppArmorOpts>,
    /// No privileges gained through setuid binaries or file capabilities.
    #[serde(skip_serializing_if = "is_false")]
    pub no_new_privileges: bool,
}

/// Where a credential spec comes from: one of the three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CredentialSpec {
    /// A swarm config's id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub config: String,
    /// A file name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file: String,
    /// A registry value.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub registry: String,
}

/// SELinux labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SeLinuxContext {
    /// No labelling.
    #[serde(skip_serializing_if = "is_false")]
    pub disable: bool,
    /// User label.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Role label.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// Type label.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub r#type: String,
    /// Level label.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub level: String,
}

/// A seccomp setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SeccompOpts {
    /// `default`, `unconfined` or `custom`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// The custom profile, base64 (Go's `[]byte`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub profile: String,
}

/// An AppArmor setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AppArmorOpts {
    /// `default` or `disabled`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mode: String,
}
