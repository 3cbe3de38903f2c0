//! Splitting a request body into the raw bytes of its events: one JSON object, a JSON array
//! of objects, or newline-delimited JSON.

use super::fields::TopFields;
use super::limits::EventLimits;
use super::model::Event;
use super::parse::parse_event_as;
use super::reject::{RejectCode, Rejection};
use super::scan;
use super::validate::validate;
use crate::time::UnixMillis;

/// The events of a request body, each still as raw JSON bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchItems<'a> {
    /// The body was a single JSON value (the seed's one-event shape).
    Single(&'a [u8]),
    /// The body was a JSON array or NDJSON; items in order.
    Many(Vec<&'a [u8]>),
}

impl<'a> BatchItems<'a> {
    /// The items, whatever the shape.
    pub fn as_slice(&self) -> &[&'a [u8]] {
        match self {
            BatchItems::Single(item) => std::slice::from_ref(item),
            BatchItems::Many(items) => items,
        }
    }
}

/// Splits `body`. With `ndjson` each non-blank line is one item (invalid lines are rejected
/// one by one later); otherwise a body starting with `[` is a JSON array whose elements are
/// the items, and anything else is a single item. A whole-body problem (empty, malformed
/// array, more than `max_items`) is returned as a [`Rejection`].
pub fn split_batch(
    body: &[u8],
    ndjson: bool,
    max_items: usize,
) -> Result<BatchItems<'_>, Rejection> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(Rejection::new(
            RejectCode::EmptyBody,
            "the request body is empty",
        ));
    }
    if ndjson {
        let items: Vec<&[u8]> = trimmed
            .split(|b| *b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|line| !line.is_empty())
            .collect();
        return check_count(items, max_items).map(BatchItems::Many);
    }
    if trimmed[0] != b'[' {
        return Ok(BatchItems::Single(trimmed));
    }
    let items = split_json_array(trimmed)?;
    check_count(items, max_items).map(BatchItems::Many)
}

/// Splits a JSON array into the raw bytes of its elements in one pass, without parsing them
/// (each element is parsed once, later, by [`super::parse_event`]). Strings, escapes and
/// nesting are tracked so that commas and brackets inside elements do not split; an element
/// that is itself malformed is left for its own parse to reject. Unbalanced brackets or text
/// after the closing `]` reject the whole body.
fn split_json_array(body: &[u8]) -> Result<Vec<&[u8]>, Rejection> {
    let mut items = Vec::with_capacity(body.len() / 160 + 1);
    let mut start = 1usize;
    let closed_at = loop {
        let end = element_end(body, start)?;
        push_item(&mut items, &body[start..end], &malformed)?;
        if body[end] == b']' {
            break end;
        }
        if body[end + 1..].trim_ascii_start().first() == Some(&b']') {
            return Err(malformed("trailing comma"));
        }
        start = end + 1;
    };
    if !body[closed_at + 1..].trim_ascii().is_empty() {
        return Err(malformed("text after the closing `]`"));
    }
    Ok(items)
}

fn malformed(why: &str) -> Rejection {
    Rejection::new(
        RejectCode::MalformedJson,
        format!("malformed JSON array: {why}"),
    )
}

