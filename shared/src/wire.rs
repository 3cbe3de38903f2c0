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

use crate::messages::{DeadLetter, LateRecord, PartialBatch, PartitionStatus, WindowUpdate};
use serde::de::DeserializeOwned;
use serde::Serialize;

const MAGIC: [u8; 2] = *b"RD";
/// Envelope version written by this release.
pub const ENVELOPE_VERSION: u8 = 1;
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
impl WireMessage for crate::alert::AlertTransition {
    const KIND: MessageKind = MessageKind::AlertTransition;
}
impl WireMessage for PartitionStatus {
    const KIND: MessageKind = MessageKind::PartitionStatus;
}

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header.
    #[error("message truncated: {0} bytes, the header alone is 5")]
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
    Body(String),
    /// Encoding failed (a value serde could not represent).
    #[error("could not encode message: {0}")]
    Encode(String),
}

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
            .map_err(|err| WireError::Encode(err.to_string()))?,
        Format::Json => serde_json::to_writer(&mut out, message)
            .map_err(|err| WireError::Encode(err.to_string()))?,
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
    let (kind, format) = peek_kind(bytes)?;
    if kind != T::KIND as u8 {
        return Err(WireError::WrongKind {
            expected: T::KIND as u8,
            got: kind,
        });
    }
    let body = &bytes[HEADER_LEN..];
    if body.len() > MAX_BODY_BYTES {
        return Err(WireError::TooLarge(body.len()));
    }
    match format {
        Format::Binary => {
            let (value, rest) = postcard::take_from_bytes::<T>(body)
                .map_err(|err| WireError::Body(err.to_string()))?;
            if !rest.is_empty() {
                return Err(WireError::Body(format!("{} trailing bytes", rest.len())));
            }
            Ok(value)
        }
        Format::Json => {
            serde_json::from_slice(body).map_err(|err| WireError::Body(err.to_string()))
        }
    }
}
