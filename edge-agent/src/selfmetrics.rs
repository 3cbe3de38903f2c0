//! The pipeline's own metrics, computed by the agent (not from metric definitions) so the
//! alert rules can watch the pipeline like any metric:
//!
//! - `pipeline_late`: per tenant, `source` and window of *receive* time, one value per
//!   accepted event: 1 when it arrived more than 60 s
//!   ([`rtdash_shared::metric::PIPELINE_LATE_AFTER_MS`]) after its `occurred_at`, else 0.
//!   `avg` is the late-event rate, `sum` the late events.
//! - `pipeline_dlq`: per tenant, `source` and window of receive time, one value per item of a
//!   request: 1 when it was rejected (dead-lettered), else 0. `avg` is the dead-letter rate.
//!   A rejected item's tenant and source are read leniently from its JSON (`_unknown` when
//!   absent); whole bodies rejected before they were split into items are not counted.
//! - `pipeline_quality`: per tenant, `source`, `event_type`, `outcome` and window of receive
//!   time, one value 1 per late event (outcome `late`) and per rejected item (outcome its
//!   reason code), for the data-quality page; a rejected item's `source` and `event_type` are
//!   read leniently like its tenant. Bounded: at most [`MAX_QUALITY_SERIES`] (tenant, source,
//!   event type, outcome) per flush; further ones are folded into source and event type
//!   `__overflow__`.
//!
//! Windows are [`rtdash_shared::metric::PIPELINE_WINDOW_SECS`] long, by receive time, so these
//! series are never late themselves. The counts are kept per (tenant, source, window) and
//! turned into partial entries at each flush, next to the metric deltas (same batches, same
//! exactly-once path). Bounded: at most [`MAX_SOURCES`] (tenant, source) pairs per flush;
//! further ones are folded into the source `__overflow__`.

use rtdash_shared::event::{Event, ItemHints, RejectCode};
use rtdash_shared::messages::PartialEntry;
use rtdash_shared::metric::{
    OVERFLOW_VALUE, PIPELINE_DLQ_METRIC, PIPELINE_LATE_AFTER_MS, PIPELINE_LATE_METRIC,
    PIPELINE_QUALITY_LATE, PIPELINE_QUALITY_METRIC, PIPELINE_WINDOW_SECS,
};
use rtdash_shared::names::UNKNOWN_TENANT;
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{Sketch, SketchSpec};
use rtdash_shared::time::UnixMillis;
use rtdash_shared::window::window_start;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most (tenant, source) pairs counted between two flushes.
pub const MAX_SOURCES: usize = 10_000;
/// Most (tenant, source, event type, outcome) series of `pipeline_quality` between two
/// flushes.
pub const MAX_QUALITY_SERIES: usize = 10_000;
/// Distinct (tenant, source) pairs of one request counted locally before the shared map.
const LOCAL_PAIRS: usize = 16;
const WINDOW_MS: i64 = PIPELINE_WINDOW_SECS as i64 * 1000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    /// Accepted events.
    accepted: u64,
    /// Of those, late ones.
    late: u64,
    /// Rejected items.
    rejected: u64,
}

type Key = (Box<str>, Box<str>, UnixMillis);
/// Tenant, source, event type, outcome, window.
type QualityKey = (Box<str>, Box<str>, Box<str>, &'static str, UnixMillis);

/// Counts of the pipeline metrics since the last flush.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    counts: Mutex<HashMap<Key, Counts>>,
    quality: Mutex<HashMap<QualityKey, u64>>,
}

