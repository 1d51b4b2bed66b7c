//! A node's settings, and what it keeps in its data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use swarm_core::Id;
use swarm_core::model::NodeRole;

use crate::Error;

/// The port managers listen on unless told otherwise (Docker: 2377).
pub const DEFAULT_PORT: u16 = 4242;

/// How a node runs. Only `data_dir` has no default.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the node keeps its identity, certificates and (managers) the
    /// raft log.
    pub data_dir: PathBuf,
    /// Where a manager listens (default `0.0.0.0:4242`).
    pub listen_addr: SocketAddr,
    /// The address the other nodes reach this manager at (default: the
    /// listen address or, when that is `0.0.0.0`, the address of the
    /// interface of the default route).
    pub advertise_addr: Option<String>,
    /// The name `node ls` shows (default: the machine's hostname).
    pub hostname: Option<String>,
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
}

impl NodeConfig {
    /// Defaults, keeping state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen_addr: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            advertise_addr: None,
            hostname: None,
            heartbeat_period: Duration::from_millis(400),
            heartbeat_misses: 3,
            cert_validity: swarm_api::ca::NODE_CERT_VALIDITY,
            renew_check: Duration::from_secs(60),
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
        let io = |e: std::io::Error| Error::Io(format!("cannot write {}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(".node.json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("always encodes");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&text).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, dir.join(STATE_FILE)).map_err(io)
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
