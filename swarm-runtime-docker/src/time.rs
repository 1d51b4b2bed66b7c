//! Docker's RFC 3339 timestamps (`2026-11-24T06:21:37.123456789Z`).

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses a timestamp as docker writes it; `None` for anything else, and
/// for times before 1970 (docker's "never" is year 1).
pub(crate) fn parse(s: &str) -> Option<SystemTime> {
    let t = SystemTime::from(OffsetDateTime::parse(s, &Rfc3339).ok()?);
    (t >= UNIX_EPOCH).then_some(t)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_docker_timestamps() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(UNIX_EPOCH));
        assert_eq!(
            parse("2026-11-24T06:21:37.5Z"),
            Some(UNIX_EPOCH + Duration::new(1_795_501_297, 500_000_000))
        );
        assert_eq!(
            parse("2000-03-01T00:00:00.000000001Z"),
            Some(UNIX_EPOCH + Duration::new(951_868_800, 1))
        );
        assert_eq!(parse("0001-01-01T00:00:00Z"), None, "docker's never");
        assert_eq!(parse("2026-11-24 06:21:37"), None);
        assert_eq!(parse("2026-13-01T00:00:00Z"), None);
    }
}
