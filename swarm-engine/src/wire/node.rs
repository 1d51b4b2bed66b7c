//! Nodes as Docker's API writes them (`GET /nodes`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Time, TlsInfo, Version};

/// A node of the swarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its version, for `update?version=`.
    pub version: Version,
    /// When it joined.
    pub created_at: Time,
    /// When it last changed.
    pub updated_at: Time,
    /// What the operator decides.
    pub spec: NodeSpec,
    /// What the node reports.
    pub description: NodeDescription,
    /// What the managers see.
    pub status: NodeStatus,
    /// Its place among the managers, if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<ManagerStatus>,
}

/// The operator's wishes for a node (`POST /nodes/{id}/update`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeSpec {
    /// A name (Docker's nodes have none; kept when given).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The operator's labels.
    pub labels: BTreeMap<String, String>,
    /// `worker` or `manager`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// `active`, `pause` or `drain`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub availability: String,
}

/// What a node reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeDescription {
    /// Its hostname.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// OS and architecture.
    pub platform: Platform,
    /// What it offers to tasks.
    pub resources: Resources,
    /// Its runtime.
    pub engine: EngineDescription,
    /// Its view of the swarm's root of trust.
    #[serde(rename = "TLSInfo")]
    pub tls_info: TlsInfo,
}

/// OS and architecture, as Go names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Platform {
    /// `amd64`, `arm64`...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    /// `linux`.
    #[serde(rename = "OS", skip_serializing_if = "String::is_empty")]
    pub os: String,
}

/// CPU, memory and generic resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resources {
    /// CPU, billionths of a core.
    #[serde(rename = "NanoCPUs", skip_serializing_if = "is_zero_i64")]
    pub nano_cpus: i64,
    /// Memory, bytes.
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub memory_bytes: i64,
    /// GPUs and the like.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<GenericResource>,
}

/// One generic resource: named (`gpu=GPU-9f2c`) or an amount (`ssd=3`);
/// one of the two is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GenericResource {
    /// A resource with an identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub named_resource_spec: Option<NamedResourceSpec>,
    /// An amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discrete_resource_spec: Option<DiscreteResourceSpec>,
}

/// A named generic resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NamedResourceSpec {
    /// Its kind (`gpu`).
    pub kind: String,
    /// Which one.
    pub value: String,
}

/// An amount of a generic resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DiscreteResourceSpec {
    /// Its kind (`ssd`).
    pub kind: String,
    /// How many.
    pub value: i64,
}

/// A node's runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EngineDescription {
    /// Its version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub engine_version: String,
    /// Its labels (`engine.labels.*` constraints).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Its plugins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginDescription>,
}

/// A plugin of a node's runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PluginDescription {
    /// `Network`, `Volume`, `Log`...
    pub r#type: String,
    /// Its name.
    pub name: String,
}

/// What the managers see of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeStatus {
    /// `unknown`, `down`, `ready` or `disconnected`.
    pub state: String,
    /// Why.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Where it was last seen.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
}

/// A manager's place in the raft group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ManagerStatus {
    /// It leads.
    #[serde(skip_serializing_if = "super::is_false")]
    pub leader: bool,
    /// `reachable`, `unreachable` or `unknown`.
    pub reachability: String,
    /// Where the other managers reach it, `IP:2377`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}
