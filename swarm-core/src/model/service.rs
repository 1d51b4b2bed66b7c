//! Services and the task template they stamp out.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer, Serialize};

use super::{Meta, Platform, ResourceRequirements};
use crate::SpecError;

/// The largest replica count a service may ask for.
pub const MAX_REPLICAS: u64 = 1_000_000;

/// The label prefix the runtimes keep for their own labels (task, service
/// and node ids): a task spec may not use it.
pub const RESERVED_LABEL_PREFIX: &str = "swarm.";

/// The ports the cluster picks from for an ingress port published as 0,
/// as Docker does.
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u32> = 30_000..=32_767;

/// A declared service: the store keeps its spec, and the orchestrators keep
/// its tasks matching it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// What the user asked for.
    pub spec: ServiceSpec,
    /// The specs this service had before, oldest first: at most
    /// [`SPEC_HISTORY`] of them. `service rollback` goes back to the last
    /// one, or to a chosen revision.
    #[serde(default)]
    pub history: Vec<SpecRevision>,
    /// Its virtual IPs, one per network, once the allocator gave them.
    #[serde(default)]
    pub endpoint: Endpoint,
    /// How the last rollout of a new task spec went (none before the first).
    #[serde(default)]
    pub update_status: Option<UpdateStatus>,
}

/// How many past specs a service keeps (Docker keeps one).
pub const SPEC_HISTORY: usize = 10;

/// A spec a service had, numbered: revision 1 is the spec it was created
/// with, and every change makes the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecRevision {
    /// Its number.
    pub revision: u64,
    /// The spec.
    pub spec: ServiceSpec,
    /// When it was replaced by the next one.
    pub replaced_at: SystemTime,
}

/// Where a rollout stands: docker's `UpdateStatus.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Tasks are being replaced with the new spec.
    Updating,
    /// The update stopped on a failure; the message says which.
    Paused,
    /// Every task runs the new spec.
    Completed,
    /// Tasks are being put back on the previous spec.
    RollbackStarted,
    /// The rollback stopped on a failure.
    RollbackPaused,
    /// Every task runs the previous spec again.
    RollbackCompleted,
}

impl UpdateState {
    /// Docker's name for it (`updating`, `rollback_paused`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Updating => "updating",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::RollbackStarted => "rollback_started",
            Self::RollbackPaused => "rollback_paused",
            Self::RollbackCompleted => "rollback_completed",
        }
    }

    /// Whether the rollout is still replacing tasks.
    #[must_use]
    pub fn is_rolling(self) -> bool {
        matches!(self, Self::Updating | Self::RollbackStarted)
    }

    /// Whether it is a rollback.
    #[must_use]
    pub fn is_rollback(self) -> bool {
        matches!(
            self,
            Self::RollbackStarted | Self::RollbackPaused | Self::RollbackCompleted
        )
    }
}

impl fmt::Display for UpdateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a service's rollout, as `service inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// Where it stands.
    pub state: UpdateState,
    /// When it started.
    pub started_at: SystemTime,
    /// When it completed, paused or was rolled back.
    #[serde(default)]
    pub completed_at: Option<SystemTime>,
    /// What happened, in words ("update paused due to failure or early
    /// termination of task web.2: ...").
    #[serde(default)]
    pub message: String,
    /// The update runs canaries and waits for `service promote` (or for
    /// its own promotion, with `auto_promote`) before going on.
    #[serde(default)]
    pub awaiting_promotion: bool,
}

impl UpdateStatus {
    /// A rollout in `state`, starting now.
    #[must_use]
    pub fn started(state: UpdateState, message: impl Into<String>) -> Self {
        Self {
            state,
            started_at: SystemTime::now(),
            completed_at: None,
            message: message.into(),
            awaiting_promotion: false,
        }
    }
}

impl Service {
    /// A new service of `spec`, with no addresses yet.
    #[must_use]
    pub fn new(spec: ServiceSpec) -> Self {
        Self {
            meta: Meta::new(crate::Id::generate()),
            spec,
            history: Vec::new(),
            endpoint: Endpoint::default(),
            update_status: None,
        }
    }

    /// The number of the current spec: 1 for the spec the service was
    /// created with, one more for every change since.
    #[must_use]
    pub fn revision(&self) -> u64 {
        self.history.last().map_or(1, |r| r.revision + 1)
    }

    /// The spec before the current one, which `service rollback` restores.
    #[must_use]
    pub fn previous_spec(&self) -> Option<&ServiceSpec> {
        self.history.last().map(|r| &r.spec)
    }