impl PipelineMetrics {
    /// Counts one request's outcome: its accepted events and its rejected items (their tenant,
    /// if known, reason and raw bytes), received at `received_at`.
    pub fn observe<'e, 'a: 'e, 'r>(
        &self,
        accepted: impl IntoIterator<Item = &'e Event<'a>>,
        rejected: impl IntoIterator<Item = (Option<&'r str>, RejectCode, &'r [u8])>,
        received_at: UnixMillis,
    ) {
        let window = window_start(received_at, WINDOW_MS);
        // (tenant, source, event type, outcome) of the late events and rejected items, counted
        // in the quality map after the main one.
        let mut quality: Vec<(String, String, String, &'static str)> = Vec::new();
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        // A request has few distinct (tenant, source) pairs: count them here first, in order of
        // first appearance, so the shared map is looked up (and its keys allocated) once per
        // pair, not per event. Past [`LOCAL_PAIRS`] pairs the local counts go to the map and
        // the rest of the request is counted there directly. Either way the map receives the
        // pairs in order of first appearance: the same entries and overflow decisions as one
        // lookup per event.
        let mut local: Vec<(&str, &str, Counts)> = Vec::new();
        let mut last = 0usize;
        let mut direct = false;
        for event in accepted {
            let (tenant, source) = (event.tenant_id.as_ref(), event.source.as_ref());
            let late = received_at.saturating_sub(event.occurred_at) > PIPELINE_LATE_AFTER_MS;
            let entry = if direct {
                slot(&mut counts, tenant, source, window)
            } else {
                let same = |(t, s, _): &(&str, &str, Counts)| *t == tenant && *s == source;
                if !local.get(last).is_some_and(same) {
                    match local.iter().position(same) {
                        Some(index) => last = index,
                        None if local.len() < LOCAL_PAIRS => {
                            local.push((tenant, source, Counts::default()));
                            last = local.len() - 1;
                        }
                        None => {
                            merge(&mut counts, local.drain(..), window);
                            direct = true;
                        }
                    }
                }
                if direct {
                    slot(&mut counts, tenant, source, window)
                } else {
                    &mut local[last].2
                }
            };
            entry.accepted += 1;
            entry.late += u64::from(late);
            if late {
                quality.push((
                    tenant.to_owned(),
                    source.to_owned(),
                    event.event_type.to_string(),
                    PIPELINE_QUALITY_LATE,
                ));
            }
        }
        merge(&mut counts, local.drain(..), window);
        for (tenant, code, raw) in rejected {
            let hints = ItemHints::read(raw, ItemHints::DEFAULT_MAX_LEN);
            let unknown = || UNKNOWN_TENANT.to_owned();
            let tenant = tenant
                .map(str::to_owned)
                .or(hints.tenant_id)
                .unwrap_or_else(unknown);
            let source = hints.source.unwrap_or_else(unknown);
            slot(&mut counts, &tenant, &source, window).rejected += 1;
            let event_type = hints.event_type.unwrap_or_else(unknown);
            quality.push((tenant, source, event_type, code.as_str()));
        }
        drop(counts);
        if quality.is_empty() {
            return;
        }
        let mut map = self.quality.lock().unwrap_or_else(|p| p.into_inner());
        for (tenant, source, event_type, outcome) in quality {
            let key: QualityKey = (
                tenant.into(),
                source.into(),
                event_type.into(),
                outcome,
                window,
            );
            if map.len() >= MAX_QUALITY_SERIES && !map.contains_key(&key) {
                let overflow: QualityKey = (
                    key.0,
                    OVERFLOW_VALUE.into(),
                    OVERFLOW_VALUE.into(),
                    outcome,
                    window,
                );
                *map.entry(overflow).or_default() += 1;
            } else {
                *map.entry(key).or_default() += 1;
            }
        }
    }

    /// Takes the counts as partial entries (one per metric and series).
    pub fn drain(&self) -> Vec<PartialEntry> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        let mut entries = Vec::with_capacity(counts.len() * 2);
        for ((tenant, source, window), c) in counts {
            let series = |metric: &str| {
                SeriesKey::new(
                    tenant.as_ref(),
                    metric,
                    [("source".to_owned(), Some(source.to_string()))],
                )
            };
            if c.accepted > 0 {
                entries.push(entry(
                    series(PIPELINE_LATE_METRIC),
                    window,
                    c.late,
                    c.accepted - c.late,
                ));
            }
            entries.push(entry(
                series(PIPELINE_DLQ_METRIC),
                window,
                c.rejected,
                c.accepted,
            ));
        }
        let quality = std::mem::take(&mut *self.quality.lock().unwrap_or_else(|p| p.into_inner()));
        for ((tenant, source, event_type, outcome, window), n) in quality {
            let series = SeriesKey::new(
                tenant.as_ref(),
                PIPELINE_QUALITY_METRIC,
                [
                    ("source".to_owned(), Some(source.into())),
                    ("event_type".to_owned(), Some(event_type.into())),
                    ("outcome".to_owned(), Some(outcome.to_owned())),
                ],
            );
            entries.push(entry(series, window, n, 0));
        }
        entries
    }
}

/// Adds per-request counts to the map, in order.
fn merge<'p>(
    counts: &mut HashMap<Key, Counts>,
    pairs: impl Iterator<Item = (&'p str, &'p str, Counts)>,
    window: UnixMillis,
) {
    for (tenant, source, local) in pairs {
        let entry = slot(counts, tenant, source, window);
        entry.accepted += local.accepted;
        entry.late += local.late;
    }
}

