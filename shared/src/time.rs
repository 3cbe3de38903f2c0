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
    if let Some(millis) = parse_rfc3339_common(text.as_bytes()) {
        return Some(millis);
    }
    parse_rfc3339_full(text)
}

/// [`parse_rfc3339`] with the `time` crate: every form RFC 3339 allows.
fn parse_rfc3339_full(text: &str) -> Option<UnixMillis> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The fast path of [`parse_rfc3339`] for the forms producers send,
/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM)`, years 1971 to 9999 and no leap second;
/// `None` for anything else, which the `time` crate then parses (or rejects). Agrees with it
/// on every input it takes (`the_fast_path_agrees_with_the_time_crate`).
fn parse_rfc3339_common(b: &[u8]) -> Option<UnixMillis> {
    let digits = |from: usize, len: usize| -> Option<i64> {
        let mut value = 0i64;
        for &d in b.get(from..from + len)? {
            if !d.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(d - b'0');
        }
        Some(value)
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1971..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b[at] == b'.' {
        let start = at + 1;
        at = start;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let count = at - start;
        if count == 0 || count > 9 {
            return None;
        }
        for i in 0..3 {
            millis = millis * 10
                + if i < count {
                    i64::from(b[start + i] - b'0')
                } else {
                    0
                };
        }
    }
    let offset_secs = match b.get(at..)? {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if hours > 23 || minutes > 59 || (*sign == b'-' && hours == 0 && minutes == 0) {
                return None;
            }
            let secs = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn the_fast_path_agrees_with_the_time_crate() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        };
        let mut fast = 0;
        for i in 0..200_000 {
            let year = [1970, 1971, 1999, 2000, 2024, 2100, 2400, 9999][next(8) as usize];
            let text = format!(
                "{year:04}-{:02}-{:02}{}{:02}:{:02}:{:02}{}{}",
                next(14),
                next(33),
                ["T", "T", "T", "t", " "][next(5) as usize],
                next(25),
                next(61),
                next(62),
                [
                    "",
                    ".5",
                    ".25",
                    ".123",
                    ".1234",
                    ".123456789",
                    ".1234567891",
                    "."
                ][next(8) as usize],
                [
                    "Z", "Z", "z", "+02:00", "-05:30", "+23:59", "+24:00", "-00:00", "+00:00", "",
                    "+0200"
                ][next(11) as usize],
            );
            let text = if i % 7 == 0 {
                // Mutations: the fast path must decline or agree.
                let mut bytes = text.into_bytes();
                let at = next(bytes.len() as u64) as usize;
                bytes[at] = b"0123456789-:TZ.+ x"[next(18) as usize];
                String::from_utf8(bytes).expect("ascii")
            } else {
                text
            };
            if let Some(millis) = parse_rfc3339_common(text.as_bytes()) {
                fast += 1;
                assert_eq!(Some(millis), parse_rfc3339_full(&text), "{text}");
            }
        }
        assert!(fast > 10_000, "{fast}");
        for text in [
            "2024-01-15T14:05:32Z",
            "2024-02-29T23:59:59.999+01:00",
            "2000-02-29T00:00:00Z",
            "2024-12-31T23:59:59.000000001-12:00",
        ] {
            assert!(parse_rfc3339_common(text.as_bytes()).is_some(), "{text}");
            assert_eq!(
                parse_rfc3339_common(text.as_bytes()),
                parse_rfc3339_full(text)
            );
        }
        for text in [
            "2023-02-29T00:00:00Z",
            "2024-01-15T14:05:60Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339_common(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn rejects_timestamps_without_offset() {
        assert_eq!(parse_rfc3339("2024-01-15T14:05:32"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
