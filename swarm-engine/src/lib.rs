//! The swarm part of the Docker Engine API, over HTTP, so that the stock
//! `docker` CLI (and every tool on Docker's client) drives a swarm of this
//! SDK: `DOCKER_HOST=unix:///run/swarmd.sock docker info`.
//!
//! - [`Backend`] is the seam: what the API needs from the daemon. Its
//!   swarm state and the machine's facts; on a manager, swarm-core's
//!   [`Control`] (every read and write of the store goes through it), the
//!   raft roster, the tasks' logs; and the daemon's membership (`init`,
//!   `join`, `leave`, `update_swarm`). Everything but `swarm` and `host`
//!   has a default: Docker's answer for a daemon that cannot serve it.
//!   `swarmd` implements it over its node; a test, over a memory store.
//! - [`router`] serves it: versions negotiated as Docker's daemon does
//!   ([`version`]), errors as `{"message": ...}` with Docker's status codes
//!   ([`error`]), request bodies read as Go reads them ([`decode`]),
//!   [`filters`] in both of Docker's forms, answers in Docker's JSON shapes
//!   ([`wire`]), converted from and to the model by [`convert`].
//! - [`serve`] runs it on a listener (a unix socket, or TCP) until told to
//!   stop; [`tls::serve`] over TCP with mutual TLS, as dockerd's
//!   `--tlsverify`.
//!
//! Served: `/_ping` (GET and HEAD), `/version`, `/info`; `/swarm` and its
//! `init`, `join`, `leave`, `update`, `unlockkey`, `unlock`; `/nodes`, `/services`
//! (with `logs`), `/tasks` (with `logs`), `/networks`, `/secrets`,
//! `/configs` (with `update`: labels); `/events` (streamed); and
//! `/distribution` (the backend's registry digest, or a 404, which the
//! CLI takes as a warning).
//!
//! ```
//! use std::sync::Arc;
//! use swarm_engine::wire::{Host, SwarmInfo};
//!
//! struct Alone;
//!
//! #[async_trait::async_trait]
//! impl swarm_engine::Backend for Alone {
//!     async fn swarm(&self) -> SwarmInfo {
//!         SwarmInfo::default() // in no swarm: `Swarm: inactive`
//!     }
//!     fn host(&self) -> Host {
//!         Host::this_machine()
//!     }
//! }
//!
//! let app: axum::Router = swarm_engine::router(Arc::new(Alone));
//! # drop(app);
//! ```

#![recursion_limit = "256"] // `/info` is one large `json!`

pub mod convert;
pub mod decode;
pub mod error;
pub mod filters;
pub mod logs;
mod routes;
mod system;
mod time;
pub mod tls;
pub mod version;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use swarm_core::control::Control;
use swarm_core::store::Store;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use version::ApiVersion;

/// What the API needs from the daemon behind it.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The daemon's swarm state, for `/info` and `/_ping`.
    async fn swarm(&self) -> wire::SwarmInfo;

    /// Facts of the machine, for `/info` and `/version`.
    fn host(&self) -> wire::Host;

    /// The swarm's control API, on a manager that serves it. Elsewhere,
    /// Docker's 503 for the daemon's state ([`error::not_a_manager`]),
    /// which is what this default answers.
    async fn control(&self) -> Result<Control<Arc<dyn Store>>, ApiError> {
        Err(error::not_a_manager(self.swarm().await.local_node_state))
    }

    /// `docker swarm init`: makes this daemon the first manager of a new
    /// swarm; answers its node id. By default, Docker's answer for a
    /// daemon already in one.
    async fn init(&self, request: wire::InitRequest) -> Result<String, ApiError> {
        let _ = request;
        Err(error::already_in_swarm())
    }

    /// `docker swarm join`: joins a swarm through its managers.
    async fn join(&self, request: wire::JoinRequest) -> Result<(), ApiError> {
        let _ = request;
        Err(error::already_in_swarm())
    }

    /// `docker swarm leave [--force]`: stops the node and forgets its
    /// swarm. By default, Docker's answer for a daemon in none.
    async fn leave(&self, force: bool) -> Result<(), ApiError> {
        let _ = force;
        Err(ApiError::unavailable("This node is not part of a swarm"))
    }

    /// `GET /distribution/{image}/json`: the image's registry digest,
    /// for `docker service create` to pin. By default, and for an image
    /// no registry knows here, a 404, which the CLI takes as a warning.
    async fn distribution(&self, image: &str) -> Result<wire::DistributionInspect, ApiError> {
        Err(error::no_digest(image))
    }

    /// `docker swarm unlock`: gives a locked manager the unlock key.
    /// By default, Docker's answer for a daemon that is not locked (409).
    async fn unlock(&self, key: String) -> Result<(), ApiError> {
        let _ = key;
        Err(error::not_locked())
    }

    /// `docker swarm update` and `join-token --rotate`,
    /// `unlock-key --rotate`: what Docker's JSON cannot say of this swarm
    /// is kept. By default, Docker's 503 for the daemon's state.
    async fn update_swarm(&self, update: wire::SwarmUpdate) -> Result<(), ApiError> {
        let _ = update;
        Err(error::not_a_manager(self.swarm().await.local_node_state))
    }

    /// The logs of a service's tasks (or of one of them), from the nodes
    /// that run them. By default, Docker's 503 for the daemon's state.
    async fn logs(
        &self,
        request: logs::LogsRequest,
    ) -> Result<futures::stream::BoxStream<'static, logs::LogEvent>, ApiError> {
        let _ = request;
        Err(error::not_a_manager(self.swarm().await.local_node_state))
    }

    /// The managers' raft status by node id, for `ManagerStatus` of
    /// `/nodes` (`node ls`'s MANAGER STATUS). None by default.
    async fn managers(&self) -> BTreeMap<String, wire::ManagerStatus> {
        BTreeMap::new()
    }
}