/// The index of the `,` or `]` that ends the array element starting at `start` (strings,
/// escapes and nesting tracked, see [`split_json_array`]).
fn element_end(body: &[u8], start: usize) -> Result<usize, Rejection> {
    let mut depth = 0usize; // nesting inside the element
    let mut index = start;
    while index < body.len() {
        match body[index] {
            b'"' => {
                // Jump to the closing quote: the next `"` not preceded by an escape.
                index += 1;
                loop {
                    let Some(offset) = memchr::memchr2(b'"', b'\\', &body[index..]) else {
                        return Err(malformed("unterminated string"));
                    };
                    index += offset;
                    if body[index] == b'\\' {
                        index += 2;
                    } else {
                        break;
                    }
                }
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth > 0 => depth -= 1,
            b']' | b',' if depth == 0 => return Ok(index),
            b'}' => return Err(malformed("unbalanced `}`")),
            _ => {}
        }
        index += 1;
    }
    Err(malformed("the array is not closed"))
}

/// One batch item: its raw bytes, and the event or why it was rejected.
pub type ParsedItem<'a> = (&'a [u8], Result<Event<'a>, Rejection>);

/// A request body's items with their outcomes, from [`parse_batch`].
#[derive(Debug)]
pub struct ParsedBatch<'a> {
    /// The body was a single JSON value (the seed's one-event shape), not an array or NDJSON.
    pub single: bool,
    /// Every item in order: its raw bytes, and the event or why it was rejected.
    pub items: Vec<ParsedItem<'a>>,
}

/// [`split_batch`] and [`parse_event`] on every item, with the same outcome, in one pass over
/// a JSON array where possible: each element is scanned once, by the event scanner, which
/// also finds where it ends. An element the scanner does not take is delimited like
/// [`split_batch`] delimits it and parsed by [`parse_event`]; anything unusual at the array
/// level (malformed, too many items, not UTF-8) falls back to [`split_batch`] for the whole
/// body, so whole-body rejections are its own.
pub fn parse_batch<'a>(
    body: &'a [u8],
    ndjson: bool,
    max_items: usize,
    limits: &EventLimits,
    now: UnixMillis,
) -> Result<ParsedBatch<'a>, Rejection> {
    parse_batch_as(body, ndjson, max_items, limits, now, None)
}

/// [`parse_batch`] where events without `tenant_id` belong to `default_tenant` when one is
/// given (the tenant of the producer's key).
pub fn parse_batch_as<'a>(
    body: &'a [u8],
    ndjson: bool,
    max_items: usize,
    limits: &EventLimits,
    now: UnixMillis,
    default_tenant: Option<&'a str>,
) -> Result<ParsedBatch<'a>, Rejection> {
    if !ndjson {
        let trimmed = body.trim_ascii();
        if trimmed.first() == Some(&b'[') {
            if let Some(items) = parse_array(trimmed, max_items, limits, now, default_tenant) {
                return Ok(ParsedBatch {
                    single: false,
                    items,
                });
            }
        }
    }
    let items = split_batch(body, ndjson, max_items)?;
    Ok(ParsedBatch {
        single: matches!(items, BatchItems::Single(_)),
        items: items
            .as_slice()
            .iter()
            .map(|raw| (*raw, parse_event_as(raw, limits, now, default_tenant)))
            .collect(),
    })
}

/// The one-pass path of [`parse_batch`] over a trimmed JSON array; `None` to fall back.
fn parse_array<'a>(
    body: &'a [u8],
    max_items: usize,
    limits: &EventLimits,
    now: UnixMillis,
    default_tenant: Option<&'a str>,
) -> Option<Vec<ParsedItem<'a>>> {
    let text = std::str::from_utf8(body).ok()?;
    let skip_ws = |mut at: usize| {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = body.get(at) {
            at += 1;
        }
        at
    };
    let mut items = Vec::with_capacity(body.len() / 160 + 1);
    let mut at = 1;
    loop {
        let start = skip_ws(at);
        let mut fields = TopFields::default();
        let (raw, end, result) = match scan::fill_at(text, start, &mut fields) {
            Some(end) if end - start <= limits.max_event_bytes => (
                &body[start..end],
                end,
                validate(fields, limits, now, default_tenant),
            ),
            _ => {
                let end = element_end(body, start).ok()?;
                let raw = body[start..end].trim_ascii();
                if raw.is_empty() {
                    return None; // `[]`, `[1,,2]`: split_batch says what is wrong
                }
                (raw, end, parse_event_as(raw, limits, now, default_tenant))
            }
        };
        items.push((raw, result));
        if items.len() > max_items {
            return None;
        }
        at = skip_ws(end);
        match body.get(at)? {
            b',' => {
                at += 1;
                if body.get(skip_ws(at)) == Some(&b']') {
                    return None; // trailing comma
                }
            }
            b']' => return (at + 1 == body.len()).then_some(items),
            _ => return None,
        }
    }
}

