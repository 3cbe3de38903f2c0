//! Decoding partial batches without copying their strings.
//!
//! [`rtdash_shared::wire::decode`] builds an owned
//! [`PartialBatch`](rtdash_shared::messages::PartialBatch): six or more
//! `String`s per entry (tenant, metric, dimension names and values) that the aggregator only
//! hashes and compares before dropping them, except for the first delta of a window. On the hot
//! path that allocation traffic costs more than the merge itself, so the consumer decodes into
//! [`PartialBatchRef`], a mirror of the same serde layout whose strings borrow from the message
//! payload; a window's key is copied only when the window is created.
//!
//! The mirror must track `rtdash_shared::messages`: the round-trip tests below fail if the
//! layouts drift apart.

use rtdash_shared::messages::PartialEntry;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::Sketch;
use rtdash_shared::time::UnixMillis;
use rtdash_shared::wire::{self, MessageKind, WireError};
use serde::Deserialize;
use std::borrow::Cow;

/// A [`PartialBatch`](rtdash_shared::messages::PartialBatch) whose strings borrow from the encoded message.
#[derive(Debug, Deserialize)]
pub struct PartialBatchRef<'a> {
    /// Agent.
    #[serde(borrow)]
    pub agent_id: Cow<'a, str>,
    /// Partition.
    pub partition: u32,
    /// Batch sequence number.
    pub seq: u64,
    /// Every lower seq was acknowledged before this batch was created.
    pub acked_below: u64,
    /// The agent's watermark.
    pub watermark: UnixMillis,
    /// Agent clock at creation.
    pub created_at: UnixMillis,
    /// Entries.
    #[serde(borrow)]
    pub entries: Vec<PartialEntryRef<'a>>,
}

/// A [`PartialEntry`] whose series borrows from the encoded message.
#[derive(Debug, Deserialize)]
pub struct PartialEntryRef<'a> {
    /// Series.
    #[serde(borrow)]
    pub series: SeriesKeyRef<'a>,
    /// Window start.
    pub window_start: UnixMillis,
    /// Window size.
    pub window_ms: i64,
    /// The delta.
    pub sketch: Sketch,
}

/// A [`SeriesKey`] borrowing its strings.
#[derive(Debug, Deserialize)]
pub struct SeriesKeyRef<'a> {
    /// Tenant.
    #[serde(borrow)]
    pub tenant: Cow<'a, str>,
    /// Metric.
    #[serde(borrow)]
    pub metric: Cow<'a, str>,
    /// Dimensions (sorted by name, as the agent wrote them).
    #[serde(borrow)]
    pub dims: Vec<(Text<'a>, Option<Text<'a>>)>,
}

/// A string borrowed from the encoded message when the format allows it (postcard always,
/// JSON unless it has escapes), owned otherwise.
///
/// serde's own `Cow<str>` borrows only as a struct field marked `#[serde(borrow)]`; inside a
/// tuple or an `Option` (the dimensions) it always copies, which cost six allocations per
/// entry on the hot path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Decodes a partial batch envelope (either body format) without copying its strings.
pub fn decode_batch(bytes: &[u8]) -> Result<PartialBatchRef<'_>, WireError> {
    wire::decode_borrowed(bytes, MessageKind::PartialBatch)
}

/// The parts of a series key, owned or borrowed: what window lookups hash and compare.
pub trait SeriesParts {
    /// Tenant.
    fn tenant(&self) -> &str;
    /// Metric.
    fn metric(&self) -> &str;
    /// Number of dimensions.
    fn dim_count(&self) -> usize;
    /// Dimension `index` (name, value).
    fn dim(&self, index: usize) -> (&str, Option<&str>);
    /// The owned key (copies only when borrowed).
    fn into_key(self) -> SeriesKey;
}

impl SeriesParts for SeriesKey {
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn metric(&self) -> &str {
        &self.metric
    }
    fn dim_count(&self) -> usize {
        self.dims.len()
    }
    fn dim(&self, index: usize) -> (&str, Option<&str>) {
        let (name, value) = &self.dims[index];
        (name, value.as_deref())
    }
    fn into_key(self) -> SeriesKey {
        self
    }
}

impl SeriesParts for SeriesKeyRef<'_> {
    fn tenant(&self) -> &str {
        &self.tenant
    }
    fn metric(&self) -> &str {
        &self.metric
    }
    fn dim_count(&self) -> usize {
        self.dims.len()
    }
    fn dim(&self, index: usize) -> (&str, Option<&str>) {
        let (name, value) = &self.dims[index];
        (name, value.as_deref())
    }
    fn into_key(self) -> SeriesKey {
        // Fields as sent: the agent wrote them sorted (SeriesKey::new sorts them again).
        SeriesKey {
            tenant: self.tenant.into_owned(),
            metric: self.metric.into_owned(),
            dims: self
                .dims
                .into_iter()
                .map(|(name, value)| (name.0.into_owned(), value.map(|v| v.0.into_owned())))
                .collect(),
        }
    }
}

