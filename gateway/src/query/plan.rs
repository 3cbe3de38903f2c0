//! The plan of a metric query: which stored rows answer it and how, or why it cannot be
//! answered (see [`plan`]). Pure: no I/O.
//!
//! Every stat is served for any window that is a multiple of the metric's window and for any
//! filter (and grouping) on dimensions the metric has: the rows of the smallest kept
//! dimension set containing those dimensions are read from the coarsest stored resolution
//! that divides the window and retains the range (see [`super::resolution`]), and merged per
//! served window; a row answers a window alone when it is the only one in it.

use super::resolution::{self, align, check_window, format_duration};
use super::tiers::Tiers;
use super::QueryError;
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::sketch::SketchSpec;
use rtdash_shared::stat::Stat;
use rtdash_shared::time::UnixMillis;
use std::collections::BTreeMap;

/// Series per grouped answer when `limit` is not given.
pub const DEFAULT_GROUP_LIMIT: usize = 10;
/// Largest `limit` of a grouped answer.
pub const MAX_GROUP_LIMIT: usize = 100;

/// How the served window was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowAsk {
    /// The metric's own window.
    Base,
    /// The finest window keeping the answer at or under about 500 windows.
    Auto,
    /// This many milliseconds.
    Fixed(i64),
}

/// What a query asks for.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// Dimension filter.
    pub filter: &'a BTreeMap<String, String>,
    /// Stat served.
    pub stat: Stat,
    /// Served window.
    pub window: WindowAsk,
    /// One series per value of these dimensions (empty: one series).
    pub group_by: &'a [String],
    /// Series of a grouped answer besides `other`.
    pub limit: usize,
    /// Range start as asked (aligned by the plan).
    pub from: UnixMillis,
    /// Range end as asked.
    pub to: UnixMillis,
    /// The time the range and retentions are judged at.
    pub now: UnixMillis,
}

impl<'a> Ask<'a> {
    /// A plain ask: `stat` for `filter`, at `window`, over the last hour before `now`.
    pub fn simple(
        filter: &'a BTreeMap<String, String>,
        stat: Stat,
        window: WindowAsk,
        now: UnixMillis,
    ) -> Self {
        Self {
            filter,
            stat,
            window,
            group_by: &[],
            limit: DEFAULT_GROUP_LIMIT,
            from: now - 3_600_000,
            to: now,
            now,
        }
    }
}

/// Which rows a query reads and how it derives values from them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueryPlan {
    /// Tenant.
    pub tenant: String,
    /// Metric.
    pub metric: String,
    /// Stat served.
    pub stat: Stat,
    /// Dimension names of the rows read, sorted and comma-joined (`dim_set` column).
    pub dim_set: String,
    /// The one series read, when the filter names a kept dimension set exactly and the
    /// answer is not grouped.
    pub exact_series: Option<String>,
    /// Filter applied to the rows of `dim_set` (empty when `exact_series` is set).
    pub filter: BTreeMap<String, String>,
    /// The metric's window, in milliseconds.
    pub base_window_ms: i64,
    /// Window of the rows read: the base window or a tier's, dividing `window_ms`.
    pub source_window_ms: i64,
    /// The served window, in milliseconds (a multiple of the source's).
    pub window_ms: i64,
    /// One series per value of these dimensions (empty: not grouped).
    pub group_by: Vec<String>,
    /// Series of a grouped answer besides `other`.
    pub limit: usize,
}

impl QueryPlan {
    /// A plan reading every `dim_set` row of a metric of `window_ms` windows as they are
    /// (repair reads set another source window).
    pub fn raw(tenant: &str, metric: &str, dim_set: &str, window_ms: i64) -> Self {
        Self {
            tenant: tenant.to_owned(),
            metric: metric.to_owned(),
            stat: Stat::Count,
            dim_set: dim_set.to_owned(),
            exact_series: None,
            filter: BTreeMap::new(),
            base_window_ms: window_ms,
            source_window_ms: window_ms,
            window_ms,
            group_by: Vec::new(),
            limit: DEFAULT_GROUP_LIMIT,
        }
    }

    /// Whether a stored series (canonical JSON of its dimensions, of `dim_set`) feeds this
    /// plan.
    pub fn wants_series(&self, dim_set: &str, series: &str) -> bool {
        if dim_set != self.dim_set {
            return false;
        }
        match &self.exact_series {
            Some(exact) => exact == series,
            None => series_matches(series, &self.filter),
        }
    }

