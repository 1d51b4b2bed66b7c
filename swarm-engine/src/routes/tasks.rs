//! `/tasks`: `docker service ps`, `docker node ps`.

use axum::extract::{Path, State};
use axum::response::IntoResponse;

use super::{Query, Shared};
use crate::error::ok;
use crate::filters::Filters;
use crate::{ApiError, convert};

const FILTERS: &[&str] = &[
    "_up-to-date",
    "desired-state",
    "id",
    "label",
    "name",
    "node",
    "runtime",
    "service",
];

/// `GET /tasks?filters=`. `service` and `node` take names as well as ids;
/// `label` matches the service's labels, as Docker's does; `_up-to-date`
/// keeps the tasks of their service's current spec.
pub async fn list(
    State(backend): State<Shared>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    let mut filters = Filters::parse(query.get("filters").map(String::as_str), FILTERS)?;
    for state in filters.get("desired-state") {
        if !matches!(state, "running" | "shutdown" | "accepted") {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'desired-state={state}': use running, shutdown or accepted"
            )));
        }
    }
    let control = super::control(&backend).await?;
    let mut services = Vec::new();
    for s in filters
        .get("service")
        .map(str::to_owned)
        .collect::<Vec<_>>()
    {
        services.push(control.service(&s).await?.meta.id.as_str().to_owned());
    }
    if filters.contains("service") {
        filters.set("service", services);
    }
    let mut nodes = Vec::new();
    for n in filters.get("node").map(str::to_owned).collect::<Vec<_>>() {
        nodes.push(control.node(&n).await?.meta.id.as_str().to_owned());
    }
    if filters.contains("node") {
        filters.set("node", nodes);
    }
    let up_to_date = filters.contains("_up-to-date");
    let state = super::state(&control).await?;
    let mut tasks: Vec<_> = state
        .tasks()
        .filter(|t| {
            let node = t.node_id.as_ref().map_or("", |n| n.as_str());
            filters.prefix("id", t.meta.id.as_str())
                && filters.prefix("name", &format!("{}.{}", t.name(), t.meta.id))
                && filters.exact("service", t.service_id.as_str())
                && filters.exact("node", node)
                && filters.exact("desired-state", t.desired_state.as_str())
                && filters.exact("runtime", "container")
                && state
                    .service(t.service_id.as_str())
                    .is_some_and(|s| filters.labels("label", &s.spec.labels))
                && (!up_to_date
                    || state
                        .service(t.service_id.as_str())
                        .is_some_and(|s| s.is_current(t)))
        })
        .collect();
    tasks.sort_by(|a, b| {
        (a.service_name.as_ref(), a.slot, a.meta.created_at).cmp(&(
            b.service_name.as_ref(),
            b.slot,
            b.meta.created_at,
        ))
    });
    let tasks: Vec<_> = tasks
        .into_iter()
        .map(|t| convert::task(t, &state))
        .collect();
    Ok(ok(tasks))
}

/// `GET /tasks/{id}`: by id or id prefix.
pub async fn inspect(
    State(backend): State<Shared>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    let task = control.task(&id).await?;
    let state = super::state(&control).await?;
    Ok(ok(convert::task(&task, &state)))
}

/// `GET /tasks/{id}/logs`.
pub async fn logs(
    State(backend): State<Shared>,
    Path(id): Path<String>,
    axum::Extension(version): axum::Extension<crate::ApiVersion>,
    query: Query,
) -> Result<axum::response::Response, ApiError> {
    let control = super::control(&backend).await?;
    let task = control.task(&id).await?;
    let service = task.service_id.as_str().to_owned();
    let task = task.meta.id.as_str().to_owned();
    super::logs::stream(&backend, &query, version, service, Some(task)).await
}
