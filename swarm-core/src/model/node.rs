//! Nodes: the machines of the cluster.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{Meta, Resources};

/// A machine of the cluster, manager or worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Id, version, timestamps.
    pub meta: Meta,
    /// What the operator decides: role, availability, labels.
    pub spec: NodeSpec,
    /// What the node reports about itself when it registers.
    pub description: NodeDescription,
    /// What the managers observe: ready, down, ...
    pub status: NodeStatus,
}

impl Node {
    /// Whether the scheduler may place new tasks here.
    #[must_use]
    pub fn accepts_tasks(&self) -> bool {
        self.status.state == NodeState::Ready && self.spec.availability == Availability::Active
    }

    /// The node's hostname, or its id when it has not reported one.
    #[must_use]
    pub fn display_name(&self) -> &str {
        if self.description.hostname.is_empty() {
            self.meta.id.as_str()
        } else {
            &self.description.hostname
        }
    }
}

/// The operator's wishes for a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Manager or worker.
    #[serde(default)]
    pub role: NodeRole,
    /// Active, pause or drain.
    #[serde(default)]
    pub availability: Availability,
    /// Operator labels, matched by `node.labels.<key>` constraints.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A node's role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Runs tasks only.
    #[default]
    Worker,
    /// Keeps the store and may also run tasks.
    Manager,
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Worker => "worker",
            Self::Manager => "manager",
        })
    }
}

/// Whether a node takes new tasks and keeps its current ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    /// Takes new tasks.
    #[default]
    Active,
    /// Keeps its tasks, takes no new ones.
    Pause,
    /// Its tasks are moved away; takes no new ones.
    Drain,
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Pause => "pause",
            Self::Drain => "drain",
        })
    }
}

impl std::str::FromStr for Availability {
    type Err = crate::SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "pause" => Ok(Self::Pause),
            "drain" => Ok(Self::Drain),
            _ => Err(crate::SpecError::single(
                "availability",
                format!("unknown availability {s:?}: expected active, pause or drain"),
            )),
        }
    }
}

/// OS and architecture, as Go names them (`linux`, `amd64`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture, e.g. `amd64` or `arm64`.
    pub architecture: String,
}

impl Platform {
    /// The platform this program runs on, with Go's architecture names.
    #[must_use]
    pub fn current() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Self {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
        }
    }
}

/// What a node reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDescription {
    /// Hostname, matched by `node.hostname` constraints.
    #[serde(default)]
    pub hostname: String,
    /// OS and architecture.
    #[serde(default)]
    pub platform: Platform,
    /// Total CPU and memory the node offers to tasks.
    #[serde(default)]
    pub resources: Resources,
    /// Labels of the engine (runtime), matched by `engine.labels.<key>`.
    #[serde(default)]
    pub engine_labels: BTreeMap<String, String>,
    /// Resources beyond CPU and memory that tasks may reserve (GPUs, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<super::GenericResource>,
    /// The address the node's overlay (VXLAN) traffic comes from and goes
    /// to, as the node reports it.
    #[serde(default)]
    pub data_addr: Option<std::net::IpAddr>,
}

/// A node's observed state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Never heard from.
    #[default]
    Unknown,
    /// Heartbeating.
    Ready,
    /// Missed its heartbeats: its tasks are replaced elsewhere.
    Down,
    /// Left the cluster on purpose.
    Disconnected,
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown",
            Self::Ready => "ready",
            Self::Down => "down",
            Self::Disconnected => "disconnected",
        })
    }
}

/// What the managers observe of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Ready, down, ...
    pub state: NodeState,
    /// Why the node is in this state, for humans.
    #[serde(default)]
    pub message: String,
    /// The address the node was last seen at.
    #[serde(default)]
    pub addr: String,
    /// When the state last changed.
    pub since: SystemTime,
}

impl Default for NodeStatus {
    fn default() -> Self {
        Self {
            state: NodeState::Unknown,
            message: String::new(),
            addr: String::new(),
            since: SystemTime::now(),
        }
    }
}
