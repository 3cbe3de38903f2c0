//! Deriving served windows from stored rows, as the [`QueryPlan`] decided: a window with one
//! row is that row's numbers; a window with several (several series, or several stored
//! windows inside a coarser served one) adds counts, takes the extreme min and max, and
//! merges the rows' sketches (the `state` column) for sums, averages, percentiles and
//! distinct counts. Pure: no I/O.
//!
//! Sums come from the merged sketches' exact sums, rounded once, so a range gives the same
//! sum (and average) whichever stored resolution serves it. Rows without a state (written
//! before states were stored) still add up for sums and averages; percentiles and distinct
//! counts of a merge that includes one are `null`.

use super::fold::Merged;
use super::plan::QueryPlan;
use rtdash_shared::sketch::{Sketch, SketchSpec, Stats};
use rtdash_shared::stat::Stat;
use rtdash_shared::time::UnixMillis;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A series' dimension values (absent ones `None`).
pub type Dims = BTreeMap<String, Option<String>>;

/// One stored window of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRow {
    /// Window start.
    pub window_start: UnixMillis,
    /// Window end (exclusive).
    pub window_end: UnixMillis,
    /// The series' dimension values as canonical JSON.
    pub series: String,
    /// The same, parsed.
    pub dims: Arc<Dims>,
    /// Statistics.
    pub stats: Stats,
    /// The window's mergeable sketch, when stored (and asked for).
    pub state: Option<Arc<Sketch>>,
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
    /// The dimensions of a series' canonical JSON (empty when it does not parse).
    pub fn parse_dims(series: &str) -> Arc<Dims> {
        Arc::new(serde_json::from_str(series).unwrap_or_default())
    }

    /// The row of a live update (without a state).
    pub fn from_update(update: &rtdash_shared::messages::WindowUpdate) -> Self {
        let series = serde_json::to_string(&update.dimensions).unwrap_or_else(|_| "{}".into());
        Self {
            window_start: update.window_start,
            window_end: update.window_end,
            series,
            dims: Arc::new(update.dimensions.clone()),
            stats: update.stats.clone(),
            state: None,
            revision: update.revision,
            is_final: update.is_final,
            late_count: update.late_count,
            updated_at: update.updated_at,
        }
    }

    /// Window length.
    pub fn window_ms(&self) -> i64 {
        self.window_end - self.window_start
    }

    /// Whether this version is at least as new as `other` (same series and window).
    pub fn supersedes(&self, other: &WindowRow) -> bool {
        (self.revision, self.is_final, self.updated_at)
            >= (other.revision, other.is_final, other.updated_at)
    }

    /// Approximate bytes held by this row (for cache and memory budgets).
    pub fn heap_bytes(&self) -> usize {
        let dims: usize = self
            .dims
            .iter()
            .map(|(name, value)| 48 + name.len() + value.as_ref().map_or(0, String::len))
            .sum();
        let state = self
            .state
            .as_ref()
            .map_or(0, |s| std::mem::size_of::<Sketch>() + s.heap_bytes());
        std::mem::size_of::<Self>() + self.series.len() + dims + state
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

/// Folds rows into one served value.
#[derive(Clone, Debug, Default)]
pub(crate) struct Acc {
    rows: usize,
    first: Option<Stats>,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    /// The merge of the rows' states (when the plan needs them).
    sketch: Option<Sketch>,
    /// Some row had no state: merged percentiles and distinct counts are unknown.
    state_missing: bool,
    revision: u32,
    all_final: bool,
    last_final_end: UnixMillis,
    late_count: u64,
    updated_at: UnixMillis,
}

impl Acc {
    /// Adds a row; with `parts` (the plan's [`QueryPlan::state_parts`]) it merges those parts
    /// of its sketch too.
    pub(crate) fn add(&mut self, row: &WindowRow, parts: Option<SketchSpec>) {
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
        if let Some(parts) = parts {
            match &row.state {
                Some(state) => match &mut self.sketch {
                    Some(sketch) => sketch.merge(state),
                    None => self.sketch = Some(state.restricted(parts)),
                },
                None => self.state_missing = true,
            }
        }
        self.revision = self.revision.max(row.revision);
        self.all_final &= row.is_final;
        if row.is_final {
            self.last_final_end = self.last_final_end.max(row.window_end);
        }
        self.late_count += row.late_count;
        self.updated_at = self.updated_at.max(row.updated_at);
    }

    /// Merges another accumulator in, as if its rows had been added here.
    pub(crate) fn merge(&mut self, other: &Acc) {
        if other.rows == 0 {
            return;
        }
        if self.rows == 0 {
            *self = other.clone();
            return;
        }
        self.rows += other.rows;
        self.count += other.count;
        self.sum = add_opt(self.sum, other.sum, |a, b| a + b);
        self.min = add_opt(self.min, other.min, f64::min);
        self.max = add_opt(self.max, other.max, f64::max);
        match (&mut self.sketch, &other.sketch) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, Some(theirs)) => self.sketch = Some(theirs.clone()),
            (_, None) => {}
        }
        self.state_missing |= other.state_missing;
        self.revision = self.revision.max(other.revision);
        self.all_final &= other.all_final;
        self.last_final_end = self.last_final_end.max(other.last_final_end);
        self.late_count += other.late_count;
        self.updated_at = self.updated_at.max(other.updated_at);
    }

    /// Rows added.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Approximate bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.sketch.as_ref().map_or(0, |sketch| sketch.heap_bytes())
    }

    /// The stat's value over every row added: one row is exact as stored (its windows
    /// inside the served one without a row had no events); several merge.
    pub(crate) fn value(&self, stat: Stat) -> Option<f64> {
        if self.rows == 1 {
            return self.first.as_ref().and_then(|stats| stat.value(stats));
        }
        let merged = || {
            self.sketch
                .as_ref()
                .filter(|_| !self.state_missing)
                .map(Sketch::stats)
        };
        match stat {
            Stat::Count => Some(self.count as f64),
            Stat::Min => self.min,
            Stat::Max => self.max,
            Stat::Sum | Stat::Avg => match merged() {
                Some(stats) => stat.value(&stats),
                None => match stat {
                    Stat::Sum => self.sum,
                    _ => match self.sum {
                        Some(sum) if self.count > 0 => Some(sum / self.count as f64),
                        _ => None,
                    },
                },
            },
            _ => merged().and_then(|stats| stat.value(&stats)),
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

/// How long after its end a combined window counts as final even if its last stored window
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
    Merged::of_rows(plan, rows).windows(plan, now, closed_through)
}

/// Whether `row` passes the plan's filter (on its parsed dimensions).
pub(crate) fn filter_matches(plan: &QueryPlan, row: &WindowRow) -> bool {
    plan.filter.iter().all(|(name, wanted)| {
        row.dims.get(name).and_then(Option::as_deref) == Some(wanted.as_str())
    })
}

/// `closed_through`: every window ending at or before it is closed in every partition (from
/// the aggregators' status reports), so a combined window ending there is complete even when
/// its last stored windows have no row.
pub(crate) fn derive_one(
    plan: &QueryPlan,
    start: UnixMillis,
    acc: &Acc,
    now: UnixMillis,
    closed_through: Option<UnixMillis>,
) -> DerivedWindow {
    let end = start + plan.window_ms;
    let single = plan.window_ms == plan.source_window_ms;
    let complete = single
        || acc.last_final_end >= end
        || closed_through.is_some_and(|closed| end <= closed)
        || end + FINAL_GRACE_MS <= now;
    DerivedWindow {
        window_start: start,
        window_end: end,
        value: acc.value(plan.stat),
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
    let parts = plan.state_parts();
    let mut acc = Acc::default();
    for row in rows {
        acc.add(row, parts);
    }
    (acc.rows > 0).then(|| derive_one(plan, bucket, &acc, now, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{amount, filter, sketched};
    use crate::query::plan::{plan, Ask, WindowAsk};
    use crate::query::tiers::Tiers;
    use rtdash_shared::sketch::SketchSpec;

    fn row(start: i64, series: &str, count: u64, sum: f64, min: f64, max: f64) -> WindowRow {
        WindowRow {
            window_start: start,
            window_end: start + 60_000,
            series: series.to_owned(),
            dims: WindowRow::parse_dims(series),
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
            state: None,
            revision: 0,
            is_final: true,
            late_count: 0,
            updated_at: start + 61_000,
        }
    }

    fn plan_for(filter: &BTreeMap<String, String>, stat: Stat, window: WindowAsk) -> QueryPlan {
        plan(
            &amount(),
            "t",
            &Tiers::none(),
            &Ask::simple(filter, stat, window, 10_000_000),
        )
        .unwrap()
    }

    #[test]
    fn combining_across_series_and_windows() {
        let plan = plan_for(&filter(&[("plan", "pro")]), Stat::Avg, WindowAsk::Base);
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
        assert_eq!(got[0].value, Some(30.0 / 5.0), "no states: sum / count");
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
        // Without states, merged percentiles are unknown rather than wrong.
        five.stat = Stat::P99;
        assert_eq!(derive(&five, &rows, 10_000_000, None)[0].value, None);
    }

    #[test]
    fn states_merge_into_exact_percentiles_and_uniques() {
        let eu = [("plan", "pro"), ("region", "eu")];
        let us = [("plan", "pro"), ("region", "us")];
        let rows = vec![
            sketched(0, &eu, &[1.0, 2.0, 3.0]),
            sketched(0, &us, &[4.0, 5.0]),
            sketched(60_000, &us, &[3.0, 100.0]),
        ];
        let mut all = Sketch::new(SketchSpec::ALL);
        for row in &rows {
            all.merge(row.state.as_ref().unwrap());
        }
        let want = all.stats();
        let mut plan = plan_for(&filter(&[("plan", "pro")]), Stat::Unique, WindowAsk::Base);
        plan.window_ms = 300_000;
        for stat in Stat::ALL {
            plan.stat = stat;
            let got = derive(&plan, &rows, 10_000_000, None);
            assert_eq!(got[0].value, stat.value(&want), "{stat}");
        }
        plan.stat = Stat::Unique;
        assert_eq!(derive(&plan, &rows, 10_000_000, None)[0].value, Some(6.0));
    }

    #[test]
    fn a_combined_window_without_rows_at_its_end_is_final_once_closed_everywhere() {
        let mut five = plan_for(&filter(&[("plan", "pro")]), Stat::Count, WindowAsk::Base);
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
