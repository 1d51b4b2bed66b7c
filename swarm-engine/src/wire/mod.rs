//! The JSON shapes of the Engine API, as Docker's Go types write them:
//! PascalCase keys (with Docker's own exceptions, such as `NodeID`), times
//! in RFC 3339, durations in nanoseconds, and Go's `omitempty` where
//! Docker's types have it.

use serde::{Deserialize, Serialize};

pub mod file;
pub mod network;
pub mod node;
pub mod service;
pub mod task;

pub use file::{FileObject, FileSpec, IdResponse};
pub use network::{NetworkCreateRequest, NetworkCreateResponse, NetworkResource};
pub use node::{ManagerStatus, Node, NodeSpec};
pub use service::{Service, ServiceSpec};
pub use task::Task;

/// The state of this daemon in a swarm, as `docker info` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalNodeState {
    /// In no swarm: `docker swarm init` or `join` makes it a member.
    #[default]
    Inactive,
    /// Joining.
    Pending,
    /// A member.
    Active,
    /// A member that cannot reach the swarm.
    Error,
    /// A manager waiting for its unlock key.
    Locked,
}

impl LocalNodeState {
    /// Its name, as the API spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "inactive",
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Error => "error",
            Self::Locked => "locked",
        }
    }
}

/// A manager, as `/info` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Peer {
    /// Its node id.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Where it listens, `IP:2377`.
    #[serde(rename = "Addr")]
    pub addr: String,
}

/// A time as Go writes one (RFC 3339); Go's zero time,
/// `0001-01-01T00:00:00Z`, by default (Docker's client cannot read an
/// empty one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Time(pub String);

impl Default for Time {
    fn default() -> Self {
        Self("0001-01-01T00:00:00Z".into())
    }
}

impl From<std::time::SystemTime> for Time {
    fn from(t: std::time::SystemTime) -> Self {
        Self(crate::time::rfc3339(t))
    }
}

/// The object version every write bumps (`?version=` of updates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Version {
    /// The store's index at the object's last write.
    #[serde(skip_serializing_if = "is_zero")]
    pub index: u64,
}

/// The swarm's settings (`docker swarm update`), as Docker's `Spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SwarmSpec {
    /// Always `default`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The user's labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Task history.
    pub orchestration: Orchestration,
    /// The managers' raft.
    pub raft: Raft,
    /// Heartbeats.
    pub dispatcher: DispatcherSpec,
    /// The cluster's certificate authority.
    #[serde(rename = "CAConfig")]
    pub ca_config: CaConfig,
    /// Autolock.
    pub encryption_config: EncryptionConfig,
    /// Defaults of every task (none yet).
    pub task_defaults: TaskDefaults,
}

/// How many old tasks a slot keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Orchestration {
    /// Tasks kept per slot, the running one included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_history_retention_limit: Option<i64>,
}

/// The managers' raft settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Raft {
    /// Log entries between snapshots.
    #[serde(skip_serializing_if = "is_zero")]
    pub snapshot_interval: u64,
    /// Snapshots kept besides the newest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_old_snapshots: Option<u64>,
    /// Entries kept for slow followers.
    #[serde(skip_serializing_if = "is_zero")]
    pub log_entries_for_slow_followers: u64,
    /// Ticks without a leader before an election.
    pub election_tick: i64,
    /// Ticks between the leader's heartbeats.
    pub heartbeat_tick: i64,
}

/// The workers' heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DispatcherSpec {
    /// Nanoseconds between heartbeats.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub heartbeat_period: i64,
}

/// The certificate authority's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CaConfig {
    /// How long node certificates are valid, in nanoseconds.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub node_cert_expiry: i64,
    /// Bumped to rotate the CA.
    #[serde(skip_serializing_if = "is_zero")]
    pub force_rotate: u64,
}

/// Encryption of the managers' data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EncryptionConfig {
    /// Autolock: a restarted manager waits for its unlock key.
    pub auto_lock_managers: bool,
}

/// Defaults of every task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskDefaults {}

