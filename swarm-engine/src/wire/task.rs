//! Tasks as Docker's API writes them (`GET /tasks`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::network::SwarmNetwork;
use super::service::{PortConfig, TaskSpec};
use super::{Time, Version};

/// One run of a service's template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Task {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its version.
    pub version: Version,
    /// When it was made.
    pub created_at: Time,
    /// When it last changed.
    pub updated_at: Time,
    /// Docker leaves it empty: the CLI names tasks `service.slot`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// What it runs.
    pub spec: TaskSpec,
    /// Its service's id.
    #[serde(rename = "ServiceID", skip_serializing_if = "String::is_empty")]
    pub service_id: String,
    /// Its slot (replicated services).
    #[serde(skip_serializing_if = "is_zero")]
    pub slot: u64,
    /// Its node, once placed.
    #[serde(rename = "NodeID", skip_serializing_if = "String::is_empty")]
    pub node_id: String,
    /// What happened to it.
    pub status: TaskStatus,
    /// What the managers want of it: `running` or `shutdown`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub desired_state: String,
    /// Its addresses, one entry per network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks_attachments: Vec<NetworkAttachment>,
    /// The node's generic resources given to the task.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assigned_generic_resources: Vec<super::node::GenericResource>,
}

/// A task's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskStatus {
    /// When it was entered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Time>,
    /// `new`, `pending`, ..., `running`, `failed`...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// In words.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub err: String,
    /// Its container (or process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_status: Option<ContainerStatus>,
    /// Its host-mode ports.
    pub port_status: PortStatus,
}

/// A task's container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerStatus {
    /// The container's id (or the process id, with the process runtime).
    #[serde(rename = "ContainerID", skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    /// The process id.
    #[serde(rename = "PID", skip_serializing_if = "is_zero_i64")]
    pub pid: i64,
    /// How it exited.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub exit_code: i64,
}

/// A task's host-mode ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortStatus {
    /// The ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

/// A task's addresses on one network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkAttachment {
    /// The network.
    pub network: SwarmNetwork,
    /// `10.0.1.5/24`.
    pub addresses: Vec<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}
