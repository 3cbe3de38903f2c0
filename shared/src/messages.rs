//! Messages that travel between rtdash processes. Encode and decode them with [`crate::wire`].

use crate::series::SeriesKey;
use crate::sketch::{Sketch, StateDecodeError, Stats};
use crate::time::UnixMillis;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
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
///
/// The window's length (`window_end - window_start`) tells a metric's base windows from its
/// rollup tiers' (an hour, a day...): both travel on the same subject.
#[derive(Clone, Debug, PartialEq, Deserialize)]
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
    /// The window's mergeable sketch ([`Sketch::to_state`]), present when the metric has
    /// values or a unique key, so that percentiles and unique counts can be merged across
    /// series and windows; absent for count-only metrics (their stats merge exactly). JSON
    /// leaves the field out when absent; the binary form always carries the option.
    #[serde(default)]
    pub state: Option<String>,
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

    /// The sketch carried in [`WindowUpdate::state`], if any.
    pub fn sketch(&self) -> Option<Result<Sketch, StateDecodeError>> {
        self.state.as_deref().map(Sketch::from_state)
    }

    fn parts(&self) -> UpdateParts<'_> {
        UpdateParts {
            tenant_id: &self.tenant_id,
            metric: &self.metric,
            window_start: self.window_start,
            window_end: self.window_end,
            stats: &self.stats,
            revision: self.revision,
            is_final: self.is_final,
            late_count: self.late_count,
            updated_at: self.updated_at,
            state: self.state.as_deref(),
        }
    }
}

impl Serialize for WindowUpdate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_update(serializer, &self.dimensions, self.parts())
    }
}

/// A borrowed [`WindowUpdate`]: serializes exactly like one (same fields, names and order),
/// for publishers that hold the parts elsewhere and need not copy every string of a version
/// just to encode it. Encode it with [`crate::wire::encode_view`] as a [`WindowUpdate`] or,
/// in a slice, as a [`WindowUpdates`] batch.
#[derive(Clone, Copy, Debug)]
pub struct WindowUpdateView<'a> {
    /// Tenant.
    pub tenant_id: &'a str,
    /// Metric name.
    pub metric: &'a str,
    /// Dimension values sorted by name, as in [`SeriesKey::dims`]; written as a JSON object
    /// like [`WindowUpdate::dimensions`].
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
    pub is_final: bool,
    /// Events merged after the window closed.
    pub late_count: u64,
    /// When this version was produced.
    pub updated_at: UnixMillis,
    /// See [`WindowUpdate::state`].
    pub state: Option<&'a str>,
}

impl Serialize for WindowUpdateView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_update(
            serializer,
            DimensionsAsMap(self.dimensions),
            UpdateParts {
                tenant_id: self.tenant_id,
                metric: self.metric,
                window_start: self.window_start,
                window_end: self.window_end,
                stats: self.stats,
                revision: self.revision,
                is_final: self.is_final,
                late_count: self.late_count,
                updated_at: self.updated_at,
                state: self.state,
            },
        )
    }
}

/// The fields of a window update but its dimensions.
struct UpdateParts<'a> {
    tenant_id: &'a str,
    metric: &'a str,
    window_start: UnixMillis,
    window_end: UnixMillis,
    stats: &'a Stats,
    revision: u32,
    is_final: bool,
    late_count: u64,
    updated_at: UnixMillis,
    state: Option<&'a str>,
}

/// One serialisation for [`WindowUpdate`] and [`WindowUpdateView`], in the field order the
/// derived `Deserialize` reads. A human-readable format (JSON) leaves `state` out when it is
/// absent; a binary one (postcard, which has no field names to miss) always writes the option.
fn serialize_update<S: Serializer, D: Serialize>(
    serializer: S,
    dimensions: D,
    parts: UpdateParts<'_>,
) -> Result<S::Ok, S::Error> {
    let with_state = parts.state.is_some() || !serializer.is_human_readable();
    let mut out = serializer.serialize_struct("WindowUpdate", 10 + usize::from(with_state))?;
    out.serialize_field("tenant_id", parts.tenant_id)?;
    out.serialize_field("metric", parts.metric)?;
    out.serialize_field("dimensions", &dimensions)?;
    out.serialize_field("window_start", &parts.window_start)?;
    out.serialize_field("window_end", &parts.window_end)?;
    out.serialize_field("stats", parts.stats)?;
    out.serialize_field("revision", &parts.revision)?;
    out.serialize_field("final", &parts.is_final)?;
    out.serialize_field("late_count", &parts.late_count)?;
    out.serialize_field("updated_at", &parts.updated_at)?;
    if with_state {
        out.serialize_field("state", &parts.state)?;
    } else {
        out.skip_field("state")?;
    }
    out.end()
}

/// Dimensions sorted by name, serialized as a map (a JSON object).
struct DimensionsAsMap<'a>(&'a [(String, Option<String>)]);

impl Serialize for DimensionsAsMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, value)| (name, value)))
    }
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
    /// The item's `source`, when it names one (see [`crate::event::ItemHints`]).
    #[serde(default)]
    pub source: Option<String>,
    /// The item's `event_type`, when it names one.
    #[serde(default)]
    pub event_type: Option<String>,
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
            source: None,
            event_type: None,
        }
    }

    /// The same dead letter naming the item's `source` and `event_type`.
    pub fn with_origin(mut self, source: Option<String>, event_type: Option<String>) -> Self {
        self.source = source;
        self.event_type = event_type;
        self
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
