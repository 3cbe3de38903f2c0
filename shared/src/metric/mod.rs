//! Metric definitions: which events feed which metric, grouped by which dimensions.
//!
//! ```toml
//! [[metric]]
//! name = "checkout_amount"
//! event_type = "payment_completed"
//! field = "amount_usd"          # numeric property: sum, min, max, avg, percentiles
//! unique = "user_id"            # property whose distinct values are counted
//! dimensions = ["region", "plan"]
//! rollups = [["region"], []]    # dimension subsets also kept (the full set always is)
//! ```
//!
//! `dimensions` may name the event's top-level `source` and `event_type` as well as
//! properties. An event matches a metric when its `event_type` equals the metric's (or the
//! metric's is `*`), its tenant equals the metric's `tenant_id` (or the metric applies to every
//! tenant), and, for a metric with a `field`, the event carries that field as a number (events
//! without it are not part of the metric: an average over values that were never sent would
//! be wrong).
//!
//! Rollups: every series is kept for the full dimension set and for each rollup. The default
//! rollups are the full set and the empty set (the metric's total). Statistics that cannot be
//! added up (unique, percentiles) are only exact for the dimension sets actually kept.
//!
//! [`MetricDefinition`] is what users write and its validation (`definition.rs`); the
//! built-in metrics are named in `builtin.rs`; [`MetricSet`] compiles definitions for matching
//! events on the hot path (`set.rs`).

mod builtin;
mod definition;
mod set;

pub use builtin::{
    BUILTIN_EVENTS_METRIC, PIPELINE_CONSUMER_LAG_METRIC, PIPELINE_DLQ_METRIC,
    PIPELINE_LATE_AFTER_MS, PIPELINE_LATE_METRIC, PIPELINE_QUALITY_LATE, PIPELINE_QUALITY_METRIC,
    PIPELINE_WATERMARK_DELAY_METRIC, PIPELINE_WINDOW_SECS,
};
pub use definition::{
    MetricDefError, MetricDefinition, MetricFile, ANY_EVENT_TYPE, DEFAULT_MAX_SERIES,
    DEFAULT_WINDOW_SECS, MAX_DIMENSIONS, MAX_ROLLUPS, OVERFLOW_VALUE,
};
pub(crate) use set::{property, DimensionSource};
pub use set::{CompiledMetric, MetricSet};
