//! Grouped answers (`group_by`): one series per combination of the grouped dimensions'
//! values, ranked by the stat over the whole range (descending; series without a value
//! last, ties by their values), the first `limit` kept and the rest merged into one `other`
//! series. Merged states serve every stat, so `other` has every stat too. Pure: no I/O.

use super::derive::{DerivedWindow, WindowRow};
use super::fold::Merged;
use super::plan::QueryPlan;
use rtdash_shared::time::UnixMillis;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The values of the grouped dimensions, in `group_by` order (`None`: absent).
pub type GroupKey = Vec<Option<String>>;

/// One series of a grouped answer.
#[derive(Clone, Debug, PartialEq)]
pub struct DerivedSeries {
    /// The grouped dimensions' values (empty for `other`).
    pub dimensions: BTreeMap<String, Option<String>>,
    /// The merge of the series beyond `limit`.
    pub other: bool,
    /// The stat over the whole range.
    pub value: Option<f64>,
    /// Its windows, by start.
    pub windows: Vec<DerivedWindow>,
}

/// The group of a row.
pub fn group_key(plan: &QueryPlan, row: &WindowRow) -> GroupKey {
    plan.group_by
        .iter()
        .map(|name| row.dims.get(name).cloned().flatten())
        .collect()
}

/// The dimensions of a group.
pub fn group_dimensions(plan: &QueryPlan, key: &GroupKey) -> BTreeMap<String, Option<String>> {
    plan.group_by
        .iter()
        .cloned()
        .zip(key.iter().cloned())
        .collect()
}

/// Descending by value (no value last), then ascending by key.
pub(crate) fn rank(a: &(GroupKey, Option<f64>), b: &(GroupKey, Option<f64>)) -> Ordering {
    match (a.1, b.1) {
        (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| a.0.cmp(&b.0))
}

/// The grouped answer of `plan` from rows of its dimension set: the top `limit` groups, then
/// `other` when there are more.
pub fn derive_groups<'r>(
    plan: &QueryPlan,
    rows: impl IntoIterator<Item = &'r WindowRow>,
    now: UnixMillis,
    closed_through: Option<UnixMillis>,
) -> Vec<DerivedSeries> {
    Merged::of_rows(plan, rows).series(plan, now, closed_through)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{amount, sketched};
    use crate::query::plan::{plan, Ask, WindowAsk};
    use crate::query::tiers::Tiers;
    use rtdash_shared::stat::Stat;

    fn grouped(stat: Stat, limit: usize) -> QueryPlan {
        let none = BTreeMap::new();
        let region = ["region".to_owned()];
        let mut ask = Ask::simple(&none, stat, WindowAsk::Base, 10_000_000);
        ask.group_by = &region;
        ask.limit = limit;
        // No region rollup kept here would be read from the full set: use the full set.
        let mut plan = plan(&amount(), "t", &Tiers::none(), &ask).unwrap();
        plan.dim_set = "plan,region".into();
        plan
    }

    #[test]
    fn groups_rank_by_the_stat_over_the_range_and_the_rest_is_other() {
        let rows = vec![
            sketched(0, &[("plan", "pro"), ("region", "eu")], &[1.0, 2.0]),
            sketched(0, &[("plan", "free"), ("region", "eu")], &[3.0]),
            sketched(60_000, &[("plan", "pro"), ("region", "eu")], &[4.0]),
            sketched(0, &[("plan", "pro"), ("region", "us")], &[10.0, 20.0, 30.0]),
            sketched(0, &[("plan", "pro"), ("region", "ap")], &[5.0]),
            sketched(60_000, &[("plan", "pro"), ("region", "sa")], &[7.0]),
        ];
        let plan = grouped(Stat::Count, 2);
        let series = derive_groups(&plan, &rows, 10_000_000, None);
        let summary: Vec<(Option<&str>, bool, Option<f64>)> = series
            .iter()
            .map(|s| {
                (
                    s.dimensions.get("region").and_then(|v| v.as_deref()),
                    s.other,
                    s.value,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (Some("eu"), false, Some(4.0)),
                (Some("us"), false, Some(3.0)),
                (None, true, Some(2.0)),
            ]
        );
        assert_eq!(series[0].windows.len(), 2);
        assert_eq!(series[0].windows[0].value, Some(3.0));
        // Other: ap at minute 0, sa at minute 1.
        let other: Vec<Option<f64>> = series[2].windows.iter().map(|w| w.value).collect();
        assert_eq!(other, vec![Some(1.0), Some(1.0)]);

        // p99 ranks by the merged digest of each group; `other` merges ap and sa.
        let plan = grouped(Stat::Max, 1);
        let series = derive_groups(&plan, &rows, 10_000_000, None);
        assert_eq!(series[0].dimensions["region"].as_deref(), Some("us"));
        assert_eq!(series[1].value, Some(7.0), "max of eu, ap, sa");
        let plan = grouped(Stat::Unique, 10);
        let series = derive_groups(&plan, &rows, 10_000_000, None);
        assert_eq!(series.len(), 4, "no other when every group fits");
        assert_eq!(series[0].value, Some(4.0));
        // Fixed series (a live widget's): kept in their order, even when empty.
        let top = vec![
            vec![Some("nowhere".to_owned())],
            vec![Some("us".to_owned())],
        ];
        let series = Merged::of_rows(&plan, &rows).series_fixed(&plan, &top, 10_000_000, None);
        assert_eq!(series.len(), 3);
        assert!(series[0].windows.is_empty() && series[0].value.is_none());
        assert_eq!(series[1].value, Some(3.0));
        assert!(series[2].other);
        assert_eq!(
            series[2].value,
            Some(6.0),
            "eu 1-4, ap 5, sa 7: six distinct values"
        );
    }
}