    /// Makes `spec` current, keeping the one it replaces in the history
    /// (the oldest goes once [`SPEC_HISTORY`] are kept).
    pub fn push_spec(&mut self, spec: ServiceSpec) {
        let revision = self.revision();
        let old = std::mem::replace(&mut self.spec, spec);
        self.history.push(SpecRevision {
            revision,
            spec: old,
            replaced_at: SystemTime::now(),
        });
        if self.history.len() > SPEC_HISTORY {
            let extra = self.history.len() - SPEC_HISTORY;
            self.history.drain(..extra);
        }
    }

    /// Whether `task` runs this service's current template: the same task
    /// spec and published ports. A task that does not is replaced by a
    /// rollout.
    #[must_use]
    pub fn is_current(&self, task: &super::Task) -> bool {
        *task.spec == self.spec.task && *task.endpoint == self.spec.endpoint
    }

    /// The service's virtual IP on `network`, if it has one.
    #[must_use]
    pub fn vip(&self, network: &crate::Id) -> Option<Ipv4Addr> {
        self.endpoint
            .virtual_ips
            .iter()
            .find(|v| &v.network_id == network)
            .map(|v| v.addr)
    }
}

/// What the allocator gave a service: docker's `Endpoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// One virtual IP per network the service is on (VIP mode only).
    #[serde(default)]
    pub virtual_ips: Vec<VirtualIp>,
    /// Why the allocator could not give the service its addresses (an
    /// exhausted network), until it can.
    #[serde(default)]
    pub error: Option<String>,
}

/// A service's address on one network: connections to it are balanced over
/// the service's running tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualIp {
    /// The network.
    pub network_id: crate::Id,
    /// The address.
    pub addr: Ipv4Addr,
    /// The network's prefix length, for display (`10.0.1.2/24`).
    pub prefix: u8,
}

/// What a user declares about a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Unique service name: a DNS label (letters, digits and `-`, at most 63).
    pub name: String,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Replicated or global.
    #[serde(default)]
    pub mode: ServiceMode,
    /// The template every task of the service runs.
    pub task: TaskSpec,
    /// How an update rolls out.
    #[serde(default)]
    pub update: UpdateConfig,
    /// How a rollback rolls out.
    #[serde(default)]
    pub rollback: UpdateConfig,
    /// Published ports.
    #[serde(default)]
    pub endpoint: EndpointSpec,
}

impl ServiceSpec {
    /// A replicated service running `command` with `replicas` tasks.
    #[must_use]
    pub fn replicated(name: impl Into<String>, replicas: u64, command: Vec<String>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            mode: ServiceMode::Replicated { replicas },
            task: TaskSpec::command(command),
            update: UpdateConfig::default(),
            rollback: UpdateConfig::default(),
            endpoint: EndpointSpec::default(),
        }
    }

    /// A global service (one task per eligible node) running `command`.
    #[must_use]
    pub fn global(name: impl Into<String>, command: Vec<String>) -> Self {
        Self {
            mode: ServiceMode::Global,
            ..Self::replicated(name, 0, command)
        }
    }
}

/// How many tasks a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    /// A fixed number of tasks, spread over the eligible nodes.
    Replicated {
        /// How many tasks to run.
        #[serde(deserialize_with = "deserialize_replicas")]
        replicas: u64,
    },
    /// One task on every eligible node.
    Global,
}

impl Default for ServiceMode {
    fn default() -> Self {
        Self::Replicated { replicas: 1 }
    }
}

fn deserialize_replicas<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = i128::deserialize(d)?;
    u64::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_REPLICAS)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid replica count {n}: expected a whole number from 0 to {MAX_REPLICAS}"
            ))
        })
}

