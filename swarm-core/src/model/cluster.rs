//! Cluster-wide objects: networks, secrets, configs and the cluster itself.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use std::net::Ipv4Addr;

use super::{Meta, Subnet};

/// The VXLAN network identifiers the allocator hands out: from 4096, as
/// Docker's overlay driver.
pub const FIRST_VNI: u32 = 4096;

/// The name of the routing mesh's network, created by `init`.
pub const INGRESS_NETWORK: &str = "ingress";

/// A network tasks attach to: an overlay spanning the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// What the user declared.
    pub spec: NetworkSpec,
    /// Its subnet, gateway and VXLAN id, once the allocator gave them.
    #[serde(default)]
    pub addresses: Option<NetworkAddresses>,
    /// Why the allocator could not give it addresses (an exhausted pool),
    /// until it can.
    #[serde(default)]
    pub error: Option<String>,
    /// Each node's own address on it (the ingress network only): the
    /// source address of the routing mesh's forwarded connections.
    #[serde(default)]
    pub node_addrs: BTreeMap<crate::Id, Ipv4Addr>,
}

impl Network {
    /// A new network of `spec`, without addresses yet.
    #[must_use]
    pub fn new(spec: NetworkSpec) -> Self {
        Self {
            meta: Meta::new(crate::Id::generate()),
            spec,
            addresses: None,
            error: None,
            node_addrs: BTreeMap::new(),
        }
    }

    /// The subnet: the allocated one, else the one the spec asks for.
    #[must_use]
    pub fn subnet(&self) -> Option<Subnet> {
        self.addresses
            .as_ref()
            .map(|a| a.subnet)
            .or(self.spec.subnet)
    }
}

/// What the allocator gave a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAddresses {
    /// The subnet its tasks and VIPs take addresses from.
    pub subnet: Subnet,
    /// The gateway address: never given to a task.
    pub gateway: Ipv4Addr,
    /// The VXLAN network identifier of the overlay.
    pub vni: u32,
}

/// What a user declares about a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Unique name.
    pub name: String,
    /// Driver name: `overlay`.
    #[serde(default)]
    pub driver: String,
    /// Subnet; none lets the cluster choose from its address pool.
    #[serde(default)]
    pub subnet: Option<Subnet>,
    /// Gateway; none takes the subnet's first host address.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Standalone workloads may attach to it, not only services' tasks.
    #[serde(default)]
    pub attachable: bool,
    /// Tasks on it reach each other only: no route out of the overlay.
    #[serde(default)]
    pub internal: bool,
    /// The routing mesh's network: at most one.
    #[serde(default)]
    pub ingress: bool,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl NetworkSpec {
    /// An overlay network named `name`, on a subnet the cluster chooses.
    #[must_use]
    pub fn overlay(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            driver: "overlay".into(),
            ..Self::default()
        }
    }
}

/// Sensitive data given to the tasks that reference it, and no one else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// Name and data.
    pub spec: SecretSpec,
}

/// A secret's name and data. Its `Debug` never shows the data.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSpec {
    /// Unique name.
    pub name: String,
    /// The secret bytes (at most 500 KiB, as Docker).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSpec")
            .field("name", &self.name)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .field("labels", &self.labels)
            .finish()
    }
}

/// Non-sensitive data given to tasks as files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// Name and data.
    pub spec: ConfigSpec,
}

/// A config's name and data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSpec {
    /// Unique name.
    pub name: String,
    /// The bytes (at most 500 KiB, as Docker).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The cluster object: its settings, and what the managers keep for it
/// (the root CA and the join tokens). There is at most one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// The settings.
    pub spec: ClusterSpec,
    /// The root CA, created by `init`: managers only.
    #[serde(default)]
    pub root_ca: Option<RootCaMaterial>,
    /// The current join tokens: managers only.
    #[serde(default)]
    pub join_tokens: Option<JoinTokens>,
    /// With autolock, the key that wraps every manager's data key (a
    /// restarted manager serves nothing until it is given it): managers
    /// only.
    #[serde(default)]
    pub unlock_key: Option<UnlockKey>,
}

/// The key that unlocks an autolocked manager, shown as Docker shows it:
/// `SWMKEY-1-` and 32 random bytes in base64. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct UnlockKey([u8; 32]);

impl UnlockKey {
    /// A new random key.
    #[must_use]
    pub fn generate() -> Self {
        use rand::RngCore as _;
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Self(k)
    }

    /// Its bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockKey(<hidden>)")
    }
}

impl std::fmt::Display for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::Engine as _;
        write!(
            f,
            "SWMKEY-1-{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0)
        )
    }
}

impl std::str::FromStr for UnlockKey {
    type Err = crate::SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use base64::Engine as _;
        let bad = || {
            crate::SpecError::single(
                "unlock_key",
                "invalid unlock key: expected SWMKEY-1- and 43 characters, as `swarmctl swarm unlock-key` shows it",
            )
        };
        let body = s.trim().strip_prefix("SWMKEY-1-").ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body)
            .map_err(|_| bad())?;
        <[u8; 32]>::try_from(bytes).map(Self).map_err(|_| bad())
    }
}

impl Serialize for UnlockKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for UnlockKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the CA key or the token secrets.
        f.debug_struct("Cluster")
            .field("meta", &self.meta)
            .field("spec", &self.spec)
            .field("root_ca", &self.root_ca.as_ref().map(|_| "<set>"))
            .field("join_tokens", &self.join_tokens.as_ref().map(|_| "<set>"))
            .field("unlock_key", &self.unlock_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The cluster's root CA, as the managers store it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootCaMaterial {
    /// The CA certificate (PEM).
    pub cert_pem: String,
    /// The CA key (PEM).
    pub key_pem: String,
}

/// The join tokens, one per role (`SWMTKN-1-<CA digest>-<secret>`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokens {
    /// Admits workers.
    pub worker: String,
    /// Admits managers.
    pub manager: String,
}

/// Cluster-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// Cluster name.
    pub name: String,
    /// Terminated tasks kept per slot (per node for global services).
    pub task_history_limit: u32,
    /// Where networks without a subnet of their own get one
    /// (`--default-addr-pool`; Docker's default, `10.0.0.0/8`).
    #[serde(default = "default_addr_pool")]
    pub default_addr_pool: Vec<Subnet>,
    /// The prefix length of the subnets cut from the pool
    /// (`--default-addr-pool-mask-length`, 24).
    #[serde(default = "default_subnet_size")]
    pub subnet_size: u8,
    /// The UDP port of the overlay's VXLAN traffic between nodes
    /// (`--data-path-port`, 4789).
    #[serde(default = "default_data_path_port")]
    pub data_path_port: u16,
    /// Autolock (`--autolock`): managers keep their data keys wrapped by
    /// the cluster's unlock key, and a restarted manager serves nothing
    /// until `swarm unlock`.
    #[serde(default)]
    pub autolock: bool,
}

fn default_addr_pool() -> Vec<Subnet> {
    vec![Subnet::containing(Ipv4Addr::new(10, 0, 0, 0), 8)]
}
fn default_subnet_size() -> u8 {
    24
}
fn default_data_path_port() -> u16 {
    4789
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            name: "default".into(),
            task_history_limit: 5,
            default_addr_pool: default_addr_pool(),
            subnet_size: default_subnet_size(),
            data_path_port: default_data_path_port(),
            autolock: false,
        }
    }
}