fn slot<'m>(
    counts: &'m mut HashMap<Key, Counts>,
    tenant: &str,
    source: &str,
    window: UnixMillis,
) -> &'m mut Counts {
    let key: Key = (tenant.into(), source.into(), window);
    if counts.len() >= MAX_SOURCES && !counts.contains_key(&key) {
        return counts
            .entry((tenant.into(), OVERFLOW_VALUE.into(), window))
            .or_default();
    }
    counts.entry(key).or_default()
}

/// A sketch of `ones` values 1 and `zeros` values 0.
fn entry(series: SeriesKey, window: UnixMillis, ones: u64, zeros: u64) -> PartialEntry {
    let mut sketch = repeated(1.0, ones);
    sketch.merge(&repeated(0.0, zeros));
    PartialEntry {
        series,
        window_start: window,
        window_ms: WINDOW_MS,
        sketch,
    }
}

/// A sketch of `value` recorded `n` times, built by doubling: O(log n) merges instead of `n`
/// records (a flush counts every event of the last interval, hundreds of thousands). Count,
/// sum, min and max are exact, as merges are.
fn repeated(value: f64, n: u64) -> Sketch {
    let mut result = Sketch::new(SketchSpec::VALUES);
    let mut power = Sketch::new(SketchSpec::VALUES);
    power.record(Some(value), None);
    let mut rest = n;
    while rest > 0 {
        if rest & 1 == 1 {
            result.merge(&power);
        }
        rest >>= 1;
        if rest > 0 {
            let half = power.clone();
            power.merge(&half);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn event(tenant: &'static str, source: &'static str, occurred_at: i64) -> Event<'static> {
        Event {
            id: None,
            tenant_id: Cow::Borrowed(tenant),
            source: Cow::Borrowed(source),
            event_type: Cow::Borrowed("e"),
            properties: Vec::new(),
            occurred_at,
            weight: 1,
        }
    }

    #[test]
    fn late_and_rejected_shares_per_source_and_window() {
        let metrics = PipelineMetrics::default();
        let now = 1_000_000;
        let mut events: Vec<Event<'_>> = (0..19).map(|_| event("t", "s1", now - 1_000)).collect();
        events.push(event("t", "s1", now - 90_000));
        events.push(event("t", "s2", now - 60_000));
        let bad = br#"{"tenant_id":"t","source":"s1","occured_at":1}"#;
        metrics.observe(
            &events,
            [
                (Some("t"), RejectCode::UnknownField, &bad[..]),
                (None, RejectCode::MalformedJson, &b"not json"[..]),
            ],
            now,
        );
        let entries = metrics.drain();
        assert!(metrics.drain().is_empty(), "drained");
        let find = |metric: &str, source: &str| {
            entries
                .iter()
                .find(|e| {
                    e.series.metric == metric && e.series.dims[0].1.as_deref() == Some(source)
                })
                .unwrap_or_else(|| panic!("{metric} {source}"))
                .sketch
                .stats()
        };
        let late = find(PIPELINE_LATE_METRIC, "s1");
        assert_eq!(
            (late.count, late.sum, late.avg),
            (20, Some(1.0), Some(0.05))
        );
        assert_eq!(
            find(PIPELINE_LATE_METRIC, "s2").sum,
            Some(0.0),
            "exactly 60 s is not late"
        );
        let dlq = find(PIPELINE_DLQ_METRIC, "s1");
        assert_eq!((dlq.count, dlq.sum), (21, Some(1.0)));
        let quality = |tenant: &str, source: &str, event_type: &str, outcome: &str| {
            let wanted = [
                ("event_type", event_type),
                ("outcome", outcome),
                ("source", source),
            ];
            entries
                .iter()
                .filter(|e| e.series.metric == PIPELINE_QUALITY_METRIC && e.series.tenant == tenant)
                .filter(|e| {
                    e.series
                        .dims
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_deref().unwrap_or("")))
                        .eq(wanted)
                })
                .map(|e| e.sketch.stats().count)
                .sum::<u64>()
        };
        assert_eq!(quality("t", "s1", "e", "late"), 1, "the 90 s late event");
        assert_eq!(
            quality("t", "s2", "e", "late"),
            0,
            "exactly 60 s is not late"
        );
        assert_eq!(
            quality("t", "s1", UNKNOWN_TENANT, "unknown_field"),
            1,
            "no event_type in the rejected item"
        );
        assert_eq!(
            quality(
                UNKNOWN_TENANT,
                UNKNOWN_TENANT,
                UNKNOWN_TENANT,
                "malformed_json"
            ),
            1
        );
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.series.metric == PIPELINE_QUALITY_METRIC)
                .count(),
            3
        );
        let unknown = entries
            .iter()
            .find(|e| e.series.tenant == UNKNOWN_TENANT)
            .expect("a rejected item without tenant");
        assert_eq!(unknown.series.metric, PIPELINE_DLQ_METRIC);
        assert!(entries
            .iter()
            .all(|e| e.window_ms == WINDOW_MS && e.window_start % WINDOW_MS == 0));
    }

    /// Counting a request at once (local counts, then the map) gives what counting its events
    /// one request each gives, below and beyond [`LOCAL_PAIRS`] distinct pairs.
    #[test]
    fn a_request_counts_like_its_events_one_by_one() {
        let now = 10_000_000;
        let names: Vec<String> = (0..LOCAL_PAIRS + 4).map(|i| format!("s{i}")).collect();
        for pairs in [3, LOCAL_PAIRS + 4] {
            let events: Vec<Event<'_>> = (0..500)
                .map(|i| Event {
                    source: Cow::Borrowed(names[(i / 2) % pairs].as_str()),
                    ..event(["t1", "t2"][i % 2], "x", now - (i as i64 % 5) * 20_000)
                })
                .collect();
            let at_once = PipelineMetrics::default();
            at_once.observe(
                &events,
                std::iter::empty::<(Option<&str>, RejectCode, &[u8])>(),
                now,
            );
            let one_by_one = PipelineMetrics::default();
            for event in &events {
                one_by_one.observe(
                    [event],
                    std::iter::empty::<(Option<&str>, RejectCode, &[u8])>(),
                    now,
                );
            }
            let counts = |m: PipelineMetrics| {
                let mut counts: Vec<_> = m.counts.into_inner().expect("lock").into_iter().collect();
                counts.sort_by(|a, b| a.0.cmp(&b.0));
                counts
            };
            let expected = counts(one_by_one);
            assert_eq!(expected.len(), pairs * 2);
            assert_eq!(counts(at_once), expected);
        }
    }

    #[test]
    fn repeated_values_sketch_like_values_recorded_one_by_one() {
        for (ones, zeros) in [
            (0, 0),
            (1, 0),
            (0, 3),
            (5, 1_000),
            (300_001, 77),
            (1, 1 << 20),
        ] {
            let mut one_by_one = Sketch::new(SketchSpec::VALUES);
            for _ in 0..ones {
                one_by_one.record(Some(1.0), None);
            }
            for _ in 0..zeros {
                one_by_one.record(Some(0.0), None);
            }
            let mut doubled = repeated(1.0, ones);
            doubled.merge(&repeated(0.0, zeros));
            let (a, b) = (doubled.stats(), one_by_one.stats());
            assert_eq!(
                (a.count, a.sum, a.min, a.max, a.avg),
                (b.count, b.sum, b.min, b.max, b.avg),
                "{ones} ones, {zeros} zeros"
            );
            assert_eq!((a.p50, a.p90, a.p99), (b.p50, b.p90, b.p99));
            let encoded = Sketch::decode(&doubled.encode()).expect("decodes");
            assert_eq!(encoded.count(), ones + zeros);
        }
    }

    #[test]
    fn sources_beyond_the_cap_fold_into_overflow() {
        let metrics = PipelineMetrics::default();
        let names: Vec<String> = (0..MAX_SOURCES + 5).map(|i| format!("s{i}")).collect();
        let events: Vec<Event<'_>> = names
            .iter()
            .map(|s| Event {
                source: Cow::Borrowed(s.as_str()),
                ..event("t", "x", 0)
            })
            .collect();
        metrics.observe(
            &events,
            std::iter::empty::<(Option<&str>, RejectCode, &[u8])>(),
            0,
        );
        let entries = metrics.drain();
        let overflow = entries
            .iter()
            .filter(|e| e.series.dims[0].1.as_deref() == Some(OVERFLOW_VALUE))
            .count();
        assert_eq!(overflow, 2, "one per metric");
        assert_eq!(entries.len(), (MAX_SOURCES + 1) * 2);
    }
}