/// An entry in either form, as the state machine consumes it.
pub(crate) struct EntryParts<S> {
    pub series: S,
    pub window_start: UnixMillis,
    pub window_ms: i64,
    pub sketch: Sketch,
}

impl From<PartialEntry> for EntryParts<SeriesKey> {
    fn from(entry: PartialEntry) -> Self {
        Self {
            series: entry.series,
            window_start: entry.window_start,
            window_ms: entry.window_ms,
            sketch: entry.sketch,
        }
    }
}

impl<'a> From<PartialEntryRef<'a>> for EntryParts<SeriesKeyRef<'a>> {
    fn from(entry: PartialEntryRef<'a>) -> Self {
        Self {
            series: entry.series,
            window_start: entry.window_start,
            window_ms: entry.window_ms,
            sketch: entry.sketch,
        }
    }
}

impl<S: SeriesParts> EntryParts<S> {
    /// The owned entry (for late records and dead letters).
    pub fn into_entry(self) -> PartialEntry {
        PartialEntry {
            series: self.series.into_key(),
            window_start: self.window_start,
            window_ms: self.window_ms,
            sketch: self.sketch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtdash_shared::messages::PartialBatch;
    use rtdash_shared::sketch::SketchSpec;
    use rtdash_shared::wire::Format;

    fn batch() -> PartialBatch {
        let mut sketch = Sketch::new(SketchSpec::ALL);
        sketch.record(Some(2.5), Some(7));
        PartialBatch {
            agent_id: "edge-\"1\"".to_owned(),
            partition: 3,
            seq: 9,
            acked_below: 8,
            watermark: 1_000,
            created_at: 2_000,
            entries: vec![
                PartialEntry {
                    series: SeriesKey::new(
                        "acme",
                        "m",
                        [
                            ("b".to_owned(), None),
                            ("a".to_owned(), Some("x\ny".to_owned())),
                        ],
                    ),
                    window_start: 0,
                    window_ms: 1_000,
                    sketch,
                },
                PartialEntry {
                    series: SeriesKey::new("acme", "m", []),
                    window_start: 1_000,
                    window_ms: 1_000,
                    sketch: Sketch::new(SketchSpec::COUNT),
                },
            ],
        }
    }

    #[test]
    fn decodes_what_the_shared_encoder_writes_in_both_formats() {
        let original = batch();
        for format in [Format::Binary, Format::Json] {
            let bytes = wire::encode(&original, format).unwrap();
            let decoded = decode_batch(&bytes).unwrap();
            assert_eq!(decoded.agent_id, original.agent_id);
            assert_eq!(
                (decoded.partition, decoded.seq, decoded.acked_below),
                (3, 9, 8)
            );
            assert_eq!((decoded.watermark, decoded.created_at), (1_000, 2_000));
            let entries: Vec<PartialEntry> = decoded
                .entries
                .into_iter()
                .map(|e| EntryParts::from(e).into_entry())
                .collect();
            assert_eq!(entries, original.entries, "{format:?}");
        }
    }

    #[test]
    fn binary_dimensions_borrow_from_the_message() {
        let bytes = wire::encode(&batch(), Format::Binary).unwrap();
        let decoded = decode_batch(&bytes).unwrap();
        let dims = &decoded.entries[0].series.dims;
        assert_eq!(dims.len(), 2);
        for (name, value) in dims {
            assert!(matches!(name.0, Cow::Borrowed(_)));
            assert!(value
                .as_ref()
                .is_none_or(|v| matches!(v.0, Cow::Borrowed(_))));
        }
    }

    #[test]
    fn rejects_other_messages_and_garbage() {
        let status = rtdash_shared::messages::PartitionStatus {
            partition: 0,
            owner: "x".into(),
            watermark: None,
            lag_messages: 0,
            reported_at: 0,
            closed_through: None,
        };
        let bytes = wire::encode(&status, Format::Binary).unwrap();
        assert!(matches!(
            decode_batch(&bytes),
            Err(WireError::WrongKind { .. })
        ));
        let mut bytes = wire::encode(&batch(), Format::Binary).unwrap();
        bytes.truncate(bytes.len() - 3);
        assert!(decode_batch(&bytes).is_err());
        assert!(decode_batch(b"RD").is_err());
        assert!(decode_batch(b"hello world").is_err());
    }
}