/// The cluster's root of trust, as nodes see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TlsInfo {
    /// The CA certificate, PEM.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trust_root: String,
    /// The issuer's subject, DER in base64.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_issuer_subject: String,
    /// The issuer's public key, DER in base64.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_issuer_public_key: String,
}

/// The swarm, as a manager describes it (`Swarm.Cluster` of `/info`, and
/// `/swarm` with the join tokens).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterInfo {
    /// The cluster's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its version.
    pub version: Version,
    /// When it was made.
    pub created_at: Time,
    /// When it was last changed.
    pub updated_at: Time,
    /// Its settings.
    pub spec: SwarmSpec,
    /// Its root of trust.
    #[serde(rename = "TLSInfo")]
    pub tls_info: TlsInfo,
    /// Whether the CA is being rotated.
    pub root_rotation_in_progress: bool,
    /// Pools of network subnets, CIDR.
    pub default_addr_pool: Vec<String>,
    /// The prefix length of the subnets cut from them.
    pub subnet_size: u32,
    /// The UDP port of the overlay traffic.
    pub data_path_port: u32,
}

/// The `Swarm` section of `/info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SwarmInfo {
    /// This node's id; empty outside a swarm.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// The address other nodes reach it at.
    pub node_addr: String,
    /// Inactive, pending, active, error or locked.
    pub local_node_state: LocalNodeState,
    /// Whether this node is a manager that serves the swarm's API.
    pub control_available: bool,
    /// What is wrong, when the state is `error`.
    pub error: String,
    /// The managers (`null` when none is known, as Docker writes it).
    pub remote_managers: Option<Vec<Peer>>,
    /// How many nodes the swarm has (managers only).
    #[serde(skip_serializing_if = "is_zero")]
    pub nodes: u64,
    /// How many of them are managers (managers only).
    #[serde(skip_serializing_if = "is_zero")]
    pub managers: u64,
    /// The swarm, on a manager.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
}

impl SwarmInfo {
    /// The `Swarm` header of `/_ping`: `inactive`, `pending`, `error`,
    /// `locked`, `active/worker` or `active/manager`.
    #[must_use]
    pub fn ping_state(&self) -> String {
        match self.local_node_state {
            LocalNodeState::Active if self.control_available => "active/manager".into(),
            LocalNodeState::Active => "active/worker".into(),
            other => other.as_str().into(),
        }
    }
}

/// Facts of the machine the daemon runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Its hostname.
    pub name: String,
    /// CPUs.
    pub ncpu: u64,
    /// Memory, bytes.
    pub mem_total: u64,
    /// `uname -r`.
    pub kernel_version: String,
    /// The distribution's name (`PRETTY_NAME` of os-release).
    pub operating_system: String,
    /// The machine (`x86_64`).
    pub architecture: String,
}

impl Host {
    /// This machine's facts, from `/proc` and `/etc/os-release` (empty
    /// where they cannot be read).
    #[must_use]
    pub fn this_machine() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let mem_total = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        let operating_system = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_default();
        Self {
            name: read("/proc/sys/kernel/hostname"),
            ncpu: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            mem_total,
            kernel_version: read("/proc/sys/kernel/osrelease"),
            operating_system,
            architecture: std::env::consts::ARCH.to_owned(),
        }
    }

    /// The architecture as Go names it (`amd64`), for `/version`.
    #[must_use]
    pub fn go_arch(&self) -> &str {
        match self.architecture.as_str() {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        }
    }
}

/// `/version`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VersionInfo {
    /// The product.
    pub platform: Product,
    /// Its parts; one, `Engine`.
    pub components: Vec<Component>,
    /// The daemon's version.
    pub version: String,
    /// The newest API version served.
    pub api_version: String,
    /// The oldest API version served.
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    /// The source revision (empty when unknown).
    pub git_commit: String,
    /// Docker's field for its compiler; ours names rustc.
    pub go_version: String,
    /// `linux`.
    pub os: String,
    /// Go's name of the architecture.
    pub arch: String,
    /// `uname -r`.
    pub kernel_version: String,
}