/// The template of a task: what to run and how.
///
/// With the process runtime, `image` is the program and `args` its
/// arguments; with a container runtime, `image` is the image and `command`
/// overrides its entrypoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Container image, or the program to run with the process runtime.
    pub image: String,
    /// Overrides the image's entrypoint (containers).
    #[serde(default)]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment, `KEY=VALUE` each.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// User to run as (name or uid).
    #[serde(default)]
    pub user: Option<String>,
    /// Hostname (containers).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Labels set on the container.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Time between the polite stop signal and the kill.
    #[serde(default = "default_grace")]
    pub stop_grace_period: Duration,
    /// How to tell that the task is healthy.
    #[serde(default)]
    pub healthcheck: Option<HealthCheck>,
    /// CPU and memory reservations and limits.
    #[serde(default)]
    pub resources: ResourceRequirements,
    /// What to do when a task exits.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Where tasks may run.
    #[serde(default)]
    pub placement: Placement,
    /// Networks to attach to.
    #[serde(default)]
    pub networks: Vec<NetworkAttachment>,
    /// Secrets exposed to the task as files.
    #[serde(default)]
    pub secrets: Vec<FileReference>,
    /// Configs exposed to the task as files.
    #[serde(default)]
    pub configs: Vec<FileReference>,
    /// Filesystems mounted into the task (containers).
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// A counter that `service update --force` raises: a changed value
    /// makes every task out of date, so the rollout replaces them all.
    #[serde(default)]
    pub force_update: u64,
    /// Extra groups of the user (containers: `--group`).
    #[serde(default)]
    pub groups: Vec<String>,
    /// An init process as PID 1, which reaps zombies and forwards
    /// signals (containers: `--init`); `None` is the runtime's default.
    #[serde(default)]
    pub init: Option<bool>,
    /// The signal that asks the task to stop (`--stop-signal`, e.g.
    /// `SIGINT`); `None` is `SIGTERM`, or the image's.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// A pseudo-terminal (containers: `--tty`).
    #[serde(default)]
    pub tty: bool,
    /// Stdin kept open (containers).
    #[serde(default)]
    pub open_stdin: bool,
    /// A read-only root filesystem (containers: `--read-only`).
    #[serde(default)]
    pub read_only: bool,
    /// Extra `/etc/hosts` lines, `IP NAME [ALIAS...]` each, as Docker's
    /// API gives them (`--host NAME:IP`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The resolver's settings (`--dns`, `--dns-search`, `--dns-option`);
    /// `None` keeps the runtime's.
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// Kernel parameters of the task's namespaces (`--sysctl`).
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Capabilities added (`--cap-add`).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Capabilities dropped (`--cap-drop`).
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// Where the container's output goes (`--log-driver`, `--log-opt`);
    /// `None` is the engine's default. The runtime's own log reading
    /// (`service logs`) needs a driver that keeps the logs readable.
    #[serde(default)]
    pub log_driver: Option<LogDriver>,
    /// Resource limits of the task's processes (`--ulimit nofile=1024:2048`).
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// The OOM killer's preference for the task, -1000 to 1000
    /// (`--oom-score-adj`).
    #[serde(default)]
    pub oom_score_adj: i64,
    /// At most this many processes in the task; 0 is no limit
    /// (`--limit-pids`).
    #[serde(default)]
    pub pids_limit: u64,
    /// Security settings of the task's processes: no new privileges,
    /// seccomp, AppArmor, SELinux, and Windows' credential spec (Docker's
    /// `Privileges`); `None` keeps the runtime's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Privileges>,
    /// The isolation technology (`--isolation`: `default`, `process`,
    /// `hyperv`); the last two exist on Windows engines only, so a Linux
    /// engine refuses them at the task's start, with its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
}

/// Security settings of a task's processes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Privileges {
    /// The processes cannot gain privileges (setuid binaries, file
    /// capabilities): Linux's `no_new_privs`.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// The seccomp filter; `None` is the engine's default.
    #[serde(default)]
    pub seccomp: Option<Seccomp>,
    /// The AppArmor profile; `None` is the engine's default.
    #[serde(default)]
    pub apparmor: Option<AppArmor>,
    /// The SELinux labels; `None` is the engine's default.
    #[serde(default)]
    pub selinux: Option<SeLinuxContext>,
    /// Windows' gMSA credential spec, one of the three sources.
    #[serde(default)]
    pub credential_spec: Option<CredentialSpec>,
}

/// A seccomp filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    /// The engine's default profile.
    Default,
    /// No filter.
    Unconfined,
    /// This profile (JSON, as `docker run --security-opt seccomp=FILE`).
    Custom(String),
}

/// An AppArmor setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppArmor {
    /// The engine's default profile.
    Default,
    /// No profile (`unconfined`).
    Disabled,
}

/// SELinux labels of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeLinuxContext {
    /// No labelling at all.
    #[serde(default)]
    pub disable: bool,
    /// The user label.
    #[serde(default)]
    pub user: String,
    /// The role label.
    #[serde(default)]
    pub role: String,
    /// The type label.
    #[serde(default)]
    pub r#type: String,
    /// The level label.
    #[serde(default)]
    pub level: String,
}

