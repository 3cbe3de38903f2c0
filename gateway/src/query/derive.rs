//! Deriving served windows from stored rows: exact when a row answers a window alone,
//! combined (count, sum, min, max, avg) across series and base windows otherwise, as the
//! [`QueryPlan`] decided. Pure: no I/O.

use super::plan::{series_matches, QueryPlan};
use rtdash_shared::sketch::Stats;
use rtdash_shared::stat::Stat;
use rtdash_shared::time::UnixMillis;
use std::collections::BTreeMap;

/// One stored window of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Window start.
    pub window_start: UnixMillis,
    /// Window end (exclusive).
    pub window_end: UnixMillis,
    /// The series' dimension values as canonical JSON.
    pub series: String,
    /// Statistics.
    pub stats: Stats,
    /// Revision.
    pub revision: u32,
    /// Closed.
    pub is_final: bool,
    /// Late events merged.
    pub late_count: u64,
    /// When this version was produced.
    pub updated_at: UnixMillis,
}

impl WindowRow {
    /// The row of a live update.
    pub fn from_update(update: &rtdash_shared::messages::WindowUpdate) -> Self {
        let series = serde_json::to_string(&update.dimensions).unwrap_or_else(|_| "{}".into());
        Self {
            window_start: update.window_start,
            window_end: update.window_end,
            series,
            stats: update.stats.clone(),
            revision: update.revision,
            is_final: update.is_final,
            late_count: update.late_count,
            updated_at: update.updated_at,
        }
    }

    /// Whether this version is at least as new as `other` (same series and window).
    pub fn supersedes(&self, other: &WindowRow) -> bool {
        (self.revision, self.is_final, self.updated_at)
            >= (other.revision, other.is_final, other.updated_at)
    }
}

/// One served window.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivedWindow {
    /// Window start.
    pub window_start: UnixMillis,
    /// Window end.
    pub window_end: UnixMillis,
    /// The stat's value (`None`: rows exist but the stat has no value).
    pub value: Option<f64>,
    /// Highest revision among the rows.
    pub revision: u32,
    /// Every row final and the window over.
    pub is_final: bool,
    /// Late events merged.
    pub late_count: u64,
    /// Latest row version.
    pub updated_at: UnixMillis,
}

/// Folds rows into one served window.
#[derive(Clone, Debug, Default)]
struct Acc {
    rows: usize,
    first: Option<Stats>,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    revision: u32,
    all_final: bool,
    last_final_end: UnixMillis,
    late_count: u64,
    updated_at: UnixMillis,
}

impl Acc {
    fn add(&mut self, row: &WindowRow) {
        if self.rows == 0 {
            self.first = Some(row.stats.clone());
            self.all_final = true;
        }
        self.rows += 1;
        let stats = &row.stats;
        self.count += stats.count;
        self.sum = add_opt(self.sum, stats.sum, |a, b| a + b);
        self.min = add_opt(self.min, stats.min, f64::min);
        self.max = add_opt(self.max, stats.max, f64::max);
        self.revision = self.revision.max(row.revision);
        self.all_final &= row.is_final;
        if row.is_final {
            self.last_final_end = self.last_final_end.max(row.window_end);
        }
        self.late_count += row.late_count;
        self.updated_at = self.updated_at.max(row.updated_at);
    }

    fn value(&self, stat: Stat, single_base_window: bool) -> Option<f64> {
        if self.rows == 1 && single_base_window {
            return self.first.as_ref().and_then(|stats| stat.value(stats));
        }
        match stat {
            Stat::Count => Some(self.count as f64),
            Stat::Sum => self.sum,
            Stat::Min => self.min,
            Stat::Max => self.max,
            Stat::Avg => match self.sum {
                Some(sum) if self.count > 0 => Some(sum / self.count as f64),
                _ => None,
            },
            // The plan only combines combinable stats; a single row is exact.
            _ => None,
        }
    }
}

fn add_opt(a: Option<f64>, b: Option<f64>, f: impl Fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// How long after its end a combined window counts as final even if its last base window
/// never got a row (no events in it).
const FINAL_GRACE_MS: i64 = 5 * 60_000;

/// Derives the served windows of `plan` from rows of its dimension set, sorted by start.
/// Rows not wanted by the plan are skipped.
pub fn derive<'r>(
    plan: &QueryPlan,
    rows: impl IntoIterator<Item = &'r WindowRow>,
    now: UnixMillis,
    closed_through: Option<UnixMillis>,
) -> Vec<DerivedWindow> {
    let mut buckets: BTreeMap<UnixMillis, Acc> = BTreeMap::new();
    for row in rows {
        if plan.exact_series.is_none() && !series_matches(&row.series, &plan.filter) {
            continue;
        }
        if let Some(exact) = &plan.exact_series {
            if exact != &row.series {
                continue;
            }
        }
        buckets
            .entry(plan.bucket_of(row.window_start))
            .or_default()
            .add(row);
    }
    buckets
        .into_iter()
        .map(|(start, acc)| derive_one(plan, start, &acc, now, closed_through))
        .collect()
}

