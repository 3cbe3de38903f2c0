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
//!
//! Windows are [`rtdash_shared::metric::PIPELINE_WINDOW_SECS`] long, by receive time, so these
//! series are never late themselves. The counts are kept per (tenant, source, window) and
//! turned into partial entries at each flush, next to the metric deltas (same batches, same
//! exactly-once path). Bounded: at most [`MAX_SOURCES`] (tenant, source) pairs per flush;
//! further ones are folded into the source `__overflow__`.

use rtdash_shared::event::{is_identifier, Event};
use rtdash_shared::messages::PartialEntry;
use rtdash_shared::metric::{
    OVERFLOW_VALUE, PIPELINE_DLQ_METRIC, PIPELINE_LATE_AFTER_MS, PIPELINE_LATE_METRIC,
    PIPELINE_WINDOW_SECS,
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

/// Counts of the pipeline metrics since the last flush.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    counts: Mutex<HashMap<Key, Counts>>,
}

impl PipelineMetrics {
    /// Counts one request's outcome: its accepted events and its rejected items (their tenant,
    /// if known, and raw bytes), received at `received_at`.
    pub fn observe<'e, 'a: 'e, 'r>(
        &self,
        accepted: impl IntoIterator<Item = &'e Event<'a>>,
        rejected: impl IntoIterator<Item = (Option<&'r str>, &'r [u8])>,
        received_at: UnixMillis,
    ) {
        let window = window_start(received_at, WINDOW_MS);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for event in accepted {
            let entry = slot(&mut counts, &event.tenant_id, &event.source, window);
            entry.accepted += 1;
            if received_at.saturating_sub(event.occurred_at) > PIPELINE_LATE_AFTER_MS {
                entry.late += 1;
            }
        }
        for (tenant, raw) in rejected {
            let (hint_tenant, source) = hints(raw);
            let tenant = tenant
                .map(str::to_owned)
                .or(hint_tenant)
                .unwrap_or_else(|| UNKNOWN_TENANT.to_owned());
            let source = source.unwrap_or_else(|| UNKNOWN_TENANT.to_owned());
            slot(&mut counts, &tenant, &source, window).rejected += 1;
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
        entries
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
    let mut sketch = Sketch::new(SketchSpec::VALUES);
    for _ in 0..ones {
        sketch.record(Some(1.0), None);
    }
    for _ in 0..zeros {
        sketch.record(Some(0.0), None);
    }
    PartialEntry {
        series,
        window_start: window,
        window_ms: WINDOW_MS,
        sketch,
    }
}

/// `tenant_id` and `source` of a rejected item, when its JSON has them as identifiers.
fn hints(raw: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Hints {
        #[serde(default)]
        tenant_id: Option<serde_json::Value>,
        #[serde(default)]
        source: Option<serde_json::Value>,
    }
    let Ok(parsed) = serde_json::from_slice::<Hints>(raw) else {
        return (None, None);
    };
    let ident = |v: Option<serde_json::Value>| {
        v.and_then(|v| v.as_str().map(str::to_owned))
            .filter(|s| is_identifier(s, 128))
    };
    (ident(parsed.tenant_id), ident(parsed.source))
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
            [(Some("t"), &bad[..]), (None, &b"not json"[..])],
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
        let unknown = entries
            .iter()
            .find(|e| e.series.tenant == UNKNOWN_TENANT)
            .expect("a rejected item without tenant");
        assert_eq!(unknown.series.metric, PIPELINE_DLQ_METRIC);
        assert!(entries
            .iter()
            .all(|e| e.window_ms == WINDOW_MS && e.window_start % WINDOW_MS == 0));
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
        metrics.observe(&events, std::iter::empty::<(Option<&str>, &[u8])>(), 0);
        let entries = metrics.drain();
        let overflow = entries
            .iter()
            .filter(|e| e.series.dims[0].1.as_deref() == Some(OVERFLOW_VALUE))
            .count();
        assert_eq!(overflow, 2, "one per metric");
        assert_eq!(entries.len(), (MAX_SOURCES + 1) * 2);
    }
}