    /// The served window containing `at`.
    pub fn bucket_of(&self, at: UnixMillis) -> UnixMillis {
        at.div_euclid(self.window_ms) * self.window_ms
    }

    /// `[from, to)` widened to whole served windows.
    pub fn align(&self, from: UnixMillis, to: UnixMillis) -> (UnixMillis, UnixMillis) {
        align(from, to, self.window_ms)
    }

    /// Whether the answer has one series per group.
    pub fn is_grouped(&self) -> bool {
        !self.group_by.is_empty()
    }

    /// Whether one stored row answers each served window alone.
    pub fn is_one_row_per_window(&self) -> bool {
        self.exact_series.is_some() && !self.is_grouped() && self.window_ms == self.source_window_ms
    }

    /// Whether served values merge stored sketches (the `state` column): for stats that
    /// numbers alone cannot combine exactly (percentiles, distinct counts, and sums, kept as
    /// exact expansions so that every grouping of the same rows gives the same number),
    /// whenever a served value merges several rows.
    pub fn needs_state(&self) -> bool {
        !matches!(self.stat, Stat::Count | Stat::Min | Stat::Max) && !self.is_one_row_per_window()
    }

    /// The parts of the rows' states a merge for this stat needs (the HyperLogLog for
    /// `unique`, the values for sums, averages and percentiles), or `None` when it needs no
    /// state ([`needs_state`](Self::needs_state)): the rest is neither copied nor merged.
    pub fn state_parts(&self) -> Option<SketchSpec> {
        self.needs_state().then_some(if self.stat == Stat::Unique {
            SketchSpec::UNIQUE
        } else {
            SketchSpec::VALUES
        })
    }
}

/// Whether the series JSON has every `(name, value)` of `filter`.
pub fn series_matches(series: &str, filter: &BTreeMap<String, String>) -> bool {
    if filter.is_empty() {
        return true;
    }
    let Ok(dims) = serde_json::from_str::<BTreeMap<String, Option<String>>>(series) else {
        return false;
    };
    filter
        .iter()
        .all(|(name, wanted)| dims.get(name).and_then(Option::as_deref) == Some(wanted))
}

/// The stats a metric has.
pub fn available_stats(def: &MetricDefinition) -> Vec<Stat> {
    Stat::ALL
        .into_iter()
        .filter(|stat| stat_available(def, *stat).is_ok())
        .collect()
}

fn stat_available(def: &MetricDefinition, stat: Stat) -> Result<(), String> {
    match stat {
        Stat::Count => Ok(()),
        Stat::Unique if def.unique.is_none() => Err(format!(
            "metric `{}` has no `unique` property, so it has no `unique` stat",
            def.name
        )),
        Stat::Unique => Ok(()),
        _ if def.field.is_none() => Err(format!(
            "metric `{}` has no numeric `field`, so it has no `{stat}` stat (only `count`{})",
            def.name,
            if def.unique.is_some() {
                " and `unique`"
            } else {
                ""
            }
        )),
        _ => Ok(()),
    }
}

fn check_dimension(def: &MetricDefinition, name: &str, role: &str) -> Result<(), QueryError> {
    if def.dimensions.iter().any(|d| d == name) {
        return Ok(());
    }
    Err(QueryError::Invalid(format!(
        "metric `{}` has no dimension `{name}` to {role} (its dimensions: {})",
        def.name,
        list_or_none(&def.dimensions)
    )))
}