/// `closed_through`: every window ending at or before it is closed in every partition (from
/// the aggregators' status reports), so a combined window ending there is complete even when
/// its last base windows have no row.
fn derive_one(
    plan: &QueryPlan,
    start: UnixMillis,
    acc: &Acc,
    now: UnixMillis,
    closed_through: Option<UnixMillis>,
) -> DerivedWindow {
    let end = start + plan.window_ms;
    let single = plan.window_ms == plan.base_window_ms;
    let complete = single
        || acc.last_final_end >= end
        || closed_through.is_some_and(|closed| end <= closed)
        || end + FINAL_GRACE_MS <= now;
    DerivedWindow {
        window_start: start,
        window_end: end,
        value: acc.value(plan.stat, single),
        revision: acc.revision,
        is_final: acc.all_final && complete,
        late_count: acc.late_count,
        updated_at: acc.updated_at,
    }
}

/// Derives one served window (starting at `bucket`) from rows the caller selected for
/// `plan` (right dimension set, matching the filter, inside the bucket). `None` when there
/// are none.
pub fn derive_bucket<'r>(
    plan: &QueryPlan,
    bucket: UnixMillis,
    rows: impl IntoIterator<Item = &'r WindowRow>,
    now: UnixMillis,
) -> Option<DerivedWindow> {
    let mut acc = Acc::default();
    for row in rows {
        acc.add(row);
    }
    (acc.rows > 0).then(|| derive_one(plan, bucket, &acc, now, None))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{amount, filter};
    use crate::query::plan::plan;

    fn row(start: i64, series: &str, count: u64, sum: f64, min: f64, max: f64) -> WindowRow {
        WindowRow {
            window_start: start,
            window_end: start + 60_000,
            series: series.to_owned(),
            stats: Stats {
                count,
                sum: Some(sum),
                min: Some(min),
                max: Some(max),
                avg: Some(sum / count as f64),
                p50: Some(1.0),
                p90: None,
                p95: None,
                p99: Some(9.0),
                unique: Some(3),
            },
            revision: 0,
            is_final: true,
            late_count: 0,
            updated_at: start + 61_000,
        }
    }

    #[test]
    fn combining_across_series_and_windows() {
        let plan = plan(&amount(), "t", &filter(&[("plan", "pro")]), Stat::Avg, None).unwrap();
        assert_eq!(plan.dim_set, "plan,region");
        assert!(plan.exact_series.is_none());
        let rows = vec![
            row(0, r#"{"plan":"pro","region":"eu"}"#, 2, 10.0, 1.0, 9.0),
            row(0, r#"{"plan":"pro","region":"us"}"#, 3, 20.0, 0.5, 7.0),
            row(0, r#"{"plan":"free","region":"us"}"#, 100, 1.0, 0.0, 100.0),
            row(60_000, r#"{"plan":"pro","region":"us"}"#, 1, 4.0, 4.0, 4.0),
        ];
        let got = derive(&plan, &rows, 10_000_000, None);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].value, Some(30.0 / 5.0));
        assert_eq!(got[1].value, Some(4.0));
        let mut five = plan.clone();
        five.window_ms = 300_000;
        for (stat, want) in [
            (Stat::Count, 6.0),
            (Stat::Sum, 34.0),
            (Stat::Min, 0.5),
            (Stat::Max, 9.0),
            (Stat::Avg, 34.0 / 6.0),
        ] {
            five.stat = stat;
            let got = derive(&five, &rows, 10_000_000, None);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].window_end, 300_000);
            assert_eq!(got[0].value, Some(want), "{stat}");
            assert!(got[0].is_final);
        }
    }

    #[test]
    fn a_combined_window_without_rows_at_its_end_is_final_once_closed_everywhere() {
        let mut five = plan(
            &amount(),
            "t",
            &filter(&[("plan", "pro")]),
            Stat::Count,
            None,
        )
        .unwrap();
        five.window_ms = 300_000;
        // Only the first minute of [0, 5 min) has a row; it is final.
        let rows = vec![row(0, r#"{"plan":"pro","region":"eu"}"#, 2, 10.0, 1.0, 9.0)];
        assert!(rows[0].is_final);
        let now = 300_000 + 1_000;
        assert!(
            !derive(&five, &rows, now, None)[0].is_final,
            "not known closed"
        );
        assert!(!derive(&five, &rows, now, Some(299_999))[0].is_final);
        assert!(derive(&five, &rows, now, Some(300_000))[0].is_final);
        assert!(derive(&five, &rows, 300_000 + FINAL_GRACE_MS, None)[0].is_final);
    }
}
