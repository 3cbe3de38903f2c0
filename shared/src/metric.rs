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

use crate::codec::same_bytes;
use crate::event::{is_identifier, Event, Scalar};
use crate::sketch::SketchSpec;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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
/// `event_type` value that matches every event type.
pub const ANY_EVENT_TYPE: &str = "*";
/// Default tumbling window, in seconds.
pub const DEFAULT_WINDOW_SECS: u32 = 60;
/// Default cap on distinct series per metric, tenant and window.
pub const DEFAULT_MAX_SERIES: u32 = 10_000;
/// Most dimensions on one metric.
pub const MAX_DIMENSIONS: usize = 8;
/// Most rollups on one metric.
pub const MAX_ROLLUPS: usize = 16;
/// Dimension value given to series folded into a metric's overflow series.
pub const OVERFLOW_VALUE: &str = "__overflow__";

const fn default_window_secs() -> u32 {
    DEFAULT_WINDOW_SECS
}
const fn default_max_series() -> u32 {
    DEFAULT_MAX_SERIES
}

/// A metric definition as users write it (TOML, JSON, or through the gateway's API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDefinition {
    /// Metric name, `[A-Za-z0-9_-]`, at most 64 bytes; unique per tenant.
    pub name: String,
    /// Tenant the metric belongs to; absent means every tenant. A tenant's own definition
    /// overrides an every-tenant definition of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Event type that feeds the metric, or `*` for every type.
    pub event_type: String,
    /// Numeric property aggregated into sum, min, max, avg and percentiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Property whose distinct values are counted (HyperLogLog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<String>,
    /// Dimensions to group by.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Dimension subsets also kept; defaults to the full set and the empty set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollups: Option<Vec<Vec<String>>>,
    /// Tumbling window size in seconds (divides a day).
    #[serde(default = "default_window_secs")]
    pub window_secs: u32,
    /// Cap on distinct series per tenant and window; further series fold into one overflow
    /// series whose dimension values are `__overflow__`.
    #[serde(default = "default_max_series")]
    pub max_series_per_window: u32,
    /// Free text shown in the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What is wrong with a metric definition.
