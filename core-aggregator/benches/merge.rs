//! Throughput of the partition state machine: series deltas merged per second (decode +
//! apply, as the consumer does), and the cost of checkpoint encoding.
//!
//! `cargo bench -p core-aggregator --bench merge`

use core_aggregator::state::{decode_batch, PartitionState, Settings};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rtdash_shared::messages::{PartialBatch, PartialEntry};
use rtdash_shared::series::SeriesKey;
use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};
use rtdash_shared::wire::{self, Format};
use std::hint::black_box;

const SERIES: usize = 20_000;
const ENTRIES_PER_BATCH: usize = 500;
const BATCHES: usize = 40;
const BASE: i64 = 1_699_999_980_000; // aligned to 60 s

fn series(i: usize) -> SeriesKey {
    SeriesKey::new(
        "acme",
        "checkout_latency",
        [
            ("region".to_owned(), Some(format!("region-{}", i % 16))),
            ("host".to_owned(), Some(format!("host-{i}"))),
        ],
    )
}

/// Encoded batches: `BATCHES` × `ENTRIES_PER_BATCH` deltas of `spec` sketches with `events`
/// events each, over `SERIES` series of one window.
fn batches(spec: SketchSpec, events: usize) -> Vec<Vec<u8>> {
    let mut next = 0usize;
    (0..BATCHES)
        .map(|b| {
            let entries = (0..ENTRIES_PER_BATCH)
                .map(|_| {
                    let i = next % SERIES;
                    next += 7919; // visit series in a scattered order
                    let mut sketch = Sketch::new(spec);
                    for e in 0..events {
                        let value = ((i * 31 + e * 17) % 1000) as f64;
                        sketch.record(Some(value), Some(unique_hash(&(e as u64).to_le_bytes())));
                    }
                    PartialEntry {
                        series: series(i),
                        window_start: BASE,
                        window_ms: 60_000,
                        sketch,
                    }
                })
                .collect();
            let batch = PartialBatch {
                agent_id: format!("edge-{}", b % 4),
                partition: 0,
                seq: (b / 4) as u64 + 1,
                acked_below: (b / 4) as u64 + 1,
                watermark: BASE,
                created_at: BASE + b as i64,
                entries,
            };
            wire::encode(&batch, Format::Binary).expect("encode")
        })
        .collect()
}

fn warm_state(encoded: &[Vec<u8>]) -> PartitionState {
    let mut state = PartitionState::new(0, Settings::default());
    for (i, bytes) in encoded.iter().enumerate() {
        let batch: PartialBatch = wire::decode(bytes).expect("decode");
        state.apply(batch, i as u64 + 1);
    }
    assert_eq!(
        state.window_count(),
        SERIES.min(BATCHES * ENTRIES_PER_BATCH)
    );
    assert_eq!(state.counters().invalid, 0);
    state
}

fn merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge");
    group.throughput(Throughput::Elements((BATCHES * ENTRIES_PER_BATCH) as u64));
    group.sample_size(20);
    for (name, spec, events) in [
        ("count_only", SketchSpec::COUNT, 5),
        ("values_5_events", SketchSpec::VALUES, 5),
        ("values_unique_5_events", SketchSpec::ALL, 5),
    ] {
        let encoded = batches(spec, events);
        // Steady state: every window already exists (merges, not inserts).
        group.bench_function(format!("decode_apply/{name}"), |b| {
            b.iter_batched(
                || (warm_state(&encoded), encoded.clone()),
                |(mut state, encoded)| {
                    for (i, bytes) in encoded.iter().enumerate() {
                        let mut batch = decode_batch(bytes).expect("decode");
                        batch.seq += 1_000; // new batches for the dedup check
                        batch.acked_below += 1_000;
                        black_box(state.apply_borrowed(batch, 10_000 + i as u64));
                    }
                    state
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn checkpoint(c: &mut Criterion) {
    let encoded = batches(SketchSpec::VALUES, 5);
    let mut state = warm_state(&encoded);
    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(20);
    let (full, windows) = state.capture(true).data.expect("windows");
    println!(
        "full snapshot: {windows} windows, {} bytes ({} bytes/window)",
        full.len(),
        full.len() / windows.max(1)
    );
    group.throughput(Throughput::Elements(windows as u64));
    group.bench_function("capture_full", |b| {
        b.iter(|| black_box(state.capture(true)))
    });
    group.finish();
}

criterion_group!(benches, merge, checkpoint);
criterion_main!(benches);
