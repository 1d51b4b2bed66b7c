//! Networks as Docker's API writes them: `docker network ls|inspect`'s
//! shape, the create request, and the swarm shape tasks carry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::service::Driver;
use super::{Time, Version, is_false};

/// A network, as `GET /networks` lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkResource {
    /// Its name.
    pub name: String,
    /// Its id.
    #[serde(rename = "Id")]
    pub id: String,
    /// When it was made.
    pub created: Time,
    /// `swarm`.
    pub scope: String,
    /// `overlay`.
    pub driver: String,
    /// IPv4 addresses (always).
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    /// IPv6 addresses (never here).
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Its addresses.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// No route out of it.
    pub internal: bool,
    /// Standalone containers may join it.
    pub attachable: bool,
    /// The routing mesh's network.
    pub ingress: bool,
    /// A config-only network it takes its settings from.
    pub config_from: ConfigReference,
    /// A config-only network.
    pub config_only: bool,
    /// The local containers on it (none are listed for swarm networks).
    pub containers: BTreeMap<String, serde_json::Value>,
    /// The driver's options.
    pub options: BTreeMap<String, String>,
    /// The user's labels.
    pub labels: BTreeMap<String, String>,
    /// The nodes it spans (verbose inspect).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<serde_json::Value>,
}

/// A network's address management.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    /// `default`.
    pub driver: String,
    /// Its options.
    pub options: Option<BTreeMap<String, String>>,
    /// Its pools.
    pub config: Vec<IpamConfig>,
}

/// One pool of a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    /// `10.0.1.0/24`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    /// A range within it that tasks take from.
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    /// Its gateway.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// Addresses kept aside.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// A config-only network, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigReference {
    /// Its name.
    pub network: String,
}

/// `POST /networks/create`'s body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    /// Its name.
    pub name: String,
    /// Old clients' wish to be told of a duplicate (always checked).
    pub check_duplicate: Option<bool>,
    /// `overlay`.
    pub driver: String,
    /// `swarm`, or empty.
    pub scope: String,
    /// IPv4 (must not be turned off).
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: Option<bool>,
    /// IPv6 (not served).
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    /// Its addresses.
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    /// No route out.
    pub internal: bool,
    /// Standalone containers may join.
    pub attachable: bool,
    /// The routing mesh's network.
    pub ingress: bool,
    /// A config-only network.
    pub config_only: bool,
    /// Its settings from a config-only network.
    pub config_from: Option<ConfigReference>,
    /// The driver's options.
    pub options: BTreeMap<String, String>,
    /// The user's labels.
    pub labels: BTreeMap<String, String>,
}

/// `POST /networks/create`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkCreateResponse {
    /// The new network's id.
    #[serde(rename = "Id")]
    pub id: String,
    /// What the user should know.
    #[serde(rename = "Warning")]
    pub warning: String,
}

/// A network as swarm objects carry it (a task's attachments).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SwarmNetwork {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its version.
    pub version: Version,
    /// When it was made.
    pub created_at: Time,
    /// When it last changed.
    pub updated_at: Time,
    /// What was declared.
    pub spec: SwarmNetworkSpec,
    /// Its driver's state.
    pub driver_state: Driver,
    /// Its addresses.
    #[serde(rename = "IPAMOptions", skip_serializing_if = "Option::is_none")]
    pub ipam_options: Option<IpamOptions>,
}

/// A swarm network's declaration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SwarmNetworkSpec {
    /// Its name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_configuration: Option<Driver>,
    /// IPv6.
    #[serde(rename = "IPv6Enabled", skip_serializing_if = "is_false")]
    pub ipv6_enabled: bool,
    /// No route out.
    #[serde(skip_serializing_if = "is_false")]
    pub internal: bool,
    /// Standalone containers may join.
    #[serde(skip_serializing_if = "is_false")]
    pub attachable: bool,
    /// The routing mesh's network.
    #[serde(skip_serializing_if = "is_false")]
    pub ingress: bool,
    /// Its scope.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// A swarm network's pools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamOptions {
    /// `default`.
    pub driver: Driver,
    /// Its pools.
    pub configs: Vec<IpamConfig>,
}