/// `/version`'s product name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Product {
    /// Its name.
    pub name: String,
}

/// A part of the product, in `/version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Component {
    /// `Engine`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `ApiVersion`, `MinAPIVersion`, `Os`, `Arch`... as strings.
    pub details: std::collections::BTreeMap<String, String>,
}

/// `docker swarm inspect`'s answer (`GET /swarm`): the cluster and
/// its join tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Swarm {
    /// The cluster (Go embeds it: its fields sit at the top).
    #[serde(flatten)]
    pub cluster: ClusterInfo,
    /// The tokens that join a node.
    pub join_tokens: JoinTokens,
}

/// `POST /swarm/init`'s body (`docker swarm init`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InitRequest {
    /// Where the manager listens, `IP:PORT` (the CLI sends `0.0.0.0:2377`
    /// by default).
    pub listen_addr: String,
    /// Where the other nodes reach it: `IP[:PORT]`, or empty.
    pub advertise_addr: String,
    /// Where the overlay traffic comes from (not served separately).
    pub data_path_addr: String,
    /// The overlay's UDP port (0: 4789).
    pub data_path_port: u32,
    /// Docker's disaster recovery from a single manager's data (not served).
    pub force_new_cluster: bool,
    /// The swarm's settings.
    pub spec: SwarmSpec,
    /// Autolock.
    pub auto_lock_managers: bool,
    /// This node's availability (`active`, `pause`, `drain`).
    pub availability: String,
    /// The pools networks' subnets are cut from, CIDR.
    pub default_addr_pool: Vec<String>,
    /// The prefix length of those subnets (0: 24).
    pub subnet_size: u32,
}

/// `POST /swarm/join`'s body (`docker swarm join`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JoinRequest {
    /// Where this node listens if it joins as a manager.
    pub listen_addr: String,
    /// Where the other nodes reach it.
    pub advertise_addr: String,
    /// Where the overlay traffic comes from (not served separately).
    pub data_path_addr: String,
    /// The managers to join through, `HOST:PORT`.
    pub remote_addrs: Vec<String>,
    /// `SWMTKN-1-...`.
    pub join_token: String,
    /// This node's availability.
    pub availability: String,
}

/// `POST /swarm/update`: the whole spec, as read at `version`, and what
/// to rotate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwarmUpdate {
    /// The new spec.
    pub spec: SwarmSpec,
    /// The cluster's version it was read at.
    pub version: u64,
    /// A new worker join token.
    pub rotate_worker_token: bool,
    /// A new manager join token.
    pub rotate_manager_token: bool,
    /// A new unlock key.
    pub rotate_unlock_key: bool,
}

/// `GET /distribution/{image}/json`'s answer: the image's digest in its
/// registry and its platforms, which `docker service create` pins the
/// service to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DistributionInspect {
    /// The manifest's descriptor.
    pub descriptor: Descriptor,
    /// The platforms the image runs on.
    pub platforms: Vec<OciPlatform>,
}

/// An OCI content descriptor (its keys are the OCI's, in camel case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Descriptor {
    /// The manifest's media type.
    pub media_type: String,
    /// `sha256:...`.
    pub digest: String,
    /// Its size in bytes (0 when unknown).
    pub size: i64,
}

/// An OCI platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OciPlatform {
    /// `amd64`, `arm64`...
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// `v8`, or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// `POST /swarm/unlock`'s body: `docker swarm unlock`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UnlockRequest {
    /// `SWMKEY-1-...`.
    pub unlock_key: String,
}

/// `GET /swarm/unlockkey`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UnlockKeyResponse {
    /// `SWMKEY-1-...`, or empty when autolock is off.
    pub unlock_key: String,
}

/// The tokens that join a node as a worker or as a manager.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JoinTokens {
    /// `SWMTKN-1-...` for workers.
    pub worker: String,
    /// `SWMTKN-1-...` for managers.
    pub manager: String,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
pub(crate) fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}
