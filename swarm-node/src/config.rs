//! A node's settings, and what it keeps in its data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm_core::Id;
use swarm_core::agent::AgentConfig;
use swarm_core::manager::ManagerConfig;
use swarm_core::model::{ClusterSpec, NodeRole};

use crate::Error;

/// The port managers listen on unless told otherwise: 2377, as Docker's.
pub const DEFAULT_PORT: u16 = 2377;

/// How a node runs. Only `data_dir` has no default.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the node keeps its identity, certificates and (managers) the
    /// raft log.
    pub data_dir: PathBuf,
    /// Where a manager listens (default `0.0.0.0:2377`, Docker's cluster-management port).
    pub listen_addr: SocketAddr,
    /// The address the other nodes reach this manager at (default: the
    /// listen address or, when that is `0.0.0.0`, the address of the
    /// interface of the default route).
    pub advertise_addr: Option<String>,
    /// The name `node ls` shows (default: the machine's hostname).
    pub hostname: Option<String>,
    /// Raft log entries between snapshots of a manager's store (default
    /// 10000, as Docker's `--snapshot-interval`).
    pub snapshot_interval: u64,
    /// How often workers send heartbeats (default 400 ms; Docker: 5 s).
    /// A node that misses [`NodeConfig::heartbeat_misses`] of them in a
    /// row is down.
    pub heartbeat_period: Duration,
    /// Missed heartbeats before a node is marked down (default 3: a lost
    /// node is noticed within 1.2 s).
    pub heartbeat_misses: u32,
    /// How long node certificates are valid (default 90 days); they are
    /// renewed when a third of that remains.
    pub cert_validity: Duration,
    /// How often a node checks whether its certificate needs renewing
    /// (default 1 minute).
    pub renew_check: Duration,
    /// The manager's control loops (while this node leads).
    pub manager: ManagerConfig,
    /// The node's agent (its hostname is [`NodeConfig::hostname`]'s).
    pub agent: AgentConfig,
    /// The cluster's settings, for `init` only: address pools
    /// (`--default-addr-pool`), subnet size and the data path port.
    pub cluster: ClusterSpec,
    /// How the node's tasks get their networks.
    pub data_plane: DataPlane,
}

/// How a node's tasks get their networks. A library's default must not
/// reconfigure the host's network, so it is [`DataPlane::Host`]; `swarmd`,
/// the daemon of a host, uses [`DataPlane::Linux`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DataPlane {
    /// Each task on a network gets a namespace of its own, the node joins
    /// the overlays (VXLAN), and serves DNS, VIPs and the routing mesh
    /// (swarm-net's Linux driver). Needs root (CAP_NET_ADMIN); without it
    /// the node says so and falls back to [`DataPlane::Host`]. One such
    /// node per network namespace: nodes sharing a host's namespace would
    /// fight over its interfaces.
    Linux,
    /// Tasks share the host's network: no overlay, DNS or VIP reaches
    /// them; ports are published only where a runtime does it itself.
    #[default]
    Host,
}

impl std::str::FromStr for DataPlane {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "linux" => Ok(Self::Linux),
            "host" => Ok(Self::Host),
            other => Err(format!("unknown data plane {other:?}: use linux or host")),
        }
    }
}

impl std::fmt::Display for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Linux => "linux",
            Self::Host => "host",
        })
    }
}

