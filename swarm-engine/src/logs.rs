//! Task logs for `docker service logs`: what the API asks of the
//! [`crate::Backend`], and the stream it answers with, framed as Docker's
//! (`stdcopy`: an 8-byte header per line, stdout 1, stderr 2).

use std::time::SystemTime;

use swarm_core::runtime::{LogLine, LogSource};

/// Which logs a client wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsRequest {
    /// The service's id.
    pub service: String,
    /// Only this task's lines (`/tasks/{id}/logs`).
    pub task: Option<String>,
    /// Keep streaming new lines.
    pub follow: bool,
    /// Only the last this many lines of each task.
    pub tail: Option<usize>,
}

/// One item of a service's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A line of a task.
    Line {
        /// The task's id.
        task_id: String,
        /// Its service's id.
        service_id: String,
        /// Its node's id.
        node_id: String,
        /// The line.
        line: LogLine,
    },
    /// Some logs cannot be had (a node is not connected, say).
    Warning(String),
}

/// How lines are written: Docker's query flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// stdout lines.
    pub stdout: bool,
    /// stderr lines.
    pub stderr: bool,
    /// An RFC 3339 time (9 fractional digits) first.
    pub timestamps: bool,
    /// The task's, service's and node's ids first (`details=1`, which the
    /// CLI always asks for).
    pub details: bool,
    /// Only lines from then on.
    pub since: Option<SystemTime>,
}

/// `line` as one stdcopy frame, or `None` if `format` leaves it out.
#[must_use]
pub fn frame(format: &Format, event: &LogEvent) -> Option<Vec<u8>> {
    let LogEvent::Line {
        task_id,
        service_id,
        node_id,
        line,
    } = event
    else {
        return None;
    };
    let stream = match line.source {
        LogSource::Stdout if format.stdout => 1,
        LogSource::Stderr if format.stderr => 2,
        _ => return None,
    };
    if format.since.is_some_and(|s| line.timestamp < s) {
        return None;
    }
    let mut text = String::new();
    if format.timestamps {
        text.push_str(&nanos_rfc3339(line.timestamp));
        text.push(' ');
    }
    if format.details {
        text.push_str(&format!(
            "com.docker.swarm.node.id={},com.docker.swarm.service.id={},com.docker.swarm.task.id={} ",
            escape(node_id),
            escape(service_id),
            escape(task_id)
        ));
    }
    text.push_str(&line.line);
    text.push('\n');
    let mut out = Vec::with_capacity(8 + text.len());
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    Some(out)
}

/// Go's `url.QueryEscape`, for the details' values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// RFC 3339 with exactly 9 fractional digits, as Docker's log times.
fn nanos_rfc3339(t: SystemTime) -> String {
    let t = ::time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_frame_with_its_ids_and_time() {
        let event = LogEvent::Line {
            task_id: "t1".into(),
            service_id: "s1".into(),
            node_id: "n 1".into(),
            line: LogLine {
                timestamp: SystemTime::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5),
                source: LogSource::Stderr,
                line: "hello".into(),
            },
        };
        let all = Format {
            stdout: true,
            stderr: true,
            timestamps: true,
            details: true,
            since: None,
        };
        let f = frame(&all, &event).unwrap();
        let text = "2023-11-14T22:13:20.000000005Z com.docker.swarm.node.id=n+1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 hello\n";
        assert_eq!(f[0], 2);
        assert_eq!(&f[1..4], &[0, 0, 0]);
        assert_eq!(
            u32::from_be_bytes(f[4..8].try_into().unwrap()) as usize,
            text.len()
        );
        assert_eq!(&f[8..], text.as_bytes());
        let stdout_only = Format {
            stderr: false,
            ..all
        };
        assert!(frame(&stdout_only, &event).is_none());
        assert!(frame(&all, &LogEvent::Warning("w".into())).is_none());
    }
}