/// Where a Windows container's credential spec comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSpec {
    /// A swarm config, by id.
    Config(String),
    /// A file of the engine's `CredentialSpecs` directory.
    File(String),
    /// A registry value.
    Registry(String),
}

impl Privileges {
    /// The settings as Docker's `--security-opt` values, which a container
    /// engine takes.
    #[must_use]
    pub fn security_opts(&self) -> Vec<String> {
        let mut opts = Vec::new();
        if self.no_new_privileges {
            opts.push("no-new-privileges=true".to_owned());
        }
        match &self.seccomp {
            None | Some(Seccomp::Default) => {}
            Some(Seccomp::Unconfined) => opts.push("seccomp=unconfined".to_owned()),
            Some(Seccomp::Custom(profile)) => opts.push(format!("seccomp={profile}")),
        }
        if self.apparmor == Some(AppArmor::Disabled) {
            opts.push("apparmor=unconfined".to_owned());
        }
        if let Some(l) = &self.selinux {
            if l.disable {
                opts.push("label=disable".to_owned());
            } else {
                for (key, value) in [
                    ("user", &l.user),
                    ("role", &l.role),
                    ("type", &l.r#type),
                    ("level", &l.level),
                ] {
                    if !value.is_empty() {
                        opts.push(format!("label={key}:{value}"));
                    }
                }
            }
        }
        match &self.credential_spec {
            None => {}
            Some(CredentialSpec::Config(id)) => opts.push(format!("credentialspec=config://{id}")),
            Some(CredentialSpec::File(f)) => opts.push(format!("credentialspec=file://{f}")),
            Some(CredentialSpec::Registry(r)) => {
                opts.push(format!("credentialspec=registry://{r}"));
            }
        }
        opts
    }
}

/// A resource limit of a task's processes, as `setrlimit` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// The resource: `nofile`, `nproc`, `core`, `memlock`, ...
    pub name: String,
    /// The limit a process may raise itself to.
    pub hard: i64,
    /// The limit in force.
    pub soft: i64,
}

/// A task's resolver settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// Name servers, by IP.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Search domains.
    #[serde(default)]
    pub search: Vec<String>,
    /// `resolv.conf` options (`ndots:2`).
    #[serde(default)]
    pub options: Vec<String>,
}

/// A container log driver and its options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDriver {
    /// Its name (`json-file`, `local`, `syslog`...).
    pub name: String,
    /// Its options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl TaskSpec {
    /// The container-only settings this spec asks for, by their flag:
    /// what a runtime of plain processes cannot honour.
    #[must_use]
    pub fn container_only(&self) -> Vec<&'static str> {
        let mut asked = Vec::new();
        for (flag, set) in [
            ("--group", !self.groups.is_empty()),
            ("--init", self.init == Some(true)),
            ("--tty", self.tty),
            ("open stdin", self.open_stdin),
            ("--read-only", self.read_only),
            ("--host", !self.hosts.is_empty()),
            (
                "--dns/--dns-search/--dns-option",
                self.dns
                    .as_ref()
                    .is_some_and(|d| *d != DnsConfig::default()),
            ),
            ("--sysctl", !self.sysctls.is_empty()),
            ("--cap-add", !self.cap_add.is_empty()),
            ("--cap-drop", !self.cap_drop.is_empty()),
            ("--log-driver", self.log_driver.is_some()),
            ("--ulimit", !self.ulimits.is_empty()),
            ("--oom-score-adj", self.oom_score_adj != 0),
            ("--limit-pids", self.pids_limit != 0),
            (
                "Privileges (a custom seccomp profile, SELinux labels, a credential spec)",
                // A process runs unconfined and unlabelled: the runtime's
                // default, and what `unconfined` and `disable` ask.
                self.privileges.as_ref().is_some_and(|p| {
                    matches!(p.seccomp, Some(Seccomp::Custom(_)))
                        || p.selinux.as_ref().is_some_and(|l| !l.disable)
                        || p.credential_spec.is_some()
                }),
            ),
            (
                "--isolation",
                self.isolation.as_deref().is_some_and(|i| i != "default"),
            ),
        ] {
            if set {
                asked.push(flag);
            }
        }
        asked
    }
}

fn default_grace() -> Duration {
    Duration::from_secs(10)
}

