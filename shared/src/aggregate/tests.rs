use super::state::{Update, INLINE_SERIES, LOG_CAPACITY};
use super::*;
use crate::event::Scalar;
use crate::event::{parse_event, EventLimits};
use crate::metric::MetricDefinition;
use crate::metric::OVERFLOW_VALUE;
use crate::series::{series_id, SeriesKey};
use crate::sketch::{unique_hash, Sketch};
use crate::window::window_start;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};

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
        .find(|e| e.series.metric == "amount" && e.series.dims.is_empty() && e.window_start == w)
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
    // Forgotten bookkeeping admits anew, also in the groups that already exist.
    agg.add(&event("t", "pay", r#"{"region":"a","usd":1}"#, 0));
    agg.forget_windows_before(w + 1);
    agg.add(&event("t", "pay", r#"{"region":"c","usd":1}"#, 0));
    let counts = by_series(&agg.drain());
    assert_eq!(counts[&("amount".into(), r#"{"region":"c"}"#.into(), w)], 1);
}

#[test]
fn a_tenant_ceiling_below_the_definition_caps_that_tenant_only() {
    let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(3)])));
    let w = window_start(NOW, 60_000);
    agg.add(&event("low", "pay", r#"{"region":"a","usd":1}"#, 0));
    agg.set_series_ceilings(Arc::new(HashMap::from([
        ("low".to_owned(), 1),
        ("high".to_owned(), 50),
    ])));
    for tenant in ["low", "high", "free"] {
        for region in ["a", "b", "c", "d"] {
            agg.add(&event(
                tenant,
                "pay",
                &format!(r#"{{"region":"{region}","usd":1}}"#),
                0,
            ));
        }
    }
    // `low`: `a` was admitted before and stays; b, c, d overflow (ceiling 1). `high`: the
    // definition's 3 is lower than its ceiling, so d overflows; `free` has no ceiling: 3 too.
    // (The built-in metric has one series per dimension set here: never over a ceiling.)
    assert_eq!(agg.overflowed_total(), 3 + 1 + 1);
    let entries = agg.drain();
    let regions = |tenant: &str| -> BTreeMap<String, u64> {
        entries
            .iter()
            .filter(|e| e.series.tenant == tenant && e.series.metric == "amount")
            .filter(|e| e.window_start == w)
            .filter(|e| e.series.dims_json() != "{}")
            .map(|e| (e.series.dims_json(), e.sketch.count()))
            .collect()
    };
    assert_eq!(
        regions("low"),
        BTreeMap::from([
            (r#"{"region":"__overflow__"}"#.to_owned(), 3),
            (r#"{"region":"a"}"#.to_owned(), 2),
        ])
    );
    assert_eq!(regions("high").len(), 4, "{:?}", regions("high"));
    assert_eq!(regions("high")[r#"{"region":"__overflow__"}"#], 1);
    assert_eq!(regions("free"), regions("high"));
}

#[test]
fn replaced_definitions_still_give_one_entry_per_series() {
    let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(10)])));
    agg.add(&event("t", "pay", r#"{"region":"eu","usd":1}"#, 0));
    agg.set_metrics(Arc::new(MetricSet::new([amount_metric(10)])));
    agg.add(&event("t", "pay", r#"{"region":"eu","usd":2}"#, 0));
    assert_eq!(agg.pending_series(), 12, "two groups of six series each");
    let entries = agg.drain();
    let w = window_start(NOW, 60_000);
    assert_eq!(entries.len(), 6, "{:?}", by_series(&entries));
    let counts = by_series(&entries);
    assert_eq!(
        counts[&("amount".into(), r#"{"region":"eu"}"#.into(), w)],
        2
    );
    assert_eq!(counts[&("events".into(), "{}".into(), w)], 2);
}

/// A direct implementation of what the aggregator computes: per event, metric and
/// dimension set, the canonical series key from [`Event::dimension`] and
/// [`Scalar::canonical`], admitted against the cap as documented.
#[derive(Default)]
struct Reference {
    pending: HashMap<(Vec<u8>, UnixMillis, i64), Sketch>,
    admitted: HashMap<(String, String, usize, UnixMillis), HashSet<u64>>,
}

impl Reference {
    fn add(&mut self, metrics: &MetricSet, event: &Event<'_>) {
        metrics.for_each_match(event, |metric| {
            let def = &metric.def;
            let window_ms = def.window_ms();
            let start = window_start(event.occurred_at, window_ms);
            let value = def
                .field
                .as_deref()
                .and_then(|f| event.property(f))
                .and_then(|v| v.as_f64());
            let unique = def.unique.as_deref().and_then(|name| {
                event
                    .dimension(name)
                    .map(|v| unique_hash(v.canonical().as_bytes()))
            });
            for (set_index, names) in metric.dimension_sets.iter().enumerate() {
                let key = |overflow: bool| {
                    SeriesKey::new(
                        event.tenant_id.as_ref(),
                        def.name.as_str(),
                        names.iter().map(|name| {
                            let value = if overflow {
                                Some(OVERFLOW_VALUE.to_owned())
                            } else {
                                event.dimension(name).map(|v| v.canonical().into_owned())
                            };
                            (name.clone(), value)
                        }),
                    )
                    .canonical()
                };
                let mut canonical = key(false);
                if !self
                    .pending
                    .contains_key(&(canonical.clone(), start, window_ms))
                {
                    let id = series_id(&canonical);
                    let admitted = self
                        .admitted
                        .entry((
                            event.tenant_id.to_string(),
                            def.name.clone(),
                            set_index,
                            start,
                        ))
                        .or_default();
                    if admitted.contains(&id) || admitted.len() < def.max_series_per_window as usize
                    {
                        admitted.insert(id);
                    } else {
                        canonical = key(true);
                    }
                }
                self.pending
                    .entry((canonical, start, window_ms))
                    .or_insert_with(|| Sketch::new(metric.spec))
                    .record(value, unique);
            }
        });
    }
}

#[test]
fn random_events_give_what_the_direct_implementation_gives() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(7);
    let wide = MetricDefinition::from_json(
        br#"{"name":"wide","event_type":"*","field":"usd","unique":"user",
             "dimensions":["region","source","plan","tenant_id"],
             "rollups":[["plan"],["region","plan"],[]],"max_series_per_window":12}"#,
    )
    .expect("valid");
    // More dimension sets than a combination keeps inline.
    let tall = MetricDefinition::from_json(
        br#"{"name":"tall","event_type":"pay","unique":"region",
             "dimensions":["region","source","plan"],
             "rollups":[["plan"],["region"],["source"],["region","source"],[]]}"#,
    )
    .expect("valid");
    assert!(tall.dimension_sets().len() > INLINE_SERIES);
    let metrics = Arc::new(MetricSet::new([amount_metric(5), wide, tall]));
    let mut agg = Aggregator::new(Arc::clone(&metrics));
    let mut reference = Reference::default();
    let scalar = |rng: &mut StdRng| match rng.random_range(0..7) {
        0 => Scalar::Int(if rng.random_range(0..20) == 0 {
            i64::MIN
        } else {
            rng.random_range(-2..4)
        }),
        1 => Scalar::Str(format!("{}", rng.random_range(-2..4)).into()),
        2 => Scalar::Float(f64::from(rng.random_range(-2..4)) * 0.75),
        3 => Scalar::Bool(rng.random()),
        4 => Scalar::Null,
        5 => Scalar::UInt(u64::MAX - rng.random_range(0..2)),
        _ => Scalar::Str(["eu", "us", "", "é"][rng.random_range(0..4)].into()),
    };
    let mut compared = 0;
    for round in 0..40 {
        // Some rounds log more updates than are kept before they are applied.
        let events = if round % 10 == 5 {
            3_000
        } else {
            rng.random_range(0..400)
        };
        for _ in 0..events {
            let mut properties = Vec::new();
            for name in ["region", "plan", "user"] {
                if rng.random_range(0..5) > 0 {
                    properties.push((Cow::Borrowed(name), scalar(&mut rng)));
                }
            }
            if rng.random_range(0..4) > 0 {
                properties.push((Cow::Borrowed("usd"), Scalar::Float(rng.random())));
            }
            let event = Event {
                id: None,
                tenant_id: Cow::Borrowed(["t0", "t1", "t2"][rng.random_range(0..3)]),
                source: Cow::Borrowed(["a", "b"][rng.random_range(0..2)]),
                event_type: Cow::Borrowed(["pay", "login"][rng.random_range(0..2)]),
                properties,
                occurred_at: NOW + rng.random_range(-3..3) * 40_000 + round * 30_000,
                weight: 1,
            };
            agg.add(&event);
            reference.add(&metrics, &event);
        }
        let mut got: HashMap<(Vec<u8>, UnixMillis, i64), Sketch> = HashMap::new();
        for entry in agg.drain() {
            let key = (
                entry.series.canonical(),
                entry.window_start,
                entry.window_ms,
            );
            assert!(
                got.insert(key, entry.sketch).is_none(),
                "one entry per series"
            );
        }
        let expected = std::mem::take(&mut reference.pending);
        assert_eq!(got.len(), expected.len());
        for (key, sketch) in &expected {
            assert_eq!(got.get(key), Some(sketch), "{key:?}");
        }
        compared += expected.len();
        if round % 3 == 2 {
            let before = NOW + round * 30_000 - 60_000;
            agg.forget_windows_before(before);
            reference.admitted.retain(|key, _| key.3 >= before);
        }
    }
    assert!(compared > 1000, "{compared}");
    assert!(agg.overflowed_total() > 0);
}

#[test]
fn a_burst_of_series_does_not_keep_its_memory_after_the_next_drain() {
    let mut agg = Aggregator::new(Arc::new(MetricSet::new([amount_metric(100_000)])));
    let idle = agg.approx_bytes();
    for region in 0..20_000 {
        let props = format!(r#"{{"region":"r{region}","usd":1}}"#);
        agg.add(&event("t", "pay", &props, 0));
    }
    let burst = agg.approx_bytes();
    assert_eq!(agg.drain().len(), 20_000 + 1 + 4);
    agg.add(&event("t", "pay", r#"{"region":"a","usd":1}"#, 60_000));
    agg.drain();
    agg.forget_windows_before(window_start(NOW, 60_000) + 60_000);
    let after = agg.approx_bytes();
    // What stays is mostly the update log, bounded by `LOG_CAPACITY`.
    let log_bound = 2 * LOG_CAPACITY * std::mem::size_of::<Update>();
    assert!(
        after < idle + log_bound + 64 * 1024,
        "idle {idle}, burst {burst}, after {after}"
    );
    assert!(
        after * 10 < burst,
        "idle {idle}, burst {burst}, after {after}"
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

#[test]
fn a_weighted_event_counts_its_weight() {
    let metrics = Arc::new(MetricSet::new([amount_metric(100)]));
    let mut aggregator = Aggregator::new(metrics);
    let mut sampled = event("acme", "pay", r#"{"region":"eu","usd":2.5,"user":"u1"}"#, 0);
    sampled.weight = 10;
    aggregator.add(&sampled);
    aggregator.add(&event(
        "acme",
        "pay",
        r#"{"region":"eu","usd":1,"user":"u2"}"#,
        0,
    ));
    let entries = aggregator.drain();
    let total = |metric: &str| -> (u64, Option<f64>) {
        entries
            .iter()
            .filter(|e| e.series.metric == metric && e.series.dims.is_empty())
            .map(|e| (e.sketch.count(), e.sketch.stats().sum))
            .next()
            .unwrap_or((0, None))
    };
    assert_eq!(total("amount"), (11, Some(26.0)));
    assert_eq!(
        total("events").0,
        11,
        "the built-in metric counts the weight too"
    );
}
