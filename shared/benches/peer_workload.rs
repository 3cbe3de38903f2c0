//! The peer workload's aggregation step (`shared/bench/peer-workload.md`) through
//! [`Aggregator::add`], per event, on one core: events of 600 groups (tenant × event type ×
//! region × plan) with a lognormal `amount` and 100,000 users, 5 % late by up to 50 s, fed to
//! the peer metric (count, sum/min/max/percentiles of `amount`, distinct `user_id`) plus the
//! built-in `events` metric, drained every 100,000 events as the edge agent's flush does.
//!
//! Events are generated before the measurement, so this isolates the aggregation cost. The
//! whole workload (in-process generation, two worker threads, windows closed by watermark) is
//! `rtdash-loadgen peer --mode inprocess`; see BENCHMARKS.md.
//!
//! `cargo bench -p rtdash-shared --bench peer_workload -- --warm-up-time 1 --measurement-time 5`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtdash_shared::aggregate::Aggregator;
use rtdash_shared::event::{Event, Scalar};
use rtdash_shared::metric::{MetricDefinition, MetricSet};
use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;

const TENANTS: [&str; 10] = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"];
const EVENT_TYPES: [&str; 5] = ["e0", "e1", "e2", "e3", "e4"];
const EVENTS: usize = 200_000;
const DRAIN_EVERY: usize = 100_000;
const NOW: i64 = 1_705_327_532_000;

fn peer_metric() -> MetricDefinition {
    MetricDefinition::from_json(
        br#"{"name":"peer","event_type":"*","field":"amount","unique":"user_id",
             "dimensions":["event_type","region","plan"],"rollups":[]}"#,
    )
    .expect("valid peer metric")
}

fn events() -> Vec<Event<'static>> {
    let mut rng = StdRng::seed_from_u64(42);
    (0..EVENTS)
        .map(|i| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let late = rng.random::<f64>() < 0.05;
            // Event time advances 1 ms per 100 events: 2 s over the set.
            let now = NOW + (i / 100) as i64;
            Event {
                id: None,
                tenant_id: Cow::Borrowed(TENANTS[rng.random_range(0..10)]),
                source: Cow::Borrowed("peer"),
                event_type: Cow::Borrowed(EVENT_TYPES[rng.random_range(0..5)]),
                properties: vec![
                    (Cow::Borrowed("region"), Scalar::Int(rng.random_range(0..4))),
                    (Cow::Borrowed("plan"), Scalar::Int(rng.random_range(0..3))),
                    (Cow::Borrowed("amount"), Scalar::Float((3.0 + normal).exp())),
                    (
                        Cow::Borrowed("user_id"),
                        Scalar::Int(rng.random_range(0..100_000)),
                    ),
                ],
                occurred_at: if late {
                    now - rng.random_range(0..=50_000)
                } else {
                    now
                },
                weight: 1,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = events();
    let metrics = Arc::new(MetricSet::new([peer_metric()]));
    let mut group = c.benchmark_group("peer_workload");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("aggregator_add", |b| {
        let mut agg = Aggregator::new(Arc::clone(&metrics));
        b.iter(|| {
            for chunk in events.chunks(DRAIN_EVERY) {
                for event in chunk {
                    black_box(agg.add(event));
                }
                black_box(agg.drain());
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
