//! Errors as Docker's daemon answers them: a status code and
//! `{"message": "..."}` with the content type `application/json`, exactly
//! (Docker's client reads the message only then).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// Its status: 400 bad parameter, 404 unknown, 409 conflict, 503 not
    /// a manager (or no quorum), 500 otherwise.
    pub status: StatusCode,
    /// What the CLI prints after `Error response from daemon: `.
    pub message: String,
}

impl ApiError {
    /// An error with `status`.
    #[must_use]
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is wrong.
    #[must_use]
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such object.
    #[must_use]
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: a name in use, or a state that forbids the change.
    #[must_use]
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 503: the node cannot serve this now (not a manager, no quorum).
    #[must_use]
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500: anything else.
    #[must_use]
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message });
        let mut text = body.to_string();
        text.push('\n');
        let mut response = (self.status, text).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// A JSON answer as Docker's daemon writes one: compact, with a trailing
/// newline, typed `application/json`.
#[derive(Debug, Clone)]
pub struct GoJson<T>(pub StatusCode, pub T);

impl<T: serde::Serialize> IntoResponse for GoJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.1) {
            Ok(mut body) => {
                body.push(b'\n');
                let mut response = (self.0, body).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(e) => ApiError::internal(format!("cannot encode the answer: {e}")).into_response(),
        }
    }
}

/// 200 with `value` as JSON.
pub fn ok<T: serde::Serialize>(value: T) -> GoJson<T> {
    GoJson(StatusCode::OK, value)
}

impl From<swarm_core::control::ControlError> for ApiError {
    /// Docker's status for each: 400 for a bad or refused request, 404
    /// for an unknown object, 409 for a name in use, 500 for a stale
    /// `version` ("update out of sequence"), 503 when the store has no
    /// quorum.
    fn from(e: swarm_core::control::ControlError) -> Self {
        use swarm_core::control::ControlError;
        use swarm_core::store::{ErrorKind, StoreError};
        let message = e.to_string();
        match &e {
            ControlError::Invalid(_) => Self::bad_request(message),
            ControlError::NotFound { .. } => Self::not_found(message),
            ControlError::Refused(m) if m.starts_with("update out of sequence") => {
                Self::internal(message)
            }
            ControlError::Refused(_) => Self::bad_request(message),
            ControlError::Store(s) => match s.kind() {
                ErrorKind::NotFound => Self::not_found(message),
                ErrorKind::AlreadyExists => Self::conflict(message),
                ErrorKind::Conflict => {
                    let StoreError::Conflict { kind, id, .. } = s else {
                        return Self::internal(message);
                    };
                    Self::internal(format!(
                        "update out of sequence: {kind} {id} changed meanwhile: read it again and retry"
                    ))
                }
                ErrorKind::InvalidArgument => Self::bad_request(message),
                ErrorKind::Unavailable => Self::unavailable(message),
                ErrorKind::Compacted => Self::internal(message),
            },
        }
    }
}

/// The 404 of `/distribution` for an image whose registry digest is not
/// known here; the CLI warns and uses the image as named.
#[must_use]
pub fn no_digest(image: &str) -> ApiError {
    ApiError::not_found(format!(
        "no registry digest is known for {image} here: the image is used as named, without a digest"
    ))
}

/// Docker's answer to `docker swarm unlock` on a daemon that is not
/// locked (409).
#[must_use]
pub fn not_locked() -> ApiError {
    ApiError::conflict("swarm is not locked")
}

/// Docker's answer to an unlock key that does not open the manager's data
/// (401).
#[must_use]
pub fn invalid_unlock_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "swarm could not be unlocked: invalid key provided",
    )
}

/// What Docker answers for the swarm's endpoints on a daemon that cannot
/// serve them, by its state (`inactive`, `locked`, or a worker).
#[must_use]
pub fn not_a_manager(state: crate::wire::LocalNodeState) -> ApiError {
    use crate::wire::LocalNodeState;
    ApiError::unavailable(match state {
        LocalNodeState::Inactive | LocalNodeState::Pending => {
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
        }
        LocalNodeState::Locked => {
            "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it."
        }
        LocalNodeState::Active | LocalNodeState::Error => {
            "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."
        }
    })
}

/// Docker's answer to `swarm init` or `join` on a daemon in a swarm.
#[must_use]
pub fn already_in_swarm() -> ApiError {
    ApiError::unavailable(
        "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.",
    )
}
