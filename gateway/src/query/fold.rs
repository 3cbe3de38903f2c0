//! Folding rows per group and stored window, and merging folds over a range: the two steps of
//! every derived answer. Pure: no I/O.
//!
//! 1. [`Fold`]: the rows a plan selects, merged into one accumulator per group (the values of
//!    its `group_by` dimensions; a single group when not grouped) and stored window, plus, for
//!    grouped plans, one per group over all of them (the value groups are ranked by).
//! 2. [`Merged`]: folds merged per served window and over the requested range, from which the
//!    windows of one series, or the ranked series of a grouped answer with their `other`
//!    remainder, are derived.
//!
//! A fold depends only on its rows, the plan's selection (table, dimension set, filter), its
//! grouping and the sketch parts its stat needs, so the folds of chunks of windows that no
//! longer change are kept with the chunk in the row cache (see `super::rows`): a repeated
//! wide query (p99 by region per hour over 7 days of 100 series) then merges one state per
//! group and stored window, and one per group and chunk for the ranking, instead of one per
//! series and window, twice.

use super::derive::{derive_one, filter_matches, Acc, DerivedWindow, WindowRow};
use super::group::{group_dimensions, group_key, rank, DerivedSeries, GroupKey};
use super::plan::QueryPlan;
use rtdash_shared::time::UnixMillis;
use std::collections::{BTreeMap, HashMap};

/// One group of a [`Fold`].
#[derive(Clone, Debug, Default)]
struct GroupFold {
    /// The group's rows merged per stored window start.
    windows: BTreeMap<UnixMillis, Acc>,
    /// All of them merged (grouped plans only).
    whole: Acc,
}

/// A plan's rows merged per group and stored window.
#[derive(Debug, Default)]
pub struct Fold {
    groups: HashMap<GroupKey, GroupFold>,
}

/// Whether `plan` reads `row`: its one series, or a series passing its filter.
fn selects(plan: &QueryPlan, row: &WindowRow) -> bool {
    match &plan.exact_series {
        Some(exact) => *exact == row.series,
        None => filter_matches(plan, row),
    }
}

impl Fold {
    /// The fold of the `rows` `plan` selects.
    pub fn of_rows<'r>(plan: &QueryPlan, rows: impl IntoIterator<Item = &'r WindowRow>) -> Self {
        let parts = plan.state_parts();
        let mut groups: HashMap<GroupKey, GroupFold> = HashMap::new();
        for row in rows {
            if !selects(plan, row) {
                continue;
            }
            groups
                .entry(group_key(plan, row))
                .or_default()
                .windows
                .entry(row.window_start)
                .or_default()
                .add(row, parts);
        }
        if plan.is_grouped() {
            for group in groups.values_mut() {
                for acc in group.windows.values() {
                    group.whole.merge(acc);
                }
            }
        }
        Self { groups }
    }

    /// Approximate bytes held (for the row cache's budget).
    pub fn heap_bytes(&self) -> usize {
        self.groups
            .iter()
            .map(|(key, group)| {
                let windows: usize = group
                    .windows
                    .values()
                    .map(|acc| 32 + acc.heap_bytes())
                    .sum();
                64 + key.iter().flatten().map(String::len).sum::<usize>()
                    + windows
                    + group.whole.heap_bytes()
            })
            .sum()
    }
}

/// One group of [`Merged`].
#[derive(Debug, Default)]
struct GroupMerge {
    /// Per served window start.
    buckets: BTreeMap<UnixMillis, Acc>,
    /// Over the range (grouped plans only).
    whole: Acc,
}

/// Folds merged over a range, per group: one accumulator per served window and one over the
/// range.
#[derive(Debug, Default)]
pub struct Merged {
    groups: HashMap<GroupKey, GroupMerge>,
}

