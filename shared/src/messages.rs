//! Messages that travel between rtdash processes. Encode and decode them with [`crate::wire`].

use crate::series::SeriesKey;
use crate::sketch::{Sketch, Stats};
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an edge agent publishes to `rtdash.partials.<partition>` every flush: the deltas of
/// every series touched since its previous flush, for one partition.
///
/// Exactly-once: `(agent_id, partition, seq)` identifies the batch (also its `Nats-Msg-Id`);
/// `seq` increases by one per batch of an agent and partition, across restarts too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartialBatch {
    /// Stable id of the publishing agent.
    pub agent_id: String,
    /// Partition of every entry.
    pub partition: u32,
    /// Sequence number of this batch for (agent, partition).
    pub seq: u64,
    /// Every batch of this (agent, partition) with a lower seq than this was acknowledged by
    /// JetStream before this one was created, so a consumer reading this batch has already
    /// seen them: it may forget per-seq bookkeeping below it.
    pub acked_below: u64,
    /// The agent's watermark: it has published all data it received with event time below it.
    pub watermark: UnixMillis,
    /// When the agent created the batch (its clock).
    pub created_at: UnixMillis,
    /// Series deltas; empty for a heartbeat.
    pub entries: Vec<PartialEntry>,
}

/// One series' delta in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartialEntry {
    /// The series.
    pub series: SeriesKey,
    /// Window start.
    pub window_start: UnixMillis,
    /// Window size in milliseconds.
    pub window_ms: i64,
    /// The delta.
    pub sketch: Sketch,
}

/// A metric window as stored and served: the core aggregator's output to QuestDB and to
/// `rtdash.live.<tenant>.<metric>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowUpdate {
    /// Tenant.
    pub tenant_id: String,
    /// Metric name.
    pub metric: String,
    /// Dimension values (absent dimensions are `null`).
    pub dimensions: BTreeMap<String, Option<String>>,
    /// Window start.
    pub window_start: UnixMillis,
    /// Window end (exclusive).
    pub window_end: UnixMillis,
    /// The statistics.
    pub stats: Stats,
    /// 0 until the window closes; each correction after that adds one.
    pub revision: u32,
    /// Whether the window has closed (its value is no longer provisional).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Events merged after the window closed.
    pub late_count: u64,
    /// When this version was produced.
    pub updated_at: UnixMillis,
}

impl WindowUpdate {
    /// The series key of this window.
    pub fn series(&self) -> SeriesKey {
        SeriesKey::new(
            self.tenant_id.clone(),
            self.metric.clone(),
            self.dimensions.clone(),
        )
    }
}

/// A borrowed [`WindowUpdate`]: serializes exactly like one (same fields, names and order),
/// for publishers that hold the parts elsewhere and need not copy every string of a version
/// just to encode it. Encode it with [`crate::wire::encode_view`] as a [`WindowUpdate`] or,
/// in a slice, as a [`WindowUpdates`] batch.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct WindowUpdateView<'a> {
    /// Tenant.
    pub tenant_id: &'a str,
    /// Metric name.
    pub metric: &'a str,
    /// Dimension values sorted by name, as in [`SeriesKey::dims`]; written as a JSON object
    /// like [`WindowUpdate::dimensions`].
    #[serde(serialize_with = "dimensions_as_map")]
    pub dimensions: &'a [(String, Option<String>)],
    /// Window start.
    pub window_start: UnixMillis,
    /// Window end (exclusive).
    pub window_end: UnixMillis,
    /// The statistics.
    pub stats: &'a Stats,
    /// 0 until the window closes; each correction after that adds one.
    pub revision: u32,
    /// Whether the window has closed.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Events merged after the window closed.
    pub late_count: u64,
    /// When this version was produced.
    pub updated_at: UnixMillis,
}

fn dimensions_as_map<S: serde::Serializer>(
    dimensions: &&[(String, Option<String>)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(dimensions.iter().map(|(name, value)| (name, value)))
}

/// Several window versions of one `(tenant, metric)` in one live message: what the core
/// aggregator publishes on `rtdash.live.<tenant>.<metric>`, one message per subject per emit
/// instead of one per window version (far fewer messages to encode, route and decode when a
/// metric has many series).
///
/// It travels in the envelope of kind [`MessageKind::WindowUpdate`](crate::wire::MessageKind)
/// with a JSON array body; a single [`WindowUpdate`] has a JSON object body. Decode live
/// messages with [`decode_live_updates`], which accepts both forms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WindowUpdates(pub Vec<WindowUpdate>);

impl crate::wire::WireMessage for WindowUpdates {
    const KIND: crate::wire::MessageKind = crate::wire::MessageKind::WindowUpdate;
}

/// Decodes a live message on `rtdash.live.<tenant>.<metric>` in either form, a single
/// [`WindowUpdate`] or a [`WindowUpdates`] batch, appending its versions to `out` (in the
/// order they were published). Returns how many were appended.
pub fn decode_live_updates(
    bytes: &[u8],
    out: &mut Vec<WindowUpdate>,
) -> Result<usize, crate::wire::WireError> {
    let (_, format) = crate::wire::peek_kind(bytes)?;
    let batch = format == crate::wire::Format::Json
        && bytes
            .get(5..)
            .and_then(|body| body.iter().find(|b| !b.is_ascii_whitespace()))
            == Some(&b'[');
    if batch {
        let WindowUpdates(updates) = crate::wire::decode::<WindowUpdates>(bytes)?;
        let n = updates.len();
        out.extend(updates);
        Ok(n)
    } else {
        out.push(crate::wire::decode::<WindowUpdate>(bytes)?);
        Ok(1)
    }
}

/// Data that reached an aggregator after its window's correction horizon: kept on
/// `rtdash.late.<tenant>` so it can be inspected and recovered by recomputation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LateRecord {
    /// The agent that sent it.
    pub agent_id: String,
    /// The batch it came in.
    pub seq: u64,
    /// The partition watermark when it arrived.
    pub watermark: UnixMillis,
    /// When the aggregator received it.
    pub received_at: UnixMillis,
    /// The delta itself.
    pub entry: PartialEntry,
}

