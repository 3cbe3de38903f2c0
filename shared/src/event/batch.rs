//! Splitting a request body into the raw bytes of its events: one JSON object, a JSON array
//! of objects, or newline-delimited JSON.

use super::{RejectCode, Rejection};
use serde_json::value::RawValue;

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
    let text = std::str::from_utf8(trimmed).map_err(|err| {
        Rejection::new(
            RejectCode::InvalidUtf8,
            format!(
                "the batch is not valid UTF-8 (at byte {})",
                err.valid_up_to()
            ),
        )
    })?;
    let raw: Vec<&RawValue> = serde_json::from_str(text).map_err(|err| {
        Rejection::new(
            RejectCode::MalformedJson,
            format!("malformed JSON array: {err}"),
        )
    })?;
    let items = raw.into_iter().map(|item| item.get().as_bytes()).collect();
    check_count(items, max_items).map(BatchItems::Many)
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
        assert_eq!(
            split_batch(b"[\"\xff\"]", false, 2).unwrap_err().code,
            RejectCode::InvalidUtf8
        );
    }
}
