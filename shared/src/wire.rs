//! The versioned envelope every message travels in.
//!
//! ```text
//! byte 0-1  magic  b"RD"
//! byte 2    envelope version (1)
//! byte 3    message kind     (see [`MessageKind`])
//! byte 4    body format      (0 = postcard binary, 1 = JSON)
//! byte 5..  body
//! ```
//!
//! The hot path (partials) uses postcard, a compact and stable serde format; JSON is there for
//! debugging and for messages humans read (dead letters). A decoder checks magic, version,
//! kind and size before touching the body, and every length inside the body is bounded by the
//! bytes actually present, so hostile input is an error, never a panic or a huge allocation.

use crate::alert::AlertTransition;
use crate::messages::{
    DeadLetter, LateRecord, PartialBatch, PartitionStatus, WindowUpdate, WindowUpdates,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

const MAGIC: [u8; 2] = *b"RD";
/// Envelope version written by this release.
pub const ENVELOPE_VERSION: u8 = 1;
/// Bytes before the body: magic, version, kind and format.
const HEADER_LEN: usize = 5;
/// Largest message body accepted by [`decode`].
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Body encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// postcard (compact binary).
    Binary = 0,
    /// serde_json.
    Json = 1,
}

/// Message kinds, one per message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// [`PartialBatch`].
    PartialBatch = 1,
    /// [`WindowUpdate`].
    WindowUpdate = 2,
    /// [`LateRecord`].
    LateRecord = 3,
    /// [`DeadLetter`].
    DeadLetter = 4,
    /// [`PartitionStatus`].
    PartitionStatus = 5,
    /// An alert transition.
    AlertTransition = 6,
}

/// A type that travels in the envelope.
pub trait WireMessage: Serialize + DeserializeOwned {
    /// Its kind byte.
    const KIND: MessageKind;
}

impl WireMessage for PartialBatch {
    const KIND: MessageKind = MessageKind::PartialBatch;
}
impl WireMessage for WindowUpdate {
    const KIND: MessageKind = MessageKind::WindowUpdate;
}
impl WireMessage for LateRecord {
    const KIND: MessageKind = MessageKind::LateRecord;
}
impl WireMessage for DeadLetter {
    const KIND: MessageKind = MessageKind::DeadLetter;
}
impl WireMessage for AlertTransition {
    const KIND: MessageKind = MessageKind::AlertTransition;
}
impl WireMessage for PartitionStatus {
    const KIND: MessageKind = MessageKind::PartitionStatus;
}
/// A batch of window versions shares the kind of a single one (see [`decode_live_updates`]).
impl WireMessage for WindowUpdates {
    const KIND: MessageKind = MessageKind::WindowUpdate;
}

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header.
    #[error("message truncated: {0} bytes, the header alone is {HEADER_LEN}")]
    Truncated(usize),
    /// Not an rtdash envelope.
    #[error("not an rtdash message (bad magic)")]
    BadMagic,
    /// A newer envelope version.
    #[error("unsupported envelope version {0} (this release reads version 1)")]
    UnsupportedVersion(u8),
    /// Another message type than expected.
    #[error("expected message kind {expected}, got {got}")]
    WrongKind {
        /// Expected kind byte.
        expected: u8,
        /// Found kind byte.
        got: u8,
    },
    /// Unknown body format byte.
    #[error("unknown body format {0}")]
    UnknownFormat(u8),
    /// Body larger than [`MAX_BODY_BYTES`].
    #[error("message body of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// The body did not decode.
    #[error("invalid message body: {0}")]
    Body(#[source] BodyError),
    /// Encoding failed (a value serde could not represent).
    #[error("could not encode message: {0}")]
    Encode(#[source] BodyError),
}

/// What went wrong with a message body: the cause of [`WireError::Body`] and
/// [`WireError::Encode`].
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// postcard could not encode or decode it.
    #[error(transparent)]
    Binary(#[from] postcard::Error),
    /// serde_json could not encode or decode it.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Bytes follow a complete binary body.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

/// JSON errors compare by category, position and message (serde_json's error has no equality
/// of its own), so that [`WireError`] keeps its `PartialEq`.
impl PartialEq for BodyError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Binary(a), Self::Binary(b)) => a == b,
            (Self::Json(a), Self::Json(b)) => {
                a.classify() == b.classify()
                    && (a.line(), a.column()) == (b.line(), b.column())
                    && a.to_string() == b.to_string()
            }
            (Self::TrailingBytes(a), Self::TrailingBytes(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for BodyError {}

/// Encodes `message` in `format`.
pub fn encode<T: WireMessage>(message: &T, format: Format) -> Result<Vec<u8>, WireError> {
    encode_view::<T, T>(message, format)
}

/// Encodes `message`, a borrowed form that serializes exactly like a `M` (such as
/// [`crate::messages::WindowUpdateView`] for [`WindowUpdate`]), as a message of `M`'s kind.
pub fn encode_view<M: WireMessage, T: Serialize + ?Sized>(
    message: &T,
    format: Format,
) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.push(ENVELOPE_VERSION);
    out.push(M::KIND as u8);
    out.push(format as u8);
    match format {
        Format::Binary => postcard::to_io(message, &mut out)
            .map(|_| ())
            .map_err(|err| WireError::Encode(err.into()))?,
        Format::Json => {
            serde_json::to_writer(&mut out, message).map_err(|err| WireError::Encode(err.into()))?
        }
    }
    Ok(out)
}

/// Reads the header: the kind byte and format, without decoding the body.
pub fn peek_kind(bytes: &[u8]) -> Result<(u8, Format), WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::Truncated(bytes.len()));
    }
    if bytes[0..2] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if bytes[2] != ENVELOPE_VERSION {
        return Err(WireError::UnsupportedVersion(bytes[2]));
    }
    let format = match bytes[4] {
        0 => Format::Binary,
        1 => Format::Json,
        other => return Err(WireError::UnknownFormat(other)),
    };
    Ok((bytes[3], format))
}

