//! The raw-event archive's chunk format (stream `RTDASH_EVENTS`, subjects
//! `rtdash.events.<tenant>`): one message holds NDJSON, one seed-shaped event per line, either
//! as is or compressed as a single zstd frame.
//!
//! A compressed chunk also carries the header `Content-Encoding: zstd`
//! ([`CONTENT_ENCODING`], [`ZSTD`]), but readers need not look at headers: a zstd frame starts
//! with the magic bytes `28 B5 2F FD`, which no NDJSON chunk can start with (`0xB5` is not a
//! valid first byte of UTF-8), so [`decode_chunk`] tells the two apart from the payload alone
//! and reads chunks written before compression existed unchanged.

use std::borrow::Cow;
use std::io::Read;

/// Header naming a compressed chunk's encoding.
pub const CONTENT_ENCODING: &str = "Content-Encoding";
/// [`CONTENT_ENCODING`] value of a zstd-compressed chunk.
pub const ZSTD: &str = "zstd";
/// The first bytes of every zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Default bound on a decoded chunk (the agent's chunks are at most 16 MiB plus one event).
pub const MAX_DECODED_BYTES: usize = 32 * 1024 * 1024;

/// Why a chunk could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The zstd frame is damaged or truncated.
    #[error("archive chunk is not a valid zstd frame: {0}")]
    Invalid(#[from] std::io::Error),
    /// The chunk decodes to more than the bound given.
    #[error("archive chunk decodes to more than {0} bytes")]
    TooLarge(usize),
}

/// Whether `payload` is a zstd-compressed chunk.
pub fn is_compressed(payload: &[u8]) -> bool {
    payload.starts_with(&ZSTD_MAGIC)
}

/// The NDJSON of a chunk: `payload` itself when it is not compressed, else its zstd frame
/// decoded, at most `max_bytes` long.
pub fn decode_chunk(payload: &[u8], max_bytes: usize) -> Result<Cow<'_, [u8]>, ChunkError> {
    if !is_compressed(payload) {
        return Ok(Cow::Borrowed(payload));
    }
    let mut decoder = zstd::stream::read::Decoder::with_buffer(payload)?;
    let mut out = Vec::with_capacity(payload.len().saturating_mul(8).min(max_bytes));
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    (&mut decoder).take(limit).read_to_end(&mut out)?;
    if out.len() > max_bytes {
        return Err(ChunkError::TooLarge(max_bytes));
    }
    Ok(Cow::Owned(out))
}

/// Compresses NDJSON into a chunk, reusing one zstd context (creating a context costs more
/// than compressing a small chunk).
pub struct ChunkCompressor {
    inner: zstd::bulk::Compressor<'static>,
}

impl std::fmt::Debug for ChunkCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCompressor").finish_non_exhaustive()
    }
}

impl ChunkCompressor {
    /// A compressor at zstd `level` (1 is fast and already shrinks the agent's NDJSON about
    /// tenfold; negative levels are faster still).
    pub fn new(level: i32) -> std::io::Result<Self> {
        Ok(Self {
            inner: zstd::bulk::Compressor::new(level)?,
        })
    }

    /// `ndjson` as one zstd frame (with its content size, so readers can size their buffer),
    /// or `None` when compressing did not make it smaller (then store it as is).
    pub fn compress(&mut self, ndjson: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        let frame = self.inner.compress(ndjson)?;
        Ok((frame.len() < ndjson.len()).then_some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndjson(events: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..events {
            out.extend_from_slice(
                format!(
                    "{{\"tenant_id\":\"t1\",\"source\":\"s\",\"event_type\":\"e{}\",\"occurred_at\":\"2024-01-15T14:05:30Z\"}}\n",
                    i % 5
                )
                .as_bytes(),
            );
        }
        out
    }

    #[test]
    fn plain_chunks_are_read_as_they_are() {
        let plain = ndjson(3);
        let decoded = decode_chunk(&plain, MAX_DECODED_BYTES).expect("plain");
        assert!(matches!(decoded, Cow::Borrowed(_)));
        assert_eq!(&*decoded, &plain[..]);
    }

    #[test]
    fn compressed_chunks_round_trip_and_are_smaller() {
        let plain = ndjson(1000);
        let mut compressor = ChunkCompressor::new(1).expect("context");
        let frame = compressor
            .compress(&plain)
            .expect("compress")
            .expect("smaller");
        assert!(is_compressed(&frame));
        assert!(
            frame.len() * 5 < plain.len(),
            "{} of {}",
            frame.len(),
            plain.len()
        );
        let decoded = decode_chunk(&frame, MAX_DECODED_BYTES).expect("decode");
        assert_eq!(&*decoded, &plain[..]);
        // The context is reused.
        let again = compressor
            .compress(&plain)
            .expect("again")
            .expect("smaller");
        assert_eq!(
            &*decode_chunk(&again, MAX_DECODED_BYTES).expect("decode"),
            &plain[..]
        );
    }

    #[test]
    fn tiny_inputs_stay_plain() {
        let mut compressor = ChunkCompressor::new(1).expect("context");
        assert!(compressor.compress(b"{}\n").expect("compress").is_none());
    }

    #[test]
    fn oversized_and_damaged_frames_are_refused() {
        let plain = ndjson(1000);
        let frame = ChunkCompressor::new(1)
            .and_then(|mut c| c.compress(&plain))
            .expect("compress")
            .expect("smaller");
        assert!(matches!(
            decode_chunk(&frame, plain.len() - 1),
            Err(ChunkError::TooLarge(_))
        ));
        assert!(matches!(
            decode_chunk(&frame[..frame.len() / 2], MAX_DECODED_BYTES),
            Err(ChunkError::Invalid(_))
        ));
    }
}
