//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: `docker service
//! logs`, multiplexed as Docker's (these tasks have no TTY).

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;

use super::{Query, Shared};
use crate::ApiError;
use crate::filters::parse_bool;
use crate::logs::{Format, LogEvent, LogsRequest, frame};
use crate::version::ApiVersion;

/// The lines of `service` (and of `task` only, if given) as the query
/// asks.
pub async fn stream(
    backend: &Shared,
    query: &Query,
    version: ApiVersion,
    service: String,
    task: Option<String>,
) -> Result<Response, ApiError> {
    let flag = |name: &str| parse_bool(name, query.get(name).map(String::as_str), false);
    let format = Format {
        stdout: flag("stdout")?,
        stderr: flag("stderr")?,
        timestamps: flag("timestamps")?,
        details: flag("details")?,
        since: super::events::timestamp("since", query.get("since"))?,
    };
    if !format.stdout && !format.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match query.get("tail").map(|t| t.trim()) {
        None | Some("" | "all") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::bad_request("tail value must be a positive integer or \"all\"")
        })?),
    };
    let request = LogsRequest {
        service,
        task: task.clone(),
        follow: flag("follow")?,
        tail,
    };
    let lines = backend.logs(request).await?.filter_map(move |event| {
        let keep = match (&event, &task) {
            (LogEvent::Line { task_id, .. }, Some(t)) => task_id == t,
            (LogEvent::Warning(w), _) => {
                tracing::debug!(warning = %w, "logs left out");
                false
            }
            _ => true,
        };
        let framed = keep.then(|| frame(&format, &event)).flatten();
        std::future::ready(framed.map(|f| Ok::<_, std::convert::Infallible>(Bytes::from(f))))
    });
    let mut response = (StatusCode::OK, Body::from_stream(lines)).into_response();
    let kind = if version
        >= (ApiVersion {
            major: 1,
            minor: 42,
        }) {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    Ok(response)
}
