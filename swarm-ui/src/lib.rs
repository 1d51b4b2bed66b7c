#![doc = include_str!("../README.md")]
//!
//! ## Routes
//!
//! - `GET /ui`: the page (`/ui/app.js`, `/ui/style.css` beside it), with a
//!   content security policy that lets it reach nothing but this origin.
//! - `GET /ui/api/state`: the board as JSON ([`view::Snapshot`]); the
//!   services' specs only for [`Access::ReadOnly`] and above.
//! - `GET /ui/api/events`: server-sent events: `state` (a snapshot) first,
//!   then `delta` ([`view::Delta`]) for each run of commits, at most one
//!   per [`COALESCE`]; another `state` if the stream fell behind the store;
//!   `gone` if the daemon stops being a manager. [`MAX_STREAMS`] at once.
//! - `POST /ui/api/services/{id}/scale` (`{"replicas": 3}`) and
//!   `POST /ui/api/nodes/{id}/availability` (`{"availability": "drain"}`):
//!   only with [`Access::ReadWrite`], and only with the header
//!   `X-Swarm-UI: 1`, which a page of another origin cannot send without
//!   a CORS preflight this router never grants.

pub mod view;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Extension, Path, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt as _;
use swarm_core::control::Control;
use swarm_core::model::Availability;
use swarm_core::store::Store;

/// How long the event stream gathers commits before it sends them: a
/// burst of writes is one message, and a change is on the page well
/// within a second.
pub const COALESCE: Duration = Duration::from_millis(100);

/// How often the stream looks whether the leader changed (leadership is
/// raft's, not the store's).
const LEADER_CHECK: Duration = Duration::from_secs(1);

/// What the page reads from the manager it is served by.
#[async_trait::async_trait]
pub trait Source: Send + Sync + 'static {
    /// The control API of this manager; none where this daemon is not
    /// one (the page says so). Asked again every second while a page
    /// follows: a page follows the store it answers.
    async fn control(&self) -> Option<Control<Arc<dyn Store>>>;

    /// The node id of the manager that leads, if known.
    async fn leader(&self) -> Option<String>;
}

/// What a request may see and do, as a request extension the app sets
/// (none: [`Access::Public`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// A client nobody knows: the board, without the services' specs
    /// (their environment, commands, mounts and labels may hold what only
    /// the cluster's people should read).
    #[default]
    Public,
    /// Look at everything.
    ReadOnly,
    /// Also scale services and change nodes' availability.
    ReadWrite,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::ReadOnly => "read-only",
            Self::ReadWrite => "read-write",
        }
    }

    /// Whether the services' specs are shown.
    fn details(self) -> bool {
        self != Self::Public
    }
}

/// Event streams open at once at most; more are answered 503 (each holds
/// a store subscription and was sent a whole snapshot). Of them, at most
/// [`MAX_PUBLIC_STREAMS`] for [`Access::Public`] clients, so that
/// strangers cannot fill the places of the cluster's people.
pub const MAX_STREAMS: usize = 100;

/// Event streams of [`Access::Public`] clients at most.
pub const MAX_PUBLIC_STREAMS: usize = 32;

#[derive(Clone)]
struct Ui {
    source: Arc<dyn Source>,
    streams: Arc<tokio::sync::Semaphore>,
    public_streams: Arc<tokio::sync::Semaphore>,
}

/// The visualizer's routes over `source`; any other path under `/ui` is
/// a 404 here.
pub fn router(source: Arc<dyn Source>) -> Router {
    let ui = Ui {
        source,
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        public_streams: Arc::new(tokio::sync::Semaphore::new(MAX_PUBLIC_STREAMS)),
    };
    Router::new()
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/app.js", get(script))
        .route("/ui/style.css", get(style))
        .route("/ui/api/state", get(state))
        .route("/ui/api/events", get(events))
        .route("/ui/api/services/{id}/scale", post(scale))
        .route("/ui/api/nodes/{id}/availability", post(availability))
        .route("/ui/{*rest}", axum::routing::any(unknown))
        .with_state(ui)
}

async fn unknown() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such page of the visualizer: open /ui",
    )
}

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

/// Nothing but this origin: no CDN, no font, no beacon.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// An error as `{"message": ...}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "message": message.into() });
    (status, axum::Json(body)).into_response()
}

fn not_a_manager() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "this daemon is not a manager of a running swarm: open the page of a manager",
    )
}

fn access_of(access: Option<Extension<Access>>) -> Access {
    access.map(|Extension(a)| a).unwrap_or_default()
}

