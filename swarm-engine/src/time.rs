//! Times as Docker's Go types write them: RFC 3339 in UTC with up to
//! nanoseconds (`2026-12-02T20:11:09.123456789Z`).

use std::time::SystemTime;

/// `t` in RFC 3339, UTC.
#[must_use]
pub fn rfc3339(t: SystemTime) -> String {
    ::time::OffsetDateTime::from(t)
        .format(&::time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "0001-01-01T00:00:00Z".to_owned())
}
