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

/// Cluster-wide settings; the store holds at most one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// The settings.
    pub spec: ClusterSpec,
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
