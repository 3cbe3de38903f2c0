//! Metric definitions, filters, live updates and stored rows shared by the crate's unit tests.

use crate::query::WindowRow;
use rtdash_shared::messages::WindowUpdate;
use rtdash_shared::metric::MetricDefinition;
use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec, Stats};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A definition from its JSON.
pub fn def(json: &str) -> MetricDefinition {
    MetricDefinition::from_json(json.as_bytes()).expect("valid definition")
}

/// `amount`: a numeric field, a unique property, two dimensions kept with two rollups.
pub fn amount() -> MetricDefinition {
    def(
        r#"{"name":"amount","event_type":"pay","field":"usd","unique":"user",
            "dimensions":["region","plan"],"rollups":[["region"],[]]}"#,
    )
}

/// A dimension filter from pairs.
pub fn filter(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A provisional 1-minute live update of tenant `t`, metric `m`.
pub fn update(start: i64, dims: &[(&str, &str)], count: u64, updated_at: i64) -> WindowUpdate {
    WindowUpdate {
        tenant_id: "t".into(),
        metric: "m".into(),
        dimensions: dims
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect(),
        window_start: start,
        window_end: start + 60_000,
        stats: Stats {
            count,
            sum: Some(count as f64),
            ..Stats::default()
        },
        revision: 0,
        is_final: false,
        late_count: 0,
        updated_at,
        state: None,
    }
}

/// A sketch of one event per value (user = value).
pub fn sketch_of(values: &[f64]) -> Sketch {
    let mut sketch = Sketch::new(SketchSpec::ALL);
    for v in values {
        sketch.record(Some(*v), Some(unique_hash(&v.to_le_bytes())));
    }
    sketch
}

/// A final stored 1-minute row of the series `dims`, its numbers and state from
/// [`sketch_of`]`(values)`.
pub fn sketched(start: i64, dims: &[(&str, &str)], values: &[f64]) -> WindowRow {
    let sketch = sketch_of(values);
    let series = serde_json::to_string(&dims.iter().copied().collect::<BTreeMap<_, _>>())
        .expect("dimensions encode");
    WindowRow {
        window_start: start,
        window_end: start + 60_000,
        dims: WindowRow::parse_dims(&series),
        series,
        stats: sketch.stats(),
        state: Some(Arc::new(sketch)),
        revision: 0,
        is_final: true,
        late_count: 0,
        updated_at: start + 61_000,
    }
}
