//! The plan of a metric query: which stored rows answer it and how, or why it cannot be
//! answered exactly (see [`plan`]). Pure: no I/O.

use super::QueryError;
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::stat::Stat;
use rtdash_shared::time::UnixMillis;
use std::collections::BTreeMap;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

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
    /// The one series read, when the filter names a kept dimension set exactly.
    pub exact_series: Option<String>,
    /// Filter applied to the rows of `dim_set` (empty when `exact_series` is set).
    pub filter: BTreeMap<String, String>,
    /// The metric's window, in milliseconds.
    pub base_window_ms: i64,
    /// The served window, in milliseconds (a multiple of the base).
    pub window_ms: i64,
}

impl QueryPlan {
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

/// Parses a window such as `30s`, `1m`, `5m`, `1h`, `1d` into milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: i64 = digits.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => return None,
    };
    n.checked_mul(unit_ms).filter(|ms| *ms > 0)
}

/// Formats milliseconds as the shortest window text (`60000` -> `1m`).
pub fn format_duration(ms: i64) -> String {
    for (unit, size) in [("d", DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Decides how to serve `stat` of `def` for `filter` at `window_ms` (default: the metric's
/// window), or says why it cannot be derived.
pub fn plan(
    def: &MetricDefinition,
    tenant: &str,
    filter: &BTreeMap<String, String>,
    stat: Stat,
    window_ms: Option<i64>,
) -> Result<QueryPlan, QueryError> {
    stat_available(def, stat).map_err(QueryError::Invalid)?;
    for name in filter.keys() {
        if !def.dimensions.contains(name) {
            return Err(QueryError::Invalid(format!(
                "metric `{}` has no dimension `{name}` (its dimensions: {})",
                def.name,
                list_or_none(&def.dimensions)
            )));
        }
    }
    let base = def.window_ms();
    let window = window_ms.unwrap_or(base);
    if window < base || window % base != 0 {
        return Err(QueryError::Invalid(format!(
            "window {} is not a multiple of metric `{}`'s window {}",
            format_duration(window),
            def.name,
            format_duration(base)
        )));
    }
    if DAY_MS % window != 0 && window % DAY_MS != 0 {
        return Err(QueryError::Invalid(format!(
            "window {} must divide a day or be a whole number of days",
            format_duration(window)
        )));
    }
    if window != base && !stat.is_combinable() {
        return Err(QueryError::Invalid(format!(
            "`{stat}` cannot be derived for {} windows: metric `{}` keeps {} windows, and {} of \
             several windows do not combine; use window={} or a combinable stat (count, sum, \
             min, max, avg)",
            format_duration(window),
            def.name,
            format_duration(base),
            stat_kind(stat),
            format_duration(base)
        )));
    }
    let keys: Vec<String> = filter.keys().cloned().collect();
    let sets = def.dimension_sets();
    let common = |dim_set: &[String], exact_series, filter| QueryPlan {
        tenant: tenant.to_owned(),
        metric: def.name.clone(),
        stat,
        dim_set: dim_set.join(","),
        exact_series,
        filter,
        base_window_ms: base,
        window_ms: window,
    };
    if sets.contains(&keys) {
        let exact: BTreeMap<&str, Option<&str>> = filter
            .iter()
            .map(|(name, value)| (name.as_str(), Some(value.as_str())))
            .collect();
        let series = serde_json::to_string(&exact).unwrap_or_else(|_| "{}".into());
        return Ok(common(&keys, Some(series), BTreeMap::new()));
    }
    if !stat.is_combinable() {
        return Err(QueryError::Invalid(format!(
            "`{stat}` cannot be derived for a filter on {{{}}}: metric `{}` keeps the dimension \
             sets {}, and {} of several series do not combine; filter on exactly one of those \
             sets, or add it to the metric's rollups",
            keys.join(", "),
            def.name,
            sets.iter()
                .map(|set| format!("{{{}}}", set.join(", ")))
                .collect::<Vec<_>>()
                .join(" "),
            stat_kind(stat)
        )));
    }
    // The smallest kept set containing every filter key (the full set always does).
    let source = sets
        .iter()
        .filter(|set| keys.iter().all(|key| set.contains(key)))
        .min_by_key(|set| set.len())
        .cloned()
        .unwrap_or_default();
    Ok(common(&source, None, filter.clone()))
}

fn stat_kind(stat: Stat) -> &'static str {
    if stat == Stat::Unique {
        "distinct counts"
    } else {
        "percentiles"
    }
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

    #[test]
    fn exact_rollups_serve_every_stat() {
        let plan = plan(
            &amount(),
            "t",
            &filter(&[("region", "eu")]),
            Stat::P99,
            None,
        )
        .unwrap();
        assert_eq!(plan.dim_set, "region");
        assert_eq!(plan.exact_series.as_deref(), Some(r#"{"region":"eu"}"#));
        let total = super::plan(&amount(), "t", &BTreeMap::new(), Stat::Unique, None).unwrap();
        assert_eq!(total.dim_set, "");
        assert_eq!(total.exact_series.as_deref(), Some("{}"));
        let full = super::plan(
            &amount(),
            "t",
            &filter(&[("region", "eu"), ("plan", "pro")]),
            Stat::P50,
            None,
        )
        .unwrap();
        assert_eq!(full.dim_set, "plan,region");
        assert_eq!(
            full.exact_series.as_deref(),
            Some(r#"{"plan":"pro","region":"eu"}"#)
        );
    }

    #[test]
    fn non_derivable_stats_are_refused_with_the_reason() {
        let err = plan(&amount(), "t", &filter(&[("plan", "pro")]), Stat::P99, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("p99") && err.contains("plan"), "{err}");
        let err = plan(
            &amount(),
            "t",
            &BTreeMap::new(),
            Stat::Unique,
            Some(300_000),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("5m"), "{err}");
        let err = plan(
            &amount(),
            "t",
            &filter(&[("color", "x")]),
            Stat::Count,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("color"), "{err}");
        let counts = def(r#"{"name":"c","event_type":"e"}"#);
        assert!(plan(&counts, "t", &BTreeMap::new(), Stat::Sum, None).is_err());
        assert!(plan(&counts, "t", &BTreeMap::new(), Stat::Count, Some(90_000)).is_err());
        assert!(plan(
            &counts,
            "t",
            &BTreeMap::new(),
            Stat::Count,
            Some(7 * 60_000)
        )
        .is_err());
        assert!(plan(
            &counts,
            "t",
            &BTreeMap::new(),
            Stat::Count,
            Some(DAY_MS * 7)
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

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1d"), Some(DAY_MS));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(format_duration(3_600_000), "1h");
        assert_eq!(format_duration(90_000), "90s");
    }
}
