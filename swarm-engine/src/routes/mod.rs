//! The swarm's endpoints: `/swarm`, `/nodes`, `/services`, `/tasks`,
//! `/networks`, `/secrets`, `/configs`, `/distribution`.

pub mod events;
pub mod files;
pub mod logs;
pub mod networks;
pub mod nodes;
pub mod services;
pub mod swarm;
pub mod tasks;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use serde::de::DeserializeOwned;
use swarm_core::control::Control;
use swarm_core::store::Store;

use crate::{ApiError, Backend};

/// The shared state of every handler.
pub type Shared = Arc<dyn Backend>;

/// A query, as `name -> value` (the last one wins, as Go's `Get` reads
/// the first: no client repeats them).
pub type Query = axum::extract::Query<BTreeMap<String, String>>;

/// The manager's control API, or Docker's 503 for this daemon's state.
pub async fn control(backend: &Shared) -> Result<Control<Arc<dyn Store>>, ApiError> {
    backend.control().await
}

/// A body read with Go's rules; a bad one is a 400.
pub fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    crate::decode::from_slice(bytes).map_err(|e| ApiError::bad_request(e.0))
}

/// `?version=N`, which an update must carry.
pub fn version(query: &BTreeMap<String, String>) -> Result<u64, ApiError> {
    let raw = query.get("version").map(String::as_str).unwrap_or("");
    raw.parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid version {raw:?}: give the object's Version.Index from inspect (?version=N)"
        ))
    })
}

/// A state snapshot of the store.
pub async fn state(
    control: &Control<Arc<dyn Store>>,
) -> Result<swarm_core::store::State, ApiError> {
    control
        .store()
        .state()
        .await
        .map_err(|e| swarm_core::control::ControlError::from(e).into())
}

/// `GET /distribution/{image}/json`: the image's registry digest, as the
/// backend knows it (a Docker runtime's engine); else a 404, which the
/// CLI takes as a warning, using the image as named.
pub async fn distribution(
    axum::extract::State(backend): axum::extract::State<Shared>,
    axum::extract::Path(image): axum::extract::Path<String>,
) -> Result<crate::error::GoJson<crate::wire::DistributionInspect>, ApiError> {
    let image = image.strip_suffix("/json").unwrap_or(&image);
    Ok(crate::error::ok(backend.distribution(image).await?))
}