/// The API's routes over `backend`, versioned paths (`/v1.49/info`) and
/// plain ones alike.
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let routes = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/swarm", get(routes::swarm::inspect))
        .route("/swarm/init", post(routes::swarm::init))
        .route("/swarm/join", post(routes::swarm::join))
        .route("/swarm/leave", post(routes::swarm::leave))
        .route("/swarm/update", post(routes::swarm::update))
        .route("/swarm/unlockkey", get(routes::swarm::unlock_key))
        .route("/swarm/unlock", post(routes::swarm::unlock))
        .route("/nodes", get(routes::nodes::list))
        .route(
            "/nodes/{id}",
            get(routes::nodes::inspect).delete(routes::nodes::remove),
        )
        .route("/nodes/{id}/update", post(routes::nodes::update))
        .route("/services", get(routes::services::list))
        .route("/services/create", post(routes::services::create))
        .route(
            "/services/{id}",
            get(routes::services::inspect).delete(routes::services::remove),
        )
        .route("/services/{id}/update", post(routes::services::update))
        .route("/tasks", get(routes::tasks::list))
        .route("/tasks/{id}", get(routes::tasks::inspect))
        .route("/services/{id}/logs", get(routes::services::logs))
        .route("/tasks/{id}/logs", get(routes::tasks::logs))
        .route("/networks", get(routes::networks::list))
        .route("/networks/create", post(routes::networks::create))
        .route(
            "/networks/{id}",
            get(routes::networks::inspect).delete(routes::networks::remove),
        )
        .route("/secrets", get(routes::files::list_secrets))
        .route("/secrets/create", post(routes::files::create_secret))
        .route("/secrets/{id}/update", post(routes::files::update_secret))
        .route(
            "/secrets/{id}",
            get(routes::files::inspect_secret).delete(routes::files::remove_secret),
        )
        .route("/configs", get(routes::files::list_configs))
        .route("/configs/create", post(routes::files::create_config))
        .route("/configs/{id}/update", post(routes::files::update_config))
        .route(
            "/configs/{id}",
            get(routes::files::inspect_config).delete(routes::files::remove_config),
        )
        .route("/distribution/{*image}", get(routes::distribution))
        .route("/events", get(routes::events::events))
        .fallback(|| async { ApiError::not_found("page not found") })
        .with_state(backend);
    // Before routing: a browser's cross-site request is turned away, then
    // the version prefix comes off the path.
    Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn(refuse_cross_site))
            .layer(axum::middleware::from_fn(version::negotiate))
            .service(routes),
    )
}

/// Whether a page in a browser sent `headers`: an `Origin`, or fetch
/// metadata other than `Sec-Fetch-Site: none` (which only a URL the user
/// typed or bookmarked gets). The Engine API is for programs (the docker
/// CLI sends neither), so any page's request is turned away: another
/// site's form, a script's fetch, and a page whose name was rebound to
/// this address (DNS rebinding), which looks same-origin.
#[must_use]
pub fn cross_site(headers: &axum::http::HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    headers.contains_key(axum::http::header::ORIGIN)
        || text("sec-fetch-site").is_some_and(|s| s != "none")
}

/// Refuses a page's request (see [`cross_site`]): no page may drive the
/// swarm through a browser that can reach the API (loopback) or holds the
/// cluster's client certificate.
async fn refuse_cross_site(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if cross_site(request.headers()) {
        return ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "a web page's request is refused: the Engine API takes requests from programs \
             such as the docker CLI, not from pages in a browser (the visualizer is at /ui)",
        )
        .into_response();
    }
    next.run(request).await
}

/// The API's routes over `backend`, after the app's own `extra` ones
/// (`/metrics`, `/ui`): a path `extra` has is served by it.
pub fn router_with(backend: Arc<dyn Backend>, extra: Router) -> Router {
    extra.fallback_service(router(backend))
}

/// Serves `backend` on `listener` until `shutdown` is cancelled.
///
/// # Errors
/// If the listener fails.
pub async fn serve<L>(
    listener: L,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    serve_app(listener, router(backend), shutdown).await
}

/// Serves `app` (a [`router`] or [`router_with`]) on `listener` until
/// `shutdown` is cancelled.
///
/// # Errors
/// If the listener fails.
pub async fn serve_app<L>(
    listener: L,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_browsers_cross_site_request_is_told_apart() {
        // The docker CLI: neither header.
        assert!(!super::cross_site(&headers(&[("host", "m1:2376")])));
        // A URL typed into the browser.
        assert!(!super::cross_site(&headers(&[
            ("host", "127.0.0.1:2375"),
            ("sec-fetch-site", "none"),
        ])));
        // A page's script, even of this origin (a rebound name looks so).
        assert!(super::cross_site(&headers(&[
            ("host", "evil.example:2375"),
            ("origin", "http://evil.example:2375"),
            ("sec-fetch-site", "same-origin"),
        ])));
        // Another site's form or script.
        assert!(super::cross_site(&headers(&[
            ("host", "m1:2376"),
            ("origin", "https://evil.example"),
        ])));
        assert!(super::cross_site(&headers(&[
            ("host", "127.0.0.1:2375"),
            ("sec-fetch-site", "cross-site"),
        ])));
        assert!(super::cross_site(&headers(&[
            ("host", "127.0.0.1:2375"),
            ("origin", "null"),
        ])));
    }
}
