//! The built-in metrics: the `events` metric every metric set includes, and the pipeline's own
//! metrics computed by the edge agents and aggregators rather than from definitions.

use super::definition::{
    MetricDefinition, ANY_EVENT_TYPE, DEFAULT_MAX_SERIES, DEFAULT_WINDOW_SECS,
};

/// Name of the built-in metric that counts every event by `event_type` and `source`.
pub const BUILTIN_EVENTS_METRIC: &str = "events";
/// Built-in pipeline metric computed by every edge agent (not from metric definitions): per
/// tenant, `source` and window of receive time, one value per accepted event, 1 when it
/// arrived more than [`PIPELINE_LATE_AFTER_MS`] after its `occurred_at`, else 0; its `avg` is
/// the share of late events, its `sum` their number.
pub const PIPELINE_LATE_METRIC: &str = "pipeline_late";
/// Built-in pipeline metric computed by every edge agent: per tenant, `source` and window of
/// receive time, one value per item, 1 when it was rejected (dead-lettered), else 0; its
/// `avg` is the dead-letter rate.
pub const PIPELINE_DLQ_METRIC: &str = "pipeline_dlq";
/// Built-in pipeline metric computed by every edge agent, for the data-quality page: per
/// tenant, `source`, `event_type` and `outcome`, and window of receive time, one value 1 per
/// late event (outcome [`PIPELINE_QUALITY_LATE`], late as for [`PIPELINE_LATE_METRIC`]) and
/// per rejected item (outcome its reason code, [`crate::event::RejectCode`]); its `count` is
/// their number. A rejected item's `source` and `event_type` are read leniently from it
/// (`_unknown` when absent). Bounded: outcomes are a fixed set of codes.
pub const PIPELINE_QUALITY_METRIC: &str = "pipeline_quality";
/// The `outcome` of [`PIPELINE_QUALITY_METRIC`] for a late event.
pub const PIPELINE_QUALITY_LATE: &str = "late";
/// Built-in pipeline series of each aggregator partition (tenant
/// [`crate::names::PIPELINE_TENANT`], dimension `partition`): messages not yet processed, as
/// reported every status interval. Evaluated by alert rules, not stored.
pub const PIPELINE_CONSUMER_LAG_METRIC: &str = "pipeline_consumer_lag";
/// Built-in pipeline series of each aggregator partition: how far the partition watermark is
/// behind the aggregator's clock, in milliseconds. Evaluated by alert rules, not stored.
pub const PIPELINE_WATERMARK_DELAY_METRIC: &str = "pipeline_watermark_delay_ms";
/// An event is late for [`PIPELINE_LATE_METRIC`] when it arrives more than this after its
/// `occurred_at` (the seed's 60 s).
pub const PIPELINE_LATE_AFTER_MS: i64 = 60_000;
/// Window of the edge agents' pipeline metrics, in seconds.
pub const PIPELINE_WINDOW_SECS: u32 = 10;

impl MetricDefinition {
    /// The built-in metric counting every event by `event_type` and `source`, with rollups by
    /// each alone and in total, so a new tenant sees data at once.
    pub fn builtin_events() -> Self {
        Self {
            name: BUILTIN_EVENTS_METRIC.to_owned(),
            tenant_id: None,
            event_type: ANY_EVENT_TYPE.to_owned(),
            field: None,
            unique: None,
            dimensions: vec!["event_type".to_owned(), "source".to_owned()],
            rollups: Some(vec![
                vec!["event_type".to_owned()],
                vec!["source".to_owned()],
                Vec::new(),
            ]),
            window_secs: DEFAULT_WINDOW_SECS,
            max_series_per_window: DEFAULT_MAX_SERIES,
            description: Some("Every event, by event type and source (built in)".to_owned()),
        }
    }
}
