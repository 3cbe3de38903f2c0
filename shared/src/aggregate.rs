//! The aggregation code shared by every path that turns events into window sketches: the edge
//! agent's live path, recomputation from the raw-event archive, and the in-process benchmark.
//! One implementation, so a backfill computes exactly what the live path computed.
//!
//! [`Aggregator::add`] folds an event into the delta sketch of every (metric, dimension set)
//! series it feeds; [`Aggregator::drain`] takes the deltas accumulated since the previous
//! drain. Bounded memory: per tenant, metric, dimension set and window at most
//! `max_series_per_window` distinct series are admitted; events of further series fold into
//! one overflow series (every dimension value `__overflow__`) and are counted.

use crate::event::Event;
use crate::messages::PartialEntry;
use crate::metric::{CompiledMetric, MetricSet, OVERFLOW_VALUE};
use crate::series::{series_id, CanonicalWriter, SeriesKey};
use crate::sketch::{unique_hash, Sketch};
use crate::time::UnixMillis;
use crate::window::window_start;
use foldhash::fast::RandomState;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Counters of what [`Aggregator::add`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddOutcome {
    /// Series deltas updated (one per matched metric and dimension set).
    pub series_updated: usize,
    /// Of those, how many were folded into an overflow series.
    pub overflowed: usize,
}

/// Folds events into per-window delta sketches.
#[derive(Debug)]
pub struct Aggregator {
    metrics: Arc<MetricSet>,
    /// Everything `add` mutates, apart from `metrics` so that `add` can borrow both at once.
    work: Work,
    overflowed_total: u64,
}

/// The mutable state of an [`Aggregator`].
#[derive(Debug)]
struct Work {
    /// Key: window start (8 bytes LE) | window size (8 bytes LE) | canonical series bytes.
    deltas: HashMap<Box<[u8]>, Sketch, RandomState>,
    /// Series admitted per (tenant, metric, dimension set, window), for the series cap.
    admitted: HashMap<CapKey, HashSet<u64, RandomState>, RandomState>,
    /// Reused key buffer.
    scratch: Vec<u8>,
    /// Reused buffer holding the canonical text of the current event's dimension values.
    text: String,
    /// Byte range of each dimension value in `text` (`None`: absent).
    ranges: Vec<Option<(usize, usize)>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CapKey {
    tenant: Box<str>,
    metric: Box<str>,
    dim_set: usize,
    window_start: UnixMillis,
}

const KEY_PREFIX: usize = 16;

impl Aggregator {
    /// An aggregator over `metrics`.
    pub fn new(metrics: Arc<MetricSet>) -> Self {
        Self {
            metrics,
            work: Work {
                deltas: HashMap::default(),
                admitted: HashMap::default(),
                scratch: Vec::with_capacity(128),
                text: String::with_capacity(128),
                ranges: Vec::with_capacity(8),
            },
            overflowed_total: 0,
        }
    }

    /// Replaces the metric definitions (applies to events added from now on).
    pub fn set_metrics(&mut self, metrics: Arc<MetricSet>) {
        self.metrics = metrics;
    }

    /// The definitions in force.
    pub fn metrics(&self) -> &Arc<MetricSet> {
        &self.metrics
    }

    /// Folds one validated event into every series it feeds.
    pub fn add(&mut self, event: &Event<'_>) -> AddOutcome {
        let mut outcome = AddOutcome::default();
        // Borrow the two fields apart instead of cloning the `Arc` per event: that clone is an
        // atomic increment and decrement of a count shared by every thread's aggregator over
        // the same set, a cache line that bounces between cores on every event.
        let Self { metrics, work, .. } = self;
        metrics.for_each_match(event, |metric| {
            work.add_to_metric(metric, event, &mut outcome)
        });
        self.overflowed_total += outcome.overflowed as u64;
        outcome
    }

    /// Takes every delta accumulated since the previous drain.
    pub fn drain(&mut self) -> Vec<PartialEntry> {
        let mut entries = Vec::with_capacity(self.work.deltas.len());
        for (key, sketch) in self.work.deltas.drain() {
            let (prefix, canonical) = key.split_at(KEY_PREFIX);
            let mut start = [0u8; 8];
            let mut size = [0u8; 8];
            start.copy_from_slice(&prefix[..8]);
            size.copy_from_slice(&prefix[8..]);
            // The key was written by `write_key` in this process; decoding cannot fail.
            let Ok(series) = SeriesKey::from_canonical(canonical) else {
                continue;
            };
            entries.push(PartialEntry {
                series,
                window_start: i64::from_le_bytes(start),
                window_ms: i64::from_le_bytes(size),
                sketch,
            });
        }
        entries
    }

    /// Forgets series-cap bookkeeping of windows that started before `before`.
    pub fn forget_windows_before(&mut self, before: UnixMillis) {
        self.work
            .admitted
            .retain(|key, _| key.window_start >= before);
    }

    /// Series with a pending delta.
    pub fn pending_series(&self) -> usize {
        self.work.deltas.len()
    }

    /// Events folded into overflow series so far.
    pub fn overflowed_total(&self) -> u64 {
        self.overflowed_total
    }

    /// Approximate heap bytes held (deltas and series-cap bookkeeping): hash-table slots by
    /// capacity, keys, sketch heap, and a per-allocation overhead for the allocator. O(series).
    pub fn approx_bytes(&self) -> usize {
        const ALLOCATION_OVERHEAD: usize = 16;
        let delta_slot = std::mem::size_of::<(Box<[u8]>, Sketch)>() + 1;
        let deltas: usize = self.work.deltas.capacity() * delta_slot
            + self
                .work
                .deltas
                .iter()
                .map(|(key, sketch)| key.len() + sketch.heap_bytes() + 2 * ALLOCATION_OVERHEAD)
                .sum::<usize>();
        let cap_slot = std::mem::size_of::<(CapKey, HashSet<u64, RandomState>)>() + 1;
        let admitted: usize = self.work.admitted.capacity() * cap_slot
            + self
                .work
                .admitted
                .iter()
                .map(|(key, set)| {
                    key.tenant.len()
                        + key.metric.len()
                        + set.capacity() * 9
                        + 3 * ALLOCATION_OVERHEAD
                })
                .sum::<usize>();
        deltas + admitted
    }
}

impl Work {
    fn add_to_metric(
        &mut self,
        metric: &CompiledMetric,
        event: &Event<'_>,
        outcome: &mut AddOutcome,
    ) {
        let def = &metric.def;
        let window_ms = def.window_ms();
        let start = window_start(event.occurred_at, window_ms);
        let value = def
            .field
            .as_deref()
            .and_then(|field| event.property(field))
            .and_then(|v| v.as_f64());
        // The canonical text of every dimension value, computed once for all dimension sets.
        self.text.clear();
        self.ranges.clear();
        for name in &metric.sorted_dimensions {
            let range = event.dimension(name).map(|value| {
                let from = self.text.len();
                value.write_canonical(&mut self.text);
                (from, self.text.len())
            });
            self.ranges.push(range);
        }
        let unique = def.unique.as_deref().and_then(|name| {
            let value = event.dimension(name)?;
            let from = self.text.len();
            value.write_canonical(&mut self.text);
            Some(unique_hash(&self.text.as_bytes()[from..]))
        });
        for (set_index, indices) in metric.dimension_set_indices.iter().enumerate() {
            self.write_key(start, window_ms, &event.tenant_id, metric, indices, false);
            if let Some(sketch) = self.deltas.get_mut(self.scratch.as_slice()) {
                sketch.record(value, unique);
                outcome.series_updated += 1;
                continue;
            }
            let id = series_id(&self.scratch[KEY_PREFIX..]);
            let cap_key = CapKey {
                tenant: event.tenant_id.as_ref().into(),
                metric: def.name.as_str().into(),
                dim_set: set_index,
                window_start: start,
            };
            let admitted = self.admitted.entry(cap_key).or_default();
            let fits =
                admitted.contains(&id) || admitted.len() < def.max_series_per_window as usize;
            if fits {
                admitted.insert(id);
            } else {
                self.write_key(start, window_ms, &event.tenant_id, metric, indices, true);
                outcome.overflowed += 1;
            }
            match self.deltas.get_mut(self.scratch.as_slice()) {
                Some(sketch) => sketch.record(value, unique),
                None => {
                    let mut sketch = Sketch::new(metric.spec);
                    sketch.record(value, unique);
                    self.deltas.insert(self.scratch.as_slice().into(), sketch);
                }
            }
            outcome.series_updated += 1;
        }
    }

    /// Writes the delta key of one dimension set into `scratch`; with `overflow` every value
    /// is [`OVERFLOW_VALUE`].
    fn write_key(
        &mut self,
        start: UnixMillis,
        window_ms: i64,
        tenant: &str,
        metric: &CompiledMetric,
        indices: &[usize],
        overflow: bool,
    ) {
        let Self {
            scratch,
            text,
            ranges,
            ..
        } = self;
        scratch.clear();
        scratch.extend_from_slice(&start.to_le_bytes());
        scratch.extend_from_slice(&window_ms.to_le_bytes());
        let mut writer = CanonicalWriter::start(scratch, tenant, &metric.def.name, indices.len());
        for &index in indices {
            let value = if overflow {
                Some(OVERFLOW_VALUE)
            } else {
                ranges[index].map(|(from, to)| &text[from..to])
            };
            writer.dimension(&metric.sorted_dimensions[index], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse_event, EventLimits};
    use crate::metric::MetricDefinition;
    use std::collections::BTreeMap;

    const NOW: UnixMillis = 1_705_327_532_000;

    fn event(tenant: &str, kind: &str, props: &str, at_offset_ms: i64) -> Event<'static> {
        let at = crate::time::format_rfc3339(NOW + at_offset_ms);
        let json = format!(
            r#"{{"tenant_id":"{tenant}","source":"svc","event_type":"{kind}","properties":{props},"occurred_at":"{at}"}}"#
        );
        parse_event(json.as_bytes(), &EventLimits::default(), NOW)
            .expect("valid")
            .into_owned()
    }

    fn amount_metric(cap: u32) -> MetricDefinition {
        let mut def = MetricDefinition::from_json(
            br#"{"name":"amount","event_type":"pay","field":"usd","unique":"user","dimensions":["region"]}"#,
        )
        .expect("valid");
        def.max_series_per_window = cap;
        def
    }

    fn by_series(entries: &[PartialEntry]) -> BTreeMap<(String, String, i64), u64> {
        entries
            .iter()
            .map(|e| {
                (
                    (
                        e.series.metric.clone(),
                        e.series.dims_json(),
                        e.window_start,
                    ),
                    e.sketch.count(),
                )
            })
            .collect()
    }

    #[test]
    fn events_fold_into_every_dimension_set_and_window() {
        let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(100)])));
        for (region, usd, user, offset) in [
            ("eu", 1.0, 1, 0),
            ("eu", 2.0, 2, 0),
            ("us", 4.0, 1, 0),
            ("eu", 8.0, 3, -60_000),
        ] {
            let props = format!(r#"{{"region":"{region}","usd":{usd},"user":{user}}}"#);
            let outcome = agg.add(&event("t", "pay", &props, offset));
            // amount: {region} and {}; events: 4 dimension sets
            assert_eq!(outcome.series_updated, 6);
        }
        let entries = agg.drain();
        assert_eq!(agg.pending_series(), 0);
        let counts = by_series(&entries);
        let w = window_start(NOW, 60_000);
        assert_eq!(
            counts[&("amount".into(), r#"{"region":"eu"}"#.into(), w)],
            2
        );
        assert_eq!(
            counts[&("amount".into(), r#"{"region":"us"}"#.into(), w)],
            1
        );
        assert_eq!(counts[&("amount".into(), "{}".into(), w)], 3);
        assert_eq!(counts[&("amount".into(), "{}".into(), w - 60_000)], 1);
        assert_eq!(counts[&("events".into(), "{}".into(), w)], 3);
        let total = entries
            .iter()
            .find(|e| {
                e.series.metric == "amount" && e.series.dims.is_empty() && e.window_start == w
            })
            .expect("total");
        let stats = total.sketch.stats();
        assert_eq!(stats.sum, Some(7.0));
        assert_eq!(stats.min, Some(1.0));
        assert_eq!(stats.max, Some(4.0));
        assert_eq!(stats.unique, Some(2));
    }

    #[test]
    fn series_beyond_the_cap_fold_into_overflow() {
        let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(2)])));
        for region in ["a", "b", "c", "d", "a"] {
            agg.add(&event(
                "t",
                "pay",
                &format!(r#"{{"region":"{region}","usd":1}}"#),
                0,
            ));
        }
        assert_eq!(agg.overflowed_total(), 2);
        let counts = by_series(&agg.drain());
        let w = window_start(NOW, 60_000);
        assert_eq!(counts[&("amount".into(), r#"{"region":"a"}"#.into(), w)], 2);
        assert_eq!(counts[&("amount".into(), r#"{"region":"b"}"#.into(), w)], 1);
        assert_eq!(
            counts[&("amount".into(), r#"{"region":"__overflow__"}"#.into(), w)],
            2
        );
        assert_eq!(
            counts[&("amount".into(), "{}".into(), w)],
            5,
            "the total is never capped away"
        );
        // Admission survives a drain: `a` is still admitted, `c` still overflows.
        agg.add(&event("t", "pay", r#"{"region":"c","usd":1}"#, 0));
        agg.add(&event("t", "pay", r#"{"region":"a","usd":1}"#, 0));
        let counts = by_series(&agg.drain());
        assert_eq!(counts[&("amount".into(), r#"{"region":"a"}"#.into(), w)], 1);
        assert_eq!(
            counts[&("amount".into(), r#"{"region":"__overflow__"}"#.into(), w)],
            1
        );
    }

    #[test]
    fn missing_dimensions_are_null() {
        let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(10)])));
        agg.add(&event("t", "pay", r#"{"usd":1}"#, 0));
        let counts = by_series(&agg.drain());
        assert_eq!(
            counts[&(
                "amount".into(),
                r#"{"region":null}"#.into(),
                window_start(NOW, 60_000)
            )],
            1
        );
    }
}
