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
/// messages with [`crate::wire::decode_live_updates`], which accepts both forms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WindowUpdates(pub Vec<WindowUpdate>);

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
