// Over 600 lines only with its tests: the scanner is one ~300-line state machine, and the
// tests beside it prove, on generated and mutated inputs, that it agrees with the serde path.

//! The fast path of [`super::parse_event`]: a hand-written scanner for the common shape of an
//! event, filing its fields into the same slots as the serde path, so that the same validation
//! runs on them.
//!
//! It handles a top-level object whose keys are the known fields, each at most once, with
//! scalar values and a `properties` object of scalar values, strings without escapes, and
//! numbers that convert exactly (integers of up to 18 digits; decimals whose significand fits
//! 2^53 and whose decimal exponent is within ±22, computed with one correctly rounded
//! multiplication or division, which is also what serde_json computes for them). Anything else
//! (escapes, unknown or repeated fields, nested containers, other numbers, malformed JSON)
//! makes it return `None`, and the input goes through serde_json: every rejection, with its
//! code and message, comes from the serde path. `scan_agrees_with_serde` checks the two
//! agree on generated and mutated inputs.

use super::fields::{Any, TopFields, FIELDS};
use super::scalar::Scalar;
use std::borrow::Cow;

/// Powers of ten that are exact in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Files the event's fields into `fields` (empty on entry) when `text` has the shape this
/// scanner handles (see the module docs); false otherwise (`fields` is then to be dropped).
pub(super) fn fill<'a>(text: &'a str, fields: &mut TopFields<'a>) -> bool {
    match fill_at(text, 0, fields) {
        Some(end) => text.as_bytes()[end..]
            .iter()
            .all(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t')),
        None => false,
    }
}

/// [`fill`] for an object starting at `start` (after optional whitespace) inside `text`;
/// returns the index just past its closing `}`.
pub(super) fn fill_at<'a>(
    text: &'a str,
    start: usize,
    fields: &mut TopFields<'a>,
) -> Option<usize> {
    let mut scanner = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: start,
    };
    scanner.object(fields)?;
    Some(scanner.pos)
}