fn push_item<'a>(
    items: &mut Vec<&'a [u8]>,
    item: &'a [u8],
    malformed: &impl Fn(&str) -> Rejection,
) -> Result<(), Rejection> {
    let item = item.trim_ascii();
    if item.is_empty() {
        // `[]` is an empty batch; `[1,,2]` or `[,]` is malformed.
        if items.is_empty() {
            return Ok(());
        }
        return Err(malformed("empty element"));
    }
    items.push(item);
    Ok(())
}

fn check_count(items: Vec<&[u8]>, max_items: usize) -> Result<Vec<&[u8]>, Rejection> {
    if items.len() > max_items {
        return Err(Rejection::new(
            RejectCode::BatchTooLarge,
            format!(
                "the batch has {} items, the limit is {max_items}",
                items.len()
            ),
        ));
    }
    if items.is_empty() {
        return Err(Rejection::new(
            RejectCode::EmptyBody,
            "the batch has no items",
        ));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_event;

    #[test]
    fn single_array_and_ndjson_bodies() {
        assert_eq!(
            split_batch(b" {\"a\":1} ", false, 10),
            Ok(BatchItems::Single(b"{\"a\":1}"))
        );
        let array = split_batch(b"[{\"a\":1}, {\"b\":[2]} ,3]", false, 10).expect("array");
        assert_eq!(array.as_slice(), &[&b"{\"a\":1}"[..], b"{\"b\":[2]}", b"3"]);
        let lines = split_batch(b"{\"a\":1}\r\n\n{oops\n{\"b\":2}\n", true, 10).expect("ndjson");
        assert_eq!(
            lines.as_slice(),
            &[&b"{\"a\":1}"[..], b"{oops", b"{\"b\":2}"]
        );
    }

    #[test]
    fn whole_body_problems() {
        assert_eq!(
            split_batch(b"  \n", false, 10).unwrap_err().code,
            RejectCode::EmptyBody
        );
        assert_eq!(
            split_batch(b"[]", false, 10).unwrap_err().code,
            RejectCode::EmptyBody
        );
        assert_eq!(
            split_batch(b"[{\"a\":1},", false, 10).unwrap_err().code,
            RejectCode::MalformedJson
        );
        assert_eq!(
            split_batch(b"[1,2,3]", false, 2).unwrap_err().code,
            RejectCode::BatchTooLarge
        );
        assert_eq!(
            split_batch(b"1\n2\n3", true, 2).unwrap_err().code,
            RejectCode::BatchTooLarge
        );
        for body in [&b"[1,,2]"[..], b"[1,]", b"[1 ", b"[1]x", b"[{]", b"[}]"] {
            assert_eq!(
                split_batch(body, false, 10).unwrap_err().code,
                RejectCode::MalformedJson,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn strings_escapes_and_nesting_do_not_split() {
        let body = br#"[ {"a":"x,]}[\"","b":[1,{"c":2}]} , "q\\" ,{"d":"}"}]"#;
        let items = split_batch(body, false, 10).expect("array");
        assert_eq!(
            items.as_slice(),
            &[
                &br#"{"a":"x,]}[\"","b":[1,{"c":2}]}"#[..],
                br#""q\\""#,
                br#"{"d":"}"}"#
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_rejected_per_item() {
        let items = split_batch(b"[{\"a\":\"\xff\"}, {}]", false, 10).expect("array");
        assert_eq!(items.as_slice().len(), 2);
        let first = crate::event::parse_event(items.as_slice()[0], &Default::default(), 0);
        assert_eq!(first.unwrap_err().code, RejectCode::InvalidUtf8);
    }

    /// `parse_batch` must equal `split_batch` + `parse_event` on every body.
    fn check_batch(body: &[u8], max_items: usize) {
        let limits = EventLimits::default();
        let now = 1_705_327_532_000;
        let reference = split_batch(body, false, max_items).map(|items| {
            let single = matches!(items, BatchItems::Single(_));
            let parsed: Vec<_> = items
                .as_slice()
                .iter()
                .map(|raw| (*raw, parse_event(raw, &limits, now)))
                .collect();
            (single, parsed)
        });
        let fused = parse_batch(body, false, max_items, &limits, now)
            .map(|batch| (batch.single, batch.items));
        assert_eq!(fused, reference, "{}", String::from_utf8_lossy(body));
    }

    #[test]
    fn parse_batch_equals_split_then_parse() {
        let event = |i: u64| {
            format!(
                r#"{{"tenant_id":"t{}","source":"s","event_type":"e","properties":{{"region":"r{}","usd":{}.5}},"occurred_at":"2024-01-15T14:05:30Z"}}"#,
                i % 3,
                i % 7,
                i
            )
        };
        let fixed: Vec<String> = vec![
            format!("[{}]", event(1)),
            format!(" [ {} , {} ]\n", event(1), event(2)),
            format!(
                "[{},{}]",
                event(1),
                r#"{"tenant_id":"a\"b","x":[1,{"y":"]"}]}"#
            ),
            format!("[{},1,\"x\",null,[],{{}}]", event(1)),
            format!("[{},]", event(1)),
            format!("[{},,{}]", event(1), event(2)),
            format!("[{}", event(1)),
            format!("[{}] x", event(1)),
            format!("[{}\x0c,{}]", event(1), event(2)),
            format!("[{} {}]", event(1), event(2)),
            "[]".to_owned(),
            "[ ]".to_owned(),
            "[}]".to_owned(),
            "[\"unterminated]".to_owned(),
        ];
        for body in &fixed {
            check_batch(body.as_bytes(), 10);
            check_batch(body.as_bytes(), 1);
        }
        let mut not_utf8 = format!("[{}, ", event(1)).into_bytes();
        not_utf8.extend_from_slice(b"{\"tenant_id\":\"\xff\"}]");
        check_batch(&not_utf8, 10);
        let big = format!("[{}]", vec![event(3); 2].join(","));
        check_batch(big.replace("2024", "x").as_bytes(), 10);
        let huge = format!(r#"[{},{{"tenant_id":"{}"}}]"#, event(1), "a".repeat(70_000));
        check_batch(huge.as_bytes(), 10);

        // Generated bodies and mutations of them.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: u64| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        };
        let alphabet = b"{}[]\",:\\ \n0123456789.etfnul\x0c\xff";
        for _ in 0..3000 {
            let n = next(6);
            let items: Vec<String> = (0..n)
                .map(|i| match next(8) {
                    0 => r#"{"tenant_id":"t","x":1}"#.to_owned(),
                    1 => r#"{"tenant_id":"t\u0041","source":"s","event_type":"e","occurred_at":"2024-01-15T14:05:30Z"}"#.to_owned(),
                    2 => "[1,{\"a\":\"]\"}]".to_owned(),
                    _ => event(i),
                })
                .collect();
            let ws = [" ", "", "\n", "\t"][next(4) as usize];
            let body = format!("[{ws}{}{ws}]", items.join(&format!("{ws},{ws}")));
            check_batch(body.as_bytes(), 4);
            let mut bytes = body.into_bytes();
            for _ in 0..=next(2) {
                let at = next(bytes.len() as u64) as usize;
                match next(3) {
                    0 => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at, alphabet[next(alphabet.len() as u64) as usize]),
                    _ => bytes[at] = alphabet[next(alphabet.len() as u64) as usize],
                }
                if bytes.is_empty() {
                    break;
                }
            }
            check_batch(&bytes, 4);
        }
    }
}
