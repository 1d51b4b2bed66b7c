//! A compose file as written (format 3.x), in every form the format allows
//! for a field: lists or maps, short strings or long maps, numbers or
//! strings. [`crate::Stack::from_compose`] turns it into specs.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// A YAML scalar, as a compose field may hold any of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true`, `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// Text.
    Str(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(n) => write!(f, "{n}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Str(s) => f.write_str(s),
        }
    }
}

/// `[A=1, B]` or `{A: 1, B: null}`: environment, labels, sysctls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ListOrMap {
    /// `KEY=VALUE` items (or `KEY` alone).
    List(Vec<String>),
    /// `KEY: VALUE` entries (a null value: `KEY` alone).
    Map(BTreeMap<String, Option<Scalar>>),
}

impl ListOrMap {
    /// The entries as `(key, value)`; a key without `=` or with a null has
    /// no value.
    #[must_use]
    pub fn entries(&self) -> Vec<(String, Option<String>)> {
        match self {
            Self::List(items) => items
                .iter()
                .map(|i| match i.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (i.clone(), None),
                })
                .collect(),
            Self::Map(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_ref().map(ToString::to_string)))
                .collect(),
        }
    }
}

/// A string, or a list of them: `command`, `dns`, `env_file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// One string (a command line is split as a shell would).
    One(String),
    /// Several.
    List(Vec<String>),
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
pub struct ComposeFile {
    /// `"3"`, `"3.8"`, ... (optional, as in the compose specification).
    #[serde(default)]
    pub version: Option<Scalar>,
    /// The services, by name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceDef>,
    /// The networks, by name.
    #[serde(default)]
    pub networks: BTreeMap<String, Option<NetworkDef>>,
    /// Named volumes (kept by the nodes, not by the stack).
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<IgnoredAny>>,
    /// The secrets, by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, FileDef>,
    /// The configs, by name.
    #[serde(default)]
    pub configs: BTreeMap<String, FileDef>,
    /// Any other key: `x-` extensions are allowed, the rest refused.
    #[serde(flatten)]
    pub other: BTreeMap<String, IgnoredAny>,
}

/// A service.
#[derive(Debug, Clone, Default, Deserialize)]
#[allow(missing_docs)]
pub struct ServiceDef {
    pub image: Option<String>,
    pub command: Option<StringOrList>,
    pub entrypoint: Option<StringOrList>,
    pub environment: Option<ListOrMap>,
    pub env_file: Option<StringOrList>,
    pub labels: Option<ListOrMap>,
    pub deploy: Option<Deploy>,
    pub ports: Option<Vec<PortDef>>,
    pub networks: Option<ServiceNetworks>,
    pub secrets: Option<Vec<FileRefDef>>,
    pub configs: Option<Vec<FileRefDef>>,
    pub volumes: Option<Vec<VolumeDef>>,
    pub healthcheck: Option<HealthcheckDef>,
    pub hostname: Option<String>,
    pub user: Option<Scalar>,
    pub working_dir: Option<String>,
    pub stop_grace_period: Option<String>,
    pub stop_signal: Option<String>,
    pub init: Option<bool>,
    pub read_only: Option<bool>,
    pub tty: Option<bool>,
    pub stdin_open: Option<bool>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub sysctls: Option<ListOrMap>,
    pub extra_hosts: Option<ListOrMap>,
    pub dns: Option<StringOrList>,
    pub dns_search: Option<StringOrList>,
    pub dns_opt: Option<Vec<String>>,
    pub group_add: Option<Vec<Scalar>>,
    pub logging: Option<LoggingDef>,
    pub ulimits: Option<BTreeMap<String, UlimitDef>>,
    pub oom_score_adj: Option<i64>,
    pub isolation: Option<String>,
    /// Every other key: the options `docker stack deploy` ignores (with a
    /// warning), `x-` extensions, and mistakes (refused).
    #[serde(flatten)]
    pub other: BTreeMap<String, IgnoredAny>,
}

/// `deploy:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Deploy {
    pub mode: Option<String>,
    pub replicas: Option<u64>,
    pub labels: Option<ListOrMap>,
    pub placement: Option<PlacementDef>,
    pub resources: Option<ResourcesDef>,
    pub restart_policy: Option<RestartDef>,
    pub update_config: Option<UpdateDef>,
    pub rollback_config: Option<UpdateDef>,
    pub endpoint_mode: Option<String>,
}

/// `deploy.placement`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PlacementDef {
    pub constraints: Option<Vec<String>>,
    pub preferences: Option<Vec<PreferenceDef>>,
    pub max_replicas_per_node: Option<u64>,
}

/// `deploy.placement.preferences[]`: `{spread: node.labels.zone}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct PreferenceDef {
    pub spread: String,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ResourcesDef {
    pub limits: Option<ResourceDef>,
    pub reservations: Option<ResourceDef>,
}

