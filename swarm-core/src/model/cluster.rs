//! Cluster-wide objects: networks, secrets, configs and the cluster itself.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::Meta;

/// A network tasks attach to. Address management arrives with swarm-net.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// What the user declared.
    pub spec: NetworkSpec,
}

/// What a user declares about a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// Unique name.
    pub name: String,
    /// Driver name, `overlay` by default.
    #[serde(default)]
    pub driver: String,
    /// Subnet in CIDR form; empty lets the cluster choose.
    #[serde(default)]
    pub subnet: String,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Sensitive data given to the tasks that reference it, and no one else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// Name and data.
    pub spec: SecretSpec,
}

/// A secret's name and data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the CA key or the token secrets.
        f.debug_struct("Cluster")
            .field("meta", &self.meta)
            .field("spec", &self.spec)
            .field("root_ca", &self.root_ca.as_ref().map(|_| "<set>"))
            .field("join_tokens", &self.join_tokens.as_ref().map(|_| "<set>"))
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
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            name: "default".into(),
            task_history_limit: 5,
        }
    }
}
