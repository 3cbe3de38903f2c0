//! Timestamps as milliseconds since the Unix epoch, and RFC 3339 conversions.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch (UTC). Every timestamp rtdash moves around is one of these.
pub type UnixMillis = i64;

/// The current wall-clock time.
pub fn now_millis() -> UnixMillis {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as UnixMillis
}

/// Parses an RFC 3339 timestamp with an explicit offset (`Z` or `+hh:mm`).
pub fn parse_rfc3339(text: &str) -> Option<UnixMillis> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Formats milliseconds as RFC 3339 in UTC with millisecond precision (`2024-01-15T14:05:32.000Z`).
pub fn format_rfc3339(millis: UnixMillis) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(at) => {
            let (year, month, day) = (at.year(), at.month() as u8, at.day());
            let (hour, minute, second) = (at.hour(), at.minute(), at.second());
            let milli = at.millisecond();
            format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
        }
        Err(_) => String::from("invalid-timestamp"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let at = parse_rfc3339("2024-01-15T14:05:32Z").expect("valid");
        assert_eq!(at, 1_705_327_532_000);
        assert_eq!(format_rfc3339(at), "2024-01-15T14:05:32.000Z");
        assert_eq!(
            parse_rfc3339("2024-01-15T16:05:32.250+02:00"),
            Some(at + 250)
        );
    }

    #[test]
    fn rejects_timestamps_without_offset() {
        assert_eq!(parse_rfc3339("2024-01-15T14:05:32"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
