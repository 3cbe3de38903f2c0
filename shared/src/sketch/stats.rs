//! The statistics a window serves.

use serde::{Deserialize, Serialize};

/// Served statistics of a window; `None` where the stat does not apply (for example `sum` of a
/// count-only metric) or is unavailable (see [`Sketch::merge`](super::Sketch::merge)).
///
/// - `count`: events, exact.
/// - `sum`: exact sum of the recorded values, correctly rounded (`Some(0.0)` for a metric with a
///   value field when no event carried a value).
/// - `min`, `max`, `avg` (= `sum` / number of values): exact; `None` without values.
/// - `p50` … `p99`: t-digest estimates; `None` without values.
/// - `unique`: HyperLogLog estimate of distinct unique keys, rounded, never above `count`
///   (`Some(0)` for a metric with a unique key when no event carried one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct Stats {
    /// Number of events.
    pub count: u64,
    /// Sum of the values.
    pub sum: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Mean of the values.
    pub avg: Option<f64>,
    /// Median estimate.
    pub p50: Option<f64>,
    /// 90th percentile estimate.
    pub p90: Option<f64>,
    /// 95th percentile estimate.
    pub p95: Option<f64>,
    /// 99th percentile estimate.
    pub p99: Option<f64>,
    /// Estimated number of distinct unique keys.
    pub unique: Option<u64>,
}
