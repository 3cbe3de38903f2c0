//! Definitions compiled for matching: [`MetricSet`] finds the metrics an event feeds (by event
//! type, tenant and field) with where each dimension is read from resolved once per definition.

use super::builtin::BUILTIN_EVENTS_METRIC;
use super::definition::{MetricDefinition, ANY_EVENT_TYPE};
use crate::codec::same_bytes;
use crate::event::{Event, Scalar};
use crate::sketch::SketchSpec;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

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
    use super::super::definition::MetricDefError;
    use super::*;
    use crate::event::{parse_event, EventLimits};

    fn def(json: &str) -> Result<MetricDefinition, MetricDefError> {
        MetricDefinition::from_json(json.as_bytes())
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
