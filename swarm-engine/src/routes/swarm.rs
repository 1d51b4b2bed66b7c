//! `GET /swarm`: the cluster and its join tokens (`docker swarm
//! join-token`, `docker swarm inspect`).

use axum::extract::State;
use axum::response::IntoResponse;

use super::Shared;
use crate::ApiError;
use crate::error::ok;
use crate::wire::{JoinTokens, Swarm};

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
