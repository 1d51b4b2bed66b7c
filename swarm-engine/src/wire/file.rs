//! Secrets and configs as Docker's API writes them (`GET /secrets`,
//! `GET /configs`): their data in base64, as Go writes bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::service::Driver;
use super::{Time, Version};

/// A secret or a config (their shapes are Docker's, and the same).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FileObject {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its version, for `update?version=`.
    pub version: Version,
    /// When it was made.
    pub created_at: Time,
    /// When it last changed.
    pub updated_at: Time,
    /// What was declared.
    pub spec: FileSpec,
}

/// A secret's or config's declaration (`POST /secrets/create`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FileSpec {
    /// Its name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The bytes, base64 (never shown for a secret).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// An external store's driver (not served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    /// A template engine for the data (not served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templating: Option<Driver>,
}

/// `POST /secrets/create`'s and `/configs/create`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IdResponse {
    /// The new object's id.
    #[serde(rename = "ID")]
    pub id: String,
}