async fn state(Extract(ui): Extract<Ui>, access: Option<Extension<Access>>) -> Response {
    let Some(control) = ui.source.control().await else {
        return not_a_manager();
    };
    let access = access_of(access);
    match control.store().state().await {
        Ok(state) => {
            let leader = ui.source.leader().await;
            let snapshot = view::Snapshot::of(&state, leader, access.as_str(), access.details());
            axum::Json(snapshot).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn sse(name: &str, body: &impl serde::Serialize) -> SseEvent {
    SseEvent::default()
        .event(name)
        .data(serde_json::to_string(body).unwrap_or_default())
}

async fn events(Extract(ui): Extract<Ui>, access: Option<Extension<Access>>) -> Response {
    let Some(control) = ui.source.control().await else {
        return not_a_manager();
    };
    let access = access_of(access);
    let full = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "as many pages as this manager serves follow it already: try again later",
        )
    };
    let public = match access {
        Access::Public => match ui.public_streams.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => return full(),
        },
        _ => None,
    };
    let Ok(slot) = ui.streams.clone().try_acquire_owned() else {
        return full();
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(8);
    tokio::spawn(async move {
        let _slots = (slot, public);
        follow(control.store().clone(), ui.source, access, tx).await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    let mut response = Sse::new(stream.boxed())
        .keep_alive(KeepAlive::default())
        .into_response();
    // Proxies must pass each event on as it comes.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// How long a page may take to read an event before it is dropped (and
/// its stream's place freed).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `event`; false if the page went or reads too slowly.
async fn send(tx: &tokio::sync::mpsc::Sender<SseEvent>, event: SseEvent) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, tx.send(event)).await,
        Ok(Ok(()))
    )
}

/// Tells the page the daemon is no manager any more.
async fn gone(tx: &tokio::sync::mpsc::Sender<SseEvent>) {
    let gone = serde_json::json!({
        "message": "this daemon is no manager of a running swarm any more",
    });
    let _ = send(tx, sse("gone", &gone)).await;
}

/// Sends the board, then its changes, until the client goes, or the
/// daemon is no manager any more (a `gone` event: the page asks again,
/// and follows whatever store the daemon has then).
async fn follow(
    mut store: Arc<dyn Store>,
    source: Arc<dyn Source>,
    access: Access,
    tx: tokio::sync::mpsc::Sender<SseEvent>,
) {
    let details = access.details();
    let mut again = false;
    'fresh: loop {
        // Starting afresh (the store failed, or its watch ended or fell
        // behind): a pause, so that a store that keeps failing is not
        // asked in a loop, then the store the daemon has now.
        if std::mem::replace(&mut again, true) {
            tokio::select! {
                () = tx.closed() => return,
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            match source.control().await {
                Some(c) => store = c.store().clone(),
                None => return gone(&tx).await,
            }
        }
        let Ok((state, mut commits)) = store.subscribe().await else {
            continue 'fresh;
        };
        let mut leader = source.leader().await;
        let snapshot = view::Snapshot::of(&state, leader.clone(), access.as_str(), details);
        drop(state);
        if !send(&tx, sse("state", &snapshot)).await {
            return;
        }
        drop(snapshot);
        let mut collect = view::Collect::new(details);
        let mut check = tokio::time::interval(LEADER_CHECK);
        check.tick().await;
        loop {
            let mut leader_changed = false;
            tokio::select! {
                () = tx.closed() => return,
                _ = check.tick() => {
                    if source.control().await.is_none() {
                        return gone(&tx).await;
                    }
                    let now = source.leader().await;
                    if now != leader {
                        leader = now;
                        leader_changed = true;
                    }
                }
                next = commits.next() => match next {
                    Some(Ok(commit)) => {
                        collect.add(&commit);
                        // Gather what comes within COALESCE of it.
                        let until = tokio::time::Instant::now() + COALESCE;
                        loop {
                            match tokio::time::timeout_at(until, commits.next()).await {
                                Ok(Some(Ok(c))) => collect.add(&c),
                                Ok(_) => continue 'fresh,
                                Err(_) => break,
                            }
                        }
                    }
                    // Fell behind, or the store went: start afresh.
                    _ => continue 'fresh,
                },
            }
            if collect.is_empty() && !leader_changed {
                continue;
            }
            let delta = collect.take(leader.clone());
            if !send(&tx, sse("delta", &delta)).await {
                return;
            }
        }
    }
}

/// The refusal of a change the request may not make (see the module).
fn may_change(access: Option<Extension<Access>>, headers: &HeaderMap) -> Option<Response> {
    if access_of(access) != Access::ReadWrite {
        return Some(error(
            StatusCode::FORBIDDEN,
            "this page is read-only: open it over the Engine API's TLS port with a cluster \
             client certificate in the browser to change the swarm",
        ));
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s == "cross-site" || s == "same-site");
    if cross_site || headers.get("x-swarm-ui").and_then(|v| v.to_str().ok()) != Some("1") {
        return Some(error(
            StatusCode::FORBIDDEN,
            "changes are taken from the visualizer's page only (the X-Swarm-UI: 1 header)",
        ));
    }
    None
}

#[derive(serde::Deserialize)]
struct ScaleBody {
    replicas: u64,
}

async fn scale(
    Extract(Ui { source, .. }): Extract<Ui>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<ScaleBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(r) = may_change(access, &headers) {
        return r;
    }
    let Ok(axum::Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a JSON body such as {\"replicas\": 3}",
        );
    };
    let Some(control) = source.control().await else {
        return not_a_manager();
    };
    match control.scale(&id, body.replicas).await {
        Ok(s) => axum::Json(serde_json::json!({ "id": s.meta.id.as_str() })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[derive(serde::Deserialize)]
struct AvailabilityBody {
    availability: String,
}

async fn availability(
    Extract(Ui { source, .. }): Extract<Ui>,
    access: Option<Extension<Access>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<AvailabilityBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(r) = may_change(access, &headers) {
        return r;
    }
    let wanted = match body.as_ref().map(|b| b.availability.as_str()) {
        Ok("active") => Availability::Active,
        Ok("pause") => Availability::Pause,
        Ok("drain") => Availability::Drain,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "expected a JSON body such as {\"availability\": \"drain\"} (active, pause or drain)",
            );
        }
    };
    let Some(control) = source.control().await else {
        return not_a_manager();
    };
    match control.update_node(&id, |s| s.availability = wanted).await {
        Ok(n) => axum::Json(serde_json::json!({ "id": n.meta.id.as_str() })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[cfg(test)]
mod tests;