#[derive(Debug, thiserror::Error)]
pub enum MetricDefError {
    /// The JSON could not be parsed (the message names the unknown or mistyped key).
    #[error("metric definition is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The TOML could not be parsed (the message names the unknown or mistyped key; the
    /// location snippet of the parser's own display is left out).
    #[error("metric definition is not valid TOML: {}", .0.message())]
    Toml(#[source] toml::de::Error),
    /// A field has an invalid value.
    #[error("metric `{metric}`: `{field}` {problem}")]
    Invalid {
        /// The metric's name (may itself be the problem).
        metric: String,
        /// The offending field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// A file of metric definitions: `[[metric]]` tables in TOML, or `{"metric": [...]}` in JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricFile {
    /// The definitions.
    #[serde(default)]
    pub metric: Vec<MetricDefinition>,
}

impl MetricFile {
    /// Parses and validates a TOML file of definitions.
    pub fn from_toml(text: &str) -> Result<Self, MetricDefError> {
        let file: MetricFile = toml::from_str(text).map_err(MetricDefError::Toml)?;
        for def in &file.metric {
            def.validate()?;
        }
        Ok(file)
    }
}

impl MetricDefinition {
    /// Parses and validates one definition from JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MetricDefError> {
        let def: MetricDefinition = serde_json::from_slice(bytes).map_err(MetricDefError::Json)?;
        def.validate()?;
        Ok(def)
    }

    /// Parses and validates one definition from a TOML table.
    pub fn from_toml(text: &str) -> Result<Self, MetricDefError> {
        let def: MetricDefinition = toml::from_str(text).map_err(MetricDefError::Toml)?;
        def.validate()?;
        Ok(def)
    }

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

    /// Checks every rule; the error names the field and the problem.
    pub fn validate(&self) -> Result<(), MetricDefError> {
        let invalid = |field: &'static str, problem: String| MetricDefError::Invalid {
            metric: self.name.clone(),
            field,
            problem,
        };
        if !is_identifier(&self.name, 64) {
            return Err(invalid(
                "name",
                "must be 1 to 64 characters from [A-Za-z0-9_-]".into(),
            ));
        }
        if let Some(tenant) = &self.tenant_id {
            if !is_identifier(tenant, 128) {
                return Err(invalid(
                    "tenant_id",
                    "must be 1 to 128 characters from [A-Za-z0-9_-]".into(),
                ));
            }
        }
        if self.event_type != ANY_EVENT_TYPE && !is_identifier(&self.event_type, 128) {
            return Err(invalid(
                "event_type",
                "must be `*` or 1 to 128 characters from [A-Za-z0-9_-]".into(),
            ));
        }
        for (field, value) in [("field", &self.field), ("unique", &self.unique)] {
            if let Some(name) = value {
                if !is_property_name(name) {
                    return Err(invalid(
                        field,
                        "must name a property (1 to 128 bytes)".into(),
                    ));
                }
            }
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            return Err(invalid(
                "dimensions",
                format!(
                    "has {}, the limit is {MAX_DIMENSIONS}",
                    self.dimensions.len()
                ),
            ));
        }
        let mut seen = HashSet::new();
        for dimension in &self.dimensions {
            if !is_property_name(dimension) {
                return Err(invalid(
                    "dimensions",
                    format!("{dimension:?} is not a valid property name"),
                ));
            }
            if !seen.insert(dimension.as_str()) {
                return Err(invalid("dimensions", format!("lists {dimension:?} twice")));
            }
        }
        if let Some(rollups) = &self.rollups {
            if rollups.len() > MAX_ROLLUPS {
                return Err(invalid(
                    "rollups",
                    format!("has {}, the limit is {MAX_ROLLUPS}", rollups.len()),
                ));
            }
            for rollup in rollups {
                let mut in_rollup = HashSet::new();
                for dimension in rollup {
                    if !seen.contains(dimension.as_str()) {
                        return Err(invalid(
                            "rollups",
                            format!("{dimension:?} is not one of the metric's dimensions"),
                        ));
                    }
                    if !in_rollup.insert(dimension.as_str()) {
                        return Err(invalid(
                            "rollups",
                            format!("a rollup lists {dimension:?} twice"),
                        ));
                    }
                }
            }
        }
        if self.window_secs == 0 || 86_400 % self.window_secs != 0 {
            return Err(invalid(
                "window_secs",
                format!("{} does not divide a day (86400 s)", self.window_secs),
            ));
        }
        if self.max_series_per_window == 0 {
            return Err(invalid(
                "max_series_per_window",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The dimension sets kept, each sorted by name, without repeats: the full set first,
    /// then the rollups (default: the empty set).
    pub fn dimension_sets(&self) -> Vec<Vec<String>> {
        let mut full = self.dimensions.clone();
        full.sort();
        let mut sets = vec![full];
        let rollups = self.rollups.clone().unwrap_or_else(|| vec![Vec::new()]);
        for mut rollup in rollups {
            rollup.sort();
            if !sets.contains(&rollup) {
                sets.push(rollup);
            }
        }
        sets
    }

    /// Which optional sketch structures the metric needs.
    pub fn sketch_spec(&self) -> SketchSpec {
        SketchSpec {
            values: self.field.is_some(),
            unique: self.unique.is_some(),
        }
    }

    /// Window size in milliseconds.
    pub fn window_ms(&self) -> i64 {
        i64::from(self.window_secs) * 1000
    }

    /// Whether the definition applies to every tenant.
    pub fn is_global(&self) -> bool {
        self.tenant_id.is_none()
    }
}

fn is_property_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && !name.chars().any(char::is_control)
}

/// A metric definition prepared for matching events quickly.
#[derive(Debug)]
pub struct CompiledMetric {
    /// The definition.
    pub def: MetricDefinition,
    /// Its dimension sets (see [`MetricDefinition::dimension_sets`]).
    pub dimension_sets: Vec<Vec<String>>,
    /// The full dimension list, sorted by name.
    pub sorted_dimensions: Vec<String>,
    /// Each dimension set as indices into `sorted_dimensions` (ascending, so in name order).
    pub dimension_set_indices: Vec<Vec<usize>>,
    /// Its sketch structures.
    pub spec: SketchSpec,
    /// Where each of `sorted_dimensions` is read from in an event.
    pub(crate) dimension_sources: Vec<DimensionSource>,
    /// Where the unique key is read from, if the metric has one.
    pub(crate) unique_source: Option<DimensionSource>,
}

/// Where an event's value of a dimension (or unique key) comes from, resolved once per
/// definition instead of matching the name on every event (see [`Event::dimension`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DimensionSource {
    /// The top-level `tenant_id`.
    Tenant,
    /// The top-level `source`.
    Source,
    /// The top-level `event_type`.
    EventType,
    /// A property of this name.
    Property(String),
}

/// The property `name` of `event` ([`Event::property`], with the names compared inline: they are
/// short, and this runs for every event and metric).
#[inline]
pub(crate) fn property<'e, 'a>(event: &'e Event<'a>, name: &str) -> Option<&'e Scalar<'a>> {
    event
        .properties
        .iter()
        .find(|(key, _)| same_bytes(key.as_bytes(), name.as_bytes()))
        .map(|(_, value)| value)
}

impl DimensionSource {
    /// The source of the dimension `name`, as [`Event::dimension`] resolves it.
    pub(crate) fn of(name: &str) -> Self {
        match name {
            "tenant_id" => Self::Tenant,
            "source" => Self::Source,
            "event_type" => Self::EventType,
            other => Self::Property(other.to_owned()),
        }
    }
}

/// The definitions in force, indexed for matching. Cheap to share (`Arc`) and swap when the
/// configuration changes.
#[derive(Debug, Default)]
pub struct MetricSet {
    metrics: Vec<Arc<CompiledMetric>>,
    by_event_type: HashMap<String, Vec<usize>, foldhash::fast::RandomState>,
    any_event_type: Vec<usize>,
    /// (tenant, name) pairs where a tenant's definition overrides an every-tenant one.
    overridden: HashSet<(String, String)>,
}

impl MetricSet {
    /// Builds the set from definitions; the built-in `events` metric is always included and
    /// cannot be replaced. Later definitions with the same (tenant, name) replace earlier ones.
    pub fn new(defs: impl IntoIterator<Item = MetricDefinition>) -> Self {
        Self::build(defs, true)
    }

    /// Builds the set from exactly `defs`, without the built-in `events` metric: for
    /// recomputing chosen metrics from the raw-event archive, and for benchmarks that must
    /// compute exactly one workload.
    pub fn without_builtin(defs: impl IntoIterator<Item = MetricDefinition>) -> Self {
        Self::build(defs, false)
    }

    fn build(defs: impl IntoIterator<Item = MetricDefinition>, builtin: bool) -> Self {
        let mut unique: HashMap<(Option<String>, String), MetricDefinition> = HashMap::new();
        for def in defs {
            if def.name == BUILTIN_EVENTS_METRIC {
                continue;
            }
            unique.insert((def.tenant_id.clone(), def.name.clone()), def);
        }
        let mut defs: Vec<MetricDefinition> = unique.into_values().collect();
        defs.sort_by(|a, b| (&a.tenant_id, &a.name).cmp(&(&b.tenant_id, &b.name)));
        if builtin {
            defs.insert(0, MetricDefinition::builtin_events());
        }

        let mut set = MetricSet::default();
        for def in defs {
            let index = set.metrics.len();
            if def.event_type == ANY_EVENT_TYPE {
                set.any_event_type.push(index);
            } else {
                set.by_event_type
                    .entry(def.event_type.clone())
                    .or_default()
                    .push(index);
            }
            if let Some(tenant) = &def.tenant_id {
                set.overridden.insert((tenant.clone(), def.name.clone()));
            }
            let dimension_sets = def.dimension_sets();
            let sorted_dimensions = dimension_sets[0].clone();
            let dimension_set_indices = dimension_sets
                .iter()
                .map(|names| {
                    names
                        .iter()
                        .filter_map(|name| sorted_dimensions.iter().position(|d| d == name))
                        .collect()
                })
                .collect();
            let dimension_sources = sorted_dimensions
                .iter()
                .map(|name| DimensionSource::of(name))
                .collect();
            let unique_source = def.unique.as_deref().map(DimensionSource::of);
            set.metrics.push(Arc::new(CompiledMetric {
                dimension_sources,
                unique_source,
                dimension_sets,
                sorted_dimensions,
                dimension_set_indices,
                spec: def.sketch_spec(),
                def,
            }));
        }
        set
    }

    /// Every metric in the set.
    pub fn all(&self) -> &[Arc<CompiledMetric>] {
        &self.metrics
    }

    /// The metric `name` as it applies to `tenant`.
    pub fn get(&self, tenant: &str, name: &str) -> Option<&Arc<CompiledMetric>> {
        self.metrics
            .iter()
            .filter(|m| m.def.name == name && self.applies(m, tenant))
            .max_by_key(|m| m.def.tenant_id.is_some())
    }

    /// Calls `f` for each metric the event feeds.
    pub fn for_each_match<'s>(&'s self, event: &Event<'_>, mut f: impl FnMut(&'s CompiledMetric)) {
        self.for_each_match_value(event, |metric, _| f(metric));
    }

