//! The answer of a metric query (`GET /v1/metrics/{name}`), also the body of a widget's
//! snapshot: served windows, or for a grouped query one series per group, and how the
//! gateway served it (window chosen, stored resolution read). Rendered from rows by the same
//! derivation whoever asks ([`derive_answer`]).

use crate::query::{format_duration, DerivedSeries, DerivedWindow, Merged, QueryPlan};
use rtdash_shared::stat::Stat;
use rtdash_shared::time::{format_rfc3339, UnixMillis};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// One served window.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowOut {
    /// Start (RFC 3339).
    pub window_start: String,
    /// End, exclusive (RFC 3339).
    pub window_end: String,
    /// The stat's value (null when the window has none for it).
    #[schema(required = true)]
    pub value: Option<f64>,
    /// Highest revision.
    pub revision: u32,
    /// Closed.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Late events merged.
    pub late_count: u64,
    /// Latest version (RFC 3339).
    pub updated_at: String,
}

impl From<&DerivedWindow> for WindowOut {
    fn from(window: &DerivedWindow) -> Self {
        Self {
            window_start: format_rfc3339(window.window_start),
            window_end: format_rfc3339(window.window_end),
            value: window.value,
            revision: window.revision,
            is_final: window.is_final,
            late_count: window.late_count,
            updated_at: format_rfc3339(window.updated_at),
        }
    }
}

/// One series of a grouped answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesOut {
    /// The grouped dimensions' values (null: events without that dimension); `{}` for
    /// `other`.
    pub dimensions: BTreeMap<String, Option<String>>,
    /// Whether this is the merge of every group beyond `limit`.
    pub other: bool,
    /// The stat over the whole range (what the series are ordered by).
    #[schema(required = true)]
    pub value: Option<f64>,
    /// Its windows, by start.
    pub windows: Vec<WindowOut>,
}

impl From<&DerivedSeries> for SeriesOut {
    fn from(series: &DerivedSeries) -> Self {
        Self {
            dimensions: series.dimensions.clone(),
            other: series.other,
            value: series.value,
            windows: series.windows.iter().map(WindowOut::from).collect(),
        }
    }
}

/// The answer of a metric query.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricWindows {
    /// Metric.
    pub metric_name: String,
    /// Stat served.
    pub stat: Stat,
    /// Window served (the one `window=auto` chose, when asked so).
    pub window: String,
    /// Whether `window=auto` chose the window.
    pub window_auto: bool,
    /// The stored resolution read: the metric's window or a rollup tier's.
    pub source_window: String,
    /// Filter applied.
    pub dimensions: BTreeMap<String, String>,
    /// Grouped by these dimensions (absent when not grouped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// Windows with data, by start (empty for a grouped answer: see `series`).
    pub windows: Vec<WindowOut>,
    /// Grouped answers: the top `limit` series by the stat over the range, then `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<SeriesOut>>,
}

/// What was derived for a plan: windows, or series when grouped.
#[derive(Clone, Debug, PartialEq)]
pub enum Derived {
    /// One series.
    Windows(Vec<DerivedWindow>),
    /// One per group, then `other`.
    Series(Vec<DerivedSeries>),
}

/// Derives `plan`'s answer from its rows, folded and merged.
pub fn derive_answer(
    plan: &QueryPlan,
    merged: Merged,
    now: UnixMillis,
    closed_through: Option<UnixMillis>,
) -> Derived {
    if plan.is_grouped() {
        Derived::Series(merged.series(plan, now, closed_through))
    } else {
        Derived::Windows(merged.windows(plan, now, closed_through))
    }
}

impl MetricWindows {
    /// The answer of `plan` from what was derived; `dimensions` is the filter as asked.
    pub fn new(
        plan: &QueryPlan,
        dimensions: BTreeMap<String, String>,
        window_auto: bool,
        derived: &Derived,
    ) -> Self {
        let (windows, series) = match derived {
            Derived::Windows(windows) => (windows.iter().map(WindowOut::from).collect(), None),
            Derived::Series(series) => (
                Vec::new(),
                Some(series.iter().map(SeriesOut::from).collect()),
            ),
        };
        Self {
            metric_name: plan.metric.clone(),
            stat: plan.stat,
            window: format_duration(plan.window_ms),
            window_auto,
            source_window: format_duration(plan.source_window_ms),
            dimensions,
            group_by: plan.group_by.clone(),
            windows,
            series,
        }
    }
}