impl TaskSpec {
    /// A task spec running `command[0]` with the rest as arguments.
    #[must_use]
    pub fn command(command: Vec<String>) -> Self {
        let mut it = command.into_iter();
        Self {
            image: it.next().unwrap_or_default(),
            args: it.collect(),
            stop_grace_period: default_grace(),
            ..Self::default()
        }
    }
}

/// A health check run inside the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The command; exit code 0 means healthy.
    pub test: Vec<String>,
    /// Time between checks; zero takes the image's, else 30 s, as
    /// Docker does ([`HealthCheck::interval_or_default`]).
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Time a check may take before it counts as failed; zero, as for
    /// `interval`.
    #[serde(default = "default_interval")]
    pub timeout: Duration,
    /// Consecutive failures that make the task unhealthy.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Grace time after start during which failures do not count.
    #[serde(default)]
    pub start_period: Duration,
}

impl HealthCheck {
    /// The interval, with zero read as Docker's default, 30 s.
    #[must_use]
    pub fn interval_or_default(&self) -> Duration {
        if self.interval.is_zero() {
            default_interval()
        } else {
            self.interval
        }
    }

    /// The timeout, with zero read as Docker's default, 30 s.
    #[must_use]
    pub fn timeout_or_default(&self) -> Duration {
        if self.timeout.is_zero() {
            default_interval()
        } else {
            self.timeout
        }
    }

    /// Whether the check is `["NONE"]`: no check, not even the image's.
    #[must_use]
    pub fn is_disabled(&self) -> bool {
        self.test.first().is_some_and(|t| t == "NONE")
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_retries() -> u32 {
    3
}

/// When a task that exited is replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    /// Never.
    None,
    /// When it failed (non-zero exit, rejected, unhealthy).
    OnFailure,
    /// Always.
    #[default]
    Any,
}

impl FromStr for RestartCondition {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "on-failure" => Ok(Self::OnFailure),
            "any" => Ok(Self::Any),
            _ => Err(SpecError::single(
                "restart.condition",
                format!("unknown restart condition {s:?}: expected none, on-failure or any"),
            )),
        }
    }
}

impl fmt::Display for RestartCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::OnFailure => "on-failure",
            Self::Any => "any",
        })
    }
}

/// The restart policy of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// When to restart.
    #[serde(default)]
    pub condition: RestartCondition,
    /// Wait between a task's exit and its replacement's start.
    #[serde(default = "default_restart_delay")]
    pub delay: Duration,
    /// Give up after this many restarts (within `window`); 0 means never.
    #[serde(default)]
    pub max_attempts: u32,
    /// The window `max_attempts` counts in; zero means forever.
    #[serde(default)]
    pub window: Duration,
}

fn default_restart_delay() -> Duration {
    Duration::from_secs(5)
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            condition: RestartCondition::Any,
            delay: default_restart_delay(),
            max_attempts: 0,
            window: Duration::ZERO,
        }
    }
}

/// Where a service's tasks may run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Constraints such as `node.labels.type==web`, all of which must hold.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// Spread preferences, outermost first.
    #[serde(default)]
    pub preferences: Vec<PlacementPreference>,
    /// At most this many tasks of the service per node; 0 is unlimited.
    #[serde(default)]
    pub max_replicas_per_node: u64,
    /// Platforms the image supports; empty means any.
    #[serde(default)]
    pub platforms: Vec<Platform>,
}

/// A placement preference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlacementPreference {
    /// Spread tasks evenly over the values of a node attribute, such as
    /// `node.labels.zone`.
    Spread {
        /// The attribute, written as in constraints.
        descriptor: String,
    },
}

impl FromStr for PlacementPreference {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some(("spread", d)) if !d.is_empty() => Ok(Self::Spread {
                descriptor: d.to_owned(),
            }),
            _ => Err(SpecError::single(
                "placement.preferences",
                format!(
                    "invalid placement preference {s:?}: expected spread=<attribute>, e.g. spread=node.labels.zone"
                ),
            )),
        }
    }
}

/// A network a task attaches to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// Network name or id.
    pub target: String,
    /// Extra DNS names of the task on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Options for the network driver's endpoint (`--network
    /// name=NET,driver-opt=KEY=VALUE`): kept with the spec; this swarm's
    /// overlay driver reads none of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