    /// Calls `f` for each metric the event feeds, with the value of the metric's field (`None`
    /// for a metric without one).
    #[inline]
    pub(crate) fn for_each_match_value<'s>(
        &'s self,
        event: &Event<'_>,
        mut f: impl FnMut(&'s CompiledMetric, Option<f64>),
    ) {
        let typed = self
            .by_event_type
            .get(event.event_type.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for &index in self.any_event_type.iter().chain(typed) {
            let metric = &self.metrics[index];
            if !self.applies(metric, &event.tenant_id) {
                continue;
            }
            let value = match &metric.def.field {
                Some(field) => match property(event, field).and_then(|v| v.as_f64()) {
                    Some(value) => Some(value),
                    None => continue,
                },
                None => None,
            };
            f(metric, value);
        }
    }

    fn applies(&self, metric: &CompiledMetric, tenant: &str) -> bool {
        match &metric.def.tenant_id {
            Some(own) => own == tenant,
            None => {
                self.overridden.is_empty()
                    || !self
                        .overridden
                        .contains(&(tenant.to_owned(), metric.def.name.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse_event, EventLimits};

    fn def(json: &str) -> Result<MetricDefinition, MetricDefError> {
        MetricDefinition::from_json(json.as_bytes())
    }

    #[test]
    fn parses_toml_and_json() {
        let file = MetricFile::from_toml(
            r#"
            [[metric]]
            name = "checkout_amount"
            event_type = "payment_completed"
            field = "amount_usd"
            unique = "user_id"
            dimensions = ["region", "plan"]
            rollups = [["region"], []]
            "#,
        )
        .expect("valid TOML");
        assert_eq!(file.metric.len(), 1);
        assert_eq!(
            file.metric[0].dimension_sets(),
            vec![
                vec!["plan".to_owned(), "region".to_owned()],
                vec!["region".to_owned()],
                vec![]
            ]
        );
        let json = def(r#"{"name":"logins","event_type":"login","dimensions":["region"]}"#)
            .expect("valid JSON");
        assert_eq!(json.window_secs, 60);
        assert_eq!(
            json.dimension_sets(),
            vec![vec!["region".to_owned()], vec![]]
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        let err = def(r#"{"name":"x","event_type":"e","dimension":["a"]}"#).unwrap_err();
        assert!(err.to_string().contains("dimension"), "{err}");
        let err =
            MetricFile::from_toml("[[metric]]\nname='x'\nevent_type='e'\nfeild='a'\n").unwrap_err();
        assert!(err.to_string().contains("feild"), "{err}");
        for (json, field) in [
            (r#"{"name":"a b","event_type":"e"}"#, "name"),
            (r#"{"name":"x","event_type":"e.f"}"#, "event_type"),
            (
                r#"{"name":"x","event_type":"e","dimensions":["a","a"]}"#,
                "dimensions",
            ),
            (
                r#"{"name":"x","event_type":"e","dimensions":["a"],"rollups":[["b"]]}"#,
                "rollups",
            ),
            (
                r#"{"name":"x","event_type":"e","window_secs":7}"#,
                "window_secs",
            ),
            (
                r#"{"name":"x","event_type":"e","max_series_per_window":0}"#,
                "max_series_per_window",
            ),
            (r#"{"name":"x","event_type":"e","field":""}"#, "field"),
        ] {
            match def(json) {
                Err(MetricDefError::Invalid { field: got, .. }) => assert_eq!(got, field, "{json}"),
                other => panic!("{json}: expected invalid {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn parse_errors_keep_their_cause() {
        use std::error::Error as _;
        let err = def(r#"{"name":"x""#).unwrap_err();
        assert!(matches!(err, MetricDefError::Json(_)), "{err:?}");
        assert!(err.source().is_some());
        let err = MetricFile::from_toml("[[metric]]\nname=").unwrap_err();
        assert!(matches!(err, MetricDefError::Toml(_)), "{err:?}");
        assert!(err.source().is_some());
        assert!(err
            .to_string()
            .starts_with("metric definition is not valid TOML: "));
    }

    fn event(json: &str) -> Event<'_> {
        parse_event(json.as_bytes(), &EventLimits::default(), 1_705_327_532_000).expect("valid")
    }

    fn matched(set: &MetricSet, e: &Event<'_>) -> Vec<String> {
        let mut names = Vec::new();
        set.for_each_match(e, |m| {
            names.push(format!(
                "{}:{}",
                m.def.tenant_id.as_deref().unwrap_or("*"),
                m.def.name
            ))
        });
        names.sort();
        names
    }

    #[test]
    fn matching_respects_type_tenant_field_and_overrides() {
        let set = MetricSet::new([
            def(r#"{"name":"amount","event_type":"pay","field":"usd"}"#).unwrap(),
            def(r#"{"name":"amount","tenant_id":"t2","event_type":"pay","field":"eur"}"#).unwrap(),
            def(r#"{"name":"logins","event_type":"login"}"#).unwrap(),
            def(r#"{"name":"events","event_type":"login"}"#).unwrap(),
        ]);
        let pay = event(
            r#"{"tenant_id":"t1","source":"s","event_type":"pay","properties":{"usd":3},"occurred_at":"2024-01-15T14:05:30Z"}"#,
        );
        assert_eq!(matched(&set, &pay), vec!["*:amount", "*:events"]);
        let no_field = event(
            r#"{"tenant_id":"t1","source":"s","event_type":"pay","properties":{"usd":"3"},"occurred_at":"2024-01-15T14:05:30Z"}"#,
        );
        assert_eq!(matched(&set, &no_field), vec!["*:events"]);
        let t2 = event(
            r#"{"tenant_id":"t2","source":"s","event_type":"pay","properties":{"usd":3,"eur":2},"occurred_at":"2024-01-15T14:05:30Z"}"#,
        );
        assert_eq!(matched(&set, &t2), vec!["*:events", "t2:amount"]);
        assert_eq!(
            set.get("t2", "amount").and_then(|m| m.def.field.clone()),
            Some("eur".into())
        );
        assert_eq!(
            set.get("t1", "amount").and_then(|m| m.def.field.clone()),
            Some("usd".into())
        );
        // the built-in `events` metric cannot be replaced
        assert_eq!(
            set.get("t1", "events").map(|m| m.def.event_type.clone()),
            Some("*".into())
        );
    }
}
