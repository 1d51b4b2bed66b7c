//! `/networks`: `docker network create --driver overlay|ls|inspect|rm`
//! for the swarm's overlays.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::{Query, Shared};
use crate::error::{GoJson, ok};
use crate::filters::{Filters, parse_bool};
use crate::wire::NetworkCreateResponse;
use crate::{ApiError, convert};

const FILTERS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];

/// `GET /networks?filters=`: names match as substrings, as Docker's do.
pub async fn list(
    State(backend): State<Shared>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    let filters = Filters::parse(query.get("filters").map(String::as_str), FILTERS)?;
    for t in filters.get("type") {
        if !matches!(t, "custom" | "builtin") {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}': use custom or builtin"
            )));
        }
    }
    let dangling = filters
        .get("dangling")
        .map(|v| parse_bool("dangling", Some(v), false))
        .collect::<Result<Vec<_>, _>>()?;
    let control = super::control(&backend).await?;
    let state = super::state(&control).await?;
    let used = |id: &str, name: &str| {
        state.services().any(|s| {
            s.spec
                .task
                .networks
                .iter()
                .any(|n| n.target == id || n.target == name)
        })
    };
    let mut networks: Vec<_> = state
        .networks()
        .filter(|n| {
            let id = n.meta.id.as_str();
            filters.prefix("id", id)
                && filters.substring("name", &n.spec.name)
                && filters.exact("driver", &n.spec.driver)
                && filters.exact("scope", "swarm")
                && filters.exact("type", "custom")
                && filters.labels("label", &n.spec.labels)
                && dangling
                    .iter()
                    .all(|d| *d != (used(id, &n.spec.name) || n.spec.ingress))
        })
        .map(|n| convert::network(n))
        .collect();
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ok(networks))
}

/// `GET /networks/{id}`: by id, name or id prefix.
pub async fn inspect(
    State(backend): State<Shared>,
    Path(id): Path<String>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    parse_bool("verbose", query.get("verbose").map(String::as_str), false)?;
    if let Some(scope) = query.get("scope")
        && !matches!(scope.as_str(), "" | "swarm")
    {
        return Err(ApiError::not_found(format!("network {id} not found")));
    }
    let control = super::control(&backend).await?;
    let network = control.network(&id).await?;
    Ok(ok(convert::network(&network)))
}

/// `POST /networks/create`: 201 with the new id.
pub async fn create(
    State(backend): State<Shared>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: crate::wire::NetworkCreateRequest = super::body(&bytes)?;
    let spec = convert::network_spec(request)?;
    let control = super::control(&backend).await?;
    let network = control.create_network(spec).await?;
    Ok(GoJson(
        StatusCode::CREATED,
        NetworkCreateResponse {
            id: network.meta.id.as_str().to_owned(),
            warning: String::new(),
        },
    ))
}

/// `DELETE /networks/{id}`: 204.
pub async fn remove(
    State(backend): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    control.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
