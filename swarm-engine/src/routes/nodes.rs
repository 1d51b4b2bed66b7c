//! `/nodes`: `docker node ls|inspect|update|promote|demote|rm`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::{Query, Shared};
use crate::error::ok;
use crate::filters::{Filters, parse_bool};
use crate::{ApiError, convert};

const FILTERS: &[&str] = &["id", "label", "membership", "name", "node.label", "role"];

/// `GET /nodes?filters=`.
pub async fn list(
    State(backend): State<Shared>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    let filters = Filters::parse(query.get("filters").map(String::as_str), FILTERS)?;
    let control = super::control(&backend).await?;
    let state = super::state(&control).await?;
    let managers = backend.managers().await;
    let mut nodes: Vec<_> = state
        .nodes()
        .filter(|n| {
            filters.prefix("id", n.meta.id.as_str())
                && filters.prefix("name", &n.description.hostname)
                && filters.exact("role", &n.spec.role.to_string())
                && filters.exact("membership", "accepted")
                && filters.labels("label", &n.description.engine_labels)
                && filters.labels("node.label", &n.spec.labels)
        })
        .map(|n| convert::node(n, &managers))
        .collect();
    nodes.sort_by(|a, b| a.created_at.0.cmp(&b.created_at.0).then(a.id.cmp(&b.id)));
    Ok(ok(nodes))
}

/// `GET /nodes/{id}`: by id, id prefix or hostname.
pub async fn inspect(
    State(backend): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    let node = control.node(&id).await?;
    let managers = backend.managers().await;
    Ok(ok(convert::node(&node, &managers)))
}

/// `POST /nodes/{id}/update?version=`: the whole spec, as read at
/// `version`.
pub async fn update(
    State(backend): State<Shared>,
    Path(id): Path<String>,
    query: Query,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let version = super::version(&query)?;
    let spec: crate::wire::NodeSpec = super::body(&bytes)?;
    let control = super::control(&backend).await?;
    let node = control.node(&id).await?;
    let new = convert::node_spec(spec, &node.spec)?;
    control
        .replace_node_spec(node.meta.id.as_str(), new, Some(version))
        .await?;
    Ok(StatusCode::OK)
}

/// `DELETE /nodes/{id}?force=`.
pub async fn remove(
    State(backend): State<Shared>,
    Path(id): Path<String>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    let force = parse_bool("force", query.get("force").map(String::as_str), false)?;
    let control = super::control(&backend).await?;
    control.remove_node(&id, force).await?;
    Ok(StatusCode::OK)
}
