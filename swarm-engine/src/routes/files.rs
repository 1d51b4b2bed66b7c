//! `/secrets` and `/configs`: `docker secret|config create|ls|inspect|rm`.
//! A secret's data never leaves the managers: lists and inspects leave it
//! out, as Docker's do.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use swarm_core::control::Control;
use swarm_core::model::{Config, ConfigSpec, Kind, Meta, Secret, SecretSpec};
use swarm_core::store::Store;

use super::{Query, Shared};
use crate::ApiError;
use crate::error::{GoJson, ok};
use crate::filters::Filters;
use crate::wire::{FileObject, FileSpec, IdResponse, Time, Version};

const SECRET_FILTERS: &[&str] = &["id", "label", "name", "names"];
const CONFIG_FILTERS: &[&str] = &["id", "label", "name"];

fn object(
    meta: &Meta,
    name: &str,
    labels: &BTreeMap<String, String>,
    data: Option<&[u8]>,
) -> FileObject {
    FileObject {
        id: meta.id.as_str().to_owned(),
        version: Version {
            index: meta.version,
        },
        created_at: Time::from(meta.created_at),
        updated_at: Time::from(meta.updated_at),
        spec: FileSpec {
            name: name.to_owned(),
            labels: labels.clone(),
            data: data
                .map(|d| base64::engine::general_purpose::STANDARD.encode(d))
                .unwrap_or_default(),
            driver: None,
            templating: None,
        },
    }
}

fn secret(s: &Secret) -> FileObject {
    object(&s.meta, &s.spec.name, &s.spec.labels, None)
}

fn config(c: &Config) -> FileObject {
    object(&c.meta, &c.spec.name, &c.spec.labels, Some(&c.spec.data))
}

fn matches(filters: &Filters, meta: &Meta, name: &str, labels: &BTreeMap<String, String>) -> bool {
    filters.prefix("id", meta.id.as_str())
        && filters.prefix_ignoring_case("name", name)
        && filters.exact("names", name)
        && filters.labels("label", labels)
}

/// A create request's name, labels and data (base64, as Go reads bytes),
/// as a secret's spec (a config's has the same fields).
fn read_spec(kind: Kind, bytes: &Bytes) -> Result<SecretSpec, ApiError> {
    let spec: FileSpec = super::body(bytes)?;
    if spec.driver.as_ref().is_some_and(|d| !d.name.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "Driver: {kind}s from an external store are not supported by this swarm yet: give the Data"
        )));
    }
    if spec.templating.as_ref().is_some_and(|d| !d.name.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "Templating: {kind} templates are not supported by this swarm yet: give the Data as it is"
        )));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(spec.data.as_bytes())
        .map_err(|e| ApiError::bad_request(format!("Data: not base64: {e}")))?;
    Ok(SecretSpec {
        name: spec.name,
        data,
        labels: spec.labels,
    })
}

async fn list_of(
    backend: &Shared,
    query: &Query,
    accepted: &[&str],
    each: impl Fn(&swarm_core::store::State, &Filters) -> Vec<FileObject>,
) -> Result<Vec<FileObject>, ApiError> {
    let filters = Filters::parse(query.get("filters").map(String::as_str), accepted)?;
    let control: Control<Arc<dyn Store>> = super::control(backend).await?;
    let state = super::state(&control).await?;
    let mut list = each(&state, &filters);
    list.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    Ok(list)
}

/// `GET /secrets?filters=`.
pub async fn list_secrets(
    State(backend): State<Shared>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    let list = list_of(&backend, &query, SECRET_FILTERS, |state, f| {
        state
            .secrets()
            .filter(|s| matches(f, &s.meta, &s.spec.name, &s.spec.labels))
            .map(|s| secret(s))
            .collect()
    })
    .await?;
    Ok(ok(list))
}

/// `GET /configs?filters=`.
pub async fn list_configs(
    State(backend): State<Shared>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    let list = list_of(&backend, &query, CONFIG_FILTERS, |state, f| {
        state
            .configs()
            .filter(|c| matches(f, &c.meta, &c.spec.name, &c.spec.labels))
            .map(|c| config(c))
            .collect()
    })
    .await?;
    Ok(ok(list))
}

/// `POST /secrets/create`: 201 with the new id.
pub async fn create_secret(
    State(backend): State<Shared>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let spec = read_spec(Kind::Secret, &bytes)?;
    let control = super::control(&backend).await?;
    let s = control.create_secret(spec).await?;
    Ok(GoJson(
        StatusCode::CREATED,
        IdResponse {
            id: s.meta.id.as_str().to_owned(),
        },
    ))
}

/// `POST /configs/create`: 201 with the new id.
pub async fn create_config(
    State(backend): State<Shared>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let SecretSpec { name, data, labels } = read_spec(Kind::Config, &bytes)?;
    let control = super::control(&backend).await?;
    let c = control
        .create_config(ConfigSpec { name, data, labels })
        .await?;
    Ok(GoJson(
        StatusCode::CREATED,
        IdResponse {
            id: c.meta.id.as_str().to_owned(),
        },
    ))
}

/// `POST /secrets/{id}/update?version=N`: new labels (nothing else may
/// change). The data may be left out, or sent as it is (`docker stack
/// deploy` sends it again on every deploy).
pub async fn update_secret(
    State(backend): State<Shared>,
    Path(id): Path<String>,
    query: Query,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    update_labels(Kind::Secret, &backend, &id, &query, &bytes).await
}

/// `POST /configs/{id}/update?version=N`: as a secret's.
pub async fn update_config(
    State(backend): State<Shared>,
    Path(id): Path<String>,
    query: Query,
    bytes: Bytes,
) -> Result<StatusCode, ApiError> {
    update_labels(Kind::Config, &backend, &id, &query, &bytes).await
}

/// A secret's or config's update: its labels, once the rest is checked
/// unchanged.
async fn update_labels(
    kind: Kind,
    backend: &Shared,
    id: &str,
    query: &Query,
    bytes: &Bytes,
) -> Result<StatusCode, ApiError> {
    let version = super::version(query)?;
    let spec = read_spec(kind, bytes)?;
    let control = super::control(backend).await?;
    if kind == Kind::Secret {
        control.update_secret(id, Some(version), spec).await?;
    } else {
        let spec = ConfigSpec {
            name: spec.name,
            data: spec.data,
            labels: spec.labels,
        };
        control.update_config(id, Some(version), spec).await?;
    }
    Ok(StatusCode::OK)
}

/// `GET /secrets/{id}`: by id, name or id prefix.
pub async fn inspect_secret(
    State(backend): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    Ok(ok(secret(&*control.secret(&id).await?)))
}

/// `GET /configs/{id}`: by id, name or id prefix.
pub async fn inspect_config(
    State(backend): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    Ok(ok(config(&*control.config(&id).await?)))
}

/// `DELETE /secrets/{id}`: 204, unless a service uses it.
pub async fn remove_secret(
    State(backend): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    let s = control.secret(&id).await?;
    control.remove_secret(&s.spec.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /configs/{id}`: 204, unless a service uses it.
pub async fn remove_config(
    State(backend): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    let c = control.config(&id).await?;
    control.remove_config(&c.spec.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