/// A secret or config exposed to a task as a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReference {
    /// The secret's or config's name.
    pub name: String,
    /// The file name inside the task (`/run/secrets/<target>` for secrets).
    pub target: String,
    /// File mode.
    #[serde(default = "default_mode")]
    pub mode: u32,
    /// The file's owner (numeric, as in Docker).
    #[serde(default)]
    pub uid: u32,
    /// The file's group.
    #[serde(default)]
    pub gid: u32,
}

fn default_mode() -> u32 {
    0o444
}

impl FromStr for FileReference {
    type Err = SpecError;
    /// Parses docker's `--secret`/`--config` value: `NAME`, or
    /// `source=NAME[,target=PATH][,uid=N][,gid=N][,mode=0400]` (`src` for
    /// `source`). The target defaults to the name; the mode to 0444.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| {
            SpecError::single("task.secrets", format!("invalid reference {s:?}: {why}"))
        };
        let mut r = Self {
            name: String::new(),
            target: String::new(),
            mode: default_mode(),
            uid: 0,
            gid: 0,
        };
        if !s.contains('=') {
            r.name = s.to_owned();
        } else {
            for field in s.split(',') {
                let (key, value) = field
                    .split_once('=')
                    .ok_or_else(|| bad(format!("{field:?} is not KEY=VALUE")))?;
                let num = |radix| {
                    u32::from_str_radix(value, radix)
                        .map_err(|_| bad(format!("{key}={value:?} is not a number")))
                };
                match key {
                    "source" | "src" => r.name = value.to_owned(),
                    "target" => r.target = value.to_owned(),
                    "uid" => r.uid = num(10)?,
                    "gid" => r.gid = num(10)?,
                    "mode" => r.mode = num(8)?,
                    other => {
                        return Err(bad(format!(
                            "unknown field {other:?}: use source, target, uid, gid and mode"
                        )));
                    }
                }
            }
        }
        if r.name.is_empty() {
            return Err(bad("no name: give NAME or source=NAME".into()));
        }
        if r.target.is_empty() {
            r.target.clone_from(&r.name);
        }
        if r.mode > 0o777 {
            return Err(bad(format!(
                "mode {:o} is not a file mode: use e.g. 0400",
                r.mode
            )));
        }
        Ok(r)
    }
}

/// How an update or rollback rolls out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Tasks updated at once; 0 means all at once.
    #[serde(default = "one")]
    pub parallelism: u64,
    /// Wait between batches.
    #[serde(default)]
    pub delay: Duration,
    /// What to do when an updated task fails.
    #[serde(default)]
    pub failure_action: FailureAction,
    /// How long a new task is watched for failure.
    #[serde(default = "default_monitor")]
    pub monitor: Duration,
    /// Fraction of failed tasks tolerated, from 0 to 1.
    #[serde(default)]
    pub max_failure_ratio: f32,
    /// Stop the old task before starting the new one, or the reverse.
    #[serde(default)]
    pub order: UpdateOrder,
    /// A new task that has not reached `running` (healthy, when it has a
    /// health check) this long after it was made counts as failed; zero
    /// waits for ever, as Docker does.
    #[serde(default = "default_start_deadline")]
    pub start_deadline: Duration,
    /// An update in which no new task became running for this long fails
    /// with the reason; zero waits for ever, as Docker does.
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline: Duration,
    /// Canaries: this many tasks of the new spec first run beside the old
    /// ones, and the update waits to be promoted (updates only).
    #[serde(default)]
    pub canary: u64,
    /// Promote the canaries once they have all run for the monitor
    /// period, instead of waiting for `service promote`.
    #[serde(default)]
    pub auto_promote: bool,
}

fn one() -> u64 {
    1
}
fn default_monitor() -> Duration {
    Duration::from_secs(5)
}
fn default_start_deadline() -> Duration {
    Duration::from_secs(300)
}
fn default_progress_deadline() -> Duration {
    Duration::from_secs(600)
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            parallelism: 1,
            delay: Duration::ZERO,
            failure_action: FailureAction::Pause,
            monitor: default_monitor(),
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
            start_deadline: default_start_deadline(),
            progress_deadline: default_progress_deadline(),
            canary: 0,
            auto_promote: false,
        }
    }
}

/// What an update does when tasks fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Stop rolling out.
    #[default]
    Pause,
    /// Carry on.
    Continue,
    /// Roll back to the previous spec.
    Rollback,
}

/// Order of stop and start during an update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// Stop the old task, then start the new one.
    #[default]
    StopFirst,
    /// Start the new task, then stop the old one.
    StartFirst,
}

