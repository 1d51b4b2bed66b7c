//! `GET /events`: the swarm's changes as `docker events` reads them, one
//! JSON message per line, as they happen; `since` replays what the store's
//! journal still holds, `until` ends the stream.
//!
//! The events are swarm-core's [`swarm_core::events`], which the control
//! API's stream (`swarmctl events`) serves too: Docker's swarm types
//! `service`, `node`, `network`, `secret` and `config`, and `task` when
//! `type=task` asks for it.

use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use swarm_core::events::EventFilter;

use super::{Query, Shared};
use crate::ApiError;
use crate::filters::Filters;

const FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// The core's filter for Docker's `filters`, or none if they ask only
/// for what a swarm has no events of (`container`, `type=image`, ...).
fn swarm_filter(filters: &Filters) -> Option<EventFilter> {
    if ["container", "image", "volume", "plugin", "daemon"]
        .iter()
        .any(|k| filters.contains(k))
    {
        return None;
    }
    let mut filter = EventFilter::default();
    for key in [
        "type", "event", "scope", "label", "service", "node", "network", "secret", "config",
    ] {
        let mut kept = false;
        for value in filters.get(key) {
            // Docker's other types and actions (`container`, `start`)
            // are no swarm event's.
            kept |= filter.add(key, value).is_ok();
        }
        if !kept && filters.contains(key) {
            return None;
        }
    }
    Some(filter)
}

/// `since`/`until` as the CLI sends them: Unix seconds, with an optional
/// fraction (`1700000000.123456789`).
pub fn timestamp(name: &str, value: Option<&String>) -> Result<Option<SystemTime>, ApiError> {
    let Some(v) = value.map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    swarm_core::events::unix_time(v).map(Some).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid {name} {v:?}: give Unix seconds, e.g. 1700000000 or 1700000000.5"
        ))
    })
}

/// `GET /events?since=&until=&filters=`.
pub async fn events(State(backend): State<Shared>, query: Query) -> Result<Response, ApiError> {
    let filters = Filters::parse(query.get("filters").map(String::as_str), FILTERS)?;
    let since = timestamp("since", query.get("since"))?;
    let until = timestamp("until", query.get("until"))?;
    let filter = swarm_filter(&filters);
    // Swarm events are a manager's; any other daemon streams none.
    let messages = match (backend.control().await, filter) {
        (Ok(control), Some(filter)) => {
            swarm_core::events::stream(control.store(), since, until, filter)
                .await
                .map_err(|e| ApiError::from(swarm_core::control::ControlError::from(e)))?
        }
        _ => {
            let left = until.map(|u| u.duration_since(SystemTime::now()).unwrap_or_default());
            match left {
                Some(left) => futures::stream::pending()
                    .take_until(tokio::time::sleep(left))
                    .boxed(),
                None => futures::stream::pending().boxed(),
            }
        }
    };
    let lines = messages.map(|m| {
        let mut line = serde_json::to_vec(&m).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    let mut response = (StatusCode::OK, Body::from_stream(lines)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
