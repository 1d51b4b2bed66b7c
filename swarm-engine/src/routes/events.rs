//! `GET /events`: the swarm's changes as `docker events` reads them, one
//! JSON message per line, as they happen; `since` replays what the store's
//! journal still holds, `until` ends the stream.
//!
//! Docker's swarm events: types `service`, `node`, `network`, `secret`
//! and `config`; actions `create`, `update` and `remove`; the actor's
//! `name`, and for updates the `.old`/`.new` pairs of what changed
//! (`replicas`, `image`, `updatestate`, `role`, `availability`, `state`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Serialize;
use swarm_core::model::{Object, ServiceMode};
use swarm_core::store::{Event, Store, StoreError};

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

/// One event, as Docker's `events.Message` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `service`, `node`, `network`, `secret` or `config`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
    /// `create`, `update` or `remove`.
    #[serde(rename = "Action")]
    pub action: &'static str,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// `swarm`.
    pub scope: &'static str,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// `name`, and what changed.
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

/// The event of `e`, if Docker has one for its kind (tasks and the
/// cluster object have none), at `at`.
#[must_use]
pub fn message(e: &Event, at: SystemTime) -> Option<Message> {
    let (action, object) = match e {
        Event::Created(o) => ("create", o),
        Event::Updated { new, .. } => ("update", new),
        Event::Deleted(o) => ("remove", o),
    };
    let (kind, name) = match object {
        Object::Service(s) => ("service", s.spec.name.clone()),
        Object::Node(n) => ("node", n.description.hostname.clone()),
        Object::Network(n) => ("network", n.spec.name.clone()),
        Object::Secret(s) => ("secret", s.spec.name.clone()),
        Object::Config(c) => ("config", c.spec.name.clone()),
        Object::Task(_) | Object::Cluster(_) => return None,
    };
    let mut attributes = BTreeMap::from([("name".to_owned(), name)]);
    if let Event::Updated { old, new } = e {
        let mut changed = |key: &str, a: String, b: String| {
            if a != b {
                attributes.insert(format!("{key}.old"), a);
                attributes.insert(format!("{key}.new"), b);
            }
        };
        match (old, new) {
            (Object::Service(a), Object::Service(b)) => {
                let replicas = |m: ServiceMode| match m {
                    ServiceMode::Replicated { replicas } => replicas.to_string(),
                    ServiceMode::Global => String::new(),
                };
                changed("replicas", replicas(a.spec.mode), replicas(b.spec.mode));
                changed(
                    "image",
                    a.spec.task.image.clone(),
                    b.spec.task.image.clone(),
                );
                let state = |s: &swarm_core::model::Service| {
                    s.update_status
                        .as_ref()
                        .map(|u| u.state.as_str().to_owned())
                        .unwrap_or_default()
                };
                changed("updatestate", state(a), state(b));
            }
            (Object::Node(a), Object::Node(b)) => {
                changed("role", a.spec.role.to_string(), b.spec.role.to_string());
                changed(
                    "availability",
                    a.spec.availability.to_string(),
                    b.spec.availability.to_string(),
                );
                changed(
                    "state",
                    a.status.state.to_string(),
                    b.status.state.to_string(),
                );
            }
            _ => {}
        }
    }
    let nanos = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let time_nano = i64::try_from(nanos).unwrap_or(i64::MAX);
    Some(Message {
        kind,
        action,
        actor: Actor {
            id: object.id().as_str().to_owned(),
            attributes,
        },
        scope: "swarm",
        time: time_nano / 1_000_000_000,
        time_nano,
    })
}

/// Whether `m` passes `filters` (each key's values are alternatives; the
/// keys must all match).
#[must_use]
pub fn matches(filters: &Filters, m: &Message) -> bool {
    let name = m.actor.attributes.get("name").map_or("", String::as_str);
    let named = |key: &str| {
        !filters.contains(key)
            || (m.kind == key
                && filters
                    .get(key)
                    .any(|v| v == m.actor.id || v == name || m.actor.id.starts_with(v)))
    };
    filters.exact("type", m.kind)
        && filters.exact("event", m.action)
        && filters.exact("scope", "swarm")
        && !filters.contains("container")
        && !filters.contains("image")
        && !filters.contains("volume")
        && !filters.contains("plugin")
        && !filters.contains("daemon")
        && filters.labels("label", &BTreeMap::new())
        && ["service", "node", "network", "secret", "config"]
            .iter()
            .all(|k| named(k))
}

/// `since`/`until` as the CLI sends them: Unix seconds, with an optional
/// fraction (`1700000000.123456789`).
pub fn timestamp(name: &str, value: Option<&String>) -> Result<Option<SystemTime>, ApiError> {
    let Some(v) = value.map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "invalid {name} {v:?}: give Unix seconds, e.g. 1700000000 or 1700000000.5"
        ))
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    let nanos = if frac.is_empty() {
        0
    } else {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        format!("{frac:0<9}").parse::<u32>().map_err(|_| bad())?
    };
    Ok(Some(UNIX_EPOCH + Duration::new(secs, nanos)))
}

/// `GET /events?since=&until=&filters=`.
pub async fn events(State(backend): State<Shared>, query: Query) -> Result<Response, ApiError> {
    let filters = Filters::parse(query.get("filters").map(String::as_str), FILTERS)?;
    let since = timestamp("since", query.get("since"))?;
    let until = timestamp("until", query.get("until"))?;
    let now = SystemTime::now();
    let deadline = until
        .map(|u| tokio::time::Instant::now() + u.duration_since(now).unwrap_or(Duration::ZERO));
    // Swarm events are a manager's; any other daemon streams none.
    let mut replayed_up_to = 0;
    let commits = match backend.control().await {
        Ok(control) => {
            let store = control.store().clone();
            let state = store
                .state()
                .await
                .map_err(|e| ApiError::from(swarm_core::control::ControlError::from(e)))?;
            replayed_up_to = state.index();
            let from = if since.is_some() { Some(0) } else { None };
            let stream = match store.watch(from).await {
                Err(StoreError::Compacted { oldest, .. }) => store.watch(Some(oldest)).await,
                other => other,
            };
            stream.map_err(|e| ApiError::from(swarm_core::control::ControlError::from(e)))?
        }
        Err(_) => futures::stream::pending().boxed(),
    };
    let lines = commits
        .take_while(|c| std::future::ready(c.is_ok()))
        .flat_map(move |commit| {
            let live = SystemTime::now();
            let commit = commit.expect("errors end the stream above");
            let messages: Vec<_> = commit
                .events
                .iter()
                .filter_map(|e| {
                    // A replayed event is as old as its object's write (a
                    // removal, as the object's last write: its own time is
                    // not kept).
                    let at = match e {
                        Event::Deleted(_) if commit.index > replayed_up_to => live,
                        other => other.object().meta().updated_at,
                    };
                    message(e, at)
                })
                .filter(|m| {
                    let at = UNIX_EPOCH + Duration::from_nanos(m.time_nano.unsigned_abs());
                    since.is_none_or(|s| at >= s)
                        && until.is_none_or(|u| at <= u)
                        && matches(&filters, m)
                })
                .map(|m| {
                    let mut line = serde_json::to_vec(&m).unwrap_or_default();
                    line.push(b'\n');
                    Ok::<_, std::convert::Infallible>(Bytes::from(line))
                })
                .collect();
            futures::stream::iter(messages)
        });
    let lines = match deadline {
        Some(d) => lines.take_until(tokio::time::sleep_until(d)).boxed(),
        None => lines.boxed(),
    };
    let mut response = (StatusCode::OK, Body::from_stream(lines)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