/// The slot of a top-level key ([`FIELDS`] order).
#[inline]
fn field_index(key: &str) -> Option<usize> {
    match key {
        "id" => Some(0),
        "tenant_id" => Some(1),
        "source" => Some(2),
        "event_type" => Some(3),
        "properties" => Some(4),
        "occurred_at" => Some(5),
        "weight" => Some(6),
        _ => None,
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Marks (high bit) the bytes of `word` that end a plain string run: `"`, `\\` or a control
/// character. The lowest marked byte is exact (borrows only run upwards from a true match).
#[inline]
fn string_stops(word: u64) -> u64 {
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zero_byte(quote) | zero_byte(backslash) | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS)
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips whitespace, then consumes `byte`.
    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        if self.peek()? == byte {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    /// The top-level object.
    fn object(&mut self, fields: &mut TopFields<'a>) -> Option<()> {
        self.expect(b'{')?;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            let index = field_index(key)?;
            debug_assert_eq!(FIELDS[index], key);
            if fields.slots[index].is_some() {
                return None;
            }
            self.expect(b':')?;
            self.skip_ws();
            let value = if index == 4 && self.peek()? == b'{' {
                self.properties()?
            } else {
                Any::Scalar(self.scalar()?)
            };
            fields.slots[index] = Some(value);
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A `properties` object of scalar values.
    fn properties(&mut self) -> Option<Any<'a>> {
        self.pos += 1; // `{`
        let mut entries = Vec::with_capacity(8);
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(Any::Object(entries, None));
        }
        loop {
            self.skip_ws();
            let key = self.string()?;
            self.expect(b':')?;
            self.skip_ws();
            let value = self.scalar()?;
            entries.push((Cow::Borrowed(key), value));
            self.skip_ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(Any::Object(entries, None));
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes or control characters, borrowed.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.pos + 1;
        let mut end = start;
        // Eight bytes at a time while there are eight, then byte by byte.
        while let Some(chunk) = self.bytes.get(end..end + 8) {
            let word = u64::from_le_bytes(chunk.try_into().ok()?);
            let stops = string_stops(word);
            if stops != 0 {
                end += (stops.trailing_zeros() / 8) as usize;
                break;
            }
            end += 8;
        }
        loop {
            match *self.bytes.get(end)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => end += 1,
            }
        }
        self.pos = end + 1;
        // `"` is ASCII: both ends are character boundaries of the (valid UTF-8) text.
        self.text.get(start..end)
    }

    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => self.string().map(|s| Scalar::Str(Cow::Borrowed(s))),
            b't' => self.literal(b"true", Scalar::Bool(true)),
            b'f' => self.literal(b"false", Scalar::Bool(false)),
            b'n' => self.literal(b"null", Scalar::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], value: Scalar<'a>) -> Option<Scalar<'a>> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Some(value)
        } else {
            None
        }
    }

    /// A JSON number that converts exactly (see the module docs).
    fn number(&mut self) -> Option<Scalar<'a>> {
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let mut significand: u64 = 0;
        let mut digits = 0u32;
        match self.peek()? {
            b'0' => {
                self.pos += 1;
                digits = 1;
            }
            b'1'..=b'9' => {
                while let Some(d @ b'0'..=b'9') = self.peek() {
                    if digits == 18 {
                        return None;
                    }
                    significand = significand * 10 + u64::from(d - b'0');
                    digits += 1;
                    self.pos += 1;
                }
            }
            _ => return None,
        }
        let mut exponent: i32 = 0;
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            is_float = true;
            let mut fraction_digits = 0;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                if digits == 18 {
                    return None;
                }
                significand = significand * 10 + u64::from(d - b'0');
                digits += 1;
                fraction_digits += 1;
                self.pos += 1;
            }
            if fraction_digits == 0 {
                return None;
            }
            exponent -= fraction_digits;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            is_float = true;
            let exponent_negative = match self.peek()? {
                b'-' => {
                    self.pos += 1;
                    true
                }
                b'+' => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            let mut value: i32 = 0;
            let mut exponent_digits = 0;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                if exponent_digits == 4 {
                    return None;
                }
                value = value * 10 + i32::from(d - b'0');
                exponent_digits += 1;
                self.pos += 1;
            }
            if exponent_digits == 0 {
                return None;
            }
            exponent += if exponent_negative { -value } else { value };
        }
        if !is_float {
            // serde_json reads `-0` as the float -0.0: leave it to serde.
            if negative && significand == 0 {
                return None;
            }
            let value = significand as i64; // at most 18 digits: fits
            return Some(Scalar::Int(if negative { -value } else { value }));
        }
        if significand > 1 << 53 {
            return None;
        }
        let pow = *POW10.get(exponent.unsigned_abs() as usize)?;
        let magnitude = if exponent >= 0 {
            significand as f64 * pow
        } else {
            significand as f64 / pow
        };
        Some(Scalar::Float(if negative { -magnitude } else { magnitude }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::limits::EventLimits;
    use super::super::parse::{parse_event_fast, parse_event_serde};
    use super::super::reject::Rejection;
    use super::*;
    use crate::time::UnixMillis;

    const NOW: UnixMillis = 1_705_327_532_000;

    /// Both paths on `text`: when the scanner takes it, the outcome must be serde's.
    fn check(text: &str) -> bool {
        let limits = EventLimits::default();
        let fast = parse_event_fast(text.as_bytes(), &limits, NOW, None);
        let slow = parse_event_serde(text.as_bytes(), &limits, NOW, None);
        match fast {
            None => false,
            Some(fast) => {
                assert_eq!(
                    normalize(fast),
                    normalize(slow),
                    "scanner and serde disagree on {text:?}"
                );
                true
            }
        }
    }

    fn normalize(result: Result<super::super::Event<'_>, Rejection>) -> Result<String, Rejection> {
        // Floats compared bit for bit (-0.0 and NaN included).
        result.map(|event| {
            let props: Vec<String> = event
                .properties
                .iter()
                .map(|(k, v)| match v {
                    Scalar::Float(f) => format!("{k}=f{:x}", f.to_bits()),
                    other => format!("{k}={other:?}"),
                })
                .collect();
            format!(
                "{:?} {} {} {} {} {:?}",
                event.id, event.tenant_id, event.source, event.event_type, event.occurred_at, props
            )
        })
    }

    const GOOD: &str = r#"{"tenant_id":"acme","source":"checkout-service","event_type":"payment_completed","properties":{"region":"us-east","plan":"pro","amount_usd":49.99,"user_id":42,"vip":true,"note":null},"occurred_at":"2024-01-15T14:05:30Z"}"#;

    #[test]
    fn the_common_shape_takes_the_fast_path() {
        assert!(check(GOOD));
        assert!(check(
            " {\n\t\"id\" : \"e-1\" ,\"tenant_id\":\"t\",\"source\":\"s\",\"event_type\":\"e\",\"occurred_at\":\"2024-01-15T14:05:30Z\" } \r\n"
        ));
        assert!(check(
            r#"{"tenant_id":"t","source":"s","event_type":"e","properties":{},"occurred_at":"2024-01-15T14:05:30Z"}"#
        ));
        assert!(check(
            r#"{"tenant_id":"t","source":"s","event_type":"e","properties":null,"occurred_at":"2024-01-15T14:05:30Z"}"#
        ));
        // Validation problems found by the shared validation, after a fast scan.
        assert!(check(
            r#"{"tenant_id":"t","source":"s","event_type":"e","occurred_at":"soon"}"#
        ));
        assert!(check(
            r#"{"tenant_id":7,"source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#
        ));
        assert!(check(r#"{}"#));
        assert!(check(r#"{"tenant_id":"t","properties":{"a":1,"a":2}}"#));
        assert!(check(r#"{"tenant_id":"t","properties":{"":1}}"#));
        assert!(check(r#"{"tenant_id":"t","properties":5}"#));
    }

    #[test]
    fn numbers_convert_like_serde_json() {
        for number in [
            "0",
            "7",
            "-7",
            "42",
            "123456789012345678",
            "-123456789012345678",
            "0.5",
            "-0.5",
            "49.99",
            "1e3",
            "1E3",
            "1e+3",
            "1e-3",
            "2.5e-7",
            "0.1",
            "0.3",
            "1.7976931348623157",
            "9007199254740992",
            "9007199254740993.0",
            "900719925474099.3",
            "0.000001",
            "1e22",
            "1e-22",
            "3.0",
            "-0.0",
            "0.0",
            "12.50",
            "1234567.890123",
        ] {
            let text = format!(
                r#"{{"tenant_id":"t","source":"s","event_type":"e","properties":{{"n":{number}}},"occurred_at":"2024-01-15T14:05:30Z"}}"#
            );
            check(&text);
        }
        // Left to serde (and still parsed the same by parse_event).
        for number in [
            "-0",
            "1234567890123456789",
            "1e23",
            "1e400",
            "18446744073709551616",
            "0.1234567890123456789",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "+1",
            "1.5e+",
            "NaN",
            "Infinity",
        ] {
            let text = format!(
                r#"{{"tenant_id":"t","source":"s","event_type":"e","properties":{{"n":{number}}},"occurred_at":"2024-01-15T14:05:30Z"}}"#
            );
            assert!(!check(&text), "{number} should go through serde");
            let _ = parse_event(text.as_bytes());
        }
    }

    fn parse_event(bytes: &[u8]) -> Result<super::super::Event<'_>, Rejection> {
        super::super::parse_event(bytes, &EventLimits::default(), NOW)
    }

    #[test]
    fn everything_unusual_goes_through_serde() {
        for text in [
            r#"{"tenant_id":"a\"b"}"#,
            r#"{"tenant\u005fid":"t"}"#,
            r#"{"tenant_id":"t","tenant_id":"u"}"#,
            r#"{"tenant_id":"t","x":1}"#,
            r#"{"tenant_id":"t","properties":{"a":[1]}}"#,
            r#"{"tenant_id":"t","properties":{"a":{}}}"#,
            r#"{"tenant_id":"t",}"#,
            r#"{"tenant_id":"t"} x"#,
            r#"{"tenant_id":"t""#,
            "{\"tenant_id\":\"a\tb\"}",
            r#"[{"tenant_id":"t"}]"#,
            r#""text""#,
            "",
            r#"{"tenant_id":tru}"#,
            r#"{"tenant_id":nulls}"#,
        ] {
            assert!(!check(text), "{text:?} should go through serde");
        }
    }

    /// A small deterministic PRNG (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'s>(&mut self, items: &[&'s str]) -> &'s str {
            items[self.below(items.len() as u64) as usize]
        }
    }

    fn random_event(rng: &mut Rng) -> String {
        let values = [
            "\"eu\"",
            "\"us-east\"",
            "42",
            "-3",
            "0",
            "49.99",
            "1e3",
            "2.5E-3",
            "true",
            "false",
            "null",
            "\"\"",
            "\"Z\\u00fcrich\"",
            "\"a\\\"b\"",
            "[1,2]",
            "{\"x\":1}",
            "0.1",
            "123456789012",
            "-0.25",
            "\"√ unicode ✓\"",
        ];
        let keys = [
            "region", "plan", "usd", "user_id", "n", "region", "k\\n", "",
        ];
        let ws = ["", " ", "\n", "\t", " \r\n "];
        let mut fields: Vec<String> = vec![
            format!(
                "\"tenant_id\":{}",
                rng.pick(&["\"acme\"", "\"a b\"", "7", "\"t-1\""])
            ),
            format!(
                "\"source\":{}",
                rng.pick(&["\"svc\"", "\"checkout-service\""])
            ),
            format!(
                "\"event_type\":{}",
                rng.pick(&["\"pay\"", "\"click\"", "null"])
            ),
            format!(
                "\"occurred_at\":{}",
                rng.pick(&[
                    "\"2024-01-15T14:05:30Z\"",
                    "\"2024-01-15T14:05:30.250+02:00\"",
                    "\"x\"",
                    "5"
                ])
            ),
        ];
        if rng.below(4) > 0 {
            let n = rng.below(6);
            let props: Vec<String> = (0..n)
                .map(|_| {
                    format!(
                        "\"{}\"{}:{}{}",
                        rng.pick(&keys),
                        rng.pick(&ws),
                        rng.pick(&ws),
                        rng.pick(&values)
                    )
                })
                .collect();
            fields.push(format!("\"properties\":{{{}}}", props.join(",")));
        }
        if rng.below(5) == 0 {
            fields.push(format!("\"id\":{}", rng.pick(&["\"e-1\"", "null", "5"])));
        }
        if rng.below(10) == 0 {
            fields.push("\"extra\":1".to_owned());
        }
        // Shuffle.
        for i in (1..fields.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            fields.swap(i, j);
        }
        let sep = rng.pick(&ws);
        format!(
            "{}{{{}{}}}{}",
            rng.pick(&ws),
            sep,
            fields.join(&format!(",{sep}")),
            rng.pick(&ws)
        )
    }

    fn mutate(rng: &mut Rng, text: &str) -> Vec<u8> {
        let mut bytes = text.as_bytes().to_vec();
        let alphabet = b"{}[]\",:\\ 0123456789.eE+-tfnul\"\n\x01a\xc3";
        for _ in 0..=rng.below(3) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, alphabet[rng.below(alphabet.len() as u64) as usize]),
                _ => bytes[at] = alphabet[rng.below(alphabet.len() as u64) as usize],
            }
        }
        bytes
    }

    #[test]
    fn scan_agrees_with_serde() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let limits = EventLimits::default();
        let (mut fast, mut total) = (0, 0);
        for _ in 0..20_000 {
            let text = random_event(&mut rng);
            total += 1;
            if check(&text) {
                fast += 1;
            }
            for _ in 0..3 {
                let bytes = mutate(&mut rng, &text);
                total += 1;
                let fast_result = parse_event_fast(&bytes, &limits, NOW, None);
                let slow = parse_event_serde(&bytes, &limits, NOW, None);
                if let Some(result) = fast_result {
                    fast += 1;
                    assert_eq!(
                        normalize(result),
                        normalize(slow),
                        "scanner and serde disagree on {:?}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
            }
        }
        assert!(
            fast > total / 10,
            "only {fast} of {total} took the fast path"
        );
    }
}