/// Decodes a `T` from an envelope.
pub fn decode<T: WireMessage>(bytes: &[u8]) -> Result<T, WireError> {
    decode_borrowed(bytes, T::KIND)
}

/// Decodes a message of `kind` into a `T` that may borrow from `bytes` (strings without
/// escapes, byte slices): for readers that decode into borrowed mirrors of a message type
/// instead of copying every string (the core aggregator's partial batches).
pub fn decode_borrowed<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    kind: MessageKind,
) -> Result<T, WireError> {
    let (got, format) = peek_kind(bytes)?;
    if got != kind as u8 {
        return Err(WireError::WrongKind {
            expected: kind as u8,
            got,
        });
    }
    let body = &bytes[HEADER_LEN..];
    if body.len() > MAX_BODY_BYTES {
        return Err(WireError::TooLarge(body.len()));
    }
    match format {
        Format::Binary => {
            let (value, rest) =
                postcard::take_from_bytes::<T>(body).map_err(|err| WireError::Body(err.into()))?;
            if !rest.is_empty() {
                return Err(WireError::Body(BodyError::TrailingBytes(rest.len())));
            }
            Ok(value)
        }
        Format::Json => serde_json::from_slice(body).map_err(|err| WireError::Body(err.into())),
    }
}

/// Decodes a live message on `rtdash.live.<tenant>.<metric>` in either form, a single
/// [`WindowUpdate`] or a [`WindowUpdates`] batch, appending its versions to `out` (in the
/// order they were published). Returns how many were appended.
pub fn decode_live_updates(bytes: &[u8], out: &mut Vec<WindowUpdate>) -> Result<usize, WireError> {
    let (_, format) = peek_kind(bytes)?;
    let batch = format == Format::Json
        && bytes
            .get(HEADER_LEN..)
            .and_then(|body| body.iter().find(|b| !b.is_ascii_whitespace()))
            == Some(&b'[');
    if batch {
        let WindowUpdates(updates) = decode::<WindowUpdates>(bytes)?;
        let n = updates.len();
        out.extend(updates);
        Ok(n)
    } else {
        out.push(decode::<WindowUpdate>(bytes)?);
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{PartitionStatus, WindowUpdateView};
    use crate::sketch::Stats;
    use crate::time::UnixMillis;
    use std::collections::BTreeMap;

    fn update(start: UnixMillis, count: u64) -> WindowUpdate {
        WindowUpdate {
            tenant_id: "t".into(),
            metric: "m".into(),
            dimensions: BTreeMap::from([("region".to_owned(), Some("eu".to_owned()))]),
            window_start: start,
            window_end: start + 1_000,
            stats: Stats {
                count,
                ..Stats::default()
            },
            revision: 0,
            is_final: false,
            late_count: 0,
            updated_at: start + 10,
            state: None,
        }
    }

    #[test]
    fn a_window_update_view_encodes_exactly_like_the_update() {
        let mut owned = update(60_000, 7);
        owned.dimensions = BTreeMap::from([
            ("host".to_owned(), None),
            ("region".to_owned(), Some("eu \"west\"".to_owned())),
        ]);
        owned.stats.sum = Some(12.5);
        owned.stats.p99 = Some(3.25);
        owned.is_final = true;
        owned.revision = 2;
        owned.late_count = 4;
        let dims: Vec<(String, Option<String>)> = owned.dimensions.clone().into_iter().collect();
        let view = WindowUpdateView {
            tenant_id: &owned.tenant_id,
            metric: &owned.metric,
            dimensions: &dims,
            window_start: owned.window_start,
            window_end: owned.window_end,
            stats: &owned.stats,
            revision: owned.revision,
            is_final: owned.is_final,
            late_count: owned.late_count,
            updated_at: owned.updated_at,
            state: owned.state.as_deref(),
        };
        for format in [Format::Json, Format::Binary] {
            let bytes = encode_view::<WindowUpdate, _>(&view, format).unwrap();
            assert_eq!(bytes, encode(&owned, format).unwrap());
        }
        let views = [view, view];
        let batch = encode_view::<WindowUpdates, _>(&views[..], Format::Json).unwrap();
        let mut out = Vec::new();
        assert_eq!(decode_live_updates(&batch, &mut out).unwrap(), 2);
        assert_eq!(out, vec![owned.clone(), owned]);
    }

    #[test]
    fn the_state_travels_when_present_and_json_leaves_it_out_when_absent() {
        let mut sketch = crate::sketch::Sketch::new(crate::sketch::SketchSpec::VALUES);
        sketch.record(Some(2.5), None);
        let mut with_state = update(0, 1);
        with_state.state = Some(sketch.to_state());
        for format in [Format::Json, Format::Binary] {
            for message in [update(0, 1), with_state.clone()] {
                let bytes = encode(&message, format).unwrap();
                assert_eq!(
                    decode::<WindowUpdate>(&bytes).unwrap(),
                    message,
                    "{format:?}"
                );
            }
        }
        let json = |m: &WindowUpdate| String::from_utf8(encode(m, Format::Json).unwrap()).unwrap();
        assert!(!json(&update(0, 1)).contains("state"));
        assert!(json(&with_state).contains(&format!(r#""state":"{}""#, sketch.to_state())));
        assert_eq!(with_state.sketch().unwrap().unwrap(), sketch);
        assert!(update(0, 1).sketch().is_none());
    }

    #[test]
    fn live_messages_decode_in_both_forms() {
        let mut out = Vec::new();
        let single = encode(&update(0, 1), Format::Json).unwrap();
        assert_eq!(decode_live_updates(&single, &mut out).unwrap(), 1);
        let batch = WindowUpdates(vec![update(1_000, 2), update(2_000, 3)]);
        let bytes = encode(&batch, Format::Json).unwrap();
        assert_eq!(decode_live_updates(&bytes, &mut out).unwrap(), 2);
        assert_eq!(out, vec![update(0, 1), update(1_000, 2), update(2_000, 3)]);
        let binary = encode(&update(5_000, 4), Format::Binary).unwrap();
        assert_eq!(decode_live_updates(&binary, &mut out).unwrap(), 1);
        assert_eq!(out[3], update(5_000, 4));
    }

    #[test]
    fn undecodable_live_messages_are_errors() {
        let mut out = Vec::new();
        assert!(decode_live_updates(b"RD", &mut out).is_err());
        let mut bad = encode(&update(0, 1), Format::Json).unwrap();
        bad.truncate(bad.len() - 3);
        assert!(decode_live_updates(&bad, &mut out).is_err());
        let status = PartitionStatus {
            partition: 0,
            owner: "a".into(),
            watermark: None,
            lag_messages: 0,
            reported_at: 0,
            closed_through: None,
        };
        let other = encode(&status, Format::Json).unwrap();
        assert!(decode_live_updates(&other, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn body_errors_keep_their_cause() {
        use std::error::Error as _;
        let mut bad = encode(&update(0, 1), Format::Json).unwrap();
        bad.truncate(bad.len() - 3);
        let err = decode::<WindowUpdate>(&bad).unwrap_err();
        assert!(
            matches!(&err, WireError::Body(BodyError::Json(json)) if json.is_eof()),
            "{err:?}"
        );
        assert!(err.source().is_some());
        assert!(
            err.to_string()
                .starts_with("invalid message body: EOF while parsing"),
            "{err}"
        );
        let mut trailing = encode(&update(0, 1), Format::Binary).unwrap();
        trailing.push(0);
        assert_eq!(
            decode::<WindowUpdate>(&trailing),
            Err(WireError::Body(BodyError::TrailingBytes(1)))
        );
    }
}
