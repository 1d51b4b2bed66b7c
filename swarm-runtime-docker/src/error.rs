//! Docker's errors as [`RuntimeError`]s.

use bollard::errors::Error;
use swarm_core::Id;
use swarm_core::runtime::RuntimeError;

/// The status code of an error the engine answered with.
pub(crate) fn status(e: &Error) -> Option<u16> {
    match e {
        Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own message, or the error's.
pub(crate) fn message(e: &Error) -> String {
    match e {
        Error::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        other => other.to_string(),
    }
}

/// Whether the engine could not be reached at all (as opposed to an answer
/// that refused the call).
pub(crate) fn unreachable(e: &Error) -> bool {
    !matches!(
        e,
        Error::DockerResponseServerError { .. }
            | Error::DockerContainerWaitError { .. }
            | Error::JsonDataError { .. }
            | Error::JsonSerdeError { .. }
    )
}

/// The error of a call about task `id` (`what`: "start", "inspect", ...):
/// a container that is gone is [`RuntimeError::NotFound`], an engine that
/// cannot be reached is [`RuntimeError::Unavailable`], and a refusal is
/// [`RuntimeError::InvalidState`] with docker's reason.
pub(crate) fn task_error(id: &Id, what: &str, e: &Error) -> RuntimeError {
    if unreachable(e) {
        return daemon_down(e);
    }
    match status(e) {
        Some(404) => RuntimeError::NotFound(id.clone()),
        _ => RuntimeError::InvalidState(format!(
            "docker refused to {what} the container of task {id}: {}",
            message(e)
        )),
    }
}

/// The error of a call that is about no task in particular (`what`:
/// "list containers", ...): the engine cannot be reached, or it failed.
/// Either way the call may succeed later.
pub(crate) fn engine_error(what: &str, e: &Error) -> RuntimeError {
    if unreachable(e) {
        return daemon_down(e);
    }
    RuntimeError::Unavailable(format!("docker failed to {what}: {}", message(e)))
}

/// The engine cannot be reached.
pub(crate) fn daemon_down(e: &Error) -> RuntimeError {
    RuntimeError::Unavailable(format!(
        "cannot reach the Docker daemon (is it running, and is DOCKER_HOST right?): {}",
        message(e)
    ))
}

/// Whether a pull failed because no registry could be reached (as
/// opposed to a registry that answered "no").
pub(crate) fn no_registry(message: &str) -> bool {
    [
        "dial tcp",
        "no such host",
        "connection refused",
        "i/o timeout",
        "network is unreachable",
        "TLS handshake timeout",
        "Client.Timeout",
        "request canceled while waiting for connection",
    ]
    .iter()
    .any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_outages_are_told_apart() {
        let gone = Error::DockerResponseServerError {
            status_code: 404,
            message: "No such container: x".into(),
        };
        let id = Id::from("t1");
        assert_eq!(
            task_error(&id, "start", &gone),
            RuntimeError::NotFound(id.clone())
        );
        let conflict = Error::DockerResponseServerError {
            status_code: 409,
            message: "container is paused".into(),
        };
        assert_eq!(
            task_error(&id, "stop", &conflict).to_string(),
            "docker refused to stop the container of task t1: container is paused"
        );
        let down = Error::SocketNotFoundError("/var/run/docker.sock".into());
        assert!(matches!(
            task_error(&id, "start", &down),
            RuntimeError::Unavailable(m) if m.contains("cannot reach the Docker daemon")
        ));
        assert_eq!(
            engine_error("list containers", &conflict).to_string(),
            "runtime unavailable: docker failed to list containers: container is paused"
        );
        assert!(no_registry(
            "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host"
        ));
        assert!(!no_registry(
            "pull access denied for nope, repository does not exist"
        ));
    }
}