/// How a service is reached on its networks, and its published ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// A virtual IP balanced over the tasks, or DNS round robin.
    #[serde(default)]
    pub mode: EndpointMode,
    /// The ports.
    #[serde(default)]
    pub ports: Vec<PortConfig>,
}

/// How a service's name resolves on its networks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// To one virtual IP, whose connections are balanced over the tasks.
    #[default]
    Vip,
    /// To the addresses of the tasks themselves (DNS round robin).
    Dnsrr,
}

impl FromStr for EndpointMode {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vip" => Ok(Self::Vip),
            "dnsrr" => Ok(Self::Dnsrr),
            other => Err(SpecError::single(
                "endpoint.mode",
                format!("unknown endpoint mode {other:?}: use vip or dnsrr"),
            )),
        }
    }
}

impl fmt::Display for EndpointMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vip => "vip",
            Self::Dnsrr => "dnsrr",
        })
    }
}

impl EndpointSpec {
    /// The published ports of `self` that `before` (the spec before an
    /// update) did not have: the ones to check for clashes, so that an
    /// update is never stuck on a clash it did not make.
    pub fn new_ports<'a>(
        &'a self,
        before: Option<&'a EndpointSpec>,
    ) -> impl Iterator<Item = &'a PortConfig> + 'a {
        self.ports
            .iter()
            .filter(move |p| p.published_port != 0 && !before.is_some_and(|b| b.ports.contains(p)))
    }
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortConfig {
    /// TCP or UDP.
    #[serde(default)]
    pub protocol: Protocol,
    /// Port inside the task.
    pub target_port: u32,
    /// Port published on the nodes; 0 lets the cluster choose (ingress).
    #[serde(default)]
    pub published_port: u32,
    /// Routing mesh (ingress) or directly on the task's node (host).
    #[serde(default)]
    pub publish_mode: PublishMode,
    /// The mesh tells the task each connection's real client address
    /// with a PROXY protocol v2 header (TCP, ingress only; `proxy=v2` in
    /// the long form). Without it the task sees the forwarding node's
    /// address, as with Docker's mesh.
    #[serde(default)]
    pub proxy_protocol: bool,
}

impl FromStr for PortConfig {
    type Err = SpecError;
    /// Parses docker's short form `published:target[/proto]` or
    /// `target[/proto]` (published in ingress mode), or its long form
    /// `published=8080,target=80[,protocol=udp][,mode=host]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let port = if s.contains('=') {
            Self::long_form(s)?
        } else {
            Self::short_form(s)?
        };
        let mut errors = SpecError::default();
        crate::validate::port(&port, "endpoint.ports", &mut errors);
        errors.into_result().map(|()| port)
    }
}

impl PortConfig {
    /// Whether the routing mesh publishes this port (on every node).
    #[must_use]
    pub fn is_ingress(&self) -> bool {
        self.publish_mode == PublishMode::Ingress
    }

    /// Whether two services publishing `self` and `other` clash: the same
    /// published port and protocol, where either goes through the routing
    /// mesh (which answers on every node). Host-mode ports may share a
    /// number: the scheduler keeps such tasks on different nodes.
    #[must_use]
    pub fn clashes_with(&self, other: &PortConfig) -> bool {
        self.published_port != 0
            && self.published_port == other.published_port
            && self.protocol == other.protocol
            && (self.publish_mode == PublishMode::Ingress
                || other.publish_mode == PublishMode::Ingress)
    }

    /// Why `self` cannot be published: `service` publishes it already.
    #[must_use]
    pub fn taken_by(&self, service: &str) -> String {
        format!(
            "port {}/{} is already published by service {service}: publish another port, or remove that service first",
            self.published_port, self.protocol
        )
    }

    fn short_form(s: &str) -> Result<Self, SpecError> {
        let bad = |why: String| SpecError::single("endpoint.ports", why);
        let (ports, proto) = match s.split_once('/') {
            Some((p, proto)) => (
                p,
                Protocol::parse(proto).map_err(|why| bad(format!("invalid port {s:?}: {why}")))?,
            ),
            None => (s, Protocol::Tcp),
        };
        let num = |p: &str| {
            p.parse::<u32>().map_err(|_| {
                bad(format!("invalid port {s:?}: {p:?} is not a number; expected published:target, e.g. 8080:80"))
            })
        };
        let (published, target) = match ports.split_once(':') {
            Some((p, t)) => (num(p)?, num(t)?),
            None => (0, num(ports)?),
        };
        Ok(Self {
            protocol: proto,
            target_port: target,
            published_port: published,
            publish_mode: PublishMode::Ingress,
            proxy_protocol: false,
        })
    }

