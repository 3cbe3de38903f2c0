//! Sketch benchmarks: per-event `record`, `merge` per partial, encode/decode throughput, and the
//! encoded sizes (printed).
//!
//! `cargo bench -p rtdash-shared --bench sketch -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtdash_shared::sketch::{unique_hash, Sketch, SketchSpec};

const EVENTS: usize = 10_000;

/// Events with lognormal values and unique keys drawn from `distinct` keys.
fn events(distinct: u64, seed: u64) -> Vec<(f64, u64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..EVENTS)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let key = rng.random_range(0..distinct);
            ((3.0 + 1.5 * z).exp(), unique_hash(&key.to_le_bytes()))
        })
        .collect()
}

fn sketch(spec: SketchSpec, n: usize, distinct: u64, seed: u64) -> Sketch {
    let mut s = Sketch::new(spec);
    let evs = events(distinct, seed);
    for i in 0..n {
        let (v, u) = evs[i % EVENTS];
        // Vary values and keys beyond the first EVENTS.
        let round = (i / EVENTS) as u64;
        s.record(
            Some(v + round as f64),
            Some(u.wrapping_add(round.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
        );
    }
    s
}

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(EVENTS as u64));
    let sparse_events = events(1_000, 1);
    let dense_events = events(1 << 40, 2);

    g.bench_function("count_only", |b| {
        b.iter_batched_ref(
            || Sketch::new(SketchSpec::COUNT),
            |s| {
                for &(v, u) in &sparse_events {
                    s.record(black_box(Some(v)), black_box(Some(u)));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("value", |b| {
        b.iter_batched_ref(
            || Sketch::new(SketchSpec::VALUES),
            |s| {
                for &(v, _) in &sparse_events {
                    s.record(black_box(Some(v)), None);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("value_unique_sparse_1k_distinct", |b| {
        b.iter_batched_ref(
            || Sketch::new(SketchSpec::ALL),
            |s| {
                for &(v, u) in &sparse_events {
                    s.record(black_box(Some(v)), black_box(Some(u)));
                }
            },
            BatchSize::SmallInput,
        )
    });
    let grown = sketch(SketchSpec::ALL, 50_000, 1 << 40, 3);
    assert!(grown.unique_is_dense());
    g.bench_function("value_unique_dense", |b| {
        b.iter_batched_ref(
            || grown.clone(),
            |s| {
                for &(v, u) in &dense_events {
                    s.record(black_box(Some(v)), black_box(Some(u)));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge_per_partial");
    let cases: Vec<(&str, Sketch, Sketch)> = vec![
        (
            "hll_sparse_100_into_sparse_1k",
            sketch(SketchSpec::UNIQUE, 1_000, 1 << 40, 10),
            sketch(SketchSpec::UNIQUE, 100, 1 << 40, 11),
        ),
        (
            "hll_sparse_100_into_dense",
            sketch(SketchSpec::UNIQUE, 100_000, 1 << 40, 12),
            sketch(SketchSpec::UNIQUE, 100, 1 << 40, 13),
        ),
        (
            "hll_dense_into_dense",
            sketch(SketchSpec::UNIQUE, 100_000, 1 << 40, 14),
            sketch(SketchSpec::UNIQUE, 10_000, 1 << 40, 15),
        ),
        (
            "digest_10k_into_100k",
            sketch(SketchSpec::VALUES, 100_000, 1, 16),
            sketch(SketchSpec::VALUES, 10_000, 1, 17),
        ),
        (
            "digest_50_into_100k",
            sketch(SketchSpec::VALUES, 100_000, 1, 18),
            sketch(SketchSpec::VALUES, 50, 1, 19),
        ),
        (
            "all_1k_events_into_100k",
            sketch(SketchSpec::ALL, 100_000, 50_000, 20),
            sketch(SketchSpec::ALL, 1_000, 500, 21),
        ),
    ];
    for (name, acc, partial) in &cases {
        g.bench_function(*name, |b| {
            b.iter_batched_ref(
                || acc.clone(),
                |a| a.merge(black_box(partial)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn codec(c: &mut Criterion) {
    let cases: Vec<(&str, Sketch)> = vec![
        ("1_event_count_only", sketch(SketchSpec::COUNT, 1, 1, 30)),
        ("1_event_all", sketch(SketchSpec::ALL, 1, 1, 31)),
        (
            "100_events_50_distinct",
            sketch(SketchSpec::ALL, 100, 50, 32),
        ),
        (
            "10k_events_2k_distinct_sparse",
            sketch(SketchSpec::ALL, 10_000, 2_000, 33),
        ),
        (
            "100k_events_dense",
            sketch(SketchSpec::ALL, 100_000, 50_000, 34),
        ),
    ];
    println!("encoded sizes:");
    for (name, s) in &cases {
        let json = serde_json::to_string(s).map(|j| j.len()).unwrap_or(0);
        println!(
            "  {name:<32} postcard {:>6} bytes   json {:>7} bytes   heap {:>6} bytes",
            s.encode().len(),
            json,
            s.heap_bytes()
        );
    }
    let mut g = c.benchmark_group("encode");
    for (name, s) in &cases {
        g.throughput(Throughput::Bytes(s.encode().len() as u64));
        g.bench_function(*name, |b| b.iter(|| black_box(s).encode()));
    }
    g.finish();
    let mut g = c.benchmark_group("decode");
    for (name, s) in &cases {
        let bytes = s.encode();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(*name, |b| b.iter(|| Sketch::decode(black_box(&bytes))));
    }
    g.finish();
    let mut g = c.benchmark_group("stats");
    for (name, s) in &cases {
        g.bench_function(*name, |b| b.iter(|| black_box(s).stats()));
    }
    g.finish();
}

criterion_group!(benches, record, merge, codec);
criterion_main!(benches);