/// Decides how to serve `ask` for `def`, or says why it cannot be derived.
pub fn plan(
    def: &MetricDefinition,
    tenant: &str,
    tiers: &Tiers,
    ask: &Ask<'_>,
) -> Result<QueryPlan, QueryError> {
    stat_available(def, ask.stat).map_err(QueryError::Invalid)?;
    for name in ask.filter.keys() {
        check_dimension(def, name, "filter on")?;
    }
    for (index, name) in ask.group_by.iter().enumerate() {
        check_dimension(def, name, "group by")?;
        if ask.group_by[..index].contains(name) {
            return Err(QueryError::Invalid(format!(
                "`group_by` names `{name}` twice"
            )));
        }
    }
    if ask.limit == 0 || ask.limit > MAX_GROUP_LIMIT {
        return Err(QueryError::Invalid(format!(
            "`limit` must be 1 to {MAX_GROUP_LIMIT}"
        )));
    }
    let base = def.window_ms();
    let (window, source) = match ask.window {
        WindowAsk::Auto => {
            resolution::choose_auto(&def.name, tiers, base, ask.from, ask.to, ask.now)?
        }
        WindowAsk::Base | WindowAsk::Fixed(_) => {
            let window = match ask.window {
                WindowAsk::Fixed(ms) => ms,
                _ => base,
            };
            check_window(&def.name, base, window)?;
            let source =
                resolution::choose_source(&def.name, tiers, base, window, ask.from, ask.now)?;
            (window, source)
        }
    };
    // The smallest kept set containing every filtered and grouped dimension (the full set
    // always does).
    let mut needed: Vec<String> = ask.filter.keys().cloned().collect();
    needed.extend(ask.group_by.iter().cloned());
    needed.sort();
    needed.dedup();
    let sets = def.dimension_sets();
    let dim_set = sets
        .iter()
        .filter(|set| needed.iter().all(|key| set.contains(key)))
        .min_by_key(|set| set.len())
        .cloned()
        .unwrap_or_default();
    let keys: Vec<&String> = ask.filter.keys().collect();
    let exact = ask.group_by.is_empty() && dim_set.iter().collect::<Vec<_>>() == keys;
    let (exact_series, filter) = if exact {
        let values: BTreeMap<&str, Option<&str>> = ask
            .filter
            .iter()
            .map(|(name, value)| (name.as_str(), Some(value.as_str())))
            .collect();
        let series = serde_json::to_string(&values).unwrap_or_else(|_| "{}".into());
        (Some(series), BTreeMap::new())
    } else {
        (None, ask.filter.clone())
    };
    Ok(QueryPlan {
        tenant: tenant.to_owned(),
        metric: def.name.clone(),
        stat: ask.stat,
        dim_set: dim_set.join(","),
        exact_series,
        filter,
        base_window_ms: base,
        source_window_ms: source.window_ms,
        window_ms: window,
        group_by: ask.group_by.to_vec(),
        limit: ask.limit,
    })
}

