//! `/swarm`: the cluster and its join tokens (`docker swarm join-token`,
//! `docker swarm inspect`), and the daemon's membership (`docker swarm
//! init|join|leave`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::{Query, Shared};
use crate::ApiError;
use crate::error::ok;
use crate::filters::parse_bool;
use crate::wire::{
    InitRequest, JoinRequest, JoinTokens, Swarm, SwarmSpec, SwarmUpdate, UnlockKeyResponse,
    UnlockRequest,
};

/// `GET /swarm`.
pub async fn inspect(State(backend): State<Shared>) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    let state = super::state(&control).await?;
    let cluster = state.cluster().ok_or_else(|| {
        ApiError::unavailable("the swarm's cluster object is not written yet: try again")
    })?;
    let join_tokens = cluster
        .join_tokens
        .as_ref()
        .map(|t| JoinTokens {
            worker: t.worker.clone(),
            manager: t.manager.clone(),
        })
        .unwrap_or_default();
    Ok(ok(Swarm {
        cluster: crate::convert::cluster(cluster),
        join_tokens,
    }))
}

/// `POST /swarm/init`: 200 with the new node's id, as a JSON string.
pub async fn init(
    State(backend): State<Shared>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: InitRequest = super::body(&bytes)?;
    Ok(ok(backend.init(request).await?))
}

/// `POST /swarm/join`: 200 once joined.
pub async fn join(
    State(backend): State<Shared>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: JoinRequest = super::body(&bytes)?;
    if request.remote_addrs.is_empty() {
        return Err(ApiError::bad_request(
            "RemoteAddrs: give a manager's address: docker swarm join --token TOKEN HOST:2377",
        ));
    }
    backend.join(request).await?;
    Ok(StatusCode::OK)
}

/// `POST /swarm/leave?force=`: 200 once out.
pub async fn leave(
    State(backend): State<Shared>,
    query: Query,
) -> Result<impl IntoResponse, ApiError> {
    let force = parse_bool("force", query.get("force").map(String::as_str), false)?;
    backend.leave(force).await?;
    Ok(StatusCode::OK)
}

/// `POST /swarm/update?version=&rotateWorkerToken=&rotateManagerToken=&
/// rotateManagerUnlockKey=`: 200 once written.
pub async fn update(
    State(backend): State<Shared>,
    query: Query,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let flag = |name: &str| parse_bool(name, query.get(name).map(String::as_str), false);
    let update = SwarmUpdate {
        version: super::version(&query)?,
        rotate_worker_token: flag("rotateWorkerToken")?,
        rotate_manager_token: flag("rotateManagerToken")?,
        rotate_unlock_key: flag("rotateManagerUnlockKey")?,
        spec: super::body::<SwarmSpec>(&bytes)?,
    };
    backend.update_swarm(update).await?;
    Ok(StatusCode::OK)
}

/// `POST /swarm/unlock`: 200 once the manager opened its store with the
/// key.
pub async fn unlock(
    State(backend): State<Shared>,
    bytes: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let request: UnlockRequest = super::body(&bytes)?;
    if request.unlock_key.trim().is_empty() {
        return Err(ApiError::bad_request(
            "UnlockKey: give the key `docker swarm unlock-key` printed (SWMKEY-1-...)",
        ));
    }
    backend.unlock(request.unlock_key).await?;
    Ok(StatusCode::OK)
}

/// `GET /swarm/unlockkey`: the key that unlocks a restarted manager
/// (empty when autolock is off, which the CLI reports).
pub async fn unlock_key(State(backend): State<Shared>) -> Result<impl IntoResponse, ApiError> {
    let control = super::control(&backend).await?;
    let state = super::state(&control).await?;
    let key = state
        .cluster()
        .filter(|c| c.spec.autolock)
        .and_then(|c| c.unlock_key.as_ref())
        .map(ToString::to_string)
        .unwrap_or_default();
    Ok(ok(UnlockKeyResponse { unlock_key: key }))
}
