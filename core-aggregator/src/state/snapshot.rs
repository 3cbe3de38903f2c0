//! The serialised forms of partition state that checkpoints are made of.
//!
//! - [`PartitionMeta`]: everything but the windows (stream position, clocks, watermark
//!   sources, applied sequence numbers); small, stored in the checkpoint manifest.
//! - A *segment*: window records plus tombstones of evicted windows, for base windows and for
//!   rollup tier windows (a tier window's record holds its folded sketch: the merge of its
//!   closed base windows). A full snapshot is a segment of every window; a delta is a segment
//!   of the windows changed (and evicted) since the previous checkpoint. Restoring applies the
//!   snapshot, then each delta in order.
//!
//! Segment bytes: a format byte ([`SEGMENT_FORMAT`]) then postcard. Format 1 (before tiers)
//! has no tier lists and still decodes.

use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::Sketch;
use rtdash_shared::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// Format byte of segments written by this release.
pub const SEGMENT_FORMAT: u8 = 2;
/// Format of segments written before rollup tiers (no tier lists).
const SEGMENT_FORMAT_V1: u8 = 1;

/// A window as checkpointed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    /// Series.
    pub series: SeriesKey,
    /// Window start.
    pub start: UnixMillis,
    /// Window size.
    pub size_ms: i64,
    /// Merged sketch.
    pub sketch: Sketch,
    /// Revision.
    pub revision: u32,
    /// Closed.
    pub is_final: bool,
    /// Late events merged.
    pub late_count: u64,
}

/// Borrowed [`WindowRecord`] (same serialised form), so checkpoints serialise without copying
/// sketches.
#[derive(Serialize)]
pub(crate) struct WindowRecordRef<'a> {
    pub series: &'a SeriesKey,
    pub start: UnixMillis,
    pub size_ms: i64,
    pub sketch: &'a Sketch,
    pub revision: u32,
    pub is_final: bool,
    pub late_count: u64,
}

/// Identity of an evicted window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Series.
    pub series: SeriesKey,
    /// Window start.
    pub start: UnixMillis,
    /// Window size.
    pub size_ms: i64,
}

/// A decoded segment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Base windows (new versions replace older ones).
    pub windows: Vec<WindowRecord>,
    /// Base windows evicted since the previous segment.
    pub tombstones: Vec<KeyRecord>,
    /// Tier windows, their sketch the folded one (new versions replace older ones).
    pub tiers: Vec<WindowRecord>,
    /// Tier windows evicted since the previous segment.
    pub tier_tombstones: Vec<KeyRecord>,
}

/// A format 1 segment.
#[derive(Deserialize)]
struct SegmentV1 {
    windows: Vec<WindowRecord>,
    tombstones: Vec<KeyRecord>,
}

/// Why segment bytes do not decode.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// No bytes at all.
    #[error("empty segment")]
    Empty,
    /// Written by a newer release.
    #[error("unknown segment format {0}")]
    Format(u8),
    /// The body does not decode.
    #[error("invalid segment: {0}")]
    Body(#[from] postcard::Error),
    /// Bytes left after the segment.
    #[error("{0} trailing bytes after the segment")]
    Trailing(usize),
}

#[derive(Serialize)]
pub(crate) struct SegmentRef<'a> {
    pub windows: Vec<WindowRecordRef<'a>>,
    pub tombstones: Vec<&'a KeyRecord>,
    pub tiers: Vec<WindowRecordRef<'a>>,
    pub tier_tombstones: Vec<&'a KeyRecord>,
}

impl Segment {
    /// Decodes segment bytes.
    pub fn decode(bytes: &[u8]) -> Result<Segment, SegmentError> {
        let (&format, body) = bytes.split_first().ok_or(SegmentError::Empty)?;
        let (segment, rest) = match format {
            SEGMENT_FORMAT => postcard::take_from_bytes::<Segment>(body)?,
            SEGMENT_FORMAT_V1 => {
                let (old, rest) = postcard::take_from_bytes::<SegmentV1>(body)?;
                let segment = Segment {
                    windows: old.windows,
                    tombstones: old.tombstones,
                    ..Segment::default()
                };
                (segment, rest)
            }
            other => return Err(SegmentError::Format(other)),
        };
        if !rest.is_empty() {
            return Err(SegmentError::Trailing(rest.len()));
        }
        Ok(segment)
    }
}

pub(crate) fn encode_segment(segment: &SegmentRef<'_>) -> Vec<u8> {
    // Serialising plain structs into a Vec cannot fail.
    postcard::to_extend(segment, vec![SEGMENT_FORMAT]).unwrap_or_default()
}

/// An agent's watermark as last observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Agent id.
    pub agent: String,
    /// Its highest watermark.
    pub watermark: UnixMillis,
    /// Its newest batch's `created_at`.
    pub last_seen: UnixMillis,
}

/// An agent's applied sequence numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Agent id.
    pub agent: String,
    /// Every seq below this was handled.
    pub floor: u64,
    /// Applied seqs at or above the floor.
    pub applied_above: Vec<u64>,
    /// Its newest batch's `created_at`.
    pub last_seen: UnixMillis,
}

/// Partition state except the windows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// Last stream sequence applied (0: none).
    pub stream_seq: u64,
    /// The partition clock: the newest `created_at` seen, advanced by wall time while the
    /// partition is silent.
    pub clock: Option<UnixMillis>,
    /// The newest `created_at` seen.
    pub message_clock: Option<UnixMillis>,
    /// Partition watermark.
    pub watermark: Option<UnixMillis>,
    /// Watermark sources.
    pub sources: Vec<SourceRecord>,
    /// Applied sequence numbers per agent.
    pub agents: Vec<AgentRecord>,
}