    fn long_form(s: &str) -> Result<Self, SpecError> {
        let bad =
            |why: String| SpecError::single("endpoint.ports", format!("invalid port {s:?}: {why}"));
        let mut port = Self {
            protocol: Protocol::Tcp,
            target_port: 0,
            published_port: 0,
            publish_mode: PublishMode::Ingress,
            proxy_protocol: false,
        };
        for field in s.split(',') {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| bad(format!("{field:?} is not KEY=VALUE")))?;
            let num = || {
                value
                    .parse::<u32>()
                    .map_err(|_| bad(format!("{key}={value:?} is not a port number")))
            };
            match key {
                "target" => port.target_port = num()?,
                "published" => port.published_port = num()?,
                "protocol" => port.protocol = Protocol::parse(value).map_err(bad)?,
                "proxy" => {
                    port.proxy_protocol = match value {
                        "v2" => true,
                        "none" => false,
                        other => {
                            return Err(bad(format!(
                                "unknown proxy protocol {other:?}: use proxy=v2 (PROXY protocol version 2) or proxy=none"
                            )));
                        }
                    }
                }
                "mode" => {
                    port.publish_mode = match value {
                        "ingress" => PublishMode::Ingress,
                        "host" => PublishMode::Host,
                        other => {
                            return Err(bad(format!(
                                "unknown mode {other:?}, expected ingress or host"
                            )));
                        }
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown field {other:?}: use target, published, protocol, mode and proxy"
                    )));
                }
            }
        }
        if port.target_port == 0 {
            return Err(bad("no target port: add target=PORT".into()));
        }
        Ok(port)
    }
}

/// A transport protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Self::Tcp),
            "udp" => Ok(Self::Udp),
            other => Err(format!("unknown protocol {other:?}, expected tcp or udp")),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// How a port is published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// On every node, through the routing mesh.
    #[default]
    Ingress,
    /// Only on the node running the task; two tasks cannot share it.
    Host,
}

/// What kind of filesystem a [`Mount`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A file or directory of the node (`source` is its absolute path).
    Bind,
    /// A named volume of the runtime (`source` is its name; none makes an
    /// anonymous volume).
    Volume,
    /// A memory-backed filesystem (no `source`).
    Tmpfs,
}

impl fmt::Display for MountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bind => "bind",
            Self::Volume => "volume",
            Self::Tmpfs => "tmpfs",
        })
    }
}

/// A filesystem mounted into a task, as docker's `--mount` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mount {
    /// Bind, volume or tmpfs.
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// The node's path (bind) or the volume's name (volume).
    #[serde(default)]
    pub source: Option<String>,
    /// Where it appears inside the task: an absolute path.
    pub target: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

impl FromStr for Mount {
    type Err = SpecError;
    /// Parses docker's `--mount` syntax:
    /// `type=bind,source=/srv/data,target=/data[,readonly]`; `type`
    /// defaults to `volume`, and `src`/`dst`/`destination`/`ro` are
    /// accepted as in docker.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            |why: String| SpecError::single("task.mounts", format!("invalid mount {s:?}: {why}"));
        let mut mount = Self {
            kind: MountKind::Volume,
            source: None,
            target: String::new(),
            read_only: false,
        };
        for field in s.split(',') {
            let (key, value) = field.split_once('=').unwrap_or((field, "true"));
            match key {
                "type" => {
                    mount.kind = match value {
                        "bind" => MountKind::Bind,
                        "volume" => MountKind::Volume,
                        "tmpfs" => MountKind::Tmpfs,
                        other => {
                            return Err(bad(format!(
                                "unknown type {other:?}, expected bind, volume or tmpfs"
                            )));
                        }
                    }
                }
                "source" | "src" => mount.source = Some(value.to_owned()),
                "target" | "dst" | "destination" => mount.target = value.to_owned(),
                "readonly" | "ro" => {
                    mount.read_only = match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => {
                            return Err(bad(format!("{key}={other:?}: expected true or false")));
                        }
                    }
                }
                other => {
                    return Err(bad(format!(
                        "unknown field {other:?}: use type, source, target and readonly"
                    )));
                }
            }
        }
        let mut errors = SpecError::default();
        crate::validate::mount(&mount, &mut errors);
        errors.into_result().map(|()| mount)
    }
}
