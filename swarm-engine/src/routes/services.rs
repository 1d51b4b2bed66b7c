//! `/services`: `docker service create|ls|ps|inspect|update|rollback|
//! scale|rm`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use swarm_core::model::ServiceMode;

use super::{Query, Shared};
use crate::error::{GoJson, ok};
use crate::filters::{Filters, parse_bool};
use crate::wire::service::{ServiceCreateResponse, ServiceUpdateResponse};
use crate::{ApiError, convert};

const FILTERS: &[&str] = &["id", "label", "mode", "name"];

/// `GET /services?filters=&status=`.
pub async fn list(
    State(backend): State<Shared>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    let filters = Filters::parse(query.get("filters").map(String::as_str), FILTERS)?;
    for mode in filters.get("mode") {
        if !matches!(
            mode,
            "replicated" | "global" | "replicated-job" | "global-job"
        ) {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'mode={mode}': use replicated, global, replicated-job or global-job"
            )));
        }
    }
    let status = parse_bool("status", query.get("status").map(String::as_str), false)?;
    let control = super::control(&backend).await?;
    let state = super::state(&control).await?;
    let mut services: Vec<_> = state
        .services()
        .filter(|s| {
            let mode = match s.spec.mode {
                ServiceMode::Replicated { .. } => "replicated",
                ServiceMode::Global => "global",
            };
            filters.prefix("id", s.meta.id.as_str())
                && filters.prefix("name", &s.spec.name)
                && filters.exact("mode", mode)
                && filters.labels("label", &s.spec.labels)
        })
        .map(|s| convert::service(s, &state, status))
        .collect();
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    Ok(ok(services))
}

/// `GET /services/{id}?insertDefaults=`: by id, name or id prefix. The
/// spec is always written whole, defaults included.
pub async fn inspect(
    State(backend): State<Shared>,
    Path(id): Path<String>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    parse_bool(
        "insertDefaults",
        query.get("insertDefaults").map(String::as_str),
        false,
    )?;
    let control = super::control(&backend).await?;
    let service = control.service(&id).await?;
    let state = super::state(&control).await?;
    Ok(ok(convert::service(&service, &state, false)))
}

/// `POST /services/create`: 201 with the new id.
pub async fn create(
    State(backend): State<Shared>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let spec: crate::wire::ServiceSpec = super::body(&bytes)?;
    let spec = convert::service_spec(spec, None)?;
    let control = super::control(&backend).await?;
    let service = control.create_service(spec).await?;
    Ok(GoJson(
        StatusCode::CREATED,
        ServiceCreateResponse {
            id: service.meta.id.as_str().to_owned(),
            warnings: Vec::new(),
        },
    ))
}

/// `POST /services/{id}/update?version=&rollback=previous`: the whole new
/// spec, as read at `version`; or, with `rollback=previous`, back to the
/// spec before.
pub async fn update(
    State(backend): State<Shared>,
    Path(id): Path<String>,
    query: Query,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let version = super::version(&query)?;
    let control = super::control(&backend).await?;
    let current = control.service(&id).await?;
    let id = current.meta.id.as_str();
    match query.get("rollback").map(String::as_str).unwrap_or("") {
        "" => {
            let spec: crate::wire::ServiceSpec = super::body(&bytes)?;
            let spec = convert::service_spec(spec, Some(&current.spec))?;
            control
                .replace_service_spec(id, spec, Some(version))
                .await?;
        }
        "previous" => {
            if !current.meta.spec_unchanged_since(version) {
                return Err(ApiError::internal(format!(
                    "update out of sequence: the spec of service {} was changed since version {version} was read: read it again and retry",
                    current.spec.name
                )));
            }
            control.rollback_service(id, None).await?;
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "unrecognized rollback option {other}: use rollback=previous"
            )));
        }
    }
    Ok(ok(ServiceUpdateResponse::default()))
}

/// `DELETE /services/{id}`.
pub async fn remove(
    State(backend): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    control.remove_service(&id).await?;
    Ok(StatusCode::OK)
}

/// `GET /services/{id}/logs`.
pub async fn logs(
    State(backend): State<Shared>,
    Path(id): Path<String>,
    axum::Extension(version): axum::Extension<crate::ApiVersion>,
    query: Query,
) -> Result<axum::response::Response, ApiError> {
    let control = super::control(&backend).await?;
    let service = control.service(&id).await?;
    let id = service.meta.id.as_str().to_owned();
    super::logs::stream(&backend, &query, version, id, None).await
}