impl Merged {
    /// Every selected row of `rows` merged (no range restriction).
    pub fn of_rows<'r>(plan: &QueryPlan, rows: impl IntoIterator<Item = &'r WindowRow>) -> Self {
        let mut merged = Self::default();
        merged.absorb(
            plan,
            &Fold::of_rows(plan, rows),
            UnixMillis::MIN,
            UnixMillis::MAX,
            true,
        );
        merged
    }

    /// Adds the windows of `fold` that start in `[from, to)`. `inside`: every window of the
    /// fold lies in the range, so its groups' merges over all of them serve as they are.
    pub fn absorb(
        &mut self,
        plan: &QueryPlan,
        fold: &Fold,
        from: UnixMillis,
        to: UnixMillis,
        inside: bool,
    ) {
        let grouped = plan.is_grouped();
        for (key, group) in &fold.groups {
            let mut in_range = group.windows.range(from..to).peekable();
            if in_range.peek().is_none() {
                continue;
            }
            let merged = self.groups.entry(key.clone()).or_default();
            for (start, acc) in in_range {
                merged
                    .buckets
                    .entry(plan.bucket_of(*start))
                    .or_default()
                    .merge(acc);
                if grouped && !inside {
                    merged.whole.merge(acc);
                }
            }
            if grouped && inside {
                merged.whole.merge(&group.whole);
            }
        }
    }

    /// The served windows of an ungrouped plan, by start.
    pub fn windows(
        mut self,
        plan: &QueryPlan,
        now: UnixMillis,
        closed_through: Option<UnixMillis>,
    ) -> Vec<DerivedWindow> {
        let mut buckets = BTreeMap::new();
        for group in std::mem::take(&mut self.groups).into_values() {
            merge_buckets(&mut buckets, group.buckets);
        }
        served(plan, buckets, now, closed_through)
    }

    /// The groups with their values over the range, best first (descending by value, groups
    /// without a value last, ties by their keys).
    pub fn ranked(&self, plan: &QueryPlan) -> Vec<(GroupKey, Option<f64>)> {
        let mut ranked: Vec<(GroupKey, Option<f64>)> = self
            .groups
            .iter()
            .map(|(key, group)| (key.clone(), group.whole.value(plan.stat)))
            .collect();
        ranked.sort_by(rank);
        ranked
    }

    /// The grouped answer: the top `limit` groups, then `other` merging the rest.
    pub fn series(
        self,
        plan: &QueryPlan,
        now: UnixMillis,
        closed_through: Option<UnixMillis>,
    ) -> Vec<DerivedSeries> {
        let top: Vec<GroupKey> = self
            .ranked(plan)
            .into_iter()
            .take(plan.limit)
            .map(|(key, _)| key)
            .collect();
        self.series_fixed(plan, &top, now, closed_through)
    }

    /// The grouped answer with its series fixed: one per key of `top`, in that order (empty
    /// when a group has no rows), then `other` merging every other group that has rows.
    pub fn series_fixed(
        mut self,
        plan: &QueryPlan,
        top: &[GroupKey],
        now: UnixMillis,
        closed_through: Option<UnixMillis>,
    ) -> Vec<DerivedSeries> {
        let mut series: Vec<DerivedSeries> = top
            .iter()
            .map(|key| {
                let group = self.groups.remove(key).unwrap_or_default();
                DerivedSeries {
                    dimensions: group_dimensions(plan, key),
                    other: false,
                    value: (group.whole.rows() > 0)
                        .then(|| group.whole.value(plan.stat))
                        .flatten(),
                    windows: served(plan, group.buckets, now, closed_through),
                }
            })
            .collect();
        if !self.groups.is_empty() {
            let mut whole = Acc::default();
            let mut buckets = BTreeMap::new();
            for group in self.groups.into_values() {
                whole.merge(&group.whole);
                merge_buckets(&mut buckets, group.buckets);
            }
            series.push(DerivedSeries {
                dimensions: BTreeMap::new(),
                other: true,
                value: whole.value(plan.stat),
                windows: served(plan, buckets, now, closed_through),
            });
        }
        series
    }
}

/// Merges `from` into `into`, window by window.
fn merge_buckets(into: &mut BTreeMap<UnixMillis, Acc>, from: BTreeMap<UnixMillis, Acc>) {
    for (start, acc) in from {
        match into.get_mut(&start) {
            Some(existing) => existing.merge(&acc),
            None => {
                into.insert(start, acc);
            }
        }
    }
}

