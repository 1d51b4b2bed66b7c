//! `swarmctl events`: what it prints, and the times it takes, as
//! `docker events` does.

use std::time::SystemTime;

use anyhow::{anyhow, bail};
use swarm_core::events::Message;

/// How each event is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker's line: `TIME TYPE ACTION ID (name=…, …)`.
    Text,
    /// One JSON object per line, as the Engine API's `/events` sends it.
    Json,
}

impl Format {
    /// `--format`: none, `json` or `{{json .}}`.
    ///
    /// # Errors
    /// Any other template, which this CLI does not render.
    pub fn parse(flag: Option<&str>) -> anyhow::Result<Self> {
        match flag.map(str::trim) {
            None | Some("") => Ok(Self::Text),
            Some("json" | "{{json .}}") => Ok(Self::Json),
            Some(other) => bail!(
                "--format {other:?} is not supported: give json (or {{{{json .}}}}), or leave it out for docker's lines"
            ),
        }
    }
}

/// `m` as `format` prints it (without the newline).
#[must_use]
pub fn line(m: &Message, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string(m).unwrap_or_default(),
        Format::Text => {
            let at = humantime::format_rfc3339_nanos(m.at());
            let mut text = format!("{at} {} {} {}", m.kind, m.action, m.actor.id);
            if !m.actor.attributes.is_empty() {
                let attrs: Vec<String> = m
                    .actor
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                text.push_str(&format!(" ({})", attrs.join(", ")));
            }
            text
        }
    }
}

/// `--since`/`--until` as docker takes them: Unix seconds (with a
/// fraction), an RFC 3339 date or time (`2026-12-04`,
/// `2026-12-04T20:00:00Z`), or a duration before `now` (`10m`, `1h30m`).
///
/// # Errors
/// A value of none of these forms, with examples of each.
pub fn parse_time(flag: &str, value: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    let v = value.trim();
    let bad = || {
        anyhow!(
            "--{flag} {value:?} is not a time: give Unix seconds (1700000000.5), \
             an RFC 3339 time (2026-12-04T20:00:00Z, 2026-12-04) or a duration ago (10m, 1h30m)"
        )
    };
    if let Some(at) = swarm_core::events::unix_time(v) {
        return Ok(at);
    }
    if let Ok(ago) = humantime::parse_duration(v) {
        return now.checked_sub(ago).ok_or_else(bad);
    }
    let full = if v.len() == 10 {
        format!("{v}T00:00:00Z")
    } else {
        v.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .or_else(|_| humantime::parse_rfc3339(&full))
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};
    use swarm_core::events::{Action, Actor, EventType};

    #[test]
    fn lines_are_dockers() {
        let m = Message {
            kind: EventType::Service,
            action: Action::Update,
            actor: Actor {
                id: "abc".into(),
                attributes: BTreeMap::from([
                    ("name".into(), "web".into()),
                    ("replicas.new".into(), "3".into()),
                    ("replicas.old".into(), "1".into()),
                ]),
            },
            scope: "swarm".into(),
            time: 1_700_000_000,
            time_nano: 1_700_000_000_000_000_001,
        };
        assert_eq!(
            line(&m, Format::Text),
            "2023-11-14T22:13:20.000000001Z service update abc (name=web, replicas.new=3, replicas.old=1)"
        );
        let json: serde_json::Value = serde_json::from_str(&line(&m, Format::Json)).unwrap();
        assert_eq!(json["Type"], "service");
        assert_eq!(json["Actor"]["Attributes"]["name"], "web");
        assert_eq!(json["timeNano"], 1_700_000_000_000_000_001_i64);
        assert!(Format::parse(Some("{{.ID}}")).is_err());
    }

    #[test]
    fn times_take_dockers_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |v: &str| parse_time("since", v, now).unwrap();
        assert_eq!(at("1700000000.5"), now + Duration::from_millis(500));
        assert_eq!(at("10m"), now - Duration::from_secs(600));
        assert_eq!(at("1h30m"), now - Duration::from_secs(5400));
        assert_eq!(at("2023-11-14T22:13:20Z"), now);
        assert_eq!(
            at("2023-11-14"),
            UNIX_EPOCH + Duration::from_secs(1_699_920_000)
        );
        let bad = parse_time("until", "soon", now).unwrap_err().to_string();
        assert!(bad.contains("--until \"soon\" is not a time"), "{bad}");
    }
}
