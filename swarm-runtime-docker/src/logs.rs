//! Container output as [`LogLine`]s.

use std::time::SystemTime;

use bollard::container::LogOutput;
use swarm_core::runtime::{LogLine, LogSource};

/// The lines of one frame of docker's log stream, which was asked for
/// with timestamps: each entry starts with its RFC 3339 time and a space.
pub(crate) fn lines(frame: LogOutput) -> Vec<LogLine> {
    let (source, bytes) = match frame {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            (LogSource::Stdout, message)
        }
        LogOutput::StdErr { message } => (LogSource::Stderr, message),
        LogOutput::StdIn { .. } => return Vec::new(),
    };
    let text = String::from_utf8_lossy(&bytes);
    let (timestamp, text) = match text.split_once(' ') {
        Some((t, rest)) => match crate::time::parse(t) {
            Some(t) => (t, rest),
            None => (SystemTime::now(), text.as_ref()),
        },
        None => (SystemTime::now(), text.as_ref()),
    };
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.split('\n')
        .map(|l| LogLine {
            timestamp,
            source,
            line: l.strip_suffix('\r').unwrap_or(l).to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn frames_become_timestamped_lines() {
        let l = lines(LogOutput::StdErr {
            message: "1970-01-01T00:00:01.5Z oops\n".into(),
        });
        assert_eq!(
            l,
            [LogLine {
                timestamp: UNIX_EPOCH + Duration::from_millis(1500),
                source: LogSource::Stderr,
                line: "oops".into()
            }]
        );
        let l = lines(LogOutput::StdOut {
            message: "1970-01-01T00:00:01Z \n".into(),
        });
        assert_eq!(l.len(), 1, "an empty line is a line");
        assert_eq!(l[0].line, "");
        let l = lines(LogOutput::StdOut {
            message: "no timestamp here\r\n".into(),
        });
        assert_eq!(l[0].line, "no timestamp here");
    }
}