/// `cpus: "0.5"`, `memory: 512M`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ResourceDef {
    pub cpus: Option<Scalar>,
    pub memory: Option<Scalar>,
    pub pids: Option<u64>,
    pub generic_resources: Option<Vec<GenericDef>>,
}

/// `generic_resources[]`: `{discrete_resource_spec: {kind: gpu, value: 1}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct GenericDef {
    pub discrete_resource_spec: Option<DiscreteDef>,
    pub named_resource_spec: Option<IgnoredAny>,
}

/// `discrete_resource_spec`: a kind and how many.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct DiscreteDef {
    pub kind: String,
    pub value: u64,
}

/// `ulimits.NAME`: one number for both limits, or `{soft, hard}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum UlimitDef {
    /// The soft and hard limit alike.
    Single(i64),
    /// Each.
    Pair {
        /// The limit in force.
        soft: i64,
        /// The limit a process may raise itself to.
        hard: i64,
    },
}

/// `deploy.restart_policy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RestartDef {
    pub condition: Option<String>,
    pub delay: Option<String>,
    pub max_attempts: Option<u32>,
    pub window: Option<String>,
}

/// `deploy.update_config` and `deploy.rollback_config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct UpdateDef {
    pub parallelism: Option<u64>,
    pub delay: Option<String>,
    pub failure_action: Option<String>,
    pub monitor: Option<String>,
    pub max_failure_ratio: Option<Scalar>,
    pub order: Option<String>,
}

/// A port: `"8080:80"`, `80`, or `{target, published, protocol, mode}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PortDef {
    /// The long form.
    Long {
        /// The port in the task.
        target: u32,
        /// The port the cluster publishes.
        #[serde(default)]
        published: Option<Scalar>,
        /// `tcp` or `udp`.
        #[serde(default)]
        protocol: Option<String>,
        /// `ingress` or `host`.
        #[serde(default)]
        mode: Option<String>,
    },
    /// The short form.
    Short(Scalar),
}

/// A service's networks: `[front, back]` or `{front: {aliases: [...]}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ServiceNetworks {
    /// Names.
    List(Vec<String>),
    /// Names with their settings.
    Map(BTreeMap<String, Option<ServiceNetworkDef>>),
}

/// `networks.NAME` of a service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetworkDef {
    /// More names the service answers to on this network.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A secret or config a service uses: `NAME` or `{source, target, uid,
/// gid, mode}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FileRefDef {
    /// The name alone.
    Short(String),
    /// With its settings.
    Long {
        /// The secret's name in the file.
        source: String,
        /// Where the task finds it.
        #[serde(default)]
        target: Option<String>,
        /// Its owner.
        #[serde(default)]
        uid: Option<Scalar>,
        /// Its group.
        #[serde(default)]
        gid: Option<Scalar>,
        /// Its mode (YAML reads `0440` as octal, a string as written).
        #[serde(default)]
        mode: Option<Scalar>,
    },
}

/// A volume: `"src:dst[:ro]"` or `{type, source, target, read_only}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum VolumeDef {
    /// The short form.
    Short(String),
    /// The long form.
    Long {
        /// `volume`, `bind` or `tmpfs`.
        #[serde(rename = "type")]
        kind: String,
        /// The volume's name or the host path.
        #[serde(default)]
        source: Option<String>,
        /// The path in the task.
        target: String,
        /// Mounted read-only.
        #[serde(default)]
        read_only: bool,
    },
}

/// `healthcheck:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct HealthcheckDef {
    pub test: Option<StringOrList>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub start_period: Option<String>,
    pub disable: Option<bool>,
}

/// `logging:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LoggingDef {
    pub driver: Option<String>,
    pub options: Option<BTreeMap<String, Scalar>>,
}

/// A top-level network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct NetworkDef {
    pub driver: Option<String>,
    pub driver_opts: Option<BTreeMap<String, Scalar>>,
    pub external: Option<External>,
    pub name: Option<String>,
    pub internal: Option<bool>,
    pub attachable: Option<bool>,
    pub labels: Option<ListOrMap>,
    pub ipam: Option<IpamDef>,
}

/// `ipam:` of a network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct IpamDef {
    pub driver: Option<String>,
    pub config: Option<Vec<IpamConfigDef>>,
}

/// One `ipam.config` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct IpamConfigDef {
    pub subnet: Option<String>,
    pub gateway: Option<String>,
}

/// `external: true`, or the 3.x form `external: {name: N}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum External {
    /// `true` or `false`.
    Flag(bool),
    /// The named object.
    Named {
        /// Its name in the cluster.
        name: String,
    },
}

/// A top-level secret or config: from a `file`, or `external`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FileDef {
    pub file: Option<String>,
    pub external: Option<External>,
    pub name: Option<String>,
    pub labels: Option<ListOrMap>,
    pub template_driver: Option<String>,
    pub driver: Option<String>,
}