/// Rejected input on `rtdash.dlq.<tenant>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Reason code (see [`crate::event::RejectCode`]).
    pub code: String,
    /// Human-readable reason.
    pub message: String,
    /// The input as text (lossy when it was not UTF-8), cut to the configured limit.
    pub raw: String,
    /// Whether `raw` was cut.
    pub truncated: bool,
    /// Whether the input was valid UTF-8.
    pub raw_is_utf8: bool,
    /// Position of the item in its batch, when it came in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Which component rejected it (`edge-agent:<id>`).
    pub rejected_by: String,
    /// When it was received.
    pub received_at: UnixMillis,
}

impl DeadLetter {
    /// Builds a dead letter from raw input, cutting it to `max_raw_bytes`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_input(
        code: &str,
        message: &str,
        input: &[u8],
        max_raw_bytes: usize,
        index: Option<usize>,
        rejected_by: &str,
        received_at: UnixMillis,
    ) -> Self {
        let cut = &input[..input.len().min(max_raw_bytes)];
        let raw_is_utf8 = std::str::from_utf8(input).is_ok();
        Self {
            code: code.to_owned(),
            message: message.to_owned(),
            raw: String::from_utf8_lossy(cut).into_owned(),
            truncated: cut.len() < input.len(),
            raw_is_utf8,
            index,
            rejected_by: rejected_by.to_owned(),
            received_at,
        }
    }
}

/// A partition owner's periodic report on `rtdash.status.<partition>`, so gateways can tell
/// viewers when data is behind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionStatus {
    /// Partition.
    pub partition: u32,
    /// Owning aggregator.
    pub owner: String,
    /// Partition watermark, if known.
    pub watermark: Option<UnixMillis>,
    /// Messages in the stream not yet processed.
    pub lag_messages: u64,
    /// When the report was made.
    pub reported_at: UnixMillis,
    /// Every window of this partition ending at or before this is closed (the watermark
    /// minus the allowed lateness): a window without any row up to here never gets one,
    /// except as a correction. Absent in reports of older aggregators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_through: Option<UnixMillis>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, Format};

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
        };
        for format in [Format::Json, Format::Binary] {
            let bytes = wire::encode_view::<WindowUpdate, _>(&view, format).unwrap();
            assert_eq!(bytes, wire::encode(&owned, format).unwrap());
        }
        let views = [view, view];
        let batch = wire::encode_view::<WindowUpdates, _>(&views[..], Format::Json).unwrap();
        let mut out = Vec::new();
        assert_eq!(decode_live_updates(&batch, &mut out).unwrap(), 2);
        assert_eq!(out, vec![owned.clone(), owned]);
    }

    #[test]
    fn live_messages_decode_in_both_forms() {
        let mut out = Vec::new();
        let single = wire::encode(&update(0, 1), Format::Json).unwrap();
        assert_eq!(decode_live_updates(&single, &mut out).unwrap(), 1);
        let batch = WindowUpdates(vec![update(1_000, 2), update(2_000, 3)]);
        let bytes = wire::encode(&batch, Format::Json).unwrap();
        assert_eq!(decode_live_updates(&bytes, &mut out).unwrap(), 2);
        assert_eq!(out, vec![update(0, 1), update(1_000, 2), update(2_000, 3)]);
        let binary = wire::encode(&update(5_000, 4), Format::Binary).unwrap();
        assert_eq!(decode_live_updates(&binary, &mut out).unwrap(), 1);
        assert_eq!(out[3], update(5_000, 4));
    }

    #[test]
    fn undecodable_live_messages_are_errors() {
        let mut out = Vec::new();
        assert!(decode_live_updates(b"RD", &mut out).is_err());
        let mut bad = wire::encode(&update(0, 1), Format::Json).unwrap();
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
        let other = wire::encode(&status, Format::Json).unwrap();
        assert!(decode_live_updates(&other, &mut out).is_err());
        assert!(out.is_empty());
    }
}
