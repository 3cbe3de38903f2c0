//! Fast writing of event JSON into a reused buffer: no `serde` round trip, no allocation per
//! event. Strings written here come from the generators (identifiers and plain ASCII values)
//! and are escaped anyway, so any text is safe.

use rtdash_shared::time::{format_rfc3339, UnixMillis};

/// Appends `text` as a JSON string (with quotes).
pub fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for &b in text.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Appends `value` in decimal.
pub fn uint(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends a non-negative finite `value` with two decimals (`123.45`); other values as `0`.
pub fn fixed2(out: &mut Vec<u8>, value: f64) {
    if !(value.is_finite() && (0.0..1e15).contains(&value)) {
        out.push(b'0');
        return;
    }
    let cents = (value * 100.0).round() as u64;
    uint(out, cents / 100);
    out.push(b'.');
    let rest = cents % 100;
    out.push(b'0' + (rest / 10) as u8);
    out.push(b'0' + (rest % 10) as u8);
}

/// RFC 3339 timestamps with millisecond precision (`2024-01-15T14:05:32.123Z`), formatting
/// the date and time of day only when the second changes.
#[derive(Clone, Debug, Default)]
pub struct Timestamps {
    second: Option<i64>,
    /// `2024-01-15T14:05:32.` for `second`.
    prefix: Vec<u8>,
}

impl Timestamps {
    /// A formatter with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `at` as a quoted RFC 3339 string.
    pub fn write(&mut self, out: &mut Vec<u8>, at: UnixMillis) {
        let second = at.div_euclid(1000);
        let millis = at.rem_euclid(1000) as u64;
        out.push(b'"');
        if self.second == Some(second) {
            out.extend_from_slice(&self.prefix);
        } else {
            let text = format_rfc3339(second * 1000);
            // `...T14:05:32.000Z`: keep up to and including the dot.
            let prefix = &text.as_bytes()[..text.len().saturating_sub(4)];
            out.extend_from_slice(prefix);
            // Late events jump back and forth; cache only the newest second.
            if self.second.is_none_or(|cached| second >= cached) {
                self.second = Some(second);
                self.prefix.clear();
                self.prefix.extend_from_slice(prefix);
            }
        }
        out.push(b'0' + (millis / 100) as u8);
        out.push(b'0' + (millis / 10 % 10) as u8);
        out.push(b'0' + (millis % 10) as u8);
        out.extend_from_slice(b"Z\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::time::parse_rfc3339;

    #[test]
    fn writes_valid_json_pieces() {
        let mut out = Vec::new();
        string(&mut out, "a\"b\\c\n");
        assert_eq!(out, br#""a\"b\\c\u000a""#);
        out.clear();
        uint(&mut out, 0);
        out.push(b',');
        uint(&mut out, 18_446_744_073_709_551_615);
        assert_eq!(out, b"0,18446744073709551615");
        out.clear();
        fixed2(&mut out, 12.345);
        out.push(b',');
        fixed2(&mut out, 0.05);
        assert_eq!(out, b"12.35,0.05");
    }

    #[test]
    fn timestamps_round_trip() {
        let mut ts = Timestamps::new();
        for at in [
            1_705_327_532_123,
            1_705_327_532_999,
            1_705_327_500_001,
            1_705_327_533_000,
        ] {
            let mut out = Vec::new();
            ts.write(&mut out, at);
            let text = std::str::from_utf8(&out).expect("utf8");
            assert_eq!(parse_rfc3339(text.trim_matches('"')), Some(at), "{text}");
        }
    }
}
