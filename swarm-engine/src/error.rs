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