impl NodeConfig {
    /// Defaults, keeping state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen_addr: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            advertise_addr: None,
            hostname: None,
            snapshot_interval: 10_000,
            heartbeat_period: Duration::from_millis(400),
            heartbeat_misses: 3,
            cert_validity: swarm_api::ca::NODE_CERT_VALIDITY,
            renew_check: Duration::from_secs(60),
            manager: ManagerConfig::default(),
            agent: AgentConfig::default(),
            cluster: ClusterSpec::default(),
            data_plane: DataPlane::default(),
        }
    }

    /// The address other nodes reach this one at.
    pub fn advertised(&self) -> Result<String, Error> {
        if let Some(a) = &self.advertise_addr {
            return Ok(if a.contains(':') {
                a.clone()
            } else {
                format!("{a}:{}", self.listen_addr.port())
            });
        }
        if self.listen_addr.ip().is_unspecified() {
            // As Docker does: the address of the interface of the default
            // route.
            return default_route_ip()
                .map(|ip| SocketAddr::new(ip, self.listen_addr.port()).to_string())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "cannot tell the other nodes where to reach this manager: it listens \
                         on {} (every interface) and this host has no default route. Pass \
                         --advertise-addr with this host's address, e.g. --advertise-addr \
                         192.168.1.10",
                        self.listen_addr
                    ))
                });
        }
        Ok(self.listen_addr.to_string())
    }

    /// The node's underlay address, for its overlay traffic: the advertised
    /// address's IP, else that of the default route.
    #[must_use]
    pub fn data_addr(&self) -> Option<std::net::IpAddr> {
        if let Some(a) = &self.advertise_addr {
            let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
            if let Ok(ip) = host.trim_matches(['[', ']']).parse() {
                return Some(ip);
            }
        }
        if !self.listen_addr.ip().is_unspecified() && !self.listen_addr.ip().is_loopback() {
            return Some(self.listen_addr.ip());
        }
        default_route_ip()
    }

    /// The node's hostname: the configured one or the machine's.
    #[must_use]
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(machine_hostname)
    }

    pub(crate) fn certs_dir(&self) -> PathBuf {
        self.data_dir.join("certificates")
    }

    /// Where a manager writes the client certificate for `swarmctl`.
    #[must_use]
    pub fn client_certs_dir(&self) -> PathBuf {
        self.data_dir.join("client")
    }

    pub(crate) fn raft_dir(&self) -> PathBuf {
        self.data_dir.join("raft")
    }
}

/// The local address of the default route: a UDP socket "connected" to a
/// public address sends nothing but learns which interface it would use.
fn default_route_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// What a node remembers about itself between runs (`node.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// Its id, fixed at join.
    pub node_id: Id,
    /// Its role, as its certificate says.
    pub role: NodeRole,
    /// The managers' addresses, last known.
    pub managers: Vec<String>,
    /// A manager: it is a member of the raft group.
    #[serde(default)]
    pub raft_member: bool,
}

const STATE_FILE: &str = "node.json";