/// `1m`, for messages.
pub fn window_text(plan: &QueryPlan) -> String {
    format_duration(plan.window_ms)
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{amount, def, filter};
    use crate::query::tiers::DAY_MS;

    const NOW: i64 = 1_000 * DAY_MS + 7 * 3_600_000;

    fn ask(filter: &BTreeMap<String, String>, stat: Stat, window: WindowAsk) -> Ask<'_> {
        Ask::simple(filter, stat, window, NOW)
    }

    fn plan_of(
        filter: &BTreeMap<String, String>,
        stat: Stat,
        window: WindowAsk,
    ) -> Result<QueryPlan, QueryError> {
        plan(
            &amount(),
            "t",
            &Tiers::default(),
            &ask(filter, stat, window),
        )
    }

    #[test]
    fn exact_rollups_read_one_series() {
        let plan = plan_of(&filter(&[("region", "eu")]), Stat::P99, WindowAsk::Base).unwrap();
        assert_eq!(plan.dim_set, "region");
        assert_eq!(plan.exact_series.as_deref(), Some(r#"{"region":"eu"}"#));
        assert!(plan.is_one_row_per_window());
        assert!(!plan.needs_state());
        let total = plan_of(&BTreeMap::new(), Stat::Unique, WindowAsk::Base).unwrap();
        assert_eq!(total.dim_set, "");
        assert_eq!(total.exact_series.as_deref(), Some("{}"));
        let full = plan_of(
            &filter(&[("region", "eu"), ("plan", "pro")]),
            Stat::P50,
            WindowAsk::Base,
        )
        .unwrap();
        assert_eq!(full.dim_set, "plan,region");
        assert_eq!(
            full.exact_series.as_deref(),
            Some(r#"{"plan":"pro","region":"eu"}"#)
        );
    }

    #[test]
    fn every_stat_merges_for_any_filter_and_window() {
        let pro = filter(&[("plan", "pro")]);
        let plan = plan_of(&pro, Stat::P99, WindowAsk::Base).unwrap();
        assert_eq!(plan.dim_set, "plan,region");
        assert!(plan.exact_series.is_none() && plan.needs_state());
        let hourly = plan_of(&BTreeMap::new(), Stat::Unique, WindowAsk::Fixed(3_600_000)).unwrap();
        assert_eq!(hourly.source_window_ms, 3_600_000);
        assert!(hourly.is_one_row_per_window(), "one tier row per hour");
        let six = plan_of(
            &BTreeMap::new(),
            Stat::Unique,
            WindowAsk::Fixed(6 * 3_600_000),
        )
        .unwrap();
        assert_eq!(six.source_window_ms, 3_600_000);
        assert!(six.needs_state());
        let five = plan_of(&BTreeMap::new(), Stat::Count, WindowAsk::Fixed(300_000)).unwrap();
        assert_eq!(five.source_window_ms, 60_000);
        assert!(!five.needs_state(), "counts add up exactly");
    }

    #[test]
    fn grouping_reads_the_smallest_set_holding_filter_and_groups() {
        let tiers = Tiers::default();
        let us = filter(&[("region", "us")]);
        let group = ["plan".to_owned()];
        let mut a = ask(&us, Stat::P99, WindowAsk::Auto);
        a.group_by = &group;
        let plan = plan(&amount(), "t", &tiers, &a).unwrap();
        assert_eq!(plan.dim_set, "plan,region");
        assert!(plan.exact_series.is_none());
        assert_eq!(plan.filter, us);
        assert_eq!(plan.window_ms, 60_000, "auto: 60 windows in an hour");
        let none = BTreeMap::new();
        let region = ["region".to_owned()];
        let mut a = ask(&none, Stat::Count, WindowAsk::Base);
        a.group_by = &region;
        let plan = super::plan(&amount(), "t", &tiers, &a).unwrap();
        assert_eq!(plan.dim_set, "region");
        assert!(plan.exact_series.is_none() && plan.is_grouped());
        for (group, limit, mention) in [
            (vec!["colour".to_owned()], 10, "colour"),
            (vec!["region".to_owned(), "region".to_owned()], 10, "twice"),
            (vec!["region".to_owned()], 0, "limit"),
            (vec!["region".to_owned()], 101, "limit"),
        ] {
            let mut a = ask(&none, Stat::Count, WindowAsk::Base);
            a.group_by = &group;
            a.limit = limit;
            let err = super::plan(&amount(), "t", &tiers, &a)
                .unwrap_err()
                .to_string();
            assert!(err.contains(mention), "{err}");
        }
    }

    #[test]
    fn underivable_asks_are_refused_with_the_reason() {
        let err = plan_of(&filter(&[("color", "x")]), Stat::Count, WindowAsk::Base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("color"), "{err}");
        let counts = def(r#"{"name":"c","event_type":"e"}"#);
        let tiers = Tiers::default();
        let none = BTreeMap::new();
        assert!(plan(
            &counts,
            "t",
            &tiers,
            &ask(&none, Stat::Sum, WindowAsk::Base)
        )
        .is_err());
        assert!(plan(
            &counts,
            "t",
            &tiers,
            &ask(&none, Stat::Unique, WindowAsk::Base)
        )
        .is_err());
        for window in [90_000, 7 * 60_000] {
            let err = plan(
                &counts,
                "t",
                &tiers,
                &ask(&none, Stat::Count, WindowAsk::Fixed(window)),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(&format_duration(window)), "{err}");
        }
        let mut old = ask(&none, Stat::Count, WindowAsk::Fixed(300_000));
        old.from = NOW - 30 * DAY_MS;
        let err = plan(&counts, "t", &tiers, &old).unwrap_err().to_string();
        assert!(
            err.contains("30 days ago") && err.contains("7 days"),
            "{err}"
        );
        assert!(plan(
            &counts,
            "t",
            &tiers,
            &ask(&none, Stat::Count, WindowAsk::Fixed(DAY_MS * 7))
        )
        .is_ok());
    }

    #[test]
    fn json_fragments_in_values_do_not_fool_the_filter() {
        let f = filter(&[("region", "us")]);
        assert!(series_matches(r#"{"plan":null,"region":"us"}"#, &f));
        assert!(!series_matches(
            r#"{"plan":"\"region\":\"us\"","region":"eu"}"#,
            &f
        ));
        assert!(!series_matches(r#"{"plan":"x","region":null}"#, &f));
    }
}
