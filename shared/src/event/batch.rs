//! Splitting a request body into the raw bytes of its events: one JSON object, a JSON array
//! of objects, or newline-delimited JSON.

use super::{RejectCode, Rejection};

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
    let malformed = |why: &str| {
        Rejection::new(
            RejectCode::MalformedJson,
            format!("malformed JSON array: {why}"),
        )
    };
    let mut items = Vec::with_capacity(body.len() / 160 + 1);
    let mut depth = 0usize; // nesting inside the current element
    let mut start = 1usize;
    let mut index = 1usize;
    let mut closed_at = None;
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
            b']' => {
                push_item(&mut items, &body[start..index], &malformed)?;
                closed_at = Some(index);
                break;
            }
            b'}' => return Err(malformed("unbalanced `}`")),
            b',' if depth == 0 => {
                push_item(&mut items, &body[start..index], &malformed)?;
                if body[index + 1..].trim_ascii_start().first() == Some(&b']') {
                    return Err(malformed("trailing comma"));
                }
                start = index + 1;
            }
            _ => {}
        }
        index += 1;
    }
    let Some(closed_at) = closed_at else {
        return Err(malformed("the array is not closed"));
    };
    if !body[closed_at + 1..].trim_ascii().is_empty() {
        return Err(malformed("text after the closing `]`"));
    }
    Ok(items)
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
}