impl NodeState {
    /// The state in `dir`, if the node has joined a cluster.
    pub fn load(dir: &Path) -> Result<Option<Self>, Error> {
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::Config(format!(
                    "{} is damaged ({e}); restore it, or remove the data directory and join again",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Writes it atomically.
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let text = serde_json::to_vec_pretty(self).expect("always encodes");
        write_atomically(dir, STATE_FILE, &text)
    }
}

/// The raft member id of a manager node: fixed by its node id, so every
/// manager maps one to the other without a table.
#[must_use]
pub fn raft_id(node: &Id) -> u64 {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(node.as_str().as_bytes());
    let id = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
    id.max(1)
}

/// The settings given at `init` or `join` that a resumed node keeps
/// (`settings.json` in the data directory): each is `None` when never
/// given, and then the default applies.
///
/// `swarmd` keeps what `init`/`join` were given, and on resume overlays
/// the flags given then ([`NodeSettings::overlaid`]) and keeps the result:
/// a node comes back with its own name and address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeSettings {
    /// [`NodeConfig::hostname`].
    pub hostname: Option<String>,
    /// [`NodeConfig::listen_addr`].
    pub listen_addr: Option<SocketAddr>,
    /// [`NodeConfig::advertise_addr`].
    pub advertise_addr: Option<String>,
    /// [`NodeConfig::heartbeat_period`], in milliseconds.
    pub heartbeat_period_ms: Option<u64>,
    /// Which runtime runs the node's tasks: the embedding program's name
    /// for it (`swarmd`: `process` or `docker`); the node itself does not
    /// read it.
    pub runtime: Option<String>,
    /// How the manager ranks nodes (`swarmd`: `spread` or `binpack`),
    /// for the embedding program to build its scheduler with.
    pub scheduler_strategy: Option<String>,
    /// [`NodeConfig::data_plane`] (`linux` or `host`).
    #[serde(default)]
    pub data_plane: Option<String>,
    /// [`NodeConfig::snapshot_interval`].
    #[serde(default)]
    pub snapshot_interval: Option<u64>,
    /// The generic resources the node advertises
    /// ([`swarm_core::agent::AgentConfig::generic_resources`]).
    #[serde(default)]
    pub generic_resources: Option<Vec<swarm_core::model::GenericResource>>,
}

const SETTINGS_FILE: &str = "settings.json";

impl NodeSettings {
    /// The settings kept in `dir`; none when nothing was kept.
    pub fn kept(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(SETTINGS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Config(format!(
                    "{} is damaged ({e}): fix or remove it, and give the node's flags again",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::Io(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Keeps them in `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let text = serde_json::to_vec_pretty(self).expect("always encodes");
        write_atomically(dir, SETTINGS_FILE, &text)
    }

    /// These settings with every one that `given` sets replaced by it.
    #[must_use]
    pub fn overlaid(self, given: &Self) -> Self {
        Self {
            hostname: given.hostname.clone().or(self.hostname),
            listen_addr: given.listen_addr.or(self.listen_addr),
            advertise_addr: given.advertise_addr.clone().or(self.advertise_addr),
            heartbeat_period_ms: given.heartbeat_period_ms.or(self.heartbeat_period_ms),
            runtime: given.runtime.clone().or(self.runtime),
            scheduler_strategy: given.scheduler_strategy.clone().or(self.scheduler_strategy),
            data_plane: given.data_plane.clone().or(self.data_plane),
            snapshot_interval: given.snapshot_interval.or(self.snapshot_interval),
            generic_resources: given.generic_resources.clone().or(self.generic_resources),
        }
    }

    /// Sets the fields of `config` that these settings give.
    pub fn apply(&self, config: &mut NodeConfig) {
        if let Some(h) = &self.hostname {
            config.hostname = Some(h.clone());
        }
        if let Some(l) = self.listen_addr {
            config.listen_addr = l;
        }
        if let Some(a) = &self.advertise_addr {
            config.advertise_addr = Some(a.clone());
        }
        if let Some(ms) = self.heartbeat_period_ms {
            config.heartbeat_period = Duration::from_millis(ms);
        }
        if let Some(d) = self.data_plane.as_deref().and_then(|d| d.parse().ok()) {
            config.data_plane = d;
        }
        if let Some(n) = self.snapshot_interval {
            config.snapshot_interval = n;
        }
        if let Some(g) = &self.generic_resources {
            config.agent.generic_resources.clone_from(g);
        }
    }
}

/// Writes `name` in `dir` through a temporary file, synced, then renamed.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Io(format!("cannot write {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, dir.join(name)).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_kept_and_given_ones_win() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            NodeSettings::kept(dir.path()).unwrap(),
            NodeSettings::default()
        );
        let first = NodeSettings {
            hostname: Some("m1".into()),
            listen_addr: Some("127.0.0.1:24242".parse().unwrap()),
            runtime: Some("docker".into()),
            ..NodeSettings::default()
        };
        first.save(dir.path()).unwrap();
        let kept = NodeSettings::kept(dir.path()).unwrap();
        assert_eq!(kept, first);
        let given = NodeSettings {
            hostname: Some("renamed".into()),
            heartbeat_period_ms: Some(250),
            ..NodeSettings::default()
        };
        let now = kept.overlaid(&given);
        assert_eq!(now.hostname.as_deref(), Some("renamed"));
        assert_eq!(now.listen_addr, first.listen_addr, "not given: kept");
        assert_eq!(now.runtime.as_deref(), Some("docker"));
        let mut config = NodeConfig::new(dir.path());
        now.apply(&mut config);
        assert_eq!(config.hostname(), "renamed");
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:24242");
        assert_eq!(config.heartbeat_period, Duration::from_millis(250));
        assert_eq!(config.advertise_addr, None);

        std::fs::write(dir.path().join(SETTINGS_FILE), b"{ not json").unwrap();
        let err = NodeSettings::kept(dir.path()).unwrap_err().to_string();
        assert!(err.contains("settings.json is damaged"), "{err}");
    }
}