/// The served windows of merged buckets.
fn served(
    plan: &QueryPlan,
    buckets: BTreeMap<UnixMillis, Acc>,
    now: UnixMillis,
    closed_through: Option<UnixMillis>,
) -> Vec<DerivedWindow> {
    buckets
        .into_iter()
        .map(|(start, acc)| derive_one(plan, start, &acc, now, closed_through))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{amount, sketched};
    use crate::query::plan::{plan, Ask, WindowAsk};
    use crate::query::tiers::Tiers;
    use rtdash_shared::stat::Stat;

    /// 12 windows x 3 regions x 4 hosts of distinct values.
    fn rows() -> Vec<WindowRow> {
        let mut rows = Vec::new();
        for window in 0..12_i64 {
            for (r, region) in ["eu", "us", "ap"].iter().enumerate() {
                for host in 0..4_i64 {
                    let base = (window * 100 + r as i64 * 1_000 + host * 10) as f64;
                    let values: Vec<f64> =
                        (0..=(host + r as i64)).map(|i| base + i as f64).collect();
                    let host = format!("h{host}");
                    rows.push(sketched(
                        window * 60_000,
                        &[("host", &host), ("region", region)],
                        &values,
                    ));
                }
            }
        }
        rows
    }

    fn grouped(stat: Stat, window_ms: i64, limit: usize) -> QueryPlan {
        let filter = BTreeMap::new();
        let group_by = vec!["region".to_owned()];
        let ask = Ask {
            group_by: &group_by,
            limit,
            from: 0,
            to: 12 * 60_000,
            ..Ask::simple(&filter, stat, WindowAsk::Fixed(window_ms), 100_000_000)
        };
        let mut def = amount();
        def.dimensions = vec!["host".into(), "region".into()];
        def.rollups = None;
        plan(&def, "acme", &Tiers::none(), &ask).expect("plan")
    }

    /// Folding chunks separately and merging them gives exactly the answer of folding every
    /// row at once, whatever the chunk boundaries and the range's cut through a chunk.
    #[test]
    fn merged_chunk_folds_answer_as_the_rows_do() {
        let rows = rows();
        for stat in [
            Stat::Count,
            Stat::Sum,
            Stat::Avg,
            Stat::P99,
            Stat::Unique,
            Stat::Max,
        ] {
            for (window_ms, limit) in [(60_000, 10), (180_000, 2), (300_000, 1)] {
                let plan = grouped(stat, window_ms, limit);
                let (from, to) = (60_000, 11 * 60_000);
                let in_range: Vec<&WindowRow> = rows
                    .iter()
                    .filter(|row| row.window_start >= from && row.window_start < to)
                    .collect();
                let expected = Merged::of_rows(&plan, in_range).series(&plan, 100_000_000, None);
                // Chunks of 4 windows: [0, 4) cut by the range, [4, 8) inside, [8, 12) cut.
                let mut merged = Merged::default();
                for chunk in 0..3_i64 {
                    let (start, end) = (chunk * 240_000, (chunk + 1) * 240_000);
                    let fold = Fold::of_rows(
                        &plan,
                        rows.iter()
                            .filter(|row| row.window_start >= start && row.window_start < end),
                    );
                    merged.absorb(&plan, &fold, from, to, start >= from && end <= to);
                }
                let got = merged.series(&plan, 100_000_000, None);
                assert_eq!(got, expected, "{stat:?} per {window_ms} ms, limit {limit}");
                assert_eq!(got.len(), limit.min(3) + usize::from(limit < 3), "{stat:?}");
            }
        }
    }

    /// The counts of a grouped answer are those of the rows, by region and window.
    #[test]
    fn grouped_counts_are_exact() {
        let plan = grouped(Stat::Count, 180_000, 10);
        let series = Merged::of_rows(&plan, &rows()).series(&plan, 100_000_000, None);
        // Region ap (r = 2) has hosts with 3..=6 values: 18 per window, 54 per 3 windows.
        let ap = series
            .iter()
            .find(|s| s.dimensions.get("region") == Some(&Some("ap".to_owned())))
            .expect("ap");
        assert_eq!(ap.value, Some(18.0 * 12.0));
        assert!(ap.windows.iter().all(|w| w.value == Some(54.0)));
        assert_eq!(ap.windows.len(), 4);
        assert_eq!(series[0].dimensions, ap.dimensions, "the largest first");
    }

    /// An ungrouped plan merges every selected row per served window.
    #[test]
    fn ungrouped_windows() {
        let filter = BTreeMap::from([("region".to_owned(), "us".to_owned())]);
        let mut def = amount();
        def.dimensions = vec!["host".into(), "region".into()];
        def.rollups = None;
        let ask = Ask {
            from: 0,
            to: 12 * 60_000,
            ..Ask::simple(&filter, Stat::Count, WindowAsk::Fixed(240_000), 100_000_000)
        };
        let plan = plan(&def, "acme", &Tiers::none(), &ask).expect("plan");
        let windows = Merged::of_rows(&plan, &rows()).windows(&plan, 100_000_000, None);
        // Region us (r = 1): hosts with 2..=5 values, 14 per window, 56 per 4 windows.
        let values: Vec<Option<f64>> = windows.iter().map(|w| w.value).collect();
        assert_eq!(values, vec![Some(56.0); 3]);
    }
}
